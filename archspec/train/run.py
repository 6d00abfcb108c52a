"""A training run: the spec's module, the data, a Lightning Trainer, and the run folder's artifacts.

Lightning runs the loop, so several GPUs or machines work through its DDP strategy with no
code of ours; what is ours is the recipe, the exact validation metrics and the artifacts.
Ctrl-C stops at the end of the current batch: the run folder keeps the checkpoint of the last
finished epoch (the initial weights before the first), and `--resume` continues from there.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch.utils.data import DataLoader, Sampler

from .. import __version__
from ..codegen import spec_hash
from ..errors import error, foreign_text, io_error
from ..files import check_writable, nearest_existing
from . import artifacts as art
from .data import Data, Indexed, cached, data_error_message
from .interrupt import Interrupted, Stop
from .module import Classifier, init_xavier
from .recipe import Recipe, absolute_source


@dataclass
class Where:
    """Where a run happens and where it writes; nothing here changes what it computes."""

    out: Path
    device: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    workers: int | None = None  # None: none for data cached in memory, else up to 4
    resume: bool = False


@dataclass
class Run:
    """A checked spec, its recipe and data: everything a run records in summary.json."""

    spec: Any  # archspec.Spec
    recipe: Recipe
    data: Data

    def spec_record(self) -> dict[str, Any]:
        net = self.spec.network
        return {"file": net.file, "network": self.spec.name, "sha256": spec_hash(self.spec.sources.texts),
                "overrides": dict(net.overrides), "input": list(net.input_shape),
                "params": self.spec.params, "macs": self.spec.macs}

    def metadata(self) -> dict[str, str]:
        """The safetensors metadata: what `archspec compile --weights` checks and copies into ONNX."""
        import json

        net = self.spec.network
        return {"archspec.network": self.spec.name, "archspec.spec_sha256": spec_hash(self.spec.sources.texts),
                "archspec.overrides": ", ".join(f"{k}={v}" for k, v in net.overrides.items()) or "none",
                "archspec.input": ",".join(map(str, net.input_shape)),
                "archspec.preprocessing": self.data.preprocessing,
                "archspec.classes": json.dumps(self.data.classes)}


def primary() -> bool:
    """Whether this process is global rank 0 (DDP's other processes rerun the command line)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def check_out(out: Path, resume: bool) -> None:
    """Refuse a run folder that is a file, or that holds a run unless resuming it."""
    if out.exists() and not out.is_dir():
        raise io_error("E706", f"the run folder `{out}` is a file")
    held = [f for f in art.RUN_FILES if (out / f).exists()]
    if held and not resume and primary():  # DDP's other processes start once rank 0 has begun writing
        raise io_error("E706", f"`{out}` already holds a run ({', '.join(held)}); continue it with --resume {out}, "
                               "or pass -o for another folder")
    if primary():  # a read-only folder is said now, not as an error from deep inside Lightning later
        where = nearest_existing(out)
        if where.is_dir():
            check_writable(where)


def _make_out(out: Path) -> None:
    if not primary():
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise io_error("E001", f"cannot create `{out}`: {exc.strerror or exc}") from None
    art.remove_temporaries(out)


def train(run: Run, where: Where) -> dict[str, Any]:
    """Train, write the run folder's artifacts, return the summary (rank 0's; others return theirs)."""
    L.seed_everything(run.recipe.seed, workers=True, verbose=False)
    net = run.spec.to_torch(run.recipe.seed)
    if run.recipe.init == "xavier":
        init_xavier(net, run.recipe.seed)
    model = Classifier(net, run.recipe.lr, len(run.data.val))  # type: ignore[arg-type]
    recorder = Recorder(run, where)
    stop = Stop()
    ckpt = str(where.out / "last.ckpt") if where.resume else None
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    trainer = None
    try:
        with _quiet():
            trainer = _trainer(run.recipe, where, [recorder, stop])
            # Data that fits in memory is decoded here, before the run folder is made: a damaged
            # image is an error (E702) with nothing written.
            train_dl, val_dl = _loaders(run, where, trainer.world_size)
            _make_out(where.out)
            with stop.handling_sigint():
                trainer.fit(model, train_dl, val_dl, ckpt_path=ckpt)
    except Interrupted:
        recorder.finish(trainer, "interrupted")
        raise
    except Exception as exc:
        why = data_error_message(exc)
        if why is None:
            raise
        if trainer is not None and (where.out / "summary.json").exists():
            recorder.finish(trainer, "failed")  # the folder says what happened, not "running"
        raise error("E702", why) from None
    finally:  # Lightning's deterministic="warn" is process-wide: leave the process as it was
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    return recorder.finish(trainer, "done")


def _trainer(recipe: Recipe, where: Where, callbacks: list[Callback]) -> L.Trainer:
    try:
        return L.Trainer(
            max_epochs=recipe.epochs, accelerator=where.device, devices=where.devices, strategy=where.strategy,
            precision=recipe.precision, callbacks=callbacks, default_root_dir=str(where.out),
            logger=False, enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
            deterministic="warn", check_val_every_n_epoch=1)
    except (MisconfigurationException, ValueError, RuntimeError, TypeError) as exc:
        raise io_error("E710", f"cannot train on --device {where.device} --devices {where.devices} --strategy "
                               f"{where.strategy} --precision {recipe.precision}: {foreign_text(exc)}") from None


def _loaders(run: Run, where: Where, world_size: int) -> tuple[DataLoader, DataLoader]:
    train, val = cached(run.data.train), cached(run.data.val)
    in_memory = train is not run.data.train and val is not run.data.val
    workers = where.workers if where.workers is not None else (0 if in_memory else min(4, os.cpu_count() or 1))
    opts: dict[str, Any] = {"batch_size": run.recipe.batch_size, "num_workers": workers}
    if workers:
        opts.update(persistent_workers=True, worker_init_fn=_ignore_sigint,
                    pin_memory=where.device != "cpu" and torch.cuda.is_available())
    if world_size > 1:  # Lightning puts a DistributedSampler in, seeded by seed_everything
        train_dl = DataLoader(train, shuffle=True, **opts)
    else:
        train_dl = DataLoader(train, sampler=EpochShuffle(len(train), run.recipe.seed), **opts)  # type: ignore
    return train_dl, DataLoader(Indexed(val), shuffle=False, **opts)


def _ignore_sigint(_worker: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop


class EpochShuffle(Sampler):
    """A random order that depends only on (seed, epoch): a resumed run sees the batches an unbroken one would."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at the start of every epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


@contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's own info lines (devices found, integration tips, restore notices) and hints meant for
    Lightning users (few workers, few batches) are not shown: archspec prints what a run did."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning, new torch
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class Recorder(Callback):
    """Per-epoch metrics, best and last weights, curves, the summary and the resume checkpoint."""

    def __init__(self, run: Run, where: Where) -> None:
        self.run, self.where = run, where
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self._t0 = self._tv = 0.0

    def state_dict(self) -> dict[str, Any]:  # saved in last.ckpt; the metadata makes it say what it is
        return {"history": self.history, "best": self.best, "metadata": self.run.metadata()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self.best = list(state["history"]), state["best"]

    def on_train_start(self, trainer, pl_module) -> None:
        # A resume that Lightning continues mid-epoch (a checkpoint from a run whose epochs had fewer
        # batches, as under DDP on more processes) calls no on_train_epoch_start: time from here.
        self._t0 = time.perf_counter()
        if not self.where.resume:  # a checkpoint from the start: a Ctrl-C in the first epoch can resume too
            self._checkpoint(trainer)
        if trainer.is_global_zero:
            self._write_summary(trainer, "running")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._tv = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        now = time.perf_counter()
        row = {"epoch": trainer.current_epoch + 1, **pl_module.metrics, "seconds": now - self._t0,
               "train_seconds": self._tv - self._t0}
        # an epoch Lightning re-enters on such a resume is recorded once, as it ends now
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]
        improved = self.best is None or row["val_acc"] > self.best["val_acc"]
        if improved:
            self.best = row
        if trainer.is_global_zero:
            out, meta = self.where.out, self.run.metadata()
            state = pl_module.net.state_dict()
            art.write_weights(out / "last.safetensors", state, {**meta, "archspec.epoch": str(row["epoch"])})
            if improved:
                art.write_weights(out / "best.safetensors", state, {**meta, "archspec.epoch": str(row["epoch"])})
            art.write_metrics(out / "metrics.csv", self.history)
            art.write_curves(out / "curves.png", self.history, f"{self.run.spec.name}, {self.run.data.source}")
        self._checkpoint(trainer)
        if trainer.is_global_zero:
            self._write_summary(trainer, "running")

    def _checkpoint(self, trainer) -> None:
        """Lightning's checkpoint, moved into place in one step (every process takes part in saving)."""
        final = self.where.out / "last.ckpt"
        tmp = final.parent / f".{final.name}.saving"
        try:
            trainer.save_checkpoint(str(tmp))
            if trainer.is_global_zero:
                os.replace(tmp, final)
        except OSError as exc:
            raise io_error("E001", f"cannot write `{final}`: {exc.strerror or exc}") from None

    def finish(self, trainer, status: str) -> dict[str, Any]:
        summary = self._summary(trainer, status)
        if trainer.is_global_zero:
            art.write_summary(self.where.out / "summary.json", summary)
        return summary

    def _write_summary(self, trainer, status: str) -> None:
        art.write_summary(self.where.out / "summary.json", self._summary(trainer, status))

    def _summary(self, trainer, status: str) -> dict[str, Any]:
        h = self.history
        train_time = sum(r["train_seconds"] for r in h)
        samples = len(self.run.data.train) * len(h)  # type: ignore[arg-type]
        return {
            "status": status, "epochs": len(h),
            "best_val_acc": self.best["val_acc"] if self.best else None,
            "best_epoch": self.best["epoch"] if self.best else None,
            "last_val_acc": h[-1]["val_acc"] if h else None,
            "seconds_per_epoch": sum(r["seconds"] for r in h) / len(h) if h else None,
            "samples_per_second": samples / train_time if train_time else None,
            "spec": self.run.spec_record(), "recipe": self.run.recipe.as_dict(),
            "data": {"source": absolute_source(self.run.data.source), "train": len(self.run.data.train),  # type: ignore
                     "val": len(self.run.data.val), "classes": self.run.data.classes,  # type: ignore
                     "preprocessing": self.run.data.preprocessing},
            "device": {"accelerator": type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
                       "devices": trainer.num_devices, "nodes": trainer.num_nodes,
                       "strategy": type(trainer.strategy).__name__, "threads": torch.get_num_threads()},
            "versions": versions(), "history": h,
        }


def versions() -> dict[str, str]:
    import torchvision

    return {"archspec": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "lightning": L.__version__}


def check_fit(spec, data: Data) -> None:
    """The network's output must be one score per class of the data."""
    k = len(data.classes)
    if tuple(spec.output_shape) != (k,):
        hint = f" (pass --set num_classes={k})" if "num_classes" in spec.network.arguments else ""
        raise error("E704", f"the network outputs {list(spec.output_shape)}, the data has {k} classes: the output "
                            f"must be [{k}]{hint}")
