"""Every public class and function documents itself (numpydoc): a docstring, and a
"Parameters" section naming every parameter when it takes any; no docstring or
comment of the installed package refers to a file the repository does not hold."""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import fastbp

MODULES = ["fastbp", "fastbp.ops", "fastbp.reference", "fastbp.schedules", "fastbp.export",
           "fastbp.training", "fastbp.optim"]
try:
    importlib.import_module("sklearn")
except ImportError:  # pragma: no cover - scikit-learn is optional
    pass
else:
    MODULES.append("fastbp.sklearn")

SECTION = re.compile(r"^\s*Parameters\n\s*-{10}\s*$", re.MULTILINE)


def _params(func):
    """The named parameters of a callable, self/cls and *args/**kwargs left out."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.name not in ("self", "cls")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _check(where, doc, params):
    assert doc and doc.strip(), f"{where} has no docstring"
    if params:
        assert SECTION.search(doc), f"{where} takes {params} but has no Parameters section"
        missing = [p for p in params if not re.search(rf"\b{re.escape(p)}\b", doc)]
        assert not missing, f"{where}'s docstring does not mention {missing}"


def _ours(cls):
    return cls.__module__.split(".")[0] == "fastbp"


def _public_objects():
    """(label, object) of every public class and function in the modules' __all__."""
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and _ours(obj):
                yield f"{name}.{attr}", obj


def _members(cls):
    """(label, docstring, parameters) of the class and of its public methods and
    properties, fastbp's base classes' included."""
    init = cls.__init__
    own_init = any("__init__" in vars(k) for k in cls.__mro__ if _ours(k))
    yield cls.__qualname__, cls.__doc__, _params(init) if own_init else []
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_"):
                continue
            label = f"{klass.__qualname__}.{name}"
            if isinstance(attr, property):
                yield label, attr.fget.__doc__, []   # a property takes no arguments
                continue
            bound = getattr(klass, name)
            if callable(bound) and not inspect.isclass(bound):
                yield label, bound.__doc__, _params(bound)


OBJECTS = sorted(dict(_public_objects()).items())


@pytest.mark.parametrize("label, obj", OBJECTS, ids=[label for label, _ in OBJECTS])
def test_public_object_is_documented(label, obj):
    if inspect.isclass(obj):
        for where, doc, params in _members(obj):
            _check(f"{label} ({where})", doc, params)
    else:
        _check(label, obj.__doc__, _params(obj))


def test_the_check_notices_a_missing_docstring():
    def documented(x):
        """Something.

        Parameters
        ----------
        x : int
            A number.
        """

    def bare(x):
        return x

    _check("documented", documented.__doc__, _params(documented))
    with pytest.raises(AssertionError, match="no docstring"):
        _check("bare", bare.__doc__, _params(bare))
    with pytest.raises(AssertionError, match="no Parameters section"):
        _check("one line", "Something.", ["x"])


def test_no_reference_to_a_missing_file():
    package = Path(fastbp.__file__).resolve().parent
    offenders = [str(path.relative_to(package)) for path in sorted(package.rglob("*.py"))
                 if "API.md" in path.read_text(encoding="utf-8")]
    assert not offenders, f"these files refer to API.md: {offenders}"
