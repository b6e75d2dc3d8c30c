"""bot.aio.cancel_and_wait: a shutdown must not hang on a task whose cancellation was lost."""

from __future__ import annotations

import asyncio
import sys

from bot.aio import cancel_and_wait


def _worker(futures: list[asyncio.Future]):
    async def loop():
        while True:
            fut = asyncio.get_running_loop().create_future()
            futures.append(fut)
            await asyncio.wait_for(fut, 10)  # as the listener's queries and the pools' waits do
    return loop()


async def test_a_cancellation_lost_in_wait_for_is_repeated_until_the_task_ends():
    futures: list[asyncio.Future] = []
    task = asyncio.create_task(_worker(futures))
    await asyncio.sleep(0)
    # the cancellation lands while the awaited operation completes
    futures[-1].set_result(None)
    task.cancel()
    await asyncio.sleep(0.05)
    if sys.version_info < (3, 12):  # python/cpython gh-86296: wait_for returned the result instead
        assert not task.done() and len(futures) == 2
    await asyncio.wait_for(cancel_and_wait(task, every=0.05), 5)
    assert task.cancelled()


async def test_finished_and_missing_tasks_are_fine_and_failures_are_retrieved():
    async def fails():
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    sleeper = asyncio.create_task(asyncio.sleep(30))
    await asyncio.wait_for(cancel_and_wait(None, failed, sleeper), 5)
    assert failed.done() and sleeper.cancelled()
