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

from fastbp import _blas_route

_blas_route.select()  # NumPy's bundled OpenBLAS if found, else SciPy's (FASTBP_BLAS overrides)

from fastbp import export, ops, reference, schedules  # noqa: E402
from fastbp._validation import ACTIVATIONS, LOSSES  # noqa: E402
from fastbp.ensemble import Ensemble  # noqa: E402
from fastbp.gradcheck import GradcheckResult, gradcheck  # noqa: E402
from fastbp.io import load  # noqa: E402
from fastbp.layers import Dense  # noqa: E402
from fastbp.models import MLP, Sequential  # noqa: E402
from fastbp.optim import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSprop  # noqa: E402
from fastbp.threads import get_num_threads, set_num_threads  # noqa: E402
from fastbp.training import History, TrainingDiverged  # noqa: E402

__all__ = [
    "ACTIVATIONS", "LOSSES", "Dense", "Sequential", "MLP", "Ensemble", "Optimizer", "SGD", "AdaGrad",
    "RMSprop", "Adam", "AdamW", "History", "TrainingDiverged", "GradcheckResult", "gradcheck",
    "load", "ops", "reference", "schedules", "set_num_threads", "get_num_threads", "__version__",
    "export",
]
