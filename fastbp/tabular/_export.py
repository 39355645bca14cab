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
from fastbp.tabular._columns import (SMOOTH_CLIP, _Binary, _Categorical, _Coded, _Numeric,
                                     _Robust)

#: the kinds read from X_cat (text); the others from X_num
_TEXT_KINDS = (_Categorical, _Binary, _Coded)

__all__ = ["tabular_to_onnx"]


def _f64(g: _GraphBuilder, stem: str, value: np.ndarray) -> str:
    """A float64 constant (the encoding runs in float64 whatever the network's dtype)."""
    return g.tensor(stem, np.asarray(value, dtype=np.float64))


def _numeric(g: _GraphBuilder, col: str, kind: _Numeric | _Robust,
             tag: str) -> list[str]:
    """[N, 1] float64 tensors of one numeric column: its curve's value (RealMLP's:
    smooth_clip((x − median)·factor)), then (if any) its missing indicator."""
    nan = g.op("IsNaN", [col])
    x = g.op("Where", [nan, _f64(g, f"{tag}median", np.array([[kind.median]])), col])
    if isinstance(kind, _Robust):
        z = g.op("Mul", [g.op("Sub", [x, _f64(g, f"{tag}m", np.array([[kind.median]]))]),
                         _f64(g, f"{tag}f", np.array([[kind.factor]]))])
        q = g.op("Div", [z, _f64(g, f"{tag}three", np.array([[SMOOTH_CLIP]]))])
        value = g.op("Div", [z, g.op("Sqrt", [g.op("Add", [
            _f64(g, f"{tag}one", np.array([[1.0]])), g.op("Mul", [q, q])])])])
        return [value] + ([g.op("Cast", [nan], to=g.onnx.TensorProto.DOUBLE)]
                          if kind.indicator else [])
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


def _categorical(g: _GraphBuilder, col: str, kind: _Categorical | _Binary | _Coded,
                 tag: str) -> str:
    """[N, width] float64 encoding of one categorical column (text; "" missing): one-hot,
    or (RealMLP) its ±1 value or its code, looked up by the category's index + 2 (0:
    missing, 1: unseen)."""
    if isinstance(kind, _Categorical):
        keys = list(kind.categories) + ([""] if kind.missing else [])
        codes = g.op("LabelEncoder", [col], domain="ai.onnx.ml", keys_strings=keys,
                     values_int64s=list(range(len(keys))), default_int64=-1)
        hot = g.op("Equal", [codes, _onnx_ints(g, f"{tag}range", list(range(len(keys))))])
        return g.op("Cast", [hot], to=g.onnx.TensorProto.DOUBLE)
    cats = list(kind.categories)
    index = g.op("LabelEncoder", [col], domain="ai.onnx.ml", keys_strings=cats + [""],
                 values_int64s=list(range(2, len(cats) + 2)) + [0], default_int64=1)
    if isinstance(kind, _Binary):
        table = [kind.values[-1]] * 2 + list(kind.values[:len(cats)])
    else:
        table = [0.0, 0.0] + [float(c + 1) for c in range(len(cats))]
    return g.op("Gather", [_f64(g, f"{tag}table", np.array(table)), index], axis=0)


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
    num_cols = [j for j, k in enumerate(enc.kinds_) if not isinstance(k, _TEXT_KINDS)]
    cat_cols = [j for j, k in enumerate(enc.kinds_) if isinstance(k, _TEXT_KINDS)]
    pieces: list[tuple[int, str]] = []   # (encoded column, [N, width] tensor)
    places = iter(enc.layout())
    for j, kind in enumerate(enc.kinds_):
        if kind is None:
            continue
        at, ind = next(places)
        tag = f"c{j}_"
        if isinstance(kind, (_Numeric, _Robust)):
            col = g.op("Gather", [
                "X_num", _onnx_ints(g, f"{tag}at", [num_cols.index(j)])], axis=1)
            parts = _numeric(g, col, kind, tag)
            pieces += list(zip([at, ind], parts))
        elif not isinstance(kind, _Categorical) or kind.categories or kind.missing:
            col = g.op("Gather", [
                "X_cat", _onnx_ints(g, f"{tag}at", [cat_cols.index(j)])], axis=1)
            pieces.append((at, _categorical(g, col, kind, tag)))
    encoded = g.op("Cast", [g.op("Concat", [t for _, t in sorted(pieces)], axis=1)],
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
        if classes.dtype.kind == "b":   # bool labels stay bool (predict's)
            table_name = g.tensor("classes", classes.astype(bool))
            label_type = TP.BOOL
        elif classes.dtype.kind in "OUS":
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
        # on y's scale in float64 (as predict), clipped to y_range_ where the family
        # clips, then rounded once to the network's dtype
        value = g.op("Add", [g.op("Mul", [g.op("Cast", [raw], to=TP.DOUBLE),
                                          _f64(g, "y_std", np.array(est.y_std_))]),
                             _f64(g, "y_mean", np.array(est.y_mean_))])
        if est.y_range_ is not None:
            value = g.op("Clip", [value, _f64(g, "y_min", np.array(est.y_range_[0])),
                                  _f64(g, "y_max", np.array(est.y_range_[1]))])
        g.op("Cast", [value], "variable", to=g.elem_type)
        outputs = [h.make_tensor_value_info("variable", g.elem_type, ["N", 1])]
    return _onnx_finish(g, inputs, outputs, path, f"fastbp {type(est).__name__}", ml=bool(
        cat_cols))


# ---------------------------------------------------------------- C

def _c_string(text: str) -> str:
    """A C string literal of ``text``'s UTF-8 bytes, every byte an octal escape (no
    character of the text reaches the source as itself)."""
    return '"' + "".join(f"\\{b:03o}" for b in text.encode("utf-8")) + '"'


def tabular_to_c(est: Any, directory: Any, name: str) -> tuple[str, str]:
    """``<name>.h`` and ``<name>.c`` for a fitted tabular estimator (``fastbp.export.to_c``
    checked ``name``): ``void <name>_predict(const double *x_num, const char *const *x_cat,
    size_t n_rows, T *out)``, x_num n_rows × n_numeric (NaN missing), x_cat n_rows ×
    n_categorical NUL-terminated texts (NULL or "" missing), out n_rows × n_classes
    probabilities or n_rows values; what ``predict_proba`` / ``predict`` compute.

    Parameters
    ----------
    est : fastbp.tabular.TabMClassifier or TabMRegressor
        Fitted.
    directory : str or os.PathLike
        An existing directory.
    name : str
        The checked C identifier.

    Returns
    -------
    (header_path, source_path)
    """
    import os

    from fastbp.export import _c_array, _c_member, _c_sigmoid, _CType, _write_c
    from fastbp.layers import engine_layers
    from sklearn.utils.validation import check_is_fitted   # type: ignore[import-untyped, unused-ignore]

    check_is_fitted(est)
    model = _check_model(est.model_)
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"directory must be an existing directory, got {directory!r}")
    enc = est.encoder_
    t, d = _CType(model.dtype), _CType(np.dtype(np.float64))
    T = t.name
    num_cols = [j for j, k in enumerate(enc.kinds_) if not isinstance(k, _TEXT_KINDS)]
    cat_cols = [j for j, k in enumerate(enc.kinds_) if isinstance(k, _TEXT_KINDS)]
    classify = est._loss == "cross_entropy"
    n_out = len(est.classes_) if classify else 1
    up = name.upper()
    signature = (f"void {name}_predict(const double *x_num, const char *const *x_cat, "
                 f"size_t n_rows, {T} *out)")
    header = (f"/* Generated by fastbp.export.to_c: a fitted {type(est).__name__} with its "
              f"table encoding, in {T}. C99, no allocation. */\n"
              f"#ifndef FASTBP_GENERATED_{up}_H\n#define FASTBP_GENERATED_{up}_H\n\n"
              f"#include <stddef.h>\n\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n"
              f"#define {up}_N_NUMERIC {len(num_cols)}\n"
              f"#define {up}_N_CATEGORICAL {len(cat_cols)}\n"
              f"#define {up}_N_OUTPUTS {n_out}\n\n"
              f"/* x_num: n_rows x {len(num_cols)} (NaN: missing); x_cat: n_rows x "
              f"{len(cat_cols)} texts (NULL or \"\": missing); out: n_rows x {n_out} "
              f"{'probabilities' if classify else 'values'}. */\n{signature};\n\n"
              f"#ifdef __cplusplus\n}}\n#endif\n\n#endif\n")
    parts = [f"/* Generated by fastbp.export.to_c; numbers as exact hexadecimal literals, "
             f"texts as octal escapes. */\n#include <math.h>\n"
             f"{'#include <string.h>' if cat_cols else ''}\n\n#include \"{name}.h\"\n\n"]
    enc_lines: list[str] = []
    curves = False
    places = iter(enc.layout())
    for j, kind in enumerate(enc.kinds_):
        if kind is None:
            continue
        at, ind = next(places)
        if isinstance(kind, (_Numeric, _Robust)):
            p = num_cols.index(j)
            enc_lines.append(f"{{ double v = xn[{p}]; const int miss = v != v;")
            enc_lines.append(f"  if (miss) v = {d.lit(kind.median)};")
            if isinstance(kind, _Robust):   # smooth_clip((v − median)·factor), as NumPy
                enc_lines.append(f"  {{ const double z = (v - {d.lit(kind.median)}) * "
                                 f"{d.lit(kind.factor)}, q = z / {d.lit(SMOOTH_CLIP)};")
                enc_lines.append(f"    enc[{at}] = ({T})(z / sqrt({d.lit(1.0)} + q * q)); }}")
            elif kind.knots.size > 1:
                curves = True
                k = f"{name}_knots{j}"
                slopes = np.diff(kind.values) / np.diff(kind.knots)
                parts += [_c_array(d, k, kind.knots), _c_array(d, f"{name}_fp{j}", kind.values),
                          _c_array(d, f"{name}_slope{j}", slopes)]
                enc_lines.append(f"  enc[{at}] = ({T}){name}_curve(v, {k}, {name}_fp{j}, "
                                 f"{name}_slope{j}, {kind.knots.size});")
            else:
                enc_lines.append(f"  enc[{at}] = {t.lit(0.0)}; (void)v;")
            if kind.indicator:
                enc_lines.append(f"  enc[{ind}] = miss ? {t.lit(1.0)} : {t.lit(0.0)};")
            else:
                enc_lines.append("  (void)miss;")
            enc_lines.append("}")
        elif isinstance(kind, (_Binary, _Coded)):
            q = cat_cols.index(j)
            cats = f"{name}_cats{j}"
            n_c = len(kind.categories)
            parts.append(f"static const char *const {cats}[{n_c}] = {{\n    "
                         + ",\n    ".join(_c_string(c) for c in kind.categories) + "\n};\n")
            enc_lines.append(f"{{ const int c = {name}_code(xc[{q}], {cats}, {n_c});")
            if isinstance(kind, _Binary):
                values = f"{name}_bin{j}"
                parts.append(_c_array(t, values, np.asarray(kind.values[:n_c])))
                enc_lines.append(f"  enc[{at}] = c >= 0 ? {values}[c] : "
                                 f"{t.lit(kind.values[-1])}; }}")
            else:   # the code: 0 missing or unseen, 1..n_c
                enc_lines.append(f"  enc[{at}] = c >= 0 ? ({T})(c + 1) : {t.lit(0.0)}; }}")
        elif kind.categories or kind.missing:
            q = cat_cols.index(j)
            cats = f"{name}_cats{j}"
            n_c = len(kind.categories)
            width = n_c + kind.missing
            parts.append(f"static const char *const {cats}[{max(n_c, 1)}] = {{\n    "
                         + ",\n    ".join([_c_string(c) for c in kind.categories] or ['""'])
                         + "\n};\n")
            enc_lines += [f"{{ const int c = {name}_code(xc[{q}], {cats}, {n_c});",
                          f"  for (i = 0; i < {width}; i++) enc[{at} + i] = {t.lit(0.0)};",
                          f"  if (c >= 0) enc[{at} + c] = {t.lit(1.0)};"]
            if kind.missing:
                enc_lines.append(f"  else if (c == -2) enc[{at + n_c}] = {t.lit(1.0)};")
            enc_lines.append("}")
    if curves:
        parts.append(f"\n/* np.interp's value at x of the curve (knots, fp); slope: its "
                     f"slopes */\nstatic double {name}_curve(double x, const double *knots, "
                     f"const double *fp, const double *slope, int m) {{\n"
                     f"    int j = 0;\n"
                     f"    if (x <= knots[0]) return fp[0];\n"
                     f"    if (x >= knots[m - 1]) return fp[m - 1];\n"
                     f"    while (j + 1 < m - 1 && knots[j + 1] <= x) j++;\n"
                     f"    return slope[j] * (x - knots[j]) + fp[j];\n}}\n")
    if cat_cols:
        parts.append(f"\n/* the index of text s in table (n entries); -2: missing; -1: "
                     f"unseen */\nstatic int {name}_code(const char *s, const char *const "
                     f"*table, int n) {{\n    int i;\n    if (s == NULL || s[0] == 0) return -2;\n"
                     f"    for (i = 0; i < n; i++) if (strcmp(s, table[i]) == 0) return i;\n"
                     f"    return -1;\n}}\n")
    arrays, net = _c_member(t, name, model, "", "softmax" if classify else "identity",
                            f"out + r * {n_out}")
    parts += arrays
    acts = {check_act for check_act in (la.activation for la in engine_layers(model.layers))}
    if acts & {"sigmoid", "silu"}:
        parts.append(_c_sigmoid(t, name))
    widest = max(layer.out_features for layer in model.layers)
    body = [f"{signature} {{",
            f"    {T} enc[{max(enc.n_outputs, 1)}], buf0[{widest}], buf1[{widest}];",
            "    size_t r, i, j;",
            "    (void)x_num; (void)x_cat; (void)i;",
            "    for (r = 0; r < n_rows; r++) {",
            f"        const {T} *in = enc;",
            f"        {T} *o;"]
    if num_cols:
        body.append(f"        const double *xn = x_num + r * {len(num_cols)};")
    if cat_cols:
        body.append(f"        const char *const *xc = x_cat + r * {len(cat_cols)};")
    body += ["        " + line for line in enc_lines + net]
    if not classify:
        body.append(f"        {{ double v = (double)out[r] * {d.lit(est.y_std_)} + "
                    f"{d.lit(est.y_mean_)};")
        if est.y_range_ is not None:
            lo, hi = (d.lit(v) for v in est.y_range_)
            body.append(f"          v = v < {lo} ? {lo} : v > {hi} ? {hi} : v;")
        body.append(f"          out[r] = ({T})v; }}")
    body += ["    }", "}", ""]
    return _write_c(directory, name, header, "".join(parts) + "\n" + "\n".join(body))
