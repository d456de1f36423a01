"""Types and defaults of the shared fixtures in conftest.py, for test annotations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import dspex_actors as dx
from dspex_actors.testing import RuleBasedLMServer

API_KEY = "sk-test"
"""The API key of the systems' LMs unless a test gives one."""

MODEL = "openai/rule-based"
"""The model name of the systems' LMs."""


class ServerFactory(Protocol):
    """``make_lm_server(**options)``: a started server, stopped after the test."""

    def __call__(self, **options: Any) -> RuleBasedLMServer: ...


class SystemFactory(Protocol):
    """``start_system(...)``: a started system on a rule-based server, shut down after the test."""

    def __call__(
        self,
        server: RuleBasedLMServer | None = None,
        *,
        api_key: str = API_KEY,
        lm_options: Mapping[str, Any] | None = None,
        **start_options: Any,
    ) -> dx.ActorSystem: ...
