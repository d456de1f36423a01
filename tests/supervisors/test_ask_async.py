"""``sv.ask_future`` / ``sv.ask_async`` / ``sv.FutureReply``: asking actors from asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

import supervisors as sv


class Echo(sv.Actor):
    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise KeyError("boom")
        if isinstance(message, tuple) and message[0] == "sleep":
            time.sleep(message[1])
            return "slept"
        return ("echo", message)


class AwaitableEcho(Echo):
    @staticmethod
    def _create_future() -> sv.FutureReply:
        return sv.FutureReply()


@pytest.fixture
def echo() -> Iterator[pykka.ActorRef[Any]]:
    with sv.spawn_options(name="echo"):
        ref = Echo.start()
    yield ref
    sv.stop(ref)


def test_ask_future_returns_a_concurrent_future_of_the_answer(echo: Any) -> None:
    future = sv.ask_future(echo, "hi")
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=5) == ("echo", "hi")
    assert sv.ask_future("echo", "by name").result(timeout=5) == ("echo", "by name")
    assert sv.ask_future(sv.named("echo"), "named").result(timeout=5) == ("echo", "named")


def test_ask_future_carries_the_handlers_exception_as_raised(echo: Any) -> None:
    with pytest.raises(KeyError, match="boom"):
        sv.ask_future(echo, "boom").result(timeout=5)


def test_ask_future_of_a_dead_actor_fails_with_actor_dead_error(echo: Any) -> None:
    sv.stop(echo)
    with pytest.raises(sv.ActorDeadError):
        sv.ask_future(echo, "hi").result(timeout=5)
    with pytest.raises(sv.NoProc):
        sv.ask_future("nobody-by-this-name", "hi")
    with pytest.raises(TypeError):
        sv.ask_future(42, "hi")


def test_an_actor_that_dies_before_answering_fails_the_future(echo: Any) -> None:
    busy = sv.ask_future(echo, ("sleep", 0.3))
    queued = sv.ask_future(echo, "never handled")
    sv.kill(echo, quiet=True)
    with pytest.raises(sv.ActorDeadError):
        queued.result(timeout=5)
    with pytest.raises(sv.ActorDeadError):
        busy.result(timeout=5)


def test_ask_async_awaits_without_blocking_the_loop(echo: Any) -> None:
    async def main() -> tuple[Any, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.ensure_future(tick())
        answer = await sv.ask_async(echo, ("sleep", 0.3), timeout=10)
        ticking.cancel()
        return answer, ticks

    answer, ticks = asyncio.run(main())
    assert answer == "slept"
    assert ticks >= 5  # the loop ran while the actor worked


def test_ask_async_raises_typed_errors_and_pykka_timeout(echo: Any) -> None:
    with pytest.raises(pykka.Timeout, match=r"within 0\.05 s"):
        asyncio.run(sv.ask_async(echo, ("sleep", 0.5), timeout=0.05))
    with pytest.raises(KeyError, match="boom"):  # a crash: the asker gets its error
        asyncio.run(sv.ask_async(echo, "boom"))


def test_a_cancelled_ask_async_drops_the_answer_and_the_actor_goes_on(echo: Any) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(sv.ask_async(echo, ("sleep", 0.2), timeout=None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sv.ask(echo, "still here", timeout=5) == ("echo", "still here")


def test_create_future_hook_makes_pykka_asks_awaitable_without_a_thread() -> None:
    ref = AwaitableEcho.start()
    try:
        reply = ref.ask("x", block=False)
        assert isinstance(reply, sv.FutureReply)
        assert reply.get(timeout=5) == ("echo", "x")

        async def main() -> Any:
            before = threading.active_count()
            result = await ref.ask(("sleep", 0.1), block=False)
            assert threading.active_count() == before
            return result

        assert asyncio.run(main()) == "slept"
        doubled = ref.ask("y", block=False).map(lambda answer: answer[1] * 2)
        assert doubled.get(timeout=5) == "yy"
    finally:
        sv.stop(ref)


def test_a_second_answer_to_a_future_reply_is_refused() -> None:
    reply = sv.FutureReply()
    reply.set(1)
    with pytest.raises(queue.Full):  # what the actor loop ignores
        reply.set(2)
    assert reply.get(timeout=1) == 1
    with pytest.raises(pykka.Timeout):
        sv.FutureReply().get(timeout=0.01)
