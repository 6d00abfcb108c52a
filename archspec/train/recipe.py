"""The training recipe (the book's defaults, its per-network presets, flags over them) and the data source.

Dive into Deep Learning trains every CNN of chapters 7 and 8 the same way: plain SGD (no
momentum, no weight decay), mean cross-entropy, Xavier-uniform conv and linear weights, batch
128, 10 epochs, Fashion-MNIST scaled to [0, 1]. Only the learning rate and the image size
change from network to network; `--preset book` picks those two by the zoo network's name.
No torch here: the CLI resolves a recipe before anything heavy is imported.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import io_error

DEFAULT_LR = 0.1
DEFAULT_EPOCHS = 10
DEFAULT_BATCH = 128

# network name in specs/ -> (learning rate, image size), as in the book's training cells
BOOK: dict[str, tuple[float, int]] = {
    "lenet": (0.1, 28),  # 7.6
    "alexnet": (0.01, 224),  # 8.1
    "vgg_small": (0.01, 224),  # 8.2
    "nin": (0.05, 224),  # 8.3
    "googlenet": (0.01, 96),  # 8.4
    "lenet_bn": (0.1, 28),  # 8.5
    "resnet18": (0.01, 96),  # 8.6
    "densenet": (0.01, 96),  # 8.7
}


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what training computes (not where it runs)."""

    lr: float = DEFAULT_LR
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH
    resize: int | None = None  # None: the network's own input size
    init: str = "xavier"
    seed: int = 0
    precision: str = "32"
    preset: str | None = None
    optimizer: str = "sgd"  # fixed: plain SGD, recorded so a summary says so
    loss: str = "cross-entropy (mean)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


CHOSEN = ("lr", "epochs", "batch_size", "resize", "init", "seed", "precision")


def resolve(network: str, flags: dict[str, Any], preset: str | None) -> Recipe:
    """The recipe for `network`: defaults, then the preset, then flags given explicitly (not None)."""
    values: dict[str, Any] = {}
    if preset == "book":
        if network not in BOOK:
            raise io_error("E705", f"--preset book has no recipe for network `{network}`; the book trains "
                           + ", ".join(sorted(BOOK)) + " (pass --lr and --resize instead)")
        values["lr"], values["resize"] = BOOK[network]
    values.update({k: v for k, v in flags.items() if k in CHOSEN and v is not None})
    return Recipe(preset=preset, **values)


def conflicts(recorded: Recipe, flags: dict[str, Any]) -> list[str]:
    """Flags given on --resume that contradict the recorded recipe (epochs may grow: not a conflict)."""
    return [f"--{k.replace('_', '-')} {v} (the run used {getattr(recorded, k)})" for k, v in flags.items()
            if k in CHOSEN and k != "epochs" and v is not None and v != getattr(recorded, k)]


@dataclass(frozen=True)
class Source:
    """Where the data comes from: `fashion-mnist[:ROOT]` or `imagefolder:DIR`."""

    kind: str
    path: str | None = None

    def __str__(self) -> str:
        return self.kind + (f":{self.path}" if self.path else "")


def absolute_source(text: str) -> str:
    """A data source with its folder made absolute, as a run records it: `--resume` from another
    working folder must find the same data."""
    s = parse_source(text)
    return str(Source(s.kind, os.path.abspath(s.path))) if s.path else str(s)


def parse_source(text: str) -> Source:
    kind, _, path = text.partition(":")
    if kind not in ("fashion-mnist", "imagefolder") or (kind == "imagefolder" and not path):
        raise ValueError(f"expected fashion-mnist, fashion-mnist:ROOT or imagefolder:DIR, got {text!r}")
    return Source(kind, os.path.expanduser(path) if path else None)
