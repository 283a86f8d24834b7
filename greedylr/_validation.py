"""Small argument checkers shared by the scheduler and the baselines.

Every checker names the parameter and the allowed values in its message, in the style of
``torch.optim`` and scikit-learn. They accept numpy scalars (``numbers.Real``/``Integral``) and
reject ``bool`` where a number is expected, because ``True`` silently meaning ``1`` is a bug magnet.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

__all__ = [
    "check_choice",
    "check_int",
    "check_real",
    "check_bool",
    "per_group",
    "real_scalar",
    "reals",
]


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``float(value)`` after checking it is a real number inside the given interval."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number in {interval}, got {value!r}.")
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}.")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")
    if high is not None and (out > high or (high_open and out == high)):
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")
    return out


def check_int(name: str, value: Any, *, low: int = 0) -> int:
    """Return ``int(value)`` after checking it is an integer ``>= low`` (bools are rejected)."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}.")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is a genuine ``bool``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Check that ``value`` is one of the ``allowed`` strings."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {options}; got {value!r}.")
    return value


def real_scalar(name: str, value: Any) -> float:
    """Return a real number, or the one element of a tensor or array, as a float.

    NaN and infinities pass (callers decide what they mean); bools (``True``, ``numpy.bool_``, a
    bool tensor), strings and anything with more than one element raise ``TypeError``.
    """
    item = value
    if not _is_real(value) and hasattr(value, "item") and not isinstance(value, str | bytes):
        try:  # numpy and torch scalars, 0-d and one-element arrays and tensors
            item = value.item()
        except (TypeError, ValueError, RuntimeError):
            pass
    if not _is_real(item):
        described = reprlib.repr(value) if not hasattr(value, "shape") else type(value).__name__
        raise TypeError(
            f"{name} must be a real number or a one-element tensor (bools and strings are not "
            f"numbers); got {described}."
        )
    return float(item)


def reals(name: str, value: Any, *, allow_inf: bool = False) -> float | list[float]:
    """A non-negative real, or a list of them from a list, tuple or 1-D array-like.

    A sequence is a list or tuple, or a 1-D array-like with ``tolist()`` (numpy array, tensor);
    0-d arrays and tensors count as scalars.
    """
    ndim = getattr(value, "ndim", None)
    if ndim is not None and hasattr(value, "tolist"):  # numpy array or scalar, torch tensor
        if ndim > 1:
            raise ValueError(
                f"{name} must be a number or a list/tuple of numbers; got a {ndim}-D array."
            )
        value = value.tolist()
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [
            check_real(f"{name}[{i}]", v, low=0.0, allow_inf=allow_inf) for i, v in enumerate(value)
        ]
    if not _is_real(value):
        raise TypeError(f"{name} must be a number or a list/tuple of numbers; got {value!r}.")
    return check_real(name, value, low=0.0, allow_inf=allow_inf)


def per_group(
    name: str,
    value: Any,
    n_groups: int,
    *,
    allow_inf: bool = False,
) -> list[float]:
    """Expand a scalar or a per-group sequence of non-negative reals (see :func:`reals`) to a
    list of ``n_groups`` floats."""
    expected = f"{name} must be a number or a list/tuple of numbers (one per param group)"
    out = reals(name, value, allow_inf=allow_inf)
    if not isinstance(out, list):
        return [out] * n_groups
    if len(out) != n_groups:
        raise ValueError(f"{expected}; got {len(out)} entries for {n_groups} param group(s).")
    return out
