"""fastbp: fast CPU training and inference of small and medium multi-layer perceptrons.

The compiled core lives in :mod:`fastbp.ops` (with the pure-NumPy oracle
:mod:`fastbp.reference`); models, optimizers and schedules are built on it.
"""
__version__ = "0.1.0"

try:
    from fastbp._kernels import activations as _check_build  # noqa: F401
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "fastbp's compiled kernels could not be imported. If you are running from a "
        "source checkout, build it first (`pip install .`), and run from outside the "
        f"source tree so that the installed package is used. Original error: {exc}"
    ) from exc

from fastbp import export, ops, reference, schedules
from fastbp._validation import ACTIVATIONS, LOSSES
from fastbp.ensemble import Ensemble
from fastbp.gradcheck import GradcheckResult, gradcheck
from fastbp.io import load
from fastbp.layers import Dense
from fastbp.models import MLP, Sequential
from fastbp.optim import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSprop
from fastbp.threads import get_num_threads, set_num_threads
from fastbp.training import History, TrainingDiverged

__all__ = [
    "ACTIVATIONS", "LOSSES", "Dense", "Sequential", "MLP", "Ensemble", "Optimizer", "SGD", "AdaGrad",
    "RMSprop", "Adam", "AdamW", "History", "TrainingDiverged", "GradcheckResult", "gradcheck",
    "load", "ops", "reference", "schedules", "set_num_threads", "get_num_threads", "__version__",
    "export",
]
