import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from experiments.common import cli, provenance
from experiments.runner import load_results

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class _Spec:
    seed: int


def test_the_block_names_code_machine_kernels_threads_and_inputs(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    block = provenance.provenance(inputs={"specs": "sha256:x"})
    assert set(block) == {
        "commit",
        "uncommitted_changes",
        "date",
        "python_executable",
        "machine",
        "packages",
        "blas",
        "torch",
        "env",
        "strict",
        "inputs",
    }
    assert block["machine"]["cpu_model"] and block["machine"]["cpu_count"] >= 1
    assert block["machine"]["os"] and block["machine"]["python"]
    assert block["packages"]["torch"].startswith("2.13.0")
    assert block["blas"], "NumPy's BLAS is always loaded"
    for lib in block["blas"]:
        assert lib["internal_api"] and lib["version"] and lib["num_threads"] >= 1
    assert block["torch"]["cpu_capability"] and block["torch"]["num_threads"] >= 1
    assert block["torch"]["deterministic_algorithms"] is False
    assert block["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert block["env"]["ATEN_CPU_CAPABILITY"] is None
    assert set(provenance.ENV_VARS) == set(block["env"])
    assert block["inputs"] == {"specs": "sha256:x"}
    json.dumps(block)  # plain JSON


def test_cpu_model_falls_back_to_platform_without_proc_cpuinfo(monkeypatch):
    monkeypatch.setattr(provenance, "Path", lambda _: Path("/nonexistent/cpuinfo"))
    assert provenance.cpu_model()  # platform.processor() or machine()


def test_a_changed_dataset_changes_its_digest_only(monkeypatch):
    before = provenance.input_digests(("digits", "faces"))
    data = provenance.DATASETS["digits"]()
    changed = data.copy()
    changed[0, 0] += 1
    monkeypatch.setitem(provenance.DATASETS, "digits", lambda: changed)
    after = provenance.input_digests(("digits", "faces"))
    assert after["datasets"]["digits"] != before["datasets"]["digits"]
    assert after["datasets"]["faces"] == before["datasets"]["faces"]
    monkeypatch.setitem(provenance.DATASETS, "digits", lambda: data.copy())
    assert provenance.input_digests(("digits",))["datasets"] == {
        "digits": before["datasets"]["digits"]
    }


def test_array_digests_see_dtype_and_shape():
    a = np.arange(6, dtype=np.float64)
    digests = {
        provenance.array_digest(x) for x in (a, a.reshape(2, 3), a.astype(np.float32), a[::-1])
    }
    assert len(digests) == 4
    assert provenance.array_digest(a) == provenance.array_digest(a.copy())


def test_spec_digest_is_order_free_and_changes_with_any_spec():
    specs = [_Spec(1), _Spec(2)]
    records = [{"spec_id": r} for r in ("b", "a")]
    digest = provenance.input_digests(specs=specs)
    assert digest["n_specs"] == 2
    assert provenance.specs_digest(specs[::-1]) == digest["specs"]
    assert provenance.specs_digest([_Spec(1), _Spec(3)]) != digest["specs"]
    assert provenance.specs_digest(records) == provenance.specs_digest(records[::-1])
    assert provenance.specs_digest(records) != provenance.specs_digest(records[:1])
    twice = provenance.input_digests(specs=[*specs, specs[0]])
    assert twice["specs"] == digest["specs"] and twice["n_specs"] == 2


def test_config_digest_changes_with_the_config():
    one = provenance.input_digests(config=_Spec(1))["config"]
    assert one == provenance.input_digests(config=_Spec(1))["config"]
    assert one != provenance.input_digests(config=_Spec(2))["config"]


def test_unknown_datasets_are_refused_by_name():
    with pytest.raises(ValueError, match=r"datasets: unknown \['mnist'\]"):
        provenance.input_digests(("digits", "mnist"))


def test_strict_needs_every_setting(monkeypatch):
    env = dict(provenance.STRICT_ENV)
    assert provenance.is_strict(env)
    assert not provenance.is_strict({**env, "OPENBLAS_CORETYPE": "Zen"})
    env.pop("ATEN_CPU_CAPABILITY")
    assert not provenance.is_strict(env)
    for key, value in provenance.STRICT_ENV.items():
        monkeypatch.setenv(key, value)
    assert provenance.provenance()["strict"] is True


def test_finish_writes_the_provenance_block(tmp_path):
    args, out = cli.parse_pipeline_args(
        "demo", "demo", ["--quiet", "--jobs", "1", "--out", str(tmp_path)]
    )
    inputs = provenance.input_digests(specs=[_Spec(1)])
    cli.finish(args, out, {"score": 1.0}, "| a |\n", time.perf_counter(), inputs=inputs)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["score"] == 1.0 and summary["jobs"] == 1
    assert summary["provenance"]["inputs"] == inputs
    assert summary["provenance"]["strict"] is provenance.is_strict()
    assert (tmp_path / "table.md").read_text() == "| a |\n"


def test_strict_cannot_be_switched_on_inside_a_running_process(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.parse_pipeline_args("nmf", "demo", ["--strict", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "OPENBLAS_CORETYPE=Haswell" in capsys.readouterr().err
    for key, value in provenance.STRICT_ENV.items():
        monkeypatch.setenv(key, value)
    args, _ = cli.parse_pipeline_args("nmf", "demo", ["--strict", "--out", str(tmp_path)])
    assert args.strict


def _unset(monkeypatch, *keys):
    for key in keys:  # setenv first, so that monkeypatch restores the original state
        monkeypatch.setenv(key, "x")
        monkeypatch.delenv(key)


def _blas_threads():
    from threadpoolctl import threadpool_info

    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_a_study_run_directly_gets_make_s_thread_settings(tmp_path, monkeypatch):
    from threadpoolctl import threadpool_limits

    _unset(monkeypatch, *cli.RUN_ENV_DEFAULTS, *cli.THREAD_VARS)
    argv = ["--quiet", "--jobs", "1", "--out", str(tmp_path)]
    with threadpool_limits(limits=2, user_api="blas"):  # restored when the test ends
        assert _blas_threads() == {2}
        args, out = cli.parse_pipeline_args("demo", "demo", argv)
        assert {k: os.environ[k] for k in cli.RUN_ENV_DEFAULTS} == cli.RUN_ENV_DEFAULTS
        assert _blas_threads() == {1}
        block = cli.finish(args, out, {}, "", time.perf_counter())["provenance"]
        # the record says what the process started with, and what the study set for its workers
        assert block["env_filled"] == ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED"]
        assert all(block["env"][k] is None for k in cli.RUN_ENV_DEFAULTS)
        assert block["strict"] is False


def test_a_thread_setting_of_the_user_s_own_is_kept_whole(tmp_path, monkeypatch):
    from threadpoolctl import threadpool_limits

    _unset(monkeypatch, *cli.THREAD_VARS)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    argv = ["--quiet", "--jobs", "1", "--out", str(tmp_path)]
    with threadpool_limits(limits=2, user_api="blas"):
        args, out = cli.parse_pipeline_args("demo", "demo", argv)
        assert _blas_threads() == {2} and args.env_filled == []
        assert "OMP_NUM_THREADS" not in os.environ and os.environ["PYTHONHASHSEED"] == "7"
        block = cli.finish(args, out, {}, "", time.perf_counter())["provenance"]
        assert "env_filled" not in block and block["env"]["OPENBLAS_NUM_THREADS"] == "2"


def _records_without_timing(path):
    return {
        r["spec_id"]: {k: v for k, v in r["result"].items() if k != "wall_time_s"}
        for r in load_results(path)
    }


@pytest.mark.slow
def test_strict_runs_agree_whatever_kernel_the_environment_asks_for(tmp_path):
    """``--strict`` restarts the command with pinned kernels, so the parent's OpenBLAS core
    type (Prescott vs Sandybridge here; they give different numbers without ``--strict``, see
    docs/reproducibility.md) does not reach the runs."""
    outs = {}
    for coretype in ("Prescott", "Sandybridge"):
        out = outs[coretype] = tmp_path / coretype
        env = {**os.environ, "OPENBLAS_CORETYPE": coretype, "OMP_NUM_THREADS": "2"}
        subprocess.run(
            [sys.executable, "-m", "experiments.nmf", "--quick", "--quiet", "--strict"]
            + ["--stages", "schedules", "--jobs", "2", "--out", str(out)],
            check=True,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
        block = json.loads((out / "summary.json").read_text())["provenance"]
        assert block["strict"] is True
        assert block["env"]["OPENBLAS_CORETYPE"] == "Haswell"
        assert {lib["architecture"] for lib in block["blas"]} == {"Haswell"}
    a, b = outs.values()
    for name in ("tune.jsonl", "eval.jsonl", "sklearn.jsonl"):
        assert _records_without_timing(a / name) == _records_without_timing(b / name), name
