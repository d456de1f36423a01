"""Ctrl-C in tests: ``_thread.interrupt_main()`` needs Python's SIGINT handler installed.

A test run started with SIGINT ignored (a background job, ``nohup``, some CI
runners) keeps ``SIG_IGN``, and ``interrupt_main()`` then does nothing, so a test
that simulates Ctrl-C would wait for an interrupt that never comes. Tests that
call it run inside :func:`ctrl_c_delivered`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def ctrl_c_delivered() -> Iterator[None]:
    """Python's default SIGINT handler for the duration; the previous one restored after.

    Skips the test when not in the main thread (handlers can only be set there).
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT handlers can only be installed from the main thread")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
