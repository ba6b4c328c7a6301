"""The micro-batcher: lone requests go straight through, concurrent ones share a pass, the queue is bounded."""

import asyncio
import threading
import time

import pytest

from service.batcher import MicroBatcher, Overloaded


class FakeModel:
    """Records each forward pass; can be held to let work pile up behind it."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, texts: list[str]) -> list[str]:
        self.gate.wait(5)
        self.passes.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("model failed")
        return [text.upper() for text in texts]


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_lone_request_goes_straight_through() -> None:
    async def scenario():
        model = FakeModel()
        batcher = MicroBatcher(model, max_posts=64, max_wait_s=5.0)  # a long wait that must not be spent
        batcher.start()
        started = time.monotonic()
        result = await batcher.submit(["hello"])
        elapsed = time.monotonic() - started
        await batcher.stop()
        return result, elapsed, model.passes

    result, elapsed, passes = run(scenario())
    assert result == ["HELLO"] and passes == [["hello"]]
    assert elapsed < 2.5  # well under the 5 s max wait: no waiting for company that is not coming


def test_concurrent_requests_share_one_forward_pass() -> None:
    async def scenario():
        model = FakeModel()
        batcher = MicroBatcher(model, max_posts=64, max_wait_s=0.05)
        batcher.start()
        model.gate.clear()  # hold the first pass so the others queue behind it
        first = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.05)
        others = [asyncio.create_task(batcher.submit([f"b{i}", f"c{i}"])) for i in range(4)]
        await asyncio.sleep(0.05)
        model.gate.set()
        results = await asyncio.gather(first, *others)
        await batcher.stop()
        return results, model.passes

    results, passes = run(scenario())
    assert results[0] == ["A"] and results[3] == ["B2", "C2"]
    assert passes == [["a"], ["b0", "c0", "b1", "c1", "b2", "c2", "b3", "c3"]]


def test_batches_respect_max_posts_and_a_big_job_runs_alone() -> None:
    async def scenario():
        model = FakeModel()
        batcher = MicroBatcher(model, max_posts=4, max_wait_s=0)
        batcher.start()
        model.gate.clear()
        jobs = [asyncio.create_task(batcher.submit(texts))
                for texts in (["x"], ["a", "b", "c"], ["d", "e"], ["f"], list("0123456"))]
        await asyncio.sleep(0.05)
        model.gate.set()
        await asyncio.gather(*jobs)
        await batcher.stop()
        return model.passes

    # All five are queued before the first pass: 1 + 3 posts fill it; 2 + 1 the next; the 7-post job runs alone.
    assert run(scenario()) == [["x", "a", "b", "c"], ["d", "e", "f"], list("0123456")]


def test_a_full_queue_refuses_instead_of_growing() -> None:
    async def scenario():
        model = FakeModel()
        batcher = MicroBatcher(model, max_posts=8, queue_max=3)
        batcher.start()
        model.gate.clear()
        running = asyncio.create_task(batcher.submit(["first"]))
        await asyncio.sleep(0.05)  # 'first' is in the model; nothing waits
        waiting = asyncio.create_task(batcher.submit(["1", "2", "3"]))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="3 posts are already waiting"):
            await batcher.submit(["one too many"])
        model.gate.set()
        results = await asyncio.gather(running, waiting)
        await batcher.stop()
        return results

    assert run(scenario()) == [["FIRST"], ["1", "2", "3"]]


def test_a_failing_pass_fails_its_requests_and_the_worker_lives_on() -> None:
    async def scenario():
        model = FakeModel()
        batcher = MicroBatcher(model)
        batcher.start()
        with pytest.raises(RuntimeError, match="model failed"):
            await batcher.submit(["boom"])
        result = await batcher.submit(["fine"])
        await batcher.stop()
        return result

    assert run(scenario()) == ["FINE"]


def test_stop_finishes_queued_work_then_refuses_new_work() -> None:
    async def scenario():
        model = FakeModel()
        batcher = MicroBatcher(model)
        batcher.start()
        model.gate.clear()
        queued = [asyncio.create_task(batcher.submit([f"t{i}"])) for i in range(3)]
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.01)
        model.gate.set()
        await stopping
        with pytest.raises(Overloaded):
            await batcher.submit(["late"])
        return [await job for job in queued]

    assert run(scenario()) == [["T0"], ["T1"], ["T2"]]
