"""No message kills a supervisor; a handler can refuse a request without crashing.

A supervisor acts on system messages (ExitSignal, its own calls): a forged or
malformed one is logged and dropped. Logging a user object never raises, whatever
its ``__repr__`` does. ``sv.Reject`` answers an asker with an error while the
actor lives on.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

import supervisors as sv


class Echo(sv.Actor):
    def on_receive(self, message: Any) -> Any:
        if message == "refuse":
            return sv.Reject(KeyError("no such thing"))
        return message


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class NonStrRepr:
    def __repr__(self) -> Any:
        return 42


@pytest.fixture
def tree() -> Any:
    root = sv.Supervisor.start(
        [sv.ChildSpec(id="echo", start=Echo.start, name="hostile.echo")], name="hostile.root"
    )
    yield root
    sv.stop(root, timeout=10)


def test_an_exit_signal_without_an_actor_ref_is_dropped_and_logged(tree: Any) -> None:
    with capture_logs() as logs:
        sv.whereis("hostile.root").tell(sv.ExitSignal(None, "x"))  # type: ignore[arg-type]
        sv.get_state(tree)  # a round trip: the signal was handled before this

    assert tree.is_alive()
    assert any(e["event"] == "malformed_message" for e in logs)
    assert sv.named("hostile.echo").ask("ping", timeout=5) == "ping"


@pytest.mark.parametrize("message", [BadRepr(), NonStrRepr(), object(), b"\xff" * 10_000])
def test_a_message_whose_repr_fails_or_is_huge_does_not_kill_the_supervisor(
    tree: Any, message: Any
) -> None:
    with capture_logs() as logs:
        tree.tell(message)
        sv.get_state(tree)

    assert tree.is_alive()
    logged = [e for e in logs if e["event"] == "unexpected_message"]
    assert logged and len(logged[0]["message"]) <= sv.safe_repr.__defaults__[0]  # type: ignore[index]


def test_reject_raises_in_the_asker_and_the_actor_lives_on(tree: Any) -> None:
    echo = sv.named("hostile.echo")
    before = echo.resolve()

    with pytest.raises(KeyError, match="no such thing"):
        echo.ask("refuse", timeout=5)

    assert echo.resolve() is before and before.is_alive()
    assert sv.tree(tree).find("echo").restarts == 0  # type: ignore[union-attr]
    assert echo.ask("still here", timeout=5) == "still here"


def test_a_told_reject_is_logged_not_a_crash(tree: Any) -> None:
    echo = sv.named("hostile.echo")
    with capture_logs() as logs:
        echo.tell("refuse")
        assert echo.ask("after", timeout=5) == "after"

    assert [e["event"] for e in logs if e["event"] == "message_rejected"] == ["message_rejected"]


def test_safe_repr_never_raises_and_cuts_long_text() -> None:
    assert sv.safe_repr(BadRepr()) == "<BadRepr object (repr failed: RuntimeError)>"
    assert sv.safe_repr(NonStrRepr()) == "<NonStrRepr object (repr failed: TypeError)>"
    assert len(sv.safe_repr("x" * 10_000)) == 500
    assert sv.describe_reason(BadRepr()) == "<BadRepr object (repr failed: RuntimeError)>"


hostile = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.builds(BadRepr),
    st.builds(sv.ExitSignal, st.none() | st.integers() | st.text(max_size=5), st.text(max_size=5)),
    st.builds(sv.Down, st.none(), st.none(), st.text(max_size=5)),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


@settings(max_examples=200, deadline=1000)
@given(messages=st.lists(hostile, min_size=1, max_size=10))
def test_random_messages_never_kill_a_supervisor_nor_hang_an_ask(messages: list[Any]) -> None:
    root = sv.Supervisor.start([sv.ChildSpec(id="echo", start=Echo.start)])
    try:
        for message in messages:
            root.tell(message)
        sv.get_state(root, timeout=5)  # answers: nothing hung it
        assert root.is_alive()
        assert sv.tree(root).find("echo").restarts == 0  # type: ignore[union-attr]
    finally:
        sv.stop(root, timeout=10)
