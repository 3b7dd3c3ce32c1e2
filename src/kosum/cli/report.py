"""`kosum-report`: compare the runs of one or more sweeps, from their run directories only.

    kosum-report outputs/lora_vs_prefix/multiruns/2025-01-01_12-00-00 --out reports/lora_vs_prefix
    kosum-report SWEEP_A SWEEP_B --out OUT --reference prefix

Writes OUT/report.md, OUT/report.html, OUT/results.csv and PNG figures (docs/sweeps-and-reports.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from kosum.errors import WriteFailed
from kosum.report.build import build_report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kosum-report", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "sweep_dirs",
        nargs="+",
        type=Path,
        metavar="SWEEP_DIR",
        help="folders searched recursively for run directories (holding results.json)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the report files")
    parser.add_argument(
        "--reference",
        default=None,
        help="method the others are tested against (default: lora if present, else the first "
        "method alphabetically)",
    )
    parser.add_argument(
        "--resamples", type=int, default=1000, help="resamples of the paired tests (default 1000)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed of the paired tests (default 0)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        files = build_report(
            args.sweep_dirs,
            args.out,
            reference=args.reference,
            n_resamples=args.resamples,
            seed=args.seed,
        )
    except (FileNotFoundError, WriteFailed) as error:
        print(f"kosum-report: error: {error}", file=sys.stderr)
        return 2
    print(f"report: {files.markdown}")
    print(f"        {files.html}")
    print(f"runs:   {files.csv}")
    for figure in files.figures:
        print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
