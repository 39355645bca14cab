"""Typing of the installed package: mypy --strict on tests/typed_usage.py, mypy on
the fastbp package with pyproject's [tool.mypy], and mypy.stubtest of every
compiled module against its .pyi stub (allowlist: tests/stubtest_allowlist.txt).

mypy runs in a subprocess from a temporary directory, with PYTHONPATH and
MYPYPATH removed, so that it resolves fastbp as a user's type checker would:
from site-packages (the directory of ``fastbp.__file__``), never from a source
checkout. When fastbp is not installed that way (a source tree or an editable
install), the mypy tests are skipped; they are skipped too without mypy.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import pkgutil
import runpy
import subprocess
import sys
import sysconfig
from pathlib import Path
import pytest

import fastbp
import fastbp._kernels

TESTS = Path(__file__).resolve().parent
TYPED_USAGE = TESTS / "typed_usage.py"
ALLOWLIST = TESTS / "stubtest_allowlist.txt"
PYPROJECT = TESTS.parent / "pyproject.toml"
PACKAGE_DIR = Path(fastbp.__file__).resolve().parent

def compiled_modules() -> list[str]:
    """Every extension module in fastbp._kernels, as imported by the tests."""
    names = []
    for info in pkgutil.iter_modules(fastbp._kernels.__path__):
        name = f"fastbp._kernels.{info.name}"
        spec = importlib.util.find_spec(name)
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            names.append(name)
    return sorted(names)


def test_every_compiled_module_has_a_stub():
    modules = compiled_modules()
    assert {m.rsplit(".", 1)[1] for m in modules} >= {"_blas", "activations", "dense", "losses",
                                                      "optim", "network"}
    for name in modules:
        origin = importlib.util.find_spec(name).origin
        stub = Path(origin).parent / (name.rsplit(".", 1)[1] + ".pyi")
        assert stub.is_file(), f"{name} ({origin}) has no stub beside it"
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_typed_usage_runs(capsys):
    """The typed example is also a working program."""
    runpy.run_path(str(TYPED_USAGE), run_name="__main__")
    assert "kernels: loss" in capsys.readouterr().out


def _installed() -> bool:
    """fastbp comes from an installed, non-editable distribution (site-packages)."""
    prefixes = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    return any(prefix in PACKAGE_DIR.parents for prefix in prefixes)


class Runner:
    """Runs ``python <args>`` from an empty directory without PYTHONPATH/MYPYPATH."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.cache = str(workdir / ".mypy_cache")  # shared by the mypy runs (one at a time)
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=self.workdir, env=self.env, text=True,
                              capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """A Runner that sees the installed fastbp (the one these tests import)."""
    pytest.importorskip("mypy")
    if not _installed():
        pytest.skip(f"fastbp is imported from {PACKAGE_DIR}, not from an installed package: "
                    "install it (pip install .) and run `pytest`, which keeps the checkout off sys.path")
    workdir = tmp_path_factory.mktemp("typing")
    # An empty config here keeps any user-level mypy config out of the strict run.
    (workdir / "mypy.ini").write_text("[mypy]\n")
    runner = Runner(workdir)
    seen = runner("-c", "import fastbp; print(fastbp.__file__)")
    assert seen.returncode == 0, seen.stderr
    assert Path(seen.stdout.strip()).resolve().parent == PACKAGE_DIR, (
        f"a subprocess imports fastbp from {seen.stdout.strip()}, the tests from {PACKAGE_DIR}")
    return runner


def _report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"


@pytest.mark.packaging
def test_typed_usage_passes_mypy_strict(run):
    result = run("-m", "mypy", "--strict", "--cache-dir", run.cache, str(TYPED_USAGE))
    assert result.returncode == 0, _report(result)


@pytest.mark.packaging
def test_installed_package_passes_mypy(run):
    if not PYPROJECT.is_file() or "[tool.mypy]" not in PYPROJECT.read_text(encoding="utf-8"):
        pytest.skip(f"no [tool.mypy] configuration at {PYPROJECT}")
    result = run("-m", "mypy", "--config-file", str(PYPROJECT), "--cache-dir", run.cache,
                 "-p", "fastbp")
    assert result.returncode == 0, _report(result)


@pytest.mark.packaging
def test_stubs_match_compiled_modules(run):
    # Allowlist entries differ between Cython versions (see the file's header).
    result = run("-m", "mypy.stubtest", "--allowlist", str(ALLOWLIST), "--ignore-unused-allowlist",
                 *compiled_modules())
    assert result.returncode == 0, _report(result)
