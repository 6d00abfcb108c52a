"""What a run folder holds, each file written atomically (a temporary file, then os.replace).

    metrics.csv        a row per epoch: epoch, train_loss, val_loss, val_acc, seconds
    curves.png         train loss, val loss and val accuracy against epochs, as the book plots them
    best.safetensors   the weights of the epoch with the best validation accuracy
    last.safetensors   the weights after the last epoch
    last.ckpt          Lightning's checkpoint of the last epoch, for --resume
    summary.json       the spec, recipe, data, versions and results; rewritten every epoch

An interrupted run never leaves a half-written file: at worst a `.NAME.*` temporary, which
the next run in that folder removes.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import io_error
from ..files import atomic_write, file_mode, write_text  # noqa: F401 (used by the run's writers)

COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc", "seconds")
RUN_FILES = ("summary.json", "metrics.csv", "last.ckpt", "last.safetensors", "best.safetensors", "curves.png")


def remove_temporaries(folder: Path) -> None:
    """Temporaries left by a run killed while writing (SIGKILL; SIGINT never leaves any)."""
    for p in folder.glob(".*"):
        if p.is_file() and any(p.name.startswith(f".{name}.") for name in RUN_FILES):
            p.unlink()


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for row in history:
        w.writerow([row["epoch"], *(f"{row[k]:.6f}" for k in COLUMNS[1:4]), f"{row['seconds']:.2f}"])
    write_text(path, out.getvalue())


def write_curves(path: Path, history: list[dict[str, Any]], title: str) -> None:
    """The book's training figure: train loss, val loss and val accuracy on one axis, against epochs."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.5, 3.2), dpi=120)
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in history]
    for key, style in (("train_loss", "-"), ("val_loss", "--"), ("val_acc", "-.")):
        ax.plot(epochs, [r[key] for r in history], style, marker="o" if len(epochs) == 1 else None, label=key)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5 if len(epochs) < 2 else 1, max(epochs[-1] if epochs else 1, 2))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_weights(path: Path, state: dict, metadata: dict[str, str]) -> None:
    """A state_dict as safetensors, with the metadata `archspec compile --weights` reads."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    write_text(path, json.dumps(summary, indent=2) + "\n")


def read_summary(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise io_error("E707", f"`{path.parent}` holds no run to resume (no summary.json)") from None
    except (OSError, ValueError) as exc:
        raise io_error("E707", f"cannot read `{path}`: {exc}") from None
