"""``sv.Logger``: structlog's logger, assembled once per configuration, following changes."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import LogCapture, capture_logs

import supervisors as sv


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


def test_events_reach_capture_logs_as_through_structlogs_own_logger() -> None:
    logger = sv.get_logger("test.logger")
    with capture_logs() as logs:
        logger.info("one", n=1)
        logger.log(logging.WARNING, "two", n=2)
        logger.bind(k="v").error("three")
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("one", "info"),
        ("two", "warning"),
        ("three", "error"),
    ]
    assert logs[0]["n"] == 1 and logs[2]["k"] == "v"


def test_the_bound_logger_is_reused_while_the_configuration_stays(
    restore_structlog: None,
) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    logger = sv.get_logger("test.logger")
    assert logger.bound() is logger.bound()


def test_a_reconfiguration_takes_effect_at_the_next_call(restore_structlog: None) -> None:
    logger = sv.get_logger("test.logger")
    capture = LogCapture()
    structlog.configure(
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    first = logger.bound()
    logger.info("dropped")
    logger.warning("kept")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    logger.debug("now kept")
    assert logger.bound() is not first
    assert [e["event"] for e in capture.entries] == ["kept", "now kept"]
    other = LogCapture()
    structlog.configure(processors=[other])
    logger.info("elsewhere")
    assert [e["event"] for e in other.entries] == ["elsewhere"]
    assert "elsewhere" not in [e["event"] for e in capture.entries]
