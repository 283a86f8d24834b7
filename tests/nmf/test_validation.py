"""The package's one input rule (nmf.validation), on its own; the entry points' tests use it."""

from fractions import Fraction

import numpy as np
import pytest

from nmf.validation import as_real_array, check_integer, check_real, is_integer, is_real

NUMBERS = [0, 1.5, -2, np.float64(0.5), np.float32(2.0), np.int8(3), np.uint64(7), Fraction(1, 3)]
NOT_NUMBERS = [True, False, np.True_, "0.1", b"1", 1 + 0j, np.complex128(1), None, [1.0]]


@pytest.mark.parametrize("value", NUMBERS)
def test_real_numbers(value):
    assert is_real(value)


@pytest.mark.parametrize("value", NOT_NUMBERS + [np.array(1.0)])
def test_not_real_numbers(value):
    assert not is_real(value) and not is_integer(value)


def test_integers_are_integral_numbers_only():
    assert all(is_integer(v) for v in (0, -3, np.int64(2), np.uint8(1)))
    assert not any(is_integer(v) for v in (1.0, np.float64(2), Fraction(2, 1), True, np.True_))


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"low": 0.0, "low_open": True}, 0.0, "x must be a finite real number > 0, got 0.0."),
        ({"low": 0.0}, np.inf, "x must be a finite real number >= 0, got inf."),
        ({"low": 0.0, "high": 1.0, "low_open": True}, 1.5, r"x must be a .* in \(0, 1\], got"),
        ({"allow_none": True, "low": 0.0}, "1", "x must be None or a finite real number >= 0"),
        ({}, True, "x must be a finite real number, got True."),
    ],
)
def test_check_real_says_what_is_allowed(kwargs, value, message):
    with pytest.raises(ValueError, match=message):
        check_real("x", value, **kwargs)


def test_check_real_and_check_integer_accept_what_they_allow():
    check_real("x", None, allow_none=True)
    check_real("x", np.float32(0.5), low=0.0, high=1.0, low_open=True, high_open=True)
    check_integer("n", np.int64(5), low=1, high=5)
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 4\], got 5."):
        check_integer("n", 5, low=1, high=4)
    with pytest.raises(ValueError, match="n must be None or an integer >= 0, got 1.0."):
        check_integer("n", 1.0, low=0, allow_none=True)


def test_as_real_array_converts_numbers_only():
    ints = np.arange(4).reshape(2, 2)
    assert as_real_array("X", ints).dtype == np.float64
    X = np.ones((2, 2))
    assert as_real_array("X", X, copy=False) is X and as_real_array("X", X) is not X
    assert np.array_equal(as_real_array("X", [[1, 2.5]]), [[1.0, 2.5]])
    for bad, what in [
        ([["1"]], "strings"),
        ([[True]], "booleans"),
        ([[1j]], "complex numbers"),
        (np.array([[1.0]], dtype=object), "Python objects"),
        ([[1.0], [2.0, 3.0]], "inhomogeneous"),
    ]:
        with pytest.raises(ValueError, match=f"X must be an array of real numbers .*{what}"):
            as_real_array("X", bad)
