"""The learner's working copy of the course, which ``make lab`` opens.

    python -m course_lib.workspace [TARGET]        # default: my_notebooks/

Running and saving a notebook rewrites it (outputs, the kernel's name and Python version), so a
learner who worked in ``notebooks/`` itself would find ``git pull`` refusing the course's
updates. ``make lab`` therefore opens a copy, ``my_notebooks/`` (ignored by git), made by
:func:`sync`:

* a lesson or exercise notebook missing from the copy is copied;
* one the learner has not saved since it was copied follows the course: when the course's
  version changes, the copy is replaced;
* one the learner saved is never touched; when the course has a newer version, ``sync``
  says where it is (``notebooks/NN_name.ipynb``), so nothing of the learner's is lost.

``TARGET/.course_copies.json`` keeps, for every file, the hash of what was copied. The same
"write unless edited" rule keeps :mod:`course_lib.exercises` from overwriting an exercise
notebook a learner has edited.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "notebooks"
WORKSPACE = ROOT / "my_notebooks"
RECORD = ".course_copies.json"
PATTERNS = ("[0-9][0-9]_*.ipynb", "exercises/[0-9][0-9]_*.ipynb")

__all__ = ["content_hash", "read_record", "sync", "write_record", "write_unless_edited"]


def content_hash(text: str) -> str | None:
    """Hash of a notebook's JSON content, insensitive to indentation and key order; ``None``
    when the text is not JSON (a file half-written by hand is treated as edited)."""
    try:
        canonical = json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return None
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_record(folder: Path, name: str) -> dict[str, str]:
    path = folder / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def write_record(folder: Path, name: str, record: dict[str, str]) -> None:
    (folder / name).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n",
                               encoding="utf-8")


def write_unless_edited(target: Path, text: str, record: dict[str, str], key: str,
                        force: bool = False) -> str:
    """Write ``text`` to ``target`` unless someone changed ``target`` since it was written.

    ``record[key]`` is the hash of what was last written there. Returns ``"wrote"``,
    ``"up to date"`` or ``"left alone"`` (``target`` differs from what was written, and
    ``force`` is False); ``record`` is updated to what ``target`` holds when it is ours.
    """
    if target.exists():
        current = target.read_text(encoding="utf-8")
        if current == text:
            record[key] = content_hash(text)
            return "up to date"
        if content_hash(current) != record.get(key) and not force:
            return "left alone"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    record[key] = content_hash(text)
    return "wrote"


def sync(target: Path = WORKSPACE, course: Path = COURSE) -> list[str]:
    """Bring the working copy ``target`` up to date with ``course``; return what to tell the
    learner (one line per notebook copied, updated, or kept while the course has a newer
    version)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    record = read_record(target, RECORD)
    copied_before = dict(record)
    copied, updated, kept = [], [], []
    for source in sorted(p for pattern in PATTERNS for p in course.glob(pattern)):
        key = source.relative_to(course).as_posix()
        text = source.read_text(encoding="utf-8")
        existed = (target / key).exists()
        status = write_unless_edited(target / key, text, record, key)
        if status == "wrote":
            (updated if existed else copied).append(key)
        elif status == "left alone" and key in copied_before \
                and copied_before[key] != content_hash(text):
            kept.append(key)
    write_record(target, RECORD, record)
    lines = []
    if copied:
        lines.append(f"copied {len(copied)} notebooks of the course into {target}")
    lines += [f"updated {target / k} (you had not saved it since it was copied)"
              for k in updated]
    lines += [f"kept your {target / k}; the course has a newer version: {course / k}"
              for k in kept]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for line in sync(Path(args[0]) if args else WORKSPACE):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
