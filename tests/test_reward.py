"""The paper's reward: every format rule, extraction edge cases, each equivalence category, hostile input."""

import json
import os
import random
import re
import time
from pathlib import Path

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
# (pred, gold, equal) by class. Each comment names a peer test suite that covers the class; the pairs are ours.
# The whole assembled list, with our verdict where projects disagree, is tests/grader_cases.jsonl (tested below).

EQUIVALENCE = {
    # Math-Verify tests/test_all.py (test_simple_fraction_notation); hendrycks/math modeling/math_equivalence_test.py
    "fractions": [
        ("0.5", "\\frac{1}{2}", True), ("\\dfrac{3}{4}", "\\frac34", True), ("\\tfrac{1}{3}", "1/3", True),
        ("\\frac{-5}{2}", "-\\frac{5}{2}", True), ("\\frac{5}{2}", "\\frac{2}{5}", False), ("27", "27.0", True),
        ("-3", "-3.00", True), ("27.5", "27.0", False), ("\\frac{8}{12}", "\\frac{2}{3}", True),
        ("\\frac{\\pi}{4}", "\\frac \\pi4", True), ("\\frac{1}{29322216}", "\\dfrac{1}{29,\\!322,\\!216}", True),
    ],
    # hendrycks/math modeling/math_equivalence_test.py (test_sqrt); MARIO_EVAL math_evaluation/tests/test_is_equiv.py
    "radicals and pi": [
        ("\\sqrt{8}", "2\\sqrt{2}", True), ("\\frac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}", True),
        ("2\\sqrt{3}", "2\\sqrt{2}", False), ("\\pi r^2", "r^2\\pi", True), ("-1 + sqrt(5)", "\\sqrt{5}-1", True),
    ],
    # Math-Verify tests/test_all.py (test_number_extraction); inspect_ai tests/scorer/test_math.py (grouped thousands)
    "thousands separators": [
        ("1000", "1,000", True), ("1,234,567", "1234567", True), ("12,\\!345", "12345", True),
        ("1{,}000", "1000", True), ("1\\,234", "1234", True), ("1 000", "1000", True), ("1000", "1,001", False),
        ("32, 349", "32349", False), ("12, 345", "12345", False), ("1,23", "123", False), ("(1,2)", "12", False),
    ],
    # inspect_ai tests/scorer/test_math.py (exact large integers); NeMo-Skills tests/test_math_equal.py (5.001 vs 5)
    "exact numbers": [
        ("99999999999", "100000000000", False), ("2^{20}", "1048576", True), ("5.001", "5", False),
        ("\\frac{1}{2^{98}}", "\\frac{1}{2^{99}}", False), ("0.0000012", "0.000001", False),
        ("10^{-10}", "2 \\times 10^{-10}", False), ("033", "33", True), ("34", "033", False),
    ],
    # issue #23: past ~10^500 a relative tolerance made 10^{1000}+1 "equal" 10^{1000}; rationals now compare exactly
    "big integers": [
        ("10^{1000}+1", "10^{1000}", False), ("2^{2^{20}}+1", "2^{2^{20}}", False), ("10^{1000}", "10^{1000}", True),
        ("2^{10}", "1024", True), ("\\frac{10^{600}}{2}", "5\\cdot10^{599}", True), ("2^{2^{20}}", "2^{1048576}", True),
        ("\\frac{1}{10^{1000}}", "\\frac{1}{10^{1000}+1}", False), ("100!", "100!+1", False),
    ],
    # inspect_ai tests/scorer/test_math.py (approximate values); Math-Verify tests/test_all.py (test_sqrt_precision)
    "decimals for exact values": [
        ("1.4142135623730951", "\\sqrt{2}", True), ("3.14", "\\pi", False), ("\\frac{1}{3}", "0.33", False),
        ("0.333333", "\\frac{1}{3}", False), ("0.125", "\\frac{1}{8}", True), ("-\\infty", "\\infty", False),
    ],
    # MARIO_EVAL test_is_equiv.py (test_is_equiv_scinot); inspect_ai tests/scorer/math_cases.json
    "scientific notation": [
        ("1.5 \\times 10^3", "1500", True), ("3.2 \\times 10^{-4}", "0.00032", True),
        ("3.2 \\times 10^{-4}", "0.0032", False),
    ],
    # Math-Verify tests/test_all.py (test_sets_handling, test_latex_notation); PRM800K grading/grader.py
    "sets, tuples and intervals": [
        ("\\{2, 1\\}", "\\{1,2\\}", True), ("(1,2)", "(1, 2)", True), ("(2,1)", "(1,2)", False),
        ("\\{1,2\\}", "(1,2)", False), ("(1,2)", "\\{1,2\\}", False), ("[1, 2]", "\\{1,2\\}", False),
        ("{1,3}", "(1,3)", True), ("{1,3}", "(3,1)", False), ("[1,2)", "[1, 2)", True), ("(1,2)", "[1,2)", False),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
    ],
    # Math-Verify tests/test_all.py (test_set_rel_assymetry); issue #13 wants inequalities for interval golds
    "inequalities and intervals": [
        ("x<3", "(-\\infty, 3)", True), ("x<3", "x \\in (-\\infty, 3)", True), ("x \\le 3", "(-\\infty, 3)", False),
        ("-2 \\le x \\le 7", "x \\in [-2,7]", True), ("x \\ge 3", "[3, \\infty)", True),
        ("x > 3", "[3, \\infty)", False),
        ("(1,2)", "1 < x < 2", True), ("1 < x < 2", "(1,2)", False),  # (1,2) may be a point: no inequality for it
    ],
    # Math-Verify tests/test_all.py (test_relations_math); inspect_ai tests/scorer/test_math.py (assignment targets)
    "equations": [
        ("3", "x=3", True), ("x=3", "3", True), ("2", "2 = x", True), ("2", "2 = y", True), ("x = 3", "y = 3", False),
        ("y=2x+3", "f(x)=2x+3", True), ("11a+c", "7 = 11a+c", False), ("7 = 11a+c", "11a+c", False),
        ("0", "a+3z=0", False), ("7", "x + y = 7", False), ("x=3,\\ y=4", "x=3, y=4", True),
        ("3, 4", "x=3,\\ y=4", True), ("y^2 + x^2 = 25", "x^2 + y^2 = 25", True), ("f'(x) = 2x", "2x", True),
    ],
    # MARIO_EVAL test_is_equiv.py (test_is_equiv_units); hendrycks/math test_units; simple-evals common.py
    "units": [
        ("5", "5\\text{ cm}", True), ("10", "10 square units", True), ("64 square feet", "64", True),
        ("\\text{3 apples}", "3", True), ("15\\mbox{ cm}^2", "15", True), ("10", "10cm", False),
        ("10", "10m", False), ("10cm", "10", False), ("12\\text{ inches}", "12 \\text{ feet}", False),
        ("\\pi r^2", "\\pi r^2 h", False), ("4", "4ab", False), ("3 \\text{ or more}", "3", False),
        ("10 \\text{ cm}", "10\\text{ centimeters}", True), ("12 \\text{ sq units}", "12\\text{ square units}", True),
        ("60 \\text{ mph}", "60\\text{ miles per hour}", True), ("45 \\text{ degrees}", "45^\\circ", True),
        ("5 \\text{ dollars}", "\\$5", True), ("5 \\text{ dozen}", "5\\text{ dozen}", True),  # the same word
    ],
    # issue #23: units are an allow-list (DESIGN.md); a counted noun from the README's list is one too
    "counted nouns": [
        ("5 \\text{ apples}", "5", True), ("3 \\text{ students}", "3", True), ("1 \\text{ student}", "1", True),
        ("2 \\text{ people}", "2", True), ("6 \\text{ candies}", "6", True),
        ("14", "14 \\text{ right triangles}", True), ("7", "7 \\text{ distinct integers}", True),
        ("4 \\text{ vertices}", "4", True), ("16 daps", "16", True),
    ],
    "words that change the value": [
        ("3 hundred", "3", False), ("5 \\text{ dozen}", "5", False), ("7 \\text{ tenths}", "7", False),
        ("1 \\text{ half}", "1", False), ("5 \\text{ pairs}", "5", False), ("3 \\text{ squared}", "3", False),
        ("10 \\text{ factorial}", "10", False), ("16 \\text{ square root}", "16", False),
        ("2 \\text{ times}", "2", False), ("3", "3\\text{ hundred}", False), ("17", "17\\text{ any text}", False),
    ],
    "words that deny or hedge": [
        ("3 \\text{ is incorrect}", "3", False), ("3 \\text{ maybe four}", "3", False),
        ("3 \\text{ or } 4", "3", False), ("\\text{approximately } 3", "3", False), ("3 \\text{ probably}", "3", False),
        ("\\text{3 is wrong}", "3", False),
    ],
    "mismatched units": [
        ("3 \\text{ radians}", "3^\\circ", False), ("3^\\circ", "3\\text{ radians}", False),
        ("10 \\text{ cm}", "10\\text{ m}", False), ("5 \\text{ cents}", "\\$5", False),
        ("6 \\text{ square feet}", "6\\text{ feet}", False), ("100 \\text{ cm}", "1\\text{ m}", False),
    ],
    # hendrycks/math test_dollars; Math-Verify tests/test_all.py (currency)
    "money": [("\\$5", "5", True), ("\\$1,\\!200", "1200", True), ("\\$18.90", "18.9", True),
              ("\\$19", "\\$18.90", False)],
    # inspect_ai tests/scorer/math_cases.json (Unicode degrees); hendrycks/math test_units
    "degrees": [("74°", "74^\\circ", True), ("30^{\\circ}", "30", True), ("\\frac{\\pi}{6}", "30^\\circ", False)],
    # Math-Verify tests/test_all.py (test_percent_notation); inspect_ai tests/scorer/test_math.py (percent suffixes)
    "percent": [
        ("28 percent", "28\\%", True), ("28 pct", "28\\%", True), ("50", "50\\%", True), ("0.335", "33.5\\%", True),
        ("\\frac{1}{2}\\%", "0.005", True), ("28", "0.28", False), ("2800", "28", False), ("0.5\\%", "0.5", False),
    ],
    # lighteval tests/unit/metrics/test_extractive_match.py; NeMo-Skills tests/test_math_equal.py; Qwen2.5-Math grader
    "choice letters": [
        ("A", "\\text{(A)}", True), ("(C)", "C", True), ("\\text{(A) } 12", "\\text{(A)}", True),
        ("D", "(D) Alina", True), ("C", "(D) Alina", False), ("\\mathcal{B}", "B", True), ("B", "\\text{(A)}", False),
        ("b", "\\text{(B)}", False), ("\\mathrm{E}*2", "E", False), ("E'", "E", False),
    ],
    # Math-Verify tests/test_all.py (text answers); NeMo-Skills tests/test_math_equal.py
    "text and letter case": [
        ("\\text{Evelyn}", "\\text{Evelyn}", True), ("odd", "\\text{odd}", True), ("\\text{oddd}", "odd", False),
        ("a", "A", False), ("x^2", "X^2", False), ("\\text{Tuesday}", "Tuesday", True),
    ],
    # Math-Verify tests/test_all.py (base subscripts); MARIO_EVAL test_is_equiv.py
    "base subscripts": [("1011_2", "1011_{2}", True), ("1011", "1011_2", False), ("23_4", "23_5", False)],
    # Math-Verify tests/test_mixed_number_extraction.py; PRM800K grading/grader.py; NeMo-Skills tests
    "mixed numbers": [("7 3/4", "\\frac{31}{4}", True), ("3\\frac{1}{2}", "3.5", True), ("11 6/6", "12", False)],
    # Math-Verify tests/test_all.py@cf14bc47 (test_trailing_punctuation); NeMo-Skills tests/test_math_equal.py
    "trailing punctuation": [("42.", "42", True), ("\\frac{1}{3},", "\\frac{1}{3}", True), ("185\\", "185", True),
                             ("2^{10}.", "2", False), ("1, 2, 3, ...", "1, 2, 3", False)],
    # Math-Verify tests/test_numina_cases.py; MARIO_EVAL test_is_equiv_real_or_list; issue #13 (whitespace)
    "lists and products": [
        ("1, 2", "2, 1", True), ("-2, 3", "x = 3, x = -2", True), ("3", "-2, 3", False), ("\\pm 2", "2, -2", True),
        ("2", "\\pm 2", False), ("2^6 3^5 5^4", "2^6 \\cdot 3^5 \\cdot 5^4", True), ("x^2+2x", "x(x+2)", True),
    ],
    # Math-Verify tests/test_all.py (test_matrix_extraction); MARIO_EVAL test_is_equiv.py (test_is_equiv_matrix)
    "matrices": [
        ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", True),
        ("\\begin{pmatrix}2\\\\1\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", False),
        ("\\begin{bmatrix}0.5 & 1\\end{bmatrix}", "\\begin{pmatrix}\\frac{1}{2} & 1\\end{pmatrix}", True),
    ],
    # issue #23: cheap false rejects
    "repeating decimals": [
        ("0.\\overline{3}", "\\frac{1}{3}", True), ("0.1\\overline{6}", "\\frac{1}{6}", True),
        ("0.\\overline{142857}", "\\frac{1}{7}", True), ("1.\\overline{9}", "2", True),
        ("0.\\overline{3}", "0.333", False), ("0.\\overline{36}", "\\frac{36}{100}", False),
    ],
    "unicode math": [
        ("∞", "\\infty", True), ("√2", "\\sqrt{2}", True), ("√23", "\\sqrt{23}", True), ("½", "\\frac{1}{2}", True),
        ("1½", "\\frac{3}{2}", True), ("x²", "x^2", True), ("x³", "x^2", False), ("4·3", "12", True),
        ("10⁶", "1000000", True), ("10⁶", "10^5", False), ("2⁄3", "\\frac{2}{3}", True), ("1\u200b0", "10", True),
        ("1\u200b0", "1", False), ("−5", "-5", True), ("３", "3", True), ("(-∞, 3)", "(-\\infty, 3)", True),
    ],
    "imaginary unit": [
        ("\\sqrt{-4}", "2i", True), ("2i", "\\sqrt{-4}", True), ("\\sqrt{-4}", "-2i", False), ("i^2", "-1", True),
        ("i(2-i)", "1+2i", True), ("2i", "2", False),
    ],
    "empty answers": [("", "5", False), ("5", "", False), ("$ $", "5", False)],
}


@pytest.mark.parametrize("pred, gold, equal", [
    pytest.param(p, g, e, id=f"{cls}-{i}") for cls, rows in EQUIVALENCE.items() for i, (p, g, e) in enumerate(rows)])
def test_equivalence(pred, gold, equal):
    assert is_equivalent(pred, gold) is equal
    response = R + "\\boxed{" + pred + "}"
    if pred.strip() and extract_boxed(response) == pred.strip():  # `185\` closes no box
        assert reward(response, gold) == (CORRECT if equal else WRONG)


CASES_FILE = Path(__file__).with_name("grader_cases.jsonl")


def _cases() -> list[dict]:
    return [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines()]


def test_assembled_suite_agrees_with_our_verdicts():
    """Peer suites (Math-Verify, NeMo-Skills, MARIO, inspect_ai, ...), hand-made MATH pairs and issue #13's pairs."""
    rows = [r for r in _cases() if not r.get("miss")]
    wrong = [(r["pred"], r["gold"], r["equal"], r["source"]) for r in rows
             if is_equivalent(r["pred"], r["gold"]) != r["equal"]]
    assert not wrong, wrong
    assert len(rows) > 500


def test_assembled_suite_is_well_formed():
    for r in _cases():
        assert {"pred", "gold", "equal", "source", "class"} <= r.keys(), r
        assert not (r.get("chosen") or r.get("miss")) or r.get("note"), r  # every decision says why
        assert "source_equal" not in r or r.get("chosen"), r


def test_known_misses_are_still_rejected():
    """Equal pairs we cannot see yet (clock times, degrees inside sin, ...). If one starts passing, drop its flag."""
    misses = [r for r in _cases() if r.get("miss")]
    assert misses and not [r["pred"] for r in misses if is_equivalent(r["pred"], r["gold"])]


@pytest.mark.parametrize("nested", ["{" * 200 + "1" + "}" * 200, "\\frac{" * 30 + "1" + "}{2}" * 30,
                                    "1+\\frac{1}{2" * 30 + "}" * 30, "(" * 50 + "x" + ")" * 50])
def test_deep_nesting_is_rejected_without_parsing(nested):
    """Issue #23: math-verify's parser slows exponentially with nesting (200 braces waited out its 2 s timeout)."""
    parsed = reward_module._parse.cache_info().misses
    assert not is_equivalent(nested, "1")
    assert reward_module._parse.cache_info().misses == parsed  # refused before math-verify saw it
    assert is_equivalent("{{{1}}}", "1")  # shallow nesting is still parsed


@pytest.mark.parametrize("word", sorted(w for w in reward_module._UNIT_NAMES if w.isalpha()))
def test_every_listed_unit_and_counted_noun_is_dropped(word):
    """The allow-list, each entry as written and, where it has one, in a plural: `5 \\text{ apples}` is 5."""
    assert is_equivalent(f"5 \\text{{ {word}}}", "5")
    if len(word) > 2 and not word.endswith("s"):
        assert is_equivalent(f"5 \\text{{ {word}s}}", "5")  # and -es, -ies: inches, candies (above)


@pytest.mark.parametrize("word", ["hundred", "thousand", "million", "dozen", "score", "half", "halves", "tenths",
                                  "quarters", "pairs", "squared", "cubed", "factorial", "times", "square", "cubic",
                                  "per", "not", "maybe", "approximately", "about", "or more", "is incorrect", "wrong",
                                  "apples maybe", "percent of", "right"])
def test_words_off_the_list_stay(word):
    """Scale words, operations, denials and hedges change or negate the answer: never dropped (DESIGN.md)."""
    assert not is_equivalent(f"3 \\text{{ {word}}}", "3")
    assert not is_equivalent("3", f"3 \\text{{ {word}}}")  # on the gold's side neither
    assert is_equivalent(f"3 \\text{{ {word}}}", f"3\\text{{ {word}}}")  # the same words on both sides: the number


def test_math_verify_is_left_as_it_was():
    """Our exact number comparison stands in for math-verify's only during our own calls."""
    import math_verify.grader

    upstream = math_verify.grader.sympy_numeric_eq
    assert not is_equivalent("\\frac{1}{2^{40}}", "\\frac{1}{2^{41}}")
    assert math_verify.grader.sympy_numeric_eq is upstream


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


# ------------------------------------------------------------------------- the entry points of other engines

def test_verl_compute_score_as_its_naive_reward_manager_calls_it():
    # verl/workers/reward_manager/naive.py: compute_score(data_source=, solution_str=, ground_truth=, extra_info=)
    extra = {"index": 7, "split": "train", "id": "math-42", "num_turns": None, "rollout_reward_scores": {}}
    right = reward_module.compute_score(data_source="limr", solution_str=R + "\\boxed{4}", ground_truth="4",
                                        extra_info=extra)
    assert right == {"score": CORRECT, "acc": True, "id": "math-42"}  # every key lands in verl's rollout dump
    wrong = reward_module.compute_score(data_source="limr", solution_str=R + "\\boxed{5}", ground_truth="4",
                                        extra_info={"index": 3})
    assert wrong == {"score": WRONG, "acc": False, "id": "3"}


def test_trl_reward_as_grpo_trainer_calls_it():
    # trl/trainer/grpo_trainer.py, _calculate_rewards: prompts=, completions=, completion_ids=, dataset columns,
    # trainer_state=; conversational completions are lists of messages
    out = reward_module.trl_reward(prompts=["q1", "q2"], completions=[R + "\\boxed{4}", "no box"],
                                   completion_ids=[[1], [2]], answer=["4", "4"], trainer_state=None)
    assert out == [CORRECT, FORMAT_ERROR]
    logged = {}
    reward_module.trl_reward(prompts=["q"], completions=["no box"], answer=["4"], id=[17],
                             log_extra=lambda column, values: logged.update({column: values}))
    assert logged == {"id": ["17"]}  # into log_completions' parquet files, for lim.py
    chat = [[{"role": "assistant", "content": R + "\\boxed{\\frac{1}{2}}"}]]
    assert reward_module.trl_reward(prompts=[[{"role": "user", "content": "q"}]], completions=chat,
                                    answer=["0.5"]) == [CORRECT]


def test_openrlhf_reward_func_as_its_remote_rm_calls_it():
    # openrlhf: reward_func(queries, prompts, labels); queries = prompt + response with special tokens kept
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    queries = [prompt + R + "\\boxed{4}<|im_end|><|endoftext|>", prompt + R + "\\boxed{4}"]  # the second was cut
    out = reward_module.reward_func(queries, [prompt, prompt], ["4", "4"])
    assert out["rewards"].tolist() == [CORRECT, FORMAT_ERROR] and out["scores"].tolist() == [1.0, 0.0]
