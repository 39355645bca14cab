"""History plots (matplotlib is an optional dependency: ``pip install fastbp[plot]``)."""
from __future__ import annotations

import os
from typing import Any

__all__ = ["plot_history"]


def plot_history(history: Any, path: Any = None, ax: Any = None) -> Any:
    """Training and validation loss (left axis, log scale) and learning rate
    (right axis) per epoch. Draws on ``ax`` if given, else on a new Figure;
    saves to ``path`` if given. Returns the Figure."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("History.plot needs matplotlib: pip install 'fastbp[plot]'") from exc
    if not history.loss:
        raise ValueError("history is empty: nothing to plot")
    if ax is None:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    epochs = range(1, len(history.loss) + 1)
    ax.plot(epochs, history.loss, label="training loss", color="tab:blue")
    if history.val_loss:
        ax.plot(epochs, history.val_loss, label="validation loss", color="tab:orange")
    if all(v > 0 for v in list(history.loss) + list(history.val_loss)):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    lr_ax = ax.twinx()
    lr_ax.plot(epochs, history.lr, label="learning rate", color="tab:green", linestyle="--")
    lr_ax.set_ylabel("learning rate")
    lines = ax.get_lines() + lr_ax.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right")
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
    return fig
