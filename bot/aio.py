"""Small asyncio helpers the services share."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(*tasks: asyncio.Task | None, every: float = 1.0) -> None:
    """Cancel ``tasks`` and return once every one of them has finished.

    One ``cancel()`` is not always enough on Python 3.10: ``asyncio.wait_for`` swallows a
    cancellation that arrives just as the operation it waits for completes (python/cpython
    gh-86296, fixed in 3.12), and the task then carries on — a shutdown that awaits it hangs.
    So the cancellation is repeated every ``every`` seconds until the task is done. A task's
    own exception is retrieved (and dropped: the task logs what matters to it).
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
    for task in tasks:
        if task is not None and not task.cancelled():
            task.exception()
