"""Sequential models: a stack of Dense layers and a loss."""
from __future__ import annotations

from typing import Any, Sequence

import contextlib
import secrets
import threading

import numpy as np

from fastbp import _validation as check
from fastbp._convert import as_input, as_target
from fastbp._kernels import activations as _act
from fastbp._kernels import losses as _loss
from fastbp._kernels.network import Engine
from fastbp.layers import Dense, positive_int
from fastbp.optim import Optimizer, make_optimizer
from fastbp.threads import _check as _check_threads
from fastbp.threads import using_threads
from fastbp.training import History, fit

__all__ = ["Sequential", "MLP"]

_NO_THREAD_CHANGE = contextlib.nullcontext()

# Engine.predict_fast kinds (network.pyx): forward, predict_proba, predict.
_PREDICT_RAW, _PREDICT_PROBA, _PREDICT_LABELS = 0, 1, 2


class Sequential:
    """Dense layers applied in order, trained against one loss.

    ``forward`` returns the raw output of the last layer (logits for the
    cross-entropy losses); the losses apply the sigmoid/softmax themselves.

    Layers with ``dropout`` apply it to their output in ``train_step``, ``fit``
    and ``backward`` only; the masks are keyed by ``dropout_seed`` (an int in
    [0, 2**64), drawn from OS entropy when None), the layer's index and the
    step (see ``backward``).
    """

    #: the parameter arrays the engine points into (set with it, in _compiled)
    _engine_arrays: list[np.ndarray]
    #: a training objective other than the plain mean loss, as the engine's
    #: set_loss_convention arguments (grad_scale, loss_scale, l2, clip_eps);
    #: fastbp.sklearn sets it to reproduce scikit-learn's objective. None: fastbp's own.
    _loss_convention: tuple[float, ...] | None = None

    def __init__(self, layers: Sequence[Dense], loss: str = "mse", *,
                 dropout_seed: int | None = None) -> None:
        self.loss_code = check.loss_code(loss)
        seed = secrets.randbits(64) if dropout_seed is None else check.dropout_seed(dropout_seed)
        self.loss_name = loss
        # One lock per model: compiled calls share the model's workspaces, so two
        # threads using one model take turns (each call is atomic).
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        #: BLAS threads during this model's calls (None: the process-wide setting,
        #: see fastbp.set_num_threads)
        self.num_threads: int | None = None
        self._dropout_seed = seed
        #: backward() calls without a step so far (the default step of the next is one more)
        self._backward_calls = 0
        self.layers = layers  # type: ignore[assignment,unused-ignore]  # the setter takes any sequence

    @property
    def layers(self) -> tuple[Dense, ...]:
        """The layers, in order. A tuple: to change the architecture, assign a new
        sequence (checked like the constructor's), e.g. to swap the output layer."""
        return self._layers

    @layers.setter
    def layers(self, layers: Sequence[Dense]) -> None:
        layers = tuple(layers)
        if not layers or not all(isinstance(layer, Dense) for layer in layers):
            raise TypeError("layers must be a non-empty sequence of fastbp.Dense layers")
        for i, (a, b) in enumerate(zip(layers, layers[1:])):
            if a.out_features != b.in_features:
                raise ValueError(f"layers[{i + 1}] takes {b.in_features} inputs but layers[{i}] "
                                 f"gives {a.out_features} outputs")
            if a.dtype != b.dtype:
                raise TypeError(f"all layers must share one dtype, got {a.dtype} and {b.dtype}")
        if layers[-1].dropout:
            raise ValueError(f"the last layer has dropout={layers[-1].dropout}: dropout applies "
                             "to hidden layers' outputs, not to the model's output layer")
        with self._lock:
            self._layers = layers
            self._engine = None  # the compiled engine points into the old layers

    @property
    def dropout_seed(self) -> int:
        """The seed of the dropout masks, an int in [0, 2**64). Assigning one makes the
        next steps draw that seed's masks."""
        return self._dropout_seed

    @dropout_seed.setter
    def dropout_seed(self, value: int) -> None:
        value = check.dropout_seed(value)
        with self._lock:
            self._dropout_seed = value
            self._engine = None  # the engine holds keys derived from the old seed

    @property
    def dtype(self) -> np.dtype:
        """The model's dtype (its layers')."""
        return self._layers[0].dtype

    def _threads(self) -> Any:
        """The context that applies ``num_threads`` (a no-op when it is None)."""
        return _NO_THREAD_CHANGE if self.num_threads is None else using_threads(self.num_threads)

    # ---------------------------------------------------------------- shapes
    @property
    def in_features(self) -> int:
        return self.layers[0].in_features

    @property
    def out_features(self) -> int:
        return self.layers[-1].out_features

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.in_features,) + tuple(layer.out_features for layer in self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], loss={self.loss_name!r})"

    # ---------------------------------------------------------------- conversion
    def check_X(self, X: Any) -> np.ndarray:
        return as_input(X, self.dtype, self.in_features)

    def check_y(self, y: Any, n_samples: int) -> np.ndarray:
        y = as_target(y, self.loss_name, self.dtype, n_samples, self.out_features)
        if self.loss_name == "poisson":
            check.poisson_target(y, "y")
        return y

    def check_Xy(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X = self.check_X(X)
        if X.shape[0] == 0:
            raise ValueError(f"X must hold at least one sample, got shape {X.shape}")
        return X, self.check_y(y, X.shape[0])

    # ---------------------------------------------------------------- compiled engine
    def _compiled(self) -> Engine:
        """The compiled engine over the current parameter arrays (rebuilt if any was replaced).

        Dense.generation counts parameter assignments process-wide: while it equals
        engine.generation nothing needs checking; when it moved, only a model whose
        own arrays were replaced rebuilds."""
        engine = self.__dict__.get("_engine")
        if engine is not None and engine.generation == Dense.generation:
            return engine
        arrays = [a for la in self.layers for a in (la.W, la.b)]
        if engine is None or any(a is not b for a, b in zip(arrays, self._engine_arrays)):
            layers = self.layers
            engine = Engine([la.W for la in layers], [la.b for la in layers],
                            [la.dW for la in layers], [la.db for la in layers],
                            [la.act_code for la in layers], self.loss_code, self.dtype)
            engine.set_dropout([la.dropout for la in layers], self._dropout_seed)
            if self._loss_convention is not None:
                engine.set_loss_convention(*self._loss_convention)
            self._engine = engine
            self._engine_arrays = arrays
        engine.generation = Dense.generation
        return engine

    # Pickling and copy.deepcopy (joblib's and Dask's workers, gradcheck, the estimators):
    # the lock and the compiled engine are rebuilt on the other side, and each layer makes
    # its arrays its own (Dense.__setstate__). Files go through save().
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_lock", "_engine", "_engine_arrays"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._engine = None

    def _bind(self, engine: Engine, optimizer: Optimizer) -> None:
        """Point the engine at the optimizer's state (again, if its configuration changed)."""
        if engine.is_bound_to(optimizer):
            return
        make_optimizer(optimizer, self.parameters(), None)  # checks it owns our parameters
        engine.bind_optimizer(optimizer)

    @staticmethod
    def _split(y: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(targets, labels): int labels are 1-D, everything else is a 2-D target."""
        return (None, y) if y.ndim == 1 else (y, None)

    # ---------------------------------------------------------------- math
    # The prediction methods first try the engine's lean path: one compiled call that
    # takes the model's lock (as every call does), checks X, runs the network and
    # returns the result. It answers None whenever X needs converting, the engine
    # needs (re)building, or another call holds the lock; the checked path then runs
    # (and so does it whenever num_threads is set, which only the checked path applies).
    # An engine read before a concurrent rebuild still points into the arrays it was
    # built over (it keeps them alive): the call then acts as if it came first.
    def forward(self, X: Any) -> np.ndarray:
        """The raw output of the last layer (a new array)."""
        engine = self._engine
        if engine is not None and self.num_threads is None:
            out = engine.predict_fast(X, Dense.generation, _PREDICT_RAW, self._lock)
            if out is not None:
                return out
        X = self.check_X(X)
        if X.shape[0] == 0:
            return np.empty((0, self.out_features), dtype=self.dtype)
        with self._lock, self._threads():
            engine = self._compiled()
            engine.reserve(X.shape[0])
            return engine.forward(X).copy()

    def loss_and_grad(self, output: np.ndarray, y: np.ndarray,
                      sample_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """(mean loss, dL/d_output) for converted output, target and checked weights."""
        d_out = np.empty_like(output)
        if sample_weight is not None:
            T, labels = self._split(y)
            loss = _loss.weighted_loss_into(self.loss_code, output, T, labels, sample_weight,
                                            d_out)
        elif y.ndim == 1:
            loss = _loss.cross_entropy_labels_into(output, y, d_out)
        else:
            loss = _loss.loss_forward_backward_into(self.loss_code, output, y, d_out)
        return float(loss), d_out

    def check_sample_weight(self, sample_weight: Any, n_samples: int) -> np.ndarray | None:
        """Checked weights (float64), or None for None and all-ones weights."""
        return check.sample_weight(sample_weight, n_samples)

    def loss(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The mean loss on (X, y); the weighted mean with sample_weight."""
        X, y = self.check_Xy(X, y)
        w = self.check_sample_weight(sample_weight, X.shape[0])
        return self.loss_and_grad(self.forward(X), y, w)[0]

    def evaluate(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The mean loss on (X, y), the same number as loss."""
        return self.loss(X, y, sample_weight)

    def backward(self, X: Any, y: Any, sample_weight: Any = None, *,
                 step: int | None = None) -> float:
        """Forward, loss and backward: fills every layer's dW, db; returns the loss
        (the weighted mean with sample_weight).

        With dropout, the masks are those of optimizer step ``step`` (the ones
        ``train_step`` draws when the optimizer's ``step_count`` is ``step - 1``);
        ``step=None`` counts this model's backward() calls without a step: the
        k-th such call uses step k (the count is not saved in model files).
        """
        X, y = self.check_Xy(X, y)
        w = self.check_sample_weight(sample_weight, X.shape[0])
        if step is not None:
            step = check.dropout_step(step)
        T, labels = self._split(y)
        with self._lock, self._threads():
            if step is None:
                self._backward_calls += 1
                step = self._backward_calls
            engine = self._compiled()
            engine.reserve(X.shape[0])
            return engine.backward(X, T, labels, step, w)

    def train_step(self, X: Any, y: Any, optimizer: Optimizer,
                   sample_weight: Any = None) -> float:
        """One step of gradient descent on (X, y) in one compiled call: forward, loss,
        backward and the update of every layer. Returns the loss before the update."""
        with self._lock:
            engine = self._engine
            if engine is not None and self.num_threads is None and sample_weight is None:
                loss = engine.train_step_fast(X, y, optimizer, Dense.generation)
                if loss is not None:
                    return loss
        # The checked path: converts the inputs, (re)builds and binds the engine.
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer instance, got "
                            f"{type(optimizer).__name__}")
        X, y = self.check_Xy(X, y)
        w = self.check_sample_weight(sample_weight, X.shape[0])
        T, labels = self._split(y)
        with self._lock, self._threads():
            engine = self._compiled()
            self._bind(engine, optimizer)
            engine.reserve(X.shape[0])
            return engine.train_step(X, T, labels, w)

    def train_epoch(self, X: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int,
                    optimizer: Optimizer,
                    sample_weight: np.ndarray | None = None) -> tuple[int, float]:
        """One epoch of mini-batch steps in one compiled call: the rows ``order`` (intp)
        in batches of ``batch_size``, each batch's loss the (weighted) mean over it.

        X, y are converted (``check_Xy``), sample_weight checked float64 weights or
        None (``check_sample_weight``): fit's, an Ensemble's and fastbp.sklearn's
        epoch loop. Returns (steps, Σ batch loss · batch size); steps < 0 means the
        loss of step -steps was not finite (then the second value is that loss, and
        the earlier steps were applied). The optimizer's step_count advances by
        the steps taken."""
        T, labels = self._split(y)
        with self._lock, self._threads():
            engine = self._compiled()
            self._bind(engine, optimizer)
            steps, total = engine.epoch(X, T, labels, order, batch_size, sample_weight)
        return steps, total

    # ---------------------------------------------------------------- predictions
    def predict(self, X: Any) -> np.ndarray:
        """Values (regression), int class labels (cross_entropy) or 0/1 labels (binary)."""
        engine = self._engine
        # (not for a subclass whose own forward this method must call)
        if engine is not None and self.num_threads is None \
                and type(self).forward is _SEQUENTIAL_FORWARD:
            labels = engine.predict_fast(X, Dense.generation, _PREDICT_LABELS, self._lock)
            if labels is not None:
                return labels
        out = self.forward(X)
        if self.loss_name == "cross_entropy":
            return out.argmax(axis=1)
        if self.loss_name == "binary_cross_entropy":
            return (out > 0).astype(np.intp)
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: softmax (cross_entropy) or sigmoid (binary_cross_entropy)."""
        engine = self._engine
        # (not for a subclass whose own forward this method must call)
        if engine is not None and self.num_threads is None \
                and type(self).forward is _SEQUENTIAL_FORWARD:
            proba = engine.predict_fast(X, Dense.generation, _PREDICT_PROBA, self._lock)
            if proba is not None:
                return proba
        if self.loss_name not in ("cross_entropy", "binary_cross_entropy"):
            raise ValueError(f"predict_proba needs a cross-entropy loss; this model's loss is "
                             f"{self.loss_name!r} (use predict)")
        out = self.forward(X)
        code = check.activation_code("softmax" if self.loss_name == "cross_entropy" else "sigmoid")
        proba = np.empty_like(out)
        if out.shape[0]:
            _act.activation_forward_into(code, out, proba)
        return proba

    # ---------------------------------------------------------------- parameters
    def parameters(self) -> list[np.ndarray]:
        """[W1, b1, W2, b2, ...]: the live arrays."""
        return [a for layer in self.layers for a in (layer.W, layer.b)]

    def gradients(self) -> list[np.ndarray]:
        """[dW1, db1, dW2, db2, ...] of the last backward."""
        return [a for layer in self.layers for a in (layer.dW, layer.db)]

    # ---------------------------------------------------------------- training & files
    def fit(self, X: Any, y: Any, **kwargs: Any) -> History:
        """Train with mini-batch gradient descent; see fastbp.training.fit."""
        return fit(self, X, y, **kwargs)

    def save(self, path: Any, optimizer: Optimizer | None = None) -> None:
        """Write the model (and optionally the optimizer state) to one file, atomically."""
        from fastbp.io import save  # (here: fastbp.io imports this module)
        save(self, path, optimizer)


_SEQUENTIAL_FORWARD = Sequential.forward


class MLP(Sequential):
    """MLP((784, 128, 10), "relu") == Sequential([Dense(784, 128, "relu"), Dense(128, 10)]).

    Hidden layers use ``activation`` and ``dropout``; the last layer is linear
    (identity) and has no dropout, since the losses take raw outputs. The
    dropout seed comes from ``seed`` (drawn after the weights, so the weights do
    not depend on it): the same seed gives the same weights and masks.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", loss: str = "mse", *,
                 dtype: Any = "float32", seed: Any = None, init: str = "auto",
                 num_threads: int | None = None, dropout: float = 0.0) -> None:
        sizes = [positive_int(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
        if len(sizes) < 2:
            raise ValueError(f"sizes must hold at least (in_features, out_features), got {sizes}")
        check.activation_code(activation)
        dropout = check.dropout_rate(dropout)
        if dropout and len(sizes) == 2:
            raise ValueError(f"dropout={dropout} needs a hidden layer: it applies to hidden "
                             f"layers' outputs, and sizes {sizes} has none")
        rng = np.random.default_rng(seed)
        n = len(sizes) - 1
        layers = [Dense(sizes[i], sizes[i + 1], activation if i < n - 1 else "identity",
                        init=init, dtype=dtype, seed=rng, dropout=dropout if i < n - 1 else 0.0)
                  for i in range(n)]
        self.activation = activation
        super().__init__(layers, loss,
                         dropout_seed=int(rng.integers(0, check.SEED_LIMIT, dtype=np.uint64)))
        if num_threads is not None:
            self.num_threads = _check_threads(num_threads)
