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
with ``patience``, the best epoch's parameters restored. Every member sees the same
batches (tabm's ``share_training_batches=True``; pytabkit's TabM_D gives each member
its own order). The input is encoded by ``TableEncoder`` (fastbp/tabular/_columns.py):
numeric columns by their training quantiles onto a normal curve (missing values:
the median, plus an indicator), categorical ones one-hot.
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import (BaseEstimator, ClassifierMixin,  # type: ignore[import-untyped, unused-ignore]
                          RegressorMixin)
from scipy.sparse import issparse
from sklearn.exceptions import DataConversionWarning  # type: ignore[import-untyped, unused-ignore]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils import check_random_state  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils._param_validation import (Interval,  # type: ignore[import-untyped, unused-ignore]
                                             StrOptions)
from sklearn.utils.multiclass import check_classification_targets  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils.validation import check_is_fitted  # type: ignore[import-untyped, unused-ignore]

from fastbp import _storage
from fastbp._bins import compute_bins
from fastbp.groups import no_decay_groups
from fastbp.layers import (Layer, LinearBatchEnsemble, LinearEnsemble,
                           PiecewiseLinearEncoding)
from fastbp.models import Sequential
from fastbp.objective import Objective
from fastbp.tabular._columns import TableEncoder

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


@dataclass
class _Best:
    """The best validation score so far, its epoch (fit's, from 0) and parameters."""

    score: float = -np.inf
    epoch: int = -1
    params: list[np.ndarray] = field(default_factory=list)


def _seed(rng: np.random.RandomState) -> int:
    return int(rng.randint(0, 2**31 - 1))


class _TabMBase(BaseEstimator):
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
    }
    _loss: str
    model_: Sequential
    encoder_: TableEncoder

    def __init__(self, *, k: int = 32, n_blocks: int = 3, d_block: int = 512,
                 dropout: float = 0.1, num_embeddings: str | None = "piecewise",
                 categorical_features: Any = "auto", max_epochs: int | None = None,
                 patience: int = 16, batch_size: Any = "auto", lr: float = 2e-3,
                 weight_decay: float = 3e-4, random_state: Any = None,
                 num_threads: int | None = None) -> None:
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
        seeds = [_seed(rng) for _ in range(self.n_blocks + 1)]
        for i in range(self.n_blocks):
            first = i == 0
            layers.append(LinearBatchEnsemble(
                d_in if first else self.d_block, self.d_block, self.k, "relu",
                shared_input=first, scaling_init=(init, "ones") if first else "ones",
                scaling_chunks=chunks if first else None, dtype="float32", seed=seeds[i],
                dropout=self.dropout))
        layers.append(LinearEnsemble(self.d_block, n_out, self.k, dtype="float32",
                                     seed=seeds[-1]))
        model = Sequential(layers, self._loss, dropout_seed=_seed(rng))
        model.objective = Objective(heads=self.k)
        model.num_threads = self.num_threads
        return model

    # ---------------------------------------------------------------- fitting
    def _prepare_targets(self, y: Any, fitted: bool = False) -> np.ndarray:
        """y checked and encoded (labels as class indices); ``fitted``: for y_val,
        against what y set."""
        raise NotImplementedError

    def _val_score(self, Xv: np.ndarray, yv: np.ndarray) -> float:
        raise NotImplementedError

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
        """Train TabM on (X, y), early-stopped on (X_val, y_val).

        Parameters
        ----------
        X : pandas DataFrame or array-like of shape (n_samples, n_features)
            Numeric and categorical columns; missing values allowed.
        y : array-like of shape (n_samples,)
            Class labels, or values.
        X_val, y_val : like X and y, or None
            The validation rows for early stopping (None: 20% of X, stratified for a
            classifier, drawn with ``random_state``).

        Returns
        -------
        self
        """
        self._validate_params()
        rng = check_random_state(self.random_state)
        n = _check_table(X, type(self).__name__)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        if n < 3 and X_val is None:
            raise ValueError(f"{type(self).__name__} splits off validation rows: it needs "
                             f"n_samples >= 3, got n_samples = {n}")
        y = self._prepare_targets(y)
        if len(y) != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"X has {n} rows, y has {len(y)}")
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if X_val is None:
            n_val = -(-n // 5)   # 20%, as train_test_split rounds it
            stratify = y if self._loss == "cross_entropy" and np.bincount(y).min() >= 2 \
                and min(n_val, n - n_val) >= len(self.classes_) else None
            rows = np.arange(n)
            train, val = train_test_split(rows, test_size=0.2, random_state=_seed(rng),
                                          stratify=stratify)
            X_train, y_train = _rows(X, train), y[train]
            X_val, y_val = _rows(X, val), y[val]
        else:
            X_train, y_train = X, y
            y_val = self._prepare_targets(y_val, fitted=True)
        self.encoder_ = TableEncoder(self.categorical_features).fit(X_train)
        if self.encoder_.n_outputs == 0:
            raise ValueError("X has no column with more than one value")
        Xt = self.encoder_.transform(X_train, np.float32)
        Xv = self.encoder_.transform(X_val, np.float32)
        if len(Xt) != len(y_train) or len(Xv) != len(y_val):
            raise ValueError("X and y (X_val and y_val) must have the same number of rows")
        n_out = len(self.classes_) if self._loss == "cross_entropy" else 1
        self.model_ = model = self._network(Xt, n_out, rng)
        batch = auto_batch_size(len(Xt)) if self.batch_size == "auto" else self.batch_size
        best = _Best()
        self.validation_scores_: list[float] = []

        def early_stop(epoch: int, logs: dict[str, float]) -> bool:
            score = self._val_score(Xv, y_val)
            self.validation_scores_.append(score)
            if score > best.score:
                best.score, best.epoch = score, epoch
                best.params = [p.copy() for p in model.parameters()]
            # pytabkit's rule: stop after patience + 1 epochs without a better score
            return epoch - best.epoch > self.patience

        history = model.fit(Xt, self._train_targets(y_train),
                            epochs=self.max_epochs or EPOCH_LIMIT, batch_size=batch,
                            optimizer="adamw", lr=self.lr,
                            param_groups=no_decay_groups(model, self.weight_decay),
                            seed=_seed(rng), callbacks=[early_stop], progress=False)
        for p, saved in zip(model.parameters(), best.params):
            p[...] = saved
        self.best_epoch_ = best.epoch + 1
        self.n_epochs_ = len(history.loss)
        self.loss_curve_ = list(history.loss)
        self.n_features_in_ = len(self.encoder_.columns_)
        return self

    def _train_targets(self, y: np.ndarray) -> np.ndarray:
        return y

    def _encode(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        _check_table(X, type(self).__name__, self.n_features_in_)
        return self.encoder_.transform(X, np.float32)

    # ---------------------------------------------------------------- files
    def save(self, path: Any) -> None:
        """Write the fitted estimator (encoder, network, classes, settings) without
        pickle; ``fastbp.load(path)`` returns it.

        Parameters
        ----------
        path : str, bytes or os.PathLike
            The file to write (replaced atomically); its directory must exist.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        """
        check_is_fitted(self)
        header, arrays = self.model_.model_archive("model/")
        enc_spec, enc_arrays = self.encoder_.to_spec()
        arrays.update(enc_arrays)
        params = {name: value for name, value in self.get_params().items()
                  if name not in ("random_state", "categorical_features")}
        state: dict[str, Any] = {"best_epoch": self.best_epoch_, "n_epochs": self.n_epochs_,
                                 "validation_scores": [float(v) for v in
                                                       self.validation_scores_]}
        if isinstance(self, TabMClassifier):
            state["classes"] = _classes_spec(self.classes_)
        else:
            state["y_mean"], state["y_std"] = self.y_mean_, self.y_std_
        _storage.write_archive(path, {"kind": "tabular", "estimator": type(self).__name__,
                                      "params": params, "encoder": enc_spec,
                                      "model": header, "state": state}, arrays)

    def to_onnx(self, path: Any = None) -> bytes:
        """The fitted estimator as ONNX, its table encoding included: inputs ``"X_num"``
        (the numeric columns, float64, NaN missing) and ``"X_cat"`` (the categorical
        columns as text, "" missing); outputs ``"label"`` and ``"probabilities"`` (a
        classifier) or ``"variable"`` (a regressor). See fastbp/tabular/_export.py.

        Parameters
        ----------
        path : str, os.PathLike or None, default None
            Where to write the graph too (atomically).

        Returns
        -------
        bytes
            The serialized model.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        ImportError
            The onnx package is missing.
        """
        check_is_fitted(self)
        from fastbp.tabular._export import tabular_to_onnx
        return tabular_to_onnx(self, path)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.non_deterministic = False
        return tags


def _check_table(X: Any, who: str, n_features: int | None = None) -> int:
    """The rows of a table X, after the checks scikit-learn's estimators make (their
    messages): not sparse, not complex, 2-D, with rows and columns (``n_features`` of
    them when given)."""
    if issparse(X):
        raise TypeError(f"{who} takes dense tables (a DataFrame or an array); sparse input "
                        "is not supported")
    if not hasattr(X, "iloc"):
        arr = np.asarray(X)
        if np.iscomplexobj(arr):
            raise ValueError("Complex data not supported")
        if arr.ndim != 2:
            raise ValueError(f"Expected a 2-D table, got shape {arr.shape}. Reshape your data "
                             "either using array.reshape(-1, 1) if your data has a single "
                             "feature or array.reshape(1, -1) if it contains a single sample.")
        shape = arr.shape
    else:
        shape = X.shape
    if shape[1] == 0:
        raise ValueError(f"0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
    if shape[0] == 0:
        raise ValueError(f"0 sample(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(f"X has {shape[1]} features, but {who} is expecting {n_features} "
                         "features as input.")
    return int(shape[0])


def _one_column(y: np.ndarray, what: str) -> np.ndarray:
    """y as 1-D (an (n, 1) column accepted, with scikit-learn's warning), else a
    ValueError saying ``what`` it holds."""
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                      "change the shape of y to (n_samples, ), for example using ravel().",
                      DataConversionWarning, stacklevel=3)
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D {what}, got shape {y.shape}")
    return y


def _rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of a DataFrame or an array."""
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    return np.asarray(X)[rows]


class TabMClassifier(ClassifierMixin, _TabMBase):
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

    _loss = "cross_entropy"
    classes_: np.ndarray

    def _prepare_targets(self, y: Any, fitted: bool = False) -> np.ndarray:
        y = _one_column(np.asarray(y), "class labels")
        check_classification_targets(y)
        if fitted:
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            try:
                return np.array([index[c] for c in y.tolist()], dtype=np.intp)
            except KeyError as exc:
                raise ValueError(f"y_val holds a class not in y: {exc.args[0]!r}") from exc
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y needs at least two classes, got {len(self.classes_)}")
        return codes.astype(np.intp)

    def _val_score(self, Xv: np.ndarray, yv: np.ndarray) -> float:
        return float(np.mean(self.model_.predict_proba(Xv).argmax(axis=1) == yv))

    def predict_proba(self, X: Any) -> np.ndarray:
        """The mean of the k heads' class probabilities.

        Parameters
        ----------
        X : pandas DataFrame or array-like
            Rows like the training table.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        X = self._encode(X)
        return self.model_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The class of the largest mean probability.

        Parameters
        ----------
        X : pandas DataFrame or array-like
            Rows like the training table.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)   # (first: its not-fitted check)
        return self.classes_[proba.argmax(axis=1)]


class TabMRegressor(RegressorMixin, _TabMBase):
    """TabM for regression (see the module docstring and TabMClassifier's
    parameters); the targets are standardised for training, the prediction is the
    heads' mean, early stopping on its RMSE.

    Parameters
    ----------
    k, n_blocks, d_block, dropout, num_embeddings, categorical_features, max_epochs,
    patience, batch_size, lr, weight_decay, random_state, num_threads
        As TabMClassifier's.
    """

    _loss = "mse"

    def _prepare_targets(self, y: Any, fitted: bool = False) -> np.ndarray:
        y = _one_column(np.asarray(y, dtype=np.float64), "values")
        if not np.isfinite(y).all():
            raise ValueError("y must be finite")
        if not fitted:
            self.y_mean_ = float(y.mean())
            self.y_std_ = float(y.std()) or 1.0
        return y

    def _train_targets(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.y_mean_) / self.y_std_).astype(np.float32)

    def _val_score(self, Xv: np.ndarray, yv: np.ndarray) -> float:
        pred = self.model_.predict(Xv).astype(np.float64) * self.y_std_ + self.y_mean_
        return -float(np.sqrt(np.mean((pred.reshape(-1) - yv) ** 2)))

    def predict(self, X: Any) -> np.ndarray:
        """The heads' mean prediction.

        Parameters
        ----------
        X : pandas DataFrame or array-like
            Rows like the training table.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = self._encode(X)
        raw = self.model_.predict(X).astype(np.float64).reshape(-1)
        return raw * self.y_std_ + self.y_mean_


def _classes_spec(classes: np.ndarray) -> dict[str, Any]:
    """Class labels for a file: integers, or text (other labels are refused)."""
    if classes.dtype.kind in "biu":
        return {"type": "int", "values": [int(c) for c in classes]}
    if classes.dtype.kind in "OUS" and all(isinstance(c, str) for c in classes.tolist()):
        return {"type": "str", "values": [str(c) for c in classes]}
    if classes.dtype.kind == "f" and all(float(c).is_integer() for c in classes):
        return {"type": "float", "values": [float(c) for c in classes]}
    raise ValueError(f"cannot save class labels of dtype {classes.dtype} (integers, whole "
                     f"floats and strings can be saved)")


def from_archive(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> _TabMBase:
    """The estimator a ``save``d file describes (``fastbp.load``'s "tabular" kind).

    Parameters
    ----------
    header : dict
        The file's header.
    arrays : dict of str to ndarray
        The file's arrays; the ones read are removed.

    Returns
    -------
    TabMClassifier or TabMRegressor
    """
    classes = {"TabMClassifier": TabMClassifier, "TabMRegressor": TabMRegressor}
    cls = classes.get(header["estimator"])
    if cls is None:
        raise ValueError(f"unknown estimator {header['estimator']!r}")
    est = cls(**header["params"])
    est.encoder_ = TableEncoder.from_spec(header["encoder"], arrays)
    model_header = dict(header["model"])
    est.model_, _ = Sequential.from_archive(model_header, arrays, "model/")
    state = header["state"]
    est.best_epoch_, est.n_epochs_ = int(state["best_epoch"]), int(state["n_epochs"])
    est.validation_scores_ = [float(v) for v in state["validation_scores"]]
    est.n_features_in_ = len(est.encoder_.columns_)
    if isinstance(est, TabMClassifier):
        spec = state["classes"]
        dtype = {"int": np.int64, "str": object, "float": np.float64}[spec["type"]]
        est.classes_ = np.array(spec["values"], dtype=dtype)
        n_out = len(est.classes_)
    else:
        est.y_mean_, est.y_std_ = float(state["y_mean"]), float(state["y_std"])
        n_out = 1
    if est.model_.objective.heads != est.k or est.model_.target_width != n_out \
            or est.model_.in_features != est.encoder_.n_outputs:
        raise ValueError("the network does not fit the estimator's encoder and classes")
    return est
