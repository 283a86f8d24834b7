"""What produced a run: code, machine, numerical kernels, threads and inputs, in one JSON block.

:func:`provenance` is written into every study's ``summary.json`` (by
:func:`experiments.common.cli.finish`) and into ``provenance.json`` of the reference results
(:mod:`experiments.reference`). When two runs disagree, comparing their blocks names what
differed: the commit, a package, the BLAS kernel (``blas[].architecture``), torch's CPU
capability, a thread count, an environment variable, or an input (:func:`input_digests`).

Strict mode (:data:`STRICT_ENV`, ``--strict``, ``make reproduce-<study> STRICT=1``) pins the
kernels and threads that vary between x86-64 machines; see ``docs/reproducibility.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "gymnasium",
    "stable-baselines3",
    "scikit-learn",
    "scikit-image",
    "matplotlib",
    "threadpoolctl",
)
"""Packages whose versions a run records."""

ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
    "NPY_DISABLE_CPU_FEATURES",
    "PYTHONHASHSEED",
)
"""Environment variables that choose numerical kernels or thread counts (unset ones are ``null``)."""

STRICT_ENV: dict[str, str] = {
    "OPENBLAS_CORETYPE": "Haswell",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
}
"""Strict mode: the AVX2 kernels of OpenBLAS (NumPy, SciPy), MKL and oneDNN (torch), torch's and
NumPy's own vector loops (no AVX-512), which every x86-64 CPU with AVX2 has, and one thread each. These variables are
read when the libraries load, so they must be in the environment before NumPy or torch is
imported (the Makefile exports them; ``--strict`` restarts the process with them)."""


def is_strict(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``environ`` (default ``os.environ``) holds every :data:`STRICT_ENV` setting."""
    environ = os.environ if environ is None else environ
    return all(environ.get(k) == v for k, v in STRICT_ENV.items())


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's name from ``/proc/cpuinfo`` ("model name"), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    """What the run ran on: CPU model, core count, OS and GPU (``None`` without one)."""
    info: dict[str, object] = {
        "cpu_model": cpu_model(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["gpu"] = None
    return info


def package_versions() -> dict[str, str]:
    """Installed version of each of :data:`PACKAGES` (``"not installed"`` when missing)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def blas() -> list[dict[str, object]]:
    """The BLAS libraries NumPy and SciPy load, from threadpoolctl.

    One entry per library: ``internal_api`` (``openblas``, ``mkl``, ...), ``version``,
    ``architecture`` (the kernel set in use, e.g. ``Haswell``; OpenBLAS picks it at load time
    from the CPU unless ``OPENBLAS_CORETYPE`` says otherwise), ``num_threads`` and ``filepath`` (whose copy: NumPy and SciPy each ship one).
    """
    import numpy  # noqa: F401  (load its BLAS)

    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        pass
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "version", "architecture", "num_threads", "filepath")
    return [
        {k: lib.get(k) for k in keys} for lib in threadpool_info() if lib.get("user_api") == "blas"
    ]


def torch_info() -> dict[str, object] | None:
    """torch's version, intra-op threads, CPU capability and deterministic flag (``None`` without torch)."""
    try:
        import torch
    except ImportError:
        return None
    return {
        "version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": torch.backends.mkl.is_available(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def array_digest(array: Any) -> str:
    """sha256 of an array's dtype, shape and bytes (``sha256:<hex>``); any array-like or ``bytes``."""
    import numpy as np

    h = hashlib.sha256()
    if isinstance(array, bytes):
        h.update(array)
    else:
        a = np.ascontiguousarray(array)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def _digits() -> Any:
    from sklearn.datasets import load_digits

    return load_digits().data


def _faces() -> Any:
    from skimage.data import lfw_subset

    return lfw_subset()


def _shakespeare() -> bytes:
    from rl_scheduler.tasks.data import load_shakespeare

    corpus = load_shakespeare()
    ids = corpus.train_ids.numpy().tobytes() + corpus.val_ids.numpy().tobytes()
    return corpus.vocab.encode() + ids


DATASETS: dict[str, Callable[[], Any]] = {
    "digits": _digits,
    "faces": _faces,
    "shakespeare": _shakespeare,
}
"""Dataset name -> loader of its raw data, as :func:`input_digests` hashes it: scikit-learn's
digits (1797 x 64), scikit-image's ``lfw_subset`` (200 x 25 x 25) and the Shakespeare corpus
(its vocabulary and the encoded training and validation streams)."""


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _spec_ids(specs: Iterable[Any]) -> list[str]:
    from experiments.runner import spec_id

    return sorted({s["spec_id"] if isinstance(s, Mapping) else spec_id(s) for s in specs})


def specs_digest(specs: Iterable[Any]) -> str:
    """sha256 of the sorted distinct spec ids of ``specs`` (spec dataclasses or records with a
    ``spec_id``): a run listed twice counts once, as in :func:`experiments.runner.run_sweep`."""
    return _ids_digest(_spec_ids(specs))


def _ids_digest(ids: list[str]) -> str:
    return _sha256("\n".join(ids).encode())


def input_digests(
    datasets: Iterable[str] = (), *, config: Any = None, specs: Iterable[Any] = ()
) -> dict[str, object]:
    """Digests of a study's inputs, so that a differing input is named rather than guessed.

    Parameters
    ----------
    datasets : iterable of str
        Names in :data:`DATASETS`; each is loaded and hashed with :func:`array_digest`.
    config : frozen dataclass, optional
        The study's configuration; hashed from its canonical JSON
        (:func:`experiments.runner.to_jsonable`).
    specs : iterable
        The runs behind the summary (spec dataclasses or their records); see :func:`specs_digest`.
        ``n_specs`` counts the distinct ones.

    Returns
    -------
    dict
        ``{"datasets": {name: digest}, "config": digest, "specs": digest, "n_specs": count}``
        (``config`` only when given).

    Raises
    ------
    ValueError
        If a dataset name is not in :data:`DATASETS`.
    """
    datasets = list(datasets)
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise ValueError(f"datasets: unknown {unknown}; known: {sorted(DATASETS)}")
    ids = _spec_ids(specs)
    out: dict[str, object] = {
        "datasets": {name: array_digest(DATASETS[name]()) for name in datasets}
    }
    if config is not None:
        from experiments.runner import to_jsonable

        text = json.dumps(to_jsonable(config), sort_keys=True)
        out["config"] = _sha256(text.encode())
    out["specs"] = _ids_digest(ids)
    out["n_specs"] = len(ids)
    return out


def provenance(*, inputs: Mapping[str, object] | None = None) -> dict[str, object]:
    """The block that says what produced a run.

    Parameters
    ----------
    inputs : mapping, optional
        The run's :func:`input_digests`.

    Returns
    -------
    dict
        ``commit``, ``uncommitted_changes``, ``date`` (UTC), ``python_executable``,
        ``machine`` (:func:`machine`), ``packages`` (:func:`package_versions`), ``blas``
        (:func:`blas`), ``torch`` (:func:`torch_info`), ``env`` (each of :data:`ENV_VARS`, or
        ``None`` when unset), ``strict`` (:func:`is_strict`) and ``inputs``.
    """
    return {
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": _git("status", "--porcelain", "--untracked-files=no") != "",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python_executable": sys.executable,
        "machine": machine(),
        "packages": package_versions(),
        "blas": blas(),
        "torch": torch_info(),
        "env": {k: os.environ.get(k) for k in ENV_VARS},
        "strict": is_strict(),
        "inputs": dict(inputs) if inputs is not None else None,
    }
