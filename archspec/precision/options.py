"""The low-precision options of `archspec compile` and `archspec bench`, and their checks.

Light on purpose: this module is imported on every `archspec` command (to build the argument
parser), so it imports neither torch nor onnx.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from ..errors import io_error

PRECISIONS = ("fp32", "int8", "fp16", "bf16")
METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_SAMPLES = 512  # images drawn for calibration: ranges settle well before (benchmarks/RESULTS_precision.md)
MAX_DROP = 1.0  # points of top-1 accuracy a low-precision model may lose before it is refused


@dataclass(frozen=True)
class PrecisionOptions:
    """What to build beside the fp32 artifacts, on what data, and what accuracy it must keep."""

    precisions: tuple[str, ...] = ()  # int8, fp16, bf16: fp32 is always built
    calibrate: str | None = None  # fashion-mnist[:ROOT], FILE.npy or FILE.npz
    method: str = "minmax"
    samples: int = CALIBRATION_SAMPLES
    evaluate: str | None = None  # fashion-mnist[:ROOT] or FILE.npz with labels (or FILE.npy without)
    max_drop: float = MAX_DROP
    activation_type: str = "auto"  # uint8 or int8; auto: what this processor runs fastest
    weight_type: str = "int8"
    synthetic: bool = False  # int8 without data: calibrate on random inputs (bench, timing only)

    @property
    def active(self) -> bool:
        return bool(self.precisions)


def add_options(p: argparse.ArgumentParser, bench: bool = False) -> None:
    """`--precision` and the options of calibration and evaluation."""
    p.add_argument("--precision", type=precision_list, default=("fp32",), metavar="fp32,int8,fp16,bf16",
                   help="also build these precisions beside fp32: int8 (ONNX, static QDQ), fp16 (ONNX), bf16 "
                        "(torch.export)" + (" and time them" if bench else "") + " (default fp32)")
    p.add_argument("--calibrate", metavar="fashion-mnist[:ROOT]|FILE.npy|FILE.npz",
                   help="int8: calibration inputs: Fashion-MNIST's training images, or an array [N, C, H, W]"
                        + (" (default: random inputs, timing only)" if bench else ""))
    p.add_argument("--calibration-method", choices=METHODS, default="minmax", help="int8 (default minmax)")
    p.add_argument("--calibration-samples", type=_positive, default=CALIBRATION_SAMPLES, metavar="N",
                   help=f"int8: inputs used for calibration (default {CALIBRATION_SAMPLES})")
    p.add_argument("--evaluate", metavar="fashion-mnist[:ROOT]|FILE.npz",
                   help="top-1 accuracy of fp32 and each precision on the test images (an .npz: inputs `x`, "
                        "labels `y`); without it, agreement and SQNR on the calibration inputs")
    p.add_argument("--max-accuracy-drop", type=_points, default=MAX_DROP, metavar="POINTS",
                   help=f"refuse (write nothing) a precision that loses more top-1 points (default {MAX_DROP})")
    p.add_argument("--activation-type", choices=("auto", "uint8", "int8"), default="auto",
                   help="int8: activations' type (auto: uint8 on x86, int8 on ARM)")
    p.add_argument("--weight-type", choices=("int8", "uint8"), default="int8", help="int8: weights' type")
    if bench:
        p.add_argument("--weights", metavar="CKPT", help="trained weights for the accuracy report")


def from_args(args: argparse.Namespace, bench: bool = False) -> PrecisionOptions:
    """The options given on the command line; a usage error (E626, exit 2) for contradictory ones."""
    chosen = tuple(p for p in args.precision if p != "fp32")
    given = [flag for flag, value in (("--calibrate", args.calibrate), ("--evaluate", args.evaluate))
             if value is not None]
    if not chosen and given:
        raise io_error("E626", f"{' and '.join(given)} {'need' if len(given) > 1 else 'needs'} a low precision: "
                               "add --precision int8, fp16 or bf16")
    if args.calibrate is not None and "int8" not in chosen:
        raise io_error("E626", "--calibrate is for int8 only (fp16 and bf16 need no calibration): add --precision "
                               "int8 or drop --calibrate")
    if "int8" in chosen and args.calibrate is None and not bench:
        raise io_error("E626", "--precision int8 needs calibration inputs: --calibrate fashion-mnist[:ROOT], or an "
                               ".npy/.npz of inputs as the network takes them")
    return PrecisionOptions(chosen, args.calibrate, args.calibration_method, args.calibration_samples, args.evaluate,
                            args.max_accuracy_drop, args.activation_type, args.weight_type,
                            synthetic=bench and "int8" in chosen and args.calibrate is None)


def precision_list(text: str) -> tuple[str, ...]:
    from ..cli import comma_choices  # loaded already: only the command line parses this

    return comma_choices(text, PRECISIONS, "precision")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _points(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not 0 <= x <= 100:
        raise argparse.ArgumentTypeError(f"expected points of accuracy from 0 to 100, got {text!r}")
    return x
