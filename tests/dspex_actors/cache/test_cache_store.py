"""Cache keys and the LRU/TTL/SQLite cache store (``dspex_actors.cache._store``)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pydantic
import pytest

from dspex_actors.cache._store import CacheConfig, CacheStore, cache_key
from dspex_actors.lm._config import LM

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- keys --------------------------------------------------------------------------


def test_key_is_sha256_of_canonical_json() -> None:
    params = {"temperature": 0.0, "max_tokens": 5}
    key = cache_key("openai/m", MESSAGES, params)
    canonical = json.dumps(
        {"model": "openai/m", "messages": MESSAGES, "params": params},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert key == hashlib.sha256(canonical.encode()).hexdigest()
    assert len(key) == 64


def test_key_is_stable_across_dict_ordering() -> None:
    a = cache_key("m", [{"role": "user", "content": "x"}], {"a": 1, "b": {"c": 2, "d": 3}})
    b = cache_key("m", [{"content": "x", "role": "user"}], {"b": {"d": 3, "c": 2}, "a": 1})
    assert a == b


def test_key_changes_with_model_messages_and_params() -> None:
    base = cache_key("m", MESSAGES, {"temperature": 0.0})
    assert cache_key("m2", MESSAGES, {"temperature": 0.0}) != base
    assert cache_key("m", [{"role": "user", "content": "other"}], {"temperature": 0.0}) != base
    assert cache_key("m", MESSAGES, {"temperature": 0.5}) != base


def test_key_excludes_api_key_and_base() -> None:
    base = cache_key("m", MESSAGES, {"temperature": 0.0})
    polluted = {
        "temperature": 0.0,
        "api_key": "sk-1",
        "API-Key": "sk-2",
        "api_base": "http://a",
        "base_url": "http://b",
        "Authorization": "Bearer sk-3",
    }
    assert cache_key("m", MESSAGES, polluted) == base
    assert cache_key("m", MESSAGES, {"temperature": 0.0, "extra": {"api_key": "sk"}}) == cache_key(
        "m", MESSAGES, {"temperature": 0.0, "extra": {}}
    )


def test_same_request_with_different_keys_shares_a_key_but_not_across_endpoints() -> None:
    a = LM("openai/m", api_base="http://one/v1", api_key="sk-one")
    a2 = LM("openai/m", api_base="http://one/v1/", api_key="sk-other")
    b = LM("openai/m", api_base="http://two/v1", api_key="sk-two")

    def key(lm: LM) -> str:
        return cache_key(lm.model, MESSAGES, lm.request_params(), lm.cache_endpoint)

    assert key(a) == key(a2)  # the key is not part of it, nor a trailing slash
    assert key(a) != key(b)  # another server's answers are not ours
    shared = [lm.model_copy(update={"cache_scope": "team"}) for lm in (a, b)]
    assert key(shared[0]) == key(shared[1])  # shared on purpose


def test_key_handles_unicode_and_rejects_non_json() -> None:
    assert cache_key("m", [{"role": "user", "content": "héllo ✓"}], {}) != cache_key(
        "m", [{"role": "user", "content": "hello"}], {}
    )
    with pytest.raises(TypeError):
        cache_key("m", MESSAGES, {"x": object()})
    with pytest.raises(TypeError):
        cache_key("m", MESSAGES, {"x": float("nan")})


# -- memory tier ---------------------------------------------------------------------


def test_put_then_get_and_miss() -> None:
    store = CacheStore(CacheConfig())
    assert store.get("k") is None
    store.put("k", {"text": "4", "usage": {"total_tokens": 3}})
    assert store.get("k") == {"text": "4", "usage": {"total_tokens": 3}}
    assert store.stats() == {
        "hits": 1,
        "misses": 1,
        "size": 1,
        "evictions": 0,
        "file_entries": 0,
        "storage": "memory",
    }


def test_get_returns_a_fresh_copy_each_time() -> None:
    store = CacheStore()
    value: dict[str, Any] = {"text": "4", "list": [1, 2]}
    store.put("k", value)
    value["list"].append(3)  # mutating the original after put
    first = store.get("k")
    assert first == {"text": "4", "list": [1, 2]}
    first["list"].append(99)
    first["text"] = "changed"
    second = store.get("k")
    assert second == {"text": "4", "list": [1, 2]}
    assert second is not first


def test_lru_evicts_least_recently_used_first() -> None:
    store = CacheStore(CacheConfig(max_entries=3))
    for key in "abc":
        store.put(key, key)
    assert store.get("a") == "a"  # a is now most recent; b is least
    store.put("d", "d")
    assert "b" not in store
    assert store.get("b") is None
    store.put("e", "e")  # evicts c
    assert store.get("c") is None
    assert [store.get(k) for k in "ade"] == ["a", "d", "e"]
    assert len(store) == 3
    assert store.stats()["evictions"] == 2


def test_overwriting_a_key_refreshes_it_without_eviction() -> None:
    store = CacheStore(CacheConfig(max_entries=2))
    store.put("a", 1)
    store.put("b", 2)
    store.put("a", 3)
    store.put("c", 4)  # evicts b, not a
    assert store.get("a") == 3
    assert store.get("b") is None
    assert store.stats()["evictions"] == 1


def test_ttl_expiry_with_injected_clock() -> None:
    clock = FakeClock(1000.0)
    store = CacheStore(CacheConfig(ttl=10.0), clock=clock)
    store.put("k", "v")
    clock.now += 9.9
    assert store.get("k") == "v"
    clock.now += 0.1
    assert store.get("k") is None
    assert len(store) == 0
    assert store.stats()["misses"] == 1


@pytest.mark.parametrize(
    "value",
    [
        object(),
        (1, 2),
        {1: "int key"},
        {"nested": [1, {2, 3}]},
        float("nan"),
        float("inf"),
        b"bytes",
        {"when": __import__("datetime").date(2024, 1, 1)},
    ],
)
def test_non_json_values_are_rejected_and_not_stored(value: Any) -> None:
    store = CacheStore()
    with pytest.raises(TypeError):
        store.put("k", value)
    assert store.get("k") is None
    assert len(store) == 0


def test_all_plain_json_types_round_trip() -> None:
    store = CacheStore()
    value = {"s": "é", "i": 1, "f": 1.5, "b": True, "n": None, "l": [1, "x", [None]], "d": {}}
    store.put("k", value)
    assert store.get("k") == value
    scalars: list[Any] = ["text", 3, 2.5, False, None, []]
    for scalar in scalars:
        store.put("s", scalar)
        assert store.get("s") == scalar


def test_delete_and_clear() -> None:
    store = CacheStore()
    store.put("a", 1)
    store.put("b", 2)
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.get("a") is None
    store.clear()
    assert len(store) == 0
    assert store.get("b") is None


def test_non_str_keys_are_rejected() -> None:
    store = CacheStore()
    with pytest.raises(TypeError):
        store.put(1, "v")  # type: ignore[arg-type]


def test_use_after_close_raises() -> None:
    store = CacheStore()
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.get("k")


@pytest.mark.parametrize("kwargs", [{"max_entries": 0}, {"ttl": 0.0}, {"ttl": -1.0}])
def test_config_rejects_invalid_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        CacheConfig(**kwargs)


# -- SQLite tier -------------------------------------------------------------------


def test_file_persists_across_store_instances(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    with CacheStore(CacheConfig(path=path)) as store:
        store.put("k", {"text": "4"})
        store.put("gone", 1)
        store.delete("gone")
    with CacheStore(CacheConfig(path=str(path))) as again:
        assert len(again) == 0  # memory tier starts empty
        assert again.get("k") == {"text": "4"}
        assert again.get("gone") is None
        assert len(again) == 1  # the file hit was copied into memory
        assert again.stats()["file_entries"] == 1


def test_file_uses_wal_one_table_and_stores_json_text(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with CacheStore(CacheConfig(path=path), wall_clock=lambda: 1234.5) as store:
        store.put("k", {"a": [1, 2]})
        db = sqlite3.connect(str(path))
        try:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            rows = db.execute("SELECT key, value, created FROM cache").fetchall()
            tables = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        finally:
            db.close()
    assert tables == [("cache",)]
    assert rows == [("k", '{"a":[1,2]}', 1234.5)]
    assert json.loads(rows[0][1]) == {"a": [1, 2]}


def test_memory_eviction_keeps_entries_in_the_file(tmp_path: Path) -> None:
    with CacheStore(CacheConfig(max_entries=1, path=tmp_path / "c.db")) as store:
        store.put("a", 1)
        store.put("b", 2)  # evicts a from memory
        assert "a" not in store
        assert store.get("a") == 1  # read back from the file
        assert store.stats()["file_entries"] == 2


def test_file_entries_expire_by_wall_clock_age(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    wall = FakeClock(1_000_000.0)
    mono = FakeClock(5.0)
    config = CacheConfig(path=path, ttl=60.0)
    with CacheStore(config, clock=mono, wall_clock=wall) as store:
        store.put("k", "v")
        store.put("old", "x")
    wall.now += 50.0  # a restart 50 s later: 10 s left for "k"
    with CacheStore(config, clock=mono, wall_clock=wall) as store:
        assert store.get("k") == "v"
        mono.now += 9.9
        assert store.get("k") == "v"  # memory copy keeps the original expiry
        mono.now += 0.1
        assert store.get("k") is None
    wall.now += 11.0
    with CacheStore(config, clock=mono, wall_clock=wall) as store:
        assert store.stats()["file_entries"] == 0  # expired rows pruned on open
        assert store.get("old") is None


def test_clear_empties_the_file_too(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with CacheStore(CacheConfig(path=path)) as store:
        store.put("a", 1)
        store.clear()
    with CacheStore(CacheConfig(path=path)) as store:
        assert store.get("a") is None


def test_corrupt_row_is_a_miss_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with CacheStore(CacheConfig(path=path)) as store:
        store.put("a", 1)
    db = sqlite3.connect(str(path))
    db.execute("UPDATE cache SET value = 'not json{' WHERE key = 'a'")
    db.commit()
    db.close()
    with CacheStore(CacheConfig(path=path)) as store:
        assert store.get("a") is None
        assert store.stats()["file_entries"] == 0


def test_file_never_contains_the_api_key(tmp_path: Path) -> None:
    secret = "sk-never-on-disk-42"
    lm = LM("openai/m", api_base="http://x/v1", api_key=secret)
    path = tmp_path / "c.db"
    with CacheStore(CacheConfig(path=path)) as store:
        key = cache_key(lm.model, MESSAGES, lm.request_params())
        store.put(key, {"text": "4"})
    for file in tmp_path.iterdir():
        assert secret.encode() not in file.read_bytes()
