"""scikit-learn estimators on the fastbp core: ``MLPClassifier`` and ``MLPRegressor``.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier``/``MLPRegressor``
(scikit-learn 1.9): every ``__init__`` parameter with its name, default and
meaning, the same fitted attributes, and -- with the same data, an integer
``random_state`` and float64 -- the same numbers. scikit-learn is an optional
dependency, imported by this module only (``import fastbp`` does not).

How the same numbers come about (each point is what scikit-learn's
``_multilayer_perceptron.py``, ``_base.py`` and ``_stochastic_optimizers.py`` do):

- The random stream: ``check_random_state(random_state)`` at every ``fit``/
  ``partial_fit``; on a first fit the initial weights and biases are drawn from it
  layer by layer (``uniform(±sqrt(f/(fan_in+fan_out)))``, f = 2 for logistic, else 6);
  then the early-stopping split (scikit-learn's own ``train_test_split`` on the same
  stream, stratified for binary problems only) and each epoch's
  ``sklearn.utils.shuffle`` of the previous order. That order goes to fastbp's
  compiled epoch loop, which gathers the rows (and weights) of each mini-batch.
- The objective: the output layer's gradient is ``(activation - y)·w_i/Σw`` summed
  over outputs, the penalty ``alpha·W/Σw`` on the weights (not the biases) with
  ``½·alpha·ΣW²/Σw`` in the reported loss, all per mini-batch. fastbp's engine runs
  its own losses (cross-entropy from logits, binary cross-entropy for one logistic
  output or multilabel targets, mse, poisson) under a loss convention that scales
  the gradient and the loss value to scikit-learn's and adds that penalty
  (``fastbp.Objective``, set as ``model.objective``).
- The solvers: ``adam`` is fastbp's Adam with ``eps_mode="folded"`` (scikit-learn's
  form); ``sgd`` is fastbp's SGD with momentum/Nesterov, whose buffer is rescaled by
  lr_old/lr_new whenever ``invscaling``/``adaptive`` change the learning rate, so the
  steps stay scikit-learn's velocity form ``v = μv - lr·g``; ``lbfgs`` is
  ``scipy.optimize.minimize(method="L-BFGS-B")`` on scikit-learn's packed parameter
  vector with the options scikit-learn passes, the loss and gradient from fastbp's
  compiled full-batch forward/backward.
- The learning-rate rules, the ``tol``/``n_iter_no_change`` logic, early stopping,
  ``warm_start`` (a new optimizer, the old weights) and ``partial_fit`` (one epoch,
  the optimizer kept) are scikit-learn's, line for line.

What differs: the loss values in ``loss_curve_`` come from logits (log-sum-exp)
instead of clipped probabilities, so they agree with scikit-learn's to rounding
except where a probability is within float eps of 0 or 1 (scikit-learn clips there).
Sparse X is refused. fastbp's extras are keyword-only: ``dtype`` (None: float32
for float32 X, else float64, as scikit-learn), ``num_threads``, ``dropout`` (see
below), the classifier's ``class_weight`` (fastbp/_class_weight.py) and the other
fastbp activations (``"sigmoid"`` is ``"logistic"``).

``dropout=p`` builds the network as ``fastbp.MLP(..., dropout=p)`` (every hidden
layer's output, in training steps only; predictions never apply it). Its masks'
seed is one draw from the estimator's random stream right after the initial
weights (only when p > 0, so dropout=0 keeps scikit-learn's stream and numbers):
an integer ``random_state`` gives the same masks at every fit. The stochastic
solvers only (L-BFGS needs a deterministic loss). ``class_weight`` multiplies the
sample weights (fit and partial_fit, the early-stopping validation score included):
fitting with it is fitting with ``sample_weight`` times the per-sample class weights.

A fit or partial_fit whose arguments or data fail a check raises before anything
about the estimator changed (its attributes are restored as they were).

Pickling (needed by joblib's process workers, e.g. ``GridSearchCV(n_jobs=2)``)
stores the network through its own pickling (the arrays come back writable even
where joblib memory-maps them) and the optimizer as its ``state_dict()``. To
write a file use :meth:`save` (fastbp's pickle-free format).
"""
from __future__ import annotations

import dataclasses
import numbers
import warnings
from itertools import chain
from typing import Any, Generator, TypeVar

import numpy as np
import scipy.optimize
from scipy.sparse import issparse
from scipy.special import expit, xlogy
# scikit-learn ships no type information; "unused-ignore" keeps these comments harmless
# once mypy is configured to ignore it (pyproject's ignore_missing_imports list).
from sklearn.base import (  # type: ignore[import-untyped, unused-ignore]
    BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier)
from sklearn.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    ConvergenceWarning)
from sklearn.metrics import (  # type: ignore[import-untyped, unused-ignore]
    accuracy_score, r2_score)
from sklearn.model_selection import (  # type: ignore[import-untyped, unused-ignore]
    train_test_split)
from sklearn.neural_network._multilayer_perceptron import (  # type: ignore[import-untyped, unused-ignore]
    BaseMultilayerPerceptron as _SkBase)
from sklearn.preprocessing import LabelBinarizer  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils import (  # type: ignore[import-untyped, unused-ignore]
    check_random_state, column_or_1d)
from sklearn.utils._param_validation import (  # type: ignore[import-untyped, unused-ignore]
    Interval, InvalidParameterError, StrOptions)
from sklearn.utils.fixes import (  # type: ignore[import-untyped, unused-ignore]
    _get_additional_lbfgs_options_dict)
from sklearn.utils.metaestimators import (  # type: ignore[import-untyped, unused-ignore]
    available_if)
from sklearn.utils.multiclass import (  # type: ignore[import-untyped, unused-ignore]
    _check_partial_fit_first_call, type_of_target, unique_labels)
from sklearn.utils.optimize import (  # type: ignore[import-untyped, unused-ignore]
    _check_optimize_result)
from sklearn.utils.validation import (  # type: ignore[import-untyped, unused-ignore]
    _check_sample_weight, check_is_fitted, validate_data)

from fastbp import _class_weight
from fastbp import _validation as _fcheck
from fastbp._fitted_arrays import assign_list, layer_property
from fastbp.export import estimator_to_onnx
from fastbp._lockstep import EpochRequest, run_alone
from fastbp.layers import Dense
from fastbp.models import MLP
from fastbp.objective import Objective
from fastbp.training import EPOCH_DONE, EPOCH_INTERRUPTED, EPOCH_NONFINITE, TrainingData
from fastbp.optim import SGD, Adam, from_state_dict

__all__ = ["MLPClassifier", "MLPRegressor", "MLPSearchCV", "InvalidParameterError"]

_Est = TypeVar("_Est", bound="_BaseMLP")
_STOCHASTIC = ("sgd", "adam")
#: scikit-learn's hidden activations and fastbp's other ones (softmax is no hidden one)
_HIDDEN = ("identity", "logistic", "tanh", "relu") + tuple(
    a for a in _fcheck.ACTIVATIONS if a not in ("identity", "tanh", "relu", "softmax"))


#: an epoch read an out-of-range row index or label: the arrays changed under it
_CHANGED_DURING_FIT = ("a row index or class label went out of range during the fit (were X "
                       "or y changed while it ran?)")


def _dense_layers(model: MLP) -> list[Dense]:
    """The estimator's network's layers, which are Dense (it builds an MLP)."""
    layers = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert len(layers) == len(model.layers)
    return layers


def _fast_activation(name: str) -> str:
    return "sigmoid" if name == "logistic" else name


def _out_activation(name: str, out: np.ndarray) -> np.ndarray:
    """The output activation on the raw output, as scikit-learn's ACTIVATIONS compute it."""
    if name == "identity":
        return out
    if name == "exp":
        return np.exp(out)
    if name == "logistic":
        return expit(out)
    tmp = out - out.max(axis=1)[:, np.newaxis]   # softmax
    np.exp(tmp, out=tmp)
    tmp /= tmp.sum(axis=1)[:, np.newaxis]
    return tmp


def _shuffle(idx: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
    """``sklearn.utils.shuffle(idx, random_state=random_state)`` without its per-call
    parameter validation (~3 ms, a digits epoch's worth): resample(replace=False)
    shuffles arange(n) in place with the state and indexes with it."""
    perm = np.arange(idx.shape[0])
    random_state.shuffle(perm)
    return idx[perm]


class _BaseMLP(BaseEstimator):
    """Shared parameters, training (scikit-learn's _fit, _fit_stochastic, _fit_lbfgs)
    and pickling of the two estimators."""

    _parameter_constraints: dict = {
        **_SkBase._parameter_constraints,
        "activation": [StrOptions(set(_HIDDEN))],
        "num_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    }
    _fast_loss: str  # set by _initialize: the fastbp loss
    model_: MLP
    optimizer_: Adam | SGD
    loss_curve_: list[float]
    validation_scores_: list[float] | None
    best_validation_score_: float | None
    best_loss_: float | None

    def __init__(self, hidden_layer_sizes: Any, activation: str, solver: str, alpha: float,
                 batch_size: Any, learning_rate: str, learning_rate_init: float,
                 power_t: float, max_iter: int, loss: str, shuffle: bool, random_state: Any,
                 tol: float, verbose: Any, warm_start: bool, momentum: float,
                 nesterovs_momentum: bool, early_stopping: bool, validation_fraction: float,
                 beta_1: float, beta_2: float, epsilon: float, n_iter_no_change: Any,
                 max_fun: int, dtype: Any, num_threads: int | None,
                 dropout: float) -> None:
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.num_threads = num_threads
        self.dropout = dropout

    # ---------------------------------------------------------------- fitted arrays
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # coefs_/intercepts_: lists of the network's live arrays; assignable before a fit
    coefs_ = layer_property("coefs_", lambda est: [layer.W for layer in _dense_layers(
        est.model_)])
    intercepts_ = layer_property("intercepts_", lambda est: [layer.b for layer in
                                                             _dense_layers(est.model_)])

    # ---------------------------------------------------------------- the two differ here
    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool,
                        dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _fast_target(self, y: np.ndarray) -> np.ndarray:
        """scikit-learn's 2-D target in the form fastbp's loss takes."""
        raise NotImplementedError

    def _score(self, X: np.ndarray, y: np.ndarray, sample_weight: Any = None) -> float:
        raise NotImplementedError

    def _loss_constant(self, y: np.ndarray) -> np.ndarray | None:
        """Per sample, what scikit-learn's loss adds to fastbp's (None: nothing)."""
        return None

    def _with_class_weight(self, y: np.ndarray,
                           sample_weight: np.ndarray | None) -> np.ndarray | None:
        """The sample weights training uses (the classifier multiplies in class_weight)."""
        return sample_weight

    # ---------------------------------------------------------------- fitting
    def _dtype(self, X: Any) -> Any:
        """The dtype validate_data converts X to: the network's after the first pass,
        else ``dtype`` or (None) scikit-learn's rule, float32 stays, the rest float64."""
        if self.dtype is not None:
            try:
                return _fcheck.float_dtype(self.dtype)
            except TypeError as exc:
                raise InvalidParameterError(f"The 'dtype' parameter {exc}") from exc
        return (np.float64, np.float32)

    def _dropout_rate(self, n_hidden: int, first_pass: bool) -> float:
        """The checked ``dropout`` (scikit-learn's constraint passed: a real in [0, 1))."""
        try:
            p = _fcheck.dropout_rate(self.dropout)   # also refuses a bool
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"The 'dropout' parameter of {type(self).__name__} "
                                        f"{exc}") from exc
        if p and self.solver not in _STOCHASTIC:
            raise ValueError(f"dropout={p} needs a stochastic solver ('adam' or 'sgd'); "
                             f"solver={self.solver!r} minimizes a deterministic loss")
        if p and n_hidden == 0:
            raise ValueError(f"dropout={p} needs a hidden layer (it applies to hidden layers' "
                             "outputs); hidden_layer_sizes has none")
        if not first_pass and self.model_.layers[0].dropout != p and len(self.model_.layers) > 1:
            raise ValueError(f"the network was built with dropout="
                             f"{self.model_.layers[0].dropout}; a new dropout={p} takes effect "
                             "at the next fit without warm_start")
        return p

    def _fit(self: _Est, X: Any, y: Any, sample_weight: Any = None,
             incremental: bool = False, before: dict[str, Any] | None = None) -> _Est:
        """Check everything, then train. A failing check restores the attributes as they
        were (``before``, if given, is the state from before the caller's own changes)."""
        for _ in self._fit_epochs(X, y, sample_weight, incremental, before):
            pass
        return self

    def _fit_epochs(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False,
                    before: dict[str, Any] | None = None, requests: bool = False
                    ) -> Generator[Any, Any, None]:
        """``_fit`` one epoch at a time: yields ``n_iter_`` after each stochastic epoch
        (lbfgs: once, at the end). The checks run at the first ``next``. A caller that
        stops iterating (``close()``) leaves the estimator as after that epoch: a fit
        of that many epochs (what successive halving keeps of a pruned candidate).
        With ``requests``, each compiled epoch is yielded as an EpochRequest too, and
        the caller sends back its run_epoch results (fastbp._lockstep runs the epochs
        of many fits as packs)."""
        state = dict(self.__dict__) if before is None else before
        try:
            X, y, sample_weight, layer_units, first_pass, dropout = self._checked_fit_inputs(
                X, y, sample_weight, incremental)
            if first_pass:
                self._initialize(y, layer_units, X.dtype, dropout,
                                 self._given_weights(incremental))
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise
        if self.solver in _STOCHASTIC:
            steps = self._stochastic_steps(X, y, sample_weight, incremental)
            yield from (steps if requests else run_alone(steps))
        else:
            self._fit_lbfgs(X, y, sample_weight)
            yield self.n_iter_
        if not all(np.isfinite(w).all() for w in chain(self.coefs_, self.intercepts_)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may"
                             " contain large values and need to be preprocessed.")

    def _checked_fit_inputs(self, X: Any, y: Any, sample_weight: Any, incremental: bool
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[int],
                                       bool, float]:
        """(X, 2-D y, the sample weights training uses, layer units, first pass, dropout)."""
        self._validate_params()
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden_layer_sizes}.")
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        dtype = self._dtype(X) if first_pass else self.model_.dtype
        X, y = self._validate_input(X, y, incremental, reset=first_pass, dtype=dtype)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
            _fcheck.sample_weight(sample_weight, n_samples)   # finite, >= 0, positive sum
        dropout = self._dropout_rate(len(hidden_layer_sizes), first_pass)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        sample_weight = self._with_class_weight(y, sample_weight)
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if not first_pass and self.model_.sizes != tuple(layer_units):
            raise ValueError(f"the network has layer sizes {self.model_.sizes}; these data "
                             f"and parameters need {tuple(layer_units)}")
        return X, y, sample_weight, layer_units, first_pass, dropout

    def _given_weights(self, incremental: bool) -> tuple[list[Any], list[Any]] | None:
        """The coefs_ and intercepts_ assigned before any fit, which a warm_start fit or
        partial_fit starts from (scikit-learn's first_pass is then False); None when
        there are none, or when this fit starts anew (which discards them)."""
        coefs = self.__dict__.pop("_given_coefs_", None)
        intercepts = self.__dict__.pop("_given_intercepts_", None)
        if (coefs is None and intercepts is None) or not (self.warm_start or incremental):
            return None
        if coefs is None or intercepts is None:
            missing = "intercepts_" if intercepts is None else "coefs_"
            raise ValueError(f"{missing} must be assigned too: a warm_start fit or "
                             f"partial_fit starts from both coefs_ and intercepts_")
        return coefs, intercepts

    def _initialize(self, y: np.ndarray, layer_units: list[int], dtype: np.dtype,
                    dropout: float = 0.0,
                    given: tuple[list[Any], list[Any]] | None = None) -> None:
        """scikit-learn's _initialize: attributes, then the initial weights drawn from
        self._random_state in its order (per layer: coefs, then intercepts) -- or, with
        ``given`` (coefs, intercepts) assigned before the fit, those (nothing drawn)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        self._fast_loss = {"softmax": "cross_entropy", "logistic": "binary_cross_entropy",
                           "identity": "mse", "exp": "poisson"}[self.out_activation_]
        model = MLP(layer_units, _fast_activation(self.activation), self._fast_loss,
                    dtype=dtype, seed=0, num_threads=self.num_threads, dropout=dropout)
        # scikit-learn's bound for logistic units (fastbp's "sigmoid" is the same unit)
        factor = 2.0 if self.activation in ("logistic", "sigmoid") else 6.0
        if given is not None:
            layers = _dense_layers(model)
            assign_list([layer.W for layer in layers], given[0], "coefs_")
            assign_list([layer.b for layer in layers], given[1], "intercepts_")
        else:
            for layer, fan_in, fan_out in zip(_dense_layers(model), layer_units,
                                              layer_units[1:]):
                bound = np.sqrt(factor / (fan_in + fan_out))
                layer.W[...] = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
                layer.b[...] = self._random_state.uniform(-bound, bound, fan_out)
        if dropout:
            # The masks' seed: one draw after the weights (as fastbp.MLP draws its own),
            # so an int random_state gives the same masks; none without dropout, which
            # keeps scikit-learn's stream for the split and the shuffles.
            model.dropout_seed = int(self._random_state.randint(
                0, _fcheck.SEED_LIMIT, dtype=np.uint64))
        k = self.n_outputs_
        # (output-gradient scale, loss scale) turning fastbp's mean losses into
        # scikit-learn's: its gradient is (a - y)·w/Σw summed over the k outputs; its
        # squared error is half the mean, its log losses and poisson sum over outputs.
        scales = {"cross_entropy": (1.0, 1.0), "binary_cross_entropy": (k, k),
                  "mse": (k / 2.0, 0.5), "poisson": (k, k)}[self._fast_loss]
        # its log losses clip probabilities to [eps, 1-eps] (eps of the dtype) before the log
        clip = float(np.finfo(dtype).eps) if self._fast_loss in (
            "cross_entropy", "binary_cross_entropy") else 0.0
        model.objective = Objective(grad_scale=float(scales[0]), loss_scale=float(scales[1]),
                                    l2=float(self.alpha), log_loss_clip=clip)
        self.model_ = model
        self.__dict__.pop("optimizer_", None)
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        if self.solver in _STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _output_activation(self) -> str:
        raise NotImplementedError

    def _sync_alpha(self) -> None:
        """alpha may have been changed by set_params since the network was built."""
        objective = self.model_.objective
        if objective.l2 != self.alpha:
            self.model_.objective = dataclasses.replace(objective, l2=float(self.alpha))

    def _constant_sum(self, c: np.ndarray | None, order: np.ndarray, batch: int,
                      w: np.ndarray | None) -> float:
        """Σ over an epoch's batches of (the batch's weighted mean of c)·(batch size):
        what scikit-learn's accumulated loss holds beyond fastbp's."""
        if c is None:
            return 0.0
        if w is None:
            return float(c.sum())
        starts = np.arange(0, len(order), batch)
        sizes = np.diff(np.append(starts, len(order)))
        wo = w[order]
        means = np.add.reduceat(wo * c[order], starts) / np.add.reduceat(wo, starts)
        return float(np.dot(means, sizes))

    def _stochastic_steps(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None,
                          incremental: bool
                          ) -> Generator[int | EpochRequest, tuple[int, int, float] | None, None]:
        """scikit-learn's _fit_stochastic, yielding ``n_iter_`` after each epoch, and
        before it the epoch's compiled pass as an EpochRequest, whose run_epoch results
        the caller sends back (fastbp._lockstep.run_alone runs it alone)."""
        model = self.model_
        self._sync_alpha()
        self._warned_nonfinite = False
        if not incremental or not hasattr(self, "optimizer_"):
            params = model.parameters()
            if self.solver == "sgd":
                self.optimizer_ = SGD(params, lr=self.learning_rate_init,
                                      momentum=self.momentum,
                                      nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
            else:
                self.optimizer_ = Adam(params, lr=self.learning_rate_init,
                                       betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                                       eps_mode="folded")
        opt = self.optimizer_
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state, test_size=self.validation_fraction,
                    stratify=stratify)
                sw_train = sw_val = None
            else:
                X_train, X_val, y_train, y_val, sw_train, sw_val = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            X_val = y_val = sw_val = None
        n_samples = X_train.shape[0]
        if not issparse(X_train):
            X_train = np.ascontiguousarray(X_train)
        T_train = self._fast_target(y_train)
        constant = self._loss_constant(y_train)
        weights = _fcheck.sample_weight(sw_train, n_samples)   # all-ones: the unweighted path
        data = TrainingData(model, X_train, T_train, weights)   # checked once, for every epoch
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than "
                              "sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = _shuffle(sample_idx, self._random_state)
                order = sample_idx.astype(np.intp, copy=False)
                reply = yield EpochRequest(model, data, order, batch_size, opt)
                assert reply is not None, "an EpochRequest needs its run_epoch results"
                status, steps, total = reply
                if status == EPOCH_NONFINITE:
                    total = self._diverged_epoch(model, data, order, batch_size, opt, steps,
                                                 total)
                elif status == EPOCH_INTERRUPTED:
                    raise KeyboardInterrupt
                elif status != EPOCH_DONE:
                    raise ValueError(_CHANGED_DURING_FIT)
                total += self._constant_sum(constant, order, batch_size,
                                            None if sw_train is None else
                                            np.asarray(sw_train, dtype=np.float64))
                self.n_iter_ += 1
                self.loss_ = total / X_train.shape[0]
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                self._iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if self._trigger_stopping(msg, self.verbose):
                        yield self.n_iter_
                        break
                    self._no_improvement_count = 0
                if incremental:
                    yield self.n_iter_
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and "
                                  "the optimization hasn't converged yet." % self.max_iter,
                                  ConvergenceWarning)
                yield self.n_iter_
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts

    def _diverged_epoch(self, model: MLP, data: TrainingData, order: np.ndarray, batch: int,
                        opt: Any, steps: int, loss: float) -> float:
        """The rest of an epoch whose step ``steps`` gave the non-finite loss ``loss``
        (that step applied): scikit-learn goes on stepping with non-finite weights, so
        do the same; the epoch's loss sum, non-finite. Warns as NumPy's overflow does in
        scikit-learn (once per fit)."""
        self._warn_nonfinite(loss)
        total = loss * min(batch, len(order) - (steps - 1) * batch)
        start = steps * batch
        while start < len(order):
            # once the sum is non-finite, only non-finite batch losses can change it
            status, steps, value = model.run_epoch(data, order[start:], batch, opt)
            if status == EPOCH_INTERRUPTED:
                raise KeyboardInterrupt
            if status == EPOCH_NONFINITE:
                total += value * min(batch, len(order) - start - (steps - 1) * batch)
            elif status != EPOCH_DONE:
                raise ValueError(_CHANGED_DURING_FIT)
            start += steps * batch
        return total

    def _warn_nonfinite(self, loss: float) -> None:
        """A RuntimeWarning (once per fit) where NumPy's overflow warns in scikit-learn."""
        if not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(f"overflow in training: the loss became {loss}", RuntimeWarning,
                          stacklevel=5)

    # scikit-learn's SGDOptimizer/AdamOptimizer.iteration_ends and trigger_stopping
    def _set_sgd_lr(self, lr: float) -> None:
        """A new SGD learning rate, keeping scikit-learn's steps: its velocity v = μv - lr·g
        holds the old lr, fastbp's buffer b (v = -lr·b) is rescaled by lr_old/lr_new."""
        opt = self.optimizer_
        assert isinstance(opt, SGD)
        old = opt.lr
        if lr == old:
            return
        if opt.momentum != 0 and opt.step_count > 0 and lr > 0:
            for state in opt.state:
                state["momentum_buffer"][...] *= old / lr
        opt.lr = lr

    def _iteration_ends(self, time_step: int) -> None:
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._set_sgd_lr(float(self.learning_rate_init) / (time_step + 1) ** self.power_t)

    def _trigger_stopping(self, msg: str, verbose: Any) -> bool:
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.optimizer_.lr <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._set_sgd_lr(self.optimizer_.lr / 5.0)
        if verbose:
            print(msg + " Setting learning rate to %f" % self.optimizer_.lr)
        return False

    def _update_no_improvement_count(self, early_stopping: bool, X: Any, y: Any,
                                     sample_weight: Any) -> None:
        if early_stopping:
            assert self.validation_scores_ is not None and self.best_validation_score_ is not None
            val_score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
        else:
            assert self.best_loss_ is not None
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_lbfgs(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None) -> None:
        """scipy's L-BFGS-B on scikit-learn's packed vector (coefs, then intercepts), with
        the options scikit-learn passes; loss and gradient from the compiled engine."""
        model = self.model_
        self._sync_alpha()
        inputs = model.check_X(X)   # converted once, for every evaluation (sparse stays so)
        T = self._fast_target(y)
        weights = _fcheck.sample_weight(sample_weight, X.shape[0])
        c = self._loss_constant(y)
        constant = 0.0 if c is None else float(
            c.mean() if weights is None else np.dot(weights, c) / weights.sum())
        dense = _dense_layers(model)
        params = [layer.W for layer in dense] + [layer.b for layer in dense]
        grads = [layer.dW for layer in dense] + [layer.db for layer in dense]
        bounds = np.cumsum([0] + [p.size for p in params])

        def loss_grad(packed: np.ndarray) -> tuple[float, np.ndarray]:
            for p, lo, hi in zip(params, bounds, bounds[1:]):
                p.reshape(-1)[...] = packed[lo:hi]
            loss = model.backward(inputs, T, sample_weight=weights) + constant
            return loss, np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64,
                                                                               copy=False)

        iprint = 1 if self.verbose is True or self.verbose >= 1 else -1
        packed = np.concatenate([p.reshape(-1) for p in params])
        opt_res = scipy.optimize.minimize(
            loss_grad, packed, method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                     **_get_additional_lbfgs_options_dict("iprint", iprint)})
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        for p, lo, hi in zip(params, bounds, bounds[1:]):
            p.reshape(-1)[...] = opt_res.x[lo:hi]

    def fit(self: _Est, X: Any, y: Any, sample_weight: Any = None) -> _Est:
        """Fit the network to (X, y), as scikit-learn's ``fit``.

        A new network unless ``warm_start`` is set and one was fitted.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The training data (dense; sparse matrices are refused).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target: class labels or a multilabel indicator matrix (classifier),
            real values (regressor; >= 0 for loss="poisson").
        sample_weight : array-like of shape (n_samples,) or None, default None
            One finite weight >= 0 per sample, with a positive sum (None: equal
            weights).

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            A parameter of the wrong type or out of range (a ValueError).
        ValueError
            Data that scikit-learn refuses (NaN, wrong shapes, ...), bad weights,
            dropout with lbfgs or without a hidden layer, a network that does not fit
            the data on a warm start; the estimator is then left as it was.
            Also a validation set of fewer than 2 samples, or non-finite weights after
            training.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self) -> bool:
        if self.solver not in _STOCHASTIC:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    # ---------------------------------------------------------------- predicting
    def _forward_pass_fast(self, X: Any, check_input: bool = True) -> np.ndarray:
        """The output activations (scikit-learn's _forward_pass_fast)."""
        dtype = self.model_.dtype
        if check_input:
            # scikit-learn computes in result_type(X, coefs): float32 X stays float32
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=(np.float64, np.float32))
            dtype = np.result_type(X.dtype, dtype)
        return _out_activation(self.out_activation_,
                               self.model_.forward(X).astype(dtype, copy=False))

    def _score_with_function(self, X: Any, y: Any, sample_weight: Any,
                             score_function: Any) -> float:
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: Any) -> None:
        """Write the fitted network (and optimizer state) with fastbp's pickle-free ``save``.

        ``fastbp.load`` reads the file back as a fastbp model (not as an estimator).

        Parameters
        ----------
        path : str, bytes or os.PathLike
            The file to write (replaced if it exists); its directory must exist.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        FileNotFoundError, IsADirectoryError, PermissionError
            The directory is missing, ``path`` is a directory, or it cannot be written.
        """
        check_is_fitted(self)
        self.model_.save(path, optimizer=self.__dict__.get("optimizer_"))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True   # CSR/CSC: a compiled sparse first layer
        return tags

    def to_onnx(self, path: Any = None) -> bytes:
        """The fitted estimator as ONNX with skl2onnx's conventions; see fastbp.export.

        Parameters
        ----------
        path : str, os.PathLike or None, default None
            Where to write the graph too (atomically).

        Returns
        -------
        bytes
            The serialized model: input "X" [N, n_features]; a classifier's outputs
            "label" and "probabilities", a regressor's "variable".

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        ValueError
            Non-finite weights, or class labels that are neither ints nor strings.
        ImportError
            The onnx package is missing.
        """
        return estimator_to_onnx(self, path)

    # ---------------------------------------------------------------- pickling
    # model_ pickles through the model's own path (fastbp.Dense.__setstate__ makes the
    # arrays the process's own: joblib memory-maps them read-only); optimizer_ travels as
    # its state_dict and is rebuilt over the restored model's parameters, so that the two
    # share them whatever the unpickler did with the arrays.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if "optimizer_" in state:
            state["optimizer_"] = state["optimizer_"].state_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if isinstance(state.get("optimizer_"), dict):
            state["optimizer_"] = from_state_dict(state["model_"].parameters(),
                                                  state["optimizer_"])
        super().__setstate__(state)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier`` on fastbp.

    Parameters, attributes and results are scikit-learn 1.9's (see the module
    docstring); plus keyword-only ``dtype``, ``num_threads``, ``dropout`` and
    ``class_weight``. It minimises the log loss (softmax output for multiclass
    targets, logistic outputs for binary and multilabel ones).

    Parameters
    ----------
    hidden_layer_sizes : array-like of int or int, default (100,)
        The width of each hidden layer, in order (each >= 1); () for none.
    activation : str, default "relu"
        The hidden layers' activation: scikit-learn's "identity", "logistic",
        "tanh", "relu", or fastbp's "sigmoid" (the logistic function, its initial
        weights drawn as for the non-logistic ones), "leaky_relu", "elu",
        "softplus", "gelu", "silu".
    solver : {"lbfgs", "sgd", "adam"}, default "adam"
        The optimizer: quasi-Newton L-BFGS-B on the full batch, mini-batch SGD
        with momentum, or Adam. Adam suits large data sets; lbfgs often does
        better on small ones.
    alpha : float, default 0.0001
        Strength of the L2 penalty on the weights (>= 0), divided by the sample
        count (or weight sum) of each batch.
    batch_size : int or "auto", default "auto"
        Samples per mini-batch for the stochastic solvers (>= 1; clipped to the
        sample count); "auto" is min(200, n_samples). lbfgs uses the full batch.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The sgd schedule: constant ``learning_rate_init``; divided by
        (t + 1)**power_t, t the samples seen so far; or divided by 5 whenever
        ``n_iter_no_change`` epochs bring no ``tol`` improvement. sgd only.
    learning_rate_init : float, default 0.001
        The initial step size (> 0). sgd and adam only.
    power_t : float, default 0.5
        The exponent of "invscaling" (>= 0). sgd only.
    max_iter : int, default 200
        The most iterations (>= 1): epochs for sgd and adam, L-BFGS iterations
        for lbfgs. Training may stop earlier (``tol``).
    shuffle : bool, default True
        Shuffle the samples every epoch. sgd and adam only.
    random_state : int, RandomState instance or None, default None
        Seeds the initial weights, the early-stopping split, the batch order and
        the dropout masks. An int gives the same results at every fit.
    tol : float, default 1e-4
        The improvement of the loss (or validation score) that counts (>= 0):
        without it for ``n_iter_no_change`` epochs training stops, unless
        ``learning_rate`` is "adaptive". For lbfgs, its gradient tolerance.
    verbose : bool or int, default False
        Print progress to stdout.
    warm_start : bool, default False
        Start the next ``fit`` from the current weights (with a new optimizer)
        instead of new random ones.
    momentum : float, default 0.9
        The momentum of sgd, in [0, 1].
    nesterovs_momentum : bool, default True
        Use Nesterov's momentum (sgd with momentum > 0 only).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified for a
        single-output classifier) and stop when its score does not improve by
        ``tol`` for ``n_iter_no_change`` epochs; the best epoch's weights are
        kept. sgd and adam only; refused by partial_fit.
    validation_fraction : float, default 0.1
        The share of the training data held out with ``early_stopping``, in
        [0, 1) (at least 2 samples must result).
    beta_1 : float, default 0.9
        Adam's decay rate of the first-moment estimate, in [0, 1).
    beta_2 : float, default 0.999
        Adam's decay rate of the second-moment estimate, in [0, 1).
    epsilon : float, default 1e-8
        Adam's term for numerical stability (> 0).
    n_iter_no_change : int, default 10
        Epochs without ``tol`` improvement tolerated before training stops (>= 1,
        or numpy.inf). sgd and adam only.
    max_fun : int, default 15000
        The most loss evaluations of lbfgs (>= 1). lbfgs only.
    dtype : "float32", "float64" (or their NumPy dtypes) or None, default None
        The network's dtype (keyword only). None follows scikit-learn: float32
        for float32 X, float64 otherwise. Fixed at the first fit; warm starts
        and partial_fit keep it.
    num_threads : int or None, default None
        BLAS threads during the network's calls (keyword only, >= 1); None: the
        process-wide setting (``fastbp.set_num_threads``).
    dropout : float, default 0.0
        Inverted dropout on every hidden layer's output in training steps, in
        [0, 1) (keyword only); predictions never apply it. Needs a stochastic
        solver and a hidden layer. The masks' seed comes from ``random_state``
        (only when dropout > 0, so 0 keeps scikit-learn's numbers); a warm start
        or partial_fit cannot change it.
    class_weight : None, "balanced", dict or list of dict, default None
        Per-class weights that multiply the sample weights (keyword only), in
        fit, partial_fit and the early-stopping score. A dict ``{class: weight}``
        (missing classes weigh 1); "balanced": n_samples / (n_classes · count of
        the class), the counts weighted by sample_weight; for multilabel targets
        "balanced" or one dict per column keyed by 0 and 1 (a sample's weight is
        the product over its columns). partial_fit refuses "balanced".

    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        The class labels (for multilabel targets, the column indices).
    loss_ : float
        The last loss (training loss of the last epoch; lbfgs: the final loss).
    best_loss_ : float or None
        The lowest training loss; None with early_stopping. sgd and adam only.
    loss_curve_ : list of float
        The training loss of each epoch. sgd and adam only.
    validation_scores_ : list of float or None
        The held-out accuracy of each epoch with early_stopping, else None. sgd
        and adam only.
    best_validation_score_ : float or None
        The best of ``validation_scores_``, else None. sgd and adam only.
    t_ : int
        The training samples the solver has seen (epochs · samples).
    coefs_ : list of ndarray
        Layer i's weight matrix, shape (units of layer i, units of layer i + 1):
        the network's live arrays; ``coefs_[i] = W`` writes W into the network
        (checked, converted to the model's dtype). Assigned before a fit, the list
        is where a warm_start fit or partial_fit starts.
    intercepts_ : list of ndarray
        Layer i + 1's bias vector: the network's live arrays, as coefs_.
    n_features_in_ : int
        The number of features seen in fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The feature names seen in fit, when X had string column names.
    n_iter_ : int
        The iterations (epochs) the solver ran.
    n_layers_ : int
        The number of layers, input and output included.
    n_outputs_ : int
        The number of outputs.
    out_activation_ : str
        The output activation: "softmax" (multiclass) or "logistic".
    model_ : fastbp.MLP
        The network. Its output layer is linear: the logistic or softmax output
        activation is applied by the loss and by ``predict_proba``.
    optimizer_ : fastbp.Adam or fastbp.SGD
        The network's optimizer (sgd and adam only; kept by partial_fit).
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, list, None],
    }

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: Any = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: Any = False,
                 warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: Any = 10, max_fun: int = 15000,
                 dtype: Any = None, num_threads: int | None = None, dropout: float = 0.0,
                 class_weight: Any = None) -> None:
        self.class_weight = class_weight
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss="log_loss", shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dtype=dtype, num_threads=num_threads, dropout=dropout)

    def _output_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _with_class_weight(self, y: np.ndarray,
                           sample_weight: np.ndarray | None) -> np.ndarray | None:
        """sample_weight times the per-sample class weights (y: the binarized target)."""
        if self.class_weight is None:
            return sample_weight
        multilabel = self._label_binarizer.y_type_.startswith("multilabel")
        _class_weight.check_class_weight(self.class_weight, self.classes_, multilabel)
        per_sample = _class_weight.sample_class_weights(self.class_weight, y, self.classes_,
                                                        multilabel, sample_weight)
        weights = per_sample if sample_weight is None else sample_weight * per_sample
        if not weights.sum() > 0:
            raise ValueError("class_weight gives every sample a weight of 0 (times "
                             "sample_weight, if given): nothing would be fitted")
        return weights

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool,
                        dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=dtype, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _fast_target(self, y: np.ndarray) -> np.ndarray:
        if self.out_activation_ == "softmax":   # one-hot rows: their class labels
            return np.ascontiguousarray(y.argmax(axis=1), dtype=np.intp)
        return np.ascontiguousarray(y, dtype=self.model_.dtype)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes: the label binarizer's inverse of the output probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted labels (0/1 indicator rows for a multilabel target).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        ValueError
            X has another number of features than in fit, or holds NaN or infinities.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X: np.ndarray, y: np.ndarray, sample_weight: Any = None) -> float:
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())  # type: ignore[untyped-decorator, unused-ignore]
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None,
                    classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing the network and optimizer of earlier calls.

        ``classes`` (all labels) is required on the first call. class_weight="balanced"
        is refused (one batch's class frequencies are not the data's). Only for the
        stochastic solvers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The training data (dense; sparse matrices are refused).
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The class labels, or a multilabel indicator matrix.
        sample_weight : array-like of shape (n_samples,) or None, default None
            One finite weight >= 0 per sample, with a positive sum (None: equal
            weights).
        classes : array-like of shape (n_classes,) or None, default None
            Every class label of the whole data; required on the first call, ignored
            later.

        Returns
        -------
        self : MLPClassifier
            The updated estimator.

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            A parameter of the wrong type or out of range (a ValueError).
        ValueError
            Data that scikit-learn refuses (NaN, wrong shapes, ...), bad weights,
            dropout with lbfgs or without a hidden layer, class_weight="balanced", no
            ``classes`` on the first call, labels outside ``classes``; the estimator is
            then left as it was. Also early_stopping=True (refused after the network
            was built), or non-finite weights after training.
        AttributeError
            The solver is "lbfgs" (the method is then unavailable).
        """
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit (as scikit-learn's "
                "SGDClassifier): compute the weights once with sklearn.utils.class_weight."
                "compute_class_weight('balanced', classes=classes, y=y) on the whole training "
                "target (or a large enough sample of it) and pass them as a dict "
                "{class: weight}.")
        before = dict(self.__dict__)
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True, before=before)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The log of predict_proba.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            log(predict_proba(X)), columns in the order of ``classes_``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        ValueError
            X has another number of features than in fit, or holds NaN or infinities.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes); for two classes (1 - p, p).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_`` (for a multilabel target, each
            column's own probability).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        ValueError
            X has another number of features than in fit, or holds NaN or infinities.
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor`` on fastbp.

    Parameters, attributes and results are scikit-learn 1.9's (see the module
    docstring); plus keyword-only ``dtype``, ``num_threads`` and ``dropout``.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default "squared_error"
        The training loss: half the squared error, or half the Poisson deviance
        with an exp output (log link; needs y >= 0).
    hidden_layer_sizes : array-like of int or int, default (100,)
        The width of each hidden layer, in order (each >= 1); () for none.
    activation : str, default "relu"
        The hidden layers' activation: scikit-learn's "identity", "logistic",
        "tanh", "relu", or fastbp's "sigmoid" (the logistic function, its initial
        weights drawn as for the non-logistic ones), "leaky_relu", "elu",
        "softplus", "gelu", "silu".
    solver : {"lbfgs", "sgd", "adam"}, default "adam"
        The optimizer: quasi-Newton L-BFGS-B on the full batch, mini-batch SGD
        with momentum, or Adam. Adam suits large data sets; lbfgs often does
        better on small ones.
    alpha : float, default 0.0001
        Strength of the L2 penalty on the weights (>= 0), divided by the sample
        count (or weight sum) of each batch.
    batch_size : int or "auto", default "auto"
        Samples per mini-batch for the stochastic solvers (>= 1; clipped to the
        sample count); "auto" is min(200, n_samples). lbfgs uses the full batch.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The sgd schedule: constant ``learning_rate_init``; divided by
        (t + 1)**power_t, t the samples seen so far; or divided by 5 whenever
        ``n_iter_no_change`` epochs bring no ``tol`` improvement. sgd only.
    learning_rate_init : float, default 0.001
        The initial step size (> 0). sgd and adam only.
    power_t : float, default 0.5
        The exponent of "invscaling" (>= 0). sgd only.
    max_iter : int, default 200
        The most iterations (>= 1): epochs for sgd and adam, L-BFGS iterations
        for lbfgs. Training may stop earlier (``tol``).
    shuffle : bool, default True
        Shuffle the samples every epoch. sgd and adam only.
    random_state : int, RandomState instance or None, default None
        Seeds the initial weights, the early-stopping split, the batch order and
        the dropout masks. An int gives the same results at every fit.
    tol : float, default 1e-4
        The improvement of the loss (or validation score) that counts (>= 0):
        without it for ``n_iter_no_change`` epochs training stops, unless
        ``learning_rate`` is "adaptive". For lbfgs, its gradient tolerance.
    verbose : bool or int, default False
        Print progress to stdout.
    warm_start : bool, default False
        Start the next ``fit`` from the current weights (with a new optimizer)
        instead of new random ones.
    momentum : float, default 0.9
        The momentum of sgd, in [0, 1].
    nesterovs_momentum : bool, default True
        Use Nesterov's momentum (sgd with momentum > 0 only).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified for a
        single-output classifier) and stop when its score does not improve by
        ``tol`` for ``n_iter_no_change`` epochs; the best epoch's weights are
        kept. sgd and adam only; refused by partial_fit.
    validation_fraction : float, default 0.1
        The share of the training data held out with ``early_stopping``, in
        [0, 1) (at least 2 samples must result).
    beta_1 : float, default 0.9
        Adam's decay rate of the first-moment estimate, in [0, 1).
    beta_2 : float, default 0.999
        Adam's decay rate of the second-moment estimate, in [0, 1).
    epsilon : float, default 1e-8
        Adam's term for numerical stability (> 0).
    n_iter_no_change : int, default 10
        Epochs without ``tol`` improvement tolerated before training stops (>= 1,
        or numpy.inf). sgd and adam only.
    max_fun : int, default 15000
        The most loss evaluations of lbfgs (>= 1). lbfgs only.
    dtype : "float32", "float64" (or their NumPy dtypes) or None, default None
        The network's dtype (keyword only). None follows scikit-learn: float32
        for float32 X, float64 otherwise. Fixed at the first fit; warm starts
        and partial_fit keep it.
    num_threads : int or None, default None
        BLAS threads during the network's calls (keyword only, >= 1); None: the
        process-wide setting (``fastbp.set_num_threads``).
    dropout : float, default 0.0
        Inverted dropout on every hidden layer's output in training steps, in
        [0, 1) (keyword only); predictions never apply it. Needs a stochastic
        solver and a hidden layer. The masks' seed comes from ``random_state``
        (only when dropout > 0, so 0 keeps scikit-learn's numbers); a warm start
        or partial_fit cannot change it.

    Attributes
    ----------
    loss_ : float
        The last loss (training loss of the last epoch; lbfgs: the final loss).
    best_loss_ : float or None
        The lowest training loss; None with early_stopping. sgd and adam only.
    loss_curve_ : list of float
        The training loss of each epoch. sgd and adam only.
    validation_scores_ : list of float or None
        The held-out R² score of each epoch with early_stopping, else None. sgd
        and adam only.
    best_validation_score_ : float or None
        The best of ``validation_scores_``, else None. sgd and adam only.
    t_ : int
        The training samples the solver has seen (epochs · samples).
    coefs_ : list of ndarray
        Layer i's weight matrix, shape (units of layer i, units of layer i + 1):
        the network's live arrays; ``coefs_[i] = W`` writes W into the network
        (checked, converted to the model's dtype). Assigned before a fit, the list
        is where a warm_start fit or partial_fit starts.
    intercepts_ : list of ndarray
        Layer i + 1's bias vector: the network's live arrays, as coefs_.
    n_features_in_ : int
        The number of features seen in fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The feature names seen in fit, when X had string column names.
    n_iter_ : int
        The iterations (epochs) the solver ran.
    n_layers_ : int
        The number of layers, input and output included.
    n_outputs_ : int
        The number of outputs.
    out_activation_ : str
        The output activation: "identity" or "exp" (loss="poisson").
    model_ : fastbp.MLP
        The network. Its output layer is linear: the exp of loss="poisson" is
        applied by the loss and by ``predict``.
    optimizer_ : fastbp.Adam or fastbp.SGD
        The network's optimizer (sgd and adam only; kept by partial_fit).
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss: str = "squared_error", hidden_layer_sizes: Any = (100,),
                 activation: str = "relu", *, solver: str = "adam", alpha: float = 0.0001,
                 batch_size: Any = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: Any = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: Any = 10, max_fun: int = 15000,
                 dtype: Any = None, num_threads: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dtype=dtype, num_threads=num_threads, dropout=dropout)

    def _output_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool,
                        dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=dtype, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("y must be >= 0 for loss='poisson' (counts or rates)")
        return X, y

    def _fast_target(self, y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(y, dtype=self.model_.dtype)

    def _loss_constant(self, y: np.ndarray) -> np.ndarray | None:
        """scikit-learn's poisson loss is the half deviance, Σ_j xlogy(y, y/e^z) - y + e^z:
        fastbp's e^z - y·z plus xlogy(y, y) - y per output."""
        if self.out_activation_ != "exp":
            return None
        y64 = np.asarray(y, dtype=np.float64)
        return (xlogy(y64, y64) - y64).sum(axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values: (n,) for one output, else (n, n_outputs).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        ValueError
            X has another number of features than in fit, or holds NaN or infinities.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X: np.ndarray, y: np.ndarray, sample_weight: Any = None) -> float:
        return self._score_with_function(X, y, sample_weight, r2_score)

    # scikit-learn 1.9's regressor tests the bound method, not its result, so its
    # partial_fit exists for every solver (and with lbfgs fits by lbfgs): kept as is.
    @available_if(lambda est: est._check_solver)  # type: ignore[untyped-decorator, unused-ignore]
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y), continuing the network and optimizer of earlier calls.

        As in scikit-learn 1.9, the method exists for every solver; with "lbfgs" it
        runs a full L-BFGS fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The training data (dense; sparse matrices are refused).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (>= 0 for loss="poisson").
        sample_weight : array-like of shape (n_samples,) or None, default None
            One finite weight >= 0 per sample, with a positive sum (None: equal
            weights).

        Returns
        -------
        self : MLPRegressor
            The updated estimator.

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            A parameter of the wrong type or out of range (a ValueError).
        ValueError
            Data that scikit-learn refuses (NaN, wrong shapes, ...), bad weights,
            dropout with lbfgs or without a hidden layer, data that do not fit the
            network of earlier calls; the estimator is then left as it was. Also
            early_stopping=True with a stochastic solver (refused after the network
            was built), or non-finite weights after training.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# the search over these estimators (its own module; it imports this one lazily)
from fastbp._search import MLPSearchCV  # noqa: E402
