"""The normalised text of an expression reads back to the same expression (issue 17, item 1),
and the at-% preset for dimers (item 10)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_nanosims.analysis.expression import Node, evaluate_node, parse
from napari_nanosims.analysis.ratios import evaluate
from napari_nanosims.model import Acquisition

# Label sets as files have them: with spaces, and labels that are prefixes of others
# (12C of 12C 13C, 12C2 and 12C 14N; 16O of 16O 1H), and SE (alias Esi).
LABEL_SETS = (("12C", "13C", "12C 13C", "12C2", "12C 14N", "14N", "SE"),
              ("12C", "12C14N", "14N", "1H", "2H", "16O", "16O 1H"))

# Numbers over the whole float range: tiny (subnormal), huge, fractions that :g would
# round, whole numbers.
NUMBERS = st.one_of(
    st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False),
    st.sampled_from([1e-05, 1e-300, 5e-324, 1e16, 1e22, 0.1, 100.0, 2.0, 0.01123721,
                     1.5e-08, 123456789.123, 1000.0]))


def _trees(labels, numbers):
    """Expression trees over ``labels``: + - * /, unary minus, log, log10, sqrt, exp and
    delta(expression, constant)."""
    number_leaf = numbers.map(lambda value: Node("number", float(value)))
    constants = st.recursive(
        number_leaf,
        lambda inner: st.one_of(
            st.tuples(st.sampled_from("+-*/"), inner, inner).map(
                lambda t: Node("binary", t[0], (t[1], t[2]))),
            inner.map(lambda child: Node("unary", "-", (child,)))),
        max_leaves=3)
    leaves = st.one_of(number_leaf, st.sampled_from(labels).map(lambda label: Node("label", label)))

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from("+-*/"), children, children).map(
                lambda t: Node("binary", t[0], (t[1], t[2]))),
            children.map(lambda child: Node("unary", "-", (child,))),
            st.tuples(st.sampled_from(["log", "log10", "sqrt", "exp"]), children).map(
                lambda t: Node("call", t[0], (t[1],))),
            st.tuples(children, constants).map(lambda t: Node("call", "delta", t)))

    return st.recursive(leaves, extend, max_leaves=12)


def _images(labels):
    """Positive images spanning many decades, one per label."""
    rng = np.random.default_rng(17)
    return {label: rng.lognormal(mean=2.0, sigma=3.0, size=(3, 4)) for label in labels}


def _assert_same_values(first: Node, second: Node, images) -> None:
    """Same value (NaN and inf in the same places) and same derivatives everywhere."""
    with np.errstate(all="ignore"):
        a, b = evaluate_node(first, images), evaluate_node(second, images)
    shape = next(iter(images.values())).shape
    np.testing.assert_array_equal(np.broadcast_to(a.value, shape),
                                  np.broadcast_to(b.value, shape))
    assert set(a.gradient) == set(b.gradient)
    for label in a.gradient:
        np.testing.assert_array_equal(np.broadcast_to(a.gradient[label], shape),
                                      np.broadcast_to(b.gradient[label], shape))


@pytest.mark.parametrize("labels", LABEL_SETS, ids=["spaces", "squeezed"])
@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_text_parses_back_to_the_same_expression(labels, data):
    expression = data.draw(_trees(labels, NUMBERS))
    text = expression.text()
    again = parse(text, labels)
    # The parser builds these trees (numbers >= 0), so the text must give back the tree
    # itself: same evaluation order, hence the very same floats.
    assert again == expression, text
    _assert_same_values(expression, again, _images(labels))
    assert again.text() == text


@pytest.mark.parametrize("labels", LABEL_SETS, ids=["spaces", "squeezed"])
@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_text_of_negative_numbers_reads_back_to_the_same_value(labels, data):
    """Trees built in code may hold negative numbers (the parser writes -3 as unary minus):
    '-' before them and in exponents must still read back to the same value."""
    negative = st.floats(min_value=-1e300, max_value=-5e-324, allow_nan=False)
    expression = data.draw(_trees(labels, st.one_of(NUMBERS, negative)))
    text = expression.text()
    again = parse(text, labels)
    _assert_same_values(expression, again, _images(labels))
    assert again.text() == text  # idempotent


# (written, normalised text, the value written out with numpy) over A = 12C 13C,
# B = 12C2, C = 12C, D = 13C.
CASES = [
    ("12C13C/(2*12C2)", "12C 13C/(2*12C2)", lambda A, B, C, D: A / (2 * B)),
    ("12C/(13C/12C2)", "12C/(13C/12C2)", lambda A, B, C, D: C / (D / B)),
    ("12C/(13C*12C2)", "12C/(13C*12C2)", lambda A, B, C, D: C / (D * B)),
    ("12C-(13C-12C2)", "12C-(13C-12C2)", lambda A, B, C, D: C - (D - B)),
    ("12C-(13C+12C2)", "12C-(13C+12C2)", lambda A, B, C, D: C - (D + B)),
    ("12C/-(13C*12C2)", "12C/-(13C*12C2)", lambda A, B, C, D: C / -(D * B)),
    ("-(12C+13C)*2", "-(12C+13C)*2", lambda A, B, C, D: -(C + D) * 2),
    ("12C--3", "12C--3", lambda A, B, C, D: C + 3),
    ("1e-5*12C", "1e-05*12C", lambda A, B, C, D: 1e-5 * C),
    ("12C*2.5e+20", "12C*2.5e+20", lambda A, B, C, D: C * 2.5e20),
    ("100*12C13C/(12C13C+2*12C2)", "100*12C 13C/(12C 13C+2*12C2)",
     lambda A, B, C, D: 100 * A / (A + 2 * B)),
    ("delta(12C13C/(2*12C2), 0.01123721)", "delta(12C 13C/(2*12C2), 0.01123721)",
     lambda A, B, C, D: (A / (2 * B) / 0.01123721 - 1) * 1000),
    ("13C/(12C+13C)", "13C/(12C+13C)", lambda A, B, C, D: D / (C + D)),
    ("12C+13C", "12C+13C", lambda A, B, C, D: C + D),
    ("12C/13C*100", "12C/13C*100", lambda A, B, C, D: C / D * 100),
    ("sqrt(12C/(13C*2))", "sqrt(12C/(13C*2))", lambda A, B, C, D: np.sqrt(C / (D * 2))),
]


@pytest.mark.parametrize("written, text, formula", CASES, ids=[c[0] for c in CASES])
def test_issue_examples(written, text, formula):
    labels = LABEL_SETS[0]
    images = _images(labels)
    node = parse(written, labels)
    assert node.text() == text
    again = parse(node.text(), labels)
    expected = formula(images["12C 13C"], images["12C2"], images["12C"], images["13C"])
    np.testing.assert_allclose(evaluate_node(again, images).value, expected, rtol=1e-12)


def test_numbers_keep_every_digit():
    labels = LABEL_SETS[0]
    for value in (0.01123721, 0.1 + 0.2, 1 / 3, 6.02214076e23, 1e-300):
        node = Node("binary", "*", (Node("number", value), Node("label", "12C")))
        assert parse(node.text(), labels).children[0].value == value


def test_dimer_ratio_from_evaluate_keeps_its_brackets_and_node():
    """The Ratio tab's dimer preset: DerivedImage.expression and the history record read
    back to the ratio (about 0.011), and the parsed expression travels with the image."""
    rng = np.random.default_rng(3)
    c2 = rng.poisson(400.0, size=(2, 8, 8)).astype(float)
    dimer = rng.poisson(400.0 * 2 * 0.0112, size=(2, 8, 8)).astype(float)
    acquisition = Acquisition.from_arrays(np.stack([c2, dimer], axis=1), ["12C2", "12C 13C"])
    derived = evaluate(acquisition, "12C13C/(2*12C2)")
    a, b = dimer.sum(axis=0), c2.sum(axis=0)
    np.testing.assert_allclose(derived.value, a / (2 * b), rtol=1e-12)
    assert derived.expression == "12C 13C/(2*12C2)"
    assert derived.node == parse("12C13C/(2*12C2)", acquisition.labels)
    recorded = derived.history[-1].parameters["expression"]
    again = evaluate(acquisition, recorded)
    np.testing.assert_array_equal(again.value, derived.value)
    assert 0.009 < np.nanmedian(again.value) < 0.013


def test_parse_takes_a_parsed_node_and_checks_its_labels():
    node = parse("12C13C/(2*12C2)", LABEL_SETS[0])
    assert parse(node, LABEL_SETS[0]) is node
    with pytest.raises(ValueError, match="12C 13C"):
        parse(node, ("12C", "12C2"))


def test_numbers_that_are_not_floats_are_refused():
    with pytest.raises(ValueError, match="1e999"):
        parse("1e999*12C", LABEL_SETS[0])
    with pytest.raises(ValueError, match="finite"):
        Node("number", float("inf")).text()


def test_at_percent_preset_for_dimers():
    """100*12C13C/(12C13C+2*12C2) is the 13C atom percent of the carbon in the dimers:
    with a 13C atom fraction f, C2 molecules are 12C13C with probability 2 f (1 - f) and
    12C2 with (1 - f)**2, so the preset gives 100 f (13C2, f**2, is not measured)."""
    from napari_nanosims._napari.ratio_layers import presets

    labels = ("12C", "13C", "12C 13C", "12C2")
    found = dict(presets(labels))
    expression = found["at-% 13C from dimers"]
    assert expression == "100*12C13C/(12C13C+2*12C2)"
    # The other at-% presets are in percent (100*...): the same convention.
    assert found["at-% 13C"].startswith("100*")
    f = np.array([[0.0107, 0.02], [0.05, 0.5]])
    molecules = 1e6
    images = {"12C 13C": molecules * 2 * f * (1 - f), "12C2": molecules * (1 - f) ** 2,
              "12C": np.ones_like(f), "13C": np.ones_like(f)}
    value = evaluate_node(parse(expression, labels), images).value
    np.testing.assert_allclose(value, 100 * f, rtol=1e-12)
