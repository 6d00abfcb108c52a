"""Ctrl-C during training: stop at the next batch boundary, on every process at the same batch.

A SIGINT only sets a flag; a callback raises `Interrupted` at the end of the batch, after the
optimizer step and outside any file write, so the run folder holds whole files only: the
checkpoint of the last finished epoch. Under DDP the flag is reduced across processes every
few batches, so a signal to one process (rank 0, say) stops all of them at the same step
rather than leaving the others waiting in a collective. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

EVERY = 10  # under DDP, batches between two checks: each costs a collective and a device sync


class Interrupted(Exception):
    """Raised at a batch boundary after SIGINT, so the run stops between two consistent states."""


class Stop(Callback):
    """Turns SIGINT into `Interrupted` at the next batch boundary, on every process at the same batch."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def handling_sigint(self) -> Iterator[None]:
        if not _main_thread():  # signals reach the main thread only
            yield
            return
        old = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:
            raise Interrupted("interrupted again: stopped at once")
        self.requested = True
        print("\narchspec: stopping after this batch (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._check(trainer, pl_module, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, *args) -> None:
        self._check(trainer, pl_module, batch_idx)

    def _check(self, trainer, pl_module, batch_idx: int) -> None:
        flag = self.requested
        if trainer.world_size > 1 and dist.is_initialized():  # one process's Ctrl-C stops them all here
            if batch_idx % EVERY:
                return
            t = torch.tensor([float(flag)], device=pl_module.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item())
        if flag:
            raise Interrupted("interrupted")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
