"""fastbp: fast CPU training and inference of small and medium MLPs."""
__version__ = "0.1.0"

try:
    from fastbp._kernels import activations as _check_build  # noqa: F401
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "fastbp's compiled kernels could not be imported. If you are running from a "
        "source checkout, build it first (`pip install .`), and run from outside the "
        f"source tree so that the installed package is used. Original error: {exc}"
    ) from exc

from fastbp._validation import ACTIVATIONS, LOSSES

__all__ = ["ACTIVATIONS", "LOSSES", "__version__"]
