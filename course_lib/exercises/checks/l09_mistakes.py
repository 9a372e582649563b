"""Lesson 09's diagnosis questions: a multiple-choice "what went wrong" per broken run."""

from __future__ import annotations

from typing import Any, NamedTuple

from course_lib.exercises.checks.verdict import Wrong, call, verdict

__all__ = ["DIAGNOSES", "Diagnosis", "check_diagnosis"]


class Diagnosis(NamedTuple):
    """A multiple-choice "diagnose the broken run" question.

    Attributes:
      options: letter → the option's text (the lesson shows them, e.g. via ``markdown()``).
      answer: the right letter.
      why: why the right option is right (for the lesson's discussion; the pass line never
        prints it, since the exercise notebook stores that line).
      feedback: letter → why that option is wrong (printed after ✗).
    """

    options: dict[str, str]
    answer: str
    why: str
    feedback: dict[str, str]

    def markdown(self) -> str:
        return "\n".join(f"- **({k})** {v}" for k, v in self.options.items())


DIAGNOSES: dict[str, Diagnosis] = {
    "kl_blowup": Diagnosis(
        options={
            "a": "The learning rate is too small.",
            "b": "Many epochs on the same batch without the clip and without monitoring the KL.",
            "c": "The advantages were not normalised.",
            "d": "The discount γ is too low.",
        },
        answer="b",
        why="a KL of 1–7 nats per update (TRPO's δ is 0.01) means each update walked far from "
            "π_old, where the surrogate no longer predicts the return; keep the clip, 3–10 "
            "epochs, and stop an update when its KL exceeds a target",
        feedback={
            "a": "a learning rate too small gives TINY updates (KL ≪ 0.01) and slow learning, "
                 "not 1–7 nats per update and a collapse",
            "c": "un-normalised advantages change the scale of every step, but the symptom here "
                 "is updates that keep running epoch after epoch with nothing to stop them: the "
                 "clip is off and nobody watches the KL",
            "d": "γ shapes which rewards count; it does not make one update move the policy by "
                 "1–7 nats",
        },
    ),
    "broken_guarantee": Diagnosis(
        options={
            "a": "The surrogate gain is measured on the batch the step was fitted to, so part of "
                 "it is that batch's noise.",
            "b": "The constraint bounds the mean KL over the batch's states; the theorem needs "
                 "the largest per-state KL.",
            "c": "The line search accepted steps whose mean KL was above δ.",
            "d": "With the batch's own numbers, the theorem's penalty C·max KL is over a hundred "
                 "times the gain term, so the bound it gives is far below zero.",
        },
        answer="c",
        why="every one of the 64 updates had a mean KL within δ (section 5 prints 64/64); the "
            "three other options are the measured reasons the theorem does not apply",
        feedback={
            "a": "that IS one of the reasons section 5 measured: on an independent batch from "
                 "the same old policy, many of the gains turn negative. The question asks which "
                 "one is NOT a reason",
            "b": "that IS one of the reasons section 5 measured: the largest per-state KL is "
                 "many times δ while the mean stays within it. The question asks which one is "
                 "NOT a reason",
            "d": "that IS one of the reasons section 5 measured: C·max KL dwarfs the gain term "
                 "on every update. The question asks which one is NOT a reason",
        },
    ),
}
"""The diagnosis questions by name; a lesson may add its own and pass ``question=``."""


def check_diagnosis(answer: Any, question: str = "kl_blowup") -> bool:
    """Check a multiple-choice diagnosis (``answer`` a letter such as ``"b"``, or a function
    returning it) against ``DIAGNOSES[question]``."""

    def body() -> None:
        if question not in DIAGNOSES:
            raise Wrong(f"no diagnosis question named {question!r}")
        q = DIAGNOSES[question]
        value = call(answer) if callable(answer) else answer
        letters = ", ".join(repr(k) for k in q.options)
        if value is Ellipsis or value is None:
            raise Wrong(f"no answer yet: set it to one of {letters}")
        text = str(value).strip().strip("()").strip().lower()
        if text not in q.options:
            raise Wrong(f"answer with one of the letters {letters}, not {value!r}")
        if text != q.answer:
            raise Wrong(f"({text}) is not it: {q.feedback.get(text, 'look at the KL again')}")
        # no count: the pass line names no option (the exercise notebook stores it)

    return verdict("diagnosis", answer, body, callable_fn=False)
