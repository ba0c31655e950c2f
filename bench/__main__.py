"""Run one benchmark: ``uv run python -m bench <name> [options]`` (``-m bench`` alone lists them).

The dispatcher imports ``bench.<name>`` and calls its ``main(argv)`` with the remaining
arguments; every benchmark takes at least ``--size`` and ``--json``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

USAGE = "usage: python -m bench <name> [--size S] [--json [PATH]] [options of the benchmark]"


def available() -> list[str]:
    """Names of the benchmark modules (those with a ``main`` function)."""
    names = []
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("_"):
            continue
        if callable(getattr(importlib.import_module(f"bench.{module.name}"), "main", None)):
            names.append(module.name)
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    names = available()
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        print("benchmarks: " + ", ".join(names))
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in names:
        print(f"unknown benchmark {name!r}; one of: {', '.join(names)}", file=sys.stderr)
        return 2
    result = importlib.import_module(f"bench.{name}").main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
