"""A fuzzer of fastbp's public entry points that reach compiled code.

Each case is one call, drawn from a seed: a model, optimizer or file made from random
(often hostile) parts, then one public call with random arguments: arrays of any
dtype, shape, memory order and content (NaN, inf, huge, empty), wrong types, labels
and row orders out of range, bad batch sizes, flipped bytes in saved files, hostile
export names. A case passes when the call returns or raises ValueError, TypeError,
NotImplementedError or fastbp.TrainingDiverged; anything else (another exception type,
a crash, a hang) is a finding.

    python tests/fuzz_public.py FIRST COUNT     # run cases FIRST..FIRST+COUNT-1

prints "case N" before each case (so a crash names its case) and "ok" at the end;
tests/test_fuzz_public.py runs chunks of cases in subprocesses, under the
AddressSanitizer in CI's stage 4.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings

import numpy as np

import fastbp
from fastbp import export, ops

ACCEPTED = (ValueError, TypeError, NotImplementedError, fastbp.TrainingDiverged)
LOSSES = fastbp.LOSSES
ACTS = fastbp.ACTIVATIONS


def _pick(rng: np.random.Generator, options: list) -> object:
    """One of ``options`` (as they are: Generator.choice would make an array of them)."""
    return options[int(rng.integers(0, len(options)))]


def _array(rng: np.random.Generator, shape: tuple[int, ...] | None = None) -> object:
    """An array-like of a random kind: usually float, sometimes hostile."""
    if shape is None:
        shape = tuple(int(rng.integers(0, 6)) for _ in range(int(rng.integers(0, 4))))
    kind = rng.integers(0, 20)
    if kind == 0:
        return _pick(rng, [None, "abc", 3, 2.5, [1, 2], object()])
    dtype = _pick(rng, [np.float32, np.float64, np.float64, np.float32, np.int32, np.int64,
                        np.uint8, np.bool_, np.float16, np.complex64, object])
    values = np.asarray(rng.standard_normal(shape) * 10.0 ** int(rng.integers(-3, 5)))
    if kind == 1:
        values.flat[:: max(1, values.size // 3 or 1)] = _pick(rng, [np.nan, np.inf, -np.inf,
                                                                     1e308, -1e308])
    arr = values.astype(dtype) if dtype is not object else values.astype(object)
    if kind == 2 and arr.ndim >= 2:
        arr = np.asfortranarray(arr)
    if kind == 3 and arr.ndim >= 1 and arr.shape[0] > 1:
        arr = arr[::2]
    if kind == 4:
        arr = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.kind in "fiu" else arr
    if kind == 5 and arr.dtype.kind in "fiu":
        arr.setflags(write=False)
    return arr


def _model(rng: np.random.Generator) -> fastbp.Sequential:
    n_in = int(rng.integers(1, 6))
    widths = [int(rng.integers(1, 7)) for _ in range(int(rng.integers(0, 3)))]
    loss = str(_pick(rng, list(LOSSES)))
    out = int(rng.integers(2, 5)) if loss == "cross_entropy" else int(rng.integers(1, 4))
    act = str(_pick(rng, list(ACTS)))
    dropout = float(_pick(rng, [0.0, 0.0, 0.3])) if widths else 0.0
    dtype = _pick(rng, ["float32", "float64"])
    seed = int(rng.integers(0, 100))
    if rng.random() < 0.3:
        return _layered_model(rng, n_in, out, loss, act, dtype, seed)
    return fastbp.MLP((n_in, *widths, out), act, loss, dtype=dtype, seed=seed, dropout=dropout)


def _layered_model(rng: np.random.Generator, n_in: int, out: int, loss: str, act: str,
                   dtype: str, seed: int) -> fastbp.Sequential:
    """A model of the layer kinds beyond Dense: a periodic embedding, a piecewise-linear
    encoding or a Dense layer (with or without bias) first, a normalisation, a residual
    block, a Dense output."""
    u = rng.random()
    if u < 0.1:   # coded columns (the data gets valid codes, or hostile ones)
        cols = sorted(rng.choice(n_in, int(rng.integers(1, n_in + 1)), replace=False).tolist())
        first: fastbp.Layer = fastbp.CategoricalEmbedding(
            n_in, cols, [int(rng.integers(1, 6)) for _ in cols], int(rng.integers(1, 4)),
            dtype=dtype, seed=seed)
    elif u < 0.2:   # random bins: 1 to 4 per feature, over [-2, 2]
        bins = [np.sort(rng.choice(np.linspace(-2, 2, 41), int(rng.integers(2, 6)),
                                   replace=False)) for _ in range(n_in)]
        first = fastbp.PiecewiseLinearEncoding(bins, dtype=dtype)
    elif u < 0.4:
        first = fastbp.PeriodicEmbedding(
            n_in, int(rng.integers(1, 4)), n_frequencies=int(rng.integers(1, 5)),
            frequency_init_scale=float(_pick(rng, [0.01, 1.0, 100.0])), dtype=dtype, seed=seed)
    else:
        first = fastbp.Dense(n_in, int(rng.integers(1, 6)), act if act != "softmax" else "tanh",
                             dtype=dtype, seed=seed, bias=bool(rng.random() < 0.5))
    w = first.out_features
    layers = [first]
    if rng.random() < 0.5:
        layers.append(fastbp.LayerNorm(w, dtype=dtype) if rng.random() < 0.5
                      else fastbp.BatchNorm(w, dtype=dtype))
    if rng.random() < 0.5:
        layers.append(fastbp.Residual([fastbp.Dense(w, w, "relu", dtype=dtype, seed=seed + 1),
                                       fastbp.Dropout(float(_pick(rng, [0.0, 0.3])))]))
    layers.append(fastbp.Dense(w, out, dtype=dtype, seed=seed + 2))
    return fastbp.Sequential(layers, loss)


def _data(rng: np.random.Generator, model: fastbp.Sequential, hostile: bool
          ) -> tuple[object, object]:
    n = int(rng.integers(0 if hostile else 1, 40))
    if hostile and rng.random() < 0.5:
        return _array(rng), _array(rng)
    X = rng.standard_normal((n, model.in_features)).astype(model.dtype)
    emb = model.layers[0]
    if isinstance(emb, fastbp.CategoricalEmbedding):
        for c, card in zip(emb.columns, emb.cardinalities):
            X[:, c] = rng.integers(-1 if hostile else 0, card + (1 if hostile else 0), n)
    k = model.out_features
    if model.loss_name == "cross_entropy":
        y: object = rng.integers(-1 if hostile else 0, k + (1 if hostile else 0), n)
        if rng.random() < 0.3:
            y = rng.dirichlet(np.ones(k), n).astype(model.dtype)
    elif model.loss_name == "binary_cross_entropy":
        y = rng.random((n, k)).astype(model.dtype)
    elif model.loss_name == "poisson":
        y = rng.poisson(2.0, (n, k)).astype(model.dtype) - (1 if hostile else 0)
    else:
        y = rng.standard_normal((n, k)).astype(model.dtype)
    if hostile and rng.random() < 0.3:
        X = X * 1e30
    if rng.random() < 0.2:   # sparse X (the compiled sparse first layer), mostly zeros
        import scipy.sparse
        X = np.where(rng.random(X.shape) < 0.7, 0.0, X).astype(X.dtype)
        if hostile and X.size:
            X.flat[int(rng.integers(0, X.size))] = _pick(rng, [np.nan, np.inf, 1e300])
        X = _pick(rng, [scipy.sparse.csr_matrix, scipy.sparse.csc_array,
                        scipy.sparse.coo_matrix])(X)
    return X, y


def case(seed: int) -> None:
    """Run fuzz case ``seed``; raises what the call raised if it is not accepted."""
    rng = np.random.default_rng(seed)
    hostile = rng.random() < 0.35
    what = int(rng.integers(0, 15))
    try:
        model = _model(rng)
    except ACCEPTED:
        return
    X, y = _data(rng, model, hostile)
    opt = fastbp.Adam(model.parameters(), lr=float(_pick(rng, [1e-3, 10.0, 1e6])))
    try:
        if what == 0:
            model.fit(X, y, epochs=int(rng.integers(1, 3)),
                      batch_size=_pick(rng, [None, 1, 3, 64, 16, 7] + ([0, -1, 2.5] if hostile else [])),
                      seed=int(rng.integers(0, 9)), progress=False,
                      sample_weight=_pick(rng, [None, None, _array(rng)]) if hostile else None,
                      validation_data=_pick(rng, [None, (X, y), (X, y)] + ([_array(rng)] if hostile else [])),
                      early_stopping=_pick(rng, [None, 1, 2] + ([0] if hostile else [])))
            if rng.random() < 0.5:
                model.fit(X, y, epochs=1, resume=True, progress=False)
        elif what == 1:
            model.train_step(X, y, opt)
            model.train_step(X, y, opt, sample_weight=_array(rng))
        elif what == 2:
            shape = getattr(X, "shape", ())
            n = int(shape[0]) if len(shape) else 0
            order = _pick(rng, [rng.permutation(max(n, 1)), rng.permutation(max(n, 1))]
                          + ([rng.integers(-3, n + 3, n + 1), _array(rng)] if hostile else []))
            model.train_epoch(X, y, order, _pick(rng, [1, 4, 9] + ([0, -2, None] if hostile else [])),
                              opt)
        elif what == 3:
            model.backward(X, y, step=_pick(rng, [None, 1, 5] + ([0, 2**70] if hostile else [])))
            model.gradients()
        elif what == 4:
            for call in (model.forward, model.predict, model.predict_proba):
                try:
                    call(X, check_finite=bool(rng.random() < 0.7))
                except ACCEPTED:
                    pass
            model.evaluate(X, y)
        elif what == 5:
            ens = fastbp.Ensemble([model, _model(rng)]) if rng.random() < 0.5 else \
                fastbp.Ensemble.of(int(rng.integers(1, 4)), model.sizes, loss=model.loss_name,
                                   dtype=model.dtype)
            ens.fit(X, y, epochs=1, num_threads=int(rng.integers(1, 3)), progress=False,
                    lr=_pick(rng, [None, 0.1, [0.1, 0.2], -1.0]), seed=_pick(rng, [None, 3, -1]))
            ens.predict(X)
        elif what == 6:
            name = str(_pick(rng, list(ops.__all__)))
            fn = getattr(ops, name, None)
            if callable(fn):
                args = [_array(rng) for _ in range(int(rng.integers(1, 6)))]
                if name.startswith(("activation", "dense", "loss")):
                    args = [str(_pick(rng, list(ACTS + LOSSES)))] + args
                fn(*args)
        elif what == 7:
            _fuzz_file(rng, model)
        elif what == 8:
            with tempfile.TemporaryDirectory() as folder:
                name = str(_pick(rng, ["m", "_m", "m" * 70, "int", "a b", "m\0", "é", "M1"]))
                export.to_c(model, folder, name=name)
        elif what == 9:
            try:
                import onnx  # noqa: F401
            except ImportError:
                return
            export.to_onnx(model, output=str(_pick(rng, ["auto", "raw", "x"])))
        elif what == 10:
            fastbp.gradcheck(model, X, y, eps=float(_pick(rng, [1e-6, 1e-4] + ([0.0, 1e300] if hostile
                                                                           else []))))
        elif what == 11:
            opt.step([_array(rng, p.shape) for p in model.parameters()])
            opt.load_state_dict({"type": "adam", "step": rng.integers(-1, 3),
                                 "hyperparameters": {"lr": 0.1}, "state": []})
        elif what == 12:   # assign into a parameter (a Dense W, or any layer's first)
            layer = model.layers[int(rng.integers(0, len(model.layers)))]
            params = layer.parameters()
            if params:
                name = layer.parameter_names()[0]
                if "/" not in name:   # (a Residual's are its layers')
                    setattr(layer, name, _array(rng, params[0].shape if rng.random() < 0.5
                                                else None))
            model.predict(np.zeros((2, model.in_features)))
        elif what == 13:
            model.objective = fastbp.Objective(l2=float(_pick(rng, [0.0, 1e-3, -1.0])))
            model.fit(X, y, epochs=1, progress=False)
        else:
            _fuzz_estimator(rng, X, y, hostile)
    except ACCEPTED:
        pass


def _fuzz_estimator(rng: np.random.Generator, X: object, y: object, hostile: bool) -> None:
    """A fastbp.sklearn estimator's fit, partial_fit and predictions (sklearn optional)."""
    try:
        from fastbp.sklearn import MLPClassifier, MLPRegressor
    except ImportError:
        return
    cls = _pick(rng, [MLPClassifier, MLPRegressor])
    est = cls(hidden_layer_sizes=(int(rng.integers(1, 5)),), max_iter=2,
              solver=_pick(rng, ["adam", "sgd", "lbfgs"]), random_state=0,
              batch_size=_pick(rng, ["auto", 3] + ([0] if hostile else [])),
              early_stopping=bool(rng.random() < 0.3))
    # one label column where y has any (an empty or odd y goes to fit as it is)
    shape = getattr(y, "shape", ())
    labels = np.asarray(y)[:, 0] if len(shape) == 2 and shape[1] > 0 else y
    try:
        est.fit(X, labels)
    except (ValueError, TypeError):
        return
    est.predict(X)
    if hasattr(est, "predict_proba"):
        est.predict_proba(X)
    if est.solver != "lbfgs":
        est.partial_fit(X, labels)


def _fuzz_file(rng: np.random.Generator, model: fastbp.Sequential) -> None:
    """Save, corrupt (a flipped byte, a truncation or random bytes), load."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.fastbp")
        model.save(path)
        data = bytearray(open(path, "rb").read())
        how = rng.integers(0, 3)
        if how == 0:
            i = int(rng.integers(0, len(data)))
            data[i] ^= 1 << int(rng.integers(0, 8))
        elif how == 1:
            data = data[:int(rng.integers(0, len(data)))]
        else:
            data = bytearray(rng.bytes(int(rng.integers(0, 4000))))
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            loaded = fastbp.load(path)
        except (FileNotFoundError, IsADirectoryError):
            return
        if isinstance(loaded, fastbp.Sequential):
            loaded.predict(np.zeros((1, loaded.in_features), dtype=loaded.dtype))


def main(argv: list[str]) -> int:
    first, count = int(argv[1]), int(argv[2])
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    fastbp.set_num_threads(1)
    sink = io.StringIO()
    for seed in range(first, first + count):
        print(f"case {seed}", flush=True)
        old, sys.stderr = sys.stderr, sink   # progress bars and the like
        try:
            case(seed)
        finally:
            sys.stderr = old
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
