"""What a newcomer reads first: `segments --help` and each command's help, and the README's
quick start, which must not leave the API key in a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from segments.cli import COMMANDS, _parser

README = Path(__file__).resolve().parent.parent / "README.md"
# Words about the code, not about what the user gets.
_CODE_WORDS = re.compile(r"\b(coroutine|module|class|asyncio|argparse|namespace)\b", re.I)


def _help(*args: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args([*args, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_says_where_to_start_and_lists_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(capsys=capsys)
    assert "segments run" in text and "segments account create" in text and "/docs" in text
    for command in COMMANDS:
        assert re.search(rf"^\s+{command.name}\s+\S", text, re.M), command.name
    assert not _CODE_WORDS.search(text), _CODE_WORDS.search(text)


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_each_command_help_says_what_it_does(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(name, capsys=capsys)
    usage, description = text.split("\n\n")[:2]
    assert usage.startswith(f"usage: segments {name}")
    assert description[:1].isupper() and description.rstrip().endswith(".")
    assert not _CODE_WORDS.search(text), _CODE_WORDS.search(text)


def test_quick_start_keeps_the_api_key_out_of_files() -> None:
    text = README.read_text()
    quick_start = text.split("### Quick start", 1)[1].split("\n### ", 1)[0]
    commands = "\n".join(block for i, block in enumerate(quick_start.split("```")) if i % 2 == 1)
    assert "account create" in commands
    # No tee, no redirection into a file: the key lives in the shell's variables only.
    assert not re.search(r"\btee\b|[^2&]>\s*[\w./]", commands), commands
