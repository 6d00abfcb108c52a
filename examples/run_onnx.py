"""Compile a spec to ONNX with archspec's Python API, then classify a batch of images in onnxruntime.

    python examples/run_onnx.py                       # specs/lenet.arch, into a temporary folder
    python examples/run_onnx.py specs/resnext.arch --out build/resnext

The weights are archspec's seeded initial weights (pass a trained checkpoint with --weights),
so the predicted classes mean nothing; what the example shows is the round trip: spec ->
verified .onnx -> onnxruntime, and the same predictions as the torch module built from the spec.
The images are synthetic: a bright disc on a dark, noisy background, one per image.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort
import torch

import archspec
from archspec.compile import Options, compile_spec


def synthetic_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """n images of `shape` (C, H, W), float32, roughly zero mean and unit variance."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    images = rng.normal(0.0, 0.1, size=(n, c, h, w))
    for img in images:
        cy, cx, r = rng.uniform(0.25 * h, 0.75 * h), rng.uniform(0.25 * w, 0.75 * w), rng.uniform(0.1, 0.3) * min(h, w)
        img += ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
    return ((images - images.mean()) / images.std()).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", nargs="?", default="specs/lenet.arch")
    p.add_argument("--network", help="the network, when the file defines several")
    p.add_argument("--out", help="where to keep the artifacts (default: a temporary folder)")
    p.add_argument("--weights", help="a trained state_dict or .safetensors file")
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args(argv)

    try:
        spec = archspec.load(args.spec, args.network)
    except archspec.ArchError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        try:  # the ONNX file only; compile_spec verifies it against the torch module before writing it
            result = compile_spec(spec, Options(formats=("onnx",), out_dir=out, weights=args.weights))
        except archspec.ArchError as exc:
            print(exc, file=sys.stderr)
            return exc.exit_code
        path = os.path.join(result.out_dir, f"{spec.name}.onnx")
        print(f"compiled {args.spec} -> {path} ({os.path.getsize(path) / 2**20:.1f} MB), verified: "
              + ", ".join(f"batch {c.batch} max abs diff {c.max_abs:.2g}" for c in result.checks))

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        images = synthetic_images(args.batch, spec.network.input_shape)
        (logits,) = session.run(["logits"], {"input": images})

    module = spec.to_torch()  # the same seeded weights as the compile used
    if args.weights:
        from archspec.export.weights import fit, read_checkpoint

        fit(module, read_checkpoint(args.weights)[0], args.weights)
    with torch.no_grad():
        reference = module.eval()(torch.from_numpy(images)).numpy()
    predicted, expected = logits.argmax(axis=1), reference.argmax(axis=1)
    print(f"onnxruntime {ort.__version__}, input {list(images.shape)} -> logits {list(logits.shape)}")
    print("predicted classes:", " ".join(map(str, predicted)))
    print(f"agreement with the torch module: {int((predicted == expected).sum())}/{len(predicted)} "
          f"(max abs logit difference {float(np.abs(logits - reference).max()):.2g})")
    return 0 if (predicted == expected).all() else 1


if __name__ == "__main__":
    sys.exit(main())
