"""RealMLP as scikit-learn estimators: ``RealMLPClassifier`` and ``RealMLPRegressor``.

RealMLP-TD (Holzmüller et al., NeurIPS 2024), as pytabkit 1.8's ``RealMLP_TD_*``
defines it, each part a fastbp layer kind or training tool:

- the table (``TableEncoder(scheme="robust")``): numeric columns median-centred,
  robust-scaled and smoothly clipped (missing values: the median plus an indicator,
  where pytabkit refuses NaN); categorical columns ±1 (two categories), one-hot (up to
  ``max_one_hot`` counting a missing slot) or coded for an 8-wide
  ``CategoricalEmbedding``;
- the network: ``PeriodicBiasEmbedding`` (PBLD: 16 frequencies of σ 0.1, 3 values
  plus the column itself) over the numeric columns, the diagonal front ``Scale``,
  ``hidden_sizes`` blocks of Dense, ``ParametricActivation`` (selu for a classifier,
  mish for a regressor) and dropout, the output layer;
- the NTK parametrisation and data-dependent initialisation: each Dense layer's
  weights start as N(0, 1) columns divided by their output's standard deviation on
  the training rows, its biases at pytabkit's "he+5" (minus a random convex
  combination of 5 rows' pre-activations), its learning rate times 1/√fan_in (what
  the NTK factor does to Adam's steps);
- training: Adam (β = 0.9, 0.95) with decoupled weight decay 0.02, per-parameter
  learning-rate factors (biases 0.1, front scale 6, parametric activations and
  embeddings' frequencies 0.1), the weight decay as pytabkit applies it (its factors
  squared), the "coslog4" learning rate per batch (``schedules.CosLog``), weight decay
  and dropout on the flat-cosine schedule (per epoch: pytabkit moves them per batch),
  label smoothing 0.1, 256 epochs of batches of 256 (the last partial batch of each
  epoch dropped, as pytabkit's loader does), and the parameters of the epoch
  with the best validation accuracy (RMSE), the later among ties, restored.
  Regression targets are standardised and predictions clipped to the training
  targets' range.

Differences from pytabkit kept on purpose: Adam's eps acts on the effective weights
(pytabkit's on the NTK-scaled ones: 1e-8 against 1e-8·√fan_in); missing values are
accepted.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, cast

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils._param_validation import (Interval,  # type: ignore[import-untyped, unused-ignore]
                                             StrOptions)

from fastbp._validation import ACTIVATIONS
from fastbp.layers import (CategoricalEmbedding, Dense, Layer, ParametricActivation,
                           PeriodicBiasEmbedding, Scale)
from fastbp.models import Sequential
from fastbp.optim import AdamW
from fastbp.schedules import CosLog, flat_cosine
from fastbp.tabular._base import ClassifierPart, RegressorPart, TabularEstimator, seed_of
from fastbp.tabular._columns import TableEncoder

__all__ = ["RealMLPClassifier", "RealMLPRegressor"]

#: pytabkit's per-parameter learning-rate factors (RealMLP-TD)
BIAS_LR, SCALE_LR, ACT_LR, EMBEDDING_LR = 0.1, 6.0, 0.1, 0.1
PBLD_FREQUENCIES, PBLD_SIGMA, PBLD_WIDTH = 16, 0.1, 3
HE_PLUS_ROWS = 5


def data_init(model: Sequential, X: np.ndarray, rng: np.random.RandomState) -> None:
    """pytabkit's RealMLP initialisation of the Dense layers on the training rows X,
    layer after layer (each sees the rows through the layers before it, without
    dropout): weights N(0, 1), each output column divided by its standard deviation on
    the rows ("std"); biases minus a random convex combination (Exp(1) weights) of
    5 rows' pre-activations ("he+5")."""
    h = X
    for layer in model.layers:
        if isinstance(layer, Dense):
            x = h.astype(np.float64)
            w = rng.standard_normal((layer.in_features, layer.out_features))
            std = (x @ w).std(axis=0)
            w /= np.where(std > 0, std, 1.0)
            z = x @ w
            m = layer.out_features
            pick = rng.randint(0, len(x), size=(m, HE_PLUS_ROWS))
            weights = rng.exponential(1.0, size=(m, HE_PLUS_ROWS))
            weights /= weights.sum(axis=1, keepdims=True)
            layer.W = w
            if layer.b is not None:
                layer.b = -(z[pick, np.arange(m)[:, None]] * weights).sum(axis=1)
        h = layer.forward(h)


def parameter_groups(model: Sequential, lr: float, weight_decay: float
                     ) -> tuple[list[dict[str, Any]], list[float]]:
    """(AdamW's groups with RealMLP's learning rates, each group's weight decay at the
    schedule's 1): pytabkit decays p by lr·wd·(lr factor·wd factor)², which with the
    group's lr (lr·lr factor) is the group decay wd·wd factor²·lr factor. A Dense
    weight's lr factor 1/√fan_in is the NTK parametrisation's; its decay (on the raw
    weights in pytabkit) is the same multiplication of the effective ones: wd/lr factor."""
    groups: list[dict[str, Any]] = []
    decays: list[float] = []

    def add(params: list[np.ndarray], lr_factor: float, decay: float) -> None:
        groups.append({"params": params, "lr": lr * lr_factor, "weight_decay": decay})
        decays.append(decay)
    for layer in model.layers:
        if isinstance(layer, Dense):
            c = 1.0 / math.sqrt(layer.in_features)
            add([layer.W], c, weight_decay / c)
            if layer.b is not None:
                add([layer.b], BIAS_LR, 0.0)
        elif isinstance(layer, Scale):
            add(layer.parameters(), SCALE_LR, weight_decay * SCALE_LR)
        elif isinstance(layer, (ParametricActivation, PeriodicBiasEmbedding)):
            factor = ACT_LR if isinstance(layer, ParametricActivation) else EMBEDDING_LR
            add(layer.parameters(), factor, weight_decay * factor)
        elif layer.parameters():   # a categorical embedding's tables: factors 1
            add(layer.parameters(), 1.0, weight_decay)
    return groups, decays


class _RealMLPBase(TabularEstimator):
    """What both estimators share: parameters, the network, the training run."""

    _parameter_constraints: dict = {
        "hidden_sizes": "no_validation",   # checked in _network (a tuple of ints >= 1)
        "n_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS) - {"softmax"})],
        "num_embeddings": [StrOptions({"pbld"}), None],
        "max_one_hot": [Interval(numbers.Integral, 2, None, closed="left")],
        "embedding_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "categorical_features": "no_validation",   # TableEncoder checks it against X
        "random_state": ["random_state"],
        "num_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }
    hidden_sizes: Any
    n_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    dropout: float
    activation: str
    num_embeddings: str | None
    max_one_hot: int
    embedding_size: int
    num_threads: int | None
    label_smoothing = 0.0
    y_range_: tuple[float, float] | None = None

    def _new_encoder(self) -> TableEncoder:
        return TableEncoder(self.categorical_features, scheme="robust",
                            max_one_hot=self.max_one_hot)

    def _network(self, n_in: int, n_out: int, rng: np.random.RandomState) -> Sequential:
        """Embeddings, front scale, the blocks, the output layer (float32)."""
        sizes = self.hidden_sizes
        if not isinstance(sizes, (list, tuple)) or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) >= 1
                for s in sizes):
            raise ValueError(f"hidden_sizes must be a list or tuple of ints >= 1, got {sizes!r}")
        enc = self.encoder_
        layers: list[Layer] = []
        width = n_in
        coded = enc.coded
        if coded:
            emb = CategoricalEmbedding(width, [c for c, _ in coded], [k for _, k in coded],
                                       self.embedding_size, dtype="float32", seed=seed_of(rng))
            layers.append(emb)
            width = emb.out_features
        if enc.n_numeric_first and self.num_embeddings == "pbld":
            pb = PeriodicBiasEmbedding(width, enc.n_numeric_first, PBLD_WIDTH,
                                       n_frequencies=PBLD_FREQUENCIES,
                                       frequency_init_scale=PBLD_SIGMA, dtype="float32",
                                       seed=seed_of(rng))
            layers.append(pb)
            width = pb.out_features
        layers.append(Scale(width, dtype="float32"))
        for size in sizes:
            layers += [Dense(width, int(size), dtype="float32", seed=seed_of(rng)),
                       ParametricActivation(int(size), self.activation, dtype="float32",
                                            dropout=self.dropout)]
            width = int(size)
        layers.append(Dense(width, n_out, dtype="float32", seed=seed_of(rng)))
        model = Sequential(layers, self._loss, dropout_seed=seed_of(rng))
        model.num_threads = self.num_threads
        return model

    def _train(self, Xt: np.ndarray, yt: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
               n_out: int, rng: np.random.RandomState) -> None:
        """The network, its data-dependent initialisation, AdamW with RealMLP's groups,
        CosLog per batch, the flat cosine per epoch, the best epoch kept."""
        if self._loss == "mse":
            self.y_range_ = (float(yt.min()), float(yt.max()))
        self.model_ = model = self._network(Xt.shape[1], n_out, rng)
        data_init(model, Xt, rng)
        groups, decays = parameter_groups(model, self.lr, self.weight_decay)
        opt = AdamW(cast(Any, groups), lr=self.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
        batch = min(self.batch_size, len(Xt))
        epochs = self.n_epochs
        schedule = CosLog(opt, epochs * (len(Xt) // batch), n_cycles=4)   # (drop_last)
        rates = [layer.dropout for layer in model.layers]

        def at_epoch(e: int) -> None:
            """Weight decay and dropout for epoch e: the flat cosine at its middle."""
            if e >= epochs:
                return
            f = flat_cosine((e + 0.5) / epochs)
            opt.set_group_weight_decay([d * f for d in decays])
            model.set_dropout_rates([p * f for p in rates])

        at_epoch(0)
        self._fit_keeping_best(Xt, yt, Xv, yv, ties=True,
                               next_epoch=at_epoch,
                               epochs=epochs, batch_size=batch, optimizer=opt,
                               scheduler=schedule, seed=seed_of(rng),
                               label_smoothing=self.label_smoothing, drop_last=True)
        model.set_dropout_rates(rates)   # (the file keeps the layers' own rates)


_COMMON_DOC = """
    hidden_sizes : tuple of int, default (256, 256, 256)
        The hidden blocks' widths.
    n_epochs : int, default 256
        Epochs trained (the best one's parameters are kept).
    batch_size : int, default 256
    weight_decay : float, default 0.02
        Adam's decoupled weight decay, on the flat-cosine schedule.
    dropout : float, default 0.15
        Dropout after each block, on the flat-cosine schedule.
    num_embeddings : {"pbld", None}, default "pbld"
        The numeric columns' PBLD embeddings, or the columns as they are.
    max_one_hot : int, default 9
        Categorical columns one-hot up to this many categories counting a missing slot
        (pytabkit's ``max_one_hot_cat_size``); more get an embedding.
    embedding_size : int, default 8
        Values per embedded category.
    categorical_features : "auto", list of int or str, or boolean mask
        Which columns are categorical ("auto": a DataFrame's category, object,
        string and boolean columns).
    random_state : None, int or numpy RandomState
        The validation split, the initial weights, the batch orders and dropout.
    num_threads : int or None, default None
        BLAS threads of the network (None: fastbp's setting).

    Attributes
    ----------
    model_ : fastbp.Sequential
        The trained network (float32), on encoded rows.
    encoder_ : TableEncoder
    best_epoch_ : int
        The epoch (from 1) whose parameters were kept.
    n_epochs_ : int
    validation_scores_ : list of float
        The validation score after each epoch (accuracy; −RMSE).
"""


class RealMLPClassifier(ClassifierMixin, ClassifierPart, _RealMLPBase):
    __doc__ = """RealMLP-TD for classification (see the module docstring).

    Parameters
    ----------
    lr : float, default 0.04
        Adam's base learning rate (the coslog4 schedule's peak).
    activation : str, default "selu"
        The parametric activations' function.
    label_smoothing : float, default 0.1
""" + _COMMON_DOC

    _parameter_constraints: dict = {
        **_RealMLPBase._parameter_constraints,
        "label_smoothing": [Interval(numbers.Real, 0, 1, closed="left")]}
    classes_: np.ndarray

    def __init__(self, *, hidden_sizes: Any = (256, 256, 256), n_epochs: int = 256,
                 batch_size: int = 256, lr: float = 0.04, weight_decay: float = 0.02,
                 dropout: float = 0.15, activation: str = "selu",
                 label_smoothing: float = 0.1, num_embeddings: str | None = "pbld",
                 max_one_hot: int = 9, embedding_size: int = 8,
                 categorical_features: Any = "auto", random_state: Any = None,
                 num_threads: int | None = None) -> None:
        self.hidden_sizes = hidden_sizes
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.activation = activation
        self.label_smoothing = label_smoothing
        self.num_embeddings = num_embeddings
        self.max_one_hot = max_one_hot
        self.embedding_size = embedding_size
        self.categorical_features = categorical_features
        self.random_state = random_state
        self.num_threads = num_threads


class RealMLPRegressor(RegressorMixin, RegressorPart, _RealMLPBase):
    __doc__ = """RealMLP-TD for regression (see the module docstring): targets
    standardised for training, predictions clipped to the training targets' range.

    Parameters
    ----------
    lr : float, default 0.2
        Adam's base learning rate (the coslog4 schedule's peak).
    activation : str, default "mish"
        The parametric activations' function.
""" + _COMMON_DOC

    def __init__(self, *, hidden_sizes: Any = (256, 256, 256), n_epochs: int = 256,
                 batch_size: int = 256, lr: float = 0.2, weight_decay: float = 0.02,
                 dropout: float = 0.15, activation: str = "mish",
                 num_embeddings: str | None = "pbld", max_one_hot: int = 9,
                 embedding_size: int = 8, categorical_features: Any = "auto",
                 random_state: Any = None, num_threads: int | None = None) -> None:
        self.hidden_sizes = hidden_sizes
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.activation = activation
        self.num_embeddings = num_embeddings
        self.max_one_hot = max_one_hot
        self.embedding_size = embedding_size
        self.categorical_features = categorical_features
        self.random_state = random_state
        self.num_threads = num_threads
