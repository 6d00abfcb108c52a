"""Checkpoints: read a state_dict or safetensors file safely, fit it to a spec's module, port weights.

A checkpoint is read with `weights_only=True`: a pickle that would run code is refused. One
that does not fit gets one error naming the missing, unexpected or mis-shaped keys.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import ArchError, Diagnostic, Span, error, io_error

SHOWN = 5  # keys listed per kind of problem


def read_checkpoint(path: str, expected_bytes: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state_dict, metadata) from a torch `.pth`/`.pt` state_dict or a `.safetensors` file.

    `expected_bytes` is what the network's own state takes; a checkpoint that would take much more
    once read (a zip archive's entries are sized before anything is decompressed) is refused."""
    p = Path(path)
    if p.is_dir():
        raise io_error("E006", f"`{path}` is a directory, not a checkpoint", Span(path))
    if not p.exists():
        raise io_error("E001", "no such checkpoint file", Span(path))
    check_size(path, expected_bytes)
    with open(p, "rb") as fh:
        head = fh.read(16)
    if _looks_like_safetensors(head):
        return _read_safetensors(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the errors below say enough
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if _refused_global(str(exc)):
            raise error("E603", "refusing to load this checkpoint: it holds Python objects beyond tensors, "
                                "which could run code (read with weights_only=True)", Span(path),
                        "save the weights with torch.save(model.state_dict(), path) or as safetensors") from None
        raise error("E602", "not a checkpoint: neither a torch state_dict nor a safetensors file", Span(path)) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, ImportError, IndexError, KeyError,
            TypeError, UnicodeDecodeError) as exc:
        raise error("E602", f"not a checkpoint: neither a torch state_dict nor a safetensors file "
                            f"({type(exc).__name__})", Span(path)) from None
    return _state_dict_of(obj, path), {}


def state_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def check_size(path: str, expected_bytes: int | None = None) -> None:
    """Refuse, before reading it, a checkpoint that is not a regular file (E007), or that would take more
    memory than a checkpoint of this network can (a few times its own state, for optimizer state and
    other precisions) or than this machine has (E602): torch's zip archives are sized by their entries,
    so a small zip bomb is refused without a byte of it decompressed."""
    import os
    import stat
    import zipfile

    from ..codegen.build import available_memory

    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise io_error("E007", f"`{path}` is not a regular file: a checkpoint must be one", Span(path))
    size = st.st_size
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                size = sum(info.file_size for info in zf.infolist())
        except (zipfile.BadZipFile, OSError, ValueError):
            raise error("E602", "not a checkpoint: a damaged zip archive", Span(path)) from None
    have = available_memory()
    limits = [(have, "this machine has available")] if have else []
    if expected_bytes is not None:
        limits.append((4 * expected_bytes + (64 << 20), "a checkpoint of this network can need"))
    for limit, what in limits:
        if size > limit:
            raise error("E602", f"refusing to read this checkpoint: it would take {size / 2**20:,.1f} MiB once read, "
                                f"more than the {limit / 2**20:,.1f} MiB {what}", Span(path))


def _refused_global(message: str) -> bool:
    """Whether torch refused a GLOBAL naming a real class or function: what a pickle runs code with.

    Every weights_only failure carries the same banner; garbage fails on other opcodes, or on a
    "global" whose name is no Python name (text that happens to start with the GLOBAL opcode `c`).
    """
    m = re.search(r"GLOBAL (\S+) (?:was not|whose module)", message)
    return m is not None and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", m.group(1)) is not None


def _looks_like_safetensors(head: bytes) -> bool:
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def _read_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, dict(meta)
    except (SafetensorError, OSError, ValueError) as exc:
        raise error("E602", f"not a readable safetensors file: {exc}", Span(path)) from None


def _state_dict_of(obj: Any, path: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a state_dict, or one under `state_dict`/`model` (Lightning and co.)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):  # {}: no weights
        raise error("E602", "not a state_dict: expected a mapping of names to tensors", Span(path))
    for prefix in ("module.", "model.", "net."):
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return dict(obj)


def fit(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load a state_dict strictly, or raise E601 naming what is missing, unexpected or mis-shaped, or E611
    naming a tensor whose values cannot be the network's (not finite, or not a float for a float one)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [f"{k} (checkpoint {list(state[k].shape)}, network {list(own[k].shape)})"
                 for k in own if k in state and state[k].shape != own[k].shape]
    notes = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if keys:
            more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
            notes.append(f"{what} ({len(keys)}): " + ", ".join(keys[:SHOWN]) + more)
    if notes:
        raise ArchError(Diagnostic("E601", "the checkpoint does not fit this network", Span(where), tuple(notes)))
    check_values(state, own, where)
    with torch.no_grad():
        module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def check_values(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], where: str) -> None:
    """E611 for the first tensor, in the network's order, that a float tensor of the network cannot take:
    an integer, bool or complex tensor (its values would be cast or refused), or NaN or infinite values."""
    for key, mine in own.items():
        theirs = state[key]
        if not mine.is_floating_point():
            continue
        if not theirs.is_floating_point():
            raise error("E611", f"the checkpoint's `{key}` is a {str(theirs.dtype).removeprefix('torch.')} tensor; "
                                f"the network's is {str(mine.dtype).removeprefix('torch.')}", Span(where))
        finite = torch.isfinite(theirs)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            found = (("NaN", torch.isnan), ("infinite", torch.isinf))
            kinds = " and ".join(k for k, f in found if bool(f(theirs).any()))
            raise error("E611", f"the checkpoint's `{key}` holds {bad:,} {kinds} value{'s' * (bad != 1)} of "
                                f"{theirs.numel():,}", Span(where))


def check_metadata(meta: dict[str, str], input_shape: tuple[int, ...], where: str) -> None:
    """Refuse a checkpoint that archspec trained for another input size."""
    trained = meta.get("archspec.input")
    if trained and any(not isinstance(d, int) for d in input_shape):  # `input [3, H, W]`: weights fit any size
        dims = trained.split(",")
        if len(dims) == len(input_shape) and all(not isinstance(d, int) or str(d) == t
                                                 for d, t in zip(input_shape, dims)):
            return
    if trained and trained != ",".join(map(str, input_shape)):
        raise error("E601", f"the checkpoint was trained for input {trained.replace(',', 'x')}, not "
                            f"{'x'.join(map(str, input_shape))}", Span(where),
                    "pass the same --input (or --set) the network was trained with")


def _stateful_in_order(module: torch.nn.Module, example: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(key, tensor) of every parameter and buffer, module by module in execution order."""
    order: list[str] = []
    names = {m: n for n, m in module.named_modules()}
    hooks = [m.register_forward_pre_hook(lambda m, a: order.append(names[m]) if names[m] not in order else None)
             for m in module.modules() if any(True for _ in m.parameters(recurse=False))
             or any(True for _ in m.buffers(recurse=False))]
    was = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(example)
    finally:
        module.train(was)
        for h in hooks:
            h.remove()
    out = []
    for name in order:
        sub = module.get_submodule(name)
        prefix = f"{name}." if name else ""
        out += [(prefix + k, v) for k, v in sub.state_dict(keep_vars=False).items() if "." not in k]
    return out


def port_weights(target: torch.nn.Module, source: torch.nn.Module | dict[str, torch.Tensor] | str,
                 example: torch.Tensor | None = None, where: str = "<source>") -> dict[str, torch.Tensor]:
    """Map a source's parameters and buffers onto `target`, checking every shape: by name first, where a
    name is the target's and the shapes agree, then the rest in execution order.

    `target` is a module built from a spec (`spec.to_torch()`, or the class of a compiled `.py`);
    `source` is a torch module, a state_dict, or the path of a checkpoint file. `example` is an
    input that runs both, to find the execution order; by default a batch of 2 of the spec's
    input shape (the `INPUT_SHAPE` of the generated source). A state_dict has no execution order,
    only the order it holds its tensors in: where that order alone would have to pair tensors of
    equal shape, the pairing is a guess, and it is refused (E601) rather than made. Returns the
    target's new state_dict (also loaded into `target`); raises E601 at the first mismatch.
    """
    if example is None:
        example = _default_example(target)
    if isinstance(source, str):
        where = source
        source, _ = read_checkpoint(source, state_bytes(target))
    ours = _stateful_in_order(target, example)
    how = "tensors are matched by name where the names agree, the rest in execution order"
    ordered = isinstance(source, torch.nn.Module)
    if ordered:
        theirs = _stateful_in_order(source, example)
    else:
        how = ("tensors are matched by name where the names agree; the rest of a state_dict in the order it holds "
               "them (a safetensors file sorts them by name), the network's in execution order")
        theirs = list(source.items())
    named, ours, theirs = _by_name(ours, theirs)
    if not ordered:
        _refuse_ambiguous(ours, theirs, where)
    count = (f"the source has {len(theirs)} parameter and buffer tensors, the network {len(ours)}"
             if len(theirs) != len(ours) else "")
    mapped = dict(named)
    for (k, v), (sk, sv) in zip(ours, theirs):
        if v.shape != sv.shape:
            raise error("E601", f"cannot port: `{sk}` {list(sv.shape)} does not fit `{k}` {list(v.shape)}",
                        Span(where), how, *([count] if count else []))
        mapped[k] = sv.detach().clone()
    if count:  # every pair fits: name the first tensor left without a partner
        k, v = ours[len(theirs)] if len(ours) > len(theirs) else theirs[len(ours)]
        side = "the network's" if len(ours) > len(theirs) else "the source's"
        raise error("E601", f"cannot port: {side} `{k}` {list(v.shape)} has no counterpart; {count}",
                    Span(where), how)
    fit(target, mapped, where)
    return target.state_dict()


def _by_name(ours: list, theirs: list) -> tuple[dict, list, list]:
    """The tensors whose names both sides have, with the same shape, paired; and the rest of each side."""
    mine = dict(ours)
    named = {k: v.detach().clone() for k, v in theirs if k in mine and mine[k].shape == v.shape}
    return named, [(k, v) for k, v in ours if k not in named], [(k, v) for k, v in theirs if k not in named]


def _refuse_ambiguous(ours: list, theirs: list, where: str) -> None:
    """Refuse to pair by a state_dict's order where tensors of equal shape would be told apart by it alone."""
    for side, tensors in (("the network", ours), ("the checkpoint", theirs)):
        seen: dict[tuple, str] = {}
        for k, v in tensors:
            shape = tuple(v.shape)
            if shape in seen and len(ours) > 1 and len(theirs) > 1:
                raise error("E601", f"cannot port by order: {side} has `{seen[shape]}` and `{k}` of the same shape "
                                    f"{list(shape)} left without a partner of the same name, so the order of a "
                                    "state_dict alone would decide which is which", Span(where),
                            "port from the source module (its execution order decides), or rename the "
                            "checkpoint's tensors to the network's names")
            seen.setdefault(shape, k)


def _default_example(target: torch.nn.Module) -> torch.Tensor:
    import sys

    from .pt2 import example_input

    shape = getattr(sys.modules.get(type(target).__module__), "INPUT_SHAPE", None)
    if shape is None:
        raise error("E601", f"cannot tell the input shape of {type(target).__name__}: pass `example`, an input "
                            "tensor that both networks take")
    return example_input(tuple(shape), 2)


def save_ported(spec, source: str, out: str) -> int:
    """`archspec port-weights`: a checkpoint mapped onto the spec's module, written as safetensors."""
    from safetensors.torch import save_file

    from ..codegen import build_module, spec_hash
    from ..files import atomic_write, check_output_file
    from .pt2 import example_input

    check_output_file(out)  # before any work: a folder, a link, a missing or read-only folder
    module = build_module(spec)
    state = port_weights(module, source, example_input(spec.network.input_shape, 2))
    meta = {"archspec.network": spec.name, "archspec.spec_sha256": spec_hash(spec.sources.texts),
            "archspec.input": ",".join(map(str, spec.network.input_shape))}
    tensors = {k: v.contiguous() for k, v in state.items()}
    atomic_write(out, lambda tmp: save_file(tensors, tmp, metadata=meta))  # with the umask's mode, as any output
    return len(tensors)
