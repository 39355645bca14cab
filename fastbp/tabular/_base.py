"""What the tabular estimators share: the scikit-learn checks of a table and of y, the
validation split, the encoder and network hooks, files, ONNX, and the classifier and
regressor halves (targets, validation score, predictions).

A family (TabM: tabm.py, RealMLP: realmlp.py) subclasses ``TabularEstimator`` with
``_new_encoder`` (its ``TableEncoder`` scheme), ``_train`` (builds ``model_`` and trains
it) and ``_fit_state``/``_load_state`` (what its files keep besides the network), and
mixes in ``ClassifierPart`` or ``RegressorPart``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator  # type: ignore[import-untyped, unused-ignore]
from sklearn.exceptions import DataConversionWarning  # type: ignore[import-untyped, unused-ignore]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils import check_random_state  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils.multiclass import check_classification_targets  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils.validation import check_is_fitted  # type: ignore[import-untyped, unused-ignore]

from fastbp import _storage
from fastbp.models import Sequential
from fastbp.tabular._columns import TableEncoder

__all__ = ["TabularEstimator", "ClassifierPart", "RegressorPart", "from_archive"]


@dataclass
class Best:
    """The best validation score so far, its epoch (fit's, from 0) and parameters."""

    score: float = -np.inf
    epoch: int = -1
    params: list[np.ndarray] = field(default_factory=list)

    def offer(self, score: float, epoch: int, params: list[np.ndarray],
              ties: bool = False) -> None:
        """Keep (score, epoch, a copy of params) if the score is better (``ties``: or
        equal, the later epoch winning)."""
        if score > self.score or (ties and score == self.score):
            self.score, self.epoch = score, epoch
            self.params = [p.copy() for p in params]

    def restore(self, params: list[np.ndarray]) -> None:
        """Copy the kept parameters into ``params``."""
        for p, saved in zip(params, self.params):
            p[...] = saved


def seed_of(rng: np.random.RandomState) -> int:
    """A seed drawn from the estimator's random state."""
    return int(rng.randint(0, 2**31 - 1))


def check_table(X: Any, who: str, n_features: int | None = None) -> int:
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


def one_column(y: np.ndarray, what: str) -> np.ndarray:
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


def rows(X: Any, index: np.ndarray) -> Any:
    """Rows of a DataFrame or an array."""
    if hasattr(X, "iloc"):
        return X.iloc[index]
    return np.asarray(X)[index]


def classes_spec(classes: np.ndarray) -> dict[str, Any]:
    """Class labels for a file: integers, or text (other labels are refused)."""
    if classes.dtype.kind == "b":
        return {"type": "bool", "values": [bool(c) for c in classes]}
    if classes.dtype.kind in "iu":
        return {"type": "int", "values": [int(c) for c in classes]}
    if classes.dtype.kind in "OUS" and all(isinstance(c, str) for c in classes.tolist()):
        return {"type": "str", "values": [str(c) for c in classes]}
    if classes.dtype.kind == "f" and all(float(c).is_integer() for c in classes):
        return {"type": "float", "values": [float(c) for c in classes]}
    raise ValueError(f"cannot save class labels of dtype {classes.dtype} (integers, whole "
                     f"floats and strings can be saved)")


def _json_param(value: Any) -> bool:
    """Whether a parameter value goes into a file: None, a bool, a number, a string
    (NumPy's scalars included), or a list/tuple of those."""
    if isinstance(value, (list, tuple)):
        return all(_json_param(v) and not isinstance(v, (list, tuple)) for v in value)
    return value is None or isinstance(value, (bool, int, float, str, np.bool_, np.integer,
                                               np.floating, np.str_))


def _plain(value: Any) -> Any:
    """A _json_param value as JSON holds it (NumPy's scalars as Python's)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


class TabularEstimator(BaseEstimator):
    """The fit skeleton and what follows a fit (see the module docstring)."""

    _loss: str
    model_: Sequential
    encoder_: TableEncoder
    categorical_features: Any
    random_state: Any
    best_epoch_: int
    n_epochs_: int
    validation_scores_: list[float]

    # ---------------------------------------------------------------- hooks
    def _new_encoder(self) -> TableEncoder:
        raise NotImplementedError

    def _train(self, Xt: np.ndarray, yt: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
               n_out: int, rng: np.random.RandomState) -> None:
        """Build ``model_`` for the encoded training rows and train it."""
        raise NotImplementedError

    def _fit_state(self) -> dict[str, Any]:
        """What a file keeps of the fit besides the network, encoder and targets' state."""
        return {"best_epoch": self.best_epoch_, "n_epochs": self.n_epochs_,
                "validation_scores": [float(v) for v in self.validation_scores_]}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.best_epoch_, self.n_epochs_ = int(state["best_epoch"]), int(state["n_epochs"])
        self.validation_scores_ = [float(v) for v in state["validation_scores"]]

    def _fit_keeping_best(self, Xt: np.ndarray, yt: np.ndarray, Xv: np.ndarray,
                          yv: np.ndarray, *, ties: bool = False, patience: int | None = None,
                          next_epoch: Any = None, trainer: Any = None,
                          **fit_args: Any) -> None:
        """``model_.fit`` on the encoded rows, scoring the validation rows after each
        epoch (``validation_scores_``), keeping the best epoch's parameters (``ties``:
        the later of equal scores) and restoring them at the end (``best_epoch_``, from
        1). ``patience``: stop after that many + 1 epochs without a better score
        (pytabkit's rule); ``next_epoch(e)``: called before epoch e > 0 (schedules).
        ``trainer(X, targets, after_epoch, **fit_args)``, if given, runs the epochs
        instead of ``model_.fit`` (calling ``after_epoch(epoch, logs)`` after each, with
        ``model_`` holding that epoch's parameters, and stopping when it returns True)
        and returns the epochs' training losses."""
        model = self.model_
        best = Best()
        self.validation_scores_: list[float] = []

        def after_epoch(epoch: int, logs: dict[str, float]) -> bool:
            score = self._val_score(Xv, yv)
            self.validation_scores_.append(score)
            best.offer(score, epoch, model.parameters(), ties=ties)
            if next_epoch is not None:
                next_epoch(epoch + 1)
            return patience is not None and epoch - best.epoch > patience

        if trainer is None:
            losses = list(model.fit(Xt, self._train_targets(yt), callbacks=[after_epoch],
                                    progress=False, **fit_args).loss)
        else:
            losses = trainer(Xt, self._train_targets(yt), after_epoch, **fit_args)
        best.restore(model.parameters())
        self.best_epoch_ = best.epoch + 1
        self.n_epochs_ = len(losses)
        self.loss_curve_ = losses

    # the classifier/regressor half
    def _prepare_targets(self, y: Any, fitted: bool = False) -> np.ndarray:
        raise NotImplementedError

    def _train_targets(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _val_score(self, Xv: np.ndarray, yv: np.ndarray) -> float:
        raise NotImplementedError

    def _targets_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_targets_state(self, state: dict[str, Any]) -> int:
        raise NotImplementedError

    # ---------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
        """Train on (X, y), the best epoch chosen on (X_val, y_val).

        Parameters
        ----------
        X : pandas DataFrame or array-like of shape (n_samples, n_features)
            Numeric and categorical columns; missing values allowed.
        y : array-like of shape (n_samples,)
            Class labels, or values.
        X_val, y_val : like X and y, or None
            The validation rows (None: 20% of X, stratified for a classifier, drawn
            with ``random_state``).

        Returns
        -------
        self
        """
        self._validate_params()
        rng = check_random_state(self.random_state)
        n = check_table(X, type(self).__name__)
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
            train, val = train_test_split(np.arange(n), test_size=0.2, random_state=seed_of(rng),
                                          stratify=stratify)
            X_train, y_train = rows(X, train), y[train]
            X_val, y_val = rows(X, val), y[val]
        else:
            X_train, y_train = X, y
            y_val = self._prepare_targets(y_val, fitted=True)
        self.encoder_ = self._new_encoder().fit(X_train)
        if self.encoder_.n_outputs == 0:
            raise ValueError("X has no column with more than one value")
        Xt = self.encoder_.transform(X_train, np.float32)
        Xv = self.encoder_.transform(X_val, np.float32)
        if len(Xt) != len(y_train) or len(Xv) != len(y_val):
            raise ValueError("X and y (X_val and y_val) must have the same number of rows")
        n_out = len(self.classes_) if self._loss == "cross_entropy" else 1
        self._train(Xt, y_train, Xv, y_val, n_out, rng)
        self.n_features_in_ = len(self.encoder_.columns_)
        return self

    def _encode(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        check_table(X, type(self).__name__, self.n_features_in_)
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
        params = {name: _plain(value) for name, value in self.get_params().items()
                  if _json_param(value)}   # (a RandomState or an array mask is left out)
        state = {**self._fit_state(), **self._targets_state()}
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


class ClassifierPart:
    """A classifier's targets (class indices), validation accuracy, probabilities
    (the network's, the mean of its heads) and labels."""

    _loss = "cross_entropy"
    classes_: np.ndarray
    model_: Sequential

    def _prepare_targets(self, y: Any, fitted: bool = False) -> np.ndarray:
        y = one_column(np.asarray(y), "class labels")
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

    def _train_targets(self, y: np.ndarray) -> np.ndarray:
        return y

    def _val_score(self, Xv: np.ndarray, yv: np.ndarray) -> float:
        """The validation accuracy."""
        return float(np.mean(self.model_.predict_proba(Xv).argmax(axis=1) == yv))

    def _targets_state(self) -> dict[str, Any]:
        return {"classes": classes_spec(self.classes_)}

    def _load_targets_state(self, state: dict[str, Any]) -> int:
        spec = state["classes"]
        dtype = {"int": np.int64, "str": object, "float": np.float64, "bool": bool}[spec["type"]]
        self.classes_ = np.array(spec["values"], dtype=dtype)
        return len(self.classes_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The class probabilities (a TabM: the mean of its k heads').

        Parameters
        ----------
        X : pandas DataFrame or array-like
            Rows like the training table.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        X = self._encode(X)   # type: ignore[attr-defined]
        return self.model_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The class of the largest probability.

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


class RegressorPart:
    """A regressor's targets (standardised for training), validation score (−RMSE),
    predictions (the network's, back on y's scale; clipped to ``y_range_`` where the
    family clips)."""

    _loss = "mse"
    model_: Sequential
    y_mean_: float
    y_std_: float
    #: (min, max) of the training targets that predictions are clipped to (None: not)
    y_range_: tuple[float, float] | None = None

    def _prepare_targets(self, y: Any, fitted: bool = False) -> np.ndarray:
        y = one_column(np.asarray(y, dtype=np.float64), "values")
        if not np.isfinite(y).all():
            raise ValueError("y must be finite")
        if not fitted:
            self.y_mean_ = float(y.mean())
            self.y_std_ = float(y.std()) or 1.0
        return y

    def _train_targets(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.y_mean_) / self.y_std_).astype(np.float32)

    def _unscaled(self, Xe: np.ndarray) -> np.ndarray:
        """The prediction for encoded rows, on y's scale."""
        out = self.model_.predict(Xe).astype(np.float64).reshape(-1) * self.y_std_ + self.y_mean_
        if self.y_range_ is not None:
            out = np.clip(out, *self.y_range_)
        return out

    def _val_score(self, Xv: np.ndarray, yv: np.ndarray) -> float:
        """−RMSE on the validation rows."""
        return -float(np.sqrt(np.mean((self._unscaled(Xv) - yv) ** 2)))

    def _targets_state(self) -> dict[str, Any]:
        return {"y_mean": self.y_mean_, "y_std": self.y_std_,
                "y_range": None if self.y_range_ is None else list(self.y_range_)}

    def _load_targets_state(self, state: dict[str, Any]) -> int:
        self.y_mean_, self.y_std_ = float(state["y_mean"]), float(state["y_std"])
        rng = state.get("y_range")
        self.y_range_ = None if rng is None else (float(rng[0]), float(rng[1]))
        return 1

    def predict(self, X: Any) -> np.ndarray:
        """The prediction (a TabM: its heads' mean).

        Parameters
        ----------
        X : pandas DataFrame or array-like
            Rows like the training table.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._unscaled(self._encode(X))   # type: ignore[attr-defined]


def from_archive(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> TabularEstimator:
    """The estimator a ``save``d file describes (``fastbp.load``'s "tabular" kind).

    Parameters
    ----------
    header : dict
        The file's header.
    arrays : dict of str to ndarray
        The file's arrays; the ones read are removed.

    Returns
    -------
    TabMClassifier, TabMRegressor, RealMLPClassifier or RealMLPRegressor
    """
    from fastbp.tabular import ESTIMATORS
    cls = ESTIMATORS.get(header["estimator"])
    if cls is None:
        raise ValueError(f"unknown estimator {header['estimator']!r}")
    est = cls(**header["params"])
    est.encoder_ = TableEncoder.from_spec(header["encoder"], arrays)
    est.model_, _ = Sequential.from_archive(dict(header["model"]), arrays, "model/")
    state = header["state"]
    est._load_state(state)
    n_out = est._load_targets_state(state)
    est.n_features_in_ = len(est.encoder_.columns_)
    if est.model_.target_width != n_out or est.model_.in_features != est.encoder_.n_outputs:
        raise ValueError("the network does not fit the estimator's encoder and classes")
    return est
