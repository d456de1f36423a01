"""Property tests of compile checkpoints (hypothesis): a checkpoint file with the right
fingerprint but damaged entries is either refused with CheckpointError when it is
read, or its entries carry the compile to its end (done, or failed through the
plan's own CompileFailure): never a crash of the job, so never a crash loop.

No LM and no actor: the plans are driven offline, as the job drives them, with
every request answered at once (``drive``). The checkpoints are real: the entries
a complete compile wrote. Each test is bounded (examples, a deadline each).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dspex_actors as dx
from dspex_actors.optimize import (
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    CheckpointError,
    Teleprompter,
)
from dspex_actors.optimize._checkpoint import CHECKPOINT_VERSION, FileCheckpoint, fingerprint
from dspex_actors.optimize._plan import (
    CompileFailure,
    CompilePlan,
    PlanContext,
    TracedResult,
    WorkItem,
)
from dspex_actors.optimize._scoring import Scored
from tests.dspex_actors.optimize.strategies import JSON, mutate

TRAINSET = [
    dx.Example(question=f"What is the capital of {country}?", answer=city).with_inputs("question")
    for country, city in [("France", "Paris"), ("Atlantis", "?"), ("Peru", "Lima"), ("Chad", "N")]
]

PROPERTY = settings(
    max_examples=100,
    deadline=1000,  # ms per example (a drive takes ~10 ms; generous under load)
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def exact(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def answer(item: WorkItem) -> Any:
    """What the LM request of ``item`` answers: Atlantis is unknown, the rest right."""
    example = item.example
    said = "Poseidonia" if "Atlantis" in example.question else example.answer
    if item.kind == "teacher":
        inputs, outputs = {"question": example.question}, {"answer": said}
        return TracedResult(outputs, [["self", inputs, outputs]])
    prediction = dx.Prediction(answer=said)
    return Scored(prediction, float(exact(example, prediction)))


def drive(tp: Teleprompter, entries: dict[str, Any]) -> CompilePlan:
    """Run ``tp``'s plan from ``entries`` to its end, answering its requests at once."""
    ctx = PlanContext(
        student=dx.Predict("question -> answer"),
        trainset=TRAINSET,
        entries=entries,
        may_crash=lambda _key: False,  # a metric error is counted, as after MAX_METRIC_CRASHES
    )
    plan = tp.plan(ctx)
    for _ in range(10_000):
        if plan.step() is not None or plan.done:
            if plan.done:
                return plan
            continue
        items = plan.requests(set(), 64)
        assert items, "the plan waits for nothing"
        for item in items:
            entries[item.key], _ = item.entry(answer(item))
    raise AssertionError("the plan never finished")


TELEPROMPTERS = {
    "bootstrap": BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=3),
    "random_search": BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=1, max_bootstrapped_demos=2, max_labeled_demos=3
    ),
}


def finished(tp: Teleprompter) -> dict[str, Any]:
    """The entries of a complete compile (``drive`` fills the dict it is given)."""
    entries: dict[str, Any] = {}
    drive(tp, entries)
    return entries


FINISHED = {name: finished(tp) for name, tp in TELEPROMPTERS.items()}


def fingerprint_of(tp: Teleprompter) -> str:
    return fingerprint(tp, dx.Predict("question -> answer"), TRAINSET, None, None)


def write(path: Path, tp: Teleprompter, entries: Any) -> None:
    data = {"version": CHECKPOINT_VERSION, "fingerprint": fingerprint_of(tp), "entries": entries}
    path.write_text(json.dumps(data), encoding="utf-8")


def resume(path: Path, tp: Teleprompter) -> CheckpointError | None:
    """Read the checkpoint as a job starting from it would, then run the plan on it.

    Returns the ``CheckpointError`` that refused the file, or ``None`` when the plan
    ran to its end (done, or failed through ``CompileFailure``); anything else raises.
    """
    try:
        checkpoint = FileCheckpoint(path, fingerprint_of(tp), type(tp).__name__, tp.check_entry)
    except CheckpointError as exc:
        return exc
    try:
        plan = drive(tp, checkpoint.load())
    except CompileFailure:
        return None  # the plan ended the job as failed, with a typed error: allowed
    assert plan.result is not None
    return None


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "checkpoint.json"


def test_the_finished_checkpoints_resume_to_the_same_program(path: Path) -> None:
    for name, tp in TELEPROMPTERS.items():
        write(path, tp, FINISHED[name])
        checkpoint = FileCheckpoint(path, fingerprint_of(tp), type(tp).__name__, tp.check_entry)
        again = drive(tp, checkpoint.load())
        fresh = drive(tp, {})
        assert again.result is not None and fresh.result is not None
        assert again.result.dump_state() == fresh.result.dump_state()
        assert len(FINISHED[name]) >= len(TRAINSET)


@PROPERTY
@given(name=st.sampled_from(sorted(TELEPROMPTERS)), data=st.data())
def test_a_mutated_entry_is_refused_when_read_or_carries_the_compile_to_its_end(
    path: Path, name: str, data: st.DataObject
) -> None:
    tp, entries = TELEPROMPTERS[name], copy.deepcopy(FINISHED[name])
    key = data.draw(st.sampled_from(sorted(entries)))
    entries[key] = mutate(data, entries[key])
    write(path, tp, entries)

    refused = resume(path, tp)
    assert refused is None or (str(path) in str(refused) and f"entry {key!r}" in str(refused))


@PROPERTY
@given(
    name=st.sampled_from(sorted(TELEPROMPTERS)),
    extra=st.dictionaries(
        st.from_regex(r"[tvecx]/(-?[0-9]{1,2}|[0-9a-f]{16})(/[0-9])?", fullmatch=True)
        | st.text(max_size=6),
        JSON,
        max_size=3,
    ),
    drop=st.sets(st.integers(min_value=0, max_value=40), max_size=4),
)
def test_added_and_removed_entries_are_refused_or_carry_the_compile_to_its_end(
    path: Path, name: str, extra: dict[str, Any], drop: set[int]
) -> None:
    tp = TELEPROMPTERS[name]
    entries = {k: v for n, (k, v) in enumerate(sorted(FINISHED[name].items())) if n not in drop}
    entries.update(extra)
    write(path, tp, entries)

    refused = resume(path, tp)
    assert refused is None or str(path) in str(refused)


@PROPERTY
@given(name=st.sampled_from(sorted(TELEPROMPTERS)), cut=st.integers(min_value=0), data=st.data())
def test_a_cut_or_corrupted_file_is_refused_with_checkpoint_error_or_resumes(
    path: Path, name: str, cut: int, data: st.DataObject
) -> None:
    tp = TELEPROMPTERS[name]
    write(path, tp, FINISHED[name])
    raw = path.read_bytes()
    at = cut % (len(raw) + 1)
    junk = data.draw(st.binary(max_size=6))
    path.write_bytes(raw[:at] + junk + raw[at + data.draw(st.integers(0, 3)) :])

    refused = resume(path, tp)
    assert refused is None or str(path) in str(refused)
