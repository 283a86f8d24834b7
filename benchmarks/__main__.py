"""Run every ``benchmarks/bench_*.py`` module's ``main()``, or only those named on the command line."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    chosen = [n for n in names if not argv or n in argv or n.removeprefix("bench_") in argv]
    if argv and not chosen:
        raise SystemExit(f"no benchmark named {argv}; choose from {names}")
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
