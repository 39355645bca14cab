"""Sequential models: layers applied in order, trained against one loss."""
from __future__ import annotations

import contextlib
import secrets
import threading
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from fastbp import _storage, ops
from fastbp import _validation as check
from fastbp._convert import as_input, as_target
from fastbp._workspace import Workspace
from fastbp._sparse import SparseRows, as_sparse_rows, is_sparse
from fastbp._kernels import activations as _act
from fastbp._kernels import losses as _loss
from fastbp._kernels import network as _network
from fastbp._kernels.network import Engine
from fastbp._table import ACTIVATIONS, CLASSIFICATION_LOSSES, PROBABILITY_LINK, code
from fastbp.layers import Dense, Dropout, Layer, layer_from_spec
from fastbp.layers.base import positive_int
from fastbp.layers.chain import bind_open_layers, check_chain, layer_tuple
from fastbp.layers.elementwise import dropout_slots
from fastbp.layers.residual import engine_layers
from fastbp.objective import Objective
from fastbp.optim import Optimizer, make_optimizer
from fastbp.threads import check_threads
from fastbp.threads import using_threads
from fastbp.training import (History, TrainingData, TrainingRun, fit, optimizer_from_spec,
                             optimizer_spec)

__all__ = ["Sequential", "MLP", "check_layers"]

_NO_THREAD_CHANGE = contextlib.nullcontext()
_PREDICT_RAW, _PREDICT_PROBA, _PREDICT_LABELS = (_network.PREDICT_RAW, _network.PREDICT_PROBA,
                                                 _network.PREDICT_LABELS)


def _require_finite(X: np.ndarray | SparseRows, name: str = "X") -> None:
    if isinstance(X, SparseRows):
        return   # its values were checked when it was converted (fastbp._sparse)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values (pass check_finite=False "
                         "to skip this check for trusted input)")


def check_layers(layers: Any, loss: str) -> tuple[Layer, ...]:
    """The layers of a model, checked: fastbp layers of one dtype whose widths chain,
    each its own object owning its arrays; no dropout on the last, whose activation
    must not be the one the loss applies, and whose width must suit the loss."""
    layers = layer_tuple(layers)
    undo = bind_open_layers(layers)
    try:
        _check_chain(layers, loss)
    except BaseException:
        for layer, state in undo:   # a refused model leaves its layers as they were
            layer.__dict__.update(state)
        raise
    return layers


def _check_chain(layers: tuple[Layer, ...], loss: str) -> None:
    """check_layers's checks of the layers in their order (widths, dtypes, objects,
    the last layer against the loss)."""
    check_chain(layers)
    flat = engine_layers(layers)   # (a Residual's block layers too)
    for a, b in zip(flat, flat[1:]):
        if isinstance(b, Dropout) and a.dropout:
            raise ValueError(f"{b!r} follows {a!r}, which has dropout={a.dropout} of its "
                             f"own: one dropout per output")
    seen: set[int] = set()
    for layer in flat:
        if id(layer) in seen:
            raise ValueError(f"{layer!r} appears twice in the model; each layer must appear "
                             "once (its gradients would collide)")
        seen.add(id(layer))
    arrays: list[tuple[int, np.ndarray]] = []
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            for j, q in arrays:
                if np.shares_memory(p, q):
                    raise ValueError(f"layers[{i}] shares a parameter array with layers[{j}]")
            arrays.append((i, p))
    last = layers[-1]
    if last.dropout:
        raise ValueError(f"the last layer has dropout={last.dropout}: dropout applies "
                         "to hidden layers' outputs, not to the model's output layer")
    link = PROBABILITY_LINK.get(loss)
    if link is not None and last.activation == link:
        raise ValueError(
            f"layers[{len(layers) - 1}] ({last!r}) ends with {link}, which the {loss} loss "
            f"already applies to the raw output (it takes logits): give the last layer "
            f"activation='identity'; predict_proba returns the probabilities")
    if loss == "cross_entropy" and last.out_features < 2:
        raise ValueError(f"loss='cross_entropy' needs at least 2 outputs (one logit per class), "
                         f"and the last layer gives {last.out_features}; for two classes use "
                         "loss='binary_cross_entropy' with one output")


def _named_arrays(layer: Layer) -> list[tuple[str, np.ndarray]]:
    """(name, live array) of a layer's parameters, then of its buffers: what a file holds."""
    return list(zip(layer.parameter_names(), layer.parameters())) \
        + list(zip(layer.buffer_names(), layer.buffers()))


def _check_heads(heads: int, out_features: int, loss: str) -> None:
    """objective.heads must split the last layer's outputs into equal blocks (of at
    least 2 classes for cross_entropy)."""
    width, rest = divmod(out_features, heads)
    if rest or (loss == "cross_entropy" and width < 2):
        raise ValueError(f"objective.heads ({heads}) must split the last layer's "
                         f"{out_features} outputs into equal blocks"
                         f"{' of at least 2 classes' if loss == 'cross_entropy' else ''}")


def _mean_loss(loss_code: int, output: np.ndarray, y: np.ndarray,
               sample_weight: np.ndarray | None) -> tuple[float, np.ndarray]:
    """(mean loss, dL/d_output) of the loss kernels (Sequential.loss_and_grad's)."""
    d_out = np.empty_like(output)
    if sample_weight is not None:
        T, labels = (None, y) if y.ndim == 1 else (y, None)
        loss = _loss.weighted_loss_into(loss_code, output, T, labels, sample_weight, d_out)
    elif y.ndim == 1:
        loss = _loss.cross_entropy_labels_into(output, y, d_out)
    else:
        loss = _loss.loss_forward_backward_into(loss_code, output, y, d_out)
    return float(loss), d_out


class Sequential:
    """Layers applied in order, trained against one loss.

    Parameters
    ----------
    layers : sequence of Layer
        The layers (``fastbp.Dense``, ...), in order; their widths must chain and
        they must share one dtype. The last layer must not apply the activation
        the loss applies itself (sigmoid before binary_cross_entropy, softmax
        before cross_entropy) and must not have dropout.
    loss : str, default "mse"
        One of ``fastbp.LOSSES``. The losses take the raw output of the last layer
        (logits for the cross entropies).
    dropout_seed : int in [0, 2**64) or None
        The seed of the dropout masks (None: drawn from OS entropy).

    Attributes
    ----------
    layers : tuple of Layer
        Assign a new sequence (checked as the constructor's) to change the
        architecture.
    loss_name : str
        The loss.
    objective : Objective
        How training scales and penalises the loss (``fastbp.Objective()``: plainly).
    training_state : TrainingRun or None
        The last fit's training state (optimizer, schedule, batch order, epoch count,
        early stopping), which ``fit(..., resume=True)`` continues and ``save``
        stores; None before a fit. Assign None to release its memory.
    num_threads : int or None
        BLAS threads during this model's calls (None: the process-wide setting, see
        ``fastbp.set_num_threads``).

    Raises
    ------
    TypeError
        ``layers`` holding anything but fastbp layers, or layers of several dtypes.
    ValueError
        Widths that do not chain, an unknown loss, a last layer that applies the
        loss's own activation or has dropout, cross_entropy with one output.

    Notes
    -----
    ``forward`` returns the raw output of the last layer; ``predict`` returns
    values (regression losses), int class labels (cross_entropy) or 0/1 labels
    (binary_cross_entropy), shape ``(n,)`` for a model with one output.
    Layers with dropout apply it to their output in ``train_step``, ``fit`` and
    ``backward`` only; the masks are keyed by ``dropout_seed``, the layer's index
    and the step.
    """

    def __init__(self, layers: Sequence[Layer], loss: str = "mse", *,
                 dropout_seed: int | None = None) -> None:
        self.loss_code = check.loss_code(loss)
        seed = secrets.randbits(64) if dropout_seed is None else check.dropout_seed(dropout_seed)
        self.loss_name = loss
        # One lock per model: compiled calls share the model's workspaces, so two
        # threads using one model take turns (each call is atomic).
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        #: the derivative kernels' scratch, kept between calls (under _lock)
        self._scratch = Workspace()
        self.num_threads: int | None = None
        self._dropout_seed = seed
        self._objective = Objective()
        self.training_state: TrainingRun | None = None
        #: backward() calls without a step so far (the default step of the next is one more)
        self._backward_calls = 0
        self._layers = check_layers(layers, loss)

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, in order. A tuple: to change the architecture, assign a new
        sequence (checked like the constructor's), e.g. to swap the output layer."""
        return self._layers

    @layers.setter
    def layers(self, layers: Sequence[Layer]) -> None:
        layers = check_layers(layers, self.loss_name)
        _check_heads(self._objective.heads, layers[-1].out_features, self.loss_name)
        with self._lock:
            self._layers = layers
            self._engine = None  # the compiled engine points into the old layers
            self.training_state = None  # its optimizer is over the old parameters

    @property
    def training(self) -> bool:
        """The mode the layers' own forward/backward follow (``train()``/``eval()``; True
        for a new model). The model's own calls do not read it: fit, train_step and
        backward always train, forward/predict/evaluate/exports always infer."""
        return all(layer.training for layer in engine_layers(self.layers))

    def train(self, mode: bool = True) -> Sequential:
        """Set every layer's ``training`` flag to ``mode`` (PyTorch's ``Module.train``).

        Parameters
        ----------
        mode : bool, default True

        Returns
        -------
        Sequential
            The model itself.

        Raises
        ------
        TypeError
            ``mode`` is not a bool.
        """
        mode = check.flag(mode, "mode")
        for layer in engine_layers(self.layers):
            layer.training = mode
        return self

    def eval(self) -> Sequential:
        """``train(False)``: the layers' own forward/backward infer (BatchNorm uses its
        running statistics).

        Returns
        -------
        Sequential
            The model itself.
        """
        return self.train(False)

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

    def set_dropout_rates(self, rates: Any) -> None:
        """Change the layers' dropout probabilities in place, one rate per layer of
        ``layers`` (a schedule between epochs, from a ``fit`` callback: RealMLP's
        flat-cosine dropout). The masks keep their keys (seed, layer, step): the next
        steps draw with the new rates, as a model built with them would.

        Parameters
        ----------
        rates : list or tuple of float
            0 <= p < 1 each; a layer without a dropout setting (LayerNorm, an
            embedding...) keeps 0, the last layer and a layer before a ``Dropout`` layer
            keep 0.

        Raises
        ------
        TypeError
            rates not a list or tuple, a rate not a real number.
        ValueError
            Another length, a rate outside [0, 1) or where the model cannot have one.
        """
        if not isinstance(rates, (list, tuple)):
            raise TypeError(f"rates must be a list or tuple of floats, got {type(rates).__name__}")
        layers = self.layers
        if len(rates) != len(layers):
            raise ValueError(f"rates must hold one rate per layer ({len(layers)}), got "
                             f"{len(rates)}")
        checked = [check.dropout_rate(p, f"rates[{i}]") for i, p in enumerate(rates)]
        for i, (layer, p) in enumerate(zip(layers, checked)):
            blocked = i == len(layers) - 1 or (i + 1 < len(layers)
                                               and isinstance(layers[i + 1], Dropout))
            if p and (blocked or not hasattr(layer, "_dropout")):
                raise ValueError(f"layers[{i}] ({type(layer).__name__}) cannot have dropout "
                                 f"here, got rates[{i}] = {p}")
        with self._lock:
            for layer, p in zip(layers, checked):
                if hasattr(layer, "_dropout"):
                    layer._dropout = p
            if self._engine is not None:
                self._engine.set_dropout_rates([la.dropout for la in engine_layers(layers)])

    @property
    def objective(self) -> Objective:
        """The training objective's convention (see fastbp.Objective); assign an
        Objective to change it."""
        return self._objective

    @objective.setter
    def objective(self, value: Objective) -> None:
        if not isinstance(value, Objective):
            raise TypeError(f"objective must be a fastbp.Objective, got {type(value).__name__}")
        if value.log_loss_clip > 0 and self.loss_name not in CLASSIFICATION_LOSSES:
            raise ValueError("objective.log_loss_clip applies to the cross-entropy losses, not "
                             f"to {self.loss_name!r}")
        _check_heads(value.heads, self.out_features, self.loss_name)
        with self._lock:
            self._objective = value
            self._engine = None  # rebuilt with the new objective

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
        """The input width."""
        return self.layers[0].in_features

    @property
    def target_width(self) -> int:
        """The width of a sample's target (its number of classes for cross_entropy): the
        last layer's out_features, over the objective's heads."""
        return self.out_features // self._objective.heads

    @property
    def out_features(self) -> int:
        """The output width."""
        return self.layers[-1].out_features

    @property
    def sizes(self) -> tuple[int, ...]:
        """(in_features, each layer's out_features...)."""
        return (self.in_features,) + tuple(layer.out_features for layer in self.layers)

    def data_signature(self) -> tuple[Any, ...]:
        """What converted training data depends on: (dtype, in_features, out_features, loss)."""
        return (self.dtype, self.in_features, self.out_features, self.loss_name,
                self._objective.heads)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], loss={self.loss_name!r})"

    # ---------------------------------------------------------------- conversion
    def check_X(self, X: Any, name: str = "X") -> np.ndarray | SparseRows:
        """X as a C-contiguous (n_samples, in_features) array of the model's dtype, or
        a sparse X as the compiled first layer reads it.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            Real numbers (bool, int or float), any memory order; shape (n_samples,) is
            accepted when in_features is 1. A scipy.sparse matrix or array (any
            format) needs a Dense first layer; its stored values must be finite.
        name : str, default "X"
            How error messages name the argument.

        Returns
        -------
        ndarray of shape (n_samples, in_features), or SparseRows
            X itself when it already is such an array, else a converted copy; for
            sparse X, private CSR arrays of the model's dtype (never the dense form).

        Raises
        ------
        TypeError
            X does not hold real numbers; sparse X for a model whose first layer is
            not Dense.
        ValueError
            X is not 2-D, has another width, or more than 2**31 - 1 rows; sparse X
            with non-finite stored values; a code the first layer cannot take (a
            CategoricalEmbedding's).
        """
        if is_sparse(X):
            if self.layers[0].kind != "dense":
                raise TypeError(f"{name} is sparse: sparse input needs a Dense first layer, "
                                f"got a {type(self.layers[0]).__name__}")
            rows = as_sparse_rows(X, self.dtype, self.in_features, name)
            # rows reach BLAS as a 32-bit int in the later layers, as for dense X
            check.blas_dims(**{f"{name} rows (n_samples)": rows.n_rows})
            return rows
        X = as_input(X, self.dtype, self.in_features, name)
        if self.layers[0].checks_input:
            self.layers[0].check_input(X, name)
        return X

    def check_y(self, y: Any, n_samples: int, name: str = "y") -> np.ndarray:
        """The targets in the form the loss takes (see fastbp._convert.as_target).

        Parameters
        ----------
        y : array-like
            Values of shape (n_samples, out_features), or (n_samples,) for one output;
            for cross_entropy int class labels (n_samples,) in [0, out_features) (whole
            floats accepted) or class probabilities (n_samples, out_features). With
            ``objective.heads`` = h > 1 the widths are a head's (out_features / h), a
            row's target repeated for every head, or y of shape (n_samples,
            out_features) gives each head its own (values or probabilities, head m's
            in columns [m·w, (m+1)·w)).
        n_samples : int
            The number of rows y must have.
        name : str, default "y"
            How error messages name the argument.

        Returns
        -------
        ndarray
            Labels of shape (n_samples,) as np.intp (cross_entropy with 1-D y), else a
            C-contiguous (n_samples, out_features) array of the model's dtype.

        Raises
        ------
        TypeError
            y does not hold real numbers.
        ValueError
            A wrong shape, labels out of range or not whole numbers, a negative poisson
            target.
        """
        width = self.target_width
        if self._objective.heads > 1 and np.ndim(y) == 2 and np.shape(y)[1] == \
                self.out_features:
            width = self.out_features   # each head's own targets
        y = as_target(y, self.loss_name, self.dtype, n_samples, width, name)
        if self.loss_name == "poisson":
            check.poisson_target(y, name)
        return y

    def check_Xy(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """check_X and check_y, with at least one sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
            The samples.
        y : array-like
            Their targets, as ``check_y`` takes them.

        Returns
        -------
        X, y : ndarray
            As ``check_X`` and ``check_y`` return them.

        Raises
        ------
        TypeError
            X or y not real numbers.
        ValueError
            No sample, or anything ``check_X`` or ``check_y`` refuses.
        """
        X = self.check_X(X)
        if X.shape[0] == 0:
            raise ValueError(f"X must hold at least one sample, got shape {X.shape}")
        return X, self.check_y(y, X.shape[0])

    def check_sample_weight(self, sample_weight: Any, n_samples: int) -> np.ndarray | None:
        """Checked weights (float64), or None for None and all-ones weights.

        Parameters
        ----------
        sample_weight : array-like of shape (n_samples,) or None
            One finite weight >= 0 per sample, with a positive sum.
        n_samples : int
            The number of samples.

        Returns
        -------
        ndarray of shape (n_samples,) or None
            C-contiguous float64 weights; None for None or all-ones weights (the
            unweighted path, with its exact results).

        Raises
        ------
        TypeError
            Weights that are not real numbers.
        ValueError
            A wrong shape, non-finite or negative weights, a sum of 0.
        """
        return check.sample_weight(sample_weight, n_samples)

    # ---------------------------------------------------------------- compiled engine
    def _compiled(self) -> Engine:
        """The compiled engine over the layers' parameter arrays (built on first use;
        the arrays never change, so it stays valid until the layers, the dropout seed
        or the objective are replaced)."""
        engine = self._engine
        if engine is None:
            layers = self.layers
            flat = engine_layers(layers)
            engine = Engine([layer.engine_record() for layer in flat], self.parameters(),
                            self.gradients(), [f for la in layers for f in la.penalized()],
                            self.loss_code, self.dtype, [la.dropout for la in flat],
                            self._dropout_seed, dropout_slots(flat),
                            [la.engine_buffers() for la in flat])
            if not self._objective.is_default:
                engine.set_objective(*self._objective.engine_args())
            self._engine = engine
        return engine

    # Pickling and copy.deepcopy (joblib's and Dask's workers, gradcheck, the estimators):
    # the lock and the compiled engine are rebuilt on the other side, and each layer makes
    # its arrays its own (Layer.__setstate__). Files go through save().
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_lock", "_engine", "_scratch"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_objective", Objective())
        state.setdefault("training_state", None)
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._engine = None
        self._scratch = Workspace()

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
    # returns the result. It answers None whenever X needs converting or checking,
    # the engine needs building or growing, or another call holds the lock; the
    # checked path then runs (and so does it whenever num_threads is set, which only
    # the checked path applies).
    def _predict(self, X: Any, kind: int, check_finite: bool) -> np.ndarray:
        engine = self._engine
        # (a subclass's own forward is called by predict and predict_proba)
        own_forward = type(self).forward is not Sequential.forward and kind != _PREDICT_RAW
        if check_finite is not True and check_finite is not False:
            check_finite = check.flag(check_finite, "check_finite")   # (a NumPy bool), or raise
        if engine is not None and self.num_threads is None and not own_forward \
                and not self.layers[0].checks_input:   # (its check is in check_X)
            out = engine.predict_fast(X, kind, self._lock, check_finite)
            if out is not None:
                return out
        k = self.out_features
        if own_forward:
            out = np.array(self.forward(X), dtype=self.dtype, order="C")
        else:
            X = self.check_X(X)
            if check_finite:
                _require_finite(X)
            if X.shape[0] == 0:
                out = np.empty((0, k), dtype=self.dtype)
            else:
                with self._lock, self._threads():
                    out = self._compiled().forward(X)
        heads = self._objective.heads
        if heads > 1 and kind != _PREDICT_RAW:   # each head's prediction, then their mean
            k = self.target_width
            out = out.reshape(-1, k)
            if self.loss_name in CLASSIFICATION_LOSSES and out.shape[0]:
                _act.activation_forward_into(code(ACTIVATIONS, PROBABILITY_LINK[self.loss_name]),
                                             out, out)
            out = out.reshape(-1, heads, k).mean(axis=1)
            if kind == _PREDICT_PROBA:
                return out
            if self.loss_name == "cross_entropy":
                return out.argmax(axis=1)
            if self.loss_name == "binary_cross_entropy":
                out = (out > 0.5).astype(np.intp)
            return out[:, 0] if k == 1 else out
        if kind == _PREDICT_PROBA:
            if out.shape[0]:
                _act.activation_forward_into(code(ACTIVATIONS, PROBABILITY_LINK[self.loss_name]),
                                             out, out)
            return out
        if kind == _PREDICT_LABELS:
            if self.loss_name == "cross_entropy":
                return out.argmax(axis=1)
            if self.loss_name == "binary_cross_entropy":
                out = (out > 0).astype(np.intp)
            return out[:, 0] if k == 1 else out
        return out

    def forward(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """The raw output of the last layer (logits for the cross entropies).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            Converted to the model's dtype.
        check_finite : bool, default True
            Refuse NaN and infinite values in X (False skips the check, for input
            known to be finite).

        Returns
        -------
        ndarray of shape (n_samples, out_features)
            A new array of the model's dtype.

        Raises
        ------
        TypeError
            X not real numbers.
        ValueError
            X of the wrong width, or (with check_finite) not finite.
        """
        return self._predict(X, _PREDICT_RAW, check_finite)

    def predict(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """Predictions: values, int class labels or 0/1 int labels.

        Values for the regression losses, class labels (argmax of the logits) for
        cross_entropy, 1 where the logit is > 0 for binary_cross_entropy.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            Real numbers, converted to the model's dtype; shape (n_samples,) is accepted
            when in_features is 1.
        check_finite : bool, default True
            Refuse NaN and infinite values in X (False skips the check, for input
            known to be finite).

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, out_features)
            (n_samples,) for cross_entropy and for a model with one output.

        Raises
        ------
        TypeError
            X not real numbers; ``check_finite`` not a bool.
        ValueError
            X of the wrong shape or width, or (with check_finite) not finite.
        """
        return self._predict(X, _PREDICT_LABELS, check_finite)

    def predict_proba(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """Class probabilities: the softmax or the sigmoid of the logits.

        Softmax for cross_entropy, sigmoid for binary_cross_entropy.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            Real numbers, converted to the model's dtype; shape (n_samples,) is accepted
            when in_features is 1.
        check_finite : bool, default True
            Refuse NaN and infinite values in X (False skips the check, for input
            known to be finite).

        Returns
        -------
        ndarray of shape (n_samples, out_features)
            A new array of the model's dtype.

        Raises
        ------
        TypeError
            X not real numbers; ``check_finite`` not a bool.
        ValueError
            A regression loss (use predict); X of the wrong shape or width, or (with
            check_finite) not finite.
        """
        if self.loss_name not in CLASSIFICATION_LOSSES:
            raise ValueError(f"predict_proba needs a cross-entropy loss; this model's loss is "
                             f"{self.loss_name!r} (use predict)")
        return self._predict(X, _PREDICT_PROBA, check_finite)

    # ---------------------------------------------------------------- input derivatives
    def _derivative_args(self, X: Any, check_finite: bool, what: str
                         ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[str]]:
        """X converted, and the stack's (Ws, bs, activations) for the derivative kernels:
        Dense layers only (in eval mode: no dropout), no softmax."""
        for i, layer in enumerate(self.layers):
            if layer.kind != "dense":
                raise NotImplementedError(f"{what} needs Dense layers; layers[{i}] is "
                                          f"{layer!r} (kind {layer.kind!r})")
            if layer.activation == "softmax":
                raise ValueError(f"{what}: layers[{i}] applies softmax, which is not "
                                 "element-wise; derivatives are of element-wise activations")
        check_finite = check.flag(check_finite, "check_finite")
        if is_sparse(X):
            raise TypeError(f"{what} takes dense X (the derivatives are dense in X)")
        X = as_input(X, self.dtype, self.in_features)
        if check_finite:
            _require_finite(X)
        dense = [la for la in self.layers if isinstance(la, Dense)]   # (all of them, checked)
        return (X, [la.W for la in dense], [la.b for la in dense],
                [la.activation for la in dense])

    def input_gradient(self, X: Any, output: int | None = None, *,
                       check_finite: bool = True) -> np.ndarray:
        """The gradient of the raw output with respect to the input: d(Σ_k y_k)/dX, or
        dy_output/dX, by one reverse-mode pass (y = ``forward(X)``, eval mode).

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
        output : int or None, default None
            The output to differentiate (None: the sum of the outputs).
        check_finite : bool, default True
            Refuse NaN and infinite values in X.

        Returns
        -------
        ndarray of shape (n_samples, in_features), the model's dtype.

        Raises
        ------
        ValueError
            A softmax layer, a bad X or output.
        NotImplementedError
            A layer kind without input derivatives.
        """
        with self._lock, self._threads():
            return ops.network_input_gradient(*self._derivative_args(X, check_finite,
                                                                     "input_gradient"),
                                              output=output)

    def _network_derivatives(self, X: Any, check_finite: bool, kind: str) -> tuple[Any, ...]:
        with self._lock, self._threads():
            args = check.network_args(*self._derivative_args(X, check_finite, kind))
            return ops.derivatives_checked(*args, kind, self._scratch)

    def jacobian(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """J[i, k, j] = dy_k/dx_j of the raw output y = ``forward(X)`` (eval mode), by one
        forward-mode pass: shape (n_samples, out_features, in_features).

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
        check_finite : bool, default True
            Refuse NaN and infinite values in X.

        Raises
        ------
        ValueError, NotImplementedError
            As ``input_gradient`` raises them.
        """
        return self._network_derivatives(X, check_finite, "jacobian")[1]

    def hessian_diagonal(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """H[i, k, j] = d²y_k/dx_j² of the raw output (the diagonal of each output's
        Hessian), by one forward-mode pass: shape (n_samples, out_features, in_features).
        relu's and leaky relu's second derivatives are 0 (almost everywhere).

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
        check_finite : bool, default True
            Refuse NaN and infinite values in X.

        Raises
        ------
        ValueError, NotImplementedError
            As ``input_gradient`` raises them.
        """
        return self._network_derivatives(X, check_finite, "hessian_diagonal")[2]

    def laplacian(self, X: Any, *, check_finite: bool = True) -> np.ndarray:
        """L[i, k] = Σ_j d²y_k/dx_j² of the raw output, by one forward-mode pass that
        carries the sum (not each term): shape (n_samples, out_features).

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
        check_finite : bool, default True
            Refuse NaN and infinite values in X.

        Raises
        ------
        ValueError, NotImplementedError
            As ``input_gradient`` raises them.
        """
        return self._network_derivatives(X, check_finite, "laplacian")[2]

    def value_gradient_laplacian(self, X: Any, *, check_finite: bool = True
                                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(y, J, L) in one pass: the raw output (n, out), the Jacobian (n, out, in) and the
        Laplacian (n, out), what a physics-informed residual needs.

        Parameters
        ----------
        X : array-like of shape (n_samples, in_features)
        check_finite : bool, default True
            Refuse NaN and infinite values in X.

        Raises
        ------
        ValueError, NotImplementedError
            As ``input_gradient`` raises them.
        """
        Y, J, L = self._network_derivatives(X, check_finite, "laplacian")
        return Y, J, L

    def loss_and_grad(self, output: np.ndarray, y: np.ndarray,
                      sample_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """(mean loss, dL/d_output) for converted output, target and checked weights.

        Performs no checks: the arguments must come from ``forward``, ``check_y`` and
        ``check_sample_weight`` (the compiled kernels rely on it).

        Parameters
        ----------
        output : ndarray of shape (n_samples, out_features)
            The raw output, C-contiguous, of the model's dtype, at least one sample.
        y : ndarray
            The targets as ``check_y`` returns them.
        sample_weight : ndarray of shape (n_samples,) or None, default None
            Weights as ``check_sample_weight`` returns them.

        Returns
        -------
        loss : float
            The mean loss (weighted with ``sample_weight``; over the rows and the
            heads with ``objective.heads``); no objective scaling.
        d_output : ndarray of shape (n_samples, out_features)
            Its gradient with respect to output.
        """
        heads = self._objective.heads
        if heads == 1:
            return _mean_loss(self.loss_code, output, y, sample_weight)
        # (n, h·w) as (n·h, w), each row's target (and weight) once per head, or (y of
        # the output's width) each head's own
        n = output.shape[0]
        per_head = y.ndim == 2 and y.shape[1] == output.shape[1]
        loss, d_out = _mean_loss(self.loss_code, output.reshape(n * heads, -1),
                                 y.reshape(n * heads, -1) if per_head
                                 else np.repeat(y, heads, axis=0),
                                 None if sample_weight is None
                                 else np.repeat(sample_weight, heads))
        return loss, d_out.reshape(output.shape)

    def loss(self, X: Any, y: Any, sample_weight: Any = None, *,
             check_finite: bool = True) -> float:
        """The mean loss on (X, y); the weighted mean with ``sample_weight``.

        Plain fastbp loss: no objective scaling, no dropout.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            At least one sample, converted to the model's dtype.
        y : array-like
            Targets: values of shape (n_samples, out_features), or (n_samples,) for one
            output; for cross_entropy int class labels (n_samples,) or class
            probabilities (n_samples, out_features).
        sample_weight : array-like of shape (n_samples,) or None, default None
            One finite weight >= 0 per sample, with a positive sum (None: unweighted).
        check_finite : bool, default True
            Refuse NaN and infinite values in X.

        Returns
        -------
        float

        Raises
        ------
        TypeError
            X, y or the weights not real numbers; ``check_finite`` not a bool.
        ValueError
            Shapes that do not fit the model, no sample, class labels out of range or not
            whole numbers, a negative poisson target, bad weights, or (with
            check_finite) a non-finite X.
        """
        X, y = self.check_Xy(X, y)
        w = self.check_sample_weight(sample_weight, X.shape[0])
        return self.loss_and_grad(self.forward(X, check_finite=check_finite), y, w)[0]

    def evaluate(self, X: Any, y: Any, sample_weight: Any = None, *,
                 check_finite: bool = True) -> float:
        """The mean loss on (X, y), the same number as ``loss``.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            At least one sample, converted to the model's dtype.
        y : array-like
            Targets: values of shape (n_samples, out_features), or (n_samples,) for one
            output; for cross_entropy int class labels (n_samples,) or class
            probabilities (n_samples, out_features).
        sample_weight : array-like of shape (n_samples,) or None, default None
            One finite weight >= 0 per sample, with a positive sum (None: unweighted).
        check_finite : bool, default True
            Refuse NaN and infinite values in X.

        Returns
        -------
        float

        Raises
        ------
        TypeError
            X, y or the weights not real numbers; ``check_finite`` not a bool.
        ValueError
            Shapes that do not fit the model, no sample, class labels out of range or not
            whole numbers, a negative poisson target, bad weights, or (with
            check_finite) a non-finite X.
        """
        return self.loss(X, y, sample_weight, check_finite=check_finite)

    def backward(self, X: Any, y: Any, sample_weight: Any = None, *,
                 step: int | None = None) -> float:
        """Forward, loss and backward: fills every layer's gradients and returns the loss.

        The loss is the weighted mean with sample_weight, under the model's objective.
        With dropout, the masks are those of optimizer step ``step`` (the ones
        ``train_step`` draws when the optimizer's ``step_count`` is ``step - 1``);
        ``step=None`` counts this model's backward() calls without a step: the
        k-th such call uses step k (the count is not saved in model files).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            At least one sample, converted to the model's dtype.
        y : array-like
            Targets: values of shape (n_samples, out_features), or (n_samples,) for one
            output; for cross_entropy int class labels (n_samples,) or class
            probabilities (n_samples, out_features).
        sample_weight : array-like of shape (n_samples,) or None, default None
            One finite weight >= 0 per sample, with a positive sum (None: unweighted).
        step : int or None, default None
            The step whose dropout masks apply (>= 1); None: the next of the count.

        Returns
        -------
        float
            The loss; the gradients are now in ``gradients()``.

        Raises
        ------
        TypeError
            X, y or the weights not real numbers; a step that is not an int.
        ValueError
            Shapes that do not fit the model, no sample, class labels out of range or not
            whole numbers, a negative poisson target, bad weights, a non-finite X, a
            step < 1.
        """
        X, y = self.check_Xy(X, y)
        _require_finite(X)
        w = self.check_sample_weight(sample_weight, X.shape[0])
        if step is not None:
            step = check.dropout_step(step)
        T, labels = self._split(y)
        with self._lock, self._threads():
            if step is None:
                self._backward_calls += 1
                step = self._backward_calls
            return self._compiled().backward(X, T, labels, step, w)

    def train_step(self, X: Any, y: Any, optimizer: Optimizer,
                   sample_weight: Any = None, *, dy: Any = None, dy_weight: float = 1.0,
                   clip_grad_norm: float | None = None, label_smoothing: float = 0.0) -> float:
        """One step of gradient descent on (X, y) in one compiled call.

        Forward, loss, backward and the update of every layer; the optimizer's
        ``step_count`` advances by one.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            At least one sample, converted to the model's dtype.
        y : array-like
            Targets: values of shape (n_samples, out_features), or (n_samples,) for one
            output; for cross_entropy int class labels (n_samples,) or class
            probabilities (n_samples, out_features).
        sample_weight : array-like of shape (n_samples,) or None, default None
            One finite weight >= 0 per sample, with a positive sum (None: unweighted).
        optimizer : Optimizer
            A fastbp optimizer built over ``parameters()`` (SGD, AdaGrad, RMSprop, Adam
            or AdamW).
        dy : array-like of shape (n_samples, out_features, in_features) or None
            Target derivatives of the raw output with respect to X: the step then
            minimises loss + dy_weight · mean((jacobian(X) - dy)²) (the mean over every
            entry; with sample_weight, the weighted mean over samples of each sample's
            mean). Dense layers without dropout.
        dy_weight : float, default 1.0
            The derivative term's weight (finite, >= 0).
        clip_grad_norm : float or None, default None
            Scale every gradient by min(1, c/(‖g‖₂ + 1e-6)), ‖g‖₂ the norm of all of
            them together, before the update (``torch.nn.utils.clip_grad_norm_``).
        label_smoothing : float, default 0.0
            ε in [0, 1] for loss="cross_entropy": the targets become
            (1 − ε)·y + ε/n_classes (``torch.nn.CrossEntropyLoss(label_smoothing=ε)``).

        Returns
        -------
        float
            The batch's loss before the update, under the model's objective (with the
            derivative term, when dy is given; smoothed, with label_smoothing).

        Raises
        ------
        TypeError
            ``optimizer`` not a fastbp optimizer, X or y not real numbers.
        ValueError
            Shapes that do not fit the model, NaN or infinite values in X or y, an
            optimizer built over other arrays than ``parameters()``.
        """
        if dy is not None or clip_grad_norm is not None or label_smoothing != 0.0:
            return self._data_step(X, y, optimizer, TrainingData(
                self, X, y, sample_weight, dy=dy, dy_weight=dy_weight,
                clip_grad_norm=clip_grad_norm, label_smoothing=label_smoothing))
        with self._lock:
            engine = self._engine
            if engine is not None and self.num_threads is None and sample_weight is None:
                loss = engine.train_step_fast(X, y, optimizer)
                if loss is not None:
                    return loss
        # The checked path: converts the inputs, (re)builds and binds the engine.
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer instance, got "
                            f"{type(optimizer).__name__}")
        X, y = self.check_Xy(X, y)
        _require_finite(X)
        _require_finite(y, "y")
        w = self.check_sample_weight(sample_weight, X.shape[0])
        T, labels = self._split(y)
        with self._lock, self._threads():
            engine = self._compiled()
            self._bind(engine, optimizer)
            return engine.train_step(X, T, labels, w)

    def _data_step(self, X: Any, y: Any, optimizer: Optimizer, data: TrainingData) -> float:
        """train_step with derivative data (Engine.sobolev), label smoothing or gradient
        clipping: every argument checked by TrainingData."""
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer instance, got "
                            f"{type(optimizer).__name__}")
        with self._lock, self._threads():
            engine = self._compiled()
            self._bind(engine, optimizer)
            if data.dy is None:
                return engine.train_step(data.X, data.targets, data.labels, data.sample_weight,
                                         data.clip_norm)
            return engine.sobolev(data.dense_X, data.targets, data.labels, data.dy, data.dy_weight,
                                  data.sample_weight, True)

    def full_batch_gradient(self, data: TrainingData) -> float:
        """The loss of all of ``data`` (with its derivative term, if any) under the model's
        objective, and every parameter's gradient of it in ``gradients()``: one compiled
        forward and backward pass, no update (L-BFGS's function). No dropout.

        Parameters
        ----------
        data : TrainingData
            Arrays made for a model like this one (same dtype, widths and loss).

        Returns
        -------
        float
            The loss; the gradients are left in ``gradients()``.

        Raises
        ------
        TypeError
            ``data`` is not a TrainingData for a model like this one.
        ValueError
            The model has dropout.
        """
        if not isinstance(data, TrainingData) or data.signature != self.data_signature():
            raise TypeError("data must be a TrainingData made for a model like this one")
        if any(layer.dropout for layer in self.layers):
            raise ValueError("a full-batch gradient needs a deterministic loss: this model has "
                             "dropout")
        with self._lock, self._threads():
            engine = self._compiled()
            if data.dy is not None:
                return engine.sobolev(data.dense_X, data.targets, data.labels, data.dy,
                                      data.dy_weight, data.sample_weight, False)
            return engine.backward(data.X, data.targets, data.labels, 1, data.sample_weight)

    def check_dy(self, dy: Any, n_samples: int, name: str = "dy") -> np.ndarray:
        """Target derivatives (n_samples, out_features, in_features), converted to the
        model's dtype and checked finite; the model must be able to train on them (Dense
        layers without dropout, element-wise activations).

        Parameters
        ----------
        dy : array-like of shape (n_samples, out_features, in_features)
        n_samples : int
            The number of samples it goes with.
        name : str, default "dy"
            The argument's name in error messages.

        Raises
        ------
        TypeError, ValueError
            A wrong shape, dtype or value, naming the argument; a model that cannot train
            on derivatives.
        """
        for i, layer in enumerate(self.layers):
            if layer.kind != "dense":
                raise NotImplementedError(f"training on derivatives needs Dense layers; "
                                          f"layers[{i}] is a {type(layer).__name__}")
            if layer.dropout or layer.activation == "softmax":
                raise ValueError(f"training on derivatives needs layers without dropout and "
                                 f"softmax; layers[{i}] is {layer!r}")
        arr = np.asarray(dy)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        shape = (n_samples, self.out_features, self.in_features)
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (samples, outputs, inputs), got "
                             f"{arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return arr

    def run_epoch(self, data: TrainingData, order: np.ndarray, batch: int,
                  optimizer: Optimizer, loss_sum0: float = 0.0,
                  lrs: np.ndarray | None = None) -> tuple[int, int, float]:
        """One epoch of mini-batch steps on checked ``data`` in one compiled call.

        The rows ``order`` in batches of ``batch``; the optimizer's step_count advances
        by the steps taken. fastbp.training's runs call it; ``train_epoch`` is the
        checked spelling.

        Parameters
        ----------
        data : TrainingData
            The converted arrays, made for a model of this dtype, widths and loss.
        order : ndarray of shape (n_rows,)
            Row indices into data (converted to np.intp); an index out of range ends
            the epoch with status EPOCH_BAD_INDEX.
        batch : int
            Rows per step (>= 1); the last batch may be smaller.
        optimizer : Optimizer
            A fastbp optimizer with a compiled kernel, built over ``parameters()``.
        loss_sum0 : float, default 0.0
            Where the loss sum starts (an interrupted epoch's sum so far).
        lrs : ndarray of float64 or None, default None
            The learning rate of each batch (a per-batch schedule's; not with
            derivative data).

        Returns
        -------
        status : int
            One of fastbp.training's EPOCH_DONE, EPOCH_NONFINITE (the loss of the last
            step taken was not finite; as every loss is taken before its update, that
            step was applied), EPOCH_INTERRUPTED (Ctrl-C) or EPOCH_BAD_INDEX.
        steps : int
            The steps applied.
        loss_sum : float
            loss_sum0 + Σ batch loss · batch size over the steps.

        Raises
        ------
        TypeError
            ``data`` not made for a model like this one; ``optimizer`` not one of
            fastbp's compiled optimizers.
        ValueError
            ``batch`` < 1, an optimizer built over other arrays.
        """
        if not isinstance(data, TrainingData) or data.signature != self.data_signature():
            raise TypeError("data must be a TrainingData made for a model like this one")
        order = np.ascontiguousarray(order, dtype=np.intp)
        with self._lock, self._threads():
            engine = self._compiled()
            self._bind(engine, optimizer)
            if data.dy is not None:
                if lrs is not None:
                    raise ValueError("a per-batch schedule does not step derivative (dy) "
                                     "training; use a per-epoch one")
                return self._derivative_epoch(engine, data, order, batch, loss_sum0)
            return engine.epoch(data.X, data.targets, data.labels, order, batch,
                                data.sample_weight, loss_sum0, data.clip_norm, lrs)

    @staticmethod
    def _derivative_epoch(engine: Engine, data: TrainingData, order: np.ndarray, batch: int,
                          loss_sum: float) -> tuple[int, int, float]:
        """run_epoch with derivative data: a compiled step per mini-batch (Engine.sobolev),
        the rows gathered here; Ctrl-C and a non-finite loss end it as the compiled epoch."""
        steps = 0
        assert data.dy is not None  # only called for derivative data
        if not len(order) or order.min() < 0 or order.max() >= data.n:
            return (_network.EPOCH_BAD_INDEX, 0, loss_sum) if len(order) \
                else (_network.EPOCH_DONE, 0, loss_sum)
        for start in range(0, len(order), batch):
            if _network.interrupt_pending():
                return _network.EPOCH_INTERRUPTED, steps, loss_sum
            rows = order[start:start + batch]
            T = None if data.targets is None else np.ascontiguousarray(data.targets[rows])
            labels = None if data.labels is None else np.ascontiguousarray(data.labels[rows])
            w = None if data.sample_weight is None else np.ascontiguousarray(
                data.sample_weight[rows])
            value = engine.sobolev(np.ascontiguousarray(data.dense_X[rows]), T, labels,
                                   np.ascontiguousarray(data.dy[rows]), data.dy_weight, w, True)
            steps += 1   # applied (its loss is taken before its update), so counted
            if not np.isfinite(value):
                return _network.EPOCH_NONFINITE, steps, value
            loss_sum += value * len(rows)
        return _network.EPOCH_DONE, steps, loss_sum

    def train_epoch(self, X: Any, y: Any, order: Any, batch_size: int, optimizer: Optimizer,
                    sample_weight: Any = None) -> tuple[int, float]:
        """One epoch of mini-batch steps in one compiled call, every argument checked.

        The rows ``order`` of X in batches of ``batch_size``, each batch's loss the
        (weighted) mean over it. The optimizer's step_count advances by the steps taken.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            The samples, checked as ``fit`` checks them (finite).
        y : array-like
            Their targets, as ``fit`` takes them (finite).
        order : array-like of int, 1-D
            Row indices in [0, n_samples), in the order of the steps.
        batch_size : int
            Rows per step (>= 1); the last batch may be smaller.
        optimizer : Optimizer
            A fastbp optimizer built over ``parameters()``.
        sample_weight : array-like of shape (n_samples,) or None, default None
            One finite weight >= 0 per sample, with a positive sum.

        Returns
        -------
        steps : int
            The steps taken; steps < 0 means the loss of step -steps was not finite
            and the epoch stopped after that step (applied: a loss is taken before its
            update).
        total : float
            Σ batch loss · batch size over the steps; with steps < 0, that non-finite
            loss.

        Raises
        ------
        TypeError
            ``optimizer`` not a fastbp optimizer, ``order`` not a 1-D int array, data
            that are not real numbers.
        ValueError
            Indices out of range, data that ``fit`` refuses, ``batch_size`` < 1.
        """
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer instance, got "
                            f"{type(optimizer).__name__}")
        data = TrainingData(self, X, y, sample_weight)
        batch_size = check.int_in_range(batch_size, "batch_size", 1)
        arr = np.asarray(order)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise TypeError(f"order must be a 1-D array of ints, got {arr.dtype} of shape "
                            f"{arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= data.n):
            raise ValueError(f"order must hold row indices in [0, {data.n}), got values in "
                             f"[{arr.min()}, {arr.max()}]")
        status, steps, total = self.run_epoch(data, arr.astype(np.intp), min(batch_size, data.n),
                                              optimizer)
        if status == _network.EPOCH_NONFINITE:
            return -steps, total
        if status == _network.EPOCH_BAD_INDEX:
            raise ValueError("a row index or class label went out of range during the epoch "
                             "(were the arrays changed while it ran?)")
        return steps, total

    # ---------------------------------------------------------------- parameters
    def parameters(self) -> list[np.ndarray]:
        """Every layer's parameters, in order ([W1, b1, W2, b2, ...] for Dense layers):
        the live arrays."""
        return [p for layer in self.layers for p in layer.parameters()]

    def gradients(self) -> list[np.ndarray]:
        """The gradients of the last backward, aligned with ``parameters()``."""
        return [g for layer in self.layers for g in layer.gradients()]

    # ---------------------------------------------------------------- training & files
    def fit(self, X: Any, y: Any, *, epochs: int = 10, batch_size: int | None = 32,
            optimizer: Any = "adam", lr: float | None = None, shuffle: bool = True,
            seed: Any = None, validation_data: tuple[Any, Any] | None = None,
            scheduler: Any = None, early_stopping: int | None = None,
            callbacks: Iterable[Callable[[int, dict[str, float]], Any]] = (),
            progress: bool | None = None, sample_weight: Any = None,
            resume: bool = False, dy: Any = None, dy_weight: float = 1.0,
            clip_grad_norm: float | None = None, label_smoothing: float = 0.0,
            param_groups: Any = None, drop_last: bool = False) -> History:
        """Train the model in place with mini-batch gradient descent.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, in_features)
            Training samples (finite), converted to the model's dtype.
        y : array-like
            Targets: values of shape (n_samples, out_features) or (n_samples,) for one
            output; for cross_entropy int class labels (n_samples,) or class
            probabilities (n_samples, out_features).
        epochs : int, default 10
            Epochs to train (with ``resume=True``: epochs more).
        batch_size : int or None, default 32
            Samples per mini-batch; None is full-batch gradient descent, 1 stochastic
            gradient descent. The last batch of an epoch may be smaller.
        optimizer : str or Optimizer, default "adam"
            "sgd", "adagrad", "rmsprop", "adam" or "adamw" (a fresh optimizer), or an
            optimizer instance built over ``model.parameters()`` (used and advanced
            in place); or "lbfgs": full-batch L-BFGS through SciPy on the compiled loss
            and gradient (``epochs`` is the iteration limit; batch_size, shuffle and
            seed are not used; no lr, scheduler or early_stopping; float64
            recommended).
        lr : float or None
            The learning rate (None: the optimizer's default, or the instance's own).
        shuffle : bool, default True
            Draw a new sample order each epoch (from ``seed``).
        seed : None, int or numpy SeedSequence-like
            Seeds the batch order: the same seed gives bit-identical training.
        validation_data : (X_val, y_val) or None
            Evaluated after every epoch; then the schedule and early stopping watch
            its loss instead of the training loss.
        scheduler : Schedule, callable or None
            A schedule bound to the optimizer instance, or a callable taking the
            optimizer and returning one; stepped once per epoch (ReduceLROnPlateau
            with the monitored loss).
        early_stopping : int or None
            Stop after this many epochs without improvement of the monitored loss,
            and restore the best epoch's parameters.
        callbacks : iterable of callables
            ``cb(epoch, logs)`` after each epoch, ``logs`` a dict of that epoch's
            numbers ("epoch", "loss", "lr", "val_loss"); returning True stops.
        progress : bool or None
            Show a progress bar (None: only when stderr is a terminal).
        sample_weight : array-like or None
            One finite weight >= 0 per sample (positive sum): each batch's loss is the
            weighted mean over it.
        resume : bool, default False
            Continue the model's last fit (``training_state``) exactly: its
            optimizer state, batch order, schedule, epoch count and early-stopping
            bookkeeping, so fit(epochs=10) then fit(epochs=10, resume=True) equals
            fit(epochs=20). The run's settings (batch_size, optimizer, lr, shuffle,
            seed, scheduler, early_stopping) are left out or given the same values;
            pass the same X, y and validation_data.
        dy : array-like of shape (n_samples, out_features, in_features) or None
            Target derivatives of the raw output with respect to X (Sobolev or
            gradient-enhanced training): the training loss is loss + dy_weight ·
            mean((J - dy)²) over each batch, J = ``jacobian`` of the batch, and
            History.loss records it (the validation loss stays the plain loss).
            Dense layers without dropout.
        dy_weight : float, default 1.0
            The derivative term's weight (finite, >= 0).
        clip_grad_norm : float or None, default None
            Each step scales every gradient by min(1, c/(‖g‖₂ + 1e-6)), ‖g‖₂ the norm of
            all of them together, before its update (``torch.nn.utils.clip_grad_norm_``,
            inside the compiled epoch). Not with dy or optimizer="lbfgs".
        label_smoothing : float, default 0.0
            ε in [0, 1] for loss="cross_entropy": the training targets become
            (1 − ε)·y + ε/n_classes, which is
            ``torch.nn.CrossEntropyLoss(label_smoothing=ε)`` (History.loss records that
            loss; the validation loss stays the plain one). With ``resume``, pass these
            two as the first fit did (they are not stored).
        param_groups : list of dict, optional
            Parameter groups for a new optimizer of the kind ``optimizer`` names (a
            name, not an instance): dicts {"params": [...], "lr": ..., "weight_decay":
            ...} over ``parameters()``, each once (``fastbp.no_decay_groups``); "lr" and
            "weight_decay" default to the optimizer's. A group's lr is kept as its ratio
            to the optimizer's lr, which ``lr`` and schedules set.
        drop_last : bool, default False
            Skip each epoch's last partial batch (PyTorch's ``DataLoader(drop_last=
            True)``; RealMLP's recipe): an epoch steps the first n − n % batch_size rows
            of its order, and its history loss is their mean.

        Returns
        -------
        History
            The run's records (with ``resume``, of every epoch of the run; with
            optimizer="lbfgs", one entry per iteration).

        Raises
        ------
        TypeError, ValueError
            A bad argument, named (nothing about the model has changed then).
        TrainingDiverged
            The loss became NaN or infinite; the parameters and the optimizer state
            are restored to the start of that epoch.
        TrainingInterrupted
            Ctrl-C (a KeyboardInterrupt): the fit stopped after its current step;
            ``history`` holds the epochs so far and ``fit(..., resume=True)``
            continues from that step.
        """
        return fit(self, X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   lr=lr, shuffle=shuffle, seed=seed, validation_data=validation_data,
                   scheduler=scheduler, early_stopping=early_stopping, callbacks=callbacks,
                   progress=progress, sample_weight=sample_weight, resume=resume, dy=dy,
                   dy_weight=dy_weight, clip_grad_norm=clip_grad_norm,
                   label_smoothing=label_smoothing, param_groups=param_groups,
                   drop_last=drop_last)

    def save(self, path: Any, optimizer: Optimizer | None = None) -> None:
        """Write the model to one file at ``path``, atomically and without pickle.

        The file holds the layers, the loss, the dropout seed, the objective, the
        training state of the last fit (so that a loaded model resumes as this one
        would) and, if given, ``optimizer``'s state. ``fastbp.load`` reads it.

        Parameters
        ----------
        path : str, bytes or os.PathLike
            The file to write (replaced if it exists); its directory must exist.
        optimizer : Optimizer or None, default None
            An optimizer over ``parameters()`` whose state the file holds too.

        Raises
        ------
        TypeError
            ``optimizer`` is not a fastbp optimizer; ``path`` is not a path.
        ValueError
            ``optimizer`` is not built over ``model.parameters()``; an empty path.
        FileNotFoundError, IsADirectoryError, PermissionError
            The directory is missing, ``path`` is a directory, or it cannot be written.
        """
        header, arrays = self.to_archive(optimizer)
        _storage.write_archive(path, header, arrays)

    def to_archive(self, optimizer: Optimizer | None = None
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(header, arrays) of the model's file (see ``save``).

        Parameters
        ----------
        optimizer : Optimizer or None, default None
            An optimizer over ``parameters()`` to store too.

        Returns
        -------
        header : dict
            JSON-able: ``"kind": "model"``, the architecture, the optimizer's and the
            training state's specs (or None).
        arrays : dict of str to ndarray
            The parameters (live arrays) and the state arrays, by entry name.

        Raises
        ------
        TypeError
            ``optimizer`` is not a fastbp optimizer.
        ValueError
            ``optimizer`` is not built over ``model.parameters()``.
        """
        if optimizer is not None:
            if not isinstance(optimizer, Optimizer):
                raise TypeError(f"optimizer must be a fastbp optimizer or None, got "
                                f"{type(optimizer).__name__}")
            make_optimizer(optimizer, self.parameters(), None)
        header, arrays = self.model_archive("")
        header["kind"] = "model"
        run = self.training_state
        header["optimizer"] = None
        if optimizer is not None:
            header["optimizer"] = optimizer_spec(optimizer, "optimizer/", arrays,
                                                 self.parameters())
        header["training"] = None
        if run is not None and run.model is self:
            spec, run_arrays = run.to_archive("training/", run.optimizer is optimizer)
            header["training"] = spec
            arrays.update(run_arrays)
        return header, arrays

    def model_archive(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The part of a file that describes the model itself.

        An Ensemble's file holds one per member.

        Parameters
        ----------
        prefix : str
            Prepended to the arrays' names (e.g. ``"members/0/"``).

        Returns
        -------
        header : dict
            The architecture's JSON spec: dtype, loss, layer specs, dropout seed and,
            unless the default, the objective.
        arrays : dict of str to ndarray
            The parameters (the live arrays) under ``prefix + "layers/<i>/<name>"``.
        """
        header: dict[str, Any] = dict(dtype=self.dtype.name, loss=self.loss_name,
                                      layers=[layer.spec() for layer in self.layers],
                                      dropout_seed=self.dropout_seed)
        if not self._objective.is_default:
            header["objective"] = self._objective.as_dict()
        arrays: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            for name, p in _named_arrays(layer):
                arrays[f"{prefix}layers/{i}/{name}"] = p
        return header, arrays

    @classmethod
    def from_archive(cls, header: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str = ""
                     ) -> tuple[Sequential, Optimizer | None]:
        """The model (and the file's optimizer, if any) a model file describes.

        Parameters
        ----------
        header : dict
            A model file's header (``to_archive``'s, or a member spec with the dtype
            and loss added).
        arrays : dict of str to ndarray
            The file's arrays by name; the ones read are removed from it.
        prefix : str, default ""
            The prefix of the model's arrays' names.

        Returns
        -------
        model : Sequential
            A new model of this class, holding copies of the arrays, with its training
            state when the file holds one.
        optimizer : Optimizer or None
            The file's optimizer, else the training state's, else None.

        Raises
        ------
        ValueError, KeyError, TypeError
            Anything malformed (``fastbp.load`` reports each as a ValueError naming the
            file).
        """
        dtype = check.float_dtype(header["dtype"])
        specs = header["layers"]
        if not isinstance(specs, list):
            raise ValueError("layers must be a list")
        layers = []
        for i, spec in enumerate(specs):
            layer = layer_from_spec(spec, dtype)
            for name, p in _named_arrays(layer):
                p[...] = _storage.take(arrays, f"{prefix}layers/{i}/{name}", dtype, p.shape)
            layer.check_buffers()
            layers.append(layer)
        model = cls(layers, header["loss"], dropout_seed=header.get("dropout_seed"))
        if "objective" in header:
            model.objective = Objective(**header["objective"])
        opt = None
        if header.get("optimizer") is not None:
            opt = optimizer_from_spec(header["optimizer"], model.parameters(), "optimizer/",
                                      arrays)
        if header.get("training") is not None:
            shared = opt if header["training"].get("optimizer") is None else None
            model.training_state = TrainingRun.from_archive(model, header["training"], arrays,
                                                            "training/", shared)
            if opt is None:
                opt = model.training_state.optimizer
        return model, opt


class MLP(Sequential):
    """A multi-layer perceptron: ``MLP((784, 128, 10), "relu")`` is
    ``Sequential([Dense(784, 128, "relu"), Dense(128, 10)])``.

    Parameters
    ----------
    sizes : sequence of int
        (in_features, hidden widths..., out_features), at least two entries.
    activation : str, default "relu"
        The hidden layers' activation; the last layer is linear (identity), since
        the losses take raw outputs.
    loss : str, default "mse"
        One of ``fastbp.LOSSES``.
    dtype : {"float32", "float64"}, default "float32"
    seed : None, int or numpy.random.Generator
        Draws the weights, then the dropout seed (the same seed gives the same
        weights and masks).
    init : {"auto", "he", "glorot"}, default "auto"
        See ``fastbp.Dense``.
    num_threads : int or None
        BLAS threads during this model's calls.
    dropout : float, default 0.0
        Dropout on every hidden layer's output, in training only.

    Raises
    ------
    TypeError
        ``sizes`` not a sequence of ints, a non-integer width.
    ValueError
        Fewer than two sizes, a width < 1, dropout without a hidden layer, and
        everything ``Sequential`` refuses.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", loss: str = "mse", *,
                 dtype: Any = "float32", seed: Any = None, init: str = "auto",
                 num_threads: int | None = None, dropout: float = 0.0) -> None:
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
            raise TypeError(f"sizes must be a sequence of layer widths such as (in_features, "
                            f"hidden, out_features), got {type(sizes).__name__} {sizes!r}")
        sizes = [positive_int(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
        if len(sizes) < 2:
            raise ValueError(f"sizes must hold at least (in_features, out_features), got {sizes}")
        check.activation_code(activation)
        check.loss_code(loss)
        dropout = check.dropout_rate(dropout)
        if dropout and len(sizes) == 2:
            raise ValueError(f"dropout={dropout} needs a hidden layer: it applies to hidden "
                             f"layers' outputs, and sizes {sizes} has none")
        if loss == "cross_entropy" and sizes[-1] < 2:
            raise ValueError(f"loss='cross_entropy' needs at least 2 outputs (one logit per "
                             f"class), and sizes ends in {sizes[-1]}; for two classes use "
                             "loss='binary_cross_entropy' with one output")
        if num_threads is not None:
            num_threads = check_threads(num_threads)
        rng = np.random.default_rng(seed)
        n = len(sizes) - 1
        layers = [Dense(sizes[i], sizes[i + 1], activation if i < n - 1 else "identity",
                        init=init, dtype=dtype, seed=rng, dropout=dropout if i < n - 1 else 0.0)
                  for i in range(n)]
        self.activation = activation
        super().__init__(layers, loss,
                         dropout_seed=int(rng.integers(0, check.SEED_LIMIT, dtype=np.uint64)))
        self.num_threads = num_threads

