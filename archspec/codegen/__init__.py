"""Codegen: IR -> the Python source of an nn.Module; that source -> the module (torch from here on)."""

from __future__ import annotations

import hashlib

from .python import generate, spec_hash


def source_of(spec) -> str:
    """The generated Python source of a checked Spec."""
    return generate(spec.network, spec.sources.texts, spec.program)


def build_module(spec, seed: int = 0):
    """The Spec as a torch nn.Module, built by executing its generated source.

    Refused (E610, exit 2) before anything is allocated when its fp32 weights would not fit in
    the memory this machine has available."""
    from .build import check_memory, instantiate, load_source

    check_memory(spec)
    source = source_of(spec)
    tag = f"{spec.name}_{hashlib.sha256(source.encode()).hexdigest()[:12]}"  # the module's name: its content
    return instantiate(load_source(source, tag), seed)


__all__ = ["build_module", "generate", "source_of", "spec_hash"]
