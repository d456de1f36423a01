"""Tests of the rule-based loopback LM server: real HTTP via ``requests``, no mocks.

Prompts are built by hand here, byte-faithful to DSPy 3.x's ChatAdapter and
JSONAdapter output (REFERENCE.md section 3), so the server's own parser is
checked against the format, not against the package's adapter code.
"""

from __future__ import annotations

import ast
import concurrent.futures
import json
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import requests

from dspex_actors.testing import DEFAULT_MODEL, Fault, RuleBasedLMServer
from dspex_actors.testing._cli import main
from tests.dspex_actors.fixture_types import ServerFactory
from tests.paths import ROOT

Field = tuple[str, str]  # (name, type name as DSPy's get_annotation_name prints it)


# --------------------------------------------------------------------------------------
# DSPy-format prompt builders (ChatAdapter / JSONAdapter, DSPy 3.x)
# --------------------------------------------------------------------------------------


def _describe(fields: Sequence[Field]) -> str:
    # get_field_description_string: "1. `name` (type): " + desc, joined by "\n", stripped.
    return "\n".join(f"{i + 1}. `{n}` ({t}): " for i, (n, t) in enumerate(fields)).strip()


def _note(type_name: str) -> str:
    # translate_field_type for output fields.
    if type_name == "str":
        return ""
    if type_name == "bool":
        desc = "must be True or False"
    elif type_name in ("int", "float"):
        desc = f"must be a single {type_name} value"
    elif type_name.startswith("Literal["):
        opts = [o.strip().strip("'") for o in type_name[8:-1].split(",")]
        desc = f"must exactly match (no extra characters) one of: {'; '.join(opts)}"
    else:
        schema = {"items": {"type": "string"}, "type": "array"}
        desc = f"must adhere to the JSON schema: {json.dumps(schema)}"
    return " " * 8 + f"# note: the value you produce {desc}"


def _objective(inputs: Sequence[Field], outputs: Sequence[Field]) -> str:
    ins = ", ".join(f"`{n}`" for n, _ in inputs)
    outs = ", ".join(f"`{n}`" for n, _ in outputs)
    return (
        "In adhering to this structure, your objective is: \n"
        f"        Given the fields {ins}, produce the fields {outs}."
    )


def chat_system(inputs: Sequence[Field], outputs: Sequence[Field]) -> str:
    description = (
        f"Your input fields are:\n{_describe(inputs)}\n"
        f"Your output fields are:\n{_describe(outputs)}"
    )
    parts = ["All interactions will be structured in the following way, with the appropriate "
             "values filled in."]  # fmt: skip
    parts += [f"[[ ## {n} ## ]]\n{{{n}}}" for n, _ in inputs]
    parts += [f"[[ ## {n} ## ]]\n{{{n}}}{_note(t)}" for n, t in outputs]
    parts.append("[[ ## completed ## ]]\n")
    structure = "\n\n".join(parts).strip()
    return f"{description}\n{structure}\n{_objective(inputs, outputs)}"


def _type_info(type_name: str) -> str:
    return "" if type_name == "str" else f" (must be formatted as a valid Python {type_name})"


def chat_user(values: Mapping[str, str], outputs: Sequence[Field] | None = None) -> str:
    parts = [f"[[ ## {k} ## ]]\n{v}" for k, v in values.items()]
    if outputs is not None:
        parts.append(
            "Respond with the corresponding output fields, starting with the field "
            + ", then ".join(f"`[[ ## {n} ## ]]`{_type_info(t)}" for n, t in outputs)
            + ", and then ending with the marker for `[[ ## completed ## ]]`."
        )
    return "\n\n".join(parts).strip()


def chat_assistant(values: Mapping[str, str]) -> str:
    body = "\n\n".join(f"[[ ## {k} ## ]]\n{v}" for k, v in values.items())
    return body + "\n\n[[ ## completed ## ]]\n"


def chat_messages(
    question: str,
    *,
    outputs: Sequence[Field] = (("answer", "str"),),
    demos: Sequence[tuple[str, str]] = (),
) -> list[dict[str, str]]:
    inputs: list[Field] = [("question", "str")]
    messages = [{"role": "system", "content": chat_system(inputs, outputs)}]
    for q, a in demos:
        messages.append({"role": "user", "content": chat_user({"question": q})})
        messages.append({"role": "assistant", "content": chat_assistant({"answer": a})})
    messages.append({"role": "user", "content": chat_user({"question": question}, outputs)})
    return messages


def json_messages(
    question: str,
    outputs: Sequence[Field] = (("answer", "str"),),
    demos: Sequence[tuple[str, str]] = (),
) -> list[dict[str, str]]:
    inputs: list[Field] = [("question", "str")]
    description = (
        f"Your input fields are:\n{_describe(inputs)}\n"
        f"Your output fields are:\n{_describe(outputs)}"
    )
    out_obj = {n: f"{{{n}}}{_note(t)}" for n, t in outputs}
    structure = "\n\n".join(
        [
            "All interactions will be structured in the following way, with the appropriate "
            "values filled in.",
            "Inputs will have the following structure:",
            "[[ ## question ## ]]\n{question}",
            "Outputs will be a JSON object with the following fields.",
            json.dumps(out_obj, indent=2, ensure_ascii=False),
        ]
    ).strip()
    system = f"{description}\n{structure}\n{_objective(inputs, outputs)}"
    messages = [{"role": "system", "content": system}]
    for q, a in demos:
        messages.append({"role": "user", "content": f"[[ ## question ## ]]\n{q}"})
        messages.append({"role": "assistant", "content": json.dumps({"answer": a}, indent=2)})
    requirement = (
        "Respond with a JSON object in the following order of fields: "
        + ", then ".join(f"`{n}`{_type_info(t)}" for n, t in outputs)
        + "."
    )
    messages.append(
        {"role": "user", "content": f"[[ ## question ## ]]\n{question}\n\n{requirement}"}
    )
    return messages


def parse_chat(completion: str) -> dict[str, str]:
    """DSPy ChatAdapter.parse, minus type conversion: first header occurrence wins."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in completion.splitlines():
        stripped = line.strip()
        if stripped.startswith("[[ ## ") and stripped.endswith(" ## ]]"):
            sections.append((stripped[6:-6], []))
        else:
            sections[-1][1].append(line)
    fields: dict[str, str] = {}
    for name, lines in sections:
        if name is not None and name not in fields:
            fields[name] = "\n".join(lines).strip()
    return fields


def parse_value(text: str) -> Any:
    """DSPy's parse_value for non-str annotations: json.loads, then ast.literal_eval."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return ast.literal_eval(text)


# --------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def post(
    session: requests.Session,
    srv: RuleBasedLMServer,
    messages: list[dict[str, str]],
    timeout: float = 5.0,
    **params: Any,
) -> requests.Response:
    body = {"model": "openai/some-model", "messages": messages, **params}
    return session.post(srv.api_base + "/chat/completions", json=body, timeout=timeout)


def content_of(resp: requests.Response) -> str:
    assert resp.status_code == 200, resp.text
    text: str = resp.json()["choices"][0]["message"]["content"]
    return text


def ask(
    session: requests.Session, srv: RuleBasedLMServer, messages: list[dict[str, str]], **kw: Any
) -> str:
    return content_of(post(session, srv, messages, **kw))


# --------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------


def test_chat_adapter_prompt_without_demos_gets_verbose_answer_and_completed_marker(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    resp = post(session, lm_server, chat_messages("What is the capital of France?"))
    assert resp.status_code == 200
    assert resp.headers["x-dspex-rule-based"] == "true"
    assert resp.headers["Content-Type"] == "application/json"
    data = resp.json()
    content = data["choices"][0]["message"]["content"]
    assert content == "[[ ## answer ## ]]\nThe answer is Paris.\n\n[[ ## completed ## ]]"
    assert data["model"] == DEFAULT_MODEL
    assert data["system_fingerprint"] == "rule-based"
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert isinstance(data["created"], int)
    assert data["choices"][0]["finish_reason"] == "stop"
    usage = data["usage"]
    prompt_words = sum(
        len(m["content"].split()) for m in chat_messages("What is the capital of France?")
    )
    assert usage["prompt_tokens"] == prompt_words
    assert usage["completion_tokens"] == len(content.split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize(
    ("question", "bare"),
    [
        ("What is the capital of France?", "Paris"),
        ("what's france's capital city?", "Paris"),
        ("Which planet is the largest planet in the solar system?", "Jupiter"),
        ("What is 17 + 25?", "42"),
        ("What is 6 times 7?", "42"),
        ("Compute (3 + 4) * 2 divided by 7", "2"),
        ("What is 1 / 4?", "0.25"),
        ("What colour is the sky?", "sky"),
    ],
)
def test_answer_rules_knowledge_then_arithmetic_then_last_word(
    lm_server: RuleBasedLMServer, session: requests.Session, question: str, bare: str
) -> None:
    fields = parse_chat(ask(session, lm_server, chat_messages(question)))
    assert fields["answer"] == f"The answer is {bare}."


def test_custom_knowledge_extends_and_overrides_the_default_table(
    make_lm_server: ServerFactory, session: requests.Session
) -> None:
    kb = {"capital of France": "Lutetia", "best actor framework": "pykka"}
    srv = make_lm_server(knowledge=kb)
    assert parse_chat(ask(session, srv, chat_messages("The capital of France?")))["answer"] == (
        "The answer is Lutetia."
    )
    got = parse_chat(ask(session, srv, chat_messages("Name the best actor framework")))
    assert got["answer"] == "The answer is pykka."
    got = parse_chat(ask(session, srv, chat_messages("What is the capital of Japan?")))
    assert got["answer"] == "The answer is Tokyo."


def test_same_prompt_gives_the_same_completion(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    messages = chat_messages("What is 12 * 12?", outputs=[("reasoning", "str"), ("answer", "str")])
    first = ask(session, lm_server, messages)
    assert all(ask(session, lm_server, messages) == first for _ in range(5))


def test_chain_of_thought_gets_reasoning_sentence_before_answer(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    content = ask(
        session,
        lm_server,
        chat_messages(
            "What is the capital of Italy?", outputs=[("reasoning", "str"), ("answer", "str")]
        ),
    )
    assert content.index("[[ ## reasoning ## ]]") < content.index("[[ ## answer ## ]]")
    assert content.endswith("[[ ## completed ## ]]")
    fields = parse_chat(content)
    assert "capital of Italy" in fields["reasoning"]
    assert fields["answer"] == "The answer is Rome."


def test_typed_output_fields_produce_values_that_parse(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    outputs: list[Field] = [
        ("total", "int"),
        ("confidence", "float"),
        ("is_sum", "bool"),
        ("keywords", "list[str]"),
        ("sentiment", "Literal['positive', 'negative']"),
    ]
    fields = parse_chat(
        ask(session, lm_server, chat_messages("Is 17 + 25 a negative number?", outputs=outputs))
    )
    assert parse_value(fields["total"]) == 42
    assert isinstance(parse_value(fields["confidence"]), float)
    assert parse_value(fields["is_sum"]) is True
    keywords = parse_value(fields["keywords"])
    assert isinstance(keywords, list)
    assert keywords
    assert all(isinstance(k, str) for k in keywords)
    assert fields["sentiment"] == "negative"  # the option that occurs in the question


def test_output_fields_are_read_from_the_request_sentence_without_a_system_message(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    user = chat_user({"question": "What is 2 + 3?"}, [("answer", "int")])
    fields = parse_chat(ask(session, lm_server, [{"role": "user", "content": user}]))
    assert parse_value(fields["answer"]) == 5


def test_plain_chat_prompt_gets_a_plain_verbose_answer(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    content = ask(
        session, lm_server, [{"role": "user", "content": "What is the capital of Germany?"}]
    )
    assert content == "The answer is Berlin."


def test_n_returns_n_identical_choices_and_usage_counts_them(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    data = post(session, lm_server, chat_messages("What is 1 + 1?"), n=3).json()
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in data["choices"]}) == 1
    one = len(data["choices"][0]["message"]["content"].split())
    assert data["usage"]["completion_tokens"] == 3 * one


def test_max_tokens_cuts_the_completion_with_finish_reason_length(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    data = post(
        session, lm_server, chat_messages("What is the capital of Spain?"), max_tokens=4
    ).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "[[ ## answer ##"
    assert data["usage"]["completion_tokens"] == 4


# --------------------------------------------------------------------------------------
# Demo-following
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("demos", "expected"),
    [
        ([], "The answer is Paris."),
        ([("What is the capital of Italy?", "rome"), ("What is 2 + 2?", "4")], "paris"),
        ([("What is the capital of Italy?", "ROME"), ("Largest ocean?", "PACIFIC OCEAN")], "PARIS"),
        ([("What is the capital of Italy?", "Rome")], "Paris"),
        (
            [("What is the capital of Italy?", "The capital of Italy is Rome, of course.")],
            "The answer is Paris.",
        ),
    ],
    ids=["no-demos", "lowercase-demos", "uppercase-demos", "as-is-demos", "long-demos"],
)
def test_demos_with_short_answers_make_the_answer_bare_in_the_demos_case(
    lm_server: RuleBasedLMServer,
    session: requests.Session,
    demos: list[tuple[str, str]],
    expected: str,
) -> None:
    content = ask(session, lm_server, chat_messages("What is the capital of France?", demos=demos))
    assert parse_chat(content)["answer"] == expected
    assert content.endswith("[[ ## completed ## ]]")


def test_follow_demos_false_keeps_the_verbose_answer(
    make_lm_server: ServerFactory, session: requests.Session
) -> None:
    demos = [("What is the capital of Italy?", "rome")]
    srv = make_lm_server(follow_demos=False)
    fields = parse_chat(ask(session, srv, chat_messages("Capital of France?", demos=demos)))
    assert fields["answer"] == "The answer is Paris."
    srv.follow_demos = True
    fields = parse_chat(ask(session, srv, chat_messages("Capital of France?", demos=demos)))
    assert fields["answer"] == "paris"


# --------------------------------------------------------------------------------------
# JSON mode
# --------------------------------------------------------------------------------------


def test_json_adapter_prompt_gets_a_json_object_with_typed_fields(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    outputs: list[Field] = [("reasoning", "str"), ("answer", "str"), ("score", "int")]
    content = ask(session, lm_server, json_messages("What is 17 + 25?", outputs))
    obj = json.loads(content)
    assert list(obj) == ["reasoning", "answer", "score"]
    assert obj["answer"] == "The answer is 42."
    assert obj["score"] == 42
    assert "[[ ##" not in content


def test_json_mode_follows_json_demos(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    demos = [("What is the capital of Italy?", "rome")]
    obj = json.loads(ask(session, lm_server, json_messages("Capital of France?", demos=demos)))
    assert obj == {"answer": "paris"}


def test_response_format_json_object_turns_a_plain_prompt_into_json(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    messages = [{"role": "user", "content": "What is the capital of Kenya?"}]
    content = ask(session, lm_server, messages, response_format={"type": "json_object"})
    assert json.loads(content) == {"answer": "The answer is Nairobi."}


def test_response_format_json_schema_supplies_the_fields(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "out",
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
            },
        },
    }
    messages = [{"role": "user", "content": "What is 3 * 5?"}]
    obj = json.loads(ask(session, lm_server, messages, response_format=schema))
    assert obj == {"answer": "The answer is 15.", "n": 15}


# --------------------------------------------------------------------------------------
# HTTP surface
# --------------------------------------------------------------------------------------


def test_health_models_alias_path_404_and_bad_json_400(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    health = session.get(lm_server.url + "/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["rule_based"] is True
    models = session.get(lm_server.api_base + "/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == [DEFAULT_MODEL]

    alias = session.post(
        lm_server.url + "/chat/completions",
        json={"messages": chat_messages("What is 2 + 2?")},
        timeout=5,
    )
    assert parse_chat(content_of(alias))["answer"] == "The answer is 4."

    missing = session.post(lm_server.api_base + "/completions", json={}, timeout=5)
    assert missing.status_code == 404
    assert session.get(lm_server.url + "/nope", timeout=5).status_code == 404

    bad = session.post(
        lm_server.api_base + "/chat/completions",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    no_messages = session.post(lm_server.api_base + "/chat/completions", json={"x": 1}, timeout=5)
    assert no_messages.status_code == 400

    # Everything above went over one keep-alive connection (Content-Length always right).
    stats = lm_server.stats()
    assert stats["connections"] == 1
    assert stats["bad_request"] == 2
    assert stats["not_found"] == 2
    assert stats["requests"] == 3


def test_url_before_start_raises_and_start_twice_raises() -> None:
    srv = RuleBasedLMServer()
    with pytest.raises(RuntimeError):
        _ = srv.url
    srv.start()
    try:
        assert srv.url.startswith("http://127.0.0.1:")
        assert srv.api_base == srv.url + "/v1"
        with pytest.raises(RuntimeError):
            srv.start()
    finally:
        srv.stop()


def test_request_log_is_bounded_and_stats_reset(
    make_lm_server: ServerFactory, session: requests.Session
) -> None:
    srv = make_lm_server(request_log_size=3)
    for i in range(5):
        ask(session, srv, chat_messages(f"What is {i} + 1?"))
    assert srv.request_count == 5
    log = srv.requests
    assert len(log) == 3
    assert log[-1]["messages"][-1]["content"].startswith("[[ ## question ## ]]\nWhat is 4 + 1?")
    assert srv.stats()["ok"] == 5
    srv.reset_stats()
    assert srv.request_count == 0
    assert srv.requests == []
    assert srv.stats()["ok"] == 0


# --------------------------------------------------------------------------------------
# Faults, observed by a real client
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "err_type"),
    [
        ("500", 500, "server_error"),
        ("503", 503, "server_error"),
        ("400", 400, "invalid_request_error"),
        ("401", 401, "invalid_request_error"),
    ],
)
def test_status_faults_return_openai_style_error_bodies(
    lm_server: RuleBasedLMServer,
    session: requests.Session,
    kind: str,
    status: int,
    err_type: str,
) -> None:
    lm_server.inject(kind)
    resp = post(session, lm_server, chat_messages("What is 1 + 1?"))
    assert resp.status_code == status
    assert resp.headers["x-dspex-rule-based"] == "true"
    assert resp.json()["error"]["type"] == err_type
    # The fault was used up: the next request is answered normally.
    assert post(session, lm_server, chat_messages("What is 1 + 1?")).status_code == 200
    assert lm_server.stats()[f"fault:{kind}"] == 1


def test_429_carries_retry_after_header(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    lm_server.inject(Fault(kind="429", retry_after=0.05), "429")
    first = post(session, lm_server, chat_messages("What is 1 + 1?"))
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "0.05"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    second = post(session, lm_server, chat_messages("What is 1 + 1?"))
    assert second.headers["Retry-After"] == "1"


def test_injected_faults_are_served_in_fifo_order(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    lm_server.inject("503", "500", "401")
    codes = [
        post(session, lm_server, chat_messages("What is 1 + 1?")).status_code for _ in range(4)
    ]
    assert codes == [503, 500, 401, 200]


def test_drop_closes_the_socket_without_a_response(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    lm_server.inject("drop")
    with pytest.raises(requests.ConnectionError):
        post(session, lm_server, chat_messages("What is 1 + 1?"))
    assert post(session, lm_server, chat_messages("What is 1 + 1?")).status_code == 200
    assert lm_server.stats()["fault:drop"] == 1


def test_garbage_is_a_200_with_a_body_that_is_not_json(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    lm_server.inject("garbage")
    resp = post(session, lm_server, chat_messages("What is 1 + 1?"))
    assert resp.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        resp.json()


def test_bad_format_is_valid_json_whose_content_ignores_the_format(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    lm_server.inject("bad_format", "bad_format")
    content = ask(session, lm_server, chat_messages("What is the capital of France?"))
    assert "[[ ## answer ## ]]" not in content
    assert "Paris" in content
    json_content = ask(session, lm_server, json_messages("What is the capital of France?"))
    with pytest.raises(json.JSONDecodeError):
        json.loads(json_content)


def test_slow_fault_adds_its_delay(lm_server: RuleBasedLMServer, session: requests.Session) -> None:
    lm_server.inject(Fault(kind="slow", delay=0.2))
    t0 = time.monotonic()
    resp = post(session, lm_server, chat_messages("What is 1 + 1?"))
    assert resp.status_code == 200
    assert time.monotonic() - t0 >= 0.2


def test_hang_times_out_the_client_and_stop_returns_quickly(
    session: requests.Session,
) -> None:
    srv = RuleBasedLMServer().start()
    try:
        srv.inject("hang")  # default hang_seconds = 30
        with pytest.raises(requests.ReadTimeout):
            post(session, srv, chat_messages("What is 1 + 1?"), timeout=0.3)
    finally:
        t0 = time.monotonic()
        srv.stop()
        elapsed = time.monotonic() - t0
    assert elapsed < 1.0
    assert srv.stats()["fault:hang"] == 1


def test_latency_is_added_and_settable_while_running(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    lm_server.latency = 0.15
    t0 = time.monotonic()
    assert post(session, lm_server, chat_messages("What is 1 + 1?")).status_code == 200
    assert time.monotonic() - t0 >= 0.15
    lm_server.latency = 0.0
    with pytest.raises(ValueError, match="latency"):
        lm_server.latency = -1.0


def test_stop_wakes_a_request_sleeping_in_latency(session: requests.Session) -> None:
    srv = RuleBasedLMServer(latency=30.0).start()
    errors: list[BaseException] = []
    entered = threading.Event()

    def client() -> None:
        entered.set()
        try:
            post(session, srv, chat_messages("What is 1 + 1?"), timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=client, daemon=True)
    worker.start()
    assert entered.wait(5)
    deadline = time.monotonic() + 5
    while srv.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # polling for the server-side observation, not synchronising on time
    assert srv.request_count == 1
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 1.0
    worker.join(5)
    assert not worker.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], requests.ConnectionError)


def test_fault_rates_are_reproducible_for_a_seed(session: requests.Session) -> None:
    def run(seed: int) -> list[int]:
        with RuleBasedLMServer(seed=seed) as srv:
            srv.set_fault_rates({"500": 0.3, "429": 0.2}, templates={"429": Fault("429", 0.01)})
            return [
                post(session, srv, chat_messages("What is 1 + 1?")).status_code for _ in range(40)
            ]

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    assert {200, 500, 429} == set(first)


def test_fault_validation_and_clear_faults(
    lm_server: RuleBasedLMServer, session: requests.Session
) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(kind="418")
    with pytest.raises(ValueError, match="hang_seconds"):
        Fault(kind="hang", hang_seconds=-1)
    with pytest.raises(ValueError, match="unknown fault kind"):
        lm_server.inject("500", "teapot")
    with pytest.raises(ValueError, match="sum to"):
        lm_server.set_fault_rates({"500": 0.7, "503": 0.5})
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        lm_server.set_fault_rates({"500": 1.5})
    lm_server.inject("500", "500")
    lm_server.set_fault_rates({"503": 1.0})
    lm_server.clear_faults()
    assert post(session, lm_server, chat_messages("What is 1 + 1?")).status_code == 200


# --------------------------------------------------------------------------------------
# Concurrency and shutdown
# --------------------------------------------------------------------------------------


def test_64_concurrent_clients_get_answers_without_connection_resets(
    lm_server: RuleBasedLMServer,
) -> None:
    clients, per_client = 64, 5
    barrier = threading.Barrier(clients, timeout=10)

    def run(i: int) -> list[str]:
        with requests.Session() as s:
            barrier.wait()
            out = []
            for j in range(per_client):
                q = f"What is {i} + {j}?"
                out.append(parse_chat(ask(s, lm_server, chat_messages(q), timeout=10))["answer"])
            return out

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(run, range(clients), timeout=60))
    for i, answers in enumerate(results):
        assert answers == [f"The answer is {i + j}." for j in range(per_client)]
    stats = lm_server.stats()
    assert stats["ok"] == clients * per_client
    assert stats["connections"] == clients


def test_stop_joins_threads_is_idempotent_and_refuses_new_connections(
    session: requests.Session,
) -> None:
    before = set(threading.enumerate())
    srv = RuleBasedLMServer().start()
    for _ in range(3):  # leaves an idle keep-alive connection (and its handler thread)
        ask(session, srv, chat_messages("What is 1 + 1?"))
    serve_thread = srv._thread
    assert serve_thread is not None
    assert serve_thread.daemon
    t0 = time.monotonic()
    srv.stop()
    srv.stop()
    assert time.monotonic() - t0 < 1.0
    assert not serve_thread.is_alive()
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/health", timeout=2)


def test_stop_on_a_server_never_started_is_a_no_op() -> None:
    RuleBasedLMServer().stop()


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("module", ["dspex_actors.testing", "dspex_actors.testing._rule_server"])
def test_module_runs_standalone_and_stops_on_ctrl_c(module: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "--port",
            "0",
            "--latency",
            "0.01",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the server printed no URL within 20 s"
        line = proc.stdout.readline()
        url = line.split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/health", timeout=5).json()["rule_based"] is True
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == "stopped\n"  # and no warning about the module path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_main_rejects_a_bad_fault_rate() -> None:
    with pytest.raises(SystemExit):
        main(["--port", str(_free_port()), "--fault-rate", "teapot=0.1"])


def test_a_rate_limit_answers_429_with_retry_after_beyond_its_window() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with RuleBasedLMServer() as server:
        with pytest.raises(ValueError, match="rate_limit"):
            server.rate_limit = (0, 1.0)
        server.rate_limit = (3, 0.5)
        url = f"{server.api_base}/chat/completions"
        statuses = [requests.post(url, json=body, timeout=5) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert statuses[3].json()["error"]["code"] == "rate_limit_exceeded"
        assert 0 < float(statuses[3].headers["Retry-After"]) <= 0.5
        time.sleep(0.55)  # the window has passed: admitted again
        assert requests.post(url, json=body, timeout=5).status_code == 200
        assert server.stats()["rate_limited"] == 1
        server.rate_limit = None
        assert all(requests.post(url, json=body, timeout=5).ok for _ in range(5))
