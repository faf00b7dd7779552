"""Every `sr-search` command line in README.md and docs/*.md parses against the real CLI parser
(`search.cli.build_parser()`), so the documentation never shows a command or flag that does not exist.

What counts as a command line:
- in a fenced code block, a line that starts with `sr-search ` (after an optional `$ ` prompt and
  optional leading `VAR=value` environment assignments, e.g. `PGPASSWORD=... sr-search run ...`);
  backslash continuations are joined and a `#` comment (a `#` at the start of a word, outside quotes)
  is cut off;
- outside code blocks, an inline code span that starts with `sr-search ` (a span may wrap over a line
  break, as Markdown allows; `\\|` in a table cell is read as `|`).
`python -m search.cli ...` lines are the same parser and are checked the same way.

In a table row whose first cell is an `sr-search` command (the README's command table), every
`--flag` written in the row's other code spans must be one of that command's options.

A command line must parse whole (required flags included). The one exception: an inline span without a
single option (`sr-search evaluate`, `sr-search bench`) names a command in prose rather than showing a
command line, so it is checked as a name: the command (and subcommand) must exist.

No line is skipped: placeholders (NAME, DIR, PATH, FILE, ...) are written where the parser takes any
string, and concrete values where it needs a number. Only parsing happens: nothing runs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from search.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
MIN_COMMANDS = 15  # so that the check cannot pass by finding nothing

_FENCE = re.compile(r"^\s*(```|~~~)")
_ENV = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)+")
_PREFIXES = ("sr-search ", "python -m search.cli ", "python3 -m search.cli ")
_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")


@dataclass(frozen=True)
class Command:
    file: str  # relative to the repository root
    line: int  # 1-based, where the command starts
    text: str  # as written, continuations joined
    inline: bool = False  # an inline code span (else a line of a code block)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _strip_comment(text: str) -> str:
    """Cut a shell comment: a '#' at the start of a word and outside quotes (a '#' inside a word,
    as in a URL's fragment, stays)."""
    quote, i = "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch == "\\":
            i += 1  # an escaped character, '#' included, is part of its word
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i]
        i += 1
    return text


def _command_start(line: str) -> str | None:
    """The command on this line when it is an sr-search one (prompt and env assignments removed)."""
    text = line.strip()
    if text.startswith("$ "):
        text = text[2:].lstrip()
    text = _ENV.sub("", text)
    return text if text.startswith(_PREFIXES) else None


def extract_commands(markdown: str, file: str = "<text>") -> list[Command]:
    """Every sr-search command line of a Markdown text (see the module docstring)."""
    lines = markdown.splitlines()
    found: list[Command] = []
    prose: list[tuple[int, str]] = []  # (line number, text) outside code blocks, for inline spans
    in_block, i = False, 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_block = not in_block
            i += 1
            continue
        if not in_block:
            prose.append((i + 1, line))
            i += 1
            continue
        start = _command_start(line)
        if start is None:
            i += 1
            continue
        first, text = i + 1, start
        while text.rstrip().endswith("\\") and i + 1 < len(lines) and not _FENCE.match(lines[i + 1]):
            i += 1
            text = text.rstrip()[:-1].rstrip() + " " + lines[i].strip()
        found.append(Command(file, first, _strip_comment(text).strip()))
        i += 1
    # Inline spans: over each paragraph of prose (a span may wrap over a line break).
    paragraph: list[tuple[int, str]] = []
    for number, line in [*prose, (0, "")]:
        if line.strip():
            paragraph.append((number, line))
            continue
        if paragraph:
            joined, starts, offset = "", [], 0
            for n, text in paragraph:
                starts.append((offset, n))
                joined += text + "\n"
                offset = len(joined)
            for match in _SPAN.finditer(joined):
                span = " ".join(match.group(1).replace("\\|", "|").split())
                if span.startswith(_PREFIXES):
                    line_no = max(n for off, n in starts if off <= match.start())
                    found.append(Command(file, line_no, span, inline=True))
            paragraph = []
    return sorted(found, key=lambda c: c.line)


def extract_row_flags(markdown: str, file: str = "<text>") -> list[tuple[Command, tuple[str, ...]]]:
    """(the row's command, the --flags its other code spans name) for each table row that starts
    with an sr-search command span."""
    out = []
    for number, line in enumerate(markdown.splitlines(), 1):
        if not line.lstrip().startswith("|"):
            continue
        spans = [" ".join(s.replace("\\|", "|").split()) for s in _SPAN.findall(line)]
        if spans and spans[0].startswith(_PREFIXES):
            flags = tuple(w for s in spans[1:] for w in s.split() if w.startswith("--"))
            out.append((Command(file, number, spans[0], inline=True), flags))
    return out


def unknown_flags(command: str, flags: tuple[str, ...]) -> list[str]:
    """The flags that the (sub)command named in `command` does not have."""
    parser, words = build_parser(), shlex.split(command)
    for prefix in _PREFIXES:
        if words[:len(prefix.split())] == prefix.split():
            words = words[len(prefix.split()):]
            break
    for word in words:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if word.startswith("-") or not subparsers:
            break
        parser = subparsers[0].choices[word]
    known = {option for action in parser._actions for option in action.option_strings}
    return [flag for flag in flags if flag.split("=")[0] not in known]


def parse_error(text: str, name_only: bool = False) -> str | None:
    """None when the command line parses with the real parser, else argparse's message. With
    `name_only` it is enough that the (sub)command named exists (what `--help` after it checks)."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        return f"cannot split {text!r}: {exc}"
    for prefix in _PREFIXES:
        words = prefix.split()
        if argv[:len(words)] == words:
            argv = argv[len(words):]
            break
    if name_only:
        argv = [*argv, "--help"]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):  # 0: --help, which is a valid command
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return None


def _all_commands() -> list[Command]:
    out: list[Command] = []
    for path in DOC_FILES:
        out += extract_commands(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    return out


COMMANDS = _all_commands()
ROW_FLAGS = [row for path in DOC_FILES for row in
             extract_row_flags(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())]


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command_parses(command: Command) -> None:
    mention = command.inline and not any(word.startswith("-") for word in command.text.split())
    error = parse_error(command.text, name_only=mention)
    if error:
        pytest.fail(f"{command.where}: `{command.text}` does not parse: {error}", pytrace=False)


@pytest.mark.parametrize("command,flags", ROW_FLAGS, ids=[c.where for c, _ in ROW_FLAGS])
def test_flags_in_a_command_row_exist(command: Command, flags: tuple[str, ...]) -> None:
    unknown = unknown_flags(command.text, flags)
    if unknown:
        pytest.fail(f"{command.where}: `{command.text}` has no option {', '.join(unknown)}", pytrace=False)


def test_enough_commands_found() -> None:
    files = {c.file for c in COMMANDS}
    assert len(COMMANDS) >= MIN_COMMANDS, f"only {len(COMMANDS)} sr-search command lines found in {files}"
    assert "README.md" in files and any(f.startswith("docs/") for f in files)


def test_checker_rejects_a_made_up_flag() -> None:
    error = parse_error("sr-search run --study demo --no-such-flag")
    assert error is not None and "--no-such-flag" in error
    assert parse_error("sr-search no-such-command --study demo") is not None
    assert parse_error("sr-search bench train --no-such-flag") is not None
    assert parse_error("sr-search run --study demo") is None
    assert parse_error("sr-search evaluate") is not None  # a command line must parse whole...
    assert parse_error("sr-search evaluate", name_only=True) is None  # ...a mention only exist
    assert parse_error("sr-search bench SUB", name_only=True) is not None
    assert unknown_flags("sr-search run --study NAME", ("--resume", "--no-such-flag")) == ["--no-such-flag"]
    assert unknown_flags("sr-search bench curves", ("--json",)) == ["--json"]  # curves writes no JSON


def test_extractor_reads_blocks_spans_continuations_and_comments() -> None:
    text = r"""Run `sr-search status --study NAME` first, or `sr-search report
--study NAME` (a span over a line break); `--resume` alone is no command.

```bash
$ sr-search run --study demo \
    --dry-run      # the estimate only
PGPASSWORD=... sr-search ui --port 5001
ray start --head
```
| `sr-search evaluate --study A --data D --lr-kernel matlab\|pil` | table cell |
"""
    got = [(c.line, c.text) for c in extract_commands(text)]
    assert got == [(1, "sr-search status --study NAME"), (1, "sr-search report --study NAME"),
                   (5, "sr-search run --study demo --dry-run"), (7, "sr-search ui --port 5001"),
                   (10, "sr-search evaluate --study A --data D --lr-kernel matlab|pil")]
    assert _strip_comment("sr-search ui  # http://x/#/y") == "sr-search ui  "
    url = "sr-search run --tracking-uri http://h/#frag"
    assert _strip_comment(url) == url
