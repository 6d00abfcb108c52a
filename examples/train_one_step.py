"""Load a spec as a torch module and train it for one SGD step on a random batch.

    python examples/train_one_step.py [SPEC]      (default specs/lenet.arch; run from the repo root)

The module is built from the source that `archspec compile -f python` writes, so what is
trained here is exactly what is compiled and exported.
"""

from __future__ import annotations

import sys

import torch
from torch.nn import functional as F

import archspec


def main(path: str = "specs/lenet.arch") -> None:
    spec = archspec.load(path)
    model = spec.to_torch(seed=0).train()
    print(spec)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, *spec.network.input_shape, generator=g)
    y = torch.randint(0, spec.output_shape[0], (4,), generator=g)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss() -> torch.Tensor:
        torch.manual_seed(0)  # the same dropout masks, if any, before and after the step
        return F.cross_entropy(model(x), y)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    print(f"loss before: {before.item():.4f}, after one SGD step: {after.item():.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
