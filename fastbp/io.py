"""Saving and loading models without pickle.

File format (version 1): a ZIP archive holding ``header.json`` and one ``.npy``
file per array. The header names the format and its version, the
architecture (with each layer's dropout and the model's dropout seed; files
without them load with no dropout and a fresh seed), the dtype, the optional
optimizer's type, hyper-parameters and step, and the SHA-256 of every array
file. Arrays are read with ``allow_pickle=False`` and checked against the header, so a foreign, truncated,
corrupted or pickled file raises ``ValueError`` and no code from it ever runs.
Writes go to a temporary file in the same folder, then ``os.replace``: a
reader sees the complete old file or the complete new one.

An ensemble (fastbp.Ensemble.save) is a file of the same format whose header
has ``"kind": "ensemble"`` and a ``"members"`` list (each with its
``"layers"``), its arrays under ``members/<k>/layers/<i>/``; a header without
``"kind"`` is a single model.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from typing import Any, Literal, overload

import numpy as np

from fastbp import _validation as check
from fastbp.ensemble import Ensemble
from fastbp.layers import Dense
from fastbp.models import Sequential
from fastbp.optim import Optimizer, from_state_dict

__all__ = ["save", "load", "save_ensemble", "load_ensemble", "FORMAT", "VERSION"]

FORMAT = "fastbp-model"
VERSION = 1
HEADER = "header.json"
# NumPy's .npy reader/writer; typed Any because older NumPy releases leave them
# unannotated, which strict mypy would flag on those releases.
_npy_format: Any = np.lib.format
MAX_HEADER_BYTES = 1 << 20


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    _npy_format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def save(model: Any, path: Any, optimizer: Any = None) -> None:
    """Write ``model`` (and ``optimizer``'s state, if given) to ``path`` atomically."""

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastbp Sequential/MLP, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastbp optimizer or None, got {type(optimizer).__name__}")
    path = os.fspath(path)
    arrays = _layer_arrays(model, "")
    header: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "dtype": model.dtype.name, "loss": model.loss_name,
        "layers": _layer_specs(model), "dropout_seed": model.dropout_seed, "optimizer": None,
    }
    if optimizer is not None:
        make_check = [a is b for a, b in zip(optimizer.params, model.parameters())]
        if len(optimizer.params) != len(model.parameters()) or not all(make_check):
            raise ValueError("optimizer must be built over model.parameters()")
        state = optimizer.state_dict()
        header["optimizer"] = {"type": state["type"], "hyperparameters": state["hyperparameters"],
                               "step": state["step"],
                               "state_names": [sorted(s) for s in state["state"]]}
        for i, s in enumerate(state["state"]):
            for k, a in s.items():
                arrays[f"optimizer/{i}/{k}"] = a
    _write_archive(path, header, arrays)


def _layer_specs(model: Sequential) -> list[dict[str, Any]]:
    return [{"in_features": layer.in_features, "out_features": layer.out_features,
             "activation": layer.activation, "dropout": layer.dropout} for layer in model.layers]


def _layer_arrays(model: Sequential, prefix: str) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        arrays[f"{prefix}layers/{i}/W"] = layer.W
        arrays[f"{prefix}layers/{i}/b"] = layer.b
    return arrays


def save_ensemble(ensemble: Any, path: Any) -> None:
    """Write every member of ``ensemble`` to ``path`` atomically: the same format,
    with ``"kind": "ensemble"`` and one layer list per member in the header and
    the arrays under ``members/<k>/``."""

    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"ensemble must be a fastbp.Ensemble, got {type(ensemble).__name__}")
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    for k, model in enumerate(ensemble.models):
        arrays.update(_layer_arrays(model, f"members/{k}/"))
    header: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "kind": "ensemble", "dtype": ensemble.dtype.name,
        "loss": ensemble.loss_name,
        "members": [{"layers": _layer_specs(model), "dropout_seed": model.dropout_seed}
                    for model in ensemble.models],
    }
    _write_archive(path, header, arrays)


def _write_archive(path: str, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The header (with every array's SHA-256) and the arrays, as one ZIP, atomically."""
    blobs = {name + ".npy": _npy_bytes(a) for name, a in arrays.items()}
    header["sha256"] = {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr(HEADER, json.dumps(header, sort_keys=True))
                for name, b in blobs.items():
                    zf.writestr(name, b)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; keep what a plain write would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _file_mode(path: str) -> int:
    """The mode of the file being replaced, or 0666 less the umask for a new one."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fail(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid fastbp model file: {why}")


def _read_header(zf: zipfile.ZipFile, path: str) -> dict[str, Any]:
    info = zf.getinfo(HEADER)
    if info.file_size > MAX_HEADER_BYTES:
        raise _fail(path, "header too large")
    header = json.loads(zf.read(HEADER).decode("utf-8"))
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _fail(path, "not a fastbp model (wrong format tag)")
    version = header.get("version")
    if type(version) is not int or version != VERSION:  # (JSON true == 1 in Python)
        raise _fail(path, f"unsupported format version {version!r} "
                          f"(this fastbp reads version {VERSION})")
    return header


def _read_members(zf: zipfile.ZipFile, header: dict[str, Any], path: str) -> dict[str, np.ndarray]:
    """Every array of the file, each checked against its SHA-256 in the header.

    The archive must hold exactly the header and the arrays the header lists,
    so that nothing in the file goes unchecked.
    """
    sums = header.get("sha256")
    if not isinstance(sums, dict):
        raise _fail(path, "header has no checksums")
    if any(info.compress_type != zipfile.ZIP_STORED for info in zf.infolist()):
        raise _fail(path, "compressed members (fastbp stores arrays uncompressed)")
    names = set(zf.namelist())
    if names != set(sums) | {HEADER}:
        raise _fail(path, "archive members do not match the header")
    arrays = {}
    for fname, expected in sums.items():
        raw = zf.read(fname)
        if hashlib.sha256(raw).hexdigest() != expected:
            raise _fail(path, f"checksum mismatch for {fname}")
        arrays[fname[:-len(".npy")]] = _npy_format.read_array(io.BytesIO(raw), allow_pickle=False)
    return arrays


def _take(arrays: dict[str, np.ndarray], name: str, path: str, dtype: np.dtype,
          shape: tuple[int, ...]) -> np.ndarray:
    """The array ``name``, which must have the expected dtype and shape."""
    if name not in arrays:
        raise _fail(path, f"missing array {name}")
    arr = arrays.pop(name)
    if arr.dtype != dtype or arr.shape != shape:
        raise _fail(path, f"{name} is {arr.dtype} {arr.shape}, expected {dtype} {shape}")
    return np.ascontiguousarray(arr)


@overload
def load(path: Any, *, with_optimizer: Literal[False] = ...) -> Sequential: ...
@overload
def load(path: Any, *, with_optimizer: Literal[True]) -> tuple[Sequential, Optimizer | None]: ...
@overload
def load(path: Any, *, with_optimizer: bool
         ) -> Sequential | tuple[Sequential, Optimizer | None]: ...
def load(path: Any, *, with_optimizer: bool = False
         ) -> Sequential | tuple[Sequential, Optimizer | None]:
    """The model saved at ``path``; with ``with_optimizer=True``, (model, optimizer or None)."""

    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path, "r") as zf:
            header = _read_header(zf, path)
            arrays = _read_members(zf, header, path)
        dtype = check.float_dtype(header["dtype"])
        kind = header.get("kind", "model")
        if kind == "ensemble":
        
            members = header["members"]
            if not isinstance(members, list):
                raise _fail(path, "members must be a list")
            ensemble = Ensemble([_build_model(m["layers"], header["loss"], dtype, arrays,
                                              f"members/{k}/", path, m.get("dropout_seed"))
                                 for k, m in enumerate(members)])
            if arrays:
                raise _fail(path, f"unexpected arrays {sorted(arrays)}")
            return (ensemble, None) if with_optimizer else ensemble  # type: ignore[return-value]
        if kind != "model":
            raise _fail(path, f"unknown kind {kind!r} (this fastbp reads 'model' and 'ensemble')")
        model = _build_model(header["layers"], header["loss"], dtype, arrays, "", path,
                             header.get("dropout_seed"))
        opt = None
        spec = header.get("optimizer")
        if spec is not None:
            params = model.parameters()
            state = [{k: _take(arrays, f"optimizer/{i}/{k}", path, dtype, p.shape) for k in names}
                     for i, (p, names) in enumerate(zip(params, spec["state_names"]))]
            if with_optimizer:
                opt = from_state_dict(params, {"type": spec["type"], "step": spec["step"],
                                               "hyperparameters": spec["hyperparameters"],
                                               "state": state})
        if arrays:
            raise _fail(path, f"unexpected arrays {sorted(arrays)}")
    except ValueError as exc:
        if str(exc).startswith(repr(path)):
            raise
        raise _fail(path, str(exc)) from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # anything else a damaged or foreign file can provoke
        raise _fail(path, f"{type(exc).__name__}: {exc}") from exc
    return (model, opt) if with_optimizer else model


def _build_model(specs: Any, loss: Any, dtype: np.dtype, arrays: dict[str, np.ndarray],
                 prefix: str, path: str, dropout_seed: Any) -> Sequential:
    """A Sequential from the header's layer list and the arrays under ``prefix``
    (taken out of ``arrays``, each checked for dtype and shape). Files written
    before dropout existed have no "dropout" or "dropout_seed"."""

    layers = []
    for i, spec in enumerate(specs):
        n_in, n_out = spec["in_features"], spec["out_features"]
        W = _take(arrays, f"{prefix}layers/{i}/W", path, dtype, (n_in, n_out))
        b = _take(arrays, f"{prefix}layers/{i}/b", path, dtype, (n_out,))
        layer = Dense(n_in, n_out, spec["activation"], dtype=dtype,
                      dropout=spec.get("dropout", 0.0))
        layer.W, layer.b = W, b
        layers.append(layer)
    return Sequential(layers, loss, dropout_seed=dropout_seed)


def load_ensemble(path: Any) -> Ensemble:
    """The ensemble saved at ``path`` by Ensemble.save (fastbp.load reads it too; this
    is the typed spelling, and refuses a single-model file)."""

    result: Any = load(path)
    if not isinstance(result, Ensemble):
        raise ValueError(f"{os.fspath(path)!r} holds a single model, not an ensemble "
                         "(read it with fastbp.load)")
    return result
