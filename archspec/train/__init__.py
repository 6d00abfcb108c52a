"""`archspec train` and `archspec data`: the book's recipe on a compiled spec, with PyTorch Lightning.

    recipe.py     the book's defaults and per-network presets; the data source (no torch)
    unpack.py     `archspec data`: Debian's gzip files -> torchvision's layout, checksummed (no torch)
    data.py       Fashion-MNIST and image folders as uint8 tensors, the book's preprocessing
    module.py     the LightningModule: SGD, cross-entropy, exact validation accuracy under DDP
    interrupt.py  Ctrl-C: stop at a batch boundary, on every process at once
    artifacts.py  what a run folder holds, each file written atomically
    run.py        the Trainer, the per-epoch record, resume
    resume.py     a run folder's summary.json and last.ckpt, checked before --resume continues it
    cli.py        the `train` and `data` subcommands (argument handling only)

Lightning is an optional extra (`pip install 'archspec[train]'`). `archspec check` and `summary`
import cli.py, recipe.py and unpack.py only, and none of them imports torch.
"""

from __future__ import annotations

from typing import Any


def fit(spec: Any, data: str = "fashion-mnist", out: str | None = None, *, download: bool = False,
        device: str = "auto", devices: int = 1, strategy: str = "auto", workers: int | None = None,
        resume: bool = False, **recipe: Any) -> dict[str, Any]:
    """Train a checked Spec (archspec.load) as `archspec train` does; return what summary.json holds.

    `data` is "fashion-mnist", "fashion-mnist:ROOT" or "imagefolder:DIR"; `recipe` takes lr,
    epochs, batch_size, init, seed and precision (the book's defaults otherwise). Images are
    resized to the spec's own input size: load it with input=(C, N, N) for another. `resume`
    continues the run in `out` with the same spec, data and recipe (epochs may grow). Raises
    ArchError for a problem with the data or the run folder, `Interrupted` on Ctrl-C.
    """
    from pathlib import Path

    from . import run as R
    from .data import load
    from .recipe import Recipe, parse_source
    from .resume import check_data, resumed

    r = Recipe(**recipe)
    folder = Path(out or Path("runs", spec.name))
    recorded = resumed(folder, spec, r, parse_source(data)) if resume else None
    data_set = load(parse_source(data), spec.network.input_shape, download)
    if recorded is not None:
        check_data(recorded, data_set)
    R.check_fit(spec, data_set)
    R.check_out(folder, resume)
    return R.train(R.Run(spec, r, data_set), R.Where(folder, device, devices, strategy, workers, resume))


__all__ = ["fit"]
