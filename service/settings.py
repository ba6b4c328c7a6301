"""Every service setting in one place: command-line options, environment variables (TRIAGE_*) or defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCALHOST = "127.0.0.1"


def parse_keys(raw: str) -> dict[str, str]:
    """'key1,ops:key2' -> {key: name}; a key without a name is named by its position ('key-1')."""
    keys: dict[str, str] = {}
    for position, item in enumerate((part.strip() for part in raw.split(",")), 1):
        if not item:
            continue
        name, sep, key = item.partition(":")
        name, key = (name.strip(), key.strip()) if sep else (f"key-{position}", name.strip())
        if not key:
            raise ValueError(f"API key entry {position} is empty")
        keys[key] = name
    return keys


class Settings(BaseSettings):
    """Service settings. Environment variables use the TRIAGE_ prefix (TRIAGE_MODEL, TRIAGE_API_KEYS, ...)."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="forbid")

    model: Path = Field(default=Path("models/triage-default-student"), description="version or NAME directory")
    backend: str = Field(default="auto", description="auto, linear, torch, onnx-fp32 or onnx-int8")
    policy: Path | None = Field(default=None, description="priority policy YAML (default: the packaged one)")
    host: str | None = Field(default=None, description=f"bind address (default {LOCALHOST})")
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, description="processes; each watches the model's `latest` file")
    threads: int = Field(default=0, ge=0, description="inference threads (0: the runtime's default, all cores)")
    spin: bool = Field(default=False, description="let ONNX Runtime threads busy-wait between runs")

    api_keys: str = Field(default="", description="comma-separated keys (or name:key) for the /v1 endpoints")
    admin_keys: str = Field(default="", description="comma-separated keys (or name:key) for /v1/admin")
    metrics_public: bool = Field(default=True, description="serve /metrics without a key")

    max_posts: int = Field(default=256, ge=1, description="posts per request")
    max_text_chars: int = Field(default=5000, ge=1, description="longer texts are rejected, never cut")
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    batch_max_posts: int = Field(
        default=256, ge=1, description="posts per micro-batch (sorted by length, run in forward passes of 32)")
    batch_max_wait_ms: float = Field(default=2.0, ge=0, description="wait for more work when requests queue up")
    queue_max_posts: int = Field(default=4096, ge=1, description="posts waiting; beyond it requests get 503")
    cache_size: int = Field(default=50_000, ge=0, description="model outputs cached by (model version, text)")
    watch_seconds: float = Field(default=5.0, ge=0, description="how often to check `latest` (0: never)")
    log_level: str = Field(default="info")
    database_url: str = Field(
        default="sqlite:///var/inbox.sqlite3",
        validation_alias=AliasChoices("database_url", "TRIAGE_DATABASE_URL", "DATABASE_URL"),
        description="the triage inbox's database: a SQLAlchemy URL (sqlite:///FILE or postgresql://...); "
        "also read from DATABASE_URL",
    )

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _keys_parse(cls, raw: str) -> str:
        parse_keys(raw)
        return raw

    @property
    def open_mode(self) -> bool:
        """No API keys configured: anyone who can reach the port may call every endpoint."""
        return not self.api_keys and not self.admin_keys

    @property
    def bind_host(self) -> str:
        return self.host or LOCALHOST
