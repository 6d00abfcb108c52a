"""`train --resume RUNDIR`: what the run in RUNDIR recorded, checked before anything continues it.

summary.json and last.ckpt are files a user can edit, copy over or damage. Every field a resume
reads is checked here, so a bad one is one E707 line that names it, never a traceback from
deep inside Lightning; and a resume that would continue the run on other data, or stop before
the epochs already trained, is an E708.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import io_error
from .artifacts import COLUMNS, read_summary
from .recipe import Recipe, Source, conflicts, parse_source
from .unpack import default_root


@dataclass(frozen=True)
class Recorded:
    """The run in a folder, as its summary.json and last.ckpt record it."""

    out: Path
    recipe: Recipe
    spec: dict[str, Any]  # network, sha256, overrides (str -> str), input (list of ints)
    source: Source
    train: int  # the sizes and classes of the data it was trained on
    val: int
    classes: list[str]
    done: int  # epochs finished, as last.ckpt records them


def _is_int(lo: int | None = None) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and (lo is None or v >= lo)


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _is_lr(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and v > 0


RECIPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr": (_is_lr, "a positive number"),
    "epochs": (_is_int(1), "a positive integer"),
    "batch_size": (_is_int(1), "a positive integer"),
    "resize": (lambda v: v is None or _is_int(1)(v), "null or a positive integer"),
    "init": (lambda v: v in ("xavier", "default"), '"xavier" or "default"'),
    "seed": (lambda v: _is_int(0)(v) and v < 2**32, "an integer from 0 to 2**32 - 1"),
    "precision": (lambda v: v in ("32", "bf16-mixed"), '"32" or "bf16-mixed"'),
    "preset": (lambda v: v in (None, "book"), 'null or "book"'),
}
SPEC_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "network": (_is_str, "a network name"),
    "sha256": (_is_str, "a sha256"),
    "overrides": (lambda v: isinstance(v, dict) and all(_is_override(k, x) for k, x in v.items()),
                  "an object of NAME: VALUE strings, each VALUE an expression as archspec records it"),
    "input": (lambda v: isinstance(v, list) and bool(v) and all(_is_int(1)(n) for n in v),
              "a list of positive integers"),
}
DATA_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "source": (lambda v: _is_str(v) and _parses(v), "fashion-mnist[:ROOT] or imagefolder:DIR"),
    "train": (_is_int(0), "a count of images"),
    "val": (_is_int(0), "a count of images"),
    "classes": (lambda v: isinstance(v, list) and bool(v) and all(_is_str(c) for c in v), "a list of class names"),
}


def _is_override(key: Any, value: Any) -> bool:
    """An override read back from a run folder is checked as a `--set` on the command line is: a name,
    and a value that parses as an expression and is written as archspec writes one (no comment)."""
    from ..errors import ArchError
    from ..parse import parse_expr
    from ..render import render_expr

    if not (isinstance(key, str) and key.isidentifier() and _is_str(value)):
        return False
    try:
        return render_expr(parse_expr(value, "<summary.json>")) == value
    except (ArchError, RecursionError):
        return False


def _parses(text: str) -> bool:
    try:
        parse_source(text)
    except ValueError:
        return False
    return True


def read_run(out: Path) -> Recorded:
    """The run in `out`: summary.json's fields checked (E707), and last.ckpt loaded and checked (E707)."""
    if not (out / "last.ckpt").is_file():
        raise io_error("E707", f"`{out}` holds no checkpoint to resume (no last.ckpt)")
    path = out / "summary.json"
    rec = read_summary(path)
    if not isinstance(rec, dict):
        raise _bad(path, "it is not a JSON object")
    sections = {name: _section(rec, name, checks, path)
                for name, checks in (("recipe", RECIPE_CHECKS), ("spec", SPEC_CHECKS), ("data", DATA_CHECKS))}
    recipe = Recipe.from_dict(sections["recipe"])
    spec, data = sections["spec"], sections["data"]
    done = _checkpoint_epochs(out / "last.ckpt", spec)
    if recipe.epochs < done:
        raise _bad(path, f"recipe.epochs is {recipe.epochs} but last.ckpt holds {done} epochs")
    return Recorded(out, recipe, spec, parse_source(data["source"]), data["train"], data["val"],
                    list(data["classes"]), done)


def _section(rec: dict[str, Any], name: str, checks: dict[str, tuple[Callable[[Any], bool], str]],
             path: Path) -> dict[str, Any]:
    section = rec.get(name)
    if not isinstance(section, dict):
        raise _bad(path, f"it has no `{name}` object")
    for key, (ok, what) in checks.items():
        if key not in section:
            raise _bad(path, f"`{name}.{key}` is missing")
        if not ok(section[key]):
            raise _bad(path, f"`{name}.{key}` is {_show(section[key])}, expected {what}")
    return section


def _show(value: Any) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(path: Path, why: str):
    return io_error("E707", f"cannot resume from `{path.parent}`: its {path.name} is damaged ({why}); "
                            "resume only a folder written by `archspec train`")


def _checkpoint_epochs(path: Path, spec: dict[str, Any]) -> int:
    """Load last.ckpt as Lightning will (weights only, no code run), check it is this run's; its epochs."""
    import torch

    from ..errors import ArchError
    from ..export.weights import check_size

    params = spec.get("params")
    try:
        check_size(str(path), 4 * params if isinstance(params, int) and params >= 0 else None)
    except ArchError as exc:
        raise _bad(path, exc.diagnostics[0].message) from None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise io_error("E707", f"cannot read `{path}`: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001  (a damaged file fails in many ways: unpickling, zip, EOF)
        raise _bad(path, f"it is not a readable PyTorch checkpoint: {type(exc).__name__}") from None
    callbacks = ckpt.get("callbacks") if isinstance(ckpt, dict) else None
    state = callbacks.get("Recorder") if isinstance(callbacks, dict) else None
    if not (isinstance(state, dict) and isinstance(ckpt.get("state_dict"), dict) and "loops" in ckpt
            and isinstance(state.get("history"), list) and isinstance(state.get("metadata"), dict)):
        raise _bad(path, "it is not a checkpoint written by `archspec train`")
    meta = state["metadata"]
    if (meta.get("archspec.spec_sha256"), meta.get("archspec.input")) != (spec["sha256"],
                                                                          ",".join(map(str, spec["input"]))):
        raise _bad(path, "it is the checkpoint of another spec or input size than summary.json records")
    history = state["history"]
    if not all(isinstance(r, dict) and r.get("epoch") == i + 1 and {*COLUMNS, "train_seconds"} <= set(r)
               for i, r in enumerate(history)):
        raise _bad(path, "its per-epoch history is not one row per epoch")
    return len(history)


def check_epochs(rec: Recorded, epochs: int) -> None:
    """A resumed run trains up to `epochs` in all: no fewer than it has already trained."""
    if epochs < rec.done:
        raise io_error("E708", f"--epochs {epochs} is fewer than the {rec.done} epochs the run in {rec.out} has "
                               f"already trained; pass --epochs {rec.done} or more to continue it")


def same_source(a: Source, b: Source) -> bool:
    """Whether two data sources name the same place (fashion-mnist alone is the default root)."""
    def where(s: Source) -> Path:
        return Path(s.path or (default_root() if s.kind == "fashion-mnist" else ".")).expanduser().resolve()

    return a.kind == b.kind and where(a) == where(b)


def check_source(rec: Recorded, source: Source) -> None:
    """--data on --resume may only repeat the data the run was trained on."""
    if not same_source(source, rec.source):
        raise io_error("E708", f"--resume {rec.out} continues the run on the data it was trained on, "
                               f"{rec.source}; --data {source} differs (drop --data, or start a new run with -o)")


def check_data(rec: Recorded, data: Any) -> None:
    """The data loaded for a resume must be the data the run recorded: the same sizes and classes."""
    now, then = (len(data.train), len(data.val), list(data.classes)), (rec.train, rec.val, rec.classes)
    if now == then:
        return
    if now[:2] == then[:2]:
        why = f"its classes are {', '.join(now[2])}, the run's were {', '.join(then[2])}"
    else:
        why = (f"it holds {now[0]} training and {now[1]} validation images, the run was trained on {then[0]} "
               f"and {then[1]}")
    raise io_error("E708", f"the data in {data.source} has changed since the run in {rec.out} was trained: {why}; "
                           "start a new run with -o")


def resumed(out: Path, spec: Any, recipe: Recipe, source: Source) -> Recorded:
    """The run in `out`, checked for continuing it with `spec`, `recipe` and `source` (archspec.train.fit)."""
    from ..codegen import spec_hash

    rec = read_run(out)
    used = rec.spec
    if (spec_hash(spec.sources.texts), list(spec.network.input_shape)) != (used["sha256"], used["input"]):
        raise io_error("E708", f"the spec is not the one the run in {out} was trained from (its sha256 or input "
                               "differs): resume with the same spec")
    bad = conflicts(rec.recipe, recipe.as_dict())
    if bad:
        raise io_error("E708", f"the run in {out} continues with the recipe it recorded; these differ: "
                               + "; ".join(bad))
    check_epochs(rec, recipe.epochs)
    check_source(rec, source)
    return rec
