import re

import numpy as np
import pytest

from nmf import datasets
from nmf.problem import stream_rng


def test_synthetic_is_seeded_non_negative_and_low_rank_without_noise():
    V = datasets.synthetic(30, 20, 3, noise=0.0, seed=0)
    assert V.shape == (30, 20) and (V >= 0).all()
    assert np.linalg.matrix_rank(V) == 3
    assert np.array_equal(V, datasets.synthetic(30, 20, 3, noise=0.0, seed=0))
    with pytest.raises(ValueError, match="rank"):
        datasets.synthetic(3, 3, 0)


def test_bundled_real_data():
    D = datasets.digits()
    assert D.shape == (1797, 64) and D.min() == 0 and D.max() == 1
    F = datasets.faces()
    assert F.shape == (100, 625) and F.min() >= 0 and F.max() <= 1


def test_faces_are_the_first_100_images_of_lfw_subset():
    from skimage.data import lfw_subset
    from skimage.util import img_as_float

    # lfw_subset is 100 faces followed by 100 non-face patches (scikit-image's docstring).
    images = lfw_subset()
    assert images.shape[0] == 200
    assert np.array_equal(datasets.faces(), img_as_float(images[:100]).reshape(100, -1))


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_user_files_round_trip(tmp_path, suffix):
    V = np.random.default_rng(0).random((4, 3))
    path = tmp_path / f"m{suffix}"
    np.save(path, V) if suffix == ".npy" else np.savetxt(path, V, delimiter=",")
    assert np.allclose(datasets.load_dataset(str(path)), V)
    assert np.allclose(datasets.load_dataset(path), V)  # a pathlib.Path works too
    upper = path.rename(path.with_suffix(suffix.upper()))  # and the suffix may be upper case
    assert np.allclose(datasets.load_dataset(upper), V)


def test_bad_user_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.load_matrix(tmp_path / "missing.npy")
    (tmp_path / "m.txt").write_text("1,2")
    with pytest.raises(ValueError, match=r"\.npy or \.csv"):
        datasets.load_matrix(tmp_path / "m.txt")
    np.save(tmp_path / "v.npy", np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        datasets.load_matrix(tmp_path / "v.npy")
    with pytest.raises(ValueError, match="dataset must be"):
        datasets.load_dataset("mnist")


@pytest.mark.parametrize("text", ["a,b\n1,2\n", "1;2\n3;4\n", "1,2\n3\n"])
def test_unparsable_csv_names_the_file(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.csv"):
        datasets.load_matrix(path)


def test_object_npy_names_the_file(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="objects.npy"):
        datasets.load_matrix(path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"m": True}, "m must"),
        ({"n": 2.0}, "n must"),
        ({"noise": None}, "noise"),
        ({"noise": True}, "noise"),
        ({"seed": -1}, "seed"),
        ({"seed": "x"}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_synthetic_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.synthetic(**{"m": 5, "n": 4, "rank": 2, **kwargs})


def test_numpy_integers_are_integers():
    V = datasets.synthetic(np.int64(5), np.int32(4), np.int8(2), seed=np.uint16(3))
    assert np.array_equal(V, datasets.synthetic(5, 4, 2, seed=3))
    instance = datasets.NMFInstance("digits", rank=3, seed=np.int64(1), size=np.int64(50))
    assert instance.data().shape == (50, 64)


def test_instances_are_reproducible_recipes():
    a = datasets.NMFInstance("synthetic", rank=3, noise_std=0.1, seed=4, size=(20, 10))
    p, q = a.build(), a.build()
    assert p.shape == (20, 10) and p.rank == 3 and p.noise_std == 0.1
    assert np.array_equal(p.V, q.V) and np.array_equal(p.init()[0], q.init()[0])
    assert np.array_equal(p.V, datasets.synthetic(20, 10, 3, seed=4))
    b = datasets.NMFInstance("digits", rank=5, seed=1, size=300)
    assert b.build().shape == (300, 64)
    assert not np.array_equal(
        b.data(), datasets.NMFInstance("digits", rank=5, seed=2, size=300).data()
    )


@pytest.mark.parametrize(
    ("array", "what"),
    [
        (np.array([[1 + 2j, 3], [4, 5]]), "complex numbers"),
        (np.array([["1", "2"], ["3", "4"]]), "strings"),
        (np.array([[True, False], [False, True]]), "booleans"),
    ],
)
def test_npy_files_that_are_not_real_numbers_are_rejected(tmp_path, array, what):
    # Complex data once lost its imaginary part silently, numeric strings became numbers.
    path = tmp_path / "odd.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=f"'odd.npy' must be an array of real numbers .*{what}"):
        datasets.load_matrix(path)


def test_integer_npy_files_are_read_as_floats(tmp_path):
    path = tmp_path / "counts.npy"
    np.save(path, np.arange(6).reshape(2, 3))
    V = datasets.load_dataset(path)
    assert V.dtype == np.float64 and np.array_equal(V, np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize(
    ("name", "kwargs", "unknown"),
    [
        ("m.npy", {"m": 5}, "['m']"),
        ("m.csv", {"seed": 0, "rank": 2}, "['rank', 'seed']"),
        ("digits", {"size": 100}, "['size']"),
        ("faces", {"seed": 1}, "['seed']"),
        ("synthetic", {"m": 5, "size": (5, 4)}, "['size']"),
    ],
)
def test_load_dataset_names_the_keywords_it_does_not_take(tmp_path, name, kwargs, unknown):
    # Keywords for a file path were once ignored silently.
    if name.startswith("m."):
        name = tmp_path / name
        np.save(name, np.ones((2, 2))) if name.suffix == ".npy" else name.write_text("1,2\n")
    with pytest.raises(TypeError, match=f"unknown keyword arguments {re.escape(unknown)}"):
        datasets.load_dataset(name, **kwargs)


def test_load_dataset_passes_keywords_to_synthetic():
    V = datasets.load_dataset("synthetic", m=6, n=5, rank=2, noise=0.0, seed=3)
    assert np.array_equal(V, datasets.synthetic(6, 5, 2, noise=0.0, seed=3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"m": "5"}, "m must"), ({"rank": np.True_}, "rank must"), ({"noise": "0.1"}, "noise")],
)
def test_synthetic_follows_the_number_rule(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.synthetic(**{"m": 5, "n": 4, "rank": 2, **kwargs})


def test_row_pools_split_a_real_matrix_in_two_disjoint_halves():
    train, test = (datasets.row_pool_indices(101, pool) for pool in ("train", "test"))
    assert len(train) == 50 and len(test) == 51
    assert not set(train) & set(test) and set(train) | set(test) == set(range(101))
    assert np.array_equal(datasets.row_pool_indices(101, None), np.arange(101))
    with pytest.raises(ValueError, match="row_pool"):
        datasets.row_pool_indices(101, "valid")


def test_a_held_out_instance_shares_no_row_with_any_training_instance(tmp_path):
    path = tmp_path / "ids.npy"
    np.save(path, np.repeat(np.arange(200.0)[:, None], 3, axis=1))  # row i holds i: its id
    ids = lambda inst: set(inst.data()[:, 0].astype(int))  # noqa: E731
    train = [datasets.NMFInstance(str(path), seed=s, size=60, row_pool="train") for s in range(20)]
    test = [datasets.NMFInstance(str(path), seed=s, size=60, row_pool="test") for s in range(20)]
    seen = set().union(*(ids(i) for i in train))
    assert len(seen) > 60  # the training instances draw different rows of their pool
    for inst in test:
        assert len(ids(inst)) == 60 and not ids(inst) & seen
    # Without a pool, instances draw from every row (the behaviour before pools, unchanged).
    old = datasets.NMFInstance("digits", seed=1, size=300).data()
    rows = np.sort(stream_rng(1, "data").choice(1797, 300, replace=False))
    assert np.array_equal(old, datasets.digits()[rows])
    # size None: every row of the pool
    assert datasets.NMFInstance("digits", row_pool="test").data().shape == (1797 - 898, 64)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "faces", "size": 51, "row_pool": "train"}, "exceeds the 50 rows"),
        ({"dataset": "digits", "row_pool": "valid"}, "row_pool"),
        ({"dataset": "synthetic", "row_pool": "train"}, "row_pool"),
    ],
)
def test_bad_row_pools_and_sizes_beyond_the_pool_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.NMFInstance(**kwargs).data()
