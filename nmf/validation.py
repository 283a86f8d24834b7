"""The one input rule of the ``nmf`` package: what counts as a number, an integer and real data.

* A *number* is a real number: a Python ``int`` or ``float`` (any :class:`numbers.Real`) or a
  numpy integer or floating scalar. ``bool`` and ``numpy.bool_`` are not numbers, numeric strings
  are not numbers and complex values are rejected; nothing is converted silently.
* An *integer* is a number that is an :class:`numbers.Integral` (Python or numpy), not a bool.
* *Real data* is an array-like whose entries are integers or floats: a list of numbers or an
  array of an integer or floating dtype. Boolean, string, object and complex arrays are rejected.

Every public entry point of the package checks its inputs with the helpers below, so every error
names the parameter and says what is allowed.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

_DTYPE_KINDS = {
    "b": "booleans",
    "c": "complex numbers",
    "O": "Python objects",
    "U": "strings",
    "S": "bytes",
    "M": "datetimes",
    "m": "timedeltas",
    "V": "raw records",
}


def is_real(value: object) -> bool:
    """Whether ``value`` is a real number (Python or numpy int or float, not a bool)."""
    if type(value) is float or type(value) is int:  # fast path (type(True) is bool)
        return True
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def is_integer(value: object) -> bool:
    """Whether ``value`` is an integer (Python or numpy, not a bool)."""
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if high == math.inf:
        return "" if low == -math.inf else f" {'>' if low_open else '>='} {low:g}"
    if low == -math.inf:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_real(
    name: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> None:
    """Require a finite real number in the interval from ``low`` to ``high``.

    Parameters
    ----------
    name : str
        The parameter's name, used in the error message.
    value : object
        The value to check.
    low, high : float
        Ends of the allowed interval (default: the whole real line).
    low_open, high_open : bool
        Whether the corresponding end is excluded.
    allow_none : bool
        Whether ``None`` is allowed too.

    Raises
    ------
    ValueError
        Naming ``name``, the allowed values and the value found.
    """
    if value is None and allow_none:
        return
    ok = is_real(value) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        allowed = "a finite real number" + _interval(low, high, low_open, high_open)
        raise ValueError(
            f"{name} must be {'None or ' if allow_none else ''}{allowed}, got {value!r}."
        )


def check_integer(
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
) -> None:
    """Require an integer (not a bool) in ``[low, high]`` (either end may be ``None``: open).

    Raises
    ------
    ValueError
        Naming ``name``, the allowed values and the value found.
    """
    if value is None and allow_none:
        return
    ok = is_integer(value)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        if low is not None and high is not None:
            allowed = f"an integer in [{low}, {high}]"
        elif low is not None:
            allowed = f"an integer >= {low}"
        else:
            allowed = "an integer" if high is None else f"an integer <= {high}"
        raise ValueError(
            f"{name} must be {'None or ' if allow_none else ''}{allowed}, got {value!r}."
        )


def check_seed(seed: object, name: str = "seed") -> None:
    """Seeds are ``None`` (fresh entropy) or an integer >= 0 (Python or numpy integer, not bool)."""
    check_integer(name, seed, low=0, allow_none=True)


def as_real_array(name: str, X: ArrayLike, *, copy: bool = True) -> Array:
    """``X`` as a float64 array, or a ``ValueError`` naming ``name`` if it is not real data.

    Parameters
    ----------
    name : str
        The parameter's name, used in the error message.
    X : array-like
        Integers or floats: a (nested) list of numbers or an array of an integer or floating
        dtype. Booleans, strings, objects and complex numbers are rejected, not converted; so are
        masked arrays with masked entries.
    copy : bool, default True
        Always return a new array; with ``False`` a float64 ndarray is returned as it is.
    """
    if type(X) is np.ndarray and X.dtype.kind in "iuf":  # fast path: nothing to check
        return X.astype(np.float64, copy=copy)
    if isinstance(X, np.ma.MaskedArray) and np.ma.is_masked(X):
        raise ValueError(f"{name} has masked entries; fill them first (e.g. {name}.filled(0)).")
    try:
        A = np.asarray(X)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise ValueError(f"{name} must be an array of real numbers ({err}).") from None
    kind = A.dtype.kind
    if kind not in "iuf":
        what = _DTYPE_KINDS.get(kind, "entries")
        raise ValueError(
            f"{name} must be an array of real numbers (integers or floats), "
            f"got {what} (dtype {A.dtype})."
        )
    return A.astype(np.float64, copy=copy)
