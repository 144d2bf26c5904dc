"""A small, safe expression language over mass images, evaluated with first-order errors.

Grammar (no ``eval``; anything else is a ``ValueError`` naming the position)::

    expression := term (('+' | '-') term)*
    term       := factor (('*' | '/') factor)*
    factor     := ('-' | '+') factor | primary
    primary    := number | label | function '(' arguments ')' | '(' expression ')'
    function   := log | log10 | sqrt | exp | delta
    number     := digits ['.' digits] [('e' | 'E') ['+' | '-'] digits]   (1e-3, 2.5E+2)

Expressions nest at most :data:`MAX_DEPTH` (100) levels: brackets, calls and signs inside
each other, or a chain of more than 100 operators, are refused with a ValueError (the
tree is walked recursively). Tokenizing and parsing take time linear in the text's length.
Mass labels must not be empty or blank.

Labels are the file's mass labels written with or without their spaces, matched longest
first (``12C`` never matches inside ``12C14N``; a longer number wins over a label it
starts with: ``1e-3`` is a number even where ``1`` is a label); ``SE`` and ``Esi`` name
the secondary-electron channel. ``delta(x, standard)`` is ``(x / standard - 1) * 1000``.

Evaluation carries, with every value, its derivatives with respect to each mass image,
so the error of any expression is ``sigma**2 = sum_i (df/dm_i)**2 V_i``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["parse", "Node", "Dual", "FUNCTIONS"]

FUNCTIONS = ("log10", "log", "sqrt", "exp", "delta")  # log10 before log: longest first
_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclasses.dataclass(frozen=True)
class Node:
    """A parsed expression: ``kind`` is 'number', 'label', 'unary', 'binary' or 'call'."""

    kind: str
    value: Any = None
    children: tuple = ()

    def text(self) -> str:
        """The normalised text of the expression (labels as in the file).

        The text parses back (with the same labels) to this very tree, so to the same
        value: a child is bracketed when it binds less tightly than its parent's operator,
        and a right operand of the same precedence always is (``A/(B*C)``, ``A-(B-C)``,
        ``A-(B+C)``, ``A*(B/C)``), which keeps the evaluation order and so the floating-point
        value. Numbers are written in the shortest form that reads back to the same float
        (``100``, ``0.0112372``, ``1e-05``).

        Raises
        ------
        ValueError
            For a number that is not finite (no text reads back to it).
        """
        if self.kind == "number":
            return _number_text(self.value)
        if self.kind == "label":
            return str(self.value)
        if self.kind == "unary":
            child = self.children[0]
            inner = child.text()
            return f"-({inner})" if _precedence(child) < _UNARY else f"-{inner}"
        if self.kind == "call":
            return f"{self.value}({', '.join(child.text() for child in self.children)})"
        left, right = self.children
        level = _BINARY[self.value]
        left_text, right_text = left.text(), right.text()
        if _precedence(left) < level:
            left_text = f"({left_text})"
        # Same precedence on the right: brackets are needed for - and / (A-(B-C)), and kept
        # for + and * so that the tree, hence the rounding, is the one the user wrote.
        if _precedence(right) <= level:
            right_text = f"({right_text})"
        return f"{left_text}{self.value}{right_text}"

    def labels(self) -> list[str]:
        """Mass labels used, in order of first appearance."""
        if self.kind == "label":
            return [str(self.value)]
        found: list[str] = []
        for child in self.children:
            found += [label for label in child.labels() if label not in found]
        return found


#: How tightly each kind of node binds: + and - (1) < * and / (2) < unary minus (3) <
#: numbers, labels and calls (4), as in the grammar above.
_BINARY = {"+": 1, "-": 1, "*": 2, "/": 2}
_UNARY = 3


def _precedence(node: Node) -> int:
    if node.kind == "binary":
        return _BINARY[node.value]
    if node.kind == "unary":
        return _UNARY
    if node.kind == "number" and np.signbit(float(node.value)):
        return _UNARY  # written with a leading minus, which reads back as unary minus
    return 4


def _number_text(value) -> str:
    """The shortest text that reads back to ``value`` (``repr`` of the float; whole
    numbers below 1e16 without ``.0``)."""
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"the number {number!r} has no expression text (numbers must be "
                         "finite)")
    if number.is_integer() and abs(number) < 1e16:
        text = str(int(number))
        return "-0" if number == 0 and np.signbit(number) else text
    return repr(number)


_WORD = re.compile(r"[0-9A-Za-z_.]+")
_LETTER = re.compile(r"[A-Za-z_]")
#: Deepest expression accepted: brackets, function calls and signs inside each other, or
#: a chain of operators (``a+b+c`` is two levels). Evaluating, printing and comparing an
#: expression walk its tree recursively, so a deeper one would end in RecursionError.
MAX_DEPTH = 100


def _tokens(expression: str, labels: dict[str, str]):
    """(kind, value, position) tokens; ``labels`` maps label without spaces -> label.

    Linear in the length of ``expression`` (times the number of labels): the text
    without its spaces is made once, and every match starts at an index into it.
    """
    by_length = sorted(labels, key=len, reverse=True)
    squeezed, where = _squeeze(expression)
    # next_kept[p]: index in ``squeezed`` of the first kept character at or after p
    next_kept = np.searchsorted(np.asarray(where, dtype=np.int64),
                                np.arange(len(expression) + 1))
    position = 0
    tokens: list[tuple[str, Any, int]] = []
    while position < len(expression):
        char = expression[position]
        if char.isspace():
            position += 1
            continue
        if char in "+-*/(),":
            tokens.append(("op", char, position))
            position += 1
            continue
        kept = int(next_kept[position])
        match = next((key for key in by_length if squeezed.startswith(key, kept)), None)
        function = next((f for f in FUNCTIONS if expression.startswith(f, position)), None)
        word = _WORD.match(expression, position)
        number = _NUMBER.match(expression, position)
        number_end = number.end() if number else position
        # A label wins over a function name and a number unless they are longer ('1e-3'
        # is a number even where '1' is a label; '12C' is a label, not the number 12).
        if match is not None and (function is None or len(match) >= len(function)) and \
                where[kept + len(match) - 1] + 1 >= number_end:
            tokens.append(("label", labels[match], position))
            position = where[kept + len(match) - 1] + 1
            continue
        if function is not None:
            tokens.append(("function", function, position))
            position += len(function)
            continue
        # A number's exponent ('1e-05') runs past the word '1e': it is still a number.
        if word and _LETTER.search(word.group(0)) and number_end < word.end():
            known = ", ".join(repr(label) for label in dict.fromkeys(labels.values()))
            raise ValueError(f"unknown mass label {word.group(0)!r} at position {position} of "
                             f"{_shown(expression)}; mass labels here: {known} (spaces "
                             f"optional; SE; functions {', '.join(FUNCTIONS)})")
        if number:
            value = float(number.group(0))
            if not np.isfinite(value):
                raise ValueError(f"the number {number.group(0)[:40]!r} at position {position} "
                                 f"of {_shown(expression)} is too large for a float")
            tokens.append(("number", value, position))
            position = number_end
            continue
        known = ", ".join(repr(label) for label in dict.fromkeys(labels.values()))
        raise ValueError(f"unknown name at position {position} of {_shown(expression)}: "
                         f"{expression[position:position + 12]!r}; mass labels here: {known} "
                         f"(and SE, functions {', '.join(FUNCTIONS)})")
    tokens.append(("end", None, len(expression)))
    return tokens


def _shown(expression: str) -> str:
    """The expression for a message: whole up to 200 characters, else its start."""
    return repr(expression) if len(expression) <= 200 else \
        f"{expression[:200]!r}... ({len(expression)} characters)"


def _squeeze(text: str) -> tuple[str, list[int]]:
    """``text`` without spaces, and for each kept character its index in ``text``."""
    where = [index for index, char in enumerate(text) if not char.isspace()]
    return "".join(text[index] for index in where), where


class _Parser:
    """Recursive descent over the tokens; every method returns (node, depth of its tree),
    and nesting (brackets, calls, signs) or a tree deeper than MAX_DEPTH is refused."""

    def __init__(self, expression: str, tokens):
        self.expression, self.tokens, self.at = expression, tokens, 0
        self.nesting = 0

    def peek(self):
        return self.tokens[self.at]

    def take(self, value=None):
        token = self.tokens[self.at]
        if value is not None and token[1] != value:
            self.fail(f"expected {value!r}")
        self.at += 1
        return token

    def fail(self, message):
        kind, value, position = self.peek()
        found = "the end" if kind == "end" else repr(value)
        raise ValueError(f"{message} at position {position} of {_shown(self.expression)} "
                         f"(found {found})")

    def deeper(self, depth: int) -> int:
        if depth > MAX_DEPTH or self.nesting > MAX_DEPTH:
            self.fail(f"the expression is nested more than {MAX_DEPTH} levels deep "
                      "(brackets, functions and signs inside each other, or a chain of "
                      f"more than {MAX_DEPTH} operators); split it")
        return depth

    def expression_(self):
        node, depth = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            operator = self.take()[1]
            right, right_depth = self.term()
            node = Node("binary", operator, (node, right))
            depth = self.deeper(1 + max(depth, right_depth))
        return node, depth

    def term(self):
        node, depth = self.factor()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            operator = self.take()[1]
            right, right_depth = self.factor()
            node = Node("binary", operator, (node, right))
            depth = self.deeper(1 + max(depth, right_depth))
        return node, depth

    def factor(self):
        if self.peek()[0] == "op" and self.peek()[1] in ("-", "+"):
            sign = self.take()[1]
            self.nesting += 1
            self.deeper(0)
            inner, depth = self.factor()
            self.nesting -= 1
            return (Node("unary", "-", (inner,)), self.deeper(depth + 1)) if sign == "-" \
                else (inner, depth)
        return self.primary()

    def primary(self):
        kind, value, _ = self.peek()
        if kind == "number":
            self.take()
            return Node("number", value), 0
        if kind == "label":
            self.take()
            return Node("label", value), 0
        if kind == "function":
            self.take()
            self.take("(")
            self.nesting += 1
            self.deeper(0)
            arguments = [self.expression_()]
            while self.peek()[1] == ",":
                self.take(",")
                arguments.append(self.expression_())
            self.take(")")
            self.nesting -= 1
            wanted = 2 if value == "delta" else 1
            if len(arguments) != wanted:
                raise ValueError(f"{value}() takes {wanted} argument(s), got {len(arguments)} "
                                 f"in {_shown(self.expression)}")
            if value == "delta" and arguments[1][0].labels():
                raise ValueError(f"the standard of delta() must be a number, not "
                                 f"{arguments[1][0].text()!r}")
            depth = self.deeper(1 + max(depth for _, depth in arguments))
            return Node("call", value, tuple(node for node, _ in arguments)), depth
        if kind == "op" and value == "(":
            self.take()
            self.nesting += 1
            self.deeper(0)
            node = self.expression_()
            self.take(")")
            self.nesting -= 1
            return node
        self.fail("expected a number, a mass label, a function or '('")


def parse(expression: str | Node, labels) -> Node:
    """Parse ``expression`` over the mass ``labels`` (SE aliases added); ValueError if bad.

    An already parsed :class:`Node` is returned as it is once its labels are checked, so
    callers holding the parsed expression (exporters) never go through its text again.
    """
    if isinstance(expression, Node):
        known = list(labels)
        unknown = [label for label in expression.labels() if label not in known]
        if unknown:
            raise ValueError(f"expression {expression.text()!r} uses mass label(s) "
                             f"{', '.join(map(repr, unknown))} not in this file's labels "
                             f"{', '.join(map(repr, known))}")
        return expression
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("the expression is empty")
    labels = list(labels)
    blank = [index for index, label in enumerate(labels)
             if not isinstance(label, str) or not label.strip()]
    if blank:
        raise ValueError(f"mass label(s) at position(s) {', '.join(map(str, blank))} of "
                         f"{labels!r} are empty: an expression cannot name them (an empty "
                         "label would match any text)")
    table = {"".join(label.split()): label for label in labels}
    se = next((label for label in labels if label == "SE"), None)
    if se is not None:
        table.setdefault("Esi", se)
    parser = _Parser(expression, _tokens(expression, table))
    node, _ = parser.expression_()
    if parser.peek()[0] != "end":
        parser.fail("unexpected text after the expression")
    return node


class Dual:
    """An image value with its derivatives with respect to each mass image."""

    def __init__(self, value, gradient=None):
        self.value = np.asarray(value, dtype=np.float64)
        self.gradient = gradient or {}

    def _combine(self, other, value, d_self, d_other):
        gradient = {}
        for key in set(self.gradient) | set(other.gradient):
            total = 0.0
            if key in self.gradient:
                total = total + d_self * self.gradient[key]
            if key in other.gradient:
                total = total + d_other * other.gradient[key]
            gradient[key] = total
        return Dual(value, gradient)

    def scaled(self, value, derivative):
        return Dual(value, {k: derivative * g for k, g in self.gradient.items()})

    def __add__(self, other):
        return self._combine(other, self.value + other.value, 1.0, 1.0)

    def __sub__(self, other):
        return self._combine(other, self.value - other.value, 1.0, -1.0)

    def __mul__(self, other):
        return self._combine(other, self.value * other.value, other.value, self.value)

    def __truediv__(self, other):
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(other.value != 0, self.value / other.value, np.nan)
            return self._combine(other, value, 1.0 / other.value,
                                 -self.value / other.value ** 2)

    def __neg__(self):
        return self.scaled(-self.value, -1.0)


def evaluate_node(node: Node, images: Mapping[str, np.ndarray | float]) -> Dual:
    """Evaluate on mass images (label -> array); derivatives with respect to each label."""
    if node.kind == "number":
        return Dual(node.value)
    if node.kind == "label":
        image = images[node.value]
        return Dual(image, {node.value: np.ones_like(image)})
    if node.kind == "unary":
        return -evaluate_node(node.children[0], images)
    if node.kind == "binary":
        left, right = (evaluate_node(child, images) for child in node.children)
        return {"+": Dual.__add__, "-": Dual.__sub__, "*": Dual.__mul__,
                "/": Dual.__truediv__}[node.value](left, right)
    argument = evaluate_node(node.children[0], images)
    x = argument.value
    with np.errstate(divide="ignore", invalid="ignore"):
        if node.value == "delta":
            standard = evaluate_node(node.children[1], images).value
            return argument.scaled((x / standard - 1.0) * 1000.0, 1000.0 / standard)
        if node.value == "log":
            return argument.scaled(np.where(x > 0, np.log(np.where(x > 0, x, 1)), np.nan),
                                   1.0 / x)
        if node.value == "log10":
            return argument.scaled(np.where(x > 0, np.log10(np.where(x > 0, x, 1)), np.nan),
                                   1.0 / (x * np.log(10.0)))
        if node.value == "sqrt":
            root = np.where(x >= 0, np.sqrt(np.where(x >= 0, x, 0)), np.nan)
            return argument.scaled(root, 0.5 / root)
        exponential = np.exp(x)
        return argument.scaled(exponential, exponential)
