"""`dspex-actors --help` reads as help: plain text, every option explained."""

from __future__ import annotations

import argparse

import pytest

from dspex_actors._demo import _parser, main


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_the_top_level_help_is_plain_text_and_names_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(capsys)

    assert "``" not in text and ":class:" not in text  # no raw reST
    assert "demo" in text and "serve-rules" in text
    assert "OPENAI_API_KEY" in text


def test_every_option_of_every_command_has_help_text() -> None:
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) >= {"demo", "serve-rules"}
    for name, command in commands.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings} has no help text"
            assert "default" in action.help, f"{name} {action.option_strings} names no default"
