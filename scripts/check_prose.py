"""Prose held to the outputs: every number a lesson's markdown states must be shown by the lesson.

A number in a markdown cell of ``notebooks/NN_*.ipynb`` passes when

1. a stored output of the same notebook prints it, to the precision the prose shows
   ("0.56" matches a printed 0.5612; "11 %" matches a printed 11.2 or 0.112), or
2. it is a literal of the notebook's own code (a setting the learner can see: ``delta=0.01``), or
3. it is declared once as a constant of the lesson, with what it is, in the notebook's metadata
   ``course.prose_constants`` (``{"500": "CartPole-v1's episode cap"}``).

Not numbers of a result, so not checked: math (``$…$``), inline code, link targets, lesson
numbers written with a leading zero (``lesson 04``), years of citations, section and equation
numbers ("section 7", "eq. 12", "Theorem 1", "## 5 · …") and powers of ten written ``10⁻³``.

Usage: ``python scripts/check_prose.py [notebooks/NN_*.ipynb ...]`` prints every unsupported
number with its cell and context, and exits 1 if there is one.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]

_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_TAG = re.compile(r"<[^>]+>")
# 8 192 and 18,000 are one number; a digit run glued to letters (k3, CartPole-v1, 2D) is a name.
_NUMBER = re.compile(r"(?<![\w.\-−/])(\d{1,3}(?:[ \u202f,]\d{3})+(?!\d)|\d+(?:\.\d+)?)(?![\w])")
_OUTPUT_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_REFERENCE_WORDS = re.compile(
    r"(?:lessons?|section|§|eq\.|equation|theorem|figure|cell|step|exercise|chapter|part|appendix)"
    r"\s*$", re.I)
_SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹⁻"


class Claim(NamedTuple):
    """A number stated in a markdown cell: its text, the cell index and the words around it."""

    text: str
    cell: int
    context: str

    @property
    def value(self) -> float:
        return float(re.sub(r"[ \u202f,]", "", self.text))

    @property
    def decimals(self) -> int:
        return len(self.text.split(".")[1]) if "." in self.text else 0


def _strip(markdown: str) -> str:
    for pattern in (_CODE, _MATH, _LINK_TARGET, _TAG):
        markdown = pattern.sub(" ", markdown)
    return html.unescape(markdown)


def _is_reference(text: str, before: str, after: str) -> bool:
    if len(text) == 2 and text.startswith("0") or re.fullmatch(r"1[0-9]", text) and before.endswith(
            ("lesson ", "lessons ", "Lesson ")):
        return True  # lesson numbers: 04, lesson 11
    if re.fullmatch(r"(19[5-9]\d|20[0-3]\d)", text):
        return True  # a citation's year
    if _REFERENCE_WORDS.search(before) or re.search(r"(^|\n)#+\s*$", before):
        return True  # "section 7", "eq. 12", a heading's number "## 5 · …"
    return after[:1] in _SUPERSCRIPT or (text == "10" and after[:1] == "^")


def claims(nb: dict) -> list[Claim]:
    """Every checked number of the notebook's markdown cells, in order."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        prose = _strip("".join(cell["source"]))
        for m in _NUMBER.finditer(prose):
            before, after = prose[max(0, m.start() - 20):m.start()], prose[m.end():m.end() + 3]
            if _is_reference(m.group(1), before, after):
                continue
            context = prose[max(0, m.start() - 40):m.end() + 25].replace("\n", " ")
            found.append(Claim(m.group(1), index, context))
    return found


def _output_text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            parts.append("".join(out.get("text", "")))
            data = out.get("data", {})
            for kind in ("text/plain", "text/html", "text/markdown"):
                parts.append(_TAG.sub(" ", "".join(data.get(kind, ""))))
    return html.unescape("\n".join(parts))


def printed_numbers(nb: dict) -> list[float]:
    """Every number the stored outputs print (thousands separators joined)."""
    text = re.sub(r"(?<=\d)[,\u202f](?=\d{3}\b)", "", _output_text(nb))
    return [float(x) for x in _OUTPUT_NUMBER.findall(text)]


def code_literals(nb: dict) -> set[float]:
    """Numeric literals of the notebook's code cells: the settings a learner reads in the code."""
    out = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = re.sub(r"#.*", "", "".join(cell["source"]))
            out.update(float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", src))
    return out


def declared_constants(nb: dict) -> dict[str, str]:
    """``course.prose_constants`` of the notebook's metadata: number → what it is."""
    consts = nb.get("metadata", {}).get("course", {}).get("prose_constants", {})
    if not isinstance(consts, dict) or not all(isinstance(v, str) and v for v in consts.values()):
        raise ValueError("metadata course.prose_constants must map each number to what it is")
    return consts


def _shown(claim: Claim, number: float) -> bool:
    tolerance = 0.5 * 10.0 ** -claim.decimals + 1e-9
    return abs(number - claim.value) <= tolerance


def unsupported(nb: dict) -> list[Claim]:
    """The claims that no output prints, no code sets and no constant declares."""
    printed = printed_numbers(nb)
    literals = code_literals(nb)
    declared = {float(k.replace(" ", "").replace(",", "")) for k in declared_constants(nb)}
    bad = []
    for claim in claims(nb):
        percent = claim.context.split(claim.text, 1)[-1].lstrip(" \u202f").startswith("%")
        scaled = Claim(f"{claim.value / 100:.{claim.decimals + 2}f}", claim.cell, claim.context)
        if claim.value in literals or claim.value in declared:
            continue
        if any(_shown(claim, x) or (percent and _shown(scaled, x)) for x in printed):
            continue
        bad.append(claim)
    return bad


def main(paths: list[str]) -> int:
    paths = paths or sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    failed = 0
    for path in paths:
        bad = unsupported(json.loads(Path(path).read_text()))
        failed += len(bad)
        for claim in bad:
            print(f"{path}: cell {claim.cell}: {claim.text!r} is not printed by the lesson: "
                  f"…{claim.context}…")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
