"""Exact-answer fast path: one teacher-forced pass gives the same rewards as generate-then-compare."""
import numpy as np
import pytest

from es_hpc import config
from es_hpc.eval import teacher_forced
from es_hpc.comm import make
from es_hpc.runtime.job import open_job


@pytest.fixture(scope="module")
def job(tiny_model_dir):
    cfg = config.load(None, [f"model.path={tiny_model_dir}", "model.device=cpu"])
    return open_job(cfg, make("local"))


def own_answers(job, rows: list[dict]) -> list[dict]:
    """Copies of `rows` whose answer is the unperturbed model's own greedy completion (right by construction), and
    copies whose answer is that completion with a digit appended (wrong by construction): whatever the model's
    accuracy, both rewards are there to be decided."""
    texts, _ = job.evaluator.generate(job.backend.encode([job.task.prompt(r) for r in rows]))
    own = [(r, t.strip()) for r, t in zip(rows, texts) if t.strip()]
    return [dict(r, answer=a) for r, a in own] + [dict(r, answer=a + "0") for r, a in own]


def test_rewards_equal_generate_then_compare(job):
    ev, task = job.evaluator, job.task
    rows = task.rows("train")[:96] + task.rows("test")[:32]
    rows += own_answers(job, rows[-32:])
    batch = job.backend.encode([task.prompt(r) for r in rows])
    refs = [task.reference_completion(r) for r in rows]
    decided = set()  # the rewards of the rows the fast path decided
    for k, sigma in enumerate([0.0, 1e-3, 3e-3, 3e-3, 1e-2, 1e-2, 2e-2, 5e-2, 0.3]):
        job.perturbed.perturb(100 + k, sigma)
        try:
            generated = ev.score(ev.generate(batch)[0], rows)
            fast, _ = teacher_forced.greedy_completions(job.backend, batch, refs, ev.max_new_tokens, 64, ev.margin)
            used = ev.score(ev.completions(batch, rows)[0], rows)  # the path training takes, fallback included
        finally:
            job.perturbed.restore()
        for g, f, r in zip(generated, fast, rows):
            if f is not None:
                decided.add(task.reward(f, r))
                assert task.reward(f, r) == g, (r, f)
        np.testing.assert_array_equal(used, generated)
    assert decided == {0.0, 1.0}  # the fast path decided right answers and wrong ones


def test_undecided_rows_fall_back_to_generation(job):
    ev, task = job.evaluator, job.task
    rows = task.rows("val")[:16]
    batch = job.backend.encode([task.prompt(r) for r in rows])
    generated, _ = ev.generate(batch)
    margin, ev.margin = ev.margin, float("inf")  # trust no argmax: every row must be generated
    try:
        assert ev.completions(batch, rows)[0] == generated
    finally:
        ev.margin = margin


CHARS = {i: c for i, c in enumerate("0123456789 \n")}  # tokens 0-11; 20 = end, 21 = another special token
decode = lambda ids: "".join(CHARS.get(i, "") for i in ids)  # noqa: E731 (specials decode to nothing)
TARGET = [4, 2, 20]  # "42" then the end token


@pytest.mark.parametrize("pred, expected", [
    ([4, 2, 20], ("42", 3)),  # greedy emits the answer and stops: reward 1
    ([4, 3, 20], ("43", 2)),  # a wrong digit: reward 0 whatever follows
    ([4, 20, 20], ("4", 2)),  # stops early: the completion is "4"
    ([4, 2, 7], ("427", 3)),  # goes on with a digit: reward 0
    ([4, 2, 10], (None, 0)),  # a space after the answer: "42 " or "42 7" are both possible, so generate
    ([10, 2, 20], (None, 0)),  # a leading space may still give " 42"
    ([4, 21, 20], (None, 0)),  # a special token is dropped by decoding: "4" + later tokens may still be "42"
])
def test_decide(pred, expected):
    assert teacher_forced.decide(pred, [1.0] * 3, TARGET, "42", {20}, 4, 1e-3, decode) == expected


def test_decide_near_tie_and_token_limit():
    assert teacher_forced.decide([4, 2, 20], [1.0, 1e-4, 1.0], TARGET, "42", {20}, 4, 1e-3, decode) == (None, 0)
    assert teacher_forced.decide([4, 2, 10], [1.0] * 3, TARGET, "42", {20}, 3, 1e-3, decode) == ("42 ", 3)
    assert teacher_forced.decide([4, 2, 10], [1.0] * 3, TARGET, "42", {20}, 2, 1e-3, decode) == ("42", 2)
