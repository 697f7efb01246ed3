"""The work queue's promises: de-duplication, one worker per key, back-off per key."""

from __future__ import annotations

import asyncio

import pytest

from shoal.client.workqueue import ShutDown, WorkQueue


async def test_a_key_added_many_times_is_taken_once() -> None:
    q = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert [await q.get(), await q.get()] == ["a", "b"]
    assert len(q) == 0


async def test_a_key_added_while_processing_waits_for_done() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed again while a worker holds it
    assert len(q) == 0  # not handed to a second worker
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_rate_limited_requeue_backs_off_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.01, max_delay=0.04)
    loop = asyncio.get_running_loop()
    q.add("a")
    key = await q.get()
    delays = []
    for _ in range(4):  # the key fails four times in a row
        q.add_rate_limited(key)
        q.done(key)
        start = loop.time()
        key = await asyncio.wait_for(q.get(), 1)
        delays.append(loop.time() - start)
    assert delays[0] >= 0.009 and delays[1] >= 0.019 and delays[3] >= 0.039
    assert q.failures("a") == 4
    q.forget("a")
    assert q.failures("a") == 0


async def test_shut_down_releases_waiting_workers() -> None:
    q = WorkQueue()
    waiting = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)  # let the worker start waiting
    q.shut_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiting, 1)
