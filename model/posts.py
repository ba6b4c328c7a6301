"""The post contract: what a social post looks like everywhere in the project."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT_CHARS = 10_000
TWITTER_TIMESTAMP = "%a %b %d %H:%M:%S %z %Y"  # API v1.1 `created_at`


class Author(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handle: str | None = None
    followers: int = Field(default=0, ge=0)
    verified: bool = False


class Engagement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retweets: int = Field(default=0, ge=0)
    likes: int = Field(default=0, ge=0)
    replies: int = Field(default=0, ge=0)


class Post(BaseModel):
    """A social post addressed to (or about) a brand.

    `brand` is the account addressed; `author` and `engagement` feed the priority policy; `created_at` is ISO 8601,
    or Twitter's API v1.1 form (`Thu Nov 26 09:30:00 +0000 2026`), which exports and raw payloads carry.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    text: str = Field(max_length=MAX_TEXT_CHARS)
    brand: str | None = None
    author: Author = Field(default_factory=Author)
    engagement: Engagement = Field(default_factory=Engagement)
    created_at: datetime | None = None
    lang: str | None = Field(default=None, max_length=16)

    @field_validator("created_at", mode="before")
    @classmethod
    def _twitter_timestamp(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return datetime.strptime(value, TWITTER_TIMESTAMP)
            except ValueError:
                pass  # ISO 8601 (or an error that names the field), as pydantic reads it
        return value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty")
        return text
