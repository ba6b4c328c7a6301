"""Example posts written for the tests (never copied from third-party datasets), with all four labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BRANDS = ("@NimbusMobile", "@PebbleBank", "@OrbitFoods", "@LarkAir")
ENDINGS = ("today", "again", "this week", "honestly", "as usual", "right now")

# (intent, sentiment, needs_response, urgency, text with {brand} and {end})
TEMPLATES: tuple[tuple[str, str, bool, str, str], ...] = (
    ("complaint", "negative", True, "high", "{brand} my card was charged twice and the money is gone {end}, fix it"),
    ("complaint", "negative", True, "normal", "{brand} the app keeps crashing when I open settings {end} 😡"),
    ("complaint", "negative", True, "normal", "{brand} waited forty minutes on hold and nobody picked up {end}"),
    ("question", "neutral", True, "normal", "{brand} how do I change the address on my account {end}?"),
    ("question", "neutral", True, "low", "{brand} is the downtown branch open on sunday {end}?"),
    ("purchase_intent", "positive", True, "normal", "{brand} thinking about the family plan {end}, what does it cost?"),
    ("purchase_intent", "positive", True, "normal", "{brand} want the big bundle for my office {end}, any discount?"),
    ("suggestion", "neutral", True, "low", "{brand} you should add a dark mode to the app {end}"),
    ("praise", "positive", False, "low", "{brand} the agent who helped me {end} was fantastic, thank you! 🙌"),
    ("praise", "positive", False, "low", "loving my new phone from {brand} {end}, the battery lasts forever"),
    ("spam", "neutral", False, "low", "win a free cruise {end}!!! click the link in my bio https://example.com/prize"),
    ("other", "neutral", False, "low", "watching the {brand} ad during the match {end} lol"),
)


def make_posts(copies: int = 4, start: int = 0) -> list[dict[str, Any]]:
    """len(TEMPLATES) * copies flat rows, every text distinct even after handles become @user."""
    rows = []
    for copy in range(start, start + copies):
        for number, (intent, sentiment, needs_response, urgency, template) in enumerate(TEMPLATES):
            brand = BRANDS[(copy + number) % len(BRANDS)]
            rows.append({
                "id": f"t{copy:02d}-{number:02d}",
                "brand": brand,
                "text": template.format(brand=brand, end=f"{ENDINGS[copy % len(ENDINGS)]} #{copy}"),
                "author_followers": 10 ** (copy % 6),
                "author_verified": copy % 5 == 0,
                "retweets": copy,
                "likes": 2 * copy,
                "intent": intent,
                "sentiment": sentiment,
                "needs_response": needs_response,
                "urgency": urgency,
                "source": "shop" if copy % 2 else "app",
            })
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path
