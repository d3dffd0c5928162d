"""`labctl --help` and every subcommand's help fit one screen, and the README's command table names
exactly the CLI's commands: the front door and the program cannot drift apart."""
from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from labctl.cli import cli
from lablib.names import PROJECT_DIR

SCREEN_LINES, SCREEN_COLUMNS = 24, 100
README = PROJECT_DIR / "README.md"
TABLE_SECTION = "## The lab's commands"


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


@pytest.mark.parametrize("path", list(command_paths(cli)), ids=lambda p: " ".join(p) or "labctl")
def test_help_fits_one_screen(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=SCREEN_COLUMNS)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) <= SCREEN_LINES, f"{len(lines)} lines:\n{result.output}"
    assert max(map(len, lines)) <= SCREEN_COLUMNS, result.output
    assert not [line for line in lines if line.endswith("...") and "ARGS]..." not in line], \
        f"a command's one-line help is cut (make its first sentence shorter):\n{result.output}"


def readme_table() -> dict[str, str]:
    """The command table of the README's commands section: first word of the first cell -> the cell."""
    section = README.read_text().split(TABLE_SECTION, 1)[1].split("\n## ", 1)[0]
    cells = [m.group(1) for m in re.finditer(r"^\| `([^`]+)`", section, flags=re.MULTILINE)]
    return {cell.split()[0]: cell for cell in cells}


def test_readme_table_lists_exactly_the_cli_commands() -> None:
    table = readme_table()
    assert sorted(table) == sorted(cli.commands)
    for name, group in cli.commands.items():
        if isinstance(group, click.Group):  # `drill a|b|c`: exactly its subcommands
            assert sorted(table[name].split()[1].replace("\\", "").split("|")) == sorted(group.commands)
