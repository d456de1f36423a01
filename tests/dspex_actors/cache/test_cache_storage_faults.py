"""A storage problem is only ever a miss: the file tier degrades, the memory tier serves.

Each test breaks the SQLite file the way disks and people do (garbage over its
head, a folder that cannot exist, a file swapped under a running system) and checks
that nothing raises, one warning is logged, a corrupt file is renamed aside, and the
file comes back after the retry delay.
"""

from __future__ import annotations

from pathlib import Path

import structlog

import dspex_actors as dx
from dspex_actors.cache import CacheConfig, CacheStore
from dspex_actors.cache._file import FileTier
from tests.dspex_actors.fixture_types import SystemFactory

VALUE = {"text": "Paris", "usage": {"total_tokens": 3}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _smash(path: Path) -> None:
    """Overwrite the head of the database and of its -wal / -shm files."""
    for suffix in ("", "-wal", "-shm"):
        target = Path(f"{path}{suffix}")
        if target.exists():
            with target.open("r+b") as file:
                file.write(b"\xde\xad\xbe\xef" * 256)


def test_a_corrupt_file_at_start_degrades_instead_of_raising(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"this is not a database" * 100)

    with structlog.testing.capture_logs() as logs:
        store = CacheStore(CacheConfig(path=path))
    store.put("k", VALUE)

    assert store.get("k") == VALUE  # the memory tier serves
    stats = store.stats()
    assert stats["storage"] == "degraded"
    assert "not a database" in stats["storage_error"]
    assert len(stats["quarantined"]) == 1 and Path(stats["quarantined"][0]).exists()
    assert [e["event"] for e in logs] == ["cache.storage_degraded"]
    store.close()


def test_a_file_corrupted_while_running_is_quarantined_and_memory_keeps_serving(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.db"
    store = CacheStore(CacheConfig(path=path, max_entries=2))
    for i in range(5):
        store.put(f"k{i}", {"text": str(i)})
    _smash(path)

    with structlog.testing.capture_logs() as logs:
        misses = [store.get(f"k{i}") for i in range(3)]  # evicted from memory: the file is read
        store.put("new", VALUE)
        store.put("newer", VALUE)

    assert misses == [None, None, None]
    assert store.get("newer") == VALUE
    assert store.stats()["storage"] == "degraded"
    assert [e["event"] for e in logs] == ["cache.storage_degraded"]  # once, not per call
    assert store.stats()["quarantined"]
    store.close()


def test_storage_is_retried_after_the_delay_and_then_persists(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"garbage" * 1000)
    clock = FakeClock()
    tier = FileTier(path, ttl=None, clock=clock, retry_after_s=30.0)
    assert tier.state == "degraded"

    clock.now += 10.0
    tier.put("early", "1")
    assert tier.state == "degraded" and tier.get("early") is None
    clock.now += 25.0
    tier.put("late", "2")

    assert tier.state == "ok"
    assert tier.get("late") is not None and tier.get("late")[0] == "2"  # type: ignore[index]
    tier.close()


def test_a_folder_that_cannot_be_created_degrades(tmp_path: Path) -> None:
    store = CacheStore(CacheConfig(path="/proc/no-such-dir/cache.db"))
    store.put("k", VALUE)

    assert store.get("k") == VALUE
    assert store.stats()["storage"] == "degraded"
    store.close()


def test_a_system_with_a_corrupt_cache_file_starts_and_serves(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"\x00garbage" * 512)
    server = dx.RuleBasedLMServer().start()
    try:
        lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-test")
        with dx.start(lm=lm, cache=CacheConfig(path=path), name="corrupt-at-start") as system:
            qa = dx.Predict("question -> answer")
            first = qa(question="What is the capital of France?").answer
            again = qa(question="What is the capital of France?").answer

            assert first == again
            assert "Paris" in first
            assert system.stats()["cache"]["storage"] == "degraded"
            assert system.stats()["cache"]["hits"] == 1  # memory still caches
            assert system.tree().find("cache").restarts == 0  # type: ignore[union-attr]
    finally:
        server.stop()


def test_smashing_the_file_under_a_running_system_never_reaches_the_root(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.db"
    server = dx.RuleBasedLMServer().start()
    try:
        lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-test")
        with dx.start(lm=lm, cache=CacheConfig(path=path, max_entries=1), name="smashed") as system:
            qa = dx.Predict("question -> answer")
            questions = [f"What is {i} + {i}?" for i in range(6)]
            before = [qa(question=q).answer for q in questions]
            _smash(path)
            after = [qa(question=q).answer for q in questions]  # file reads fail: misses

            assert before == after
            tree = system.tree()
            assert tree.find("cache").restarts == 0  # type: ignore[union-attr]
            assert tree.state == "alive"
            assert system.stats()["cache"]["storage"] == "degraded"
    finally:
        server.stop()


def test_a_cache_get_with_a_non_str_key_is_a_miss_and_the_actor_lives() -> None:
    import supervisors as sv
    from dspex_actors.cache import CacheActor, CacheGet, CachePut

    ref = CacheActor.start(CacheConfig())
    try:
        assert ref.ask(CacheGet(123), timeout=5) is None  # type: ignore[arg-type]
        ref.tell(CachePut(("not", "str"), VALUE))  # type: ignore[arg-type]
        ref.tell(CachePut("k", VALUE))
        assert ref.ask(CacheGet("k"), timeout=5) == VALUE
        assert ref.is_alive()
    finally:
        sv.stop(ref, timeout=5)


def test_a_repeat_right_after_a_call_hits_a_file_backed_cache(
    tmp_path: Path, lm_server: dx.RuleBasedLMServer, start_system: SystemFactory
) -> None:
    system = start_system(lm_server, cache=CacheConfig(path=tmp_path / "cache.db"))
    qa = dx.Predict("question -> answer")

    answers = [qa(question="What is the capital of Peru?").answer for _ in range(5)]

    assert len(set(answers)) == 1
    assert lm_server.stats()["requests"] == 1  # every repeat was a hit, none raced the write
    assert system.stats()["cache"]["hits"] == 4
