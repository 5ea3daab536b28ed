"""The paper's rule reward (LIMR §2.4): +1 correct, -0.5 wrong but well formatted, -1 format error.

Upstream (GAIR-NLP/LIMR, openrlhf/cli/serve_rm.py) applies these rules in this order, and so do we:
  1. truncated (no end-of-sequence token)         -> -1
  2. no `\\boxed`, or five or more                  -> -1
  3. garbled: > 30% of characters outside a set    -> -1
  4. degenerate repetition                         -> -1
  5. last boxed answer equivalent to the gold      -> +1, else -0.5
What we deliberately fix:
  - equivalence: upstream calls math-verify on bare strings (`parse("\\frac{1}{2}")` finds nothing, so ~10% of
    MATH golds can never be graded correct, and `2\\sqrt{2}` "equals" `2\\sqrt{3}` because both parse as `2`).
    We wrap both sides in `$...$` so they are parsed as LaTeX, gold first, and never use the eval-based parser;
    we compare numbers exactly (math-verify rounds: 1/2^98 "equals" 1/2^99), and reject what it wrongly accepts:
    E' for E, 10m for 10, 1011_2 for 1011, {1,2} for (1,2). See the equivalence section for the whole order.
  - extraction: upstream's regex handles three levels of nested braces; we match braces to any depth.
  - repetition: upstream's `(.{5,}?)\\1{4,}` is quadratic (seconds on long responses) and ignores loops that span
    lines (`.` skips newlines). We find the same thing, a block of >= 5 characters repeated >= 5 times back to
    back, newlines included, with a scan that is linear in practice.
  - timeouts: upstream's signal.alarm stops working once math-verify (which uses its own alarm) has run. We grade in
    worker processes and kill any that overruns a wall-clock timeout; a boxed item that times out scores -0.5.
"""

import atexit
import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
import unicodedata
from decimal import Decimal
from functools import lru_cache
from itertools import accumulate

CORRECT, WRONG, FORMAT_ERROR = 1.0, -0.5, -1.0
MAX_BOXED = 5  # upstream: `response.count("\\boxed") >= 5` is a format error
GARBLED_RATIO = 0.3  # upstream: more than 30% of characters outside VALID_CHARS is garbled text
VALID_CHARS = re.compile(r"[a-zA-Z0-9\s\.,!?\"'\(\)\{\}\[\]_\-+=<>/@#$%^&*\\|:;~`\u2200-\u22FF]")  # upstream's set
MIN_PERIOD, MIN_COPIES = 5, 5  # upstream: `(.{5,}?)\1{4,}`, a block of >= 5 chars and 4 more copies of it
TIMEOUT_S = 5.0  # hard wall-clock limit per graded item
MV_TIMEOUT_S = 2  # math-verify's own (signal-based) limit inside a worker, so most slow items end without a kill
MAX_DEPTH = 8  # brackets nest at most 3 deep in the 9,093 golds; math-verify's parser slows exponentially with depth
EXACT_DIGITS = 10**6  # rational answers are compared exactly up to this size: 2^{2^{20}} has 315,653 digits


# ---------------------------------------------------------------------------------------------- format rules

def clean(text: str) -> str:
    """Drop NUL bytes and lone surrogates, which break tokenizers, JSON and the LaTeX parser."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}`, any depth of nested braces; None if absent or unclosed."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    i = text.find("{", start)
    if start < 0 or i < 0 or text[start:i].strip() not in ("\\boxed", "\\fbox"):
        return None
    depth = 0
    for m in re.compile(r"\\[\s\S]|[{}]").finditer(text, i):  # `\{` and `\}` are literal braces, not groups
        depth += {"{": 1, "}": -1}.get(m[0], 0)
        if depth == 0:
            return text[i + 1 : m.start()].strip()
    return None


def has_repetition(text: str, min_period: int = MIN_PERIOD, copies: int = MIN_COPIES) -> bool:
    """True if some block of >= min_period characters occurs `copies` times back to back.

    Periods are searched in doubling bands [L, 2L). A run of period p in the band covers an anchor a (a multiple of
    L) inside its first copy, so the L characters at a reappear at a + p: one `str.find` per anchor proposes p,
    one slice comparison confirms it. Python-level work is O(n / min_period); the C-level finds are O(n) per band.
    """
    n, L = len(text), min_period
    while copies * L <= n:
        for a in range(0, n - (copies - 1) * L, L):
            block = text[a : a + L]
            q = text.find(block, a + L, a + 3 * L)
            while 0 <= q < a + 2 * L:
                p = q - a
                same = text[a : a + (copies - 2) * p] == text[a + p : a + (copies - 1) * p]  # cheap check first
                if same and _periodic_span(text, a, p) >= copies * p:
                    return True
                q = text.find(block, q + 1, a + 3 * L)
        L *= 2
    return False


def _periodic_span(text: str, a: int, p: int) -> int:
    """Length of the maximal stretch around position a where text[j] == text[j + p] holds, plus p."""
    left = right = a
    while left > 0 and text[left - 1] == text[left - 1 + p]:
        left -= 1
    while right + p < len(text) and text[right] == text[right + p]:
        right += 1
    return right - left + p


def is_garbled(text: str) -> bool:
    return bool(text) and len(VALID_CHARS.sub("", text)) / len(text) > GARBLED_RATIO


def format_error(response: str, truncated: bool = False) -> str | None:
    """Why a response breaks the format rules (upstream's order), or None if it is well formatted."""
    if truncated:
        return "truncated"
    n_boxed = response.count("\\boxed") + response.count("\\fbox")
    if n_boxed == 0:
        return "no boxed answer"
    if n_boxed >= MAX_BOXED:
        return f"{n_boxed} boxed answers"
    if is_garbled(response):
        return "garbled"
    if has_repetition(response):
        return "repetition"
    if extract_boxed(response) is None:
        return "unclosed boxed answer"
    return None


# --------------------------------------------------------------------------------------------- equivalence
# A reward for a wrong answer is the worst error, so when in doubt we reject. In order:
#   1. a light clean of both answers; whitespace runs become one space but never vanish (`32, 349` is a list);
#   2. identical -> True; two plain numbers -> exact Decimal comparison (most answers: no sympy at all);
#   3. guards against what math-verify 0.9.0 accepts wrongly, then math-verify on LaTeX, gold first, numbers exact;
#   4. only if that says no (so right answers stay fast): units and `name =` sides stripped, then choice letters.

_SPACE = re.compile(r"(?<!\\)\\[,;: ]|\\q?quad(?![a-zA-Z])|~|\s+")  # \, \; \: \␣ \quad ~ and whitespace runs
_PERCENT = re.compile(r"\s*(?:\\text\{\s*(?:percent(?:age)?|pct)\s*\}|\b(?:percent(?:age)?|pct)\b|\\?%)")
_MIXED = re.compile(r"(-?)(\d+) (\d+)/(\d+)(\\%)?")  # plain-text mixed number `7 3/4` (PRM800K, MARIO, NeMo)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d*)(?:\.\d+)?")  # thousands: 1,000 or 1 000
_BASE = re.compile(r"(?<![\w\\])(\d+)_\{?(\d+)\}?")  # a number in base b: 1011_2
_EQ = re.compile(r"(?<![<>!\\])=")
_NAME = re.compile(r"(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?'*(?:\([a-z]\))?")  # x, y_1, \theta, f'(x)
_TEXT = re.compile(r"\\(?:text\w*|mbox|math(?:rm|bf|cal|it))\s*\{([^{}]*)\}")
# a number, then a unit: in \text{}, bare (2+ letters: `10 m` is 10 times m, as MARIO's 10m), or ^\circ; then ^2
_UNIT = re.compile(r"(.+?)\s*(?:\\(?:text\w*|mbox|mathrm)\s*\{\s*([a-zA-Z][a-zA-Z .]*)\}|\s([a-zA-Z]{2,}(?: [a-zA-Z]"
                   r"{2,})*)|\^(\\circ))(?:\^\{?([23])\}?)?")
_CURRENCY = re.compile(r"(-?)(\\\$|[€£¥])\s*([^$]+)|([^$]+?)\s*([€£¥])")  # \$5, -\$0.50, 5€
# Units are an allow-list (DESIGN.md): a word after a number is dropped only if it is one of these, singular or
# plural, or the other side says the same word. Any other word (3 hundred, 5 dozen, 3 squared, 3 is incorrect)
# stays, and math-verify, which reads it as a symbol, rejects the pair. First word of a group: the name compared.
_UNIT_NAMES = {w: group.split()[0] for group in """mm millimeter millimetre; cm centimeter centimetre; m meter metre;
    km kilometer kilometre; in inch; ft foot feet; yd yard; mi mile; acre; ha hectare; ml milliliter millilitre;
    l liter litre; gal gallon; qt quart; pt pint; cup; cc; mg milligram; g gram gm; kg kilogram; lb pound lbs;
    oz ounce; ton tonne; s second sec; min minute; h hour hr hrs; day; week wk; month; yr year yrs; am; pm;
    \\$ dollar usd; cent; € euro eur; £ gbp; ¥ yen; deg degree \\circ; rad radian; mi/h mph; km/h kph kmh; unit;
    person people; child children; man men; woman women; vertex vertices""".split(";") for w in group.split()}
_UNIT_NAMES.update((w, w) for w in """way integer value number digit divisor factor multiple prime solution root term
    element subset sequence combination arrangement permutation outcome possibility path route diagonal side edge
    face triangle rectangle circle line segment point handshake game match student boy girl member player friend
    dog cat apple orange marble cookie candy book page card coin penny nickel dime ball pencil chair tile car tree
    meal sandwich outfit flavor question problem step move trip word letter palindrome zero polynomial fraction
    item canoe cell list block setting subcommittee sum pattern kind plate dap bah wallop knick
    """.split())  # counted nouns: MATH's golds and its `How many ...?` (README)
_UNIT_SKIP = {"distinct", "different", "right", "positive", "possible"}  # 7 distinct integers, 14 right triangles
_LENGTHS = {"mm", "cm", "m", "km", "in", "ft", "yd", "mi", "unit"}  # what `square` and `cubic` may precede
_REPEATING = re.compile(r"(\d*)\.(\d*)\\overline\{(\d+)\}")  # 0.1\overline{6}
_SCRIPTS = re.compile(r"([⁰¹²³⁴-⁹⁺⁻ⁿ]+)|([₀-₉₊₋]+)")  # x², 10⁶, a₁
_ROOT = re.compile(r"√\s*(\d+(?:\.\d+)?|[a-zA-Z]|\\[a-zA-Z]+|\([^()]*\)|\{[^{}]*\})")  # √2, √23, √(x+1)
_SYMBOLS = str.maketrans({"∞": "\\infty ", "π": "\\pi ", "·": "\\cdot ", "⋅": "\\cdot ", "∙": "\\cdot ",
                         "×": "\\times ", "÷": "\\div ", "−": "-", "⁄": "/", "≤": "\\le ", "≥": "\\ge ",
                         "≠": "\\ne ", "′": "'", "″": "''", **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff")})
_CHOICE = re.compile(r"\(([A-E])\)\s*([^=<>]*)|([A-E])(?:\s+(\w[^=<>]*))?")  # (D) Alina, C Cecile; not `D = (0,1)`
_INTERVAL = re.compile(r"\\infty|\[|\]|\\cup|\\in(?![a-zA-Z])")  # a gold that is surely a set; (1,2) may be a point


def _unicode(s: str) -> str:
    """Unicode math as LaTeX: x² 10⁶ a₁ ½ 1½ √2 ∞ 4·3 2⁄3 −1; zero-width characters go; NFKC does the rest (１２)."""
    s = _SCRIPTS.sub(lambda m: ("^{%s}" if m[1] else "_{%s}") % unicodedata.normalize("NFKC", m[0]), s)
    s = re.sub(r"[¼-¾⅐-⅞]", lambda m: " " + unicodedata.normalize("NFKC", m[0]), s)  # 1½ -> 1 1/2, a mixed number
    s = _ROOT.sub(r"\\sqrt{\1}", s)
    return unicodedata.normalize("NFKC", s.translate(_SYMBOLS))  # NFKC would flatten x² to x2: scripts go first


def _repeating(m: re.Match) -> str:
    """`1.2\\overline{36}` -> `\\frac{1224}{990}`: 1236 - 12 over 10 * 99 (math-verify reads it as a symbol)."""
    whole, fixed, period = m[1] or "0", m[2], m[3]
    if len(m[0]) > 1000:  # int() refuses over 4,300 digits; no answer has this many
        return m[0]
    numerator = int(whole + fixed + period) - int(whole + fixed)
    return f"\\frac{{{numerator}}}{{{10 ** len(fixed) * (10 ** len(period) - 1)}}}"


def _clean(s: str) -> str:
    """Spelling only, both sides: `\\dfrac`, `\\left(`, `1,\\!000`, `°`, `28 percent`, `$...$`, a trailing period,
    Unicode math, repeating decimals."""
    s = clean(s) if s.isascii() else _unicode(clean(s))
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s).replace("\\varnothing", "\\emptyset")
    s = re.sub(r"\\(?:left|right)(?:\.|(?![a-zA-Z]))", "", s)
    s = re.sub(r"\\frac(?![a-zA-Z])\s*(\\[a-zA-Z]+|[a-zA-Z0-9])", r"\\frac{\1}", s)  # \frac\pi 4 -> \frac{\pi}{4}
    s = re.sub(r"(\\frac\{[^{}]*\})\s*(\\[a-zA-Z]+|[a-zA-Z0-9])", r"\1{\2}", s)
    s = re.sub(r"(?<=\d),\\!\s*(?=\d{3}(?!\d))", "", s)  # 29,\!322,\!216 is one number, even inside \frac
    s = re.sub(r"\^\{\\circ\}|°|\\degree(?![a-zA-Z])", r"^\\circ", s).replace("**", "^")  # 74° (inspect_ai), 2**3
    s = re.sub(r"(?<![\\a-zA-Z])sqrt\s*\(([^()]*)\)", r"\\sqrt{\1}", s)  # sqrt(3): math-verify breaks ` sqrt(`
    s = re.sub(r"(?<![\\a-zA-Z])pi(?![a-zA-Z])", r"\\pi", s)  # pi/2 (inspect_ai's Python-syntax targets)
    s = re.sub(r"\s*\{\s*,\s*\}\s*", ",", re.sub(r"(?<!\\)\\!\s*", "", s))  # 1,\!000 and 1{,}000
    s = _REPEATING.sub(_repeating, s)
    s = _SPACE.sub(" ", _PERCENT.sub(r"\\%", s)).strip()  # percent words -> \%, as math-verify's normaliser does
    s = re.sub(r"^\$+([^$]*)\$+$", r"\1", s).strip()
    s = re.sub(r"\s*(?:(?<!\.)\.|,|;|\\+)$", "", s)  # a trailing period or comma (newer Math-Verify), `185\` (NeMo)
    if (m := _MIXED.fullmatch(s)) and int(m[3]) < int(m[4]):  # 11 6/6 is not a mixed number (Math-Verify)
        s = f"{m[1]}\\frac{{{int(m[2]) * int(m[4]) + int(m[3])}}}{{{m[4]}}}{m[5] or ''}"
    return s


def _number(s: str) -> Decimal | None:
    ok = _NUMBER.fullmatch(s) and any(c.isdigit() for c in s)
    return Decimal(s.replace(",", "").replace(" ", "")) if ok else None


def _brackets(s: str) -> str:
    """'set' for one `\\{...\\}`, 'tuple' for one flat `(a, b)` or `[a, b)` (a tuple or an interval), else ''."""
    if s.startswith("\\{") and s.endswith("\\}") and s.count("\\{") == 1:
        return "set"
    flat = s[:1] in ("(", "[") and s[-1:] in (")", "]") and not re.search(r"[()\[\]]", s[1:-1])
    return "tuple" if flat and "," in s else ""


def _rejected(p: str, g: str) -> bool:
    """Pairs that math-verify 0.9.0 accepts and we do not."""
    if p.count("'") + p.count("\\prime") != g.count("'") + g.count("\\prime"):
        return True  # its normaliser deletes quotes: E' == E
    if {_brackets(p), _brackets(g)} == {"set", "tuple"}:
        return True  # (1,2) parses as an open interval, which it matches element-wise to the set {1,2}
    lp, lg = (sorted(re.findall(r"(?<![a-zA-Z\\])[a-zA-Z](?![a-zA-Z])", _TEXT.sub(r"\1", s))) for s in (p, g))
    if lp != lg and sorted(map(str.lower, lp)) == sorted(map(str.lower, lg)):
        return True  # its parser lower-cases symbols: A == a, x^2 == X^2 (single letters; \text{Evelyn} may differ)
    if len(gold_sides := _EQ.split(g)) > 1 and not _EQ.search(p) and re.search(r"[-+]", gold_sides[0].strip()[1:]):
        return True  # `x + y = 7` is a line, not 7 (it takes a sum of symbols on the left for a name)
    sides = _EQ.split(p)  # `7 = 11a+c` answers 7, where it would compare the right side, 11a+c
    return len(sides) == 2 and _number(sides[0].strip()) is not None and not _NAME.fullmatch(sides[1].strip())


def _numbers_equal(a, b, float_rounding: int = 6, numeric_precision: int = 15) -> bool:
    """Stands in for math-verify's sympy_numeric_eq, which rounds to 6 decimals and chops differences under ~1e-15:
    0.333333 == 1/3, 0.000001 == 0.0000012, 1/2^98 == 1/2^99. X% is X/100, and also X for an integer X (as upstream)."""
    from sympy import MatrixBase, MatrixExpr, Rational, UnevaluatedExpr

    matrices = [isinstance(x, MatrixBase | MatrixExpr) for x in (a, b)]
    if any(matrices):  # upstream's matrix branch compares the entries with this function
        return all(matrices) and _math_verify()[2](a, b, float_rounding, numeric_precision)
    pct = UnevaluatedExpr(Rational(1, 100))  # how latex2sympy writes X%
    values = [[x.doit(), *[v for v in [x.xreplace({pct: 1})] if v.is_Integer]] if x.has(pct) else [x] for x in (a, b)]
    return any(_close(x, y) for x in values[0] for y in values[1])


def _close(x, y) -> bool:
    """Exact for symbolic terms (upstream's simplify() then gets its turn) and for rational values (integers,
    fractions, 10^{1000}) whose every part has at most EXACT_DIGITS digits, else False: 10^{1000}+1 is not 10^{1000},
    as a relative tolerance would say. With a written decimal, to a relative 1e-9; other numbers to ~600 digits
    where needed (2^(1/2^1000) - 1 is 6e-302, not 0)."""
    from sympy import Float, N, preorder_traversal

    try:
        d = x - y
        if d == 0 or d.free_symbols:
            return d == 0
        if x.is_rational and y.is_rational and not (x.has(Float) or y.has(Float)):  # latex2sympy leaves 2^{10} a Pow
            big = Float(10) ** EXACT_DIGITS  # N() below sizes 10^(10^10) without computing it
            sizes = [abs(N(t, 3)) for t in preorder_traversal(d) if not t.is_Atom]
            return all(v == 0 or 1 / big < v < big for v in sizes) and d.doit() == 0
        d, tol = N(d, 60, maxn=2000), Float("1e-9") if x.has(Float) or y.has(Float) else Float("1e-500")
        return d == 0 or bool(d.is_finite and abs(d) <= tol * max(abs(N(x, 60)), abs(N(y, 60))))  # not -oo - oo
    except Exception:  # sympy gave up
        return False


@lru_cache(maxsize=1)
def _math_verify():
    """math-verify, its LaTeX config and its own sympy_numeric_eq. Unit stripping is off: its list strips a trailing
    `h`, `t`, `ab` or `m` after a digit or space (`\\pi r^2 h` == `\\pi r^2`, `4ab` == 4, `10m` == 10); see _units()."""
    import math_verify
    from latex2sympy2_extended import NormalizationConfig

    config = NormalizationConfig(basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all")
    latex = math_verify.LatexExtractionConfig(normalization_config=config)
    return math_verify, latex, math_verify.grader.sympy_numeric_eq


@lru_cache(maxsize=8192)
def _parse(latex: str) -> list:
    """math-verify's parse of `latex` read as LaTeX. Only the LaTeX extractor: the expression one `eval`s text."""
    from sympy import I

    mv, config, _ = _math_verify()
    body, pct = (latex[:-2], "\\%") if latex.endswith("\\%") else (latex, "")  # its grammar fails `\frac12\%`
    parsed = mv.parse(f"${body}${pct}", extraction_config=[config], parsing_timeout=MV_TIMEOUT_S)
    # latex2sympy reads only `I` as the imaginary unit; MATH writes i (all 81 golds that have one): 2i is \sqrt{-4}
    return [x.xreplace({s: I for s in x.free_symbols if s.name == "i"}) for x in parsed
            if not isinstance(x, str)]  # no string fallback: E' == E once quotes are dropped


def _depth(s: str) -> int:
    """How deep brackets of any kind nest."""
    return max(accumulate(((c in "{([") - (c in "})]") for c in s), initial=0))


def _verify(p: str, g: str) -> bool:
    if _depth(p) > MAX_DEPTH or _depth(g) > MAX_DEPTH:  # 200 nested braces would wait out MV_TIMEOUT_S: no
        return False
    mv, _, upstream = _math_verify()
    gold, pred = _parse(g), _parse(p)
    mv.grader.sympy_numeric_eq = _numbers_equal  # sympy_expr_eq looks it up at each call; ours for our calls only
    try:  # x < 3 matches the gold (-\infty, 3) only with allow_set_relation_comp (math-verify's anti-hacking default)
        return bool(mv.verify(gold, pred, allow_set_relation_comp=bool(_INTERVAL.search(g)),
                              timeout_seconds=MV_TIMEOUT_S))
    except Exception:  # a sympy failure on hostile input means "not shown equal"
        return False
    finally:
        mv.grader.sympy_numeric_eq = upstream


def _same(p: str, g: str) -> bool:
    if p == g:
        return True
    if (pn := _number(p)) is not None and (gn := _number(g)) is not None:
        return pn == gn
    if _rejected(p, g):
        return False
    if _BASE.search(p) or _BASE.search(g):  # math-verify drops the base: 1011_2 == 1011
        return _BASE.sub(r"\1_\2", p) == _BASE.sub(r"\1_\2", g)
    return _verify(p, g)


def _value(s: str) -> tuple[str, str]:
    """`x = 3`, `3 = x`, `f(x) = 2x+3`, `x = 5+5+1 = 11` -> (name, value); anything else -> ('', s)."""
    sides = [t.strip() for t in _EQ.split(s)]
    if len(sides) < 2 or re.search(r"[,;]|\\begin", s):  # systems and lists are math-verify's to compare
        return "", s
    if _NAME.fullmatch(sides[0]) and not _NAME.fullmatch(sides[-1]):
        return sides[0], sides[-1]
    if len(sides) == 2 and _NAME.fullmatch(sides[1]) and not _NAME.fullmatch(sides[0]):
        return sides[1], sides[0]  # 2 = x (inspect_ai); 7 = 11a+c keeps both sides (hendrycks)
    return "", s


def _units(s: str) -> tuple[str, str]:
    """`10 \\text{ cm}^2`, `10 square units`, `\\text{3 apples}`, `\\$5`, `30^\\circ` -> (number, unit's name);
    no unit -> (s, '')."""
    if (m := _TEXT.fullmatch(s)) and m[1].strip()[:1].isdigit():
        s = m[1].strip()
    if m := _CURRENCY.fullmatch(s):
        number, unit = (m[1] + m[3], _unit_name(m[2])) if m[2] else (m[4], _unit_name(m[5]))
    elif m := _UNIT.fullmatch(s):
        number, unit = m[1], _unit_name(m[2] or m[3] or m[4]) + (f"^{m[5]}" if m[5] else "")
    else:
        return s, ""
    # units follow a number, 2\pi or \frac{}{}
    return (s, "") if re.search(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", number)) else (number, unit)


def _unit_name(words: str) -> str:
    """`square centimeters` -> `cm^2`, `miles per hour` -> `mi/h`, `distinct integers` -> `integer`. A word off the
    allow-list keeps its spelling after a `?`: it may be dropped only where the other side says the same."""
    name, power = "", ""
    for w in words.lower().replace(".", "").split():
        if w in ("square", "sq", "cubic", "cu"):
            power = "^2" if w[0] == "s" else "^3"
        elif w == "per":
            name += "/"
        elif w not in _UNIT_SKIP:
            forms = (w, w.removesuffix("s"), w.removesuffix("es"), w.removesuffix("ies") + "y") if len(w) > 3 else (w,)
            unit = next((_UNIT_NAMES[f] for f in forms if f in _UNIT_NAMES), "?" + w)
            name += (unit if unit in _LENGTHS or not power else "?" + w) + power  # square feet, not square roots
            power = ""
    return name if name and not power and not name.endswith("/") else name + "?"  # `3 square`, `3 per`, `3 right`


def _choice(s: str) -> str | None:
    """The letter of a multiple-choice answer: `(D) Alina`, `\\text{(A) } 12`, `\\mathcal{B}`, `C` -> D, A, B, C."""
    m = _CHOICE.fullmatch(_TEXT.sub(r"\1", s).strip())
    return None if not m or re.search(r"\b[A-E]\b", m[2] or m[4] or "") else m[1] or m[3]  # `(A) or (B)` hedges


@lru_cache(maxsize=8192)
def is_equivalent(pred: str, gold: str) -> bool:
    """True if the predicted answer means the same as the gold one."""
    p, g = _clean(pred), _clean(gold)
    if not p or not g:
        return False
    if _same(p, g):
        return True
    (pn, pv), (gn, gv) = _value(p), _value(g)
    names = sorted(re.sub(r"^[a-zA-Z]\(x\)$", "f(x)", n) for n in (pn, gn))  # y = 2x+3 answers f(x) = 2x+3 ...
    p2, g2 = (pv, gv) if not (pn and gn) or pn == gn or names == ["f(x)", "y"] else (p, g)  # ... x = 3 not y = 3
    (p2, pu), (g2, gu) = _units(p2), _units(g2)  # a unit on one side must be on the list; on both, the same
    if (p2, g2) != (p, g) and (pu == gu or "?" not in pu + gu and not (pu and gu)) and _same(p2, g2):
        return True
    letter = _choice(g)  # choice letters are case-sensitive: b is no answer to (B)
    return letter is not None and _choice(p) == letter


def unfinished_reward(response: str, truncated: bool) -> float:
    """The score of an item whose grading timed out or crashed: -0.5 if it has a boxed answer, else -1."""
    return WRONG if extract_boxed(clean(response)) is not None and not truncated else FORMAT_ERROR


def reward(response: str, answer: str, truncated: bool = False) -> float:
    """The paper's reward for one response: 1.0 correct, -0.5 boxed but wrong, -1.0 format error."""
    response = clean(response)
    if format_error(response, truncated):
        return FORMAT_ERROR
    return CORRECT if is_equivalent(extract_boxed(response), answer) else WRONG


def verdict(response: str, answer: str) -> bool:
    """The paper's evaluation verdict (upstream eval/eval.py): the last boxed answer equals the gold, whatever the
    format. A right answer that is then cut off, repeated or boxed five times counts here and scores -1 in training."""
    box = extract_boxed(clean(response))
    return box is not None and is_equivalent(box, answer)


# ------------------------------------------------------------------------------------ batch grading in workers
# Each worker is `python reward.py --serve`: it reads one JSON item per line and answers `[index, reward]`.
# The parent gives each worker one item at a time, so a worker that overruns TIMEOUT_S can be killed and replaced
# without losing anything else. Plain subprocesses, not multiprocessing: no fork of a process holding vLLM's
# threads, and no re-import of the caller's __main__ (limr.py would import torch in every worker).

_workers: list[subprocess.Popen] = []


def _start_workers(k: int) -> list[subprocess.Popen]:
    """k workers with math-verify loaded, started together then awaited: start-up must not eat an item's timeout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    new = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, encoding="utf-8", env=env) for _ in range(k)]
    for w in new:
        w.stdout.readline()  # "ready" (or "" if it died; its first item then sees EOF and replaces it)
    return new


def _kill(w: subprocess.Popen) -> None:
    w.kill()
    w.wait()
    for f in (w.stdin, w.stdout):
        with contextlib.suppress(OSError):  # a dead worker's pipe may refuse the final flush
            f.close()


@atexit.register
def close_workers() -> None:
    """Stop the grading workers (they also exit on their own when this process dies)."""
    while _workers:
        _kill(_workers.pop())


def rewards(responses: list[str], answers: list[str], truncated: list[bool] | None = None, workers: int | None = None,
            timeout: float = TIMEOUT_S) -> list[float]:
    """The training reward of each response, graded in worker processes under a hard timeout. Always returns."""
    return [r for r, _ in grade(responses, answers, truncated, workers, timeout, verdicts=False)]


def grade(responses: list[str], answers: list[str], truncated: list[bool] | None = None, workers: int | None = None,
          timeout: float = TIMEOUT_S, verdicts: bool = True) -> list[tuple[float, bool | None]]:
    """(reward, evaluation verdict) of each response, graded as in rewards(); a timed-out item's verdict is False."""
    if len(responses) != len(answers) or (truncated is not None and len(truncated) != len(responses)):
        raise ValueError("rewards(): responses, answers and truncated must have the same length")
    truncated = truncated or [False] * len(responses)
    workers = max(1, workers or min(os.cpu_count() or 1, 8))
    _workers.extend(_start_workers(workers - len(_workers)))  # slots 0 .. workers-1 of _workers serve this call
    out: list = [None] * len(responses)
    todo = list(range(len(responses)))[::-1]
    busy: dict[int, tuple[int, float]] = {}  # worker slot -> (item, deadline)
    while todo or busy:
        for slot in range(workers):
            if slot not in busy and todo:
                i = todo.pop()
                try:
                    item = [i, responses[i], answers[i], bool(truncated[i]), verdicts]
                    print(json.dumps(item), file=_workers[slot].stdin, flush=True)
                    busy[slot] = (i, time.monotonic() + timeout)
                except OSError:  # the worker died between items (a broken pipe): replace it, retry the item
                    todo.append(i)
                    _replace(slot)
        if not busy:
            continue
        wait = max(0.0, min(d for _, d in busy.values()) - time.monotonic())
        ready, _, _ = select.select([_workers[s].stdout for s in busy], [], [], wait)
        for slot in list(busy):
            i, deadline = busy[slot]
            line = _workers[slot].stdout.readline() if _workers[slot].stdout in ready else None
            if line:
                out[i] = tuple(json.loads(line)[1:])
                del busy[slot]
            elif line == "" or time.monotonic() > deadline:  # crashed (EOF) or hung: score it and replace the worker
                out[i] = (unfinished_reward(responses[i], truncated[i]), False if verdicts else None)
                _replace(slot)
                del busy[slot]
    return out


def _replace(slot: int) -> None:
    _kill(_workers[slot])
    _workers[slot] = _start_workers(1)[0]


def _serve() -> None:
    # Ctrl-C reaches every process of the job: the trainer finishes its step, so its graders must finish theirs
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # its "Timeout during comparison" is our -0.5
    is_equivalent("x", "y")  # load math-verify and sympy now, then say so
    print("ready", flush=True)
    for line in sys.stdin:
        i, response, answer, truncated, with_verdict = json.loads(line)
        try:
            r, v = reward(response, answer, truncated), verdict(response, answer) if with_verdict else None
        except Exception:  # never let one item take the worker down; a crash would cost a restart
            r, v = unfinished_reward(response, truncated), False if with_verdict else None
        print(json.dumps([i, r, v]), flush=True)


# ---------------------------------------------------------------------------- inside the distributed engines
# The same reward where other engines call one, each loaded the way that engine loads it; graded in workers too.
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")  # chat turn / sequence ends, as decoded


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None) -> dict:
    """verl: custom_reward_function.path=reward.py, custom_reward_function.name=compute_score. Its naive reward
    manager calls this per response with these keywords (verl/workers/reward_manager/naive.py) and dumps every
    returned key into trainer.rollout_data_dir, so the problem's id reaches lim.py. verl hands over decoded text
    without its end token, so a response cut at the length limit is graded by content here, not scored -1."""
    extra = extra_info or {}
    [r] = rewards([solution_str], [str(ground_truth)])
    return {"score": r, "acc": r == CORRECT, "id": str(extra.get("id", extra.get("index", "")))}


def trl_reward(prompts: list, completions: list, answer: list, **kwargs) -> list[float]:
    """TRL: GRPOTrainer(reward_funcs=[reward.trl_reward]) on a dataset with an `answer` column (TRL passes the
    dataset's columns as keywords; conversational completions are lists of messages). With an `id` column and TRL's
    log_extra (TRL >= 1.0), the id lands in log_completions' parquet files, where lim.py reads it."""
    if "id" in kwargs and callable(kwargs.get("log_extra")):
        kwargs["log_extra"]("id", [str(i) for i in kwargs["id"]])
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return rewards(texts, [str(a) for a in answer])


def reward_func(queries: list[str], prompts: list[str], labels: list[str], **kwargs) -> dict:
    """OpenRLHF: --remote_rm_url reward.py (it loads reward_func(queries, prompts, labels) from a .py file).
    queries are prompt + response decoded with special tokens: a response with no end token was truncated (-1, as
    upstream's serve_rm). Returns what OpenRLHF >= 0.8.3 reads: rewards, 0/1 scores, extra logs."""
    import torch

    texts = [q.removeprefix(p) for q, p in zip(queries, prompts)]
    ends = [min((t.find(m) for m in END_MARKERS if m in t), default=None) for t in texts]  # None: no end token
    responses = [t[:e] for t, e in zip(texts, ends)]
    r = torch.tensor(rewards(responses, [str(x) for x in labels], [e is None for e in ends]))
    return {"rewards": r, "scores": (r == CORRECT).float(), "extra_logs": {"accuracy": (r == CORRECT).float()}}


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
