"""dspex_actors.testing is the public home of the test server; the old names still work."""

from __future__ import annotations

import dspex_actors as dx
import dspex_actors.testing as dxt
from dspex_actors.testing import _rule_server


def test_the_testing_package_exports_the_server_faults_and_defaults() -> None:
    assert sorted(dxt.__all__) == [
        "DEFAULT_KNOWLEDGE",
        "DEFAULT_MODEL",
        "FAULT_KINDS",
        "Fault",
        "RuleBasedLMServer",
    ]
    assert dxt.DEFAULT_MODEL == "rule-based/echo-1"
    assert dxt.DEFAULT_KNOWLEDGE["capital of France"] == "Paris"
    assert {"500", "429", "drop", "hang"} <= dxt.FAULT_KINDS


def test_dx_and_the_old_module_path_re_export_the_same_objects() -> None:
    assert dx.RuleBasedLMServer is dxt.RuleBasedLMServer is _rule_server.RuleBasedLMServer
    assert dx.Fault is dxt.Fault is _rule_server.Fault
    assert _rule_server.DEFAULT_KNOWLEDGE is dxt.DEFAULT_KNOWLEDGE
    assert _rule_server.DEFAULT_MODEL == dxt.DEFAULT_MODEL
    assert callable(_rule_server.main)
