"""Static checks of the action and workflows: zizmor (security audit), the GitHub JSON schemas, and
every third-party `uses:` pinned to a full commit SHA."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = Path(sys.executable).parent
WORKFLOW_FILES = sorted((REPO / ".github" / "workflows").glob("*.yml")) + sorted((REPO / "workflows").glob("*.yml"))
ACTION_FILES = [REPO / "action.yml"]
OWN_ACTION = "ml-platform/model-promotion-toolkit"


def test_zizmor_finds_nothing():
    files = [str(p) for p in ACTION_FILES + WORKFLOW_FILES]
    result = subprocess.run([str(BIN / "zizmor"), "--offline", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.parametrize("schema, files", [("vendor.github-actions", ACTION_FILES),
                                           ("vendor.github-workflows", WORKFLOW_FILES)])
def test_files_validate_against_githubs_schemas(schema, files):
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_third_party_action_is_pinned_to_a_full_sha():
    uses = re.compile(r"^\s*(?:-\s+)?uses:\s*([^\s#]+)", re.MULTILINE)
    for path in ACTION_FILES + WORKFLOW_FILES:
        for ref in uses.findall(path.read_text()):
            if ref.startswith("./") or ref.startswith(OWN_ACTION):
                continue  # the toolkit's own action and workflow, released together under one tag
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned to a SHA"


def test_no_expression_inside_run_blocks():
    """Inputs reach scripts through env: only; a ${{ }} in run: is a template injection."""
    blocks = []
    for path in ACTION_FILES + WORKFLOW_FILES:
        for block in re.findall(r"run: \|\n((?:\s{8,}.*\n?)+)", path.read_text()):
            blocks.append(block)
            assert "${{" not in block, f"{path.name} has an expression inside run:"
    assert len(blocks) >= 3  # the action's two steps and the pull-request template's training step


def test_readme_documents_every_action_input_and_output():
    import yaml

    readme = (REPO / "README.md").read_text()
    action = yaml.safe_load((REPO / "action.yml").read_text())
    for name, spec in action["inputs"].items():
        assert f"### `{name}`" in readme and spec.get("description")
    for name in action["outputs"]:
        assert f"- `{name}`:" in readme
