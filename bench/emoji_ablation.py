"""Emoji to words, measured: a finished row's models scored on their test split with each emoji named in words (the
shipped normalisation), turned into the encoder's unknown token, or removed.

    .venv/bin/python bench/emoji_ablation.py --protocol tweeteval_sentiment --row transformer/epochs=1

`model/text.normalise` names emoji ("face with tears of joy") because the MiniLM vocabulary reads every emoji as
[UNK]. This measures what that step is worth without retraining: the three treatments differ only in texts that
have emoji, so where the row's training and dev rows have none (TweetEval sentiment: its train and val splits are
plain ASCII, its test split is not), it is the whole effect of the step; the counts per split are reported so that
a reader can see whether that holds. Each split is scored by the backend the row served; the named treatment must
reproduce the row's own saved test probabilities, which checks that the same model and texts were scored.

Writes bench/results/emoji_ablation.json (one entry per protocol and row) and regenerates BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import emoji  # noqa: E402
import numpy as np  # noqa: E402

from bench.emoji_ablation_report import EMOJI_RESULTS  # noqa: E402
from bench.quality import (  # noqa: E402
    MODEL_ROWS,
    QualityError,
    hardware,
    load_probabilities,
    log,
    result_rows,
    row_workdir,
    split_model,
    write_report,
)
from bench.quality import RESULTS as QUALITY_RESULTS  # noqa: E402
from model.predictor import Predictor, load_predictor  # noqa: E402
from model.text import normalise  # noqa: E402
from training.benchmarks import PROTOCOLS, benchmark_splits, protocol_config_path  # noqa: E402
from training.config import load_config  # noqa: E402
from training.datasets import Example  # noqa: E402
from training.metrics import summary_scores  # noqa: E402
from training.provenance import git_commit  # noqa: E402

RESULTS = EMOJI_RESULTS
TREATMENTS = ("named", "unknown", "removed")  # the first is what the product does


def has_emoji(text: str) -> bool:
    return emoji.emoji_count(text) > 0


def prepare(texts: Sequence[str], treatment: str, unknown_token: str) -> list[str]:
    """The texts as the model reads them under one treatment: always normalised, after the emoji are replaced by
    the encoder's unknown token (which its tokenizer keeps as one special token) or removed, for those two."""
    replacement = {"named": None, "unknown": f" {unknown_token} ", "removed": " "}[treatment]
    if replacement is None:
        return [normalise(t) for t in texts]
    return [normalise(emoji.replace_emoji(t, replace=replacement)) for t in texts]


def score_treatments(predictor: Predictor, examples: Sequence[Example], task: str, metric: str,
                     unknown_token: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per treatment, the metric and accuracy on every labelled row and on the rows with emoji, and how many
    predictions differ from the named treatment's; and each treatment's probabilities for `task` (every row)."""
    texts = [e.post.text for e in examples]
    truth = np.array([e.labels.get(task, -1) for e in examples])
    labelled = truth >= 0
    with_emoji = np.array([has_emoji(t) for t in texts]) & labelled
    probs = {name: predictor.calibrate(predictor.logits_of_normalised(prepare(texts, name, unknown_token)))[task]
             for name in TREATMENTS}

    def scores(mask: np.ndarray, p: np.ndarray) -> dict[str, float] | None:
        if not mask.any():
            return None
        values = summary_scores(truth[mask], p[mask])
        return {metric: values[metric], "accuracy": values["accuracy"]}

    named = probs["named"].argmax(axis=1)
    result = {name: {"all": scores(labelled, p), "emoji_rows": scores(with_emoji, p),
                     "changed_predictions": int((p.argmax(axis=1) != named).sum())}
              for name, p in probs.items()}
    return {"rows": int(labelled.sum()), "rows_with_emoji": int(with_emoji.sum()), "treatments": result}, probs


def unknown_token_of(version_dir: Path) -> str:
    """The encoder's unknown token ([UNK] for MiniLM), from the artifact's tokenizer."""
    from transformers import AutoTokenizer

    from model.artifact import ENCODER_DIR

    token = AutoTokenizer.from_pretrained(version_dir / ENCODER_DIR).unk_token
    if token is None:
        raise QualityError(f"{version_dir}: the encoder's tokenizer has no unknown token")
    return token


def check_reproduces_row(named: np.ndarray, saved: Path, served: str, task: str) -> None:
    """The named treatment is the row's own scoring: its probabilities must match the row's saved ones."""
    test = load_probabilities(saved)[1]
    if served not in test or test[served][task].shape != named.shape:
        raise QualityError(f"{saved}: no {served} test probabilities of {named.shape} for {task}; the row was run "
                           "on other data")
    gap = float(np.abs(test[served][task] - named).max())
    if gap > 1e-3:
        raise QualityError(f"{saved}: the named treatment differs from the row's saved {served} probabilities by "
                           f"{gap:.4f}; the kept model is not the one the row scored")


def mean_of(results: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float | None]) -> float | None:
    values = [v for v in (pick(r) for r in results) if v is not None]
    return float(np.mean(values)) if values else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    protocol = PROTOCOLS[args.protocol]
    os.environ["TRIAGE_SHARED_DATA"] = str(args.shared_data.resolve())
    row = result_rows(protocol, [args.row])[0]
    task = row["task"]
    workdir = row_workdir(row)
    config = load_config(protocol_config_path(protocol), {"backend": "transformer"})
    started = time.perf_counter()
    splits = benchmark_splits(protocol, config, args.shared_data, workdir)[: row["splits_run"]]
    results = []
    for split in splits:
        served = json.loads((workdir / f"{split.name}.json").read_text())["served"]
        predictor = load_predictor(split_model(workdir, split), backend=served)
        log(f"{split.name}: scoring {len(split.test)} test rows three ways with the {served} model")
        result, probs = score_treatments(predictor, split.test, task, protocol.metric,
                                         unknown_token_of(predictor.version_dir))
        check_reproduces_row(probs["named"], workdir / f"{split.name}.probs.npz", served, task)
        result |= {"split": split.name, "served": served,
                   "train_rows_with_emoji": sum(has_emoji(e.post.text) for e in split.train),
                   "dev_rows_with_emoji": sum(has_emoji(e.post.text) for e in split.dev)}
        results.append(result)
        log(f"{split.name}: " + ", ".join(
            f"{name} {100 * t['all'][protocol.metric]:.2f}" for name, t in result["treatments"].items()))
    summary = {
        name: {
            "all": mean_of(results, lambda r, n=name: r["treatments"][n]["all"][protocol.metric]),
            "emoji_rows": mean_of(results, lambda r, n=name: (r["treatments"][n]["emoji_rows"] or {}).get(
                protocol.metric)),
            "changed_predictions": sum(r["treatments"][name]["changed_predictions"] for r in results),
        }
        for name in TREATMENTS
    }
    return {
        "protocol": protocol.name, "row": args.row, "task": task, "metric": protocol.metric,
        "split": protocol.split, "splits": len(results), "summary": summary,
        "test_rows_with_emoji": sum(r["rows_with_emoji"] for r in results),
        # folds share their training rows, so the most in one split (test rows are disjoint: those add up)
        "training_rows_with_emoji": max(r["train_rows_with_emoji"] + r["dev_rows_with_emoji"] for r in results),
        "per_split": results, "wall_seconds": round(time.perf_counter() - started, 1), "hardware": hardware(),
        "command": f".venv/bin/python bench/emoji_ablation.py --protocol {args.protocol} --row {args.row}",
        "git_commit": git_commit(), "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def merge(entry: dict[str, Any], path: Path | None = None) -> None:
    path = path or RESULTS
    results = json.loads(path.read_text()) if path.is_file() else {"rows": {}}
    results["rows"][f"{entry['protocol']}/{entry['row']}"] = entry
    results["rows"] = dict(sorted(results["rows"].items()))
    path.write_text(json.dumps(results, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from training.paths import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
    parser.add_argument("--row", required=True,
                        help="a finished row of transformer models (transformer/VARIANT, distill/ or soup/) that "
                             "kept its split models")
    parser.add_argument("--shared-data", type=Path, default=shared_data_dir())
    args = parser.parse_args(argv)
    if not args.row.startswith(MODEL_ROWS):
        parser.error(f"--row names a row of transformer models ({', '.join(MODEL_ROWS)}), got {args.row!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        entry = run(args)
    except QualityError as err:
        raise SystemExit(f"error: {err}") from None
    merge(entry)
    write_report(json.loads(QUALITY_RESULTS.read_text()))
    for name, values in entry["summary"].items():
        emoji_part = "" if values["emoji_rows"] is None else f", on rows with emoji {100 * values['emoji_rows']:.1f}"
        log(f"{name}: {entry['metric']} {100 * values['all']:.2f}{emoji_part}; "
            f"{values['changed_predictions']} predictions changed")
    log(f"written to {RESULTS} and BENCHMARKS.md")


if __name__ == "__main__":
    main()
