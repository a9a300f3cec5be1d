"""The line syntax of geometry files: a pyparsing grammar and regular-expression fast paths.

The grammar is applied line by line, so that every error can name the file, the line and the
key.  Lines, directions and ``value unit`` pairs whose only whitespace is spaces and tabs
(every real geometry file) are split by regular expressions that give the grammar's parts;
anything else goes to the grammar, built (and pyparsing imported, ~40 ms) only then.
"""

from __future__ import annotations

import functools
import re


class Grammar:
    """The pyparsing grammar (``LINE``, ``DIRECTION``, ``VALUE_UNIT``), built on first use."""

    def __init__(self) -> None:
        import pyparsing as pp

        self.ParseException = pp.ParseException
        name = pp.Regex(r"[^\s=;/]+")
        comment = pp.Regex(r";.*")
        statement = (
            pp.Optional(name("owner") + pp.Suppress("/"))
            + name("key")
            + pp.Suppress("=")
            + pp.Regex(r"[^;]*")("value")
        )
        #: One line: an optional ``[owner/]key = value`` and an optional comment.
        self.LINE = pp.Optional(pp.Group(statement)("stmt")) + pp.Optional(comment) + pp.StringEnd()
        num = pp.Regex(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
        axis = pp.one_of("x y z")
        term = pp.Group(
            pp.Optional(pp.one_of("+ -"))("sign") + pp.Optional(num)("coef") + axis("axis")
        )
        signed = pp.Group(pp.one_of("+ -")("sign") + pp.Optional(num)("coef") + axis("axis"))
        #: A direction such as ``-0.0059x +0.99998y``.
        self.DIRECTION = term + pp.ZeroOrMore(signed) + pp.StringEnd()
        #: A value with an optional unit: ``12000 eV``, ``0.075``, ``/LCLS/clen mm``.
        self.VALUE_UNIT = (
            pp.Regex(r"\S+")("value") + pp.Optional(pp.Regex(r"\S+")("unit")) + pp.StringEnd()
        )


@functools.cache
def grammar() -> Grammar:
    """The geometry grammar (pyparsing), the reference for the fast paths below."""
    return Grammar()


# Fast paths: each accepts only text whose whitespace (between the grammar's tokens) is
# spaces, and then gives exactly the grammar's parts.  Like pyparsing's parse_string they
# expand tabs first; pyparsing skips " \t\n\r" between tokens, and a line from
# splitlines() holds no \n or \r.  tests/test_geometry_fast.py checks them against the
# grammar.
FAST_LINE = re.compile(
    r" *(?:(?:(?P<owner>[^\s=;/]+) */ *)?(?P<key>[^\s=;/]+) *= *(?P<value>[^;]*))?(?:;.*)?"
)
NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
FAST_TERM = re.compile(rf" *([+-]?) *({NUM})? *([xyz])")
FAST_DIRECTION = re.compile(rf" *[+-]? *(?:{NUM})? *[xyz](?: *[+-] *(?:{NUM})? *[xyz])* *")
FAST_VALUE_UNIT = re.compile(r" *(\S+)(?: +(\S+))? *")


def split_line(line: str) -> tuple[str | None, str, str] | None:
    """``(owner, key, value)`` of a statement line, None for a blank or comment line.

    Raises ValueError when the grammar rejects the line.
    """
    line = line.expandtabs()
    m = FAST_LINE.fullmatch(line)
    if m is not None:
        key = m["key"]
        return None if key is None else (m["owner"], key, m["value"])
    return split_line_by_grammar(line)


def split_line_by_grammar(line: str) -> tuple[str | None, str, str] | None:
    """What :func:`split_line` gives, by the pyparsing grammar alone (the reference)."""
    g = grammar()
    try:
        res = g.LINE.parse_string(line, parse_all=True)
    except g.ParseException:
        raise ValueError(line) from None
    if "stmt" not in res:
        return None
    stmt = res["stmt"]
    return stmt.get("owner"), stmt["key"], stmt["value"]


def direction_terms(value: str) -> list[tuple[str | None, str | None, str]]:
    """``(sign, coef, axis)`` of each term of a direction; ValueError if it is not one."""
    value = value.expandtabs()
    if FAST_DIRECTION.fullmatch(value):
        return [(m[1] or None, m[2], m[3]) for m in FAST_TERM.finditer(value)]
    g = grammar()
    try:
        terms = g.DIRECTION.parse_string(value, parse_all=True)
    except g.ParseException:
        raise ValueError(value) from None
    return [(t.get("sign"), t.get("coef"), t["axis"]) for t in terms]


def value_unit(value: str) -> tuple[str, str | None]:
    """``value [unit]``; ValueError if it is not that."""
    value = value.expandtabs()
    m = FAST_VALUE_UNIT.fullmatch(value)
    if m is not None:
        return m[1], m[2]
    g = grammar()
    try:
        res = g.VALUE_UNIT.parse_string(value, parse_all=True)
    except g.ParseException:
        raise ValueError(value) from None
    return res["value"], res.get("unit")
