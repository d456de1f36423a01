"""One cache file shared by two servers with the same model name keeps their answers apart,
unless the LMs share a ``cache_scope`` on purpose."""

from __future__ import annotations

from pathlib import Path

import dspex_actors as dx

QUESTION = "What is the capital of France?"


def _ask(server: dx.RuleBasedLMServer, path: Path, name: str, **lm_options: str) -> str:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="k", **lm_options)
    with dx.start(lm=lm, cache=dx.CacheConfig(path=path), name=name, configure_logs=False):
        return str(dx.Predict("question -> answer")(question=QUESTION).answer)


def test_a_shared_cache_file_never_serves_one_servers_answer_to_another(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with (
        dx.RuleBasedLMServer() as paris,
        dx.RuleBasedLMServer(knowledge={"capital of France": "Lyon"}) as lyon,
    ):
        assert "Paris" in _ask(paris, path, "one")
        assert "Lyon" in _ask(lyon, path, "two")  # not the cached "Paris"
        assert lyon.request_count == 1
        assert "Paris" in _ask(paris, path, "three")  # its own entry is still there
        assert paris.request_count == 1


def test_lms_with_the_same_cache_scope_share_entries_on_purpose(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with (
        dx.RuleBasedLMServer() as paris,
        dx.RuleBasedLMServer(knowledge={"capital of France": "Lyon"}) as lyon,
    ):
        assert "Paris" in _ask(paris, path, "one", cache_scope="team")
        assert "Paris" in _ask(lyon, path, "two", cache_scope="team")  # served from the cache
        assert lyon.request_count == 0
