"""The LightningModule: a compiled spec trained with the book's recipe.

Plain SGD, mean cross-entropy, uint8 pixels scaled to [0, 1] on the device. Validation loss and
accuracy are exact over the whole validation set, also under DDP: its sampler pads the set with
repeated samples so that every process gets as many, so each process records per-sample
results at their dataset index, and the records are merged index by index (a maximum).
"""

from __future__ import annotations

import lightning as L
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F


def init_xavier(net: nn.Module, seed: int) -> nn.Module:
    """The book's init_cnn: Xavier-uniform weights for every Conv2d and Linear; biases as torch made them."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in net.modules():
            if type(m) in (nn.Conv2d, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
    return net


def scale(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> [0, 1]: ToTensor's exact arithmetic (float, then divide by 255)."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


class Classifier(L.LightningModule):
    """`net` (the spec's module) with SGD at `lr`; `num_val` is the size of the validation set."""

    def __init__(self, net: nn.Module, lr: float, num_val: int) -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.num_val = num_val
        self.metrics: dict[str, float] = {}
        self._train = torch.zeros(2, dtype=torch.float64)  # loss sum, samples
        self._val = torch.zeros(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(scale(x))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)  # no momentum, no weight decay: the book's

    def on_train_epoch_start(self) -> None:
        self._train = torch.zeros(2, dtype=torch.float64, device=self.device)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self._train += torch.stack([loss.detach().double() * len(y), self._train.new_tensor(len(y))])
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, logger=False)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._sync_buffers()
        # rows: loss, correct, seen; one column per validation sample
        self._val = torch.zeros(3, self.num_val, device=self.device)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, i = batch
        logits = self(x)
        self._val[0, i] = F.cross_entropy(logits.float(), y, reduction="none")
        self._val[1, i] = (logits.argmax(1) == y).float()
        self._val[2, i] = 1.0

    def on_validation_epoch_end(self) -> None:
        merged = self._val
        if _distributed():  # a sample seen by several processes (padding) counts once: its values are equal
            dist.all_reduce(merged, op=dist.ReduceOp.MAX)
        seen = int(merged[2].sum())
        if seen != self.num_val:
            raise RuntimeError(f"validation saw {seen} of {self.num_val} samples")
        train = self.trainer.strategy.reduce(self._train.clone(), reduce_op="sum")
        self.metrics = {"train_loss": float(train[0] / train[1]) if train[1] else float("nan"),
                        "val_loss": float(merged[0].sum()) / self.num_val,
                        "val_acc": int(merged[1].sum()) / self.num_val,
                        "val_correct": int(merged[1].sum())}
        self.log("val_acc", self.metrics["val_acc"], prog_bar=True, logger=False, rank_zero_only=True)

    def _sync_buffers(self) -> None:
        """Under DDP, give every process rank 0's buffers (batch-norm statistics) before validating.

        DDP broadcasts buffers before each training forward, and that forward then updates
        each process's copy from its own batch; without this, processes would validate with
        slightly different statistics than the weights rank 0 saves.
        """
        if _distributed():
            for buf in self.net.buffers():
                dist.broadcast(buf, src=0)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def evaluate(net: nn.Module, loader) -> tuple[int, int]:
    """(correct, total) of `net` in eval mode over a loader of (x, y[, index]) batches, in one process."""
    was = net.training
    net.eval()
    correct = total = 0
    for batch in loader:
        x, y = batch[0], batch[1]
        correct += int((net(scale(x)).argmax(1) == y).sum())
        total += len(y)
    net.train(was)
    return correct, total
