"""Layers beyond Dense: the R1 and R2 workloads (the "Revisiting deep learning models for
tabular data" ResNet), a training step of fastbp against PyTorch eager and JAX jit
(when installed), side by side in one process (fastbp.bench.time_side_by_side), with
R2's GEMM floor.

The model: Dense(20, d), then ``blocks`` residual blocks
x + Dropout(Dense(2d, d)(Dropout(relu(Dense(d, 2d)(BatchNorm(x)))))), then BatchNorm,
relu, Dense(d, 3); cross-entropy, AdamW (lr 1e-3, weight decay 0.01), dropout 0.1,
float32, one fixed batch (the step's cost, not the data pipeline's).

- R1: d = 64, 2 blocks, batch 32;
- R2: d = 256, 4 blocks, batch 256;
- P1: MLP-PLR, 8 numeric features through periodic embeddings (48 frequencies,
  d_embedding 24, not lite; PyTorch: rtdl_num_embeddings' module), then 2 x 128 relu,
  3 classes, batch 64 (no dropout, no BatchNorm).

The GEMM floor of each: the step's matrix products alone (forward, dX and dW of every
Dense layer) through NumPy's BLAS into preallocated arrays.

    env -u OPENBLAS_CORETYPE python benchmarks/layers.py [--threads 1] [--budget 1]

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

WORKLOADS = {"R1": dict(d=64, blocks=2, batch=32), "R2": dict(d=256, blocks=4, batch=256)}
N_IN, N_OUT, P, LR, WD = 20, 3, 0.1, 1e-3, 0.01


def resnet(d: int, blocks: int, seed: int = 0) -> fastbp.Sequential:
    """The workload's fastbp model (float32)."""
    def block(i: int) -> fastbp.Residual:
        return fastbp.Residual([fastbp.BatchNorm(d), fastbp.Dense(d, 2 * d, "relu", dropout=P,
                                                                  seed=seed + 2 * i + 1),
                                fastbp.Dense(2 * d, d, dropout=P, seed=seed + 2 * i + 2)])
    return fastbp.Sequential([fastbp.Dense(N_IN, d, seed=seed)]
                             + [block(i) for i in range(blocks)]
                             + [fastbp.BatchNorm(d), fastbp.Activation("relu"),
                                fastbp.Dense(d, N_OUT, seed=seed + 99)],
                             loss="cross_entropy")


def batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, N_IN)).astype(np.float32), rng.integers(0, N_OUT, n)


def fastbp_step(w: dict[str, int]) -> Callable[[], Any]:
    model = resnet(w["d"], w["blocks"])
    opt = fastbp.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    X, y = batch(w["batch"])
    return lambda: model.train_step(X, y, opt)


def gemm_floor(w: dict[str, int]) -> Callable[[], Any]:
    """The step's matrix products alone: per Dense layer X·W, dZ·Wᵀ (not the first) and
    Xᵀ·dZ, in float32 into preallocated outputs."""
    d, n = w["d"], w["batch"]
    shapes = [(N_IN, d)] + [s for _ in range(w["blocks"]) for s in ((d, 2 * d), (2 * d, d))] \
        + [(d, N_OUT)]
    rng = np.random.default_rng(0)
    arrays = []
    for i, (k_in, k_out) in enumerate(shapes):
        X = rng.normal(size=(n, k_in)).astype(np.float32)
        W = rng.normal(size=(k_in, k_out)).astype(np.float32)
        dZ = rng.normal(size=(n, k_out)).astype(np.float32)
        arrays.append((X, W, dZ, np.empty((n, k_out), np.float32),
                       np.empty((n, k_in), np.float32) if i else None,
                       np.empty((k_in, k_out), np.float32)))

    def run() -> None:
        for X, W, dZ, Z, dX, dW in arrays:
            np.matmul(X, W, out=Z)
            if dX is not None:
                np.matmul(dZ, W.T, out=dX)
            np.matmul(X.T, dZ, out=dW)
    return run


def torch_step(w: dict[str, int], threads: int) -> Callable[[], Any] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d = w["d"]
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f = nn.Sequential(nn.BatchNorm1d(d), nn.Linear(d, 2 * d), nn.ReLU(),
                                   nn.Dropout(P), nn.Linear(2 * d, d), nn.Dropout(P))

        def forward(self, x: Any) -> Any:
            return x + self.f(x)

    net = nn.Sequential(nn.Linear(N_IN, d), *[Block() for _ in range(w["blocks"])],
                        nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, N_OUT))
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WD)
    X, y = batch(w["batch"])
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(Xt), yt)
        loss.backward()
        opt.step()
        return loss
    return step


def jax_step(w: dict[str, int], threads: int) -> Callable[[], Any] | None:
    try:
        os.environ.setdefault("NPROC", str(threads))
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return None
    d, blocks = w["d"], w["blocks"]
    model = resnet(d, blocks)
    params = [jnp.asarray(p) for p in model.parameters()]
    stats = [jnp.asarray(b) for la in fastbp.layers.engine_layers(model.layers)
             for b in la.buffers()]

    def bn(x: Any, g: Any, b: Any, rm: Any, rv: Any) -> tuple[Any, Any, Any]:
        mean, var = x.mean(0), x.var(0)
        n = x.shape[0]
        rm = 0.9 * rm + 0.1 * mean
        rv = 0.9 * rv + 0.1 * var * n / (n - 1)
        return g * (x - mean) / jnp.sqrt(var + 1e-5) + b, rm, rv

    def drop(key: Any, x: Any) -> Any:
        keep = jax.random.bernoulli(key, 1 - P, x.shape)
        return jnp.where(keep, x / (1 - P), 0.0)

    def loss_fn(p: Any, s: Any, key: Any, x: Any, y: Any) -> tuple[Any, Any]:
        new_s = []
        h = x @ p[0] + p[1]
        for i in range(blocks):
            g, b, W1, b1, W2, b2 = p[2 + 6 * i: 8 + 6 * i]
            z, rm, rv = bn(h, g, b, s[2 * i], s[2 * i + 1])
            new_s += [rm, rv]
            key, k1, k2 = jax.random.split(key, 3)
            z = drop(k1, jax.nn.relu(z @ W1 + b1))
            h = h + drop(k2, z @ W2 + b2)
        g, b, W, bo = p[-4:]
        z, rm, rv = bn(h, g, b, s[-2], s[-1])
        new_s += [rm, rv]
        logits = jax.nn.relu(z) @ W + bo
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_s

    adamw = optax.adamw(LR, weight_decay=WD)

    @jax.jit
    def step(p: Any, s: Any, opt_state: Any, key: Any, x: Any, y: Any) -> Any:
        key, sub = jax.random.split(key)
        (loss, s), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, s, sub, x, y)
        updates, opt_state = adamw.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), s, opt_state, key, loss

    X, y = batch(w["batch"])
    carry = [params, stats, adamw.init(params), jax.random.PRNGKey(0)]
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def train() -> Any:
        *state, loss = jax.block_until_ready(step(*carry, Xj, yj))
        carry[:] = state
        return loss
    train()
    return train


P1 = dict(features=8, frequencies=48, d=24, hidden=128, batch=64)


def plr(seed: int = 0) -> fastbp.Sequential:
    """P1's fastbp model (float32)."""
    F, d, h = P1["features"], P1["d"], P1["hidden"]
    return fastbp.Sequential([fastbp.PeriodicEmbedding(F, d, n_frequencies=P1["frequencies"],
                                                       frequency_init_scale=0.1, seed=seed),
                              fastbp.Dense(F * d, h, "relu", seed=seed + 1),
                              fastbp.Dense(h, h, "relu", seed=seed + 2),
                              fastbp.Dense(h, N_OUT, seed=seed + 3)], loss="cross_entropy")


def p1_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(P1["batch"], P1["features"])).astype(np.float32), \
        rng.integers(0, N_OUT, P1["batch"])


def p1_fastbp() -> Callable[[], Any]:
    model = plr()
    opt = fastbp.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    X, y = p1_batch()
    return lambda: model.train_step(X, y, opt)


def p1_torch(threads: int) -> Callable[[], Any] | None:
    try:
        import torch
        from rtdl_num_embeddings import PeriodicEmbeddings
    except ImportError:
        return None
    torch.set_num_threads(threads)
    F, d, h = P1["features"], P1["d"], P1["hidden"]
    net = torch.nn.Sequential(PeriodicEmbeddings(F, d, n_frequencies=P1["frequencies"],
                                                 frequency_init_scale=0.1, lite=False),
                              torch.nn.Flatten(), torch.nn.Linear(F * d, h), torch.nn.ReLU(),
                              torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, N_OUT))
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WD)
    X, y = p1_batch()
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(Xt), yt)
        loss.backward()
        opt.step()
        return loss
    return step


def p1_jax(threads: int) -> Callable[[], Any] | None:
    try:
        os.environ.setdefault("NPROC", str(threads))
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return None
    params = [jnp.asarray(p) for p in plr().parameters()]

    def loss_fn(p: Any, x: Any, y: Any) -> Any:
        freq, W, b = p[:3]
        a = 2 * jnp.pi * freq[None] * x[:, :, None]                     # (n, F, k)
        P = jnp.concatenate([jnp.cos(a), jnp.sin(a)], axis=-1)          # (n, F, 2k)
        h = jax.nn.relu(jnp.einsum("nfj,fjd->nfd", P, W) + b).reshape(x.shape[0], -1)
        for i in range(3, len(p) - 2, 2):
            h = jax.nn.relu(h @ p[i] + p[i + 1])
        logits = h @ p[-2] + p[-1]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    adamw = optax.adamw(LR, weight_decay=WD)

    @jax.jit
    def step(p: Any, opt_state: Any, x: Any, y: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, opt_state = adamw.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    X, y = p1_batch()
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    carry = [params, adamw.init(params)]

    def train() -> Any:
        carry[0], carry[1], loss = jax.block_until_ready(step(carry[0], carry[1], Xj, yj))
        return loss
    train()
    return train


def run(threads: int, budget: float) -> dict[str, Any]:
    set_num_threads(threads)
    fns: dict[str, Callable[[], Any]] = {}
    for name, w in WORKLOADS.items():
        fns[f"{name} fastbp"] = fastbp_step(w)
        for who, make in (("torch", torch_step), ("jax", jax_step)):
            fn = make(w, threads)
            if fn is not None:
                fns[f"{name} {who}"] = fn
        fns[f"{name} gemm floor"] = gemm_floor(w)
    fns["P1 fastbp"] = p1_fastbp()
    for who, p1 in (("torch", p1_torch(threads)), ("jax", p1_jax(threads))):
        if p1 is not None:
            fns[f"P1 {who}"] = p1
    timed = time_side_by_side(fns, budget)
    return {"environment": environment([threads]),
            "results": {k: v * 1e6 for k, v in timed.items()}}


def table(report: dict[str, Any]) -> str:
    r = report["results"]
    env = report["environment"]
    lines = [f"ResNet training step (float32, AdamW, dropout 0.1), {env['date']}, {env['cpu']}, "
             f"{env['cores']} cores, threads {env['threads']}; µs per step (median)", "",
             "| workload | fastbp | PyTorch | JAX jit | PyTorch / fastbp | JAX / fastbp |",
             "|---|---|---|---|---|---|"]
    for name, w in WORKLOADS.items():
        fb, to, jx = (r.get(f"{name} {k}") for k in ("fastbp", "torch", "jax"))
        cells = [f"{name} (d={w['d']}, {w['blocks']} blocks, batch {w['batch']})", f"{fb:.1f}",
                 f"{to:.1f}" if to else "-", f"{jx:.1f}" if jx else "-",
                 f"{to / fb:.1f}x" if to else "-", f"{jx / fb:.2f}x" if jx else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    fb, to, jx = (r.get(f"P1 {k}") for k in ("fastbp", "torch", "jax"))
    lines.append("| " + " | ".join([f"P1 (MLP-PLR, batch {P1['batch']})", f"{fb:.1f}",
                                    f"{to:.1f}" if to else "-", f"{jx:.1f}" if jx else "-",
                                    f"{to / fb:.1f}x" if to else "-",
                                    f"{jx / fb:.2f}x" if jx else "-"]) + " |")
    lines.append("")
    for name in WORKLOADS:
        floor = r[f"{name} gemm floor"]
        lines.append(f"{name} GEMM floor {floor:.1f} µs: fastbp at "
                     f"{r[f'{name} fastbp'] / floor:.2f}x it"
                     + (f", JAX at {r[f'{name} jax'] / floor:.2f}x" if r.get(f"{name} jax")
                        else ""))
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
