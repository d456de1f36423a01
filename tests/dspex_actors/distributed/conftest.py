"""One local Ray per test module (2 CPUs, no dashboard; one module uses it), started on demand.

The API key of the test LMs is exported *before* ``ray.init``, so the Ray workers
inherit it from their environment (the only way a key reaches them). Teardown
shuts Ray down and checks that no process of that Ray session is left.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the `ray` extra is not installed")

KEY_VAR = "DSPEX_RAY_TEST_KEY"
KEY = os.environ.setdefault(KEY_VAR, f"sk-raytest-{uuid.uuid4().hex}")


def _session_processes(session_dir: str) -> list[int]:
    """Pids of live processes whose command line names this Ray session's directory."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if session_dir in cmdline and "State:\tZ" not in status:
            pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def ray_session() -> Iterator[dict[str, Any]]:
    """A local Ray (``num_cpus=2``), shut down at the end; yields its session directory."""
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    session_dir = ray._private.worker._global_node.get_session_dir_path()
    try:
        yield {"session_dir": session_dir}
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 20.0
        left = _session_processes(session_dir)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = _session_processes(session_dir)
        assert not left, f"Ray processes left after shutdown: {left}"
