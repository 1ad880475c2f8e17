"""Runner: ``python -m benchmarks NAME [options]`` runs ``benchmarks.NAME.main(options)``."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import importlib
import pkgutil
import sys
from pathlib import Path

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the system.

    By default glibc serves large blocks (from 128 KiB up) with fresh pages from the system and
    returns them on ``free``, so a function that creates a new 1 MiB-1 GiB intermediate tensor on
    every call pays page faults for it every call.  A fused kernel such as torch's attention never
    allocates those intermediates; composed torch operations do.  On a virtual machine page faults
    are expensive, and the difference can dominate a ratio.  PyTorch's CPU performance guide
    recommends a caching allocator (jemalloc, TCMalloc) for this; ``mallopt`` gets the same effect
    from glibc without preloading a library.  Both sides of every ratio run under the same setting.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    # 32 MiB is the largest mmap threshold glibc accepts on 64-bit systems
    if not (libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20) and libc.mallopt(M_TRIM_THRESHOLD, 2**30)):
        raise OSError("mallopt refused the settings (is this glibc?)")


def available() -> list[str]:
    """Every module of this package except the runner itself."""
    here = [str(Path(__file__).resolve().parent)]
    return sorted(m.name for m in pkgutil.iter_modules(here) if not m.name.startswith("_"))


def summary(name: str) -> str:
    doc = importlib.import_module(f"benchmarks.{name}").__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run one benchmark; without a name, list them. Options after the name go to it.",
    )
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="tell glibc's malloc to keep freed memory for reuse (see keep_freed_memory)")
    parser.add_argument("name", nargs="?", choices=names, help="the benchmark to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="options of the benchmark (see NAME --help)")
    args = parser.parse_args(argv)
    if args.name is None:
        print("available benchmarks:")
        for name in names:
            print(f"  {name:12s} {summary(name)}")
        return 0
    if args.keep_freed_memory:
        keep_freed_memory()
        print("glibc malloc: freed memory kept for reuse (--keep-freed-memory)")
    module = importlib.import_module(f"benchmarks.{args.name}")
    return module.main(args.args) or 0


if __name__ == "__main__":
    sys.exit(main())
