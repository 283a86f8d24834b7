"""Run sweeps: map a run function over frozen run specs, in parallel, with resume.

Every pipeline (NMF schedule comparisons, RL evaluations, the GreedyLR study) describes one run
as a *run spec*, a frozen dataclass of JSON-serialisable fields, and does the run in a plain
top-level function ``run_fn(spec) -> dict``. :func:`run_sweep` maps that function over a list of
specs (usually built with :func:`grid`) and appends one JSON line per finished run to a results
file; tables and figures are then drawn from :func:`load_results`.

The package's modules: :mod:`~experiments.runner.specs` (JSON form, ids, grids),
:mod:`~experiments.runner.results` (the results file), :mod:`~experiments.runner.backends`
(where runs execute; :func:`make_backend` builds the one a command line names),
:mod:`~experiments.runner.ray_backend` (Ray, imported only when asked for) and
:mod:`~experiments.runner.sweep` (:func:`run_sweep`).

Examples
--------
>>> from experiments.nmf import NMFRunSpec, run_nmf  # doctest: +SKIP
>>> specs = grid(NMFRunSpec, schedule=["cosine", "step"], seed=[0, 1, 2])  # doctest: +SKIP
>>> records = run_sweep(run_nmf, specs, "results/nmf_schedules.jsonl", jobs=4)  # doctest: +SKIP
>>> ok = load_results("results/nmf_schedules.jsonl")  # doctest: +SKIP

A pipeline with several sweeps shares one backend, so a pool's workers stay warm:

>>> with make_backend(None, jobs=4) as backend:  # doctest: +SKIP
...     run_sweep(run_nmf, specs, "results/a.jsonl", backend=backend)
...     run_sweep(run_nmf, specs, "results/b.jsonl", backend=backend)
"""

from experiments.runner.backends import (
    Backend,
    ProcessPoolBackend,
    SerialBackend,
    WorkerDied,
)
from experiments.runner.factory import make_backend
from experiments.runner.results import (
    Record,
    load_results,
    write_json_atomic,
    write_text_atomic,
)
from experiments.runner.specs import (
    SPEC_ID_LENGTH,
    added_field,
    grid,
    spec_id,
    spec_to_dict,
    to_jsonable,
)
from experiments.runner.sweep import run_sweep

__all__ = [
    "SPEC_ID_LENGTH",
    "Backend",
    "ProcessPoolBackend",
    "Record",
    "SerialBackend",
    "WorkerDied",
    "added_field",
    "grid",
    "load_results",
    "make_backend",
    "run_sweep",
    "spec_id",
    "spec_to_dict",
    "to_jsonable",
    "write_json_atomic",
    "write_text_atomic",
]
