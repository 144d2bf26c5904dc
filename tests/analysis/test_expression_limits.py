"""The expression parser on hostile text: bounded depth with one clear error, work linear
in the text's length, signed exponents, and no empty labels (issue 20, item 6)."""

from __future__ import annotations

import contextlib
import sys

import pytest

from napari_nanosims.analysis.expression import MAX_DEPTH, parse

LABELS = ["12C", "13C", "12C 14N", "SE"]


class _Calls:
    """Function calls (Python and C) made while active: the parser's work, counted."""

    def __enter__(self):
        self.calls = 0

        def profile(frame, event, arg):
            if event in ("call", "c_call"):
                self.calls += 1
        sys.setprofile(profile)
        return self

    def __exit__(self, *exc_info):
        sys.setprofile(None)


@pytest.mark.parametrize("text", [
    "(" * 5000 + "12C" + ")" * 5000,
    "-" * 5000 + "12C",
    "sqrt(" * 2000 + "12C" + ")" * 2000,
    "+".join(["12C"] * 400),  # a chain of 399 operators
    "12C" + "/13C" * 1000])
def test_deep_expressions_are_refused_with_one_clear_error(text):
    with pytest.raises(ValueError, match=f"nested more than {MAX_DEPTH} levels deep"):
        parse(text, LABELS)


def test_expressions_up_to_the_limit_parse_and_print():
    chain = "+".join(["12C"] * (MAX_DEPTH + 1))  # MAX_DEPTH operators
    node = parse(chain, LABELS)
    assert parse(node.text(), LABELS) == node
    nested = "(" * (MAX_DEPTH - 1) + "12C/13C" + ")" * (MAX_DEPTH - 1)
    assert parse(nested, LABELS).text() == "12C/13C"


def _work(text):
    with _Calls() as counter, contextlib.suppress(ValueError):
        parse(text, LABELS)
    return counter.calls


@pytest.mark.parametrize("unit", [
    "12C " + " " * 60 + "+ 13C",    # long white space inside a valid expression
    "12C+13C*",                      # long chains: tokenized whole, refused for depth
    "1.5e-3*12 C 14N/"])
def test_parsing_work_grows_linearly_with_the_length(unit):
    """Work is counted (calls), not timed: 4x the text must cost about 4x, not 16x as the
    quadratic tokenizer did (80 KB took 60 s)."""
    def text(n):
        body = unit * n
        return body.rstrip("+*/") if not body.endswith("13C") else body

    small, large = _work(text(500)), _work(text(2000))
    assert large / small < 5, (small, large)
    # and 80 KB goes through (refused or parsed, never slow or RecursionError)
    assert _work(text(80_000 // len(unit))) < 60 * large


@pytest.mark.parametrize("text, value", [
    ("12C*1e-3", 1e-3), ("12C*1e+3", 1e3), ("12C*2.5E-2", 2.5e-2), ("12C*1E3", 1e3),
    ("12C*.5e-1", 0.05)])
def test_signed_exponents_are_numbers(text, value):
    node = parse(text, LABELS)
    assert node.kind == "binary" and node.children[1].value == value


def test_a_number_beats_a_shorter_label_it_starts_with():
    # '1' is a label here, but '1e-3' is a longer number; '12C' stays a label, not 12
    node = parse("1e-3*12C", ["1", "12C"])
    assert node.children[0].kind == "number" and node.children[0].value == 1e-3
    assert node.children[1].kind == "label" and node.children[1].value == "12C"


@pytest.mark.parametrize("labels", [["12C", ""], ["12C", "   "], ["", "13C"]])
def test_empty_or_blank_labels_are_refused(labels):
    with pytest.raises(ValueError, match="are empty: an expression cannot name them"):
        parse("12C + anything at all", labels)
