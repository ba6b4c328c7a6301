"""The emoji section of BENCHMARKS.md, from bench/results/emoji_ablation.json (bench/emoji_ablation.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EMOJI_RESULTS = Path(__file__).resolve().parent / "results" / "emoji_ablation.json"
DESCRIPTIONS = {
    "named": "named in words (shipped)",
    "unknown": "the encoder's unknown token",
    "removed": "removed",
}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def render_emoji(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Emoji to words (issue 5)",
        "",
        "`model/text.normalise` names each emoji in words, because the MiniLM vocabulary reads every emoji as "
        "[UNK]. `bench/emoji_ablation.py` scores a finished row's own models on its test split with the emoji "
        "named, turned into the unknown token, or removed; nothing is retrained, so where the training and dev rows "
        "hold no emoji this is the whole effect of the step. Differences from `named` in points.",
        "",
    ]
    for entry in results["rows"].values():
        named = entry["summary"]["named"]
        lines += [
            f"### {entry['protocol']}: `{entry['row']}`",
            "",
            f"- {entry['split']}, {entry['metric'].replace('_', '-')}; {entry['test_rows_with_emoji']:,} test rows "
            f"with emoji, at most {entry['training_rows_with_emoji']:,} training and dev rows with emoji in a split; "
            f"{entry['splits']} split(s), {entry['wall_seconds']:.0f} s on {entry['hardware']}.",
            f"- Command: `{entry['command']}` (commit {entry['git_commit'][:7]}, {entry['finished_at']})",
            "",
            "| emoji | all test rows | change | rows with emoji | change | predictions changed |",
            "|---|---|---|---|---|---|",
        ]
        for name, values in entry["summary"].items():
            changes = [
                "" if name == "named" or values[key] is None else f"{100 * (values[key] - named[key]):+.1f}"
                for key in ("all", "emoji_rows")
            ]
            lines.append(
                f"| {DESCRIPTIONS.get(name, name)} | {_percent(values['all'])} | {changes[0]} "
                f"| {_percent(values['emoji_rows'])} | {changes[1]} | {values['changed_predictions']:,} |"
            )
        lines.append("")
    return lines


def emoji_section(path: Path = EMOJI_RESULTS) -> str:
    """The section's markdown, or nothing when bench/emoji_ablation.py has not been run."""
    if not path.is_file():
        return ""
    return "\n" + "\n".join(render_emoji(json.loads(path.read_text(encoding="utf-8"))))
