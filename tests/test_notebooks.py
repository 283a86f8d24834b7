"""The notebooks in notebooks/ run from top to bottom, and are committed without outputs.

Every notebook is executed with nbclient on a kernel of the interpreter running the tests, in its
quick mode (``NOTEBOOK_QUICK=1``), with a wall-clock budget per notebook:

* ``saved``: with the repository's ``results/`` as they are (``results/reference/`` when
  committed), so the code that reads saved results runs against real pipeline outputs;
* ``computed``: with ``NOTEBOOK_RESULTS=none``, so every notebook computes its small in-notebook
  version of each study. Skipped when no saved results exist, as ``saved`` then computes anyway.

Run one notebook by hand the same way with ``python tests/test_notebooks.py notebooks/<name>``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

NOTEBOOK_BUDGET_S = 180
"""Wall-clock budget of one notebook, kernel start excluded. Each takes well under a minute on one
idle core in quick mode; the margin absorbs a loaded CI machine."""

SAVED_RESULTS = {
    "01_nmf_stability_and_learned_schedule.ipynb": ("nmf", "nmf-quick", "nmf/rl", "nmf-quick/rl"),
    "02_rl_schedules_for_dnns.ipynb": ("dnn", "dnn-gpu", "dnn-quick"),
    "03_greedylr.ipynb": ("greedylr", "greedylr-quick"),
}
"""Result folders (under results/ and results/reference/) each notebook reads when present."""


def _has_saved_results(name: str, results: Path = ROOT / "results") -> bool:
    folders = SAVED_RESULTS.get(name, ())
    return any(
        (base / folder / "summary.json").is_file()
        for folder in folders
        for base in (results / "reference", results)
    )


def _kernel_env(tmp: Path, *, computed: bool) -> dict[str, str]:
    """Environment of the kernel: quick mode, one thread, this interpreter's kernelspec."""
    spec_dir = tmp / "jupyter" / "kernels" / "repo-python"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "repository interpreter",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    env = {
        "NOTEBOOK_QUICK": "1",
        "JUPYTER_PATH": str(tmp / "jupyter"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "MPLCONFIGDIR": str(tmp / "mpl"),
    }
    if computed:
        env["NOTEBOOK_RESULTS"] = "none"
    return env


def execute_notebook(path: Path, tmp: Path, *, computed: bool = False) -> tuple[object, float]:
    """Run every cell of ``path`` (raises ``CellExecutionError`` on the first failing cell)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = _kernel_env(tmp, computed=computed)
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel process inherits this environment
    start = time.monotonic()
    deadline = start + NOTEBOOK_BUDGET_S
    try:
        client = NotebookClient(
            nb,
            kernel_name="repo-python",
            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
            startup_timeout=120,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nb, time.monotonic() - start


@pytest.mark.slow
@pytest.mark.parametrize("source", ["saved", "computed"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, source, tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    if source == "computed" and not _has_saved_results(path.name):
        pytest.skip("no saved results: the 'saved' run already computed everything")
    _, elapsed = execute_notebook(path, tmp_path, computed=source == "computed")
    print(f"{path.name} ({source}): {elapsed:.1f} s")


def test_every_paper_has_a_notebook():
    assert [p.name for p in NOTEBOOKS] == sorted(SAVED_RESULTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook without code"
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, (
        f"code cells {dirty} of {path.name} carry outputs or execution counts; clear them "
        "(e.g. jupyter nbconvert --clear-output --inplace) before committing"
    )
    assert not nb["metadata"].get("widgets"), "widget state is an output too"


if __name__ == "__main__":
    # python tests/test_notebooks.py NOTEBOOK... [--computed] [--save=DIR (executed copies)]
    import tempfile

    import nbformat

    options = dict(a[2:].partition("=")[::2] for a in sys.argv[1:] if a.startswith("--"))
    with tempfile.TemporaryDirectory() as tmp:
        for arg in [a for a in sys.argv[1:] if not a.startswith("--")]:
            nb, seconds = execute_notebook(
                Path(arg).resolve(), Path(tmp), computed="computed" in options
            )
            print(f"{arg}: {seconds:.1f} s")
            if options.get("save"):
                nbformat.write(nb, Path(options["save"]) / Path(arg).name)
