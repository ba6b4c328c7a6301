"""The service's mutable state: the runtime being served, and how it is replaced (reload, or `latest` changing)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from model.artifact import LATEST, MANIFEST, ArtifactError
from service.auth import KeyRing
from service.inbox.db import make_engine, upgrade
from service.inbox.store import InboxStore, QueueCollector
from service.metrics import Metrics
from service.runtime import ModelRuntime, OutputCache, load_runtime
from service.settings import Settings

log = logging.getLogger("triage.service")


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    runtime: ModelRuntime | None = None
    ready: bool = False
    inbox: InboxStore | None = None

    def __post_init__(self) -> None:
        self.keys = KeyRing(self.settings)
        self.cache = OutputCache(self.settings.cache_size, self.metrics)
        self._swap_lock = asyncio.Lock()

    def resolve(self, requested: str | None) -> Path:
        """A version of the configured NAME directory, or a path; None: the configured model (latest version)."""
        if requested is None:
            return self.settings.model
        if "/" not in requested and (self.settings.model / requested / MANIFEST).is_file():
            return self.settings.model / requested
        path = Path(requested)
        if not path.exists():
            raise ArtifactError(f"{requested!r} is neither a version of {self.settings.model} nor a model path")
        return path

    async def swap(self, model: Path) -> tuple[ModelRuntime | None, ModelRuntime]:
        """Load, verify and warm `model` off the event loop, then swap it in. The old runtime drains and stops."""
        async with self._swap_lock:
            fresh = await asyncio.to_thread(load_runtime, self.settings, model, self.metrics)
            fresh.batcher.start()
            previous, self.runtime = self.runtime, fresh
            self.metrics.model.info(fresh.describe())
            self.ready = True
            if previous is not None:
                asyncio.get_running_loop().create_task(previous.batcher.stop())
            log.info("serving %s", fresh.describe())
            return previous, fresh

    async def watch_latest(self) -> None:
        """Swap whenever the model's `latest` file names a new version (each worker process does this itself)."""
        latest = self.settings.model / LATEST
        refused = None
        while True:
            await asyncio.sleep(self.settings.watch_seconds)
            try:
                version = latest.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if self.runtime is not None and version and version not in (self.runtime.version, refused):
                try:
                    await self.swap(self.settings.model)
                except Exception as err:  # a bad new version must not stop the watcher or the old model
                    refused = version
                    log.error("not swapping to %s (keeping %s): %s", version, self.runtime.version, err)

    async def open_inbox(self) -> None:
        """Connect to the inbox database and apply pending migrations (off the event loop)."""

        def connect() -> InboxStore:
            engine = make_engine(self.settings.database_url)
            upgrade(engine)
            return InboxStore(engine)

        self.inbox = await asyncio.to_thread(connect)
        self.metrics.registry.register(QueueCollector(self.inbox, lambda: datetime.now(UTC)))
        log.info("inbox database: %s", self.inbox.engine.url.render_as_string(hide_password=True))

    async def close(self) -> None:
        self.ready = False
        if self.runtime is not None:
            await self.runtime.batcher.stop()
        if self.inbox is not None:
            self.inbox.engine.dispose()
