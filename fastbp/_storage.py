"""Files, knowing nothing of models: atomic writes and the checksummed archive.

``atomic_write`` is the one way fastbp writes a file (model files, ONNX graphs,
generated C): the bytes go to a new temporary file in the target's folder,
created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``: a name planted there, a
symlink included, is never opened) with the mode a plain ``open`` would give
(0666 less the process's umask, applied by the kernel; the old file's mode when
one is replaced), flushed to disk, then renamed over the target with
``os.replace``: a reader sees the complete old file or the complete new one.
A failed or interrupted write removes its temporary file; temporary files left
by a process that was killed (SIGKILL, power loss) are removed by the next
write into the same folder once their process is gone.

The archive (format ``fastbp-model``, version 1): a ZIP file, stored
uncompressed, holding ``header.json`` and one ``.npy`` file per array. The
header names the format and version, holds whatever the writer describes (a
model's layers, an ensemble's members, a training state) and the SHA-256 of
every array file. Reading checks the format, the version, that the archive
holds exactly the header and the arrays it lists, and every checksum, and
reads arrays with ``allow_pickle=False``: a foreign, truncated, corrupted or
pickled file raises ``ValueError`` and no code from it ever runs. The header
may be at most ``header_limit(entries)`` bytes, a bound that grows with the
number of arrays (so that an ensemble of any size that fits in a ZIP file
loads) while a file cannot make the reader parse more JSON than its arrays
justify.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import zipfile
from typing import Any, Callable

import numpy as np

__all__ = ["atomic_write", "write_archive", "read_archive", "FORMAT", "VERSION",
           "header_limit"]

FORMAT = "fastbp-model"
VERSION = 1
HEADER = "header.json"
# NumPy's .npy reader/writer; typed Any because older NumPy releases leave them
# unannotated, which strict mypy would flag on those releases.
_npy_format: Any = np.lib.format

#: the header's size limit: a base, and this much more per array in the archive
#: (a model's layer spec and an array's checksum line take about 150 bytes)
HEADER_BASE_BYTES = 1 << 20
HEADER_BYTES_PER_ENTRY = 4096

# The temporary files of atomic_write: ".<target name>.<pid>.<random>.fastbp-tmp".
_TMP_SUFFIX = ".fastbp-tmp"
_TMP = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{16}" + re.escape(_TMP_SUFFIX) + r"\Z")


class _Invalid(Exception):
    """Raised inside read_archive for a check that failed; read_archive turns it into a
    ValueError naming the file (a private type, so no other error is mistaken for it)."""


def header_limit(entries: int) -> int:
    """The largest header (bytes) an archive of ``entries`` array files may have."""
    return HEADER_BASE_BYTES + HEADER_BYTES_PER_ENTRY * entries


def _file_mode(path: str) -> int | None:
    """The permission bits of the file being replaced, or None for a new file."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True   # someone else's process, or unknowable: leave its file alone
    return True


def _remove_stale(folder: str, target: str) -> None:
    """Temporary files of earlier writes of ``target`` whose process is gone."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = _TMP.match(name)
        if m and m.group("target") == target and not _pid_alive(int(m.group("pid"))):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def atomic_write(path: Any, write: Callable[[Any], None] | bytes) -> None:
    """Write a file at ``path`` atomically: ``write`` is the bytes, or a callable that
    writes them to the binary file object it is given. See the module docstring."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"path must be a non-empty file path, got {path!r}")
    folder, target = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no such directory: {folder!r} (for {path!r})")
    if os.path.isdir(path):
        raise IsADirectoryError(f"path is a directory: {path!r}")
    _remove_stale(folder, target)
    mode = _file_mode(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    # A long target name is shortened in the temporary's name (the name limit is the
    # folder's, usually 255 bytes); the pid and the random part keep it unique.
    short = target if len(target.encode()) <= 120 else target[:40] + "~" + \
        hashlib.sha256(target.encode()).hexdigest()[:16]
    while True:
        tmp = os.path.join(folder, f".{short}.{os.getpid()}.{secrets.token_hex(8)}{_TMP_SUFFIX}")
        try:
            fd = os.open(tmp, flags, 0o666)   # the kernel applies the umask
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(write, (bytes, bytearray, memoryview)):
                fh.write(write)
            else:
                write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)   # a replaced file keeps its permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    _npy_format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_archive(path: Any, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The header (with the format, version and every array's SHA-256 added) and the
    arrays, as one archive at ``path``, atomically."""
    blobs = {name + ".npy": _npy_bytes(a) for name, a in arrays.items()}
    header = dict(header, format=FORMAT, version=VERSION,
                  sha256={name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()})
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    if len(text) > header_limit(len(blobs)):
        raise ValueError(f"the file's header would take {len(text)} bytes, more than the "
                         f"{header_limit(len(blobs))} fastbp.load reads for {len(blobs)} arrays")

    def write(fh: Any) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr(HEADER, text)
            for name, b in blobs.items():
                zf.writestr(name, b)

    atomic_write(path, write)


def _invalid(path: Any, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid fastbp model file: {why}")


def read_archive(path: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays by name) of the archive at ``path``, every check passed.

    FileNotFoundError, PermissionError and IsADirectoryError pass through;
    anything else wrong with the file is a ValueError naming it."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    try:
        with zipfile.ZipFile(path, "r") as zf:
            infos = zf.infolist()
            if any(info.compress_type != zipfile.ZIP_STORED for info in infos):
                raise _Invalid("compressed members (fastbp stores arrays uncompressed)")
            info = zf.getinfo(HEADER)
            if info.file_size > header_limit(len(infos) - 1):
                raise _Invalid("header too large")
            header = json.loads(zf.read(HEADER).decode("utf-8"))
            _check_header(header)
            sums = header["sha256"]
            names = set(zf.namelist())
            if len(names) != len(infos) or names != set(sums) | {HEADER}:
                raise _Invalid("archive members do not match the header")
            arrays = {}
            for fname, expected in sums.items():
                raw = zf.read(fname)
                if hashlib.sha256(raw).hexdigest() != expected:
                    raise _Invalid(f"checksum mismatch for {fname}")
                arrays[fname[:-len(".npy")]] = _npy_format.read_array(io.BytesIO(raw),
                                                                      allow_pickle=False)
    except _Invalid as exc:
        raise _invalid(path, str(exc)) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # anything else a damaged or foreign file can provoke
        raise _invalid(path, f"{type(exc).__name__}: {exc}") from exc
    return header, arrays


def _check_header(header: Any) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Invalid("not a fastbp model (wrong format tag)")
    version = header.get("version")
    if type(version) is not int or version != VERSION:  # (JSON true == 1 in Python)
        raise _Invalid(f"unsupported format version {version!r} "
                       f"(this fastbp reads version {VERSION})")
    sums = header.get("sha256")
    if not isinstance(sums, dict) or not all(isinstance(k, str) and k.endswith(".npy")
                                             and isinstance(v, str) for k, v in sums.items()):
        raise _Invalid("header has no valid checksums")


def take(arrays: dict[str, np.ndarray], name: str, dtype: np.dtype,
         shape: tuple[int, ...]) -> np.ndarray:
    """The array ``name`` (removed from ``arrays``), which must have the expected dtype
    and shape; a ValueError naming it otherwise."""
    if name not in arrays:
        raise ValueError(f"missing array {name}")
    arr = arrays.pop(name)
    if arr.dtype != dtype or arr.shape != tuple(shape):
        raise ValueError(f"{name} is {arr.dtype} {arr.shape}, expected {dtype} {tuple(shape)}")
    return np.ascontiguousarray(arr)
