"""Every ``python -m`` CLI's ``--help``: each option has help text and shows its default, and
every option the help text mentions (its own, or another CLI's after ``python -m that.cli``)
is one that parser accepts.

The CLIs are discovered, not listed: every module of the packages pyproject.toml installs
that has a ``def main(`` and an ``if __name__ == "__main__":`` block. ``--help`` runs
in-process (one interpreter, so the whole file takes seconds); the parser that printed it is
read from the frames of the ``SystemExit`` it raised, so the checks see the real parser.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _packages() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({name.rstrip("*").rstrip(".") for name in includes})


def discover_clis() -> list[str]:
    """Modules with ``def main(`` and a ``__main__`` block, as ``package.module`` names."""
    found = []
    for package in _packages():
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if (re.search(r"^def main\(", text, re.M)
                    and re.search(r"^if __name__ == [\"']__main__[\"']:", text, re.M)):
                found.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


CLIS = discover_clis()

# Gaps in files this change may not edit (their owners are working on them); strict, so an
# entry fails as soon as its gap is closed and must then be removed.
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def _parser_from_exit(exc: BaseException) -> argparse.ArgumentParser:
    """The parser whose --help action raised ``exc`` (the innermost one in the traceback)."""
    parser, tb = None, exc.__traceback__
    while tb is not None:
        for name in ("parser", "self"):
            candidate = tb.tb_frame.f_locals.get(name)
            if isinstance(candidate, argparse.ArgumentParser):
                parser = candidate
        tb = tb.tb_next
    assert parser is not None, "no ArgumentParser in the --help traceback"
    return parser


@functools.cache
def run_help(module: str, command: str | None = None) -> tuple[argparse.ArgumentParser, str]:
    """(parser, printed help) of ``python -m module [command] --help``, run in-process."""
    main = importlib.import_module(module).main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        main([command, "--help"] if command else ["--help"])
    assert exc.value.code in (0, None), f"{module} --help exited with {exc.value.code}"
    return _parser_from_exit(exc.value), out.getvalue()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sub for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def all_parsers(module: str) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(label, parser, help text) of the CLI and of each of its subcommands."""
    parser, text = run_help(module)
    found = [(module, parser, text)]
    for name in subcommands(parser):
        sub, sub_text = run_help(module, name)
        found.append((f"{module} {name}", sub, sub_text))
    return found


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings ``parser`` accepts, with its subcommands'."""
    known = set(parser._option_string_actions)
    for sub in subcommands(parser).values():
        known |= options_of(sub)
    return known


def documented_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]


# A mention of a CLI: "python -m live.render", or a bare "live.render" of a discovered CLI.
_CLI_MENTION = re.compile(r"(?:python -m )?\b(" + "|".join(re.escape(m) for m in CLIS)
                          + r")\b(?: ([a-z]+))?")
_OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")
_CLAUSE_END = re.compile(r"[;:()\[\]]|\.\s|\n\n")


def option_mentions(text: str, module: str) -> list[tuple[str, str, str | None]]:
    """(option, CLI it belongs to, subcommand or None) for every option the text names.

    An option belongs to the CLI named last before it in the same clause, else to ``module``.
    """
    text = re.sub(r"python -m\b", "python_m", text)
    mentions = []
    for match in _OPTION.finditer(text):
        before = text[: match.start()]
        clause_start = max((m.end() for m in _CLAUSE_END.finditer(before)), default=0)
        owner, command = module, None
        for cli in _CLI_MENTION.finditer(before[clause_start:].replace("python_m", "")):
            owner, command = cli.group(1), cli.group(2)
        mentions.append((match.group(1), owner, command))
    return mentions


def _param(module: str, check: str):
    reason = KNOWN_GAPS.get((module, check))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(module, marks=marks, id=module)


@pytest.mark.parametrize("module", [_param(m, "help") for m in CLIS])
def test_every_option_has_help_and_every_documented_option_exists(module):
    assert len(CLIS) >= 10, f"CLI discovery found only {CLIS}"
    problems = []
    for label, parser, text in all_parsers(module):
        assert text.startswith("usage:"), f"{label} --help printed no usage"
        for action in documented_actions(parser):
            name = action.option_strings[-1] if action.option_strings else action.dest
            if isinstance(action, argparse._SubParsersAction):  # each command has its help
                problems += [f"{label} {choice.dest}: no help text"
                             for choice in action._choices_actions if not choice.help]
            elif not (action.help or "").strip():
                problems.append(f"{label} {name}: no help text")
        for option, owner, command in option_mentions(text, module):
            owner_parser = run_help(owner)[0] if owner != module else parser
            known = options_of(owner_parser) | set(run_help(owner)[0]._option_string_actions)
            if command in subcommands(run_help(owner)[0]):
                known = options_of(subcommands(run_help(owner)[0])[command]) | known
            if option not in known:
                where = owner + (f" {command}" if command else "")
                problems.append(f"{label} --help mentions {option}, which {where} does not "
                                f"accept")
    assert not problems, "\n".join(problems)


def shows_default(action: argparse.Action) -> bool:
    """The help says 'default', or puts the default in brackets: '(16)', '(INFO)'."""
    text = (action.help or "").lower()
    return "default" in text or f"({action.default})".lower() in text


@pytest.mark.parametrize("module", [_param(m, "defaults") for m in CLIS])
def test_every_option_with_a_default_shows_it(module):
    problems = []
    for label, parser, _ in all_parsers(module):
        shows_all = (isinstance(parser.formatter_class, type) and issubclass(
            parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter))
        for action in documented_actions(parser):
            if (not action.option_strings or shows_all
                    or action.default in (None, False, argparse.SUPPRESS)
                    or isinstance(action, argparse._StoreConstAction)):
                continue
            if not shows_default(action):
                problems.append(f"{label} {action.option_strings[-1]}: default "
                                f"{action.default!r} not shown")
    assert not problems, "\n".join(problems)


def test_mentions_are_attributed_to_the_cli_named_before_them():
    text = ("session folder (python -m live.render --record DIR); see --list-presets, "
            "then python -m datasets.art build --size 64")
    assert option_mentions(text, "gan.train") == [
        ("--record", "live.render", None), ("--list-presets", "gan.train", None),
        ("--size", "datasets.art", "build")]
