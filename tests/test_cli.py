"""The command layer: every step has --help with help text on every option, and --help imports no MLflow."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest
from conftest import REPO

STEPS = ["train", "register", "transition", "rollback", "archive", "status", "demo",
         "check_model", "evaluate", "compare_baseline", "model_card", "notify", "setup_environments", "relay",
         "release_candidate"]


def all_parsers(parser):
    """The parser and every subcommand's parser."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


@pytest.mark.parametrize("step", STEPS)
def test_every_option_has_help(step):
    module = importlib.import_module(f"model_lifecycle.edges.{'' if step in ('demo',) else 'commands.'}{step}")
    parser = module.build_parser()
    missing = [a.option_strings for p in all_parsers(parser) for a in p._actions if a.option_strings and not a.help]
    assert missing == []
    assert "Examples:" in parser.format_help()


@pytest.mark.parametrize("step", STEPS)
def test_help_is_fast_because_it_imports_no_mlflow(step):
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['{step}.py', '--help']\n"
        "try:\n"
        f"    runpy.run_path(r'{REPO / 'scripts' / (step + '.py')}', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in ('mlflow', 'pandas', 'sklearn', 'rich') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
