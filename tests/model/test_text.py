from model.text import dedup_key, normalise


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
