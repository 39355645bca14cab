"""pytest-benchmark suite: one group per workload (W1–W8 of fastbp.bench),
parametrized over implementation and BLAS thread count.

Run from the checkout against the installed package:

    pytest benchmarks --benchmark-only --benchmark-group-by=group
    pytest benchmarks --benchmark-only --compare-torch     # adds PyTorch (if installed)
"""
import pytest


def pytest_addoption(parser):
    parser.addoption("--compare-torch", action="store_true", default=False,
                     help="also time PyTorch (eager and fused Adam); skipped if not installed")


IMPLEMENTATIONS = ("fastbp", "reference", "torch", "torch-fused")
THREADS = (1, 2)


@pytest.fixture
def torch_enabled(request):
    if not request.config.getoption("--compare-torch"):
        pytest.skip("PyTorch comparisons need --compare-torch")
    return pytest.importorskip("torch")
