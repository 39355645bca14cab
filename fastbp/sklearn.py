"""scikit-learn estimators on the fastbp core: ``MLPClassifier`` and ``MLPRegressor``.

Drop-in counterparts of ``sklearn.neural_network.MLPClassifier``/``MLPRegressor``
(stochastic solvers only) that train a :class:`fastbp.MLP`. scikit-learn is an
optional dependency, imported by this module only (``import fastbp`` does not).

How scikit-learn's parameters map onto fastbp:

- ``solver="adam"`` is ``fastbp.Adam(eps_mode="folded")``, scikit-learn's own Adam
  (bias correction folded into the step size); ``solver="sgd"`` is ``fastbp.SGD``
  with ``momentum`` and ``nesterov=nesterovs_momentum`` (for a constant learning
  rate, PyTorch's and scikit-learn's momentum updates are the same). Only the
  constant learning rate is offered (no ``learning_rate``/``power_t``/``lbfgs``).
- ``alpha`` (L2 penalty): scikit-learn adds ``alpha * W / batch_size`` to each
  step's weight gradient. Here it is the optimizer's ``weight_decay``, set to
  ``alpha / batch_size`` for the classifier and ``2 * alpha / batch_size`` for the
  regressor (fastbp's ``mse`` has no ½, so its gradient is twice scikit-learn's
  squared error's; the factor keeps the penalty's weight relative to the data term
  the same). So a full mini-batch gets scikit-learn's penalty gradient; unlike
  scikit-learn it also decays the biases (fastbp's weight decay covers every
  parameter), and the last, smaller batch of an epoch gets the same decay as the
  others.
- Classifier: loss ``cross_entropy`` with one output per class, also for two
  classes (softmax over two logits, where scikit-learn uses one logistic
  output; the model is the same up to parametrisation). ``predict_proba`` is
  the softmax of the network's logits computed in float64, so rows sum to 1 to
  float64 precision.
- Regressor: loss ``mse``. ``loss_curve_`` and ``best_loss_`` are reported on
  scikit-learn's scale (half the mean squared error), so ``tol`` means the same
  as in scikit-learn. Predictions are float64 (exact copies of the model's
  output); 1-D ``y`` gives 1-D predictions, 2-D ``y`` 2-D ones, also for
  ``(n, 1)`` (which scikit-learn would ravel).
- ``loss_curve_[e]`` is the mean of epoch e's mini-batch losses, each taken before
  its update (as scikit-learn), without the L2 penalty term.
- ``batch_size="auto"`` is ``min(200, n_samples)``; a larger int is clipped to
  ``n_samples`` with a warning, as scikit-learn does.
- Stopping rule, exactly scikit-learn's: an epoch counts as "no improvement" when
  the training loss is not below ``best_loss_ - tol`` (with ``early_stopping``:
  the validation score, accuracy or R², not above ``best_validation_score_ +
  tol``); training stops once more than ``n_iter_no_change`` consecutive epochs
  had no improvement. Reaching ``max_iter`` otherwise warns with
  ``ConvergenceWarning``. With ``early_stopping`` the parameters of the best
  validation score are restored at the end.
- Initialisation is fastbp's (He for the rectifiers, Glorot otherwise, zero
  biases): ``model_`` is ``MLP(..., seed=rs.randint(2**31 - 1))`` with
  ``rs = check_random_state(random_state)``, whose next draw seeds the shuffling.
  The same int ``random_state`` gives bit-identical fits.
- ``partial_fit`` runs one epoch and keeps the model and optimizer (and its
  state) of earlier calls; ``n_iter_`` and ``t_`` keep counting across calls
  (scikit-learn resets ``n_iter_`` to 1). ``early_stopping=True`` is refused
  there, as in scikit-learn. ``fit`` always starts a new model.
- Invalid parameters raise ``InvalidParameterError`` (a ``ValueError`` and a
  ``TypeError``, like scikit-learn's) at ``fit``; ``__init__`` only stores them.
- ``dtype`` (``"float32"`` default, or ``"float64"``) is the model's dtype; inputs
  are converted to it by ``validate_data``. ``num_threads`` is the model's BLAS
  thread count during its calls (``None``: the process-wide setting).

Pickling (needed by joblib's process workers, e.g. ``GridSearchCV(n_jobs=2)``)
stores the fitted model as plain arrays plus its architecture and the
optimizer's ``state_dict()``, and rebuilds both on unpickling. To write a file
use :meth:`save` (fastbp's pickle-free format; the estimator's own attributes
such as ``classes_`` are not in it).
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any, TypeVar

import numpy as np
# scikit-learn ships no type information; "unused-ignore" keeps these comments harmless
# once mypy is configured to ignore it (pyproject's ignore_missing_imports list).
from sklearn.base import (  # type: ignore[import-untyped, unused-ignore]
    BaseEstimator, ClassifierMixin, RegressorMixin)
from sklearn.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    ConvergenceWarning)
from sklearn.metrics import r2_score  # type: ignore[import-untyped, unused-ignore]
from sklearn.model_selection import (  # type: ignore[import-untyped, unused-ignore]
    train_test_split)
from sklearn.utils import (  # type: ignore[import-untyped, unused-ignore]
    check_random_state, check_scalar)
from sklearn.utils.multiclass import (  # type: ignore[import-untyped, unused-ignore]
    check_classification_targets)
from sklearn.utils.validation import (  # type: ignore[import-untyped, unused-ignore]
    check_is_fitted, validate_data)

from fastbp import _validation as _fcheck
from fastbp.models import MLP
from fastbp.optim import SGD, Adam

__all__ = ["MLPClassifier", "MLPRegressor", "InvalidParameterError"]

_SEED_MAX = np.iinfo(np.int32).max
_Est = TypeVar("_Est", bound="_BaseMLP")


class InvalidParameterError(ValueError, TypeError):
    """A parameter has a wrong type or value (raised by fit, like scikit-learn's own)."""


def _activation(name: Any) -> str:
    """A fastbp activation name from scikit-learn's or fastbp's spelling."""
    fast = "sigmoid" if name == "logistic" else name
    if not isinstance(fast, str) or fast not in _fcheck.ACTIVATIONS:
        raise ValueError(f"activation must be 'logistic' or one of {_fcheck.ACTIVATIONS}, "
                         f"got {name!r}")
    return fast


def _model_state(model: MLP, optimizer: Adam | SGD) -> dict[str, Any]:
    """A fitted model and its optimizer as plain, picklable data."""
    return {"sizes": model.sizes, "activation": model.activation, "loss": model.loss_name,
            "dtype": model.dtype.name, "num_threads": model.num_threads,
            "params": [p.copy() for p in model.parameters()],
            "optimizer": optimizer.state_dict()}


def _model_from_state(d: dict[str, Any]) -> tuple[MLP, Adam | SGD]:
    model = MLP(d["sizes"], d["activation"], d["loss"], dtype=d["dtype"],
                num_threads=d["num_threads"])
    for layer, W, b in zip(model.layers, d["params"][::2], d["params"][1::2]):
        layer.W, layer.b = W, b
    sd = d["optimizer"]
    kind = {"adam": Adam, "sgd": SGD}[sd["type"]]
    optimizer = kind(model.parameters(), **sd["hyperparameters"])
    optimizer.load_state_dict(sd)
    return model, optimizer


class _BaseMLP(BaseEstimator):
    """Shared parameters, validation, training loop and pickling of the two estimators."""

    _loss: str  # the fastbp loss
    _loss_scale = 1.0  # fastbp's loss / scikit-learn's loss
    # fitted attributes (set by fit/partial_fit)
    model_: MLP
    optimizer_: Adam | SGD
    n_outputs_: int
    n_iter_: int
    t_: int
    loss_: float
    loss_curve_: list[float]
    best_loss_: float | None
    validation_scores_: list[float] | None
    best_validation_score_: float | None
    _rng: np.random.Generator
    _no_improvement_count: int
    _best_params: list[np.ndarray] | None

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 1e-4, batch_size: Any = "auto",
                 learning_rate_init: float = 1e-3, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 n_iter_no_change: int = 10, dtype: Any = "float32",
                 num_threads: int | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.num_threads = num_threads

    # ---------------------------------------------------------------- parameters
    def _check_params(self) -> tuple[int, ...]:
        """The hidden layer sizes, after checking every parameter (InvalidParameterError)."""
        try:
            return self._checked_params()
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(str(exc)) from exc

    def _checked_params(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
        for i, s in enumerate(sizes):
            check_scalar(s, f"hidden_layer_sizes[{i}]", numbers.Integral, min_val=1)
        _activation(self.activation)
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"solver must be 'adam' or 'sgd' (fastbp has no {self.solver!r}), "
                             f"got {self.solver!r}")
        real, integral = numbers.Real, numbers.Integral
        for name, kind, low, high, bounds in [
                ("alpha", real, 0, None, "left"), ("learning_rate_init", real, 0, None, "neither"),
                ("max_iter", integral, 1, None, "left"), ("tol", real, 0, None, "left"),
                ("validation_fraction", real, 0, 1, "neither"),
                ("n_iter_no_change", integral, 1, None, "left"),
                ("momentum", real, 0, 1, "both"), ("beta_1", real, 0, 1, "left"),
                ("beta_2", real, 0, 1, "left"), ("epsilon", real, 0, None, "neither")]:
            check_scalar(getattr(self, name), name, kind, min_val=low, max_val=high,
                         include_boundaries=bounds)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            check_scalar(self.batch_size, "batch_size", numbers.Integral, min_val=1)
        if self.num_threads is not None:
            check_scalar(self.num_threads, "num_threads", numbers.Integral, min_val=1)
        _fcheck.float_dtype(self.dtype)
        return sizes

    def _batch(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` larger than sample size. It is going to be clipped")
        return min(int(self.batch_size), n)

    # ---------------------------------------------------------------- fitting
    def fit(self: _Est, X: Any, y: Any) -> _Est:
        """Train a new network on (X, y) for up to ``max_iter`` epochs."""
        return self._fit(X, y, incremental=False)

    def _partial_fit(self: _Est, X: Any, y: Any, classes: Any = None) -> _Est:
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        return self._fit(X, y, incremental=True, classes=classes)

    # The two estimators differ in these four.
    def _validate_Xy(self, X: Any, y: Any, first: bool, dtype: np.dtype,
                     classes: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated X and the target in fastbp's form; on ``first``, sets n_outputs_."""
        raise NotImplementedError

    def _validation_score(self, X: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def _stratify(self, y: np.ndarray) -> np.ndarray | None:
        return None

    def _fit(self: _Est, X: Any, y: Any, incremental: bool, classes: Any = None) -> _Est:
        hidden = self._check_params()
        first = not (incremental and hasattr(self, "model_"))
        dtype = np.dtype(self.model_.dtype if not first else self.dtype)
        X, y = self._validate_Xy(X, y, first, dtype, classes)
        rs = check_random_state(self.random_state)
        if first:
            self._initialize(X.shape[1], hidden, dtype, rs)
        Xv = yv = None
        if self.early_stopping:
            X, Xv, y, yv = train_test_split(X, y, random_state=rs, stratify=self._stratify(y),
                                            test_size=self.validation_fraction)
            if Xv.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
        batch = self._batch(X.shape[0])
        opt = self.optimizer_
        decay = self._loss_scale * self.alpha / batch
        if opt.weight_decay != decay:
            opt.weight_decay = decay
        if not incremental:
            self.n_iter_ = 0
        for _ in range(1 if incremental else self.max_iter):
            history = self.model_.fit(X, y, epochs=1, batch_size=batch, optimizer=opt,
                                      shuffle=bool(self.shuffle), seed=self._rng, progress=False)
            self.n_iter_ += 1
            self.t_ += X.shape[0]
            self.loss_ = history.loss[0] / self._loss_scale
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            if self._no_improvement(Xv, yv):
                if self.verbose:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol:f} for "
                          f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                break
            if not incremental and self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                              "reached and the optimization hasn't converged yet.",
                              ConvergenceWarning)
        if self._best_params is not None:  # early stopping: the best validation score's
            for p, best in zip(self.model_.parameters(), self._best_params):
                p[...] = best
        self._best_params = None
        return self

    def _initialize(self, n_features: int, hidden: tuple[int, ...], dtype: np.dtype,
                    rs: np.random.RandomState) -> None:
        """A new model, optimizer and fit record (the model's seed is drawn first from rs)."""
        self.model_ = MLP((n_features, *hidden, self.n_outputs_), _activation(self.activation),
                          self._loss, dtype=dtype, seed=int(rs.randint(_SEED_MAX)),
                          num_threads=self.num_threads)
        self._rng = np.random.default_rng(int(rs.randint(_SEED_MAX)))  # shuffling
        params = self.model_.parameters()
        if self.solver == "adam":
            self.optimizer_ = Adam(params, lr=self.learning_rate_init,
                                   betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                                   eps_mode="folded")
        else:
            self.optimizer_ = SGD(params, lr=self.learning_rate_init, momentum=self.momentum,
                                  nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        self.n_iter_ = self.t_ = self._no_improvement_count = 0
        self.loss_curve_ = []
        self._best_params = None
        if self.early_stopping:  # scikit-learn's convention: one of the two is None
            self.best_loss_, self.validation_scores_, self.best_validation_score_ = \
                None, [], -np.inf
        else:
            self.best_loss_, self.validation_scores_, self.best_validation_score_ = \
                np.inf, None, None

    def _no_improvement(self, Xv: np.ndarray | None, yv: np.ndarray | None) -> bool:
        """Record this epoch's loss or validation score; True when training should stop."""
        if Xv is not None and yv is not None and self.validation_scores_ is not None \
                and self.best_validation_score_ is not None:  # early stopping
            score = self._validation_score(Xv, yv)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            improved = score >= self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = [p.copy() for p in self.model_.parameters()]
        else:
            best = np.inf if self.best_loss_ is None else self.best_loss_
            improved = self.loss_ <= best - self.tol
            self.best_loss_ = min(best, self.loss_)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        return self._no_improvement_count > self.n_iter_no_change

    # ---------------------------------------------------------------- predicting
    def _output(self, X: Any) -> np.ndarray:
        """The network's raw output on validated X."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.model_.dtype)
        return self.model_.forward(X)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices W (in_features, out_features) of the layers (live arrays)."""
        check_is_fitted(self)
        return [layer.W for layer in self.model_.layers]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors b of the layers (live arrays)."""
        check_is_fitted(self)
        return [layer.b for layer in self.model_.layers]

    def save(self, path: Any) -> None:
        """Write the fitted network and optimizer state with fastbp's pickle-free ``save``."""
        check_is_fitted(self)
        self.model_.save(path, optimizer=self.optimizer_)

    def to_onnx(self, path: Any = None) -> bytes:
        """The fitted estimator as ONNX with skl2onnx's conventions; see fastbp.export."""
        from fastbp.export import estimator_to_onnx
        return estimator_to_onnx(self, path)

    # ---------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if "model_" in state:  # the model holds a lock and a compiled engine
            state["model_"] = _model_state(state["model_"], state.pop("optimizer_"))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if isinstance(state.get("model_"), dict):
            state["model_"], state["optimizer_"] = _model_from_state(state["model_"])
        super().__setstate__(state)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier (softmax cross-entropy) trained by fastbp.

    Parameters are scikit-learn's ``MLPClassifier``'s (stochastic solvers) plus
    ``dtype`` and ``num_threads``; see the module docstring for how they map.

    Attributes: ``classes_``, ``n_features_in_``, ``n_outputs_`` (the number of
    classes), ``model_`` (the :class:`fastbp.MLP`), ``optimizer_`` (its fastbp
    optimizer, kept across ``partial_fit`` calls), ``loss_``, ``loss_curve_``,
    ``best_loss_``, ``validation_scores_``, ``best_validation_score_``,
    ``n_iter_``, ``t_`` (training samples seen), ``coefs_``, ``intercepts_``.
    """

    _loss = "cross_entropy"

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing the network and optimizer of earlier calls.

        ``classes`` (all labels across calls) is required on the first call.
        """
        if classes is None and not hasattr(self, "model_"):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._partial_fit(X, y, classes)

    def _validate_Xy(self, X: Any, y: Any, first: bool, dtype: np.dtype,
                     classes: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, reset=first, dtype=dtype)
        check_classification_targets(y)
        if first and classes is None:  # fit
            self.classes_, encoded = np.unique(y, return_inverse=True)
            self.n_outputs_ = len(self.classes_)
            return X, encoded
        if first:  # the first partial_fit
            self.classes_ = np.unique(classes)
            self.n_outputs_ = len(self.classes_)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call to "
                             f"partial_fit, which was {self.classes_!r}")
        encoded = np.searchsorted(self.classes_, y)
        known = self.classes_[np.minimum(encoded, len(self.classes_) - 1)] == y
        if not np.all(known):
            raise ValueError(f"y has classes not in classes_ {self.classes_}: "
                             f"{np.unique(np.asarray(y)[~known])}")
        return X, encoded

    def _stratify(self, y: np.ndarray) -> np.ndarray | None:
        return y

    def _validation_score(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.model_.predict(X) == y))

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class labels (from ``classes_``)."""
        labels = self._output(X).argmax(axis=1)
        return self.classes_[labels]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities: the log-softmax of the logits, computed in float64."""
        out = self._output(X).astype(np.float64)
        out -= out.max(axis=1, keepdims=True)
        out -= np.log(np.exp(out).sum(axis=1, keepdims=True))
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes): the softmax of the logits in float64."""
        return np.exp(self.predict_log_proba(X))


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (squared error) trained by fastbp.

    Parameters are scikit-learn's ``MLPRegressor``'s (stochastic solvers) plus
    ``dtype`` and ``num_threads``; see the module docstring for how they map.

    Attributes: ``n_features_in_``, ``n_outputs_``, ``model_`` (the
    :class:`fastbp.MLP`), ``optimizer_``, ``loss_``, ``loss_curve_`` (half the
    mean squared error, as scikit-learn), ``best_loss_``, ``validation_scores_``
    (R²), ``best_validation_score_``, ``n_iter_``, ``t_``, ``coefs_``,
    ``intercepts_``.
    """

    _loss = "mse"
    _loss_scale = 2.0  # fastbp's mse is the mean of squares, scikit-learn's half of it

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y), continuing the network and optimizer of earlier calls."""
        return self._partial_fit(X, y)

    def _validate_Xy(self, X: Any, y: Any, first: bool, dtype: np.dtype,
                     classes: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, reset=first, dtype=dtype, multi_output=True,
                             y_numeric=True)
        if first:
            self._y_2d = y.ndim == 2
            self.n_outputs_ = y.shape[1] if y.ndim == 2 else 1
        return X, y

    def _validation_score(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(r2_score(y, self.model_.forward(X).reshape(y.shape)))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, float64: shape (n,) for a 1-D training y, else (n, n_outputs)."""
        out = self._output(X).astype(np.float64)
        return out if self._y_2d else out.ravel()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
