"""The cache view: the request path's lock-protected way to the cache actor's store."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors.cache import CacheActor, CacheStore, CacheView, view_of
from dspex_actors.primitives import GetStats

_names = itertools.count(1)


def test_a_view_returns_fresh_copies_and_counts_hits_and_misses() -> None:
    view = CacheView(CacheStore())
    assert view.get("k", timeout=1.0) is None
    assert view.put("k", {"text": "hello", "usage": {"total_tokens": 3}})
    first = view.get("k", timeout=1.0)
    first["text"] = "mutated"
    assert view.get("k", timeout=1.0) == {"text": "hello", "usage": {"total_tokens": 3}}
    assert view.store.stats()["hits"] == 2 and view.store.stats()["misses"] == 1


def test_a_view_refuses_values_that_are_not_json() -> None:
    view = CacheView(CacheStore())
    with pytest.raises(TypeError):
        view.put("k", {"t": (1, 2)})
    assert view.get("k", timeout=1.0) is None


def test_a_busy_store_is_a_miss_within_the_timeout() -> None:
    view = CacheView(CacheStore())
    view.put("k", {"v": 1})
    with view.lock:  # the owner is busy (a long SQLite write, say)
        assert view.get("k", timeout=0.01) is None
        assert view.put("other", {"v": 2}) is False  # the caller hands it to the actor
    assert view.get("k", timeout=1.0) == {"v": 1}


def test_a_closed_view_is_a_miss_and_takes_no_writes() -> None:
    view = CacheView(CacheStore())
    view.put("k", {"v": 1})
    view.close()
    assert view.closed
    assert view.get("k", timeout=1.0) is None
    assert view.put("k", {"v": 2}) is False


def test_a_file_backed_view_leaves_writes_to_the_actor(tmp_path: Path) -> None:
    store = CacheStore(dx.CacheConfig(path=tmp_path / "c.sqlite3"))
    view = CacheView(store)
    assert view.put("k", {"v": 1}) is False
    store.put("k", {"v": 1})
    assert view.get("k", timeout=1.0) == {"v": 1}
    view.close()


def test_threads_writing_and_reading_through_one_view_lose_nothing() -> None:
    view = CacheView(CacheStore(dx.CacheConfig(max_entries=100_000)))
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait(timeout=10)
        for i in range(300):
            assert view.put(f"{worker}:{i}", {"i": i})
            assert view.get(f"{worker}:{i}", timeout=5.0) == {"i": i}

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(view.store) == 8 * 300
    assert view.store.stats()["hits"] == 8 * 300


# ------------------------------------------------------------ with the cache actor


@pytest.fixture(scope="module")
def server() -> Iterator[dx.RuleBasedLMServer]:
    srv = dx.RuleBasedLMServer().start()
    yield srv
    srv.stop()


def test_the_request_path_never_messages_a_memory_only_cache(
    server: dx.RuleBasedLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = CacheActor.on_receive

    def counting(self: CacheActor, message: Any) -> Any:
        seen.append(type(message).__name__)
        return original(self, message)

    monkeypatch.setattr(CacheActor, "on_receive", counting)
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="x")
    with dx.start(lm=lm, name=f"cv{next(_names)}", configure_logs=False) as system:
        qa = dx.Predict("question -> answer")
        first = qa(question="What is 20 + 1?")
        again = qa(question="What is 20 + 1?")
        assert again.answer == first.answer
        assert seen == []
        stats = system.stats()["cache"]
    assert seen == []  # stats are read through the view too, not asked
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["size"] == 1


def test_a_restarted_cache_actor_publishes_a_new_view(server: dx.RuleBasedLMServer) -> None:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="x")
    with dx.start(lm=lm, name=f"cv{next(_names)}", configure_logs=False) as system:
        assert system.cache is not None
        old = view_of(system.cache.resolve())
        assert old is not None
        sv.kill(system.cache.resolve(), reason="chaos")
        sv.wait_for_name(system.cache.name, timeout=5)
        system.cache.ask(GetStats(), timeout=5)  # answered once the replacement started
        new = view_of(system.cache.resolve())
        assert new is not None and new is not old and not new.closed
        qa = dx.Predict("question -> answer")
        qa(question="What is 30 + 1?")
        qa(question="What is 30 + 1?")
        assert system.stats()["cache"]["hits"] == 1
