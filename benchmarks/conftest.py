"""pytest-benchmark suite: one group per workload (W1–W11 of fastbp.bench),
parametrized over implementation and BLAS thread count.

Run from the checkout against the installed package:

    pytest benchmarks --benchmark-only --benchmark-group-by=group
    pytest benchmarks --benchmark-only --compare-torch     # adds PyTorch (if installed)
    pytest benchmarks --benchmark-only --compare-jax       # adds JAX + optax (if installed)
"""
import pytest


def pytest_addoption(parser):
    parser.addoption("--compare-torch", action="store_true", default=False,
                     help="also time PyTorch (eager and fused Adam); skipped if not installed")
    parser.addoption("--compare-jax", action="store_true", default=False,
                     help="also time the jitted JAX step (jax + optax); skipped if not installed")


IMPLEMENTATIONS = ("fastbp", "reference", "torch", "torch-fused", "jax")
THREADS = (1, 2)


@pytest.fixture
def torch_enabled(request):
    if not request.config.getoption("--compare-torch"):
        pytest.skip("PyTorch comparisons need --compare-torch")
    return pytest.importorskip("torch")


@pytest.fixture
def jax_enabled(request):
    if not request.config.getoption("--compare-jax"):
        pytest.skip("JAX comparisons need --compare-jax")
    pytest.importorskip("optax")
    return pytest.importorskip("jax")
