"""`python -m bench [--count N] [--quick] [--only SCENARIO...] [--out DIR]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.harness import Options, run
from bench.scenarios import SCENARIOS, select

QUICK_COUNT = 3
DEFAULT_COUNT = 20


def parse(argv: list[str] | None = None) -> Options:
    keys = ", ".join(f"{s.number}={s.key}" for s in SCENARIOS)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--count", type=int, help=f"iterations per timed row ({DEFAULT_COUNT})")
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts and sizes, for CI (< 3 minutes)"
    )
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help=f"any of: {keys}")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out", help="results directory"
    )
    args = parser.parse_args(argv)
    try:
        scenarios = select(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    count = args.count or (QUICK_COUNT if args.quick else DEFAULT_COUNT)
    if count < 1:
        parser.error("--count must be at least 1")
    return Options(count=count, quick=args.quick, scenarios=scenarios, out=args.out)


def main(argv: list[str] | None = None) -> int:
    return run(parse(argv))


if __name__ == "__main__":
    raise SystemExit(main())
