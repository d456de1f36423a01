"""MIPROv2's propose phase: the data summary, then the instruction proposals, as requests.

DSPy's ``GroundedProposer.propose_instructions_for_program`` with MIPROv2's
settings (no instruction history; a tip drawn per proposal; the bootstrapped
demo sets as task demos). Candidate 0 of each predictor is its original
instruction (the proposal DSPy makes for it and overwrites is not made here).
Threading: the job actor's thread.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from dspex_actors.modules import Module, Predict
from dspex_actors.optimize._bootstrap import error_of
from dspex_actors.optimize._mipro_items import CountedItem
from dspex_actors.optimize._mipro_settings import Settings
from dspex_actors.optimize._plan import CompileError, CompileFailure, PlanContext, Unit, WorkItem
from dspex_actors.optimize._propose import (
    TIPS,
    DataSummaryRun,
    ProposalRun,
    module_code,
    program_code,
    task_demos,
)
from dspex_actors.primitives import Example

__all__ = ["Proposals", "proposal_run", "summary_batches"]

_SUMMARY = "p/s"


def _input_keys_sorted(text: str) -> str:
    """DSPy's ``order_input_keys_in_string``: sort the keys in ``input_keys={...}``."""
    import re

    def reorder(match: re.Match[str]) -> str:
        keys = sorted(key.strip() for key in match.group(1).split(","))
        return f"input_keys={{{', '.join(keys)}}}"

    return re.sub(r"input_keys=\{([^\}]+)\}", reorder, text)


def summary_batches(trainset: list[Example], size: int) -> list[str]:
    """The example batches DSPy's dataset summary shows, as the text it sends."""
    first = [_input_keys_sorted(repr(trainset[0 : min(len(trainset), size)]))]
    rest = [
        _input_keys_sorted(repr(trainset[b : min(len(trainset), b + size)]))
        for b in range(size, len(trainset), size)
    ]
    return first + rest


class Proposals:
    """The propose phase of one plan: ``ready`` once ``candidates[i]`` are all known."""

    def __init__(
        self,
        tp: Any,
        ctx: PlanContext,
        student: Module,
        settings: Settings,
        demo_sets: list[list[list[Example]]],
    ) -> None:
        self.tp = tp
        self.ctx = ctx
        self.student = student
        self.settings = settings
        self.demo_sets = demo_sets
        self.n = settings.num_proposals
        self.summary: str | None = None
        self.summary_known = not tp.data_aware_proposer
        self.program_aware = bool(tp.program_aware_proposer)
        self.code = ""
        if self.program_aware:
            try:
                self.code = program_code(student)
            except (OSError, TypeError):  # DSPy: "Running without program aware proposer."
                self.program_aware = False
        self.ready = False
        self.candidates: list[list[str]] = []

    def _keys(self) -> list[str]:
        return [f"p/{i}/{k}" for i in range(len(self.demo_sets)) for k in range(1, self.n)]

    def step(self) -> Unit | None:
        entries = self.ctx.entries
        if not self.summary_known:
            found = entries.get(_SUMMARY)
            if found is None:
                return None
            self.summary = found.get("text")  # DSPy: an error drops the data summary
            self.summary_known = True
            return Unit()
        keys = self._keys()
        if any(key not in entries for key in keys):
            return None
        for key in keys:
            if "text" not in entries[key]:
                raise CompileFailure(
                    self.ctx.live_errors.get(key)
                    or CompileError(f"proposing instruction {key}: {error_of(entries[key])}")
                )
        predictors = self.student.predictors()
        self.candidates = [
            [predictors[i].signature.instructions]
            + [entries[f"p/{i}/{k}"]["text"] for k in range(1, self.n)]
            for i in range(len(predictors))
        ]
        self.ready = True
        return Unit([], [("instructions.proposed", {"candidates": self.candidates})])

    def requests(self, busy: Container[str], limit: int) -> list[WorkItem]:
        entries = self.ctx.entries
        if not self.summary_known:
            if _SUMMARY in entries or _SUMMARY in busy:
                return []
            batches = summary_batches(self.settings.trainset, self.tp.view_data_batch_size)
            run = DataSummaryRun(batches, self.tp.prompt_model)
            cost = min(len(batches), 10) + 1
            summary: list[WorkItem] = [CountedItem.text(_SUMMARY, run, "summary", cost)]
            return summary[:limit]
        items: list[WorkItem] = []
        for key in self._keys():
            if key in entries or key in busy:
                continue
            _, i, k = key.split("/")
            items.append(self._proposal(key, int(i), int(k)))
            if len(items) >= limit:
                break
        return items

    def _proposal(self, key: str, i: int, k: int) -> WorkItem:
        run = proposal_run(
            self.tp,
            self.student.predictors()[i],
            self.demo_sets[i],
            k,
            self.settings.tips[i][k],
            summary=self.summary,
            code=self.code if self.program_aware else None,
        )
        return CountedItem.text(key, run, "proposed_instruction", 3 if self.program_aware else 1)


def proposal_run(
    tp: Any,
    predictor: Predict,
    demo_sets: Sequence[Sequence[Example]],
    k: int,
    tip_key: str,
    *,
    summary: str | None,
    code: str | None,
) -> ProposalRun:
    """The request proposing instruction ``k`` of ``predictor`` (DSPy's
    ``propose_instruction_for_predictor`` for ``demo_set_i=k``), for ``tp`` (a
    ``MIPROv2``): ``demo_sets`` are the predictor's, ``tip_key`` the drawn tip,
    ``summary`` the data summary (``None``: not data aware), ``code`` the program
    code (``None``: not program aware). Pure.
    """
    signature = predictor.signature
    tip = TIPS[tip_key] if tp.tip_aware_proposer else ""
    demos = "No task demos provided."
    if tp.fewshot_aware_proposer:
        demos = task_demos(signature, demo_sets, k, 3)
    inputs = {
        "dataset_description": summary or "",
        "program_code": code or "",
        "module": module_code(predictor),
        "task_demos": demos,
        "basic_instruction": signature.instructions,
        "tip": tip,
    }
    return ProposalRun(
        inputs,
        use_dataset_summary=summary is not None,
        program_aware=code is not None,
        use_tip=bool(tip),
        lm=tp.prompt_model,
        temperature=tp.init_temperature,
    )
