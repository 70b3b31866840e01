"""ID patterns checked on the bytes of equal-length strings answer as RE2 does, or decline."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from toolkit.guard.patterns import match_fixed_width, parse

SUPPORTED = [
    r"^P[0-9]+$", r"^[A-Z][0-9]{4}$", r"^[A-Z]\d{4}$", r"^[a-z]-\d+$", r"^P\d{2,5}$",
    r"^[A-Za-z_][A-Za-z0-9_]*$", r"^\d{3}-\d{2}-\d{4}$", r"^[ab-]x{0}[0-9]{1,}$",
    r"^S-12$", r"^[-a]{2}\.\d$", r"^[a^]+$", r"^$", r"^ [a-c] $", r"^[.]\d*$",
]  # fmt: skip
DECLINED = [
    r"P[0-9]+", r"^P[0-9]+", r"[0-9]+$", r"^.+$", r"^(ab)+$", r"^a|b$", r"^[^a]+$", r"^\w+$",
    r"^a+b+$", r"^[a-z]+-\d+$",
    r"^a+?$", r"^a{2}{3}$", r"^a{,3}$", r"^[]a]$", r"^[[:alpha:]]$", r"^é$",
    r"^a\$", r"^\s$", r"^[a\d]$", r"^a{1001}$", r"^a**$",
]  # fmt: skip


def strings(width: int, rng: np.random.Generator) -> list[str]:
    """Strings of ``width`` bytes near the patterns above: IDs, digits, dashes, and some with
    a two-byte character (one character fewer than bytes)."""
    out = ["".join(rng.choice(list("Pabcxz AZ0129-_.^"), width)) for _ in range(300)]
    out += [
        "P" + "".join(rng.choice(list("0123456789"), width - 1)) for _ in range(100 * (width > 0))
    ]
    if width >= 3:
        out += ["ab-" + "7" * (width - 3), "x" * width, "-a" + "." * (width - 2)]
        out += ["é" + s[2:] for s in out[-120:]] + [s[:-2] + "é" for s in out[:50]]
    return out


@pytest.mark.parametrize("pattern", SUPPORTED)
@pytest.mark.parametrize("width", [0, 1, 3, 4, 5, 7, 11])
def test_supported_patterns_answer_as_re2(pattern: str, width: int) -> None:
    assert parse(pattern) is not None
    rng = np.random.default_rng(width)
    values = strings(width, rng)
    for kind in (pa.string(), pa.large_string()):
        array = pa.array(["pad", *values], kind).slice(1)  # an offset into the buffers
        got = match_fixed_width(array, pattern)
        assert all(len(v.encode()) == width for v in values)
        want = pc.match_substring_regex(array, pattern).to_numpy(zero_copy_only=False)
        assert got is not None or width == 0  # no bytes to read: RE2 may answer
        assert got is None or got.tolist() == want.tolist(), pattern


@pytest.mark.parametrize("pattern", DECLINED)
def test_other_patterns_are_left_to_re2(pattern: str) -> None:
    assert parse(pattern) is None
    assert match_fixed_width(pa.array(["abcd", "P123"]), pattern) is None


def test_nulls_and_unequal_lengths_are_left_to_re2() -> None:
    assert match_fixed_width(pa.array(["P12", None, "P34"]), r"^P\d+$") is None
    assert match_fixed_width(pa.array(["P12", "P345"]), r"^P\d+$") is None
    assert match_fixed_width(pa.array(["P12", "P34"]), r"^P\d+$").tolist() == [True, True]
    ids = pa.array(["P0001", "X1234", "P00a1", "p0001"])
    assert match_fixed_width(ids, r"^[A-Z][0-9]{4}$").tolist() == [True, True, False, False]
