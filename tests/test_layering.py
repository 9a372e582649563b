"""course_lib's layers hold, their check can fail, and no module imports another's private names.

The layers and the rules between them are import-linter contracts in pyproject.toml
(``[tool.importlinter]``); README.md, "How course_lib is built", draws them. ``make test`` runs
``make lint-imports`` before pytest; the tests here run it too, and show on a copy of the
package that a single upward import breaks it.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_lib"
PYPROJECT = ROOT / "pyproject.toml"
LESSON_MODULE = re.compile(r"l\d\d_\w+")


def contracts() -> dict[str, dict]:
    data = tomllib.loads(PYPROJECT.read_text())
    return {c["id"]: c for c in data["tool"]["importlinter"]["contracts"]}


def lint_imports(*args: str, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's lint-imports on the course_lib found first on ``pythonpath``."""
    exe = Path(sys.executable).with_name("lint-imports")
    if exe.exists():
        argv = [str(exe)]
    else:  # an environment without the console script: the same command through its module
        argv = [sys.executable, "-c",
                "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")])),
        "COLUMNS": "250",  # one line per contract name and per import, so the asserts can find them
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [*argv, "--no-logo", "--no-cache", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_every_import_contract_is_kept():
    proc = lint_imports(cwd=ROOT, pythonpath=ROOT)
    assert proc.returncode == 0, (
        f"lint-imports exited {proc.returncode}: an import breaks course_lib's layers "
        f"(README.md, 'How course_lib is built').\n{proc.stdout}\n{proc.stderr}"
    )


# Each case adds one import that a contract forbids, to a copy of course_lib.
BAD_IMPORTS = {
    "core imports widgets": (
        {"core/advantages.py": "import course_lib.widgets.panel\n"},
        ["layers", "core-only-validate"],
        "course_lib.core.advantages -> course_lib.widgets.panel",
    ),
    "rl imports a lesson": (
        {"rl/rollout.py": "from course_lib.lessons import l03_ratio\n"},
        ["layers"],
        "course_lib.rl.rollout -> course_lib.lessons.l03_ratio",
    ),
    "a lesson imports another lesson": (
        {"lessons/l02_policy_distance.py": "import course_lib.lessons.l03_ratio\n"},
        ["lessons-independent"],
        "course_lib.lessons.l02_policy_distance -> course_lib.lessons.l03_ratio",
    ),
    "exercises import widgets": (
        {"exercises/builder.py": "import course_lib.widgets.plots\n"},
        ["exercises-not-widgets"],
        "course_lib.exercises.builder -> course_lib.widgets.plots",
    ),
    "a checker imports another checker": (
        {"exercises/checks/l01_cliff.py": "import course_lib.exercises.checks.l02_policy_distance\n"},
        ["checks-independent"],
        "course_lib.exercises.checks.l01_cliff -> course_lib.exercises.checks.l02_policy_distance",
    ),
}


@pytest.mark.parametrize("case", BAD_IMPORTS)
def test_lint_imports_fails_on_a_forbidden_import(case, tmp_path):
    edits, broken_ids, link = BAD_IMPORTS[case]
    copy = tmp_path / "course_lib"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    for rel, line in edits.items():
        path = copy / rel
        path.write_text(path.read_text() + "\n" + line)
    config = tmp_path / "pyproject.toml"
    shutil.copy(PYPROJECT, config)

    # Only the contracts the import breaks: others may be broken in the real tree (the first
    # test reports those), and must not make this one pass for the wrong reason.
    contract_args = [arg for cid in broken_ids for arg in ("--contract", cid)]
    proc = lint_imports(str(config), *contract_args, cwd=tmp_path, pythonpath=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"lint-imports passed with {case}:\n{out}"
    for cid in broken_ids:
        name = contracts()[cid]["name"]
        assert f"{name} BROKEN" in out, f"lint-imports did not name the broken rule {name!r}:\n{out}"
    # The copy, not the installed course_lib, was checked: the added import is the one named.
    assert link in out, out


def lesson_modules(package: Path) -> set[str]:
    return {p.stem for p in package.glob("l[0-9][0-9]_*.py")}


def listed_lesson_modules(contract_id: str, package: str) -> set[str]:
    contract = contracts()[contract_id]
    assert contract["type"] == "independence", contract
    names = contract["modules"]
    assert all(n.startswith(package + ".") for n in names), names
    return {n.removeprefix(package + ".") for n in names}


@pytest.mark.parametrize(
    ("contract_id", "folder"),
    [
        ("lessons-independent", "lessons"),
        ("widgets-independent", "widgets"),
        ("checks-independent", "exercises/checks"),
    ],
)
def test_every_lesson_module_is_in_its_independence_contract(contract_id, folder):
    package = PACKAGE / folder
    listed = listed_lesson_modules(contract_id, "course_lib." + folder.replace("/", "."))
    assert all(LESSON_MODULE.fullmatch(n) for n in listed), listed
    if not (package / "__init__.py").exists():
        pytest.skip(f"course_lib/{folder}/ is not a package yet")
    present = lesson_modules(package)
    assert present - listed == set(), (
        f"add these lesson modules of course_lib/{folder}/ to the contract {contract_id!r} "
        f"in pyproject.toml: {sorted(present - listed)}"
    )
    assert listed - present == set(), (
        f"the contract {contract_id!r} in pyproject.toml names modules that "
        f"course_lib/{folder}/ does not have: {sorted(listed - present)}"
    )


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def absolute_module(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_private_submodule(module: str, name: str, importer: str) -> bool:
    """``from pkg import _mod`` from inside pkg: a private module used by its own package."""
    folder = ROOT.joinpath(*module.split("."))
    exists = (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()
    return exists and (importer == module or importer.startswith(module + "."))


def private_name_imports() -> list[str]:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = absolute_module(node, importer, path.name == "__init__.py")
            if module != "course_lib" and not module.startswith("course_lib."):
                continue
            if module == "course_lib._validate" or module.startswith("course_lib._validate."):
                continue  # a private module of public helpers, for every layer
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                    continue
                if module == "course_lib" and name == "_validate":
                    continue
                if is_private_submodule(module, name, importer):
                    continue
                rel = path.relative_to(ROOT)
                offenders.append(f"{rel}:{node.lineno}: from {module} import {name}")
    return offenders


def test_no_module_imports_a_private_name_of_another():
    offenders = private_name_imports()
    print("\n".join(offenders))
    assert offenders == [], (
        "these imports reach into another module's private (_name) API; make the name public "
        "(and document it) or move the code that needs it:\n  " + "\n  ".join(offenders)
    )
