"""The API key never shows: not in errors, logs, reprs, stats, nor in saved files.

A hostile loopback server echoes the ``Authorization`` header back in every place a
server can put text (error messages placed to straddle our cuts, plain-text bodies,
``error`` objects in a 200, cut answers, refusals, completions); other faults come
from the transport (dropped, silent, dripping and refused connections, a body over
the cap). Every text the run produced is then searched for the key and for every
8-character piece of it.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

import dspex_actors as dx
from dspex_actors.lm import build_plan, execute_plan, make_session
from dspex_actors.lm._wire import redact
from tests.dspex_actors.lm._loopback import DripServer, Reply, ScriptedServer, completion

KEY = "sk-live-Zq7Xw9Pm4Rt2Yk8Lb3Nc6Vd1Hf5Jg0"
PIECES = [KEY[i : i + 8] for i in range(len(KEY) - 7)]
MESSAGES = [{"role": "user", "content": "hi"}]


def leaks(text: str) -> list[str]:
    """The pieces of the key found in ``text`` (empty: no leak)."""
    return [piece for piece in PIECES if piece in text]


def _echo(request: dict[str, Any]) -> str:
    return str(request["headers"].get("Authorization", ""))


def _faults() -> dict[str, Callable[[dict[str, Any]], Reply]]:
    """Each fault a hostile server can answer with, echoing the key it was sent."""
    answer = "[[ ## answer ## ]]\n{}\n\n[[ ## completed ## ]]"
    return {
        "401 straddling the 500-char cut": lambda r: Reply(
            401, {"error": {"message": "." * 470 + "Incorrect API key provided: " + _echo(r)}}
        ),
        "500 text straddling the cut": lambda r: Reply(500, "." * 490 + _echo(r)),
        "200 garbage straddling the 200 cut": lambda r: Reply(200, "<html>" + "." * 190 + _echo(r)),
        "429 echo": lambda r: Reply(
            429, {"error": {"message": "limit for " + _echo(r)}}, (("Retry-After", "0"),)
        ),
        "200 quota error": lambda r: Reply(
            200, {"error": {"message": "no quota: " + _echo(r), "type": "insufficient_quota"}}
        ),
        "200 error with choices": lambda r: Reply(
            200, {**completion("x"), "error": {"message": _echo(r), "type": "server_error"}}
        ),
        "error message as an object": lambda r: Reply(500, {"error": {"message": {"k": _echo(r)}}}),
        "truncated echo": lambda r: Reply(200, completion(answer.format(_echo(r)), "length")),
        "refusal echo": lambda r: Reply(200, completion(None, refusal="No, " + _echo(r))),
        "content filter echo": lambda r: Reply(200, completion(_echo(r), "content_filter")),
        "answer echo": lambda r: Reply(200, completion(answer.format(_echo(r)))),
        "unparsable echo": lambda r: Reply(200, completion("nothing here " + _echo(r))),
        "400 with a piece of the key": lambda r: Reply(
            400, {"error": {"message": "key " + KEY[5:25] + "... is not valid"}}
        ),
        "drop": lambda r: Reply(action="drop"),
        "silent": lambda r: Reply(action="silent", seconds=3.0),
        "body over the cap": lambda r: Reply(200, _echo(r) * 40_000),
    }


def _texts_of(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for name in ("text", "partial_text", "refusal", "message"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            texts.append(value)
    return texts


@pytest.fixture
def servers() -> Iterator[tuple[ScriptedServer, DripServer, str]]:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_base = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    closed.close()  # nothing listens there now: connection refused
    with ScriptedServer() as scripted, DripServer(interval=0.05, drip_bytes=200) as drip:
        yield scripted, drip, dead_base


def _run_campaign(
    scripted: ScriptedServer, drip: DripServer, dead_base: str, cache_path: Path
) -> list[str]:
    """Run every fault through a real system; return every text it produced."""
    texts: list[str] = []
    key_from_a_file = KEY + "\n"  # as read from a file
    lms = {
        "default": dx.LM(
            "openai/hostile",
            api_base=scripted.api_base,
            api_key=key_from_a_file,
            timeout=0.5,
            max_response_bytes=1024 * 1024,
            breaker_threshold=1000,
        ),
        "dead": dx.LM("openai/dead", api_base=dead_base, api_key=KEY),
        "drip": dx.LM("openai/drip", api_base=drip.api_base, api_key=KEY, attempt_timeout=0.5),
    }
    retry = dx.RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, deadline=5.0)
    system = dx.start(
        lms=lms,
        cache=dx.CacheConfig(path=cache_path),
        retry=retry,
        name="keys",
        configure_logs=False,
    )
    with system:
        outcomes: dict[str, Any] = {}
        for name, fault in _faults().items():
            scripted.set_default(fault)
            try:
                outcomes[name] = dx.Predict("question -> answer")(question=f"{name}?")
            except dx.LMError as exc:
                outcomes[name] = exc
        for lm_name in ("dead", "drip"):
            try:
                outcomes[lm_name] = dx.Predict("question -> answer", lm=lm_name)(question="q?")
            except dx.LMError as exc:
                outcomes[lm_name] = exc
        for outcome in outcomes.values():
            texts.extend(
                _texts_of(outcome) if isinstance(outcome, BaseException) else [repr(outcome)]
            )
        texts += [repr(system), str(system.tree()), repr(system.stats()), repr(lms), str(lms)]
        assert isinstance(outcomes["answer echo"], dx.Prediction)  # it did succeed
        assert {type(o).__name__ for o in outcomes.values()} >= {
            "LMBadRequest",
            "LMServerError",
            "LMRateLimited",
            "LMQuotaExceeded",
            "LMTruncated",
            "LMRefused",
            "AdapterParseError",
            "LMConnectionError",
            "LMTimeout",
            "LMResponseTooLarge",
        }
    for path in cache_path.parent.iterdir():
        texts.append(path.read_bytes().decode("latin-1"))
    return texts


def test_a_fault_campaign_never_shows_the_key_or_any_8_character_piece_of_it(
    servers: tuple[ScriptedServer, DripServer, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scripted, drip, dead_base = servers
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    with caplog.at_level(logging.DEBUG), capture_logs() as events:
        texts = _run_campaign(scripted, drip, dead_base, cache_dir / "cache.sqlite")
    texts += [repr(event) for event in events]
    texts += [caplog.text]
    sent = {r["headers"].get("Authorization") for r in scripted.requests}
    assert sent == {f"Bearer {KEY}"}  # the key went out, stripped of its newline
    assert len(scripted.requests) >= len(_faults())
    assert any("worker_crashed" in repr(e) for e in events)  # the logs were captured
    found = {piece for text in texts for piece in leaks(text)}
    assert found == set(), f"pieces of the key leaked: {sorted(found)}"


# -- the parts, one by one --------------------------------------------------------------


def test_a_key_read_from_a_file_is_stripped_of_its_newline() -> None:
    lm = dx.LM("openai/m", api_key=f"  {KEY}\n")
    assert lm.api_key is not None
    assert lm.api_key.get_secret_value() == KEY
    assert build_plan(lm, MESSAGES).headers["Authorization"] == f"Bearer {KEY}"
    assert dx.LM("openai/m", api_key=" \n").api_key is None


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (KEY[:10] + "\n" + KEY[10:], "control character (U+000A) at position 10"),
        (KEY[:12] + "\x00" + KEY[12:], "control character (U+0000) at position 12"),
        (KEY[:7] + "\u2019" + KEY[7:], "non-latin-1 character at position 7"),
    ],
)
def test_a_key_with_a_control_or_non_latin1_character_is_refused_without_echoing_it(
    bad: str, what: str
) -> None:
    with pytest.raises(ValueError, match="api_key has a") as info:
        dx.LM("openai/m", api_key=bad)
    texts = [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    assert what in str(info.value)
    assert "LM('openai/m')" in str(info.value)
    assert not any(leaks(text) for text in texts)


def test_a_bad_key_from_the_environment_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY + "\r")
    assert dx.LM("openai/m").api_key.get_secret_value() == KEY  # type: ignore[union-attr]
    monkeypatch.setenv("OPENAI_API_KEY", KEY[:9] + "\x1b" + KEY[9:])
    with pytest.raises(ValueError, match=r"\$OPENAI_API_KEY has a control character") as info:
        dx.LM("openai/m")
    assert not leaks(str(info.value))


def test_redact_masks_the_key_and_every_8_character_piece_even_across_the_cut() -> None:
    secrets = (KEY,)
    assert redact(f"key={KEY}!", secrets) == "key=***!"
    assert redact(f"part {KEY[3:15]} end", secrets) == "part *** end"
    assert redact(f"short {KEY[:7]} stays", secrets) == f"short {KEY[:7]} stays"  # < 8 chars
    for offset in range(len(KEY) + 2):  # the key starts anywhere around the cut
        text = "." * (100 - offset) + KEY + " tail"
        cut = redact(text, secrets, 100)
        assert not leaks(cut), (offset, cut)
        assert len(cut) <= 100 + len("***...")
    many = KEY * 50
    assert not leaks(redact(many, secrets, 333))


def test_a_server_echoing_the_key_past_the_cut_gets_it_masked_before_the_cut() -> None:
    with ScriptedServer() as server, make_session(1) as session:
        lm = dx.LM("openai/m", api_base=server.api_base, api_key=KEY)
        for pad in range(470, 505, 3):

            def echo_after(request: dict[str, Any], pad: int = pad) -> Reply:
                return Reply(401, {"error": {"message": "." * pad + _echo(request)}})

            server.set_default(echo_after)
            with pytest.raises(dx.LMBadRequest) as info:
                execute_plan(session, build_plan(lm, MESSAGES))
            assert not leaks(str(info.value)), pad
            assert not leaks("".join(traceback.format_exception(info.value)))


def test_a_library_exception_holding_the_key_is_not_chained_to_the_error() -> None:
    import requests
    import responses

    lm = dx.LM("openai/m", api_base="http://llm.test/v1", api_key=KEY)
    url = "http://llm.test/v1/chat/completions"
    with make_session(1) as session, responses.RequestsMock() as mocked:
        mocked.post(url, body=requests.ConnectionError(f"refused, header was Bearer {KEY}"))
        with pytest.raises(dx.LMConnectionError) as info:
            execute_plan(session, build_plan(lm, MESSAGES))
        assert info.value.__cause__ is None
        assert not leaks("".join(traceback.format_exception(info.value)))
        assert "refused, header was Bearer ***" in str(info.value)
        clean = requests.ConnectionError("refused")
        mocked.post(url, body=clean)
        with pytest.raises(dx.LMConnectionError) as info:
            execute_plan(session, build_plan(lm, MESSAGES))
        assert info.value.__cause__ is clean  # nothing secret: the cause stays for debugging
