"""ONNX export of a fitted tabular estimator, its table encoding included.

The graph takes the table as two inputs: ``"X_num"`` [N, n_numeric] float64, the
numeric columns in the table's order (NaN for a missing value; columns dropped in
training are read and ignored), and ``"X_cat"`` [N, n_categorical] string, the
categorical columns in the table's order as text (the category's ``str``, an integer
category as its digits; "" for a missing value). Each input exists only when the
table has such columns. The encoding runs in float64 as ``TableEncoder.transform``
does (np.interp's formula: the knot interval by counting, then slope·(x − knot) +
value), is cast to the network's float32, and the network follows
(``fastbp.export``'s rules). Outputs: a classifier's ``"label"`` [N] (its classes:
int64 or string) and ``"probabilities"`` [N, n_classes]; a regressor's
``"variable"`` [N, 1].
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fastbp.export import (_check_model, _GraphBuilder, _import_onnx, _onnx_finish,
                           _onnx_ints, _onnx_prediction)
from fastbp.tabular._columns import _Categorical, _Numeric

__all__ = ["tabular_to_onnx"]


def _f64(g: _GraphBuilder, stem: str, value: np.ndarray) -> str:
    """A float64 constant (the encoding runs in float64 whatever the network's dtype)."""
    return g.tensor(stem, np.asarray(value, dtype=np.float64))


def _numeric(g: _GraphBuilder, col: str, kind: _Numeric,
             tag: str) -> list[str]:
    """[N, 1] float64 tensors of one numeric column: its curve's value, then (if any)
    its missing indicator."""
    nan = g.op("IsNaN", [col])
    x = g.op("Where", [nan, _f64(g, f"{tag}median", np.array([[kind.median]])), col])
    knots, values = kind.knots, kind.values
    if knots.size == 1:
        value = g.op("Sub", [x, x])   # a column that was constant where present: 0
    else:
        m = knots.size
        slopes = np.diff(values) / np.diff(knots)   # np.interp's, in float64
        count = g.op("ReduceSum", [g.op("Cast", [g.op("GreaterOrEqual", [
            x, _f64(g, f"{tag}knots", knots)])], to=g.onnx.TensorProto.INT64),
            _onnx_ints(g, f"{tag}axis", [1])], keepdims=1)
        j = g.op("Min", [g.op("Max", [g.op("Sub", [count, _onnx_ints(g, f"{tag}one", [1])]),
                                      _onnx_ints(g, f"{tag}zero", [0])]),
                         _onnx_ints(g, f"{tag}last", [m - 2])])
        at = [g.op("Gather", [_f64(g, f"{tag}{name}", arr), j], axis=0)
              for name, arr in (("lo", knots[:-1]), ("slope", slopes), ("fp", values[:-1]))]
        inside = g.op("Add", [g.op("Mul", [at[1], g.op("Sub", [x, at[0]])]), at[2]])
        value = g.op("Where", [
            g.op("LessOrEqual", [x, _f64(g, f"{tag}v0", np.array([knots[0]]))]),
            _f64(g, f"{tag}t0", np.array([values[0]])),
            g.op("Where", [g.op("GreaterOrEqual", [x, _f64(g, f"{tag}vm",
                                                                 np.array([knots[-1]]))]),
                           _f64(g, f"{tag}tm", np.array([values[-1]])), inside])])
    out = [value]
    if kind.indicator:
        out.append(g.op("Cast", [nan], to=g.onnx.TensorProto.DOUBLE))
    return out


def _categorical(g: _GraphBuilder, col: str, kind: _Categorical,
                 tag: str) -> str:
    """[N, width] float64 one-hot of one categorical column (text; "" missing)."""
    keys = list(kind.categories) + ([""] if kind.missing else [])
    codes = g.op("LabelEncoder", [col], domain="ai.onnx.ml", keys_strings=keys,
                 values_int64s=list(range(len(keys))), default_int64=-1)
    hot = g.op("Equal", [codes, _onnx_ints(g, f"{tag}range", list(range(len(keys))))])
    return g.op("Cast", [hot], to=g.onnx.TensorProto.DOUBLE)


def tabular_to_onnx(est: Any, path: Any = None) -> bytes:
    """The fitted estimator (encoding, network, output mapping) as ONNX; see the module
    docstring for the inputs and outputs.

    Parameters
    ----------
    est : fastbp.tabular.TabMClassifier or TabMRegressor
        Fitted.
    path : str, os.PathLike or None
        Where to write the graph too (atomically).

    Returns
    -------
    bytes
        The serialized model (opset 17 and ai.onnx.ml).
    """
    model = _check_model(est.model_)
    enc = est.encoder_
    onnx = _import_onnx()
    g = _GraphBuilder(onnx, model.dtype)
    h, TP = g.h, onnx.TensorProto
    num_cols = [j for j, k in enumerate(enc.kinds_) if not isinstance(k, _Categorical)]
    cat_cols = [j for j, k in enumerate(enc.kinds_) if isinstance(k, _Categorical)]
    pieces: list[str] = []
    for j, kind in enumerate(enc.kinds_):
        if kind is None:
            continue
        tag = f"c{j}_"
        if isinstance(kind, _Numeric):
            col = g.op("Gather", [
                "X_num", _onnx_ints(g, f"{tag}at", [num_cols.index(j)])], axis=1)
            pieces += _numeric(g, col, kind, tag)
        else:
            col = g.op("Gather", [
                "X_cat", _onnx_ints(g, f"{tag}at", [cat_cols.index(j)])], axis=1)
            pieces.append(_categorical(g, col, kind, tag))
    encoded = g.op("Cast", [g.op("Concat", pieces, axis=1)],
                   to=h.np_dtype_to_tensor_dtype(model.dtype))
    inputs = []
    if num_cols:
        inputs.append(h.make_tensor_value_info("X_num", TP.DOUBLE, ["N", len(num_cols)]))
    if cat_cols:
        inputs.append(h.make_tensor_value_info("X_cat", TP.STRING, ["N", len(cat_cols)]))
    if est._loss == "cross_entropy":
        proba = _onnx_prediction(g, model, "softmax", "auto", out="probabilities", x=encoded)
        index = g.op("ArgMax", [proba], axis=1, keepdims=0)
        classes = np.asarray(est.classes_)
        if classes.dtype.kind in "OUS":
            table_name = g.fresh("classes")
            g.initializers.append(h.make_tensor(
                table_name, TP.STRING, [len(classes)],
                [str(c).encode("utf-8") for c in classes.tolist()]))
            label_type = TP.STRING
        else:
            table_name = g.tensor("classes", classes.astype(np.int64))
            label_type = TP.INT64
        g.op("Gather", [table_name, index], "label", axis=0)
        outputs = [h.make_tensor_value_info("label", label_type, ["N"]),
                   h.make_tensor_value_info("probabilities", g.elem_type,
                                            ["N", len(classes)])]
    else:
        raw = _onnx_prediction(g, model, "identity", "auto", x=encoded)
        g.op("Add", [g.op("Mul", [raw, g.scalar(est.y_std_)]), g.scalar(est.y_mean_)],
             "variable")
        outputs = [h.make_tensor_value_info("variable", g.elem_type, ["N", 1])]
    return _onnx_finish(g, inputs, outputs, path, f"fastbp {type(est).__name__}", ml=bool(
        cat_cols))
