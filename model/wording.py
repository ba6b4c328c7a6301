"""Counts and durations the way social tools write them, for the reasons a policy gives."""

from __future__ import annotations


def compact(count: int) -> str:
    """850, 1.2k, 250k, 1.2M: how social tools show counts."""
    if count < 1000:
        return str(count)
    value, suffix = (count / 1e6, "M") if count >= 999_500 else (count / 1e3, "k")
    text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
    return text.removesuffix(".0") + suffix


def plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{compact(count)} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def age_text(hours: float) -> str:
    return f"{round(hours)} hours" if hours < 48 else f"{int(hours // 24)} days"
