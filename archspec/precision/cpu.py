"""The processor's features that decide which low precision runs fast, read from its flags.

int8 speed on x86 rests on VNNI (AVX-512 VNNI or AVX-VNNI: one instruction per 4-way u8 x s8
dot product) or AMX; bf16 on AVX-512 BF16 or AMX. onnxruntime's x86 kernels multiply uint8
activations by int8 weights (U8S8); with int8 activations most convolutions stay in fp32 on a
processor without AMX (measured: benchmarks/RESULTS_precision.md). Stdlib only.
"""

from __future__ import annotations

import platform

# flag in /proc/cpuinfo -> what the report calls it
FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_tile": "AMX",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
}


def flags(cpuinfo: str | None = None) -> set[str]:
    """The first processor's flags (Linux's /proc/cpuinfo; `features` on ARM); empty where unknown."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read(1 << 20)
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def features(cpuinfo: str | None = None) -> dict[str, bool]:
    """{feature name: present} for the features of FLAGS, as the bench environment reports them."""
    have = flags(cpuinfo)
    return {name: flag in have for flag, name in FLAGS.items()}


def is_arm() -> bool:
    return platform.machine().lower() in ("aarch64", "arm64")


def default_activation_type() -> str:
    """uint8 on x86 (onnxruntime's U8S8 kernels; int8 activations leave convolutions in fp32 there), int8 on
    ARM, where onnxruntime's kernels take int8 x int8."""
    return "int8" if is_arm() else "uint8"


def describe(feats: dict[str, bool]) -> str:
    """One line: `AVX-512 VNNI yes, AMX no, AVX-512 BF16 yes`."""
    shown = ("AVX-512 VNNI", "AVX-VNNI", "AMX", "AVX-512 BF16", "AVX-512 FP16")
    return ", ".join(f"{k} {'yes' if feats.get(k) else 'no'}" for k in shown)
