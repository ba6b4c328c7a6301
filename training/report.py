"""Write an evaluation report (from training.evaluation.build_report) as JSON, Markdown and PNG plots.

Plots are drawn on `matplotlib.figure.Figure` objects directly rather than through pyplot: no global figure
registry, no interactive backend, nothing to close, and safe to call from worker threads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

HEADLINE_COLUMNS = (("accuracy", "Accuracy"), ("macro_f1", "Macro-F1"), ("macro_recall", "Macro-recall"))


def _cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def format_estimate(value: float | None, ci: list[float] | None = None, signed: bool = False) -> str:
    """`0.812 [0.781, 0.840]`, or just `0.812` without an interval; `signed` prefixes + for differences."""
    if value is None:
        return "–"
    spec = "+.3f" if signed else ".3f"
    text = format(value, spec)
    if ci is not None:
        text += f" [{ci[0]:{spec}}, {ci[1]:{spec}}]"
    return text


def _info_section(title: str, info: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", ""]
    for key, value in info.items():
        plain = value is None or isinstance(value, str | int | float | bool)
        lines.append(f"- **{key}**: {value if plain else json.dumps(value, default=str)}")
    return [*lines, ""]


def render_markdown(report: dict[str, Any], plot_paths: dict[str, list[str]] | None = None) -> str:
    """A readable summary of the report; `plot_paths` maps task -> plot paths relative to the Markdown file."""
    tasks: dict[str, Any] = report.get("tasks", {})
    lines = ["# Evaluation report", ""]
    if report.get("model"):
        lines += _info_section("Model", report["model"])
    if report.get("data"):
        lines += _info_section("Data", report["data"])

    lines += ["## Tasks", ""]
    n_boot = next((m.get("n_bootstrap") for m in tasks.values() if m.get("intervals")), None)
    if n_boot:
        lines += [f"Brackets: bootstrap 95% percentile intervals over {n_boot} resamples of the labelled rows.", ""]
    rows = []
    for name, metrics in tasks.items():
        intervals = metrics.get("intervals") or {}
        rows.append(
            [name, metrics["n"]]
            + [format_estimate(metrics[key], intervals.get(key)) for key, _ in HEADLINE_COLUMNS]
            + [format_estimate(metrics["ece"])]
        )
    lines += _table(["Task", "n", *(title for _, title in HEADLINE_COLUMNS), "ECE"], rows)
    if report.get("skipped_tasks"):
        lines += ["Skipped (no labelled rows or no predictions): " + ", ".join(report["skipped_tasks"]), ""]

    for name, metrics in tasks.items():
        lines += [f"### {name}", ""]
        class_rows = [
            [
                label,
                format_estimate(c["precision"], c.get("precision_ci")),
                format_estimate(c["recall"], c.get("recall_ci")),
                format_estimate(c["f1"], c.get("f1_ci")),
                c["support"],
            ]
            for label, c in metrics["per_class"].items()
        ]
        lines += _table(["Label", "Precision", "Recall", "F1", "Support"], class_rows)
        images = (plot_paths or {}).get(name, [])
        if images:
            lines += [f"![{Path(path).stem.replace('_', ' ')}]({path})" for path in images] + [""]

    if "slices" in report:
        section = report["slices"]
        lines += [f"## Slices by {section.get('name') or 'slice'}", ""]
        slice_rows = [
            [value, body["n"], task, scores["n"]] + [format_estimate(scores[key]) for key, _ in HEADLINE_COLUMNS]
            for value, body in section["values"].items()
            for task, scores in body["tasks"].items()
        ]
        lines += _table(["Slice", "Rows", "Task", "Labelled", *(title for _, title in HEADLINE_COLUMNS)], slice_rows)

    if "baseline" in report:
        baseline = report["baseline"]
        lines += ["## Baseline comparison", "", "Δ = model − baseline, paired bootstrap 95% interval.", ""]
        delta_rows = [
            [task]
            + [format_estimate(baseline["tasks"][task][key]) for key, _ in HEADLINE_COLUMNS]
            + [format_estimate(d[key]["delta"], d[key]["ci"], signed=True) for key, _ in HEADLINE_COLUMNS]
            for task, d in baseline["deltas"].items()
        ]
        header = ["Task"] + [f"Baseline {t}" for _, t in HEADLINE_COLUMNS] + [f"Δ {t}" for _, t in HEADLINE_COLUMNS]
        lines += _table(header, delta_rows)

    if "ranking" in report:
        ranking = report["ranking"]
        lines += ["## Ranking", "", f"{ranking['rows']} rows; policy {ranking['policy']}; gain: {ranking['gain']}.", ""]
        metrics = list(next(iter(ranking["orders"].values())))
        rows = [[order, *(f"{scores[m]:.3f}" for m in metrics)] for order, scores in ranking["orders"].items()]
        lines += _table(["Order", *metrics], rows)
    return "\n".join(lines).rstrip() + "\n"


def plot_confusion(name: str, metrics: dict[str, Any], path: Path) -> Path:
    """Heatmap coloured by share of each true class (so rare classes are visible), annotated with counts."""
    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    labels = metrics["labels"]
    k = len(labels)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * k + 2.5)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of true class")
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{name}: confusion matrix (n={int(cm.sum())})")
    for i in range(k):
        for j in range(k):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color=colour, fontsize=9)
    fig.savefig(path, dpi=100)
    return path


def plot_reliability(name: str, metrics: dict[str, Any], path: Path) -> Path:
    """Accuracy per confidence bin against the diagonal of perfect calibration, with row counts over the bars."""
    rel = metrics["reliability"]
    edges = np.asarray(rel["bin_edges"])
    widths = np.diff(edges)
    accuracy = np.array([np.nan if a is None else a for a in rel["accuracy"]], dtype=float)
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.add_subplot()
    nonempty = ~np.isnan(accuracy)
    ax.bar(
        edges[:-1][nonempty],
        accuracy[nonempty],
        width=widths[nonempty],
        align="edge",
        edgecolor="black",
        color="tab:blue",
        alpha=0.8,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for left, width, acc, count in zip(edges[:-1], widths, accuracy, rel["count"], strict=True):
        if count:
            ax.text(left + width / 2, min(acc + 0.02, 0.97), str(count), ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{name}: reliability (ECE={metrics['ece']:.3f})")
    ax.legend(loc="upper left")
    fig.savefig(path, dpi=100)
    return path


def write_report(report: dict[str, Any], out_dir: Path, plots: bool = True) -> list[Path]:
    """Write report.json, report.md and (when plots) plots/confusion_<task>.png and plots/reliability_<task>.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    plot_paths: dict[str, list[str]] = {}
    if plots:
        plot_dir = out_dir / "plots"
        plot_dir.mkdir(exist_ok=True)
        for name, metrics in report.get("tasks", {}).items():
            confusion = plot_confusion(name, metrics, plot_dir / f"confusion_{name}.png")
            reliability = plot_reliability(name, metrics, plot_dir / f"reliability_{name}.png")
            written += [confusion, reliability]
            plot_paths[name] = [p.relative_to(out_dir).as_posix() for p in (confusion, reliability)]

    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(report, plot_paths), encoding="utf-8")
    return [json_path, md_path, *written]
