"""The training objective's convention: ``fastbp.Objective``.

fastbp trains on the mean loss (or the weighted mean, with sample weights).
Other libraries scale and penalise it differently; to reproduce one exactly, a
model takes an ``Objective`` (``model.objective = Objective(...)``), which the
compiled engine applies inside every step. ``fastbp.sklearn`` uses it to
reproduce scikit-learn's objective; the default changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from fastbp import _validation as check

__all__ = ["Objective"]


@dataclass(frozen=True)
class Objective:
    """How the loss and its gradient are scaled and penalised in training.

    With batch weights summing to Σw (the batch size when unweighted), a step
    minimises ``loss_scale · L + ½·(l2/Σw)·Σ‖W‖²``, where L is the (weighted) mean
    loss and W runs over the weights (not the biases); its gradient with respect
    to the output is ``grad_scale · dL/d_output``, and ``(l2/Σw)·W`` is added to
    each weight's gradient. ``Objective()`` is fastbp's own (all of it skipped).

    Parameters
    ----------
    grad_scale : float, default 1.0
        Multiplies the loss's gradient with respect to the output (finite).
    loss_scale : float, default 1.0
        Multiplies the loss value that steps report (finite).
    l2 : float, default 0.0
        The L2 penalty's coefficient on the weights (finite, >= 0).
    log_loss_clip : float, default 0.0
        For the cross-entropy losses: when > 0, the reported loss value is taken
        from the probabilities clipped to [log_loss_clip, 1 - log_loss_clip]
        before the log (scikit-learn's log loss); the gradient is unchanged.
        0 <= log_loss_clip < 0.5.
    heads : int, default 1
        Score the output as ``heads`` blocks side by side (an ensemble's k outputs,
        TabM's): the last layer's width is heads·w, each block of w columns is scored
        against the row's target (w values, or a label of w classes) and the loss is
        the mean over the rows and heads (its gradient that mean's); the penalty's
        Σw stays the batch's. Targets of the last layer's full width (heads·w values
        or class probabilities a row) give each head its own instead (TabM's members
        trained on their own rows). 1: the plain loss.

    Raises
    ------
    TypeError
        A value that is not a real number.
    ValueError
        A non-finite value, l2 < 0, log_loss_clip outside [0, 0.5), or heads < 1.
    """

    grad_scale: float = 1.0
    loss_scale: float = 1.0
    l2: float = 0.0
    log_loss_clip: float = 0.0
    heads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "grad_scale", check.finite_scalar(self.grad_scale, "grad_scale"))
        object.__setattr__(self, "loss_scale", check.finite_scalar(self.loss_scale, "loss_scale"))
        object.__setattr__(self, "l2", check.finite_scalar(self.l2, "l2", low=0.0))
        object.__setattr__(self, "log_loss_clip", check.finite_scalar(
            self.log_loss_clip, "log_loss_clip", low=0.0, high=0.5, high_open=True))
        object.__setattr__(self, "heads", check.int_in_range(self.heads, "heads", 1))

    @property
    def is_default(self) -> bool:
        """Whether this is fastbp's own objective (nothing to apply)."""
        return self == Objective()

    def engine_args(self) -> tuple[float, float, float, float, int]:
        """(grad_scale, loss_scale, l2, log_loss_clip, heads), the engine's set_objective
        order (and the names a model file stores them under)."""
        return (self.grad_scale, self.loss_scale, self.l2, self.log_loss_clip, self.heads)

    def as_dict(self) -> dict[str, float | int]:
        """The fields by name (a model file's "objective")."""
        return dict(zip(("grad_scale", "loss_scale", "l2", "log_loss_clip", "heads"),
                        self.engine_args()))
