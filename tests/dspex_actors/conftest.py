"""Shared fixtures: the rule-based LM server on 127.0.0.1 and actor systems that use it.

Every fixture is function-scoped, so nothing a test does to a server (faults,
latency, counters, the request log) or to a system is seen by the next test:

- ``lm_server``: a fresh ``RuleBasedLMServer()`` for the test;
- ``make_lm_server(**options)``: more servers, or servers with options
  (``knowledge=``, ``latency=``, ``seed=``, ...);
- ``start_system(server=None, *, api_key=, lm_options=, **start_options)``: a
  started ``dx.start(...)`` system whose LM is the server (``lm_server`` if
  None); ``lm_options`` go to ``dx.LM``, the rest to ``dx.start``;
- ``system``: ``start_system(cache=False)``, so the server's request count is
  the LM work done.

Systems get unique names and ``configure_logs=False`` (a test must not
configure structlog for the tests after it). A module overrides the
``system_options`` fixture to change the defaults of its systems. Teardown shuts
the systems down, then stops the servers.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.testing import RuleBasedLMServer
from tests.dspex_actors.fixture_types import API_KEY, MODEL, ServerFactory, SystemFactory

_names = itertools.count(1)


@pytest.fixture
def make_lm_server() -> Iterator[ServerFactory]:
    with contextlib.ExitStack() as servers:

        def make(**options: Any) -> RuleBasedLMServer:
            return servers.enter_context(RuleBasedLMServer(**options))

        yield make


@pytest.fixture
def lm_server(make_lm_server: ServerFactory) -> RuleBasedLMServer:
    return make_lm_server()


@pytest.fixture
def system_options() -> dict[str, Any]:
    """Default ``dx.start`` options of ``start_system``; override it in a test module."""
    return {}


@pytest.fixture
def start_system(
    request: pytest.FixtureRequest,
    make_lm_server: ServerFactory,
    system_options: dict[str, Any],
) -> Iterator[SystemFactory]:
    # Depending on make_lm_server makes the servers outlive the systems at teardown.
    with contextlib.ExitStack() as systems:

        def start(
            server: RuleBasedLMServer | None = None,
            *,
            api_key: str = API_KEY,
            lm_options: Mapping[str, Any] | None = None,
            **start_options: Any,
        ) -> dx.ActorSystem:
            if server is None:
                server = request.getfixturevalue("lm_server")
                assert isinstance(server, RuleBasedLMServer)
            lm = dx.LM(MODEL, api_base=server.api_base, api_key=api_key, **(lm_options or {}))
            options = {"configure_logs": False, **system_options, **start_options}
            options.setdefault("name", f"test-{next(_names)}")
            return systems.enter_context(dx.start(lm=lm, **options))

        yield start


@pytest.fixture
def system(start_system: SystemFactory) -> dx.ActorSystem:
    return start_system(cache=False)
