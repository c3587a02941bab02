"""The package as a user installs it, and the single definitions the code relies on."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from conftest import REPO

from model_lifecycle import settings
from model_lifecycle.edges.main import STEPS

PACKAGE = REPO / "model_lifecycle"


def test_pip_install_in_a_fresh_venv_gives_the_command_with_every_step(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(REPO)],
                   check=True, capture_output=True, cwd=tmp_path)
    shown = subprocess.run([str(venv / "bin" / "model-lifecycle"), "--help"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    listed = re.findall(r"^  (\S+)\s{2,}", shown.stdout, flags=re.M)
    assert listed == list(STEPS)
    # the installed package carries its templates and the demo's files
    site = next((venv / "lib").glob("python3*/site-packages/model_lifecycle"))
    assert (site / "templates" / "report.md.j2").is_file()
    assert (site / "edges" / "demo_files" / "demo-policy.yml").is_file()


def test_every_script_is_a_step_of_the_command():
    scripts = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))
    assert scripts == sorted(step.script for step in STEPS.values())
    for path in (REPO / "scripts").glob("*.py"):
        assert f'script_main("{path.stem}")' in path.read_text()


def test_no_sys_path_edits_in_the_package_or_the_scripts():
    offenders = [str(p.relative_to(REPO)) for folder in (PACKAGE, REPO / "scripts") for p in folder.rglob("*.py")
                 if "sys.path" in p.read_text()]
    assert offenders == []


def test_readme_settings_table_is_the_generated_one():
    assert settings.markdown_table() in (REPO / "README.md").read_text()


def test_environment_variables_named_in_the_code_are_declared_settings():
    declared = {s.name for s in settings.ALL}
    allowed = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}  # set for the demo's own server, never read
    named = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name != "settings.py":
            named |= set(re.findall(r"[\"']((?:LIFECYCLE|GITHUB|MLFLOW|RUNNER|ACTIONS)_[A-Z_]+)[\"']",
                                    path.read_text()))
    assert named - declared - allowed == set()


def test_every_tag_literal_lives_in_tags_py():
    strays = [f"{p.relative_to(REPO)}: {m}" for p in PACKAGE.rglob("*.py") if p.name != "tags.py"
              for m in re.findall(r"[\"'](lifecycle\.[a-z_.]+)[\"']", p.read_text())]
    assert strays == []


def test_pyproject_pins_the_runtime_set_of_requirements_txt():
    pins = sorted(line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
                  if line.strip() and not line.startswith("#"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(project["dependencies"]) == pins
    assert all("==" in pin for pin in pins)
