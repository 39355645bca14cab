"""The build and packaging contract: compiled kernels really are extension modules,
fastbp.ops calls them, fastbp.reference is pure Python and mirrors ops' signatures,
py.typed ships, and ACTIVATIONS/LOSSES are exported with the public API's names, in order."""
from __future__ import annotations

import ast
import importlib
import importlib.machinery
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import fastbp
import fastbp._kernels
from fastbp import ops, reference

from conftest import ACTIVATIONS as API_ACTIVATIONS  # the public API's list, in order
from conftest import tol

API_LOSSES = ("mse", "mae", "huber", "binary_cross_entropy", "cross_entropy", "poisson")

REQUIRED_KERNELS = ("_blas", "activations", "dense", "losses", "optim")


def kernel_module_names():
    return sorted(m.name for m in pkgutil.iter_modules(fastbp._kernels.__path__))


def test_required_kernel_modules_present():
    names = kernel_module_names()
    for required in REQUIRED_KERNELS:
        assert required in names, names


@pytest.mark.parametrize("name", sorted(set(REQUIRED_KERNELS) | set(kernel_module_names())))
def test_kernel_module_is_compiled_extension(name):
    module = importlib.import_module(f"fastbp._kernels.{name}")
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert module.__file__ is not None
    assert module.__file__.endswith(suffixes), module.__file__
    assert isinstance(module.__spec__.loader, importlib.machinery.ExtensionFileLoader)


@pytest.mark.parametrize("module, func", [
    ("dense", "dense_forward_into"), ("dense", "dense_backward_into"),
    ("activations", "activation_forward_into"), ("activations", "activation_backward_into"),
    ("losses", "loss_forward_backward_into"), ("losses", "cross_entropy_labels_into"),
    ("optim", "sgd_step_into"), ("optim", "adagrad_step_into"),
    ("optim", "rmsprop_step_into"), ("optim", "adam_step_into"),
])
def test_kernel_entry_points_are_not_python_functions(module, func):
    obj = getattr(importlib.import_module(f"fastbp._kernels.{module}"), func)
    assert callable(obj)
    assert not inspect.isfunction(obj)


def spy_on(monkeypatch, module_name, func_name):
    module = importlib.import_module(f"fastbp._kernels.{module_name}")
    original = getattr(module, func_name)
    calls = []

    def spy(*args, **kwargs):
        calls.append(func_name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, func_name, spy)
    return calls


def test_ops_call_compiled_kernels(monkeypatch):
    """Every public ops function reaches the compiled module (and the answer is right)."""
    rng = np.random.default_rng(0)
    X, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)

    calls = spy_on(monkeypatch, "dense", "dense_forward_into")
    Z, A = ops.dense_forward(X, W, b, "tanh")
    assert calls == ["dense_forward_into"]
    np.testing.assert_allclose(A, np.tanh(X @ W + b), rtol=tol(np.float64))

    calls = spy_on(monkeypatch, "dense", "dense_backward_into")
    ops.dense_backward(X, W, Z, A, np.ones_like(A), "tanh")
    assert calls == ["dense_backward_into"]

    calls = spy_on(monkeypatch, "activations", "activation_forward_into")
    ops.activation_forward("relu", Z)
    assert calls == ["activation_forward_into"]

    calls = spy_on(monkeypatch, "activations", "activation_backward_into")
    ops.activation_backward("relu", Z, A, A)
    assert calls == ["activation_backward_into"]

    calls = spy_on(monkeypatch, "losses", "loss_forward_backward_into")
    ops.loss_forward_backward("mse", A, np.zeros_like(A))
    assert calls == ["loss_forward_backward_into"]

    calls = spy_on(monkeypatch, "losses", "cross_entropy_labels_into")
    ops.loss_forward_backward("cross_entropy", A, np.array([0, 1, 1, 0]))
    assert calls == ["cross_entropy_labels_into"]

    p, g = np.zeros(3), np.ones(3)
    for func, call in [("sgd_step_into", lambda: ops.sgd_step(p, g, None, lr=0.1)),
                       ("adagrad_step_into", lambda: ops.adagrad_step(p, g, np.zeros(3), lr=0.1)),
                       ("rmsprop_step_into",
                        lambda: ops.rmsprop_step(p, g, np.zeros(3), None, None, lr=0.1)),
                       ("adam_step_into",
                        lambda: ops.adam_step(p, g, np.zeros(3), np.zeros(3), None, step=1, lr=0.1))]:
        calls = spy_on(monkeypatch, "optim", func)
        call()
        assert calls == [func]


def test_py_typed_ships():
    assert (Path(fastbp.__file__).parent / "py.typed").is_file()


def public_callables():
    return [name for name in ops.__all__ if callable(getattr(ops, name))]


def test_ops_and_reference_export_the_same_names():
    assert set(ops.__all__) == set(reference.__all__)
    expected = {"activation_forward", "activation_backward", "dense_forward", "dense_backward",
                "loss_forward_backward", "sgd_step", "adagrad_step", "rmsprop_step", "adam_step"}
    assert expected <= set(public_callables())


@pytest.mark.parametrize("name", public_callables())
def test_signature_parity(name):
    assert inspect.signature(getattr(ops, name)) == inspect.signature(getattr(reference, name))


@pytest.mark.parametrize("name, params", [
    ("activation_forward", "name, Z"),
    ("activation_backward", "name, Z, A, dA"),
    ("dense_forward", "X, W, b, activation"),
    ("dense_backward", "X, W, Z, A, dA, activation, need_dX=True"),
    ("loss_forward_backward", "name, output, target, sample_weight=None"),
    ("sgd_step", "p, g, buf, *, lr, momentum=0.0, dampening=0.0, nesterov=False, "
                 "weight_decay=0.0, first_step=False"),
    ("adagrad_step", "p, g, sum_sq, *, lr, eps=1e-10, weight_decay=0.0"),
    ("rmsprop_step", "p, g, sq_avg, buf, grad_avg, *, lr, alpha=0.99, eps=1e-08, momentum=0.0, "
                     "centered=False, weight_decay=0.0"),
    ("adam_step", "p, g, m, v, vmax, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-08, "
                  "weight_decay=0.0, decoupled=False, amsgrad=False, eps_mode='paper'"),
])
def test_signatures_as_api_md(name, params):
    for mod in (ops, reference):
        sig = inspect.signature(getattr(mod, name))
        # the public API fixes names, order and defaults; the annotations are compared by
        # test_signature_parity (ops and reference must spell them identically).
        bare = sig.replace(
            parameters=[p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()],
            return_annotation=inspect.Signature.empty)
        assert str(bare) == f"({params})", mod.__name__


def test_reference_imports_no_compiled_code():
    tree = ast.parse(inspect.getsource(reference))
    offending = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for n in names:
            if "_kernels" in n or n.endswith("fastbp.ops") or n in ("fastbp.ops", ".ops") \
                    or n.endswith(".ops"):
                offending.append(n)
    assert offending == []
    # nor reached some other way: no attribute or name `_kernels`, no dynamic imports
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("_kernels", "ops"), ast.unparse(node)
        elif isinstance(node, ast.Name):
            assert node.id not in ("_kernels", "import_module", "__import__"), node.id


def test_reference_namespace_holds_no_compiled_objects():
    for name, value in vars(reference).items():
        mod = getattr(value, "__module__", None) or getattr(value, "__name__", "")
        assert not str(mod).startswith("fastbp._kernels"), name
        assert not str(mod).startswith("fastbp.ops"), name
        if inspect.ismodule(value):
            assert value.__name__ not in ("fastbp.ops",) and "_kernels" not in value.__name__, name


@pytest.mark.parametrize("module", [fastbp, ops, reference], ids=["fastbp", "ops", "reference"])
def test_activations_and_losses_exported(module):
    assert module.ACTIVATIONS == API_ACTIVATIONS
    assert module.LOSSES == API_LOSSES
    assert isinstance(module.ACTIVATIONS, tuple) and isinstance(module.LOSSES, tuple)


def test_activations_and_losses_importable_by_name():
    from fastbp import ACTIVATIONS as a1, LOSSES as l1
    from fastbp.ops import ACTIVATIONS as a2, LOSSES as l2
    from fastbp.reference import ACTIVATIONS as a3, LOSSES as l3
    assert a1 == a2 == a3 == API_ACTIVATIONS
    assert l1 == l2 == l3 == API_LOSSES


def test_public_names_exported():
    for name in ("Dense", "Sequential", "MLP", "SGD", "AdaGrad", "RMSprop", "Adam", "AdamW",
                 "History", "TrainingDiverged", "GradcheckResult", "gradcheck", "load", "ops",
                 "reference", "schedules", "ACTIVATIONS", "LOSSES"):
        assert hasattr(fastbp, name), name
        assert name in fastbp.__all__, name
    for name in ("StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau"):
        assert hasattr(fastbp.schedules, name)
