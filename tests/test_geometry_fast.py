"""The geometry parser's regular-expression fast paths against its pyparsing grammar.

The fast paths must give exactly the grammar's parts wherever they accept a text (and the
grammar decides everything else), and real geometry files must never need the grammar, so
that a run does not import pyparsing.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from streamfilter.geometry import GeometryError, parse_geometry, syntax
from streamfilter.geometry.syntax import grammar
from streamfilter.synth import SynthConfig, geometry_text

REPO = Path(__file__).resolve().parent.parent
BEGIN_GEOM = "----- Begin geometry file -----"
END_GEOM = "----- End geometry file -----"

# Characters that matter to the grammar, whitespace pyparsing does and does not skip, and
# characters a number may hold.
ALPHABET = [" ", "  ", "\t", "\xa0", "\x1f", "\u3000", "/", "=", ";", "a", "p0", "bad_1",
            "x", "y", "z", "+", "-", "1", "25", ".", "e", "E", "mm", "eV", "#"]  # fmt: skip


def random_texts(seed: int, n: int, max_len: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(ALPHABET, k=rng.randint(0, max_len))) for _ in range(n)]


def grammar_line(line: str):
    """(owner, key, value) or None by the grammar alone; ValueError if it rejects the line."""
    return syntax.split_line_by_grammar(line.expandtabs())


def grammar_direction(value: str):
    g = grammar()
    terms = g.DIRECTION.parse_string(value, parse_all=True)
    return [(t.get("sign"), t.get("coef"), t["axis"]) for t in terms]


def grammar_value_unit(value: str):
    g = grammar()
    res = g.VALUE_UNIT.parse_string(value, parse_all=True)
    return res["value"], res.get("unit")


STATEMENTS = [
    "p0/min_fs = 0", "  p0 / corner_x=-250.3 ; comment", "clen = 0.1", "; only a comment",
    "", "   ", "\t", "data = /entry/data/data", "p0/fs = +1.000000x +0.000000y",
    "bad_beamstop/min_x = -10", "key = a = b", "key =", "a b = c", "p0/x/y = 1", "=1",
    "photon_energy = 9500 eV", "p0/dim0 = %", "k\t=\tv\t;\tc", "rigid_group_a = p0,\tp1",
]  # fmt: skip
DIRECTIONS = [
    "x", "-y", "+z", "0.5x+0.5y", "-0.0059x +0.99998y", "1e-3x - 2E+2y", " 1x -  y ", ".5x",
    "x y", "1x2y", "xx", "1ex", "1e+x", "+", "", "2", "x +", "- 0.5 x", "1.x", "x\t-y",
]  # fmt: skip
VALUE_UNITS = ["12000 eV", "0.075", "/LCLS/clen mm", " a  b ", "a b c", "", "a\tb", "a\xa0b"]


def structured_lines(seed: int, n: int) -> list[str]:
    """Random ``[owner/]key = value ; comment`` lines with random whitespace around tokens."""
    rng = random.Random(seed)
    ws = [" ", "", "  ", "\t", "\xa0", "\x1f", " \t"]
    out = []
    for _ in range(n):
        parts = [rng.choice(ws)]
        if rng.random() < 0.5:
            parts += [rng.choice(["p0", "q_1", "bad0", "a b"]), rng.choice(ws), "/"]
            parts.append(rng.choice(ws))
        parts += [rng.choice(["min_fs", "fs", "clen", "k=", ""]), rng.choice(ws), "="]
        parts += [rng.choice(ws), rng.choice(["0", "+1.0x -y", "/a/b mm", "", "v\xa0w"])]
        if rng.random() < 0.5:
            parts += [rng.choice(ws), ";", rng.choice(["", " c", "; c"])]
        parts.append(rng.choice(ws))
        out.append("".join(parts))
    return out


def test_line_fast_path_agrees_with_grammar() -> None:
    lines = STATEMENTS + random_texts(1, 2000, 9) + structured_lines(4, 2000)
    fast = 0
    for line in lines:
        m = syntax.FAST_LINE.fullmatch(line.expandtabs())
        try:
            want = grammar_line(line)
        except ValueError:
            assert m is None, line  # the fast path never accepts what the grammar rejects
            with pytest.raises(ValueError):
                syntax.split_line(line)
            continue
        assert syntax.split_line(line) == want, line
        if m is not None:
            fast += 1
            got = None if m["key"] is None else (m["owner"], m["key"], m["value"])
            assert got == want, line
    assert fast > 1000  # the comparison covered the fast path


def structured_directions(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    ws = [" ", "", "  ", "\t", "\xa0"]
    out = []
    for _ in range(n):
        terms = []
        for i in range(rng.randint(1, 3)):
            sign = rng.choice(["+", "-"] + ([""] if i == 0 or rng.random() < 0.1 else []))
            coef = rng.choice(["", "1", "0.5", "1e-3", ".5", "2E+2", "1.", "12abc"])
            terms.append(rng.choice(ws) + sign + rng.choice(ws) + coef + rng.choice(ws))
            terms[-1] += rng.choice("xyzw" if rng.random() < 0.1 else "xyz")
        out.append("".join(terms) + rng.choice(ws))
    return out


def test_direction_fast_path_agrees_with_grammar() -> None:
    fast = 0
    for value in DIRECTIONS + random_texts(2, 2000, 7) + structured_directions(5, 2000):
        try:
            want = grammar_direction(value)
        except grammar().ParseException:
            assert not syntax.FAST_DIRECTION.fullmatch(value.expandtabs()), value
            with pytest.raises(ValueError):
                syntax.direction_terms(value)
            continue
        fast += bool(syntax.FAST_DIRECTION.fullmatch(value.expandtabs()))
        got = syntax.direction_terms(value)
        assert [(s or None, c, a) for s, c, a in got] == [(s or None, c, a) for s, c, a in want]
    assert fast > 300


def test_value_unit_fast_path_agrees_with_grammar() -> None:
    fast = 0
    for value in VALUE_UNITS + random_texts(3, 1000, 5):
        try:
            want = grammar_value_unit(value)
        except grammar().ParseException:
            assert not syntax.FAST_VALUE_UNIT.fullmatch(value.expandtabs()), value
            with pytest.raises(ValueError):
                syntax.value_unit(value)
            continue
        fast += bool(syntax.FAST_VALUE_UNIT.fullmatch(value.expandtabs()))
        assert syntax.value_unit(value) == want, value
    assert fast > 100


def real_geometries() -> list[str]:
    texts = [(REPO / "stream_files" / "example.geom").read_text(), geometry_text(SynthConfig())]
    ref = REPO.parent / "shared" / "data" / "ref-small"
    if ref.is_dir():
        texts += [p.read_text() for p in sorted(ref.glob("*.geom"))]
        for stream in sorted(ref.glob("*.stream")):
            text = stream.read_text()
            texts.append(text[text.index(BEGIN_GEOM) + len(BEGIN_GEOM) : text.index(END_GEOM)])
    return texts


def test_real_geometries_take_the_fast_paths() -> None:
    """Every line, direction and value-with-unit of the bundled, synthetic and ref-small
    geometries is split by the fast paths (no pyparsing at run time)."""
    n = 0
    for text in real_geometries():
        for line in text.splitlines():
            m = syntax.FAST_LINE.fullmatch(line.expandtabs())
            assert m is not None, line
            if m["key"] in ("fs", "ss"):
                assert syntax.FAST_DIRECTION.fullmatch(m["value"].strip()), line
            if m["key"] in ("clen", "photon_energy", "wavelength", "detector_shift_x"):
                assert syntax.FAST_VALUE_UNIT.fullmatch(m["value"].strip()), line
            n += 1
    assert n > 50  # the bundled and synthetic geometries alone (ref-small adds more)


def test_parse_does_not_import_pyparsing() -> None:
    text = (REPO / "stream_files" / "example.geom").read_text()
    code = (
        "import sys; from streamfilter.geometry import parse_geometry; "
        f"d = parse_geometry({text!r}); print(len(d.panels), 'pyparsing' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()  # fmt: skip
    assert out[1] == "False" and int(out[0]) > 0
    # an unusual line (a no-break space between tokens) still parses, through the grammar
    odd = text.replace("clen = ", "clen\xa0= ", 1) if "clen = " in text else None
    if odd is not None:
        with pytest.raises(GeometryError, match="cannot parse"):
            parse_geometry(odd)


def test_same_detector_as_the_grammar(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the fast paths switched off (everything through pyparsing) the Detectors are
    equal."""
    fast = [parse_geometry(t) for t in real_geometries()]

    class Never:
        @staticmethod
        def fullmatch(_text: str) -> None:
            return None

    for name in ("FAST_LINE", "FAST_DIRECTION", "FAST_VALUE_UNIT"):
        monkeypatch.setattr(syntax, name, Never)
    slow = [parse_geometry(t) for t in real_geometries()]
    assert fast == slow
