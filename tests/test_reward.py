"""The paper's reward: every format rule, extraction edge cases, each equivalence category, hostile input."""

import os
import random
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reward as reward_module
from reward import (
    CORRECT,
    FORMAT_ERROR,
    WRONG,
    extract_boxed,
    format_error,
    has_repetition,
    is_equivalent,
    reward,
    rewards,
)

R = "Let us reason. Adding the two numbers gives the total. "  # a well-formed, non-repetitive preamble


# ------------------------------------------------------------------------------------------------- the rules

def test_correct_wrong_and_format_error_values():
    assert reward(R + "\\boxed{4}", "4") == CORRECT == 1.0
    assert reward(R + "\\boxed{5}", "4") == WRONG == -0.5
    assert reward(R + "The answer is 4.", "4") == FORMAT_ERROR == -1.0


def test_truncated_is_a_format_error_even_when_right():
    assert reward(R + "\\boxed{4}", "4", truncated=True) == FORMAT_ERROR


def test_five_or_more_boxed_is_a_format_error_four_is_not():
    assert reward(R + "\\boxed{1} " * 3 + "\\boxed{4}", "4") == CORRECT
    assert reward(R + "\\boxed{1} " * 4 + "\\boxed{4}", "4") == FORMAT_ERROR
    assert reward(R + "\\fbox{1} " * 4 + "\\boxed{4}", "4") == FORMAT_ERROR


def test_garbled_text_is_a_format_error():
    assert format_error(R + "ж" * 20 + "\\boxed{4}") is None  # under 30% outside the valid set
    assert format_error("жжжж" * 40 + R + "\\boxed{4}") == "garbled"


def test_repetition_is_a_format_error():
    assert format_error(R + "We check again. " * 5 + "\\boxed{4}") == "repetition"
    assert format_error(R + "We check again. " * 4 + "\\boxed{4}") is None


def test_loops_across_lines_count_as_repetition_unlike_upstream():
    loop = "Step: add 2.\n" * 6
    assert has_repetition(loop)
    assert not re.search(r"(.{5,}?)\1{4,}", loop)  # upstream's `.` stops at newlines and misses it


def test_unclosed_box_is_a_format_error():
    assert reward(R + "\\boxed{\\frac{1}{2}", "\\frac{1}{2}") == FORMAT_ERROR


def test_upstream_rule_order_truncation_first():
    assert format_error("no box at all", truncated=True) == "truncated"
    assert format_error("no box at all") == "no boxed answer"


# ----------------------------------------------------------------------------------------------- extraction

@pytest.mark.parametrize("text, expected", [
    ("\\boxed{3}", "3"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{\\frac{\\sqrt{a^{2}}}{b_{1}}}", "\\frac{\\sqrt{a^{2}}}{b_{1}}"),
    ("\\fbox{7}", "7"),
    ("\\boxed {5}", "5"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("\\boxed{\\left\\{ x \\right\\}}", "\\left\\{ x \\right\\}"),
    ("$\\boxed{ 12 }$.", "12"),
    ("\\boxed{}", ""),
    ("no box", None),
    ("\\boxed{3", None),
    ("\\boxed{1} and then \\boxed{2", None),
    ("\\boxed 5", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_extract_boxed_any_depth():
    assert extract_boxed("\\boxed{" + "{" * 1000 + "x" + "}" * 1000 + "}") == "{" * 1000 + "x" + "}" * 1000
    assert extract_boxed("\\boxed{" + "{" * 1000 + "x") is None


# ---------------------------------------------------------------------------------------------- equivalence

EQUIVALENT = [
    ("0.5", "\\frac{1}{2}"), ("\\dfrac{3}{4}", "\\frac34"), ("\\tfrac{1}{3}", "\\frac{1}{3}"),  # fractions
    ("\\sqrt{8}", "2\\sqrt{2}"), ("\\frac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}"),  # roots
    ("2\\pi", "2\\pi"), ("\\pi r^2", "r^2\\pi"),  # pi
    ("[1,2)", "[1, 2)"), ("(-\\infty, 3]", "(-\\infty,3]"),  # intervals
    ("\\{2, 1\\}", "\\{1,2\\}"), ("1, 2", "2, 1"),  # sets (and unordered lists of solutions)
    ("(1,2)", "(1, 2)"),  # ordered tuples
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),  # matrices
    ("5", "5\\text{ cm}"), ("9", "9\\text{ a.m.}"), ("\\text{Evelyn}", "\\text{Evelyn}"),  # units, \text
    ("50", "50\\%"), ("30", "30^\\circ"), ("30^{\\circ}", "30"),  # percent, degrees
    ("3", "x=3"), ("x=3", "3"),  # equations
    ("A", "\\text{(A)}"), ("(C)", "C"),  # multiple-choice letters
    ("1000", "1,000"), ("1,234,567", "1234567"),  # thousands separators
    ("33", "033"), ("5", "005"),  # AIME zero padding
    ("27", "27.0"), ("-3", "-3.00"),  # AMC's decimal golds
    ("x^2+2x", "x(x+2)"), ("\\$5", "5"),
]
NOT_EQUIVALENT = [
    ("2\\sqrt{3}", "2\\sqrt{2}"),  # upstream grades this pair correct: bare strings both parse as `2`
    ("3.14", "\\pi"), ("\\frac{1}{3}", "0.33"), ("(2,1)", "(1,2)"), ("(1,2)", "[1,2)"),
    ("-\\infty", "\\infty"), ("34", "033"), ("27.5", "27.0"), ("1000", "1,001"), ("B", "\\text{(A)}"),
    ("\\begin{pmatrix}2\\\\1\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"), ("", "5"), ("5", ""),
]


@pytest.mark.parametrize("pred, gold", EQUIVALENT)
def test_equivalent(pred, gold):
    assert is_equivalent(pred, gold)
    assert reward(R + "\\boxed{" + pred + "}", gold) == CORRECT


@pytest.mark.parametrize("pred, gold", NOT_EQUIVALENT)
def test_not_equivalent(pred, gold):
    assert not is_equivalent(pred, gold)


# ------------------------------------------------------------------------------------- repetition detection

@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab \n", max_size=120), st.text(alphabet="abc", min_size=1, max_size=12),
       st.integers(0, 7), st.text(alphabet="ab", max_size=20))
def test_repetition_matches_upstream_regex_on_single_lines(prefix, block, k, suffix):
    """Same verdict as upstream's `(.{5,}?)\\1{4,}` on any text without newlines (where its `.` sees everything)."""
    text = (prefix + block * k + suffix).replace("\n", "")
    assert has_repetition(text) == bool(re.search(r"(.{5,}?)\1{4,}", text))


def test_repetition_on_long_natural_text_is_false():
    rng = random.Random(0)
    words = "we add the terms then simplify so the sum of squares equals twelve over seven".split()
    text = " ".join(rng.choice(words) for _ in range(4000))
    assert not has_repetition(text)
    assert has_repetition(text + " and again" * 5)


# ------------------------------------------------------------------------------------ batches and hostility

def test_rewards_matches_reward_in_order():
    responses = [R + "\\boxed{4}", R + "\\boxed{5}", R, R + "\\boxed{\\frac12}"]
    answers = ["4", "4", "4", "0.5"]
    assert rewards(responses, answers, [False, False, False, True], workers=2) == [CORRECT, WRONG, FORMAT_ERROR,
                                                                                    FORMAT_ERROR]


def test_rewards_length_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same length"):
        rewards(["a"], ["1", "2"])


def test_hostile_inputs_return_within_timeout_and_run_nothing(tmp_path):
    pwned = tmp_path / "pwned"
    hostile = [
        f"\\boxed{{__import__('os').system('touch {pwned}')}}",
        "\\boxed{10^{10^{10^{10}}}}",
        "\\boxed{9!!!!!!!!}",
        "x" * 200_000 + "\\boxed{1}",
        "\\boxed{" + "{" * 1000 + "1" + "}" * 1000 + "}",
        R + "\\boxed{\ud800 1}",
        R + "\\boxed{1\x00}",
        R + "\\boxed{\\frac{\\frac{\\frac{}}}}}}}}",
    ]
    t = time.monotonic()
    out = rewards(hostile, ["1"] * len(hostile), workers=2, timeout=3.0)
    assert time.monotonic() - t < 3.0 * len(hostile)  # the hard timeout bounds the call
    assert out[3] == out[4] == FORMAT_ERROR  # 200k identical chars and 1,000 braces are degenerate repetition
    assert out[6] == CORRECT  # the NUL byte is dropped
    assert set(out) <= {CORRECT, WRONG, FORMAT_ERROR}
    assert not pwned.exists()
    assert not os.path.exists("/tmp/pwned")


def test_hung_item_is_killed_at_the_timeout_and_the_worker_replaced():
    rewards([R + "\\boxed{4}"], ["4"], workers=1)  # a warm worker
    hung = reward_module._workers[0]
    t = time.monotonic()
    out = rewards(["\\boxed{10^{10^{10^{10}}}}", R + "\\boxed{4}"], ["1", "4"], workers=1, timeout=0.5)
    assert out == [WRONG, CORRECT]  # math-verify alone needs over 2 s on the first item (its own limit)
    assert hung.poll() is not None and reward_module._workers[0].poll() is None  # killed, and a new one serves
    assert time.monotonic() - t < 0.5 + 15  # the timeout, plus a new worker's start-up


def test_a_dead_worker_is_replaced():
    rewards([R + "\\boxed{4}"], ["4"], workers=1)
    reward_module._workers[0].kill()
    reward_module._workers[0].wait()
    assert rewards([R + "\\boxed{4}", R + "\\boxed{3}"], ["4", "4"], workers=1) == [CORRECT, WRONG]
