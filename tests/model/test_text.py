import emoji
from hypothesis import given
from hypothesis import strategies as st

from model.text import _emoji_as_words, dedup_key, normalise


def test_handles_and_urls_become_placeholders() -> None:
    assert normalise("@NimbusMobile see https://t.co/abc and www.example.org/x") == "@user see http and http"


def test_email_addresses_are_not_handles() -> None:
    assert normalise("write to help@example.com") == "write to help@example.com"


def test_emoji_become_words() -> None:
    assert normalise("great flight 🙌") == "great flight raising hands"


def test_html_entities_and_whitespace() -> None:
    assert normalise("  fish &amp; chips\n\tnow  ") == "fish & chips now"


def test_dedup_key_ignores_case_handles_and_spacing() -> None:
    assert dedup_key("@BrandA My ORDER  is late") == dedup_key("@brand_b my order is late")
    assert dedup_key("my order is late") != dedup_key("my order is early")


def test_html_entities_that_decode_to_emoji_become_words_too() -> None:
    assert normalise("well done &#128079;") == "well done clapping hands"


PIECES = [*"ab @#&;:/.x", "🙌", "é", "&amp;", "&#128079;", " https://t.co/z", "\n"]


@given(st.lists(st.sampled_from(PIECES), max_size=20).map("".join))
def test_the_ascii_shortcut_gives_what_the_full_emoji_scan_gives(text: str) -> None:
    import html
    import re

    from model import text as module

    full = html.unescape(text)
    full = module._HANDLE.sub("@user", module._URL.sub("http", full))
    full = re.sub(r"\s+", " ", emoji.replace_emoji(full, replace=_emoji_as_words)).strip()
    assert normalise(text) == full
