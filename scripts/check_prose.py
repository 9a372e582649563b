"""Prose held to the outputs: every number a lesson's markdown states must be shown by the lesson.

A number in a markdown cell of ``notebooks/NN_*.ipynb`` passes when

1. a stored output of the same section prints it (from one ``#``/``##`` heading to the next,
   headings inside a markdown cell included; the lesson's title section and its "Summary"
   may quote any output), to the precision the prose shows ("0.56" matches a printed 0.5612; "11 %"
   matches a printed 11.2 or 0.112), or
2. it is a literal of the code of its section or of the lesson's set-up (title) section: a
   setting the learner can see (``delta=0.01``), or
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
_NUMBER = re.compile(
    r"(?<![\w.\-−/])(\d{1,3}(?:[ \u202f,]\d{3})+(?!\d)|\d+(?:\.\d+)?)(?![\w]|-\d)")
# 9·10⁻⁵ is one number, 9e-05
_SCIENTIFIC = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?[·×]\s?10([⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
_SUPER_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
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
        m = _SCIENTIFIC.fullmatch(self.text)
        if m:
            return float(f"{m.group(1)}e{m.group(2).translate(_SUPER_DIGITS)}")
        return float(re.sub(r"[ \u202f,]", "", self.text))

    @property
    def tolerance(self) -> float:
        """Half a unit of the last digit shown: what rounding to the shown precision allows."""
        m = _SCIENTIFIC.fullmatch(self.text)
        mantissa = m.group(1) if m else self.text
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        scale = 10.0 ** float(m.group(2).translate(_SUPER_DIGITS)) if m else 1.0
        return 0.5 * 10.0 ** -decimals * scale * (1 + 1e-9)


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


def _output_text(cells: list[dict]) -> str:
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            parts.append("".join(out.get("text", "")))
            data = out.get("data", {})
            for kind in ("text/plain", "text/html", "text/markdown"):
                parts.append(_TAG.sub(" ", "".join(data.get(kind, ""))))
    return html.unescape("\n".join(parts))


def printed_numbers(cells: list[dict]) -> list[float]:
    """Every number the stored outputs of ``cells`` print (thousands separators joined)."""
    text = re.sub(r"(?<=\d)[,\u202f](?=\d{3}\b)", "", _output_text(cells))
    return [float(x) for x in _OUTPUT_NUMBER.findall(text)]


_HEADING = re.compile(r"^#{1,2}\s+(.*)$", re.M)


def sections(nb: dict) -> tuple[list[tuple[int, int, str]], dict[int, list[dict]],
                                dict[int, list[dict]]]:
    """Split the lesson at its ``#``/``##`` headings (also those inside a markdown cell).

    Returns the markdown pieces as ``(cell index, section, text)``, per section the code cells
    whose outputs its prose may quote, and per section its own code cells. A section speaks about itself;
    the lesson's title section and a section named "Summary" may quote the whole lesson.
    """
    pieces, code, whole = [], {}, set()
    section = 0
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            code.setdefault(section, []).append(cell)
            continue
        if cell["cell_type"] != "markdown":
            continue
        text, start = "".join(cell["source"]), 0
        for m in _HEADING.finditer(text):
            pieces.append((index, section, text[start:m.start()]))
            section, start = section + 1, m.start()
            if section == 1 or re.match(r"summary", m.group(1), re.I):
                whole.add(section)
        pieces.append((index, section, text[start:]))
    everything = [c for cells in code.values() for c in cells]
    scope = {k: everything if k in whole or k == 0 else code.get(k, [])
             for k in range(section + 1)}
    return pieces, scope, code


def claims(nb: dict) -> list[tuple[Claim, int]]:
    """Every checked number of the notebook's markdown, with the section it is stated in."""
    found = []
    for index, section, piece in sections(nb)[0]:
        prose = _strip(piece)
        for m in _SCIENTIFIC.finditer(prose):
            context = prose[max(0, m.start() - 40):m.end() + 25].replace("\n", " ")
            found.append((Claim(m.group(0), index, context), section))
        prose = _SCIENTIFIC.sub(" ", prose)
        for m in _NUMBER.finditer(prose):
            if m.group(1) in ("0", "1"):
                continue  # 1 − ε, r = 1, θ₀ = 0: the identities of the formulas
            before, after = prose[max(0, m.start() - 20):m.start()], prose[m.end():m.end() + 3]
            if _is_reference(m.group(1), before, after):
                continue
            context = prose[max(0, m.start() - 40):m.end() + 25].replace("\n", " ")
            found.append((Claim(m.group(1), index, context), section))
    return found


def code_literals(cells: list[dict]) -> set[float]:
    """Numeric literals of code cells: the settings a learner reads in the code."""
    out = set()
    for cell in cells:
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


def _shown(claim: Claim, number: float, scale: float = 1.0) -> bool:
    return abs(number * scale - claim.value) <= claim.tolerance


def unsupported(nb: dict) -> list[Claim]:
    """The claims that no output of their section prints, no code sets and no constant declares."""
    declared = {float(k.replace(" ", "").replace(",", "")) for k in declared_constants(nb)}
    _, scope, own = sections(nb)
    setup = own.get(1, []) + own.get(0, [])
    printed = {k: printed_numbers(cells + setup) for k, cells in scope.items()}
    literals = {k: code_literals(own.get(k, []) + setup) for k in scope}
    bad = []
    for claim, section in claims(nb):
        percent = claim.context.split(claim.text, 1)[-1].lstrip(" \u202f").startswith("%")
        if claim.value in literals[section] or claim.value in declared:
            continue
        if any(_shown(claim, x) or (percent and _shown(claim, x, 100.0)) for x in printed[section]):
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
