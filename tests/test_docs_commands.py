"""Every command a reader copies from README.md or docs/*.md code blocks still works as written:
a `labctl` line parses against the real click CLI (nothing runs), a `make X` names a real target."""
from __future__ import annotations

import re
import shlex

import click
import pytest

from labctl.cli import cli
from lablib.names import PROJECT_DIR

PAGES = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "sh", "bash", "console", "shell"}  # fenced block languages that hold commands


def shell_blocks(text: str) -> list[str]:
    """The text of each fenced block in a shell language (yaml, mermaid and such skipped)."""
    blocks, language, lines = [], None, []
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                if language in SHELL_BLOCKS:
                    blocks.append("".join(lines))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def command_lines(text: str) -> list[list[str]]:
    """The commands of a page's code blocks, as words: `$ ` prompts and comments dropped,
    continued lines joined; a console block's output lines (no prompt) skipped."""
    commands = []
    for block in shell_blocks(text):
        console = any(line.startswith("$ ") for line in block.splitlines())
        for line in block.replace("\\\n", " ").splitlines():
            if console and not line.startswith("$ "):
                continue
            words = shlex.split(line.removeprefix("$ "), comments=True)
            if words:
                commands.append(words)
    return commands


def labctl_args(words: list[str]) -> list[str] | None:
    """The CLI's arguments of `labctl ...` or `... python -m labctl ...`; None for other commands."""
    for i, word in enumerate(words):
        if word == "labctl" and (i == 0 or words[i - 1] == "-m"):
            return words[i + 1:]
    return None


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+):(?!=)", (PROJECT_DIR / "Makefile").read_text(), flags=re.MULTILINE))


def parse(args: list[str]) -> None:
    """Parse args as click would for a run, down to the leaf command, without invoking anything."""
    try:
        ctx = cli.make_context("labctl", list(args))
        command: click.Command = cli
        while isinstance(command, click.Group):
            rest = [*ctx._protected_args, *ctx.args]  # what a group leaves for its subcommand
            name, command, rest = command.resolve_command(ctx, rest)  # type: ignore[assignment]
            ctx = command.make_context(name, rest, parent=ctx)
    except click.exceptions.Exit:  # --help
        pass


COMMANDS = [(page.name, words) for page in PAGES for words in command_lines(page.read_text())]
LABCTL = [(page, args) for page, words in COMMANDS if (args := labctl_args(words)) is not None]
MAKE = [(page, words) for page, words in COMMANDS if words[0] == "make"]


def test_the_docs_show_commands() -> None:
    assert {page for page, _ in LABCTL} >= {"README.md"} and MAKE


@pytest.mark.parametrize(("page", "args"), LABCTL, ids=[f"{p}: {' '.join(a)}" for p, a in LABCTL])
def test_labctl_command_parses(page: str, args: list[str]) -> None:
    parse(args)


@pytest.mark.parametrize(("page", "words"), MAKE, ids=[f"{p}: {' '.join(w)}" for p, w in MAKE])
def test_make_target_exists(page: str, words: list[str]) -> None:
    targets = [word for word in words[1:] if "=" not in word and not word.startswith("-")]
    assert set(targets) <= makefile_targets(), f"{page}: {' '.join(words)}"
