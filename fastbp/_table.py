"""The one table of names, codes and constants.

Every name the kernels know by a number (activations, losses, optimizer kinds,
layer kinds), and every constant a formula shares between the compiled kernels,
the reference and the exporters, is defined here and nowhere else. A name's
code is its index in its tuple. ``setup.py`` writes ``fastbp/_kernels/_table.pxi``
and ``_table.h`` from this file at build time, so Cython and C read the same
codes and values; Python reads this module. This file imports nothing of
fastbp (setup.py runs it on its own).
"""
from __future__ import annotations

#: activation functions, element-wise (softmax: over the last axis)
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
               "softplus", "gelu", "silu", "softmax", "selu", "mish")
#: losses, each taking the raw output of the last layer
LOSSES = ("mse", "mae", "huber", "binary_cross_entropy", "cross_entropy", "poisson")
#: the optimizer kinds with compiled updates (fastbp._optim_config's records)
OPTIMIZER_KINDS = ("sgd", "adagrad", "rmsprop", "adam")
#: layer kinds the compiled engine runs (fastbp.layers)
LAYER_KINDS = ("dense", "activation", "dropout", "layer_norm", "residual", "batch_norm",
               "periodic_embedding", "piecewise_linear_encoding",
               "categorical_embedding", "batch_ensemble", "linear_ensemble",
               "scale", "parametric_activation", "periodic_bias_embedding")

#: the classification losses and their link: the activation that turns the raw
#: output (logits) into class probabilities (predict_proba, the exports' "auto"
#: output). The loss applies it itself, so a model's last layer must not
#: (Sequential refuses it). The other losses predict the raw output.
PROBABILITY_LINK = {"binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}
CLASSIFICATION_LOSSES = tuple(PROBABILITY_LINK)

#: leaky_relu's slope for z < 0 (PyTorch's default negative_slope)
LEAKY_SLOPE = 0.01
#: elu's alpha (PyTorch's default)
ELU_ALPHA = 1.0
#: softplus returns z itself above this (PyTorch's default threshold, beta 1)
SOFTPLUS_THRESHOLD = 20.0
#: huber's delta (PyTorch's default)
HUBER_DELTA = 1.0
#: selu's alpha and scale (Klambauer et al.; torch.selu's constants)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def code(names: tuple[str, ...], name: str) -> int:
    """The code of ``name`` in one of the tables above (its index)."""
    return names.index(name)


def _c_name(prefix: str, name: str) -> str:
    return f"{prefix}_{name.upper()}"


#: (C prefix, table) of every code table written for C and Cython
CODE_TABLES = (("ACT", ACTIVATIONS), ("LOSS", LOSSES), ("OPT", OPTIMIZER_KINDS),
               ("LAYER", LAYER_KINDS))
#: the shared constants written for C and Cython
CONSTANTS = ("LEAKY_SLOPE", "ELU_ALPHA", "SOFTPLUS_THRESHOLD", "HUBER_DELTA", "SELU_ALPHA",
             "SELU_SCALE")


def c_header() -> str:
    """``_kernels/_table.h``: the codes as enums and the constants as macros (FB_ prefix)."""
    lines = ["/* Written by setup.py from fastbp/_table.py: edit that file, not this one. */",
             "#ifndef FASTBP_TABLE_H", "#define FASTBP_TABLE_H"]
    for prefix, names in CODE_TABLES:
        items = ", ".join(f"FB_{_c_name(prefix, n)} = {i}" for i, n in enumerate(names))
        lines.append(f"enum {{ {items} }};")
    for const in CONSTANTS:
        lines.append(f"#define FB_{const} {float(globals()[const])!r}")
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def cython_include() -> str:
    """``_kernels/_table.pxi``: the same codes and constants under their Cython names
    (ACT_RELU, LOSS_CE..., LEAKY_SLOPE), read from _table.h."""
    short = {"binary_cross_entropy": "bce", "cross_entropy": "ce"}
    lines = ["# Written by setup.py from fastbp/_table.py: edit that file, not this one.",
             'cdef extern from "_table.h" nogil:']
    for prefix, names in CODE_TABLES:
        lines.append("    enum:")
        for n in names:
            cy = _c_name(prefix, short.get(n, n)) if prefix == "LOSS" else _c_name(prefix, n)
            lines.append(f'        {cy} "FB_{_c_name(prefix, n)}"')
    for const in CONSTANTS:
        lines.append(f'    const double {const} "FB_{const}"')
    return "\n".join(lines) + "\n"
