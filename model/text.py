"""The one tweet normalisation, used by training and inference alike.

Any change to what `normalise` returns must bump NORMALISATION_VERSION: artifacts record the version they were
trained with, and loading refuses an artifact whose version this code does not implement.
"""

from __future__ import annotations

import html
import re

import emoji

NORMALISATION_VERSION = 1

USER_PLACEHOLDER = "@user"
URL_PLACEHOLDER = "http"

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@])@\w{1,50}")
_SPACE = re.compile(r"\s+")


def _emoji_as_words(chars: str, data: dict) -> str:
    # ":face_with_tears_of_joy:" -> " face with tears of joy ": the MiniLM vocabulary maps raw emoji to [UNK].
    name = data.get("en", "").strip(":").replace("_", " ")
    return f" {name} " if name else " "


def normalise(text: str) -> str:
    """Handles and URLs to placeholders, emoji to words, HTML entities decoded, whitespace collapsed."""
    text = html.unescape(text)
    text = _URL.sub(URL_PLACEHOLDER, text)
    text = _HANDLE.sub(USER_PLACEHOLDER, text)
    if not text.isascii():  # emoji are never ASCII; the emoji scan is most of this function's time
        text = emoji.replace_emoji(text, replace=_emoji_as_words)
    return _SPACE.sub(" ", text).strip()


def dedup_key(text: str) -> str:
    """The key under which two texts count as exact duplicates (normalised, case-folded)."""
    return normalise(text).casefold()
