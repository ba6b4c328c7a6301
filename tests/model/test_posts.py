from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from model.posts import Post


def test_created_at_reads_iso_8601_and_twitters_api_form() -> None:
    iso = Post(id="1", text="my order is late", created_at="2026-11-26T09:30:00+00:00")
    twitter = Post(id="2", text="my order is late", created_at="Thu Nov 26 09:30:00 +0000 2026")
    assert twitter.created_at == iso.created_at == datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    eastern = Post(id="3", text="still waiting", created_at="Fri Nov 27 08:05:00 -0500 2026")
    assert eastern.created_at.utcoffset() == timedelta(hours=-5)
    assert eastern.created_at.tzinfo == timezone(timedelta(hours=-5))


@pytest.mark.parametrize("value", ["yesterday", "Thu Nov 26 2026", "Thu Nov 26 09:30:00 +0000"])
def test_an_unreadable_created_at_is_an_error_naming_the_field(value: str) -> None:
    with pytest.raises(ValidationError) as error:
        Post(id="1", text="hello", created_at=value)
    assert error.value.errors()[0]["loc"] == ("created_at",)
