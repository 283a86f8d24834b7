"""Small torch models for the deep-network tasks, sized to train on a CPU in seconds.

* :class:`LogisticRegression` and :class:`MLP` take flat or image inputs (they flatten).
* :class:`SmallCNN` works for any image size (8x8 digits, 28x28 Fashion-MNIST, 32x32 CIFAR-10):
  two conv blocks and a global average pool before the classifier.
* :class:`ResNet` is the CIFAR-style residual network of He et al. (2016), ``6 n + 2`` layers
  (ResNet-20 by default), with batch normalisation: the model for GPU runs.
* :class:`CharGRU`, :class:`CharLSTM` and :class:`TinyTransformerLM` are character-level language
  models mapping ids ``(B, T)`` to next-character logits ``(B, T, vocab_size)``.

:func:`build_model` builds any of them by name; every model is initialised from torch's global
RNG, so seed it (``torch.manual_seed``) before building.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "MODELS",
    "CharGRU",
    "CharLSTM",
    "LogisticRegression",
    "MLP",
    "ResNet",
    "SmallCNN",
    "TinyTransformerLM",
    "build_model",
    "count_parameters",
]


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: one linear layer on the flattened input.

    Parameters
    ----------
    in_features : int
        Size of the flattened input.
    n_classes : int
        Number of classes (logits out).
    """

    def __init__(self, in_features: int, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(
            _positive("in_features", in_features), _positive("n_classes", n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)``."""
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """Fully connected ReLU network on the flattened input.

    Parameters
    ----------
    in_features : int
        Size of the flattened input.
    n_classes : int
        Number of classes.
    hidden : sequence of int, default (64,)
        Widths of the hidden layers.
    """

    def __init__(self, in_features: int, n_classes: int, hidden: Sequence[int] = (64,)) -> None:
        super().__init__()
        widths = [_positive("in_features", in_features)]
        widths += [_positive("hidden width", h) for h in hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], _positive("n_classes", n_classes)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)``."""
        return self.net(x.flatten(1))


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks, a max-pool, a global average pool and a linear classifier.

    The global pool makes it independent of the image size: the same class fits 8x8 digits
    (``in_channels=1``), 28x28 Fashion-MNIST and 32x32 CIFAR-10 (``in_channels=3``). Larger
    images get one extra max-pool per block (``pool_every_block=True``) to stay cheap.

    Parameters
    ----------
    in_channels : int, default 1
        Input channels.
    n_classes : int, default 10
        Number of classes.
    width : int, default 16
        Channels of the first block (the second has ``2 * width``).
    pool_every_block : bool, default False
        Max-pool after both blocks instead of only the second (use for 28x28/32x32 inputs).
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        width: int = 16,
        pool_every_block: bool = False,
    ) -> None:
        super().__init__()
        c = _positive("width", width)
        self.features = nn.Sequential(
            nn.Conv2d(_positive("in_channels", in_channels), c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2) if pool_every_block else nn.Identity(),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(2),
        )
        self.classifier = nn.Linear(2 * c * 4, _positive("n_classes", n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for images ``(B, C, H, W)`` with ``H, W >= 2``."""
        if x.ndim != 4:
            raise ValueError(f"SmallCNN expects images (B, C, H, W), got shape {tuple(x.shape)}")
        return self.classifier(self.features(x).flatten(1))


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style residual network: a 3x3 stem, three stages of basic blocks, a global pool.

    Stages have ``width``, ``2 * width`` and ``4 * width`` channels; the second and third halve
    the resolution. With ``blocks_per_stage = n`` the network has ``6 n + 2`` layers: the default
    ``n = 3`` is ResNet-20 (0.27M parameters at ``width=16``), ``n = 1`` is ResNet-8. The global
    pool makes it work for any image size (8x8 digits included).

    Parameters
    ----------
    in_channels : int, default 3
        Input channels.
    n_classes : int, default 10
        Number of classes.
    width : int, default 16
        Channels of the first stage.
    blocks_per_stage : int, default 3
        Basic blocks per stage.
    """

    def __init__(
        self,
        in_channels: int = 3,
        n_classes: int = 10,
        width: int = 16,
        blocks_per_stage: int = 3,
    ) -> None:
        super().__init__()
        c = _positive("width", width)
        n = _positive("blocks_per_stage", blocks_per_stage)
        self.stem = nn.Sequential(
            nn.Conv2d(_positive("in_channels", in_channels), c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        channels = c
        for stage, out_channels in enumerate((c, 2 * c, 4 * c)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, _positive("n_classes", n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for images ``(B, C, H, W)``."""
        if x.ndim != 4:
            raise ValueError(f"ResNet expects images (B, C, H, W), got shape {tuple(x.shape)}")
        return self.classifier(self.pool(self.blocks(self.stem(x))).flatten(1))


class CharRNN(nn.Module):
    """Character-level recurrent language model: embedding, recurrent layers, linear read-out.

    Subclasses pick the recurrent layer (:attr:`RNN`): :class:`CharGRU`, :class:`CharLSTM`.

    Parameters
    ----------
    vocab_size : int
        Number of distinct characters.
    embed_dim : int, default 32
        Embedding size.
    hidden_size : int, default 128
        Recurrent state size.
    num_layers : int, default 1
        Stacked recurrent layers.
    """

    RNN: type[nn.RNNBase] = nn.GRU

    def __init__(
        self, vocab_size: int, embed_dim: int = 32, hidden_size: int = 128, num_layers: int = 1
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(
            _positive("vocab_size", vocab_size), _positive("embed_dim", embed_dim)
        )
        self.rnn = self.RNN(
            embed_dim,
            _positive("hidden_size", hidden_size),
            num_layers=_positive("num_layers", num_layers),
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-character logits ``(B, T, vocab_size)`` for ids ``(B, T)``."""
        out, _ = self.rnn(self.embed(ids))
        return self.head(out)


class CharGRU(CharRNN):
    """Character-level GRU language model (see :class:`CharRNN`)."""

    RNN = nn.GRU


class CharLSTM(CharRNN):
    """Character-level LSTM language model (see :class:`CharRNN`)."""

    RNN = nn.LSTM


class TinyTransformerLM(nn.Module):
    """A small causal (decoder-only) transformer language model with learned positions.

    Parameters
    ----------
    vocab_size : int
        Number of distinct characters.
    d_model : int, default 64
        Model width (divisible by ``n_heads``).
    n_heads : int, default 4
        Attention heads.
    n_layers : int, default 2
        Transformer blocks (pre-norm).
    max_len : int, default 256
        Longest sequence it accepts.
    dropout : float, default 0.0
        Dropout inside the blocks (0 keeps training deterministic given the batch).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        max_len: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if _positive("d_model", d_model) % _positive("n_heads", n_heads):
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.max_len = _positive("max_len", max_len)
        self.embed = nn.Embedding(_positive("vocab_size", vocab_size), d_model)
        self.pos = nn.Parameter(torch.zeros(max_len, d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=4 * d_model,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(
            layer, _positive("n_layers", n_layers), enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-character logits ``(B, T, vocab_size)`` for ids ``(B, T)``, ``T <= max_len``."""
        t = ids.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len={self.max_len}")
        mask = torch.triu(torch.full((t, t), -math.inf, device=ids.device), diagonal=1)
        h = self.embed(ids) + self.pos[:t]
        h = self.blocks(h, mask=mask, is_causal=True)
        return self.head(self.norm(h))


MODELS: dict[str, type[nn.Module]] = {
    "logreg": LogisticRegression,
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet20": ResNet,
    "gru": CharGRU,
    "lstm": CharLSTM,
    "transformer": TinyTransformerLM,
}
"""Names accepted by :func:`build_model` (``"resnet20"`` builds :class:`ResNet`, whose
``blocks_per_stage`` gives the other depths)."""


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model of :data:`MODELS` by name with its keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
