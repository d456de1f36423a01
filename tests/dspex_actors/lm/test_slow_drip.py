"""A server that drips its answer cannot keep a connection past the attempt's limit.

The read timeout alone is per read: at 1 byte/s it never fires. The attempt's total
limit (``LM.attempt_timeout``, and in a running system the request deadline) closes
the connection, and the server sees it closed. Bounds are generous (2 cores shared
with other jobs); what they check is "seconds after the limit", not "60 s later".
"""

from __future__ import annotations

import threading
import time

import pykka
import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors.lm import build_plan, execute_plan, make_session
from tests.dspex_actors.lm._loopback import DripServer

MESSAGES = [{"role": "user", "content": "hi"}]


def _wait_for_close(server: DripServer, timeout: float) -> None:
    limit = time.monotonic() + timeout
    while not server.closed and time.monotonic() < limit:
        time.sleep(0.02)


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_dripping_server_is_cut_at_attempt_timeout_and_the_connection_closed(
    mode: str,
) -> None:
    with DripServer(mode=mode, interval=1.0) as server:
        lm = dx.LM("openai/m", api_base=server.api_base, timeout=3.0, attempt_timeout=2.0)
        started = time.monotonic()
        with make_session(1) as session, pytest.raises(dx.LMTimeout) as info:
            execute_plan(session, build_plan(lm, MESSAGES))
        elapsed = time.monotonic() - started
        _wait_for_close(server, 5.0)
        assert 1.9 <= elapsed < 4.0  # the 3 s read timeout never fired: a byte came each second
        assert server.closed, "the server never saw the connection close"
        assert server.closed[0] - started < 4.5
        message = str(info.value)
        assert "no complete response within 2 s" in message
        assert "connection closed" in message
        assert f"openai/m at {server.api_base}" in message


def test_a_dripping_server_is_cut_at_the_request_deadline_in_a_running_system() -> None:
    # The case: 1 byte/s, a 3 s read timeout, a short deadline. Before, the
    # caller got DeadlineExceeded at the deadline but the connection stayed open.
    with (
        DripServer(mode="body", interval=1.0) as server,
        dx.start(
            lm=dx.LM("openai/m", api_base=server.api_base, timeout=3.0),
            retry=dx.RetryPolicy(deadline=2.5),
            cache=False,
            name="drip",
            configure_logs=False,
        ),
    ):
        started = time.monotonic()
        with pytest.raises(dx.DeadlineExceeded):
            dx.Predict("question -> answer")(question="slow?")
        elapsed = time.monotonic() - started
        _wait_for_close(server, 5.0)
        assert elapsed < 4.0
        assert len(server.opened) == 1
        assert server.closed, "the connection outlived the request deadline"
        assert server.closed[0] - started < 4.0


def test_the_deadline_cut_says_it_was_the_deadline_and_closes_the_connection() -> None:
    with DripServer(mode="headers", interval=1.0) as server:
        lm = dx.LM("openai/m", api_base=server.api_base, timeout=3.0)
        plan = build_plan(lm, MESSAGES).within(1.5)
        assert plan.attempt_limit == "deadline"
        with make_session(1) as session, pytest.raises(dx.DeadlineExceeded) as info:
            execute_plan(session, plan)
        _wait_for_close(server, 5.0)
        assert server.closed
        assert "request deadline" in str(info.value)
        assert "connection closed" in str(info.value)


def test_within_keeps_a_shorter_attempt_timeout() -> None:
    lm = dx.LM("openai/m", api_base="http://127.0.0.1:9/v1", attempt_timeout=1.0)
    plan = build_plan(lm, MESSAGES)
    assert plan.within(30.0) is plan
    assert plan.within(0.5).attempt_timeout == pytest.approx(0.45)


@pytest.mark.parametrize("how", ["cancel", "kill"])
def test_a_cancelled_or_killed_request_closes_its_connection_at_once(how: str) -> None:
    # Issue 9 item 6's last clause: on cancel the worker's socket is shut down from the
    # program's thread (on a kill of the program, from the killer's thread through the
    # worker's on_kill), not left to the 30 s deadline or the 10 s read timeout.
    with (
        DripServer(mode="body", interval=1.0) as server,
        dx.start(
            lm=dx.LM("openai/m", api_base=server.api_base, timeout=10.0),
            retry=dx.RetryPolicy(deadline=30.0),
            cache=False,
            name=f"drip-{how}",
            configure_logs=False,
        ) as system,
    ):
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                dx.Predict("question -> answer")(question="slow?")
            except BaseException as exc:  # collected for the asserts below
                outcome.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        limit = time.monotonic() + 10.0
        while not server.opened and time.monotonic() < limit:
            time.sleep(0.02)
        assert server.opened, "the request never reached the server"
        (program,) = [c.ref for c in sv.which_children(system.programs.name) if c.ref]
        cancelled = time.monotonic()
        if how == "cancel":
            program.tell(dx.messages.Cancel())
        else:
            sv.kill(program, quiet=True)
        caller.join(5)
        _wait_for_close(server, 5.0)
        assert not caller.is_alive()
        if how == "cancel":
            assert isinstance(outcome[0], dx.DeadlineExceeded)  # Cancelled is one
            assert "cancelled" in str(outcome[0])
        else:
            assert isinstance(outcome[0], pykka.ActorDeadError | dx.DeadlineExceeded)
        assert server.closed, "the cancelled request's connection stayed open"
        assert server.closed[0] - cancelled < 2.0  # not the 10 s read timeout
