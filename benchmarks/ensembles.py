"""The ensemble workloads E1-E3 against JAX and torch.func: one epoch of every member
(Adam lr 1e-3, one shared batch order), side by side in one process, ms per epoch.

- fastbp: ``Ensemble.fit(epochs=1, num_threads=threads)`` (suite.ensemble_contenders), the
  members in lock-step, and the same with ``pack=False`` (each member its own epoch);
- JAX: the members' parameters stacked, ``jax.vmap`` of ``jax.grad`` of the loss and of
  ``optax.adam``'s update, the epoch's batches in one jitted ``jax.lax.scan``;
- torch.func: ``stack_module_state`` of the members, ``vmap(grad(functional_call))``,
  one ``torch.optim.Adam`` over the stacked tensors (element-wise, so each member's
  update is its own), the batches in a Python loop.

The JAX and torch.func epochs run the full batches only (50,000 // batch of them); fastbp
also steps the last partial batch.

    env -u OPENBLAS_CORETYPE python benchmarks/ensembles.py [--workloads E1,E2,E3]
        [--threads 1,2]

Run it with nothing else running.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suite import (ensemble_contenders, jax_available, jax_forward,  # noqa: E402
                   jax_prepare, jax_use_threads)

import fastbp  # noqa: E402
from fastbp.bench import (WORKLOADS, Workload, environment, make_data,  # noqa: E402
                          print_report, time_side_by_side)
from fastbp.threads import set_num_threads  # noqa: E402


def _stacked(w: Workload) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every member's (W, b) per layer, stacked over members: fastbp.MLP(seed=i)'s."""
    models = [fastbp.MLP(w.sizes, w.activation, w.loss, dtype=w.dtype, seed=i)
              for i in range(w.n_models)]
    return [(np.stack([m.layers[l].W for m in models]), np.stack([m.layers[l].b for m in models]))
            for l in range(len(w.sizes) - 1)]


def _batches(w: Workload, n: int) -> np.ndarray:
    order = np.random.default_rng(0).permutation(n)
    steps = n // w.batch
    return order[:steps * w.batch].reshape(steps, w.batch)


def jax_contender(w: Workload) -> Callable[[], Any] | None:
    if not jax_available():
        return None
    import jax
    import jax.numpy as jnp
    import optax

    X, y = make_data(w, np.random.default_rng(0), w.n_samples)
    forward = jax_forward(w.activation)

    def loss_fn(params: Any, x: Any, t: Any) -> Any:
        z = forward(params, x)
        if w.loss == "cross_entropy":
            return optax.softmax_cross_entropy_with_integer_labels(z, t).mean()
        return optax.sigmoid_binary_cross_entropy(z, t).mean()

    adam = optax.adam(1e-3)
    grads = jax.vmap(jax.grad(loss_fn), in_axes=(0, None, None))
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def step(carry: Any, idx: Any) -> Any:
        params, state = carry
        g = grads(params, Xj[idx], yj[idx])
        updates, state = jax.vmap(adam.update)(g, state, params)
        return (optax.apply_updates(params, updates), state), None

    @jax.jit
    def epoch(params: Any, state: Any, batches: Any) -> Any:
        return jax.lax.scan(step, (params, state), batches)[0]

    params = [tuple(jnp.asarray(a) for a in pair) for pair in _stacked(w)]
    carry = [params, jax.vmap(adam.init)(params)]
    batches = jnp.asarray(_batches(w, w.n_samples))

    def run() -> Any:
        carry[0], carry[1] = jax.block_until_ready(epoch(carry[0], carry[1], batches))

    run()
    return run


def torch_contender(w: Workload, threads: int) -> Callable[[], Any] | None:
    try:
        import torch
        from torch.func import functional_call, grad, stack_module_state, vmap
    except ImportError:
        return None
    torch.set_num_threads(threads)
    X, y = make_data(w, np.random.default_rng(0), w.n_samples)
    dtype = torch.float32 if w.dtype == "float32" else torch.float64
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[w.activation]

    def net() -> Any:
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(w.sizes[:-1], w.sizes[1:])):
            layers.append(torch.nn.Linear(a, b, dtype=dtype))
            if i < len(w.sizes) - 2:
                layers.append(act())
        return torch.nn.Sequential(*layers)

    members = [net() for _ in range(w.n_models)]
    with torch.no_grad():
        for pairs, m in zip(zip(*[zip(W, b) for W, b in _stacked(w)]), members):
            linears = [layer for layer in m if isinstance(layer, torch.nn.Linear)]
            for layer, (W, b) in zip(linears, pairs):
                layer.weight.copy_(torch.from_numpy(W.T.copy()))
                layer.bias.copy_(torch.from_numpy(b))
    params, buffers = stack_module_state(members)
    base = net().to("meta")
    params = {k: v.detach().requires_grad_(False) for k, v in params.items()}

    def loss_fn(p: Any, b: Any, x: Any, t: Any) -> Any:
        z = functional_call(base, (p, b), (x,))
        if w.loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(z, t)
        return torch.nn.functional.binary_cross_entropy_with_logits(z, t)

    grads = vmap(grad(loss_fn), in_dims=(0, 0, None, None))
    opt = torch.optim.Adam(list(params.values()), lr=1e-3)
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y) if w.loss == "cross_entropy" else torch.from_numpy(y)
    batches = torch.from_numpy(_batches(w, w.n_samples))

    def run() -> None:
        for idx in batches:
            g = grads(params, buffers, Xt[idx], yt[idx])
            for k, v in params.items():
                v.grad = g[k]
            opt.step()

    return run


def run(names: list[str], threads: list[int], budget: float) -> dict[str, Any]:
    env_jax = jax_prepare(threads, any(WORKLOADS[n].dtype == "float64" for n in names)) \
        if jax_available() else None
    rows = []
    for n_threads in threads:
        set_num_threads(n_threads)
        if env_jax is not None:
            jax_use_threads(n_threads)
        for name in names:
            w = WORKLOADS[name]
            contenders = ensemble_contenders(w, n_threads)
            fns = {"fastbp": contenders["ensemble"],
                   "fastbp pack=False": contenders["ensemble-unpacked"]}
            jx = jax_contender(w)
            if jx is not None:
                fns["jax"] = jx
            to = torch_contender(w, n_threads)
            if to is not None:
                fns["torch.func"] = to
            timed = time_side_by_side(fns, budget)
            rows.append({"workload": name, "threads": n_threads,
                         **{k: v * 1e3 for k, v in timed.items()}})
            print(rows[-1], file=sys.stderr, flush=True)
    return {"environment": environment(threads), "jax": env_jax, "results": rows}


def table(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"ensembles, ms per epoch of all members, {env['date']}, {env['cpu']}, "
             f"{env['cores']} cores", "",
             "| workload | threads | fastbp Ensemble.fit | pack=False | JAX vmap + scan | "
             "torch.func vmap | pack=False / packed | JAX / fastbp | torch.func / fastbp |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        fb, jx, to = r["fastbp"], r.get("jax"), r.get("torch.func")
        alone = r["fastbp pack=False"]
        lines.append(f"| {r['workload']} | {r['threads']} | {fb:.1f} | {alone:.1f} | "
                     f"{'-' if jx is None else f'{jx:.1f}'} | {'-' if to is None else f'{to:.1f}'} | "
                     f"{alone / fb:.2f}x | "
                     f"{'-' if jx is None else f'{jx / fb:.2f}x'} | "
                     f"{'-' if to is None else f'{to / fb:.2f}x'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="E1,E2,E3")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    report = run(args.workloads.split(","), [int(t) for t in args.threads.split(",")],
                 args.budget)
    print_report(report, table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
