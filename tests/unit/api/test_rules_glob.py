"""Rule globs (mpr_api.automation.globs.compile_glob): the same matches as the regular expression they
used to be translated to, in time linear in the key's length whatever the pattern (steps counted, not
seconds), bounded pattern size and number of wildcards, and malformed globs refused with a reason."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpr_api.automation.globs import MAX_GLOB_CHARS, MAX_GLOB_DOUBLE_STARS, MAX_GLOB_STARS, compile_glob
from mpr_api.automation.rules import Rule, check_rule, key_matches
from mpr_api.automation.templates import TemplateError


def reference_regex(glob: str) -> re.Pattern[str]:
    """The former translation (a backtracking regex): the reference for short keys."""
    out: list[str] = []
    i, n, in_braces = 0, len(glob), False
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2)
            body = glob[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end + 1
            continue
        elif c == "{":
            in_braces = True
            out.append("(?:")
        elif c == "}" and in_braces:
            in_braces = False
            out.append(")")
        elif c == "," and in_braces:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


PIECES = ["a", "b", ".", "/", "-", "*", "**", "**/", "?", "[ab]", "[!a]", "[a-c]", "[a-]", "+", "(", "]", ","]
ALTERNATIVE = st.lists(st.sampled_from([p for p in PIECES if p != ","]), max_size=3).map("".join)
BRACES = st.lists(ALTERNATIVE, min_size=1, max_size=3).map(lambda alts: "{" + ",".join(alts) + "}")
GLOBS = st.lists(st.one_of(st.sampled_from(PIECES), BRACES), max_size=6).map("".join)
KEYS = st.text(alphabet="ab./-c+(],", max_size=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(glob=GLOBS, key=KEYS)
def test_the_matcher_agrees_with_the_former_regex(glob, key):
    try:
        g = compile_glob(glob)
    except TemplateError:
        return  # over the bounds (the generator writes at most a few stars)
    assert g.run(key) is (reference_regex(glob).fullmatch(key) is not None)


@settings(max_examples=100, deadline=None)
@given(glob=GLOBS, key=st.text(alphabet="ab/.", min_size=1, max_size=40))
def test_matching_takes_steps_linear_in_the_key(glob, key):
    try:
        g = compile_glob(glob)
    except TemplateError:
        return
    counter = [0]
    matched = g.run(key, counter)
    assert matched is g.run(key)  # the remembered transitions give the same answer
    # each character visits each state at most twice (once stepping, once closing)
    assert counter[0] <= (len(key) + 1) * 2 * g.states


@pytest.mark.parametrize(
    "glob",
    [
        "**/" * MAX_GLOB_DOUBLE_STARS + "*.mp4",
        "*a" * MAX_GLOB_STARS + "b",
        "{*a*a*a*a,*a*a*a*b,**/a*}" + "?" * 100,
        "**a**a**a**a" + "[ab]" * 40,
    ],
)
def test_worst_patterns_cost_a_few_steps_per_character(glob):
    g = compile_glob(glob)
    steps = {}
    for n in (250, 1000):
        key = ("a/" * n)[:n]
        counter = [0]
        g.run(key, counter)
        steps[n] = counter[0]
    # linear: four times the key, at most about four times the steps (no backtracking blow-up)
    assert steps[1000] <= 4.5 * steps[250] + 100
    assert steps[1000] <= 1001 * 2 * g.states


def test_the_issue_s_pattern_is_refused_and_a_bounded_one_is_fast():
    # '**/' eight times over a key with 40 slashes took 15 s as a regex
    with pytest.raises(TemplateError, match=r"at most \d+ '\*\*'"):
        check_rule(Rule(template="t", glob="**/" * 8 + "x"))
    g = compile_glob("**/" * MAX_GLOB_DOUBLE_STARS + "x")
    key = "d/" * 40 + "y"
    started = time.perf_counter()
    for _ in range(100):
        assert not g.run(key)
    assert time.perf_counter() - started < 2  # 100 matches; the regex took seconds for one


@pytest.mark.parametrize(
    ("glob", "reason"),
    [
        ("[z-a].mp4", "reversed"),
        ("a[.mp4", "unclosed"),
        ("{a,{b}}", "nested"),
        ("{a,b", "unclosed"),
        ("[!]x]", "empty"),
        ("x" * (MAX_GLOB_CHARS + 1), f"at most {MAX_GLOB_CHARS} characters"),
        ("*/" * (MAX_GLOB_STARS + 1), f"at most {MAX_GLOB_STARS}"),
        ("**/" * (MAX_GLOB_DOUBLE_STARS + 1), f"at most {MAX_GLOB_DOUBLE_STARS}"),
    ],
)
def test_bad_globs_are_refused_with_the_reason(glob, reason):
    with pytest.raises(TemplateError, match=re.escape(reason)):
        check_rule(Rule(template="t", glob=glob))


@settings(max_examples=150, deadline=None)
@given(glob=st.text(max_size=80), key=st.text(max_size=80))
def test_any_text_is_a_glob_or_a_template_error(glob, key):
    try:
        g = compile_glob(glob)
    except TemplateError as exc:
        assert str(exc).startswith("glob: ")
        return
    assert isinstance(g.run(key), bool)


def test_a_stored_glob_over_today_s_bounds_matches_nothing_instead_of_failing():
    rule = Rule(template="t", glob="**/" * 8 + "*.mp4")  # stored before the bounds existed
    assert key_matches(rule, "a/b.mp4") is False


@pytest.mark.parametrize(
    ("glob", "key", "matches"),
    [
        ("[a-c-e]", "-", True),  # a range, then '-' and 'e' as themselves (as the regex did)
        ("[a-c-e]", "d", False),
        ("[]]", "]", True),
        ("x[!/]y", "x/y", False),
        ("x[!a]y", "x/y", True),  # a class may match '/', as it always could
        ("{,a/}b", "b", True),
        ("**", "", True),
        ("**/", "", True),
        ("**/", "a/b/", True),
        ("a**b", "a/x/b", True),
    ],
)
def test_edges_of_the_syntax(glob, key, matches):
    assert compile_glob(glob).run(key) is matches
