"""Run specs: their JSON form, their stable ids (:func:`spec_id`), and grids of them (:func:`grid`).

A run spec is a frozen dataclass of JSON-serialisable fields that describes one run.

JSON encoding
-------------
Specs and results are converted to plain JSON before they are written: NumPy scalars become
Python numbers, arrays (and anything else with a ``tolist()`` method, e.g. torch tensors)
become nested lists, tuples become lists, nested dataclasses become dicts, ``os.PathLike``
becomes ``str`` and integer dict keys become strings. Non-finite floats, which a diverging
training run produces routinely, are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``: the lines stay strict JSON (``json.loads`` and other languages' parsers read
them) while NaN and the two infinities stay distinguishable; ``float(s)`` and
``numpy.asarray(..., dtype=float)`` turn them back into numbers. Anything else raises
``TypeError`` (for a spec) or is recorded as a failed run (for a result).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

S = TypeVar("S")

SPEC_ID_LENGTH = 16
"""Hex digits kept from the SHA-256 digest (64 bits: collisions are negligible for sweeps)."""


def _encode_float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def to_jsonable(obj: Any, where: str = "value") -> Any:
    """Return ``obj`` as plain JSON data (see "JSON encoding" in the module docstring).

    Raises
    ------
    TypeError
        If ``obj`` holds something with no JSON form; the message says where.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _encode_float(float(obj))
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item(), where)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), where)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
                key = str(int(key))
            elif not isinstance(key, str):
                raise TypeError(
                    f"{where}: dict keys must be str or int, got {type(key).__qualname__}"
                )
            out[str(key)] = to_jsonable(value, f"{where}[{key!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(obj)
        }
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return to_jsonable(tolist(), where)
    raise TypeError(f"{where}: {type(obj).__qualname__} is not JSON-serialisable")


def _check_spec_instance(spec: Any, name: str) -> None:
    if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
        raise TypeError(f"{name} must be a dataclass instance, got {type(spec).__qualname__}")


def _spec_type(spec: Any) -> str:
    """``"<module>.<qualname>"`` of the spec's class, the same however the module was started.

    A module run as ``python -m pkg.mod`` is named ``__main__`` (``__mp_main__`` in a spawned
    worker); its import name is kept in ``__spec__.name``, so a spec class defined there gets
    the same type, and thus the same ids, as when ``pkg.mod`` is imported. A plain script
    (``python script.py``) has no import name and stays ``__main__``. A class attribute
    ``SPEC_TYPE`` (a ``ClassVar[str]``, not a field) pins the type, so that moving or renaming
    the class keeps its ids and a results folder still resumes.
    """
    cls = type(spec)
    pinned = getattr(cls, "SPEC_TYPE", None)
    if pinned is not None:
        return str(pinned)
    module = _main_import_name(cls.__module__) or cls.__module__
    return f"{module}.{cls.__qualname__}"


def _main_import_name(module: str | None) -> str | None:
    """The import name of a module run as main (``python -m pkg.mod``: ``"pkg.mod"``), else None.

    ``None`` too for any other module and for a plain script, which has no import name.
    """
    if module not in ("__main__", "__mp_main__"):
        return None
    module_spec = getattr(sys.modules.get(module), "__spec__", None)
    return module_spec.name if module_spec is not None and module_spec.name else None


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """Return the JSON form of a run spec: ``{field name: JSON value}``.

    Parameters
    ----------
    spec : dataclass instance
        The run spec. Its fields must be JSON-serialisable (numbers, strings, bools, ``None``,
        tuples/lists, dicts with str keys, nested dataclasses, NumPy scalars/arrays).

    Returns
    -------
    dict
        Plain JSON data, field order as declared (see "JSON encoding" in the module docstring).

    Raises
    ------
    TypeError
        If ``spec`` is not a dataclass instance or a field has no JSON form.
    """
    _check_spec_instance(spec, "spec")
    return {
        f.name: to_jsonable(getattr(spec, f.name), f"{type(spec).__qualname__}.{f.name}")
        for f in dataclasses.fields(spec)
    }


ADDED_FIELD = "experiments.runner.added_field"
"""Metadata key of a field added to a spec class after runs of it exist (:func:`added_field`)."""


def added_field(default: Any) -> Any:
    """A dataclass field added to an existing spec class without changing existing ids.

    While such a field holds its default it is left out of :func:`spec_id` (it is still written
    with the spec), so the runs recorded before the field existed keep their ids and a resumed
    sweep reuses them; any other value gives a new id. ``default`` must be immutable (a tuple,
    number, string or ``None``).
    """
    return dataclasses.field(default=default, metadata={ADDED_FIELD: True})


def _id_fields(spec: Any) -> dict[str, Any]:
    fields = spec_to_dict(spec)
    for f in dataclasses.fields(spec):
        if f.metadata.get(ADDED_FIELD) and getattr(spec, f.name) == f.default:
            del fields[f.name]
    return fields


def _spec_id_from(spec_type: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"type": spec_type, "fields": fields},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:SPEC_ID_LENGTH]


def spec_id(spec: Any) -> str:
    """Return the stable short id of a run spec.

    The id is the first :data:`SPEC_ID_LENGTH` hex digits of the SHA-256 of the canonical JSON
    (sorted keys, no whitespace) of ``{"type": "<module>.<qualname>", "fields":
    spec_to_dict(spec)}``. It depends on nothing else: not the process, not
    ``PYTHONHASHSEED``, not the machine, nor whether the spec class's module was imported or
    run with ``python -m`` (its import name is used either way). Equal specs share an id; specs
    of different classes with equal fields do not. NumPy scalars hash like the equal Python
    numbers, but ``1`` and ``1.0`` are different values (as they are in JSON). Renaming or moving
    the spec class (unless it pins ``SPEC_TYPE``), or adding a field, changes the ids (and so reruns
    the sweep) unless the field is declared with :func:`added_field`; define spec classes in
    importable modules, not in a script run as ``python script.py``.

    Parameters
    ----------
    spec : dataclass instance
        The run spec.

    Returns
    -------
    str
        Lower-case hex string of length :data:`SPEC_ID_LENGTH`.
    """
    return _spec_id_from(_spec_type(spec), _id_fields(spec))


def _is_axis(value: Any) -> bool:
    return isinstance(value, (list, range, np.ndarray))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def grid(cls: type[S], /, **axes: Any) -> list[S]:
    """Build the cartesian product of run specs.

    Parameters
    ----------
    cls : dataclass type
        The run spec class.
    **axes
        Field values. A ``list``, ``range`` or 1-D ``numpy.ndarray`` is an axis to sweep; any
        other value (a scalar, a string, a tuple, ...) is held fixed. To sweep a tuple-valued
        field, pass a list of tuples. NumPy scalars are converted to Python scalars. Fields not
        named keep their defaults.

    Returns
    -------
    list
        One ``cls`` instance per combination, in :func:`itertools.product` order (the last axis
        varies fastest). An empty axis gives an empty list.

    Raises
    ------
    TypeError
        If ``cls`` is not a dataclass type or an axis names no init field of it.
    ValueError
        If an array axis is not 1-D.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Spec:
    ...     schedule: str
    ...     seed: int
    ...     dataset: str = "synthetic"
    >>> grid(Spec, schedule=["cosine", "step"], seed=[0, 1], dataset="digits")  # doctest: +ELLIPSIS
    [Spec(schedule='cosine', seed=0, dataset='digits'), Spec(schedule='cosine', seed=1, ...), ...]
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"cls must be a dataclass type, got {cls!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [name for name in axes if name not in names]
    if unknown:
        raise TypeError(
            f"grid() got unknown field(s) {unknown} for {cls.__qualname__}; its fields are {names}"
        )
    values = []
    for name, value in axes.items():
        if isinstance(value, np.ndarray) and value.ndim != 1:
            raise ValueError(f"axis {name!r} must be 1-D, got an array of shape {value.shape}")
        values.append([_plain(v) for v in value] if _is_axis(value) else [_plain(value)])
    return [cls(**dict(zip(axes, combo, strict=True))) for combo in itertools.product(*values)]
