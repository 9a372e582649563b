"""The project's set-up files agree with each other."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _normalise(specs: list[str]) -> dict[str, str]:
    reqs = [Requirement(s) for s in specs]
    return {r.name.lower().replace("_", "-"): str(r.specifier) for r in reqs}


def pyproject_runtime() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return _normalise(data["project"]["dependencies"])


def environment_runtime() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return _normalise([s for s in pip_section if not s.startswith("-")])


def test_environment_yml_lists_the_same_runtime_dependencies_as_pyproject():
    assert environment_runtime() == pyproject_runtime()


def test_environment_yml_asks_for_python_312_and_installs_the_project():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.12" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "--editable ." in pip_section


def test_jax_and_jaxlib_are_pinned_to_one_exact_version():
    deps = pyproject_runtime()
    assert deps["jax"] == deps["jaxlib"] == "==0.12.0.1"
    import jax

    assert jax.__version__ == "0.12.0.1"


def test_find_python_picks_a_working_python_312_or_newer():
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/find_python.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    version = subprocess.run(
        [out, "-c", "import sys; print(sys.version_info[:2] >= (3, 12))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert version == "True"


def test_find_python_rejects_a_python_that_is_too_old(tmp_path):
    old = tmp_path / "python"
    old.write_text("#!/bin/sh\nexit 1\n")
    old.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/find_python.sh")],
        capture_output=True, text=True, check=False,
        env={"PYTHON": str(old), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode != 0
    assert "PYTHON=" in proc.stderr


def test_find_python_without_any_candidate_names_the_conda_route(tmp_path):
    (tmp_path / "cat").symlink_to("/bin/cat")
    proc = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts/find_python.sh")],
        capture_output=True, text=True, check=False,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "environment.yml" in proc.stderr
