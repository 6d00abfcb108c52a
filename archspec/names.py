"""One namespace for every name archspec generates, and the rules for the names a spec writes.

A spec's module names (labels) become attribute names of nn.Modules and so state_dict keys:
they are kept exactly, and Python reaches them with `getattr(self, "block1-0")` where a plain
`self.name` would not parse or would be name-mangled (`self.__conv` inside a class). The only
labels refused are those torch itself cannot take: an attribute every nn.Module already has
(`forward`, `_modules`, `__dict__`), a name with a `.`, the empty name, and the names that
TorchScript cannot save (Python keywords, characters outside printable ASCII).

Every other generated identifier (classes, constructor parameters, local variables) comes
from a Namespace, as torch.fx's `_Namespace`: a valid identifier, never a keyword, a builtin,
a name the generated file imports or defines, and unique in its scope. No torch import here:
the static checker uses these rules too.
"""

from __future__ import annotations

import builtins
import keyword
import re

from .escape import py_string

# dir(torch.nn.Module()) for torch 2.14 (tests/test_names.py checks it against the installed torch):
# a submodule, parameter or buffer cannot take any of these names.
MODULE_ATTRIBUTES = frozenset("""
T_destination __annotations__ __call__ __class__ __delattr__ __dict__ __dir__ __doc__ __eq__ __format__ __ge__
__getattr__ __getattribute__ __getstate__ __gt__ __hash__ __init__ __init_subclass__ __le__ __lt__ __module__
__ne__ __new__ __reduce__ __reduce_ex__ __repr__ __setattr__ __setstate__ __sizeof__ __str__ __subclasshook__
__weakref__ _apply _backward_hooks _backward_pre_hooks _buffers _call_impl _compiled_call_impl _forward_hooks
_forward_hooks_always_called _forward_hooks_with_kwargs _forward_pre_hooks _forward_pre_hooks_with_kwargs
_get_backward_hooks _get_backward_pre_hooks _get_name _is_full_backward_hook _load_from_state_dict
_load_state_dict_post_hooks _load_state_dict_pre_hooks _maybe_warn_non_full_backward_hook _modules
_named_members _non_persistent_buffers_set _parameters _register_load_state_dict_pre_hook
_register_state_dict_hook _replicate_for_data_parallel _save_to_state_dict _slow_forward _state_dict_hooks
_state_dict_pre_hooks _version _wrapped_call_impl add_module apply bfloat16 buffers call_super_init children
compile cpu cuda double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
get_submodule half ipu load_state_dict modules mtia named_buffers named_children named_modules
named_parameters parameters register_backward_hook register_buffer register_forward_hook
register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module register_parameter
register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule
share_memory state_dict to to_empty train training type xpu zero_grad
""".split())

# The names a generated file imports or defines at its top level, besides its classes.
FILE_GLOBALS = frozenset({"torch", "nn", "MODEL", "INPUT_SHAPE", "INPUT_SIZES", "OUTPUT_NAMES", "__all__"})
# Modules the generated file imports: a network of that name would write `torch.py`, which
# shadows the package for any script run beside it.
IMPORTED_MODULES = frozenset({"torch"})
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | FILE_GLOBALS


def label_problem(name: str) -> str | None:
    """Why `name` cannot name a submodule (so a state_dict key segment), or None if it can."""
    if not name:
        return "a module name cannot be empty"
    if "." in name:
        return "a module name cannot hold `.`: it separates the parts of a state_dict key"
    if name in MODULE_ATTRIBUTES:
        return "every torch.nn.Module has an attribute of that name"
    if name.startswith("__") and name.endswith("__"):
        return "names of the form `__x__` are reserved by Python"
    if keyword.iskeyword(name):
        return "it is a Python keyword, which TorchScript cannot save as a module name"
    if not name.isascii() or not name.isprintable():
        return "TorchScript saves only module names of printable ASCII characters"
    return None


def network_problem(name: str) -> str | None:
    """Why a network cannot have this name (its files are named after it), or None."""
    if name in IMPORTED_MODULES:
        return f"the generated `{name}.py` would shadow the `{name}` package it imports"
    return None


def plain_attribute(name: str) -> bool:
    """Whether `self.name` reaches the attribute `name`: an ASCII identifier, no keyword, not mangled."""
    return (name.isascii() and name.isidentifier() and not keyword.iskeyword(name)
            and not (name.startswith("__") and not name.endswith("__")))


def attribute(owner: str, name: str) -> str:
    """The expression for attribute `name` of `owner`: `self.conv1` or `getattr(self, "block1-0")`."""
    return f"{owner}.{name}" if plain_attribute(name) else f"getattr({owner}, {py_string(name)})"


def set_attribute(owner: str, name: str, value: str) -> str:
    """The statement that makes `value` the submodule `name` of `owner`."""
    if plain_attribute(name):
        return f"{owner}.{name} = {value}"
    return f"{owner}.add_module({py_string(name)}, {value})"


_NOT_WORD = re.compile(r"[^0-9A-Za-z_]+")


def identifier(text: str, fallback: str = "value") -> str:
    """`text` made into an ASCII identifier: other characters become `_`, a leading digit gets the fallback."""
    name = _NOT_WORD.sub("_", text).strip("_") if not (text.isascii() and text.isidentifier()) else text
    if not name:
        return fallback
    return f"{fallback}_{name}" if name[0].isdigit() else name


def camel(name: str, fallback: str = "Net") -> str:
    """`basic_block` -> `BasicBlock`, as a class name; a part starting with a digit keeps an underscore."""
    out = ""
    for p in (p for p in _NOT_WORD.sub("_", name).split("_") if p):
        out += ("_" if out and p[0].isdigit() else "") + p[0].upper() + p[1:]
    if not out:
        return fallback
    return fallback + out if out[0].isdigit() else out


class Namespace:
    """Unique identifiers in one scope; a child scope also avoids everything its parent has given out."""

    def __init__(self, parent: Namespace | None = None, reserved: frozenset[str] | set[str] = RESERVED) -> None:
        self.parent = parent
        self.reserved = set(reserved)
        self.taken: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.taken or name in self.reserved or (self.parent is not None and name in self.parent)

    def take(self, name: str) -> None:
        """Claim a name the generator writes itself (`x`, `self`)."""
        self.taken.add(name)

    def create(self, candidate: str, fallback: str = "value") -> str:
        """A fresh identifier like `candidate`: sanitised, then `_` or a number appended until free."""
        base = identifier(candidate, fallback)
        if base in self and base + "_" not in self and (keyword.iskeyword(base) or base in RESERVED):
            base = base + "_"  # `lambda` -> `lambda_`, as PEP 8 suggests
        name, i = base, 2
        while name in self:
            name, i = f"{base}{i}", i + 1
        self.taken.add(name)
        return name
