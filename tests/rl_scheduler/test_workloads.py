"""The workload layer: GreedyLR's workloads (numbers recorded from the study's own copy), the
shared data caches, samplers, losses and evaluation of the deep-network tasks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rl_scheduler.tasks import data, workloads
from rl_scheduler.tasks.workloads import (
    WORKLOADS,
    CharLM,
    Classification,
    NoisyQuadratic,
    make_workload,
)
from tests.rl_scheduler._recorded import one_thread

SGD_LR = {"quadratic": 1.0, "logreg": 0.1, "mlp": 0.1, "cnn": 0.1, "charlm": 1.0}


def _sgd_trace(make, name, seed):
    """(steps_per_epoch, evaluate(), three SGD mini-batch losses, evaluate()) of a fresh workload,
    with the batch generator seeded as ``experiments.greedylr.run_greedy`` seeds it."""
    workload = make(name, seed)
    batches = torch.Generator().manual_seed(seed)
    values = [*workload.evaluate()]
    opt = torch.optim.SGD(workload.model.parameters(), lr=SGD_LR[name])
    for _ in range(3):
        batch = workload.sample(batches)
        opt.zero_grad()
        loss = workload.loss(batch)
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    values += workload.evaluate()
    return workload.steps_per_epoch, tuple(values)


# Recorded with one thread from experiments/greedylr.py's own workloads, before they moved here
# (issue 11): the GreedyLR study must give bit-identical losses through this module.
GREEDY_REFERENCE = {
    ("charlm", 0): (513, (4.265555381774902, 4.265596389770508, 4.253215789794922, 4.15267276763916, 4.062598705291748, 3.924199104309082, 3.9265148639678955)),
    ("charlm", 1): (513, (4.289212226867676, 4.286333084106445, 4.284910678863525, 4.158145427703857, 4.036363124847412, 3.886967182159424, 3.8864526748657227)),
    ("cnn", 0): (22, (2.3114404678344727, 2.309922456741333, 2.3055388927459717, 2.313790798187256, 2.3020734786987305, 2.306781530380249, 2.3047916889190674)),
    ("cnn", 1): (22, (2.3140859603881836, 2.2951695919036865, 2.3220808506011963, 2.3100109100341797, 2.2953221797943115, 2.306213855743408, 2.2930901050567627)),
    ("logreg", 0): (22, (2.4507153034210205, 2.3938803672790527, 2.4030632972717285, 2.3592233657836914, 2.2747812271118164, 1.9785741567611694, 1.9074592590332031)),
    ("logreg", 1): (22, (2.4235424995422363, 2.502791404724121, 2.5133862495422363, 2.1535634994506836, 2.1041574478149414, 2.0102570056915283, 2.093454122543335)),
    ("mlp", 0): (22, (2.3473010063171387, 2.3377320766448975, 2.3303403854370117, 2.3430120944976807, 2.281315565109253, 2.221501111984253, 2.21740460395813)),
    ("mlp", 1): (22, (2.2961080074310303, 2.33465576171875, 2.2595884799957275, 2.228756904602051, 2.153376579284668, 2.177631139755249, 2.227353811264038)),
    ("quadratic", 0): (100, (7.8929009437561035, 7.8929009437561035, 7.338992118835449, 11.458910942077637, 7.516694068908691, 3.1638023853302, 3.1638023853302)),
    ("quadratic", 1): (100, (4.478582859039307, 4.478582859039307, 15.616939544677734, 9.9739351272583, 12.926210403442383, 1.6882050037384033, 1.6882050037384033)),
}  # fmt: skip


@pytest.mark.parametrize(("name", "seed"), sorted(GREEDY_REFERENCE))
def test_greedylr_workloads_reproduce_the_recorded_numbers_bit_for_bit(name, seed):
    with one_thread():
        assert _sgd_trace(make_workload, name, seed) == GREEDY_REFERENCE[(name, seed)]


def test_every_workload_name_has_a_recorded_reference():
    assert {name for name, _ in GREEDY_REFERENCE} == set(WORKLOADS)


def test_same_seed_same_weights_and_batches_other_seed_differs():
    a, b, c = make_workload("mlp", 3), make_workload("mlp", 3), make_workload("mlp", 4)
    weights = [next(w.model.parameters()) for w in (a, b, c)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    x_a, _ = a.sample(torch.Generator().manual_seed(7))
    x_b, _ = b.sample(torch.Generator().manual_seed(7))
    assert torch.equal(x_a, x_b) and x_a.shape == (64, 64)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_workload("resnet", 0), "workload must be one of"),
        (lambda: make_workload("mlp", -1), "seed must be an integer >= 0"),
        (lambda: make_workload("mlp", 1.5), "seed must be an integer >= 0"),
        (lambda: NoisyQuadratic(0, dim=0), "dim must be an integer >= 1"),
        (lambda: NoisyQuadratic(0, noise=-1.0), "noise must be a finite float >= 0"),
        (lambda: Classification(workloads.digits(False), torch.nn.Linear(64, 10), 0), "batch_size"),
        (lambda: CharLM(workloads.shakespeare(), torch.nn.Identity(), seq_len=0), "seq_len"),
    ],
)
def test_bad_workload_arguments_are_value_errors_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------- math
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 1000),
    x=st.lists(st.floats(-5, 5, width=32), min_size=8, max_size=8),
)
def test_noisy_quadratic_excess_loss_is_the_closed_form(seed, x):
    quad = NoisyQuadratic(seed, dim=8, noise=0.5)
    with torch.no_grad():
        quad.model.x.copy_(torch.tensor(x))
    x64, star = np.array(x, dtype=np.float64), quad.x_star.double().numpy()
    expected = 0.5 * np.sum(quad.h.double().numpy() * (x64 - star) ** 2)
    excess, again = quad.evaluate()
    assert excess == again == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # a batch of zero noise has the excess loss as its loss
    assert float(quad.loss(torch.zeros(8)).detach()) == pytest.approx(excess, rel=1e-6, abs=1e-7)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), chunk=st.integers(1, 50), seed=st.integers(0, 10_000))
def test_mean_cross_entropy_does_not_depend_on_the_chunk_size(n, chunk, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 5, generator=gen)
    y = torch.randint(0, 5, (n,), generator=gen)
    loss, accuracy = workloads.mean_cross_entropy(torch.nn.Identity(), logits, y, batch_size=chunk)
    assert loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert accuracy == float((logits.argmax(-1) == y).double().mean())


def test_sequence_and_classification_losses_agree_on_flattened_positions():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 7, generator=gen)
    y = torch.randint(0, 7, (3, 4), generator=gen)
    flat = workloads.classification_loss(
        torch.nn.Identity(), (logits.reshape(12, 7), y.reshape(12))
    )
    assert torch.equal(workloads.sequence_loss(torch.nn.Identity(), (logits, y)), flat)


# ---------------------------------------------------------------------------------- data layer
def test_each_built_in_data_set_is_loaded_once_and_shared():
    assert workloads.load_vision("digits", "data", False, None) is workloads.digits(True)
    assert workloads.load_text("shakespeare", "data", False) is workloads.shakespeare()
    with pytest.raises(ValueError, match="dataset must be one of"):
        workloads.load_vision("mnist", "data", False, None)


def test_vision_data_samples_through_the_tensor_split_sampler():
    raw = workloads.digits(True)
    prepared = workloads.prepare_vision(raw, 10, 5, torch.device("cpu"))
    assert isinstance(prepared, data.TensorSplit)
    assert prepared.x_eval.shape == (10, 1, 8, 8) and prepared.x_val.shape == (5, 1, 8, 8)
    split, _, _ = workloads.split_vision(raw)
    x, y = prepared.sample_batch(6, torch.Generator().manual_seed(3))
    x_raw, y_raw = split.sample_batch(6, torch.Generator().manual_seed(3))
    assert torch.equal(x, x_raw) and torch.equal(y, y_raw)
    every = workloads.prepare_vision(raw, 10, None, torch.device("cpu"))
    assert torch.equal(every.x_val, split.x_val) and torch.equal(every.x_test, raw.x_val)


def _rows(x):
    return {tuple(r) for r in x.reshape(len(x), -1).tolist()}


def test_vision_splits_are_disjoint_deterministic_and_cover_the_data():
    raw = workloads.digits(True)
    split, x_test, _ = workloads.split_vision(raw)
    again, _, _ = workloads.split_vision(raw)
    assert torch.equal(split.x_val, again.x_val) and torch.equal(split.y_train, again.y_train)
    n = len(raw.y_train)
    assert (len(split.y_train), len(split.y_val)) == (n - round(0.2 * n), round(0.2 * n))
    assert torch.equal(x_test, raw.x_val)  # the loader's held-out part is the test split
    # the images themselves (digits has a few exact duplicates, hence the small tolerance)
    train, val, test = _rows(split.x_train), _rows(split.x_val), _rows(x_test)
    assert len(train & val) < 5 and len(train & test) < 5 and len(val & test) < 5
    # as index sets the two parts of the loader's training split are disjoint and complete
    x = raw.x_train.reshape(n, -1)
    where = {tuple(r): i for i, r in enumerate(x.tolist())}
    idx_train = {where[r] for r in _rows(split.x_train)}
    idx_val = {where[r] for r in _rows(split.x_val)}
    assert not idx_train & idx_val
    prepared = workloads.prepare_vision(raw, 32, None, torch.device("cpu"), test_size=50)
    assert len(prepared.y_test) == 50 and _rows(prepared.x_test) <= test
    assert _rows(prepared.x_eval) <= train


def test_text_splits_are_consecutive_disjoint_blocks():
    corpus = data.CharCorpus("ab", torch.arange(100) % 2, torch.arange(20) % 2)
    train, val, test = workloads.split_text(corpus)
    assert (len(train), len(val), len(test)) == (80, 20, 20)
    assert torch.equal(torch.cat([train, val]), corpus.train_ids)
    assert torch.equal(test, corpus.val_ids)
    text = workloads.shakespeare()
    train, val, test = workloads.split_text(text)
    assert len(train) + len(val) + len(test) == len(text.train_ids) + len(text.val_ids)
    prepared = workloads.prepare_text(text, 8, 16, 12, torch.device("cpu"), test_size=4)
    assert prepared.x_val.shape == (16, 12) and prepared.x_test.shape == (4, 12)
    assert torch.equal(prepared.train_ids, train)
    # every validation (test) window is a substring of the validation (test) stream only
    for windows, stream, other in ((prepared.x_val, val, train), (prepared.x_test, test, val)):
        s, o = text.decode(stream), text.decode(other)
        assert all(text.decode(w) in s for w in windows)
        assert not all(text.decode(w) in o for w in windows)


@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [
        ("cnn", (1, 8, 8), {"width": 8, "pool_every_block": False}),
        ("cnn", (3, 32, 32), {"width": 16, "pool_every_block": True}),
        ("mlp", (1, 8, 8), {"in_features": 64, "hidden": (64,)}),
        ("logreg", (1, 8, 8), {"in_features": 64}),
    ],
)
def test_vision_model_defaults_and_overrides(monkeypatch, name, shape, expected):
    calls = []
    monkeypatch.setattr(workloads.models, "build_model", lambda n, **kw: calls.append(kw))
    split = data.TensorSplit(
        torch.zeros(2, *shape), torch.zeros(2), torch.zeros(1, *shape), torch.zeros(1), 4
    )
    workloads.vision_model(name, split)
    workloads.vision_model(name, split, [("n_classes", 9)])
    assert calls[0].items() >= expected.items() and calls[0]["n_classes"] == 4
    assert calls[1]["n_classes"] == 9
