"""Train LeNet on Fashion-MNIST with the book's recipe from Python, then compile its best weights to ONNX.

    apt-get install dataset-fashion-mnist && archspec data fashion-mnist
    pip install 'archspec[train]'
    python examples/train_lenet.py [--epochs 10] [--out runs/lenet_example]   (from the repo root)

The same as `archspec train specs/lenet.arch --preset book` followed by
`archspec compile specs/lenet.arch --weights RUNDIR/best.safetensors -f onnx`. The book reaches
0.73 validation accuracy after 10 epochs (benchmarks/train_results.md: 0.7313); on a 2-core CPU
the 10 epochs take several minutes.
"""

from __future__ import annotations

import argparse
import sys

import archspec
from archspec.cli import main as archspec_main
from archspec.errors import ArchError, render
from archspec.train import fit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data", default="fashion-mnist", help="fashion-mnist[:ROOT] or imagefolder:DIR")
    ap.add_argument("--out", default="runs/lenet_example")
    args = ap.parse_args()

    spec = archspec.load("specs/lenet.arch")
    try:
        summary = fit(spec, args.data, args.out, epochs=args.epochs, lr=0.1, batch_size=128)
    except ArchError as exc:  # e.g. the data is not there yet: the message says how to get it
        print("\n".join(render(d) for d in exc.diagnostics), file=sys.stderr)
        return exc.exit_code
    for row in summary["history"]:
        print(f"epoch {row['epoch']:2d}: train loss {row['train_loss']:.3f}, val loss {row['val_loss']:.3f}, "
              f"val acc {row['val_acc']:.3f}  ({row['seconds']:.1f} s)")
    print(f"best val acc {summary['best_val_acc']:.4f} at epoch {summary['best_epoch']}")
    return archspec_main(["compile", "specs/lenet.arch", "--weights", f"{args.out}/best.safetensors",
                          "-f", "onnx", "-o", f"{args.out}/onnx"])


if __name__ == "__main__":
    sys.exit(main())
