"""The prose check: a number in a lesson's markdown must be printed, set in code or declared."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_prose", ROOT / "scripts" / "check_prose.py")
check_prose = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_prose)

LESSONS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def notebook(markdown, printed="", code="", constants=None):
    cells = [{"cell_type": "code", "source": code, "metadata": {},
              "outputs": [{"output_type": "stream", "name": "stdout", "text": printed}]},
             {"cell_type": "markdown", "source": markdown, "metadata": {}}]
    meta = {"course": {"prose_constants": constants}} if constants is not None else {}
    return {"cells": cells, "metadata": meta}


def texts(nb):
    return [c.text for c in check_prose.unsupported(nb)]


def test_a_printed_number_supports_the_prose_at_its_shown_precision():
    assert texts(notebook("cos(g, d) = 0.56 here", printed="cos = 0.5612\n")) == []
    assert texts(notebook("cos(g, d) = 0.57 here", printed="cos = 0.5612\n")) == ["0.57"]
    assert texts(notebook("about 140 at α = 10", printed="return 139.6 at 10.0")) == []


def test_percentages_match_printed_percentages_or_fractions():
    assert texts(notebook("overshoots on 11 % of updates", printed="fraction 0.112")) == []
    assert texts(notebook("overshoots on 15 % of updates", printed="fraction 0.112")) == ["15"]


def test_code_literals_and_declared_constants_support_settings():
    assert texts(notebook("at δ = 0.01", code="delta = 0.01")) == []
    assert texts(notebook("up to 500 steps", constants={"500": "CartPole-v1's cap"})) == []
    assert texts(notebook("up to 500 steps", constants={})) == ["500"]
    with pytest.raises(ValueError, match="prose_constants"):
        check_prose.unsupported(notebook("x", constants={"500": ""}))


def test_references_math_and_code_are_not_results():
    prose = ("## 5 · Title\nLesson 04, section 7 and eq. 12 (Schulman et al., 2015) say $x = 0.37$ "
             "with `delta=0.93` and a rate 2.5·10⁻³ [see](http://a.b/c/123).")
    assert texts(notebook(prose, printed="lr 0.0025")) == []


def test_powers_of_ten_are_read_as_one_number():
    assert texts(notebook("changed the KL by 9·10⁻⁵", printed="kl 9e-05")) == []
    assert texts(notebook("changed the KL by 9·10⁻⁵", printed="kl 9e-04")) == ["9·10⁻⁵"]


def test_a_section_quotes_its_own_outputs_and_the_summary_quotes_all():
    def cell(kind, text):
        if kind == "code":
            return {"cell_type": "code", "source": "", "metadata": {},
                    "outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}
        return {"cell_type": "markdown", "source": text, "metadata": {}}

    nb = {"metadata": {}, "cells": [
        cell("md", "# Title"), cell("md", "## 1 · First"), cell("code", "ratio 1.71"),
        cell("md", "The ratio is 1.7.\n\n## 2 · Second"), cell("code", "gain 0.33"),
        cell("md", "The gain is 0.33, the ratio 1.7."), cell("md", "## Summary\nratio 1.7, gain 0.33")]}
    assert [(c.text, c.cell) for c in check_prose.unsupported(nb)] == [("1.7", 5)]


def test_thousands_are_one_number():
    assert texts(notebook("batches of 2 048 transitions", printed="2048 transitions")) == []
    assert texts(notebook("after 10,000 steps", printed="10000 steps")) == []
    assert texts(notebook("after 10,000 steps", printed="10 steps")) == ["10,000"]


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_number_in_a_lesson_is_printed_set_or_declared(path):
    bad = check_prose.unsupported(json.loads(path.read_text()))
    assert not bad, "numbers in the prose that the lesson does not print:\n" + "\n".join(
        f"  cell {c.cell}: {c.text!r} in …{c.context}…" for c in bad)
