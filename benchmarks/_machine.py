"""What the benchmarks record about the machine they ran on (standard library only)."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """CPU model name and its widest vector ISA from /proc/cpuinfo, e.g. ``"AMD EPYC, AVX2"``."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    vnni = " VNNI" if "avx512_vnni" in flags or "avx_vnni" in flags else ""
    return f"{name}, {isa}{vnni}"
