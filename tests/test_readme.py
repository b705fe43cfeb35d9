"""The README's snippets work: every ```python block runs, every `causalcts` command in a ```bash block exists.

Python blocks run in order in one namespace (as a reader pasting them into one notebook would), in a
temporary folder, with causalcts' own warnings as errors (pytest configuration): a snippet that warns
or fails is a broken README. Shell commands are not run (``causalcts demo`` and the test suite take
minutes); each ``causalcts ...`` command is checked against the installed command's ``--help``: the
sub-command exists, every option exists, and an option's value is one of its listed choices.
"""

import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def blocks(language: str, text: str | None = None) -> list[str]:
    text = README.read_text() if text is None else text
    return [body for lang, body in FENCE.findall(text) if lang == language]


def test_readme_has_snippets():
    assert len(blocks("python")) >= 2 and len(blocks("bash")) >= 2


def test_python_snippets_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, code in enumerate(blocks("python"), start=1):
        try:
            exec(compile(code, f"README.md python block {i}", "exec"), namespace)
        except Exception as err:
            pytest.fail(f"README python block {i} fails: {type(err).__name__}: {err}\n{code}")


def commands(text: str | None = None) -> list[list[str]]:
    """Every ``causalcts ...`` command of the bash blocks, as argument lists (comments removed)."""
    out = []
    for body in blocks("bash", text):
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            cmd: list[str] = []
            for w in [*words, "&&"]:
                if w in ("&&", "||", ";", "|"):
                    if cmd and cmd[0] == "causalcts":
                        out.append(cmd[1:])
                    cmd = []
                else:
                    cmd.append(w)
    return out


@cache
def help_text(*sub: str) -> str:
    exe = shutil.which("causalcts")
    assert exe, "the `causalcts` command the README uses is not installed (pip install -e .)"
    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run([exe, *sub, "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def subcommands(*sub: str) -> set[str]:
    return set(re.findall(r"^ {4}([a-z][\w-]*)", help_text(*sub), flags=re.M))


def check_command(args: list[str]) -> None:
    """Raise AssertionError unless ``causalcts *args`` names real sub-commands, options and choices."""
    assert args, "a bare `causalcts`"
    path: list[str] = []
    rest = list(args)
    while rest and subcommands(*path):
        assert rest[0] in subcommands(*path), (
            f"`causalcts {' '.join(args)}`: {rest[0]!r} is not a sub-command of `causalcts {' '.join(path)}` "
            f"({sorted(subcommands(*path))})"
        )
        path.append(rest.pop(0))
    text = help_text(*path)
    for i, word in enumerate(rest):
        if not word.startswith("-"):
            continue
        option = word.split("=")[0]
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
            f"`causalcts {' '.join(args)}`: no option {option} in `causalcts {' '.join(path)} --help`"
        )
        choices = re.search(rf"{re.escape(option)}(?: [A-Z_]+)? \{{([^}}]+)\}}", text)
        value = word.split("=", 1)[1] if "=" in word else (rest[i + 1] if i + 1 < len(rest) else None)
        if choices and value is not None:
            assert value in choices.group(1).split(","), f"`causalcts {' '.join(args)}`: {option} {value}"
        if option == "--grid" and value is not None and not value.endswith(".toml"):
            from causalcts.evaluation.montecarlo import grid_names

            assert value in grid_names(), f"`causalcts {' '.join(args)}`: no grid {value!r} ships with causalcts"


def test_the_checker_catches_a_wrong_command():
    with pytest.raises(AssertionError, match="not a sub-command"):
        check_command(["bench", "recover", "--grid", "smoke"])
    with pytest.raises(AssertionError, match="no option --grids"):
        check_command(["bench", "recovery", "--grids", "smoke"])
    with pytest.raises(AssertionError, match="--engine spark"):
        check_command(["bench", "recovery", "--engine", "spark"])
    with pytest.raises(AssertionError, match="no grid 'huge'"):
        check_command(["bench", "recovery", "--grid", "huge"])


def test_shell_commands_name_real_subcommands_and_options():
    found = commands()
    assert ["demo"] in found  # the README's first command
    for args in found:
        check_command(args)
