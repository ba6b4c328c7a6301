from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from model.posts import Post


def test_created_at_reads_iso_8601_and_twitters_api_form() -> None:
    iso = Post(id="1", text="my order is late", created_at="2017-10-31T22:10:47+00:00")
    twitter = Post(id="2", text="my order is late", created_at="Tue Oct 31 22:10:47 +0000 2017")
    assert twitter.created_at == iso.created_at == datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)
    eastern = Post(id="3", text="still waiting", created_at="Wed Feb 25 08:05:00 -0500 2015")
    assert eastern.created_at.utcoffset() == timedelta(hours=-5)
    assert eastern.created_at.tzinfo == timezone(timedelta(hours=-5))


@pytest.mark.parametrize("value", ["yesterday", "Tue Oct 31 2017", "Mon Oct 31 22:10:47 +0000"])
def test_an_unreadable_created_at_is_an_error_naming_the_field(value: str) -> None:
    with pytest.raises(ValidationError) as error:
        Post(id="1", text="hello", created_at=value)
    assert error.value.errors()[0]["loc"] == ("created_at",)
