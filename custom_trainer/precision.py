"""Which arithmetic to train in, chosen by the processor at run time.

On CUDA the design's fp16 (a T4 has no bf16) is set in the config. On CPU, bf16 autocast pays only where the processor
multiplies bf16 natively: AMX tiles (Sapphire Rapids and later) or AVX512_BF16 dot products. Elsewhere PyTorch
emulates it and a training step is 23x slower than fp32 (measured on an AVX2 machine), so fp32 stays the default
there. Measured on a 2-core AMX machine (all-MiniLM-L6-v2, batch 32): a training step of 48-token tickets
0.72 s fp32 -> 0.31 s bf16, 128 tokens 1.50 s -> 0.89 s.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

CPU_PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which it still multiplies bf16 in hardware. A lower cap (AVX2, say, set
# to reproduce an older machine or to work around a kernel bug) makes bf16 emulated even on an AMX processor.
BF16_ONEDNN_ISAS = frozenset({"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512",
                              "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16"})


@lru_cache(maxsize=1)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The processor's feature flags (Linux); empty where /proc/cpuinfo is unreadable (then fp32 is chosen)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The processor's model name (Linux), or the platform's description elsewhere."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AMX or AVX512_BF16) and oneDNN may use it."""
    flags = cpu_flags() if flags is None else flags
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").strip().upper() or "ALL"
    return isa_cap in BF16_ONEDNN_ISAS and any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_cpu_precision(requested: str, flags: frozenset[str] | None = None) -> str:
    """'auto' becomes 'bf16' on a CPU with native bf16, else 'fp32'; 'fp32' and 'bf16' are kept as asked."""
    if requested not in CPU_PRECISIONS:
        raise ValueError(f"cpu_precision must be one of {CPU_PRECISIONS}, got {requested!r}")
    if requested != "auto":
        return requested
    return "bf16" if native_bf16(flags) else "fp32"
