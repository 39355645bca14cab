"""Derivatives with respect to the input: the D1 workloads, fastbp against torch.func and
JAX (when installed), side by side in one process (fastbp.bench.time_side_by_side).

D1: a 3-64-64-1 tanh network in float64 on 1,024 points.

- predict: ``model.predict(X)`` alone (the reference cost); PyTorch's forward under
  ``no_grad``, JAX's ``jit(vmap(f))``;
- value + gradient + Laplacian in one call: ``model.value_gradient_laplacian(X)``;
  torch.func: ``vmap(jacrev(f))`` and ``vmap(hessian(f))`` (the Laplacian its trace);
  JAX: ``jit(vmap(jacfwd(f)))`` and ``jit(vmap(hessian(f)))``, the same;
- a Sobolev training step on values and gradients (Adam, lr 1e-3, all 1,024 points):
  ``model.train_step(X, y, opt, dy=dy)``; PyTorch: the Jacobian by
  ``autograd.grad(create_graph=True)``, then backward and ``torch.optim.Adam``; JAX: the
  reverse-mode formulation (``jax.grad`` of the output for the input gradient, inside
  ``jax.value_and_grad`` of the loss) with ``optax.adam``, jitted.

    env -u OPENBLAS_CORETYPE python benchmarks/derivatives.py [--threads 1] [--budget 1]

Run with nothing else running; the ratios are what to quote.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import numpy as np

import fastbp
from fastbp.bench import environment, print_report, time_side_by_side
from fastbp.threads import set_num_threads

SIZES = (3, 64, 64, 1)
N = 1024


def problem(seed: int = 0) -> tuple[fastbp.Sequential, np.ndarray, np.ndarray, np.ndarray]:
    """D1's model, points, values and slopes (of f = sin(x0)·cos(x1) + x2²/4)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (N, 3))
    y = (np.sin(X[:, 0]) * np.cos(X[:, 1]) + X[:, 2] ** 2 / 4)[:, None]
    dy = np.stack([np.cos(X[:, 0]) * np.cos(X[:, 1]), -np.sin(X[:, 0]) * np.sin(X[:, 1]),
                   X[:, 2] / 2], axis=1)[:, None, :]
    model = fastbp.MLP(SIZES, "tanh", "mse", dtype="float64", seed=seed)
    return model, X, y, dy


def fastbp_contenders(threads: int) -> dict[str, Callable[[], Any]]:
    model, X, y, dy = problem()
    trainee = problem()[0]
    opt = fastbp.Adam(trainee.parameters(), lr=1e-3)
    model.predict(X)
    return {"predict": lambda: model.predict(X),
            "value+gradient+laplacian": lambda: model.value_gradient_laplacian(X),
            "sobolev step": lambda: trainee.train_step(X, y, opt, dy=dy)}


def torch_contenders(threads: int) -> dict[str, Callable[[], Any]]:
    try:
        import torch
        from torch.func import hessian, jacrev, vmap
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    model, X, y, dy = problem()
    Ws = [torch.tensor(la.W) for la in model.layers]
    bs = [torch.tensor(la.b) for la in model.layers]

    def f(x: Any) -> Any:
        for i, (W, b) in enumerate(zip(Ws, bs)):
            x = x @ W + b
            if i < len(Ws) - 1:
                x = torch.tanh(x)
        return x

    Xt = torch.tensor(X)
    jac, hes = vmap(jacrev(f)), vmap(hessian(f))

    def vgl() -> Any:
        return f(Xt), jac(Xt), torch.diagonal(hes(Xt), dim1=-2, dim2=-1).sum(-1)

    params = [torch.nn.Parameter(t.clone()) for pair in zip(Ws, bs) for t in pair]
    opt = torch.optim.Adam(params, lr=1e-3)
    yt, dyt = torch.tensor(y), torch.tensor(dy)

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        x = Xt.clone().requires_grad_(True)
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < len(params) - 2:
                h = torch.tanh(h)
        J = torch.autograd.grad(h.sum(), x, create_graph=True)[0][:, None, :]
        loss = ((h - yt) ** 2).mean() + ((J - dyt) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    def predict() -> Any:
        with torch.no_grad():
            return f(Xt)

    return {"predict": predict, "value+gradient+laplacian": vgl, "sobolev step": step}


def jax_contenders(threads: int) -> dict[str, Callable[[], Any]]:
    try:
        os.environ.setdefault("NPROC", str(threads))
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return {}
    jax.config.update("jax_enable_x64", True)
    model, X, y, dy = problem()
    params = [(jnp.asarray(la.W), jnp.asarray(la.b)) for la in model.layers]

    def f(p: Any, x: Any) -> Any:   # one point (3,) -> (1,)
        for i, (W, b) in enumerate(p):
            x = x @ W + b
            if i < len(p) - 1:
                x = jnp.tanh(x)
        return x

    Xj, yj, dyj = jnp.asarray(X), jnp.asarray(y), jnp.asarray(dy)
    predict = jax.jit(jax.vmap(lambda x: f(params, x)))
    jac = jax.jit(jax.vmap(jax.jacfwd(lambda x: f(params, x))))
    lap = jax.jit(jax.vmap(lambda x: jnp.trace(jax.hessian(lambda z: f(params, z)[0])(x))))

    def vgl() -> Any:
        return jax.block_until_ready((predict(Xj), jac(Xj), lap(Xj)))

    adam = optax.adam(1e-3)

    def loss_fn(p: Any) -> Any:
        values = jax.vmap(lambda x: f(p, x))(Xj)
        slopes = jax.vmap(jax.grad(lambda x: f(p, x)[0]))(Xj)[:, None, :]
        return jnp.mean((values - yj) ** 2) + jnp.mean((slopes - dyj) ** 2)

    @jax.jit
    def step(p: Any, state: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, state = adam.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    carry = [params, adam.init(params)]

    def train() -> Any:
        carry[0], carry[1], loss = jax.block_until_ready(step(carry[0], carry[1]))
        return loss

    vgl()
    train()
    return {"predict": lambda: jax.block_until_ready(predict(Xj)),
            "value+gradient+laplacian": vgl, "sobolev step": train}


def run(threads: int, budget: float) -> dict[str, Any]:
    set_num_threads(threads)
    fns = {f"fastbp {k}": v for k, v in fastbp_contenders(threads).items()}
    fns.update({f"torch {k}": v for k, v in torch_contenders(threads).items()})
    fns.update({f"jax {k}": v for k, v in jax_contenders(threads).items()})
    timed = time_side_by_side(fns, budget)
    return {"environment": environment([threads]),
            "results": {k: v * 1e6 for k, v in timed.items()}}


def table(report: dict[str, Any]) -> str:
    r = report["results"]
    env = report["environment"]
    lines = [f"D1 (3-64-64-1 tanh, float64, {N} points), {env['date']}, {env['cpu']}, "
             f"{env['cores']} cores, threads {env['threads']}; µs per call (median)", "",
             "| what | fastbp | torch.func / PyTorch | JAX jit | torch / fastbp | JAX / fastbp |",
             "|---|---|---|---|---|---|"]
    for what in ("predict", "value+gradient+laplacian", "sobolev step"):
        fb, to, jx = (r.get(f"{k} {what}") for k in ("fastbp", "torch", "jax"))
        cells = [what, f"{fb:.1f}", f"{to:.1f}" if to else "-", f"{jx:.1f}" if jx else "-",
                 f"{to / fb:.1f}x" if to else "-", f"{jx / fb:.1f}x" if jx else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    vgl = r["fastbp value+gradient+laplacian"] / r["fastbp predict"]
    lines.append(f"\nfastbp value+gradient+laplacian / predict = {vgl:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    report = run(args.threads, args.budget)
    print_report(report, table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
