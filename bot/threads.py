"""Handing results from worker threads back to the event loop that waits for them.

A worker thread may outlive its loop: the service stops (its loop closes) while a warm-up, a
read or an abandoned job still runs on a daemon thread. ``loop.call_soon_threadsafe`` on a
closed loop raises, and the thread died printing "RuntimeError: Event loop is closed" at an
orderly stop. Nothing waits for such a result any more, so it is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> bool:
    """Schedule ``callback(*args)`` on ``loop`` from another thread; False when the loop has
    closed (the callback is then dropped)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        if not loop.is_closed():
            raise
        return False
    return True
