"""The rule-based LM server fixtures of tests/dspex_actors, for the example services."""

from tests.dspex_actors.conftest import make_lm_server

__all__ = ["make_lm_server"]
