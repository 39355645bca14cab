"""TabM as scikit-learn estimators: ``TabMClassifier`` and ``TabMRegressor``.

TabM (Gorishniy et al., ICLR 2025; tabm 0.0.3's ``TabM.make`` defaults): k MLPs
trained at once as one BatchEnsemble network -- a shared-input
``LinearBatchEnsemble`` first layer (its input scaling r drawn once per feature:
random signs, or N(0, 1) over piecewise-linear encodings), ``n_blocks`` blocks of
BatchEnsemble linear, ReLU and dropout, k ``LinearEnsemble`` heads -- trained on the
mean loss over the heads (``Objective(heads=k)``), predicting the mean of the heads
(probabilities for a classifier). The recipe is tabm's and pytabkit's ``TabM_D``:
AdamW (decay on the linear weights only), batch size by training rows, early
stopping on the validation score of the heads' mean prediction (accuracy; RMSE)
with ``patience``, the best epoch's parameters restored. By default every member sees
the same batches (``share_training_batches=True``, tabm's recommended default);
``share_training_batches=False`` gives each member its own batch order (pytabkit's
TabM_D; fastbp/tabular/_member_rows.py). The input is encoded by ``TableEncoder``
(fastbp/tabular/_columns.py):
numeric columns by their training quantiles onto a normal curve (missing values:
the median, plus an indicator), categorical ones one-hot.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils._param_validation import (Interval,  # type: ignore[import-untyped, unused-ignore]
                                             StrOptions)

from fastbp._bins import compute_bins
from fastbp.groups import no_decay_groups
from fastbp.layers import (Layer, LinearBatchEnsemble, LinearEnsemble,
                           PiecewiseLinearEncoding)
from fastbp.models import Sequential
from fastbp.objective import Objective
from fastbp.tabular._base import ClassifierPart, RegressorPart, TabularEstimator, seed_of
from fastbp.tabular._columns import TableEncoder
from fastbp.tabular._member_rows import MemberRowsTrainer

__all__ = ["TabMClassifier", "TabMRegressor", "auto_batch_size"]

#: the epochs a fit with max_epochs=None may take (early stopping ends it first)
EPOCH_LIMIT = 100_000
N_BINS = 48   # piecewise-linear encoding's bins per numeric column (TabM's)


def auto_batch_size(n_train: int) -> int:
    """TabM's batch size for ``n_train`` training rows (Y. Gorishniy's table, from the
    TabM paper's choices, as pytabkit's ``get_tabm_auto_batch_size``).

    Parameters
    ----------
    n_train : int
        The training rows.

    Returns
    -------
    int
    """
    for limit, size in ((2_800, 32), (4_500, 64), (6_400, 128), (32_000, 256),
                        (108_000, 512)):
        if n_train < limit:
            return size
    return 1024


class _TabMBase(TabularEstimator):
    """What both estimators share: parameters, the network, the training loop."""

    _parameter_constraints: dict = {
        "k": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_blocks": [Interval(numbers.Integral, 1, None, closed="left")],
        "d_block": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "num_embeddings": [StrOptions({"piecewise"}), None],
        "categorical_features": "no_validation",   # TableEncoder checks it against X
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "patience": [Interval(numbers.Integral, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None,
                                                      closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "num_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "share_training_batches": ["boolean"],
    }
    _loss: str
    model_: Sequential
    encoder_: TableEncoder

    def __init__(self, *, k: int = 32, n_blocks: int = 3, d_block: int = 512,
                 dropout: float = 0.1, num_embeddings: str | None = "piecewise",
                 categorical_features: Any = "auto", max_epochs: int | None = None,
                 patience: int = 16, batch_size: Any = "auto", lr: float = 2e-3,
                 weight_decay: float = 3e-4, random_state: Any = None,
                 num_threads: int | None = None, share_training_batches: bool = True) -> None:
        self.k = k
        self.n_blocks = n_blocks
        self.d_block = d_block
        self.dropout = dropout
        self.num_embeddings = num_embeddings
        self.categorical_features = categorical_features
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.num_threads = num_threads
        self.share_training_batches = share_training_batches

    # ---------------------------------------------------------------- the network
    def _network(self, X: np.ndarray, n_out: int, rng: np.random.RandomState) -> Sequential:
        """TabM for the encoded training matrix X: [piecewise-linear encoding],
        BatchEnsemble blocks, the heads; the heads' mean loss."""
        enc = self.encoder_
        chunks = enc.chunks
        layers: list[Layer] = []
        d_in = X.shape[1]
        init = "random-signs"
        if self.num_embeddings == "piecewise":
            bins, widths, at = [], [], 0
            for width in chunks:
                for j in range(at, at + width):
                    values = np.unique(X[:, j]).astype(np.float64)
                    # a 0/1 column (one-hot, indicator) keeps its value: one bin [0, 1]
                    edges = np.array([0.0, 1.0]) if np.isin(values, (0.0, 1.0)).all() \
                        else values[[0, -1]] if len(values) <= 2 else compute_bins(
                            X[:, j:j + 1].astype(np.float64),
                            n_bins=min(N_BINS, len(values) - 1, len(X) - 1))[0]
                    bins.append(edges)
                at += width
                widths.append(sum(len(b) - 1 for b in bins[len(bins) - width:]))
            ple = PiecewiseLinearEncoding(bins, dtype="float32")
            layers.append(ple)
            d_in, chunks, init = ple.out_features, widths, "normal"
        seeds = [seed_of(rng) for _ in range(self.n_blocks + 1)]
        for i in range(self.n_blocks):
            first = i == 0
            layers.append(LinearBatchEnsemble(
                d_in if first else self.d_block, self.d_block, self.k, "relu",
                shared_input=first, scaling_init=(init, "ones") if first else "ones",
                scaling_chunks=chunks if first else None, dtype="float32", seed=seeds[i],
                dropout=self.dropout))
        layers.append(LinearEnsemble(self.d_block, n_out, self.k, dtype="float32",
                                     seed=seeds[-1]))
        model = Sequential(layers, self._loss, dropout_seed=seed_of(rng))
        model.objective = Objective(heads=self.k)
        model.num_threads = self.num_threads
        return model

    # ---------------------------------------------------------------- fitting
    def _new_encoder(self) -> TableEncoder:
        return TableEncoder(self.categorical_features)

    def _train(self, Xt: np.ndarray, yt: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
               n_out: int, rng: np.random.RandomState) -> None:
        """AdamW (decay on linear weights only), early stopping on the heads' mean
        validation score with pytabkit's patience rule, the best epoch restored."""
        self.model_ = model = self._network(Xt, n_out, rng)
        batch = auto_batch_size(len(Xt)) if self.batch_size == "auto" else self.batch_size
        epochs = self.max_epochs or EPOCH_LIMIT
        if not self.share_training_batches:   # each member on its own batch order
            trainer = MemberRowsTrainer(model, n_out if self._loss == "cross_entropy"
                                        else None, self.weight_decay, seed_of(rng))
            self._fit_keeping_best(Xt, yt, Xv, yv, patience=self.patience, epochs=epochs,
                                   batch_size=batch, lr=self.lr, trainer=trainer)
            return
        self._fit_keeping_best(Xt, yt, Xv, yv, patience=self.patience, epochs=epochs,
                               batch_size=batch, optimizer="adamw", lr=self.lr,
                               param_groups=no_decay_groups(model, self.weight_decay),
                               seed=seed_of(rng))

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        if self.model_.objective.heads != self.k:
            raise ValueError("the network does not fit the estimator's k")


class TabMClassifier(ClassifierMixin, ClassifierPart, _TabMBase):
    """TabM for classification (see the module docstring).

    Parameters
    ----------
    k : int, default 32
        Ensemble members (heads).
    n_blocks : int, default 3
        BatchEnsemble blocks (linear, ReLU, dropout).
    d_block : int, default 512
        Their width.
    dropout : float, default 0.1
        Dropout after each block in training.
    num_embeddings : {"piecewise", None}, default "piecewise"
        "piecewise": each numeric column's piecewise-linear encoding over 48 quantile
        bins of the training rows (``fastbp.PiecewiseLinearEncoding``); None: the
        encoded columns as they are.
    categorical_features : "auto", list of int or str, or boolean mask
        Which columns are categorical ("auto": a DataFrame's category, object,
        string and boolean columns).
    max_epochs : int or None, default None
        The most epochs (None: until early stopping).
    patience : int, default 16
        Epochs without a better validation score before stopping.
    batch_size : "auto" or int, default "auto"
        "auto": by training rows (32 below 2,800 ... 1,024 from 108,000).
    lr : float, default 2e-3
        AdamW's learning rate.
    weight_decay : float, default 3e-4
        AdamW's decay of the linear weights (not biases or scalings).
    random_state : None, int or numpy RandomState
        The validation split, the initial weights, the batch orders and dropout.
    num_threads : int or None, default None
        BLAS threads of the network (None: fastbp's setting).
    share_training_batches : bool, default True
        True: every member trains on the same batches (tabm's recommended default).
        False: each member on its own batch order, drawn anew every epoch (pytabkit's
        TabM_D; the training rows are stacked k-fold per epoch, n·k·d values).

    Attributes
    ----------
    classes_ : ndarray
    model_ : fastbp.Sequential
        The trained network (float32), on encoded rows.
    encoder_ : TableEncoder
    best_epoch_ : int
        The epoch (from 1) whose parameters were kept.
    n_epochs_ : int
        The epochs trained.
    validation_scores_ : list of float
        The validation accuracy after each epoch.
    """

    classes_: np.ndarray


class TabMRegressor(RegressorMixin, RegressorPart, _TabMBase):
    """TabM for regression (see the module docstring and TabMClassifier's
    parameters); the targets are standardised for training, the prediction is the
    heads' mean, early stopping on its RMSE.

    Parameters
    ----------
    k, n_blocks, d_block, dropout, num_embeddings, categorical_features, max_epochs,
    patience, batch_size, lr, weight_decay, random_state, num_threads,
    share_training_batches
        As TabMClassifier's.
    """
