import numpy as np
import pytest

from nmf import datasets


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
    assert F.shape == (200, 625) and F.min() >= 0 and F.max() <= 1


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_user_files_round_trip(tmp_path, suffix):
    V = np.random.default_rng(0).random((4, 3))
    path = tmp_path / f"m{suffix}"
    np.save(path, V) if suffix == ".npy" else np.savetxt(path, V, delimiter=",")
    assert np.allclose(datasets.load_dataset(str(path)), V)


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


def test_instances_are_reproducible_recipes():
    a = datasets.NMFInstance("synthetic", rank=3, noise_std=0.1, seed=4, size=(20, 10))
    p, q = a.build(), a.build()
    assert p.shape == (20, 10) and p.rank == 3 and p.noise_std == 0.1
    assert np.array_equal(p.V, q.V) and np.array_equal(p.init()[0], q.init()[0])
    b = datasets.NMFInstance("digits", rank=5, seed=1, size=300)
    assert b.build().shape == (300, 64)
    assert not np.array_equal(
        b.data(), datasets.NMFInstance("digits", rank=5, seed=2, size=300).data()
    )
