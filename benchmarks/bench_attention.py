"""Does onnxruntime's transformer optimizer make archspec's ViT-B/16 export faster? It fuses what it
recognises (attention into its MultiHeadAttention/Attention contrib ops, GELU, layer norm); this script
compiles vit_b_16 from specs/torchvision/vit.arch to ONNX, runs the optimizer (model type `vit`, 12
heads, hidden size 768), lists what it fused, checks that both models compute the same, and times
both in onnxruntime on 2 threads (no spinning), interleaved, at batch 1 and 8.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_attention.py   # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def session(path: str):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = 2, 1
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def main() -> None:
    import numpy as np
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    with tempfile.TemporaryDirectory(prefix="bench-attention-") as tmp:
        subprocess.run([sys.executable, "-m", "archspec", "compile", str(REPO / "specs/torchvision/vit.arch"),
                        "--network", "vit_b_16", "-f", "onnx", "--no-verify", "-o", tmp], check=True,
                       capture_output=True)
        plain = str(Path(tmp) / "vit_b_16.onnx")
        opt = optimize_model(plain, model_type="vit", num_heads=12, hidden_size=768, opt_level=0)
        fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(Path(tmp) / "fused.onnx"))
        ops = collections.Counter(n.op_type for n in onnx.load(plain, load_external_data=False).graph.node)
        print(f"archspec's export: {ops['MatMul']} MatMul, {ops['Softmax']} Softmax, {ops['Gemm']} Gemm; "
              f"the optimizer fused: {fused or 'nothing'}")
        a, b = session(plain), session(str(Path(tmp) / "fused.onnx"))
        for batch, rounds in ((1, 10), (8, 4)):
            x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
            diff = float(np.abs(a.run(None, {"input": x})[0] - b.run(None, {"input": x})[0]).max())
            ta, tb = [], []
            for r in range(rounds):
                for s, t in ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta)):
                    t0 = time.perf_counter()
                    s.run(None, {"input": x})
                    t.append(time.perf_counter() - t0)
            per_round = sorted(y / x_ for x_, y in zip(ta, tb))
            print(f"batch {batch}: plain {min(ta) * 1e3:.1f} ms, optimized {min(tb) * 1e3:.1f} ms (best of {rounds}), "
                  f"optimized / plain {min(tb) / min(ta):.3f} (per round {per_round[0]:.3f}..{per_round[-1]:.3f}); "
                  f"max abs difference {diff:.1e}")


if __name__ == "__main__":
    main()
