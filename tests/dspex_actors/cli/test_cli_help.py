"""`dspex-actors --help` reads as help: plain text, every option explained."""

from __future__ import annotations

import pytest

from dspex_actors._demo import main


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


@pytest.mark.parametrize(
    ("command", "options"),
    [("demo", ["--api-base", "--model", "--latency"]), ("serve-rules", ["--port", "--latency"])],
)
def test_every_option_has_help_text(
    capsys: pytest.CaptureFixture[str], command: str, options: list[str]
) -> None:
    text = _help(capsys, command)

    for option in options:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(option))
        index = text.index(line)
        described = text[index + len(line) : index + len(line) + 200]
        assert len(line.split(maxsplit=2)) > 2 or described.strip(), option
    assert "default" in text
