"""Merge the rows that bench/device/sweep.sh ran on a GPU machine into bench/results/quality.json; redo BENCHMARKS.md.

    .venv/bin/python bench/device/merge.py /work/.device/.../quality.json

Only rows whose variant starts with `gpu,` are taken: the rest of that file is the copy of this repository's results
that travelled with the call, and may be older than the local file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from bench.quality import log, merge, write_report  # noqa: E402

PREFIX = "gpu,"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="quality.json written by bench/device/sweep.sh")
    args = parser.parse_args(argv)
    rows = [row for row in json.loads(args.results.read_text())["rows"].values()
            if row["variant"].startswith(PREFIX)]
    if not rows:
        sys.exit(f"{args.results}: no row whose variant starts with {PREFIX!r}")
    results = None
    for row in rows:
        results = merge(row)
        log(f"merged {row['protocol']}/{row['backend']}/{row['variant']} ({row['hardware']})")
    write_report(results)


if __name__ == "__main__":
    main()
