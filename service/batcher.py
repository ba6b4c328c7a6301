"""A micro-batcher: concurrent requests share one forward pass, off the event loop, with a bounded queue.

Policy: when the inference thread is free, it takes every job already waiting (up to `max_posts` posts) and runs
them at once. A lone request on an idle server therefore goes straight through, with no added wait. Only when
jobs were already queued (traffic is concurrent) does it wait up to `max_wait` for the batch to fill. The queue
is bounded in posts: beyond `queue_max` a submit raises `Overloaded` (the API answers 503 with Retry-After)
instead of letting memory grow.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """The queue is full: try again shortly."""


@dataclass
class _Job:
    texts: Sequence[str]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    def __init__(
        self,
        infer: Callable[[list[str]], list[Any]],
        max_posts: int = 64,
        max_wait_s: float = 0.002,
        queue_max: int = 4096,
        on_batch: Callable[[int], None] | None = None,
    ):
        """`infer(texts) -> one result per text` runs in a single dedicated thread (the model's intra-op threads
        do the parallel work; two concurrent forward passes would only fight over the same cores)."""
        self._infer = infer
        self.max_posts = max_posts
        self.max_wait_s = max_wait_s
        self.queue_max = queue_max
        self._on_batch = on_batch or (lambda size: None)
        self._jobs: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._worker: asyncio.Task | None = None
        self._closing = False
        self.pending_posts = 0

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def submit(self, texts: Sequence[str]) -> list[Any]:
        if not texts:
            return []
        if self._closing:
            raise Overloaded("the model is being replaced or the server is shutting down")
        if self.pending_posts + len(texts) > self.queue_max:
            raise Overloaded(f"{self.pending_posts} posts are already waiting (limit {self.queue_max})")
        job = _Job(texts, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self.pending_posts += len(texts)
        self._arrived.set()
        return await job.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            concurrent = len(self._jobs) > 1
            batch = self._take()
            if concurrent and self.max_wait_s > 0:
                deadline = time.monotonic() + self.max_wait_s
                while self._size(batch) < self.max_posts and (left := deadline - time.monotonic()) > 0:
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), left)
                    except TimeoutError:
                        break
                    batch += self._take(self.max_posts - self._size(batch))
            texts = [text for job in batch for text in job.texts]
            self.pending_posts -= len(texts)
            self._on_batch(len(texts))
            try:
                results = await loop.run_in_executor(self._executor, self._infer, texts)
            except Exception as err:  # hand the failure to every waiting request; the worker lives on
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            start = 0
            for job in batch:
                if not job.future.done():
                    job.future.set_result(results[start : start + len(job.texts)])
                start += len(job.texts)

    def _take(self, room: int | None = None) -> list[_Job]:
        """Jobs from the front of the queue that fit in `room` posts.

        Without `room` (a new batch) the first job is always taken, even one larger than max_posts: it runs alone.
        """
        new_batch = room is None
        room = self.max_posts if room is None else room
        taken: list[_Job] = []
        while self._jobs:
            size = len(self._jobs[0].texts)
            if size > room and not (new_batch and not taken):
                break
            taken.append(self._jobs.popleft())
            room -= size
        return taken

    @staticmethod
    def _size(batch: list[_Job]) -> int:
        return sum(len(job.texts) for job in batch)

    async def stop(self) -> None:
        """Finish every job already queued, then stop the worker and its thread."""
        self._closing = True
        self._arrived.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)
