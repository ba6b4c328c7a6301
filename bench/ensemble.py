"""Ensembles of finished quality-benchmark rows: weighted averages of their probabilities, weights chosen on dev.

    .venv/bin/python bench/ensemble.py --protocol complaints --member transformer/reference --member linear/reference

Each member is a row that `bench/quality.py` has run (BACKEND/VARIANT, as in bench/results/quality.json). Per split
(fold), the members' probabilities on the dev rows choose the weights (a grid over the simplex, by the protocol's
metric), or with --equal-weights every member counts the same (the usual way to average seeds: a few hundred dev
rows can pick noise); the test rows are then scored once with those weights, from each member's served backend.
Nothing is trained here, and the test rows play no part in choosing the weights. The row is merged into
bench/results/quality.json as backend "ensemble" and BENCHMARKS.md is regenerated.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench.quality import (  # noqa: E402
    RESULTS,
    QualityError,
    aggregate,
    hardware,
    load_probabilities,
    log,
    merge,
    result_rows,
    row_workdir,
    score,
    summarise,
    write_report,
)
from training.benchmarks import PROTOCOLS, Protocol, Split, benchmark_splits, protocol_config_path  # noqa: E402
from training.config import TrainConfig, load_config  # noqa: E402
from training.datasets import Example, label_arrays  # noqa: E402
from training.metrics import summary_scores  # noqa: E402
from training.paths import shared_data_dir  # noqa: E402
from training.provenance import git_commit  # noqa: E402


class EnsembleError(Exception):
    """A member cannot be combined (not run, run on other splits, or without saved probabilities)."""


def weight_grid(members: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex with the given step (members >= 1), the equal split included."""
    units = round(1 / step)
    if not np.isclose(units * step, 1):
        raise EnsembleError(f"--step {step} must divide 1")
    grid = [tuple(c / units for c in combo) for combo in itertools.product(range(units + 1), repeat=members)
            if sum(combo) == units]
    return [tuple(1 / members for _ in range(members)), *grid]  # the equal split wins ties


def combine(members: list[dict[str, np.ndarray]], weights: tuple[float, ...]) -> dict[str, np.ndarray]:
    return {task: sum(w * m[task] for w, m in zip(weights, members, strict=True)) for task in members[0]}


def dev_score(probs: dict[str, np.ndarray], dev: list[Example], config: TrainConfig, protocol: Protocol) -> float:
    """The protocol's metric on the dev rows: on its task, or the mean over tasks when it scores every task."""
    truth = label_arrays(dev, config.label_schema())
    tasks = [protocol.task] if protocol.task else list(probs)
    values = []
    for task in tasks:
        labelled = truth[task] >= 0
        values.append(summary_scores(truth[task][labelled], probs[task][labelled])[protocol.metric])
    return float(np.mean(values))


def choose_weights(members: list[dict[str, np.ndarray]], dev: list[Example], config: TrainConfig,
                   protocol: Protocol, step: float | None) -> tuple[tuple[float, ...], float]:
    """The weights with the best dev score, and that score. Without a step, the equal split (and its dev score)."""
    candidates = weight_grid(len(members), step) if step else [tuple(1 / len(members) for _ in members)]
    best: tuple[tuple[float, ...], float] | None = None
    for weights in candidates:
        value = dev_score(combine(members, weights), dev, config, protocol)
        if best is None or value > best[1] + 1e-12:
            best = (weights, value)
    assert best is not None
    return best


def member_split(workdir: Path, split: Split, tasks: list[str]
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str]:
    """(dev probabilities, served test probabilities, served backend) of one member on one split, for `tasks` (the
    protocol's: a multi-task member's auxiliary heads are left out)."""
    result_file, probs_file = workdir / f"{split.name}.json", workdir / f"{split.name}.probs.npz"
    if not result_file.is_file() or not probs_file.is_file():
        raise EnsembleError(f"{workdir}: split {split.name} has no saved probabilities ({probs_file.name}); "
                            "run the member with bench/quality.py first (this machine's runs/ only)")
    served = json.loads(result_file.read_text())["served"]
    dev, test = load_probabilities(probs_file)
    sizes = (len(next(iter(dev.values()))), len(next(iter(test[served].values()))))
    if sizes != (len(split.dev), len(split.test)):
        raise EnsembleError(f"{workdir}: split {split.name} was run on {sizes[0]} dev and {sizes[1]} test rows, "
                            f"not {len(split.dev)} and {len(split.test)}: the members used different data")
    missing = [t for t in tasks if t not in dev or t not in test[served]]
    if missing:
        raise EnsembleError(f"{workdir}: split {split.name} has no probabilities for {missing}")
    return {t: dev[t] for t in tasks}, {t: test[served][t] for t in tasks}, served


def run(args: argparse.Namespace) -> dict[str, Any]:
    protocol = PROTOCOLS[args.protocol]
    os.environ["TRIAGE_SHARED_DATA"] = str(args.shared_data.resolve())
    try:
        member_rows = result_rows(protocol, args.member)
    except QualityError as err:
        raise EnsembleError(str(err)) from err
    config = load_config(protocol_config_path(protocol), {"backend": member_rows[0]["backend"]})
    workdirs = [row_workdir(row) for row in member_rows]
    started = time.perf_counter()
    splits = benchmark_splits(protocol, config, args.shared_data, workdirs[0])
    splits = splits[: min(r["splits_run"] for r in member_rows)]
    results = []
    tasks = config.label_schema().names
    step = None if args.equal_weights else args.step  # no step: the equal split, nothing chosen on dev
    for split in splits:
        parts = [member_split(workdir, split, tasks) for workdir in workdirs]
        weights, dev_value = choose_weights([p[0] for p in parts], split.dev, config, protocol, step)
        test_probs = combine([p[1] for p in parts], weights)
        scores = score(test_probs, split.test, config, protocol, args.bootstrap)
        results.append({"split": split.name, "weights": list(weights), "dev_score": dev_value,
                        "served": [p[2] for p in parts], "backends": {"ensemble": scores}})
        headline = scores["tasks"][protocol.task or next(iter(scores["tasks"]))][protocol.metric]
        log(f"{split.name}: weights {weights} (dev {protocol.metric} {100 * dev_value:.1f}); "
            f"test {protocol.metric} {100 * headline:.1f}")
    first = member_rows[0]
    row = {
        "protocol": protocol.name,
        "backend": "ensemble",
        "variant": args.variant or " + ".join(args.member) + (" (equal weights)" if args.equal_weights else ""),
        "task": first["task"],
        "metric": protocol.metric,
        "split": protocol.split,
        "config": protocol.config,
        "overrides": {},
        "settings": {"members": args.member, "step": step,
                     "weights": [r["weights"] for r in results]},
        "splits_total": first["splits_total"],
        "splits_run": len(results),
        "scores": aggregate(results),
        "served": None,  # an ensemble is a benchmark row; what serves is one of its members (or a distilled model)
        "int8": None,
        "best_epochs": [],
        "train_rows": first["train_rows"],
        "dev_rows": first["dev_rows"],
        "test_rows": first["test_rows"],
        "overlap_dropped": first["overlap_dropped"],
        "licences": sorted({licence for r in member_rows for licence in r["licences"]}),
        "train_seconds": round(sum(r["train_seconds"] for r in member_rows), 1),
        "wall_seconds": round(sum(r["wall_seconds"] for r in member_rows) + time.perf_counter() - started, 1),
        "hardware": hardware(),
        "command": command(args),
        "git_commit": git_commit(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "per_split": [{k: v for k, v in r.items() if k != "backends"} for r in results],
    }
    if protocol.subset:
        name = protocol.subset[0]
        values = [r["backends"]["ensemble"]["subset"][name][protocol.metric] for r in results]
        row["subset_scores"] = {f"{name} (ensemble)": summarise(values, None)}
    return row


def command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python", "bench/ensemble.py", "--protocol", args.protocol]
    for member in args.member:
        parts += ["--member", member]
    if args.equal_weights:
        parts.append("--equal-weights")
    elif args.step != 0.1:
        parts += ["--step", str(args.step)]
    if args.variant:
        parts += ["--variant", args.variant]
    return " ".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
    parser.add_argument("--member", action="append", required=True, help="BACKEND/VARIANT of a finished row")
    parser.add_argument("--step", type=float, default=0.1, help="weight grid step (default 0.1)")
    parser.add_argument("--equal-weights", action="store_true",
                        help="average the members with equal weights instead of choosing them on dev")
    parser.add_argument("--variant", help="row name (default: the members joined by ' + ')")
    parser.add_argument("--shared-data", type=Path, default=shared_data_dir())
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95%% interval of a test set")
    args = parser.parse_args(argv)
    if len(args.member) < 2:
        parser.error("an ensemble needs at least two --member rows")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        row = run(args)
    except EnsembleError as err:
        raise SystemExit(f"error: {err}") from None
    write_report(merge(row))
    summary = row["scores"]["ensemble"]["tasks"][row["task"]][row["metric"]]
    log(f"ensemble {row['metric']}: {100 * summary['mean']:.1f}"
        + (f" ± {100 * summary['std']:.1f} over {summary['n']} folds" if summary["n"] > 1 else ""))
    log(f"row {row['protocol']}/ensemble/{row['variant']} written to {RESULTS}")


if __name__ == "__main__":
    main()
