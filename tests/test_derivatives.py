"""Derivatives with respect to the input (ops.network_derivatives/network_input_gradient and
the models' jacobian, hessian_diagonal, laplacian, input_gradient), training on derivative
data (dy), L-BFGS, and the C export of the input gradient: compiled against the NumPy
reference, against PyTorch's torch.func and JAX, and against central differences."""
from __future__ import annotations

import numpy as np
import pytest

import fastbp
from fastbp import ops, reference
from conftest import DTYPES, assert_close, param_copies, tol

ELEMENTWISE = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
               "silu")
KINDS = ("jacobian", "hessian_diagonal", "laplacian")


def _net(act, dtype, sizes=(3, 16, 8, 2), seed=0):
    return fastbp.MLP(sizes, act, "mse", dtype=dtype, seed=seed)


def _args(model, X):
    layers = model.layers
    return X, [la.W for la in layers], [la.b for la in layers], [la.activation for la in layers]


def _data(dtype, n=7, n_in=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n_in)).astype(dtype)


@pytest.mark.parametrize("act", ELEMENTWISE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_derivatives_equal_the_reference(act, dtype):
    model = _net(act, dtype)
    args = _args(model, _data(dtype))
    for kind in KINDS:
        for got, want in zip(ops.network_derivatives(*args, kind=kind),
                             reference.network_derivatives(*args, kind=kind)):
            assert_close(got, want, dtype, err_msg=f"{act} {kind}")
    for output in (None, 1):
        assert_close(ops.network_input_gradient(*args, output=output),
                     reference.network_input_gradient(*args, output=output), dtype)


def test_model_derivatives_reuse_scratch_but_never_their_results():
    """A model keeps its derivative scratch between calls: a call of another size or kind
    in between, or a failed call, changes no later result, and no returned array is
    scratch that a later call overwrites."""
    model = _net("tanh", np.float64)
    small, large = _data(np.float64, n=5), _data(np.float64, n=40, seed=1)
    first = model.value_gradient_laplacian(small)
    kept = [a.copy() for a in first]
    hess = model.hessian_diagonal(large)
    with pytest.raises(ValueError):
        model.laplacian(np.full((5, 3), np.nan))
    again = model.value_gradient_laplacian(small)
    for a, b, c in zip(first, kept, again):
        np.testing.assert_array_equal(a, b)          # the first results were not overwritten
        np.testing.assert_array_equal(c, b)          # the same bits after other calls
        assert not np.shares_memory(a, c)
    args = _args(model, large)
    np.testing.assert_array_equal(hess, ops.network_derivatives(*args, kind="hessian_diagonal")[2])
    assert model._scratch.nbytes() > 0


@pytest.mark.parametrize("act", ELEMENTWISE)
def test_derivatives_equal_pytorchs_torch_func(act):
    torch = pytest.importorskip("torch")
    from torch.func import hessian, jacrev, vmap

    model = _net(act, "float64")
    X = _data(np.float64)
    fn = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
          "relu": torch.relu, "leaky_relu": torch.nn.functional.leaky_relu,
          "elu": torch.nn.functional.elu, "softplus": torch.nn.functional.softplus,
          "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu}[act]
    weights = [(torch.from_numpy(la.W), torch.from_numpy(la.b)) for la in model.layers]

    def net(x):
        for i, (W, b) in enumerate(weights):
            x = x @ W + b
            if i < len(weights) - 1:
                x = fn(x)
        return x

    J = vmap(jacrev(net))(torch.from_numpy(X)).numpy()
    H = np.diagonal(vmap(hessian(net))(torch.from_numpy(X)).numpy(), axis1=2, axis2=3)
    np.testing.assert_allclose(model.jacobian(X), J, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.hessian_diagonal(X), H, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.laplacian(X), H.sum(axis=2), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.input_gradient(X), J.sum(axis=1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("act", ["tanh", "gelu", "softplus"])
def test_derivatives_equal_jaxs_jacfwd_and_hessian(act):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    model = _net(act, "float64")
    X = _data(np.float64)
    fn = {"tanh": jnp.tanh, "gelu": lambda z: jax.nn.gelu(z, approximate=False),
          "softplus": jax.nn.softplus}[act]
    weights = [(jnp.asarray(la.W), jnp.asarray(la.b)) for la in model.layers]

    def net(x):
        for i, (W, b) in enumerate(weights):
            x = x @ W + b
            if i < len(weights) - 1:
                x = fn(x)
        return x

    J = np.asarray(jax.vmap(jax.jacfwd(net))(jnp.asarray(X)))
    H = np.diagonal(np.asarray(jax.vmap(jax.hessian(net))(jnp.asarray(X))), axis1=2, axis2=3)
    np.testing.assert_allclose(model.jacobian(X), J, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.hessian_diagonal(X), H, rtol=1e-10, atol=1e-12)


def test_derivative_methods_refuse_what_they_cannot_differentiate():
    X = np.ones((4, 3))
    soft = fastbp.Sequential([fastbp.Dense(3, 4, "softmax", dtype="float64"),
                              fastbp.Dense(4, 1, dtype="float64")])
    for method in ("jacobian", "hessian_diagonal", "laplacian", "input_gradient"):
        with pytest.raises(ValueError, match="softmax"):
            getattr(soft, method)(X)
    model = _net("tanh", "float64")
    with pytest.raises(ValueError, match="NaN"):
        model.jacobian(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="X must have 3 features"):
        model.laplacian(np.ones((2, 4)))
    with pytest.raises(ValueError, match="output"):
        model.input_gradient(X, output=2)
    assert model.jacobian(np.empty((0, 3))).shape == (0, 2, 3)
    assert model.input_gradient(X, output=1).shape == (4, 3)


# ---------------------------------------------------------------- training on derivatives

def _sobolev_problem(dtype=np.float64, n=12, n_in=3, n_out=2):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    y = rng.standard_normal((n, n_out)).astype(dtype)
    dy = rng.standard_normal((n, n_out, n_in)).astype(dtype)
    return X, y, dy


# The compiled step has two formulations: forward mode (a tangent per input) when the
# network has at least as many outputs as inputs, reverse mode (double backpropagation,
# a pass per output) when it has fewer. Each test below runs both.
SOBOLEV_SHAPES = {"reverse": (3, 16, 8, 2), "forward": (2, 16, 8, 3)}


def _sobolev_loss(model, X, y, dy, weight, w=None):
    """loss + weight·mean((J - dy)²), per sample then (weighted) mean: the definition."""
    per_sample = ((model.forward(X) - y) ** 2).mean(axis=1)
    per_sample_d = ((model.jacobian(X) - dy) ** 2).mean(axis=(1, 2))
    w = np.ones(len(X)) if w is None else w
    return float((w * per_sample).sum() / w.sum() + weight * (w * per_sample_d).sum() / w.sum())


@pytest.mark.parametrize("mode", list(SOBOLEV_SHAPES))
@pytest.mark.parametrize("act", ["tanh", "gelu", "silu", "softplus", "elu", "relu"])
@pytest.mark.parametrize("weighted", [False, True])
def test_derivative_loss_gradient_equals_central_differences(act, weighted, mode):
    sizes = SOBOLEV_SHAPES[mode]
    model = _net(act, "float64", sizes=sizes, seed=1)
    X, y, dy = _sobolev_problem(n_in=sizes[0], n_out=sizes[-1])
    w = np.linspace(0.5, 2.0, len(X)) if weighted else None
    data = fastbp.training.TrainingData(model, X, y, w, dy=dy, dy_weight=0.7)
    value = model.full_batch_gradient(data)
    assert value == pytest.approx(_sobolev_loss(model, X, y, dy, 0.7, w), rel=1e-12)
    eps = 1e-6
    for p, g in zip(model.parameters(), [g.copy() for g in model.gradients()]):
        flat = p.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 7)):
            old = flat[i]
            flat[i] = old + eps
            up = _sobolev_loss(model, X, y, dy, 0.7, w)
            flat[i] = old - eps
            down = _sobolev_loss(model, X, y, dy, 0.7, w)
            flat[i] = old
            assert g.reshape(-1)[i] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("mode", list(SOBOLEV_SHAPES))
def test_derivative_loss_gradient_equals_pytorchs_double_backward(mode):
    torch = pytest.importorskip("torch")
    sizes = SOBOLEV_SHAPES[mode]
    model = _net("tanh", "float64", sizes=sizes, seed=2)
    X, y, dy = _sobolev_problem(n_in=sizes[0], n_out=sizes[-1])
    data = fastbp.training.TrainingData(model, X, y, dy=dy, dy_weight=0.5)
    value = model.full_batch_gradient(data)
    params = [torch.tensor(p, requires_grad=True) for p in model.parameters()]
    x = torch.tensor(X, requires_grad=True)
    h = x
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i < len(params) - 2:
            h = torch.tanh(h)
    J = torch.stack([torch.autograd.grad(h[:, k].sum(), x, create_graph=True)[0]
                     for k in range(sizes[-1])], dim=1)
    loss = ((h - torch.tensor(y)) ** 2).mean() + 0.5 * ((J - torch.tensor(dy)) ** 2).mean()
    loss.backward()
    assert value == pytest.approx(loss.item(), rel=1e-12)
    for g, p in zip(model.gradients(), params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_with_derivatives_is_its_train_steps(dtype):
    """fit(dy=...) takes each mini-batch's rows of dy: one epoch equals train_step(dy=)
    over the same order, and History.loss records the loss with the derivative term."""
    X, y, dy = _sobolev_problem(dtype, n=40)
    a, b = _net("gelu", dtype, seed=4), _net("gelu", dtype, seed=4)
    h = a.fit(X, y, epochs=1, batch_size=16, seed=5, dy=dy, dy_weight=0.3, progress=False)
    order = np.random.default_rng(5).permutation(40)
    opt = fastbp.Adam(b.parameters())
    total = 0.0
    for start in range(0, 40, 16):
        rows = order[start:start + 16]
        total += b.train_step(X[rows], y[rows], opt, dy=dy[rows], dy_weight=0.3) * len(rows)
    assert h.loss[0] == pytest.approx(total / 40, rel=tol(dtype, "path_rtol"))
    for p, q in zip(a.parameters(), b.parameters()):
        assert_close(p, q, dtype, rtol=tol(dtype, "path_rtol"))


def test_training_on_slopes_learns_the_slopes():
    """A surrogate of a known function trained on values and slopes has smaller derivative
    errors than one trained on values alone, same budget."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (256, 2))

    def f(X):
        return np.sin(X[:, :1]) * np.cos(X[:, 1:])

    def df(X):
        return np.stack([np.cos(X[:, 0]) * np.cos(X[:, 1]),
                         -np.sin(X[:, 0]) * np.sin(X[:, 1])], axis=1)[:, None, :]

    Xt = rng.uniform(-2, 2, (200, 2))
    errors = []
    for dy in (None, df(X)):
        model = fastbp.MLP((2, 32, 32, 1), "tanh", "mse", dtype="float64", seed=0)
        model.fit(X, f(X), epochs=60, batch_size=32, lr=3e-3, seed=0, dy=dy, progress=False)
        errors.append(np.sqrt(np.mean((model.jacobian(Xt) - df(Xt)) ** 2)))
    assert errors[1] < 0.8 * errors[0]


def test_derivative_data_is_checked_and_a_refused_call_changes_nothing():
    model = _net("tanh", "float64")
    X, y, dy = _sobolev_problem()
    opt = fastbp.Adam(model.parameters())
    before = param_copies(model)
    bad = dy.copy()
    bad[0, 0, 0] = np.nan
    cases = [(dict(dy=dy[:, :, :2]), ValueError, "dy must have shape"),
             (dict(dy=bad), ValueError, "dy contains NaN"),
             (dict(dy=dy.astype(complex)), TypeError, "dy must hold real numbers"),
             (dict(dy=dy, dy_weight=-1.0), ValueError, "dy_weight")]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            model.train_step(X, y, opt, **kwargs)
        with pytest.raises(exc, match=match):
            model.fit(X, y, progress=False, **kwargs)
    dropout = fastbp.MLP((3, 8, 2), "tanh", dtype="float64", dropout=0.2)
    with pytest.raises(ValueError, match="dropout"):
        dropout.fit(X, y, dy=dy, progress=False)
    for p, q in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, q)
    assert opt.step_count == 0 and model.training_state is None


# ---------------------------------------------------------------- L-BFGS

@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_lbfgs_fits_any_model(loss):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) if loss == "cross_entropy" else np.sin(X[:, :1])
    model = fastbp.MLP((4, 16, 2 if loss == "cross_entropy" else 1), "tanh", loss,
                       dtype="float64", seed=0)
    start = model.loss(X, y)
    h = model.fit(X, y, epochs=50, optimizer="lbfgs", validation_data=(X, y), progress=False)
    assert 1 <= h.epochs <= 50 and len(h.val_loss) == h.epochs
    assert h.loss[-1] < 0.5 * start and model.loss(X, y) == pytest.approx(h.val_loss[-1])
    assert model.training_state is None


def test_lbfgs_refuses_what_it_does_not_use():
    model = _net("tanh", "float64")
    X, y, dy = _sobolev_problem()
    for kwargs, match in ((dict(lr=0.1), "lr"), (dict(early_stopping=2), "early_stopping"),
                          (dict(scheduler=lambda o: None), "scheduler"),
                          (dict(resume=True), "resume")):
        with pytest.raises(ValueError, match=match):
            model.fit(X, y, optimizer="lbfgs", **kwargs)
    with pytest.raises(ValueError, match="dropout"):
        fastbp.MLP((3, 8, 2), dtype="float64", dropout=0.2).fit(X, y, optimizer="lbfgs")
    h = model.fit(X, y, epochs=5, optimizer="lbfgs", dy=dy, progress=False)
    assert h.epochs <= 5 and np.isfinite(h.loss).all()


# ---------------------------------------------------------------- C export

@pytest.mark.packaging
@pytest.mark.parametrize("dtype", DTYPES)
def test_c_export_of_the_input_gradient(dtype, tmp_path):
    import ctypes
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    for i, act in enumerate(ELEMENTWISE):
        model = fastbp.MLP((3, 8, 5, 2), act, "mse", dtype=dtype, seed=i)
        folder = tmp_path / act
        folder.mkdir()
        _, source = fastbp.export.to_c(model, folder, name="net", derivatives=True)
        lib = folder / "libnet.so"
        subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC",
                        source, "-o", str(lib), "-lm"], check=True)
        X = _data(dtype, n=6)
        out = np.empty((6, 3), dtype=dtype)
        jac = np.empty((6, 2, 3), dtype=dtype)
        c_lib = ctypes.CDLL(str(lib))
        c_lib.net_gradient(X.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(6),
                           out.ctypes.data_as(ctypes.c_void_p))
        c_lib.net_jacobian(X.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(6),
                           jac.ctypes.data_as(ctypes.c_void_p))
        assert_close(out, model.input_gradient(X), dtype, err_msg=act)
        assert_close(jac, model.jacobian(X), dtype, err_msg=act)
    with pytest.raises(ValueError, match="Ensemble"):
        fastbp.export.to_c(fastbp.Ensemble.of(2, (3, 4, 1)), tmp_path, derivatives=True)
