"""Shared fixtures: every test starts and ends with no live actors."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pykka
import pytest
import structlog


def pytest_configure(config: pytest.Config) -> None:
    """Mark structlog configured (with its defaults) before any test runs.

    ``dx.start()`` configures logging only when nobody did, and its setup caches
    loggers at INFO on first use: one test calling it would hide the DEBUG events
    that later tests capture. Tests of that default setup run it in a subprocess.
    """
    structlog.configure()


@pytest.fixture(autouse=True)
def _no_actors_left_behind() -> Iterator[None]:
    yield
    # Stop whatever a failing test left running so later tests start clean.
    pykka.ActorRegistry.stop_all(block=True, timeout=10.0)
    for thread in threading.enumerate():
        if thread.name.startswith("sv:") and thread is not threading.current_thread():
            thread.join(timeout=0.2)
