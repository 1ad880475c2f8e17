"""Runner: ``python -m benchmarks NAME [options]`` runs ``benchmarks.NAME.main(options)``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path


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
    parser.add_argument("name", nargs="?", choices=names, help="the benchmark to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="options of the benchmark (see NAME --help)")
    args = parser.parse_args(argv)
    if args.name is None:
        print("available benchmarks:")
        for name in names:
            print(f"  {name:12s} {summary(name)}")
        return 0
    module = importlib.import_module(f"benchmarks.{args.name}")
    return module.main(args.args) or 0


if __name__ == "__main__":
    sys.exit(main())
