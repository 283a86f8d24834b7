import json
import math
from dataclasses import asdict, replace
from types import SimpleNamespace

import pytest

from experiments.nmf import shapes
from experiments.nmf.config import RL_QUICK, cell_name
from nmf.schedules import Cosine


def _rates(schedule, bounds):
    out = []
    for t, b in enumerate(bounds):
        schedule.observe(SimpleNamespace(bound=b))
        out.append(schedule(t))
    return out


def test_bound_shape_closed_form():
    bounds = [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    flat = shapes.BoundShape(0.5, "flat", 0.0, n_decisions=3, steps_per_decision=2)
    # the bound of each decision's first step, held for the decision
    assert _rates(flat, bounds) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    cos = shapes.BoundShape(1.5, "cosine", 0.0, n_decisions=3, steps_per_decision=2)
    expected = [1.5 * bounds[2 * k] * Cosine(1.0, 3)(k) for k in range(3)]
    assert _rates(cos, bounds)[::2] == pytest.approx(expected, rel=1e-15)
    floored = shapes.BoundShape(1.0, "cosine", 0.4, n_decisions=3, steps_per_decision=2)
    got = _rates(floored, bounds)[::2]
    assert got == pytest.approx([bounds[2 * k] * max(Cosine(1.0, 3)(k), 0.4) for k in range(3)])
    assert got[2] == pytest.approx(0.4 * bounds[4])  # cos = 0.25 at k = 2 of 3: the floor
    with pytest.raises(ValueError, match="shape must be"):
        shapes.BoundShape(1.0, "linear", 0.0, 3, 2)
    unseen = shapes.BoundShape(1.0, "flat", 0.0, 3, 2)
    with pytest.raises(RuntimeError, match="bound"):
        unseen(0)  # no bound observed


def test_designs_cover_every_scale_and_shape():
    ds = shapes.designs()
    assert len(ds) == len(shapes.SCALES) * len(shapes.SHAPES) == len(set(ds))
    assert shapes.label((0.5, "cosine", 0.1)) == "0.5 x bound, cosine (floor 0.1)"


def _fake_eval(path, config, error_of):
    with open(path, "w") as f:
        for inst in config.instances("test"):
            for name in ("step", "cosine", "constant"):
                rec = {
                    "spec": {
                        "instance": asdict(inst),
                        "schedule": name,
                        "n_steps": config.n_steps,
                        "clip": config.clip,
                    },
                    "status": "ok",
                    "result": {"final_rel_error": error_of(inst, name)},
                }
                f.write(json.dumps(rec) + "\n")


def test_win_shares_and_the_per_cell_oracle_on_a_quick_study(tmp_path):
    config = RL_QUICK
    cells = sorted({cell_name(i) for i in config.instances("test")})
    easy = cells[0]
    # tuned schedules that every design beats on the first cell and none beats elsewhere
    (tmp_path / "rl").mkdir()
    _fake_eval(
        tmp_path / "rl" / "eval.jsonl",
        config,
        lambda inst, name: math.inf if cell_name(inst) == easy else 0.0,
    )
    result = shapes.main(["--quick", "--build", str(tmp_path)])
    assert (tmp_path / "rl" / "shapes.md").read_text().startswith("# Fixed bound-relative")
    assert json.loads((tmp_path / "rl" / "shapes.json").read_text())["n_instances"] == 12
    for row in result["rows"]:
        for name in shapes.AGAINST:
            assert row["per_cell"][easy][name] == 1.0
            assert all(row["per_cell"][c][name] == 0.0 for c in cells if c != easy)
            assert row["win_share"][name] == pytest.approx(1 / len(cells))
    for name in shapes.AGAINST:
        assert result["oracle"][name]["win_share"] == pytest.approx(1 / len(cells))


def test_a_study_without_the_held_out_runs_is_refused(tmp_path):
    (tmp_path / "rl").mkdir()
    with open(tmp_path / "rl" / "eval.jsonl", "w") as f:
        f.write("")
    with pytest.raises(ValueError, match="lacks"):
        shapes.main(["--quick", "--build", str(tmp_path)])
    with pytest.raises(SystemExit):
        shapes.main(["--quick", "--build", str(tmp_path / "nowhere")])


def test_runs_of_another_length_are_not_compared(tmp_path):
    (tmp_path / "rl").mkdir()
    longer = {"max_actions": RL_QUICK.max_actions + 1}  # runs of more steps
    _fake_eval(tmp_path / "rl" / "eval.jsonl", replace(RL_QUICK, **longer), lambda i, n: 1.0)
    with pytest.raises(ValueError, match="lacks"):
        shapes.main(["--quick", "--build", str(tmp_path)])
