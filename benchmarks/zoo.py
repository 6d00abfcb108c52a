"""The model zoo as the benchmarks see it: which file holds a network, and torchvision's model of that name.

specs/torchvision/ holds one file per family, each with several networks named as torchvision's
builders (resnet.arch: resnet18 ... wide_resnet101_2), loaded as `archspec.load(file, network=name)`.
`index()` maps every network there to its file, as tests/test_torchvision.py's `_index()` does.
Nothing here imports torch until torchvision's own model is asked for, so bench_static's timed
workers can use it on the static path.
"""

from __future__ import annotations

import functools
import glob
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO_GLOBS = ("specs/*.arch", "specs/torchvision/*.arch")
TORCHVISION_GLOB = "specs/torchvision/*.arch"

# The torchvision networks the benchmarks compared from the start (one file each, back then).
CLASSIC = ("vgg11", "resnet18", "resnet50", "resnext50_32x4d")
# One network of each family the issues "The language grows past the book" and "Past classification
# CNNs" added: the variant people use most, small enough to time on two CPU cores.
NEW = ("mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf", "convnext_tiny", "densenet121",
       "vit_b_16", "swin_t", "deeplabv3_mobilenet_v3_large")
GROUPS = {"classic": CLASSIC, "new": NEW}

# The segmentation networks and the FPN backbone take any size ([3, H, W]); the benchmarks fix one.
# torchvision's references run segmentation at 520x520: on two CPU cores 224x224 (a fifth of the
# pixels) keeps a run to minutes. Stated in every results file that uses it.
SYMBOLIC_INPUT = (3, 224, 224)
FPN = "resnet50_fpn_backbone"


def networks_of(path: str) -> list[str]:
    """The networks a file defines itself (not those it imports), in the order written."""
    from archspec.errors import Sources
    from archspec.loader import load_file

    program = load_file(str(REPO / path), Sources())
    return [n for n in program.own if program.definitions[n].kind == "network"]


def zoo(patterns: tuple[str, ...] = ZOO_GLOBS) -> list[tuple[str, str]]:
    """(file relative to the repository, network) for every network of the zoo, file by file."""
    return [(path, name) for pattern in patterns for path in sorted(glob.glob(pattern, root_dir=REPO))
            for name in networks_of(path)]


@functools.cache
def index() -> dict[str, str]:
    """torchvision network name -> the family file of specs/torchvision/ that defines it."""
    return {name: path for path, name in zoo((TORCHVISION_GLOB,))}


def family_file(name: str) -> str:
    try:
        return index()[name]
    except KeyError:
        raise SystemExit(f"no network {name!r} in {TORCHVISION_GLOB}") from None


def has_builder(name: str) -> bool:
    """Whether torchvision builds a model of this name (the family files also hold generic networks, such
    as `vision_transformer`, that the builders are variants of)."""
    import torchvision
    from torchvision.models import segmentation

    return name == FPN or name in torchvision.models.list_models(module=torchvision.models) or \
        name in torchvision.models.list_models(module=segmentation)


def select(names: str) -> list[str]:
    """A comma-separated list of torchvision networks and groups (`classic`, `new`, `all`: every network of
    specs/torchvision/ that torchvision builds), in order, without repeats."""
    out: list[str] = []
    for item in filter(None, (n.strip() for n in names.split(","))):
        if item == "all":
            out += [n for n in index() if has_builder(n)]
        else:
            out += GROUPS.get(item, (item,))
    for name in out:
        family_file(name)  # unknown names fail here, before any work
    return list(dict.fromkeys(out))


def input_of(name: str) -> tuple[int, ...] | None:
    """The input the benchmarks give a network: its spec's own, or SYMBOLIC_INPUT where that is symbolic."""
    return SYMBOLIC_INPUT if family_file(name).endswith(("segmentation.arch", "fpn.arch")) else None


def load(name: str, **kwargs):
    """torchvision's network `name` from its family file, at the benchmarks' input."""
    import archspec

    kwargs.setdefault("input", input_of(name))
    return archspec.load(str(REPO / family_file(name)), network=name, **kwargs)


def torchvision_model(name: str):
    """torchvision's own model of the same name as the spec builds it (random weights; nothing is downloaded):
    the segmentation builders without backbone weights and with the aux head where they have one."""
    import torchvision
    from torchvision.models import segmentation

    if name == FPN:
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

        model = resnet_fpn_backbone(backbone_name="resnet50", weights=None)
    elif name in torchvision.models.list_models(module=segmentation):
        extra = {} if name.startswith("lraspp") else {"aux_loss": True}
        model = getattr(segmentation, name)(weights=None, weights_backbone=None, **extra)
    else:
        model = getattr(torchvision.models, name)(weights=None)
    return without_zero_weights(model)


def without_zero_weights(model):
    """Weights that torchvision initialises to zeros (ViT's head) drawn from N(0, 0.02) instead: a zero head
    makes every output zero, and a comparison of outputs would prove nothing. Costs nothing in time."""
    import torch

    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def first_output(y):
    """A model's first output: the tensor itself, `out` of a segmentation model's dict, a tuple's first."""
    if isinstance(y, dict):
        return next(iter(y.values()))
    return y[0] if isinstance(y, (tuple, list)) else y


def output_names(y) -> list[str]:
    """Names for an ONNX export of a model whose output is `y`: the dict's keys, or `logits`."""
    return [str(k) for k in y] if isinstance(y, dict) else ["logits"]
