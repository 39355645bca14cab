"""fastbp: fast CPU training and inference of small and medium multi-layer perceptrons.

The compiled core lives in :mod:`fastbp.ops` (with the pure-NumPy oracle
:mod:`fastbp.reference`); models, optimizers and schedules are built on it.
"""
import importlib.machinery as _machinery
import importlib.util as _util
import os as _os
import sys as _sys

__version__ = "0.1.0"


def _has_kernels(package_dir: str) -> bool:
    """Whether the compiled engine lies in ``package_dir``/_kernels."""
    try:
        names = _os.listdir(_os.path.join(package_dir, "_kernels"))
    except OSError:
        return False
    return any(n.startswith("network.") and n.endswith(tuple(_machinery.EXTENSION_SUFFIXES))
               for n in names)


def _installed_package() -> object:
    """The spec of an installed fastbp when this file is a source checkout's, which
    holds no compiled kernels (``python -m fastbp demo`` run in the checkout after
    ``pip install .`` finds the checkout first); else None."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    if _has_kernels(here):
        return None
    checkout = _os.path.dirname(here)
    elsewhere = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != checkout]
    spec = _machinery.PathFinder.find_spec("fastbp", elsewhere)
    if spec is None or spec.origin is None or not _has_kernels(_os.path.dirname(spec.origin)):
        return None
    return spec


_spec = _installed_package()
if _spec is not None:
    # Run the installed package in this one's place: the import system hands out
    # sys.modules["fastbp"], so every later import (submodules included) is the
    # installed one, and the checkout's sources are never mixed with it.
    _module = _util.module_from_spec(_spec)  # type: ignore[arg-type]
    _sys.modules["fastbp"] = _module
    _spec.loader.exec_module(_module)  # type: ignore[attr-defined]
else:
    try:
        from fastbp._kernels import network as _check_build  # noqa: F401
    except ImportError as exc:  # pragma: no cover - only on a broken install
        raise ImportError(
            "fastbp's compiled kernels could not be imported: install fastbp first "
            "(`pip install .` in the checkout builds and installs them). "
            f"Original error: {exc}") from exc

    from fastbp import _blas_route

    _blas_route.select()  # NumPy's bundled OpenBLAS if found, else SciPy's (FASTBP_BLAS overrides)

    from fastbp import export, ops, reference, schedules  # noqa: E402
    from fastbp._validation import ACTIVATIONS, LOSSES  # noqa: E402
    from fastbp.ensemble import Ensemble  # noqa: E402
    from fastbp.gradcheck import GradcheckResult, gradcheck  # noqa: E402
    from fastbp.io import load  # noqa: E402
    from fastbp.layers import (Activation, BatchNorm, CategoricalEmbedding, Dense,  # noqa: E402
                               Dropout, Layer, LayerNorm, LinearBatchEnsemble,
                               LinearEnsemble, ParametricActivation, PeriodicBiasEmbedding,
                               PeriodicEmbedding, PiecewiseLinearEncoding, Residual, Scale)
    from fastbp._bins import compute_bins  # noqa: E402
    from fastbp.groups import no_decay_groups  # noqa: E402
    from fastbp.models import MLP, Sequential  # noqa: E402
    from fastbp.objective import Objective  # noqa: E402
    from fastbp.optim import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSprop  # noqa: E402
    from fastbp.pruning import Hyperband, SuccessiveHalving  # noqa: E402
    from fastbp.studies import optimize_study  # noqa: E402
    from fastbp.threads import get_num_threads, set_num_threads  # noqa: E402
    from fastbp.training import (History, TrainingDiverged, TrainingInterrupted,  # noqa: E402
                                 TrainingRun)

__all__ = [
    "ACTIVATIONS", "LOSSES", "Layer", "Dense", "Activation", "Dropout", "LayerNorm", "BatchNorm", "Residual", "PeriodicEmbedding",
    "PiecewiseLinearEncoding", "compute_bins", "CategoricalEmbedding",
    "LinearBatchEnsemble", "LinearEnsemble", "Scale", "ParametricActivation",
    "PeriodicBiasEmbedding", "no_decay_groups",
    "Sequential", "MLP", "Ensemble", "Objective", "SuccessiveHalving", "Hyperband",
    "optimize_study",
    "Optimizer", "SGD", "AdaGrad", "RMSprop", "Adam", "AdamW", "History", "TrainingDiverged",
    "TrainingInterrupted", "TrainingRun", "GradcheckResult", "gradcheck", "load", "ops",
    "reference", "schedules", "set_num_threads", "get_num_threads", "__version__", "export",
]
