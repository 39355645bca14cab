"""Command line: ``python -m fastbp demo`` and ``python -m fastbp bench``."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastbp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the worked examples and a small training run")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.add_argument("--plot", metavar="FILE.png", help="save the loss/learning-rate curves")
    sub.add_parser("bench", help="a quick table of fastbp against the NumPy reference and the "
                   "GEMM floor (about a minute); --full runs the checkout's full comparison suite",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from fastbp.bench import main as bench_main
        return bench_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "demo":
        from fastbp.demo import run
        run(progress=False if args.no_progress else True, plot=args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
