"""BENCHMARKS.md from bench/results/quality.json: our numbers beside the published anchors, with citations.

Every figure in the file comes from the JSON written by `bench/quality.py`; the anchors below are the published
results the issue names, with their sources.
"""

from __future__ import annotations

from typing import Any

# Published results: (system, score in percent, citation).
ANCHORS: dict[str, dict[str, Any]] = {
    "tweeteval_sentiment": {
        "title": "TweetEval sentiment (SemEval-2017 Task 4 A)",
        "metric": "macro-averaged recall, official test set",
        "results": [
            ("TimeLMs-2021", 73.7, "Loureiro et al., ACL 2022 demo; cardiffnlp/tweeteval leaderboard"),
            ("BERTweet", 73.4, "Nguyen et al., EMNLP 2020 demo; cardiffnlp/tweeteval leaderboard"),
            ("RoBERTa-base", 71.3, "Barbieri et al., Findings of EMNLP 2020; cardiffnlp/tweeteval leaderboard"),
            ("FastText", 62.9, "cardiffnlp/tweeteval leaderboard"),
            ("SVM", 62.9, "cardiffnlp/tweeteval leaderboard"),
        ],
    },
    "complaints": {
        "title": "Complaints in social media (Preotiuc-Pietro et al., ACL 2019)",
        "metric": "macro-F1, mean over 10-fold cross-validation (3,449 tweets)",
        "results": [
            ("Jin & Aletras 2021", 88.2, "Jin & Aletras, NAACL 2021"),
            ("Jin & Aletras 2020", 87.0, "Jin & Aletras, COLING 2020"),
            ("Preotiuc-Pietro et al. 2019", 79.0, "Preotiuc-Pietro, Gaman & Aletras, ACL 2019"),
        ],
    },
    "banking77": {
        "title": "Banking77 intent detection",
        "metric": "accuracy, official test set",
        "results": [("BERT", 93.7, "Casanueva et al., NLP4ConvAI workshop at ACL 2020")],
    },
    "brand_intent": {
        "title": "brand_intent (real brand-directed tweets, silver labels)",
        "metric": "macro-F1 per task, validation split (578 tweets); no published results",
        "results": [],
    },
}
METRIC_NAMES = {"macro_recall": "macro-recall", "macro_f1": "macro-F1", "accuracy": "accuracy"}
BACKEND_NAMES = {"linear": "linear", "torch": "torch fp32", "onnx-fp32": "ONNX fp32", "onnx-int8": "ONNX int8"}


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _score(summary: dict[str, Any]) -> str:
    """'mean' or 'mean ± std (n folds)' or 'mean [lo, hi]' (bootstrap 95% interval)."""
    text = pct(summary["mean"])
    if summary.get("n", 1) > 1:
        text += f" ± {pct(summary['std'])} ({summary['n']} folds)"
    elif summary.get("ci"):
        lo, hi = summary["ci"]
        text += f" [{pct(lo)}, {pct(hi)}]"
    return text


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _rows(row: dict[str, Any]) -> str:
    if row["splits_run"] > 1:
        return f"{row['train_rows'] / row['splits_run']:,.0f} rows per fold"
    return f"{row['train_rows']:,} rows"


def _unlabelled_settings(row: dict[str, Any]) -> str:
    """How many unlabelled texts the students learned from (teacher outputs only), and from where."""
    per_split = [split.get("unlabelled", {}) for split in row["per_split"]]
    used = sum(u.get("rows_used", 0) for u in per_split) / len(per_split)
    dropped = sum(u.get("dropped_as_evaluation_texts", 0) for u in per_split)
    files = ", ".join(f"`{u['file']}`"
                      + "".join(f" where {column} = {value}" for column, value in u["where"].items())
                      + (f" (the first {u['max_rows']:,} usable rows)" if u["max_rows"] else "")
                      for u in row["settings"]["unlabelled"])
    return (f"plus {used:,.0f} unlabelled texts per split from {files}, learned from the teachers' outputs only; "
            f"{dropped} dropped as texts of a split's dev or test rows")


def _row_settings(row: dict[str, Any]) -> str:
    parts = [f"{row['splits_run']} of {row['splits_total']} folds" if row["splits_total"] > 1 else None]
    if row["backend"] == "ensemble":
        params = row["settings"]
        weights = "; ".join(", ".join(f"{w:g}" for w in split) for split in params["weights"])
        members = ", ".join(f"`{m}`" for m in params["members"])
        chosen = (f"weights chosen per split on its dev rows by {METRIC_NAMES[row['metric']]}, grid step "
                  f"{params['step']:g}: {weights}" if params["step"] else "equal weights (none chosen on dev)")
        parts.append(f"weighted mean of the probabilities of {members} (each member's served backend); {chosen}")
    elif row["backend"] == "soup":
        ingredients = ", ".join(f"`{i}`" for i in row["settings"]["ingredients"])
        parts.append(f"per split, the mean of the weights of the models of {ingredients} (a uniform soup; nothing "
                     f"trained), calibrated on the split's dev rows; max length {row['settings']['max_length']}")
    elif row["backend"] in ("transformer", "distill"):
        params = row["settings"]
        if row["backend"] == "distill":
            distill, first = params["distill"], params["teachers"][0]
            student = params.get("student", first)  # rows from before --student started from the first teacher
            parts.append(f"distilled per split from the models of {', '.join(f'`{t}`' for t in params['teachers'])} "
                         f"(mean of their outputs softened at T = {distill['temperature']:g}, alpha "
                         f"{distill['alpha']:g}); starts from the layers {distill['keep_layers']} of "
                         + ("the first teacher" if student == first else f"`{student}`"))
            if params.get("unlabelled"):
                parts.append(_unlabelled_settings(row))
        parts.append(f"{params['encoder']}, {params['epochs']} epochs (best epochs {row['best_epochs']}), "
                     f"lr {params['learning_rate']:g}, batch {params['batch_size']}, max length {params['max_length']}")
    else:
        params = row["settings"]
        parts.append(f"TF-IDF word {params['word_ngrams']} + char {params['char_ngrams']}, C {params['C']:g}")
    return "; ".join(p for p in parts if p)


def _headline_table(protocol: str, rows: list[dict[str, Any]]) -> list[str]:
    anchor = ANCHORS[protocol]
    lines = ["| system | backend | score | trained on (ours) / source | wall time |", "|---|---|---|---|---|"]
    for row in rows:
        for backend, summary in row["scores"].items():
            served = " (served)" if backend == row.get("served") else ""
            value = summary["tasks"][row["task"]][row["metric"]]
            lines.append(
                f"| ours: {row['backend']} `{row['variant']}` | {BACKEND_NAMES.get(backend, backend)}{served} | "
                f"**{_score(value)}** | {_rows(row)} | {_minutes(row['wall_seconds'])} |"
            )
    for system, score, citation in anchor["results"]:
        lines.append(f"| {system} | published | {score:.1f} | {citation} | |")
    return lines


def _brand_intent_tables(rows: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for row in rows:
        tasks = list(next(iter(row["scores"].values()))["tasks"])
        lines += [f"**{row['backend']} `{row['variant']}`** ({_rows(row)} of training data, "
                  f"{_minutes(row['wall_seconds'])}): macro-F1 per task", "",
                  "| backend | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        for backend, summary in row["scores"].items():
            served = " (served)" if backend == row.get("served") else ""
            cells = " | ".join(_score(summary["tasks"][t]["macro_f1"]) for t in tasks)
            lines.append(f"| {BACKEND_NAMES.get(backend, backend)}{served} | {cells} |")
        slices = row.get("slices") or {}
        if slices:
            backend = row.get("served") or next(iter(row["scores"]))
            lines += ["", f"Per `{row['slice_column']}` slice ({BACKEND_NAMES.get(backend, backend)}), macro-F1:", "",
                      "| slice | rows | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
            for value, body in slices.get(backend, {}).items():
                cells = " | ".join(pct(body["tasks"].get(t, {}).get("macro_f1")) for t in tasks)
                lines.append(f"| {value} | {body['n']} | {cells} |")
        lines.append("")
    return lines


def render(results: dict[str, Any]) -> str:
    rows = list(results.get("rows", {}).values())
    lines = [
        "# Quality benchmarks",
        "",
        "Generated by `bench/quality.py` from `bench/results/quality.json`; do not edit by hand.",
        "Scores are percentages with one decimal: over folds, mean ± standard deviation; on a single test set, the",
        "point score and its bootstrap 95% interval. The rules (own training split only, model selection on a",
        "validation split, test scored once, overlap with the test texts dropped, no brand_intent sources for",
        "brand_intent, no brand_intent for complaints) are in `training/benchmarks.py`.",
        "Wall times are what each run took on its machine, which other jobs may have shared: they say how long a",
        "run takes, and are not speed measurements. ONNX rows score the exported graphs of the same torch model;",
        "\"served\" marks the backend `load_predictor` serves (int8 only when it passes the export's parity gate).",
        "Rows named `gpu,...` ran on a lent GPU machine through `bench/device/sweep.sh` (the same protocol): their",
        "encoder `models/encoders/minilm-fp16` is the default all-MiniLM-L6-v2 carried there as fp16 and widened back",
        "to fp32 (`bench/device/pack.py`).",
        "",
    ]
    for protocol, anchor in ANCHORS.items():
        mine = sorted((r for r in rows if r["protocol"] == protocol), key=lambda r: (r["backend"], r["variant"]))
        lines += [f"## {anchor['title']}", "", f"Metric: {anchor['metric']}.", ""]
        if not mine:
            lines += ["Not run yet.", ""]
        elif protocol == "brand_intent":
            lines += _brand_intent_tables(mine)
        else:
            lines += [*_headline_table(protocol, mine), ""]
            for row in mine:
                if row.get("subset_scores"):
                    name, summary = next(iter(row["subset_scores"].items()))
                    lines.append(f"- {row['backend']} `{row['variant']}`, {name}: "
                                 f"{METRIC_NAMES[row['metric']]} {_score(summary)}")
            lines.append("")
        for row in mine:
            overlap = row["overlap_dropped"]
            lines += [
                f"<details><summary>{row['backend']} `{row['variant']}`: how it was run</summary>",
                "",
                f"- Command: `{row['command']}`",
                f"- Settings: {_row_settings(row)}; config `{row['config']}`"
                + (f", overrides {row['overrides']}" if row["overrides"] else ""),
                f"- Data: {row['split']}; trained on {row['train_rows']} rows, selected on {row['dev_rows']}, "
                f"scored on {row['test_rows']}{' (summed over folds)' if row['splits_run'] > 1 else ''}; "
                "rows dropped as exact duplicates of test texts: "
                f"{overlap['train']} train, {overlap['dev']} dev"
                + "".join(f"; labels of `{name}` joined by text onto {rows} training rows "
                          "(never onto dev or test rows)" for name, rows in row.get("labels_joined", {}).items()),
                f"- Licences: {'; '.join(row['licences'])}",
                f"- Hardware: {row['hardware']}; training {_minutes(row['train_seconds'])}, "
                f"whole row {_minutes(row['wall_seconds'])}; finished {row['finished_at']} at commit "
                f"{(row.get('git_commit') or 'unknown')[:10]}",
            ]
            if row.get("int8"):
                lines.append(f"- ONNX int8: {row['int8']}")
            lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"
