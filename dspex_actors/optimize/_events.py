"""Where a compile job's plan events leave the job: one function per kind of record.

:func:`plan_event` is what the job actor calls for each event a plan unit returns;
a told trial goes through :func:`record_trial`, the one seam for per-trial records
(logged as ``compile.trial`` today; the place to publish ``("compile", "trial")`` on
the event bus once it exists). Threading: the job actor's thread; never raises for
a logging failure (structlog does not raise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dspex_actors.primitives import logger

__all__ = ["TRIAL_EVENT", "plan_event", "record_trial"]

TRIAL_EVENT = "compile.trial"
"""The log event of one told trial (MIPROv2): its parameters, score and the best so far."""


def record_trial(job_id: str, fields: Mapping[str, Any]) -> None:
    """One trial of job ``job_id`` was told: ``fields`` is ``Trial.as_json()`` plus
    ``best_score``. Called exactly once per trial, in trial order."""
    logger.info(TRIAL_EVENT, job=job_id, **fields)


def plan_event(job_id: str, event: str, fields: Mapping[str, Any]) -> None:
    """Log (or, for a trial, record) one event of a plan unit of job ``job_id``."""
    if event == TRIAL_EVENT:
        record_trial(job_id, fields)
    else:
        logger.info(event, job=job_id, **fields)
