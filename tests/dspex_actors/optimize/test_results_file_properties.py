"""Property tests of Evaluate's results files (hypothesis): whatever is in the file,
reading it back either gives valid rows or raises ResultsFileError, nothing else; a
file cut short anywhere gives back exactly its complete lines, with one warning.

No LM is needed: the files are written by ResultsWriter from rows made here. Each
test is bounded (examples, a deadline per example) to a few seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

import dspex_actors as dx
from dspex_actors.optimize._examples import input_hash
from dspex_actors.optimize._jsonable import RecordedError
from dspex_actors.optimize._results_file import ResultsFileError, ResultsWriter, Row, read_results
from tests.dspex_actors.optimize.strategies import JSON, mutate

DEVSET = [
    dx.Example(question=f"What is the capital of {country}?", answer=city).with_inputs("question")
    for country, city in [
        ("France", "Paris"),
        ("Japan", "Tokyo"),
        ("Peru", "Lima"),
        ("Chad", "N'Djamena"),
    ]
]
HASHES = [input_hash(example) for example in DEVSET]

PROPERTY = settings(
    max_examples=200,
    deadline=500,  # ms per example: generous under a loaded machine; a read takes < 5 ms
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "results.jsonl"


def valid_file(path: Path) -> bytes:
    """A results file for DEVSET as Evaluate writes it: answers, an error, a metric error."""
    rows = [
        Row(0, DEVSET[0], dx.Prediction(answer="Paris"), 1.0, False),
        Row(1, DEVSET[1], ValueError("cannot answer"), 0.0, True),
        Row(2, DEVSET[2], dx.Prediction(answer="Lima, Perú", extra=[1, {"x": None}]), 0.5, False),
        Row(3, DEVSET[3], KeyError("metric bug"), 0.0, True, True),
    ]
    writer = ResultsWriter(path, HASHES, resume=False)
    for row in rows:
        writer.write(row)
    writer.close()
    return path.read_bytes()


def read_checked(path: Path) -> dict[int, Row]:
    """``read_results``; the rows it returns are checked to be usable."""
    rows = read_results(path, DEVSET, HASHES)
    for index, row in rows.items():
        assert row.index == index and 0 <= index < len(DEVSET)
        assert row.example is DEVSET[index]
        assert isinstance(row.score, float) and math.isfinite(row.score)
        assert isinstance(row.outcome, RecordedError if row.error else dx.Prediction)
    return rows


@PROPERTY
@given(content=st.binary(max_size=600))
def test_random_bytes_give_valid_rows_or_a_results_file_error(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        read_checked(path)
    except ResultsFileError:
        pass


@PROPERTY
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_a_file_cut_anywhere_gives_back_its_complete_lines_and_one_warning_if_mid_line(
    path: Path, cut: int
) -> None:
    data = valid_file(path)
    cut = min(cut, len(data))
    path.write_bytes(data[:cut])

    with capture_logs() as logs:
        rows = read_checked(path)

    complete = data[:cut].count(b"\n")
    partial = cut > 0 and data[cut - 1 : cut] != b"\n"  # the last line lost some bytes ...
    whole = partial and data[cut : cut + 1] == b"\n"  # ... only its newline: a full record
    assert sorted(rows) == list(range(complete + int(whole)))
    warnings = [e for e in logs if e["event"] == "results_file.truncated_line"]
    assert len(warnings) == int(partial and not whole)


@PROPERTY
@given(data=st.data())
def test_a_mutated_record_gives_valid_rows_or_a_results_file_error_naming_its_line(
    path: Path, data: st.DataObject
) -> None:
    lines = valid_file(path).decode("utf-8").splitlines()
    number = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
    record = json.loads(lines[number])
    if data.draw(st.booleans()):  # one field changed (most bugs hide there) ...
        name = data.draw(st.sampled_from(sorted(record)))
        record[name] = mutate(data, record[name])
    else:  # ... or the record as a whole
        record = mutate(data, record)
    lines[number] = json.dumps(record, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    error: ResultsFileError | None = None
    try:
        read_checked(path)
    except ResultsFileError as exc:
        error = exc
    assert error is None or str(error).startswith(f"{path}:{number + 1}: ")


@PROPERTY
@given(data=st.data())
def test_random_bytes_inside_a_file_give_valid_rows_or_a_results_file_error(
    path: Path, data: st.DataObject
) -> None:
    content = valid_file(path)
    at = data.draw(st.integers(min_value=0, max_value=len(content)))
    junk = data.draw(st.binary(min_size=1, max_size=8))
    path.write_bytes(content[:at] + junk + content[at:])

    try:
        read_checked(path)
    except ResultsFileError:
        pass


@PROPERTY
@given(
    records=st.lists(
        JSON
        | st.dictionaries(
            st.sampled_from(["index", "input_hash", "score", "prediction", "error", "example"]),
            JSON,
        ),
        max_size=4,
    )
)
def test_any_json_lines_give_valid_rows_or_a_results_file_error(
    path: Path, records: list[object]
) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    try:
        read_checked(path)
    except ResultsFileError:
        pass
