"""Port the weights of torchvision's ResNet-18 into the module of specs/torchvision/resnet.arch (network resnet18).

    python examples/port_torchvision_weights.py      (run from the repo root)

torchvision.models.resnet18() is built with random weights (nothing is downloaded); a trained
checkpoint ports the same way, or with `archspec port-weights SPEC --from CKPT -o OUT.safetensors`.
port_weights maps tensors in execution order and checks every shape, so it works for source
modules whose names differ from the spec's; here the names happen to agree as well.
"""

from __future__ import annotations

import torch
import torchvision

import archspec
from archspec.export.weights import port_weights


def main() -> None:
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18().eval()
    spec = archspec.load("specs/torchvision/resnet.arch", network="resnet18")
    ours = spec.to_torch(seed=1).eval()

    x = torch.randn(2, *spec.network.input_shape, generator=torch.Generator().manual_seed(0))
    port_weights(ours, theirs, x[:1])
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
    print(f"ported {len(ours.state_dict())} tensors from torchvision.models.resnet18 into {spec.name}")
    print(f"max abs difference of the outputs: {diff:.3g}")
    if diff > 1e-5:
        raise SystemExit("the outputs disagree")


if __name__ == "__main__":
    main()
