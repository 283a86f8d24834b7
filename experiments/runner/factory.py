"""Choosing a backend by name: :func:`make_backend` (what ``--jobs`` / ``--backend`` build)."""

from __future__ import annotations

import importlib
from typing import Any

from experiments.runner.backends import Backend, ProcessPoolBackend, SerialBackend, _check_jobs

BACKENDS = ("ray",)
"""Backend names :func:`make_backend` knows besides ``None`` (local) and ``"module:factory"``."""


def make_backend(name: str | None, jobs: int) -> Backend:
    """Build the backend a pipeline's command line names.

    Parameters
    ----------
    name : str or None
        ``None``: local processes, :class:`SerialBackend` for ``jobs=1`` and a warm
        :class:`ProcessPoolBackend` of ``jobs`` workers otherwise. ``"ray"``: a
        :class:`~experiments.runner.ray_backend.RayBackend` (the cluster at ``RAY_ADDRESS``
        when that is set, else a local Ray with ``jobs`` CPUs; needs the ``cluster`` extra).
        ``"module:factory"``: import ``module`` and call ``factory()`` with no arguments;
        ``factory`` is an attribute path in the module (``"pkg.backends:make_dask"``,
        ``"pkg.backends:Backends.slurm"``) and must return an object with a
        ``map_unordered(fn, items)`` method (``jobs`` is then unused: the backend decides how
        many runs go at once).
    jobs : int
        Runs at once, ``>= 1``.

    Returns
    -------
    Backend
        Pass it to :func:`~experiments.runner.run_sweep` as ``backend=`` for every sweep of the
        pipeline, then ``close()`` it (or use it in a ``with`` block); a factory's backend
        without ``close()`` needs none.

    Raises
    ------
    ValueError
        If ``jobs`` is not an int ``>= 1`` (bools are refused), or ``name`` is neither a known
        backend nor of the form ``module:factory``.
    ImportError
        If the module cannot be imported (or Ray is not installed for ``"ray"``).
    AttributeError
        If the module has no such factory.
    TypeError
        If ``name`` is not a str or None, the factory is not callable, or it does not return a
        backend.
    """
    jobs = _check_jobs(jobs)
    if name is None:
        return SerialBackend() if jobs == 1 else ProcessPoolBackend(jobs)
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a str or None, got {type(name).__qualname__}")
    if name == "ray":
        from experiments.runner.ray_backend import RayBackend

        return RayBackend(jobs)
    return _load_backend(name)


def _load_backend(target: str) -> Backend:
    """Build the backend named by ``"module:factory"``: import ``module``, call ``factory()``."""
    module_name, sep, attr_path = target.partition(":")
    if not (sep and module_name and attr_path):
        raise ValueError(f"expected 'module:factory' or one of {list(BACKENDS)}, got {target!r}")
    factory: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        factory = getattr(factory, attr)
    if not callable(factory):
        raise TypeError(f"{target} is not callable")
    backend = factory()
    if not callable(getattr(backend, "map_unordered", None)):
        raise TypeError(f"{target}() returned {backend!r}, which has no map_unordered method")
    return backend
