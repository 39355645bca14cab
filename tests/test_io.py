"""model.save / fastbp.load: round trips (with optimizer state); refusal of foreign,
truncated, corrupted and malicious files, none of which may execute code; atomic
replacement (the API's promise: "save(path) writes exactly one file ...").

* A pickle payload whose unpickling would create a marker file (``__reduce__``
  returning ``(open, (marker, "w"))``) is placed (a) as the whole file, (b) as a
  ``.npy`` member holding an object array inside an otherwise valid fastbp file whose
  header carries the member's correct SHA-256 (for a weight and for an optimizer state
  array), (c) as the content of ``header.json``, (d) as any ZIP member: every load
  raises ValueError and the marker never exists. A control test shows the payload
  does create the marker when unpickled.
* Random bytes, foreign ZIPs, truncations at 20 cut points, 50 random single-byte
  flips, unknown format versions, inconsistent headers, a header claiming huge layer
  sizes and DEFLATE-compressed members: each raises ValueError, never another
  exception type. (A flip in a byte that carries no data -- e.g. a ZIP timestamp --
  may load; the model loaded must then be exactly the saved one.)
* ``save`` over an existing file replaces it and leaves no ``.fastbp-*.tmp`` behind,
  also when the write fails midway (``zipfile.ZipFile.writestr``, ``os.fsync`` or
  ``os.replace`` raising): the old file is then intact, byte for byte.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastbp
from fastbp import io as fio

from conftest import DTYPES, assert_same_params, assert_state_equal, make_data

LOSSES = ("mse", "mae", "huber", "binary_cross_entropy", "cross_entropy")


def make_model(loss="mse", dtype="float64", seed=0, act="tanh", sizes=(4, 6, 5, 3)):
    model = fastbp.MLP(sizes, act, loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        layer.b[...] = rng.normal(size=layer.b.shape)
    return model


def assert_same_model(a, b):
    assert repr(a) == repr(b)
    assert a.loss_name == b.loss_name
    assert a.dtype == b.dtype
    assert a.sizes == b.sizes
    assert [la.activation for la in a.layers] == [la.activation for la in b.layers]
    assert_same_params(a, b)


def files_in(folder):
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_round_trip(tmp_path, loss, dtype):
    model = make_model(loss, dtype, act="gelu")
    path = tmp_path / "model.fastbp"
    model.save(path)
    loaded = fastbp.load(path)
    assert isinstance(loaded, fastbp.Sequential)
    assert_same_model(model, loaded)
    X, y = make_data(loss, 12, 4, 3)
    np.testing.assert_array_equal(model.forward(X), loaded.forward(X))
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    if loss in ("cross_entropy", "binary_cross_entropy"):
        np.testing.assert_array_equal(model.predict_proba(X), loaded.predict_proba(X))
    assert model.loss(X, y) == loaded.loss(X, y)
    assert files_in(tmp_path) == ["model.fastbp"]


def test_round_trip_mixed_activations_and_str_path(tmp_path):
    layers = [fastbp.Dense(3, 4, "softplus", dtype="float32", seed=1),
              fastbp.Dense(4, 4, "leaky_relu", dtype="float32", seed=2),
              fastbp.Dense(4, 2, "softmax", dtype="float32", seed=3)]
    model = fastbp.Sequential(layers, loss="huber")
    path = str(tmp_path / "mixed.bin")
    model.save(path)
    loaded = fastbp.load(path)
    assert_same_model(model, loaded)
    assert [la.activation for la in loaded.layers] == ["softplus", "leaky_relu", "softmax"]


def test_loaded_model_is_independent(tmp_path):
    model = make_model()
    model.save(tmp_path / "m")
    loaded = fastbp.load(tmp_path / "m")
    loaded.parameters()[0][...] = 0
    assert not np.all(model.parameters()[0] == 0)
    again = fastbp.load(tmp_path / "m")
    assert_same_model(model, again)


def test_load_without_optimizer_in_file(tmp_path):
    model = make_model()
    model.save(tmp_path / "m")
    loaded, opt = fastbp.load(tmp_path / "m", with_optimizer=True)
    assert opt is None
    assert_same_model(model, loaded)


OPTIMIZERS = [
    pytest.param(lambda ps: fastbp.SGD(ps, lr=0.05), id="sgd"),
    pytest.param(lambda ps: fastbp.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                       weight_decay=1e-3), id="sgd-nesterov"),
    pytest.param(lambda ps: fastbp.AdaGrad(ps, lr=0.05, eps=1e-8), id="adagrad"),
    pytest.param(lambda ps: fastbp.RMSprop(ps, lr=0.01, momentum=0.5, centered=True), id="rmsprop"),
    pytest.param(lambda ps: fastbp.Adam(ps, lr=0.01, betas=(0.8, 0.99), amsgrad=True,
                                        eps_mode="folded"), id="adam"),
    pytest.param(lambda ps: fastbp.AdamW(ps, lr=0.01, weight_decay=0.1), id="adamw"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_round_trip_with_optimizer(tmp_path, make_opt, dtype):
    model = make_model("mse", dtype)
    opt = make_opt(model.parameters())
    X, y = make_data("mse", 12, 4, 3)
    for _ in range(3):
        model.train_step(X, y, opt)
    path = tmp_path / "ckpt"
    model.save(path, optimizer=opt)
    loaded, lopt = fastbp.load(path, with_optimizer=True)
    assert type(lopt) is type(opt)
    assert_same_model(model, loaded)
    assert_state_equal(lopt.state_dict(), opt.state_dict())
    assert lopt.lr == opt.lr
    assert all(a is b for a, b in zip(lopt.params, loaded.parameters()))
    # without with_optimizer: just the model
    plain = fastbp.load(path)
    assert isinstance(plain, fastbp.Sequential)
    assert_same_model(model, plain)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_save_load_train_on_equals_train_on(tmp_path, loss):
    X, y = make_data(loss, 12, 4, 3)
    a = make_model(loss, "float64")
    opt = fastbp.Adam(a.parameters(), lr=0.01)
    for _ in range(5):
        a.train_step(X, y, opt)
    a.save(tmp_path / "ckpt", optimizer=opt)
    for _ in range(5):
        a.train_step(X, y, opt)
    b, bopt = fastbp.load(tmp_path / "ckpt", with_optimizer=True)
    for _ in range(5):
        b.train_step(X, y, bopt)
    assert_same_params(a, b)
    assert_state_equal(opt.state_dict(), bopt.state_dict())


def test_save_load_fit_on(tmp_path):
    X, y = make_data("mse", 12, 4, 3)
    a = make_model("mse", "float32")
    opt = fastbp.Adam(a.parameters(), lr=0.01)
    a.fit(X, y, epochs=2, batch_size=5, optimizer=opt, shuffle=False)
    a.save(tmp_path / "ckpt", optimizer=opt)
    a.fit(X, y, epochs=2, batch_size=5, optimizer=opt, shuffle=False)
    b, bopt = fastbp.load(tmp_path / "ckpt", with_optimizer=True)
    b.fit(X, y, epochs=2, batch_size=5, optimizer=bopt, shuffle=False)
    assert_same_params(a, b)


def test_save_with_foreign_optimizer_raises(tmp_path):
    model, other = make_model(), make_model()
    with pytest.raises(ValueError, match="optimizer"):
        model.save(tmp_path / "m", optimizer=fastbp.Adam(other.parameters()))
    assert files_in(tmp_path) == []


def test_save_wrong_types(tmp_path):
    with pytest.raises(TypeError, match="optimizer"):
        make_model().save(tmp_path / "m", optimizer="adam")
    assert files_in(tmp_path) == []


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    """A failure while the new file is written (before the rename) also leaves the old one."""
    path = tmp_path / "m.fastbp"
    old = make_model(seed=1)
    old.save(path)
    old_bytes = path.read_bytes()

    def failing_fsync(fd):
        raise OSError("simulated disk error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        make_model(seed=3).save(path)
    monkeypatch.undo()
    assert files_in(tmp_path) == ["m.fastbp"]
    assert path.read_bytes() == old_bytes


# ---------------------------------------------------------------- damaged and foreign files

def read_members(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info.filename) for info in zf.infolist()}


def write_members(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)


def header_name(members):
    names = [n for n in members if n.endswith(".json")]
    assert len(names) == 1, members.keys()
    return names[0]


def array_member(members):
    """The name of the largest .npy member (a weight matrix)."""
    return max((n for n in members if n.endswith(".npy")), key=lambda n: len(members[n]))


def rehash(members, name):
    """Update the header's SHA-256 entry for ``name`` (if the header has one)."""
    hname = header_name(members)
    header = json.loads(members[hname])
    sums = header.get("sha256")
    if isinstance(sums, dict) and name in sums:
        sums[name] = hashlib.sha256(members[name]).hexdigest()
    members[hname] = json.dumps(header).encode()


def assert_refused(path, tmp_path):
    with pytest.raises(ValueError):
        fastbp.load(path)
    with pytest.raises(ValueError):
        fastbp.load(path, with_optimizer=True)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.fastbp"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    assert_refused(path, tmp_path)


def test_random_bytes_with_zip_magic(tmp_path):
    path = tmp_path / "random.fastbp"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(5000))
    assert_refused(path, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.fastbp"
    path.write_bytes(b"")
    assert_refused(path, tmp_path)


def test_altered_array_with_valid_zip_checksum(saved, tmp_path):
    """The zip's CRC is right, the array is well formed: only the SHA-256 can tell."""
    good = saved[0]
    members = read_members(good)
    name = array_member(members)
    arr = np.lib.format.read_array(io.BytesIO(members[name]), allow_pickle=False)
    arr.reshape(-1)[arr.size // 2] += 1.0
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    members[name] = buf.getvalue()
    path = tmp_path / "altered.fastbp"
    write_members(path, members)
    with pytest.raises(ValueError, match="(?i)checksum|sha"):
        fastbp.load(path)


def test_wrong_format_tag(saved, tmp_path):
    good = saved[0]
    members = read_members(good)
    hname = header_name(members)
    header = json.loads(members[hname])
    header["format"] = "some-other-format"
    members[hname] = json.dumps(header).encode()
    path = tmp_path / "foreign.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)


def test_zip_without_header(saved, tmp_path):
    good = saved[0]
    members = read_members(good)
    del members[header_name(members)]
    path = tmp_path / "noheader.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)


def test_foreign_zip(tmp_path):
    path = tmp_path / "foreign.zip"
    write_members(path, {"readme.txt": b"hello", "data.csv": b"1,2,3\n"})
    assert_refused(path, tmp_path)


def test_header_not_json(saved, tmp_path):
    good = saved[0]
    members = read_members(good)
    members[header_name(members)] = b"\x00\xff not json"
    path = tmp_path / "bad.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "does-not-exist.fastbp")


# ---------------------------------------------------------------- no code execution

def payload_bytes(marker):
    return pickle.dumps(Payload(marker), protocol=2)


def test_pickle_as_zip_member(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.zip"
    write_members(path, {"model.pkl": payload_bytes(marker), "data.pkl": payload_bytes(marker)})
    assert_refused(path, tmp_path)
    assert not marker.exists()


def model_and_optimizer_members(members):
    npys = [n for n in members if n.endswith(".npy")]
    opt = [n for n in npys if "optim" in n]
    model = [n for n in npys if n not in opt]
    assert model and opt, npys
    return model, opt


def altered_optimizer_file(saved, tmp_path):
    """The saved file with one optimizer-state array changed (valid ZIP CRC, stale SHA-256)."""
    good = saved[0]
    members = read_members(good)
    _, opt_arrays = model_and_optimizer_members(members)
    name = opt_arrays[0]
    arr = np.lib.format.read_array(io.BytesIO(members[name]), allow_pickle=False)
    arr.reshape(-1)[0] += 1.0
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    members[name] = buf.getvalue()
    path = tmp_path / "altered-optimizer.fastbp"
    write_members(path, members)
    return path


def test_corrupted_optimizer_state_with_optimizer(saved, tmp_path):
    path = altered_optimizer_file(saved, tmp_path)
    with pytest.raises(ValueError, match="(?i)checksum|sha"):
        fastbp.load(path, with_optimizer=True)


def test_corrupted_optimizer_state_plain_load(saved, tmp_path):
    """As the API promises, load of a corrupted file raises ValueError -- also when only the model
    is asked for (the file as a whole is corrupted)."""
    path = altered_optimizer_file(saved, tmp_path)
    with pytest.raises(ValueError, match="(?i)checksum|sha"):
        fastbp.load(path)


# ---------------------------------------------------------------- pickles, damage, atomic writes

class Payload:
    """Unpickling this creates (truncates) the file at ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _model():
    model = fastbp.MLP((4, 8, 3), activation="tanh", loss="cross_entropy", seed=0)
    opt = fastbp.Adam(model.parameters(), lr=1e-2, amsgrad=True)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    for _ in range(3):
        model.train_step(X, y, opt)
    return model, opt


@pytest.fixture
def saved(tmp_path):
    model, opt = _model()
    path = tmp_path / "model.fastbp"
    model.save(path, optimizer=opt)
    return path, model, opt


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info.filename) for info in zf.infolist()}


def _write_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _rehash(members: dict[str, bytes]) -> dict[str, bytes]:
    """The members with header.json's SHA-256 table recomputed (a 'valid' forgery)."""
    header = json.loads(members["header.json"])
    header["sha256"] = {k: hashlib.sha256(v).hexdigest() for k, v in members.items()
                        if k != "header.json"}
    out = dict(members)
    out["header.json"] = json.dumps(header, sort_keys=True).encode()
    return out


def _object_npy(marker: str) -> bytes:
    buf = io.BytesIO()
    arr = np.empty(1, dtype=object)
    arr[0] = Payload(marker)
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _assert_refused(path, marker=None, **kwargs):
    with pytest.raises(ValueError):
        fastbp.load(path, **kwargs)
    if marker is not None:
        assert not os.path.exists(marker), "load executed code from the file"


def _same_model(a, b) -> bool:
    return (a.sizes == b.sizes and a.loss_name == b.loss_name and a.dtype == b.dtype
            and [la.activation for la in a.layers] == [lb.activation for lb in b.layers]
            and all(np.array_equal(p, q) for p, q in zip(a.parameters(), b.parameters())))


# ---------------------------------------------------------------- pickled content
@pytest.mark.packaging
def test_payload_works_when_unpickled(tmp_path):
    """Control: the payload is live -- unpickling it (in a child) creates the marker."""
    marker = tmp_path / "control-marker"
    data = pickle.dumps(Payload(str(marker)))
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=data, check=True, cwd=tmp_path)
    assert marker.exists()
    marker2 = tmp_path / "control-marker-npy"
    subprocess.run([sys.executable, "-c",
                    "import io, sys, numpy as np; np.load(io.BytesIO(sys.stdin.buffer.read()), "
                    "allow_pickle=True)"], input=_object_npy(str(marker2)), check=True, cwd=tmp_path)
    assert marker2.exists()


@pytest.mark.parametrize("with_optimizer", [False, True])
def test_pickle_as_whole_file(tmp_path, with_optimizer):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.fastbp"
    path.write_bytes(pickle.dumps(Payload(str(marker))))
    _assert_refused(path, marker, with_optimizer=with_optimizer)
    # and with pickle protocol 0 (text), and a pickle prefixed to a valid zip
    path.write_bytes(pickle.dumps(Payload(str(marker)), protocol=0))
    _assert_refused(path, marker, with_optimizer=with_optimizer)


@pytest.mark.parametrize("member", ["layers/0/W.npy", "layers/1/b.npy",
                                    "optimizer/0/exp_avg.npy", "optimizer/3/max_exp_avg_sq.npy"])
@pytest.mark.parametrize("with_optimizer", [False, True])
def test_pickle_as_npy_member_with_valid_checksum(saved, tmp_path, member, with_optimizer):
    path, _, _ = saved
    marker = tmp_path / "marker"
    members = _members(path)
    assert member in members
    members[member] = _object_npy(str(marker))
    forged = _rehash(members)
    evil = tmp_path / "evil.fastbp"
    _write_zip(evil, forged)
    # the forgery is otherwise valid: the checksum of the evil member matches the header
    header = json.loads(_members(evil)["header.json"])
    assert header["sha256"][member] == hashlib.sha256(_object_npy(str(marker))).hexdigest()
    _assert_refused(evil, marker, with_optimizer=with_optimizer)


def test_pickle_as_header(saved, tmp_path):
    path, _, _ = saved
    marker = tmp_path / "marker"
    members = _members(path)
    members["header.json"] = pickle.dumps(Payload(str(marker)))
    evil = tmp_path / "evil.fastbp"
    _write_zip(evil, members)
    _assert_refused(evil, marker)
    _assert_refused(evil, marker, with_optimizer=True)


def test_forged_but_harmless_file_loads(saved, tmp_path):
    """Control for the forgery helper: re-zipping with recomputed checksums loads fine."""
    path, model, opt = saved
    again = tmp_path / "again.fastbp"
    _write_zip(again, _rehash(_members(path)))
    loaded, lopt = fastbp.load(again, with_optimizer=True)
    assert _same_model(loaded, model) and lopt.step_count == opt.step_count


# ---------------------------------------------------------------- damaged files
def test_truncated_at_20_cut_points(saved, tmp_path):
    path, _, _ = saved
    data = path.read_bytes()
    n = len(data)
    cuts = sorted({0, 1, 4, 22, 30, 100, n - 100, n - 1, n - 22, n - 23, n // 2}
                  | {int(c) for c in np.linspace(2, n - 2, 11)})
    assert len(cuts) >= 20
    for i, cut in enumerate(cuts[:20]):
        broken = tmp_path / f"cut{i}.fastbp"
        broken.write_bytes(data[:cut])
        for flag in (False, True):
            try:
                fastbp.load(broken, with_optimizer=flag)
            except ValueError:
                continue
            except Exception as exc:       # noqa: BLE001
                pytest.fail(f"cut at {cut}/{n}: {type(exc).__name__}: {exc}")
            pytest.fail(f"a file cut at byte {cut} of {n} loaded")


def test_50_random_byte_flips(saved, tmp_path):
    path, model, opt = saved
    data = path.read_bytes()
    rng = np.random.default_rng(2024)
    positions = rng.choice(len(data), size=50, replace=False)
    refused = loaded_same = 0
    for i, pos in enumerate(positions):
        flipped = bytearray(data)
        flipped[pos] ^= int(rng.integers(1, 256))
        broken = tmp_path / f"flip{i}.fastbp"
        broken.write_bytes(bytes(flipped))
        try:
            got, gopt = fastbp.load(broken, with_optimizer=True)
        except ValueError:
            refused += 1
            continue
        except Exception as exc:           # noqa: BLE001
            pytest.fail(f"flip at byte {pos}: {type(exc).__name__}: {exc}")
        # a byte that carries no data (e.g. a timestamp): the model must be unchanged
        assert _same_model(got, model), f"flip at byte {pos} loaded a different model"
        assert gopt.hyperparameters() == opt.hyperparameters() and gopt.step_count == opt.step_count
        assert all(np.array_equal(a, b) for s, t in zip(gopt.state, opt.state)
                   for a, b in zip(s.values(), t.values()))
        loaded_same += 1
    print(f"\n50 byte flips: {refused} refused with ValueError, {loaded_same} harmless")
    assert refused >= 40


@pytest.mark.parametrize("version", [0, 2, 999, -1, "1", None, [1], {"v": 1}, 1.5, "missing",
                                     True])  # (JSON true == 1 in Python: must still be refused)
def test_unknown_format_versions(saved, tmp_path, version):
    path, _, _ = saved
    members = _members(path)
    header = json.loads(members["header.json"])
    if version == "missing":
        del header["version"]
    else:
        header["version"] = version
    members["header.json"] = json.dumps(header).encode()
    bad = tmp_path / "version.fastbp"
    _write_zip(bad, members)
    with pytest.raises(ValueError, match="version"):
        fastbp.load(bad)


@pytest.mark.parametrize("edit", ["format", "dtype", "loss", "activation", "layers", "sha256",
                                  "optimizer_type", "state_names", "hyper"])
def test_inconsistent_headers(saved, tmp_path, edit):
    path, _, _ = saved
    members = _members(path)
    header = json.loads(members["header.json"])
    if edit == "format":
        header["format"] = "keras"
    elif edit == "dtype":
        header["dtype"] = "object"
    elif edit == "loss":
        header["loss"] = "__import__('os')"
    elif edit == "activation":
        header["layers"][0]["activation"] = {"$eval": "1"}
    elif edit == "layers":
        header["layers"] = header["layers"][:1]
    elif edit == "sha256":
        header["sha256"] = list(header["sha256"])
    elif edit == "optimizer_type":
        header["optimizer"]["type"] = "__builtins__"
    elif edit == "state_names":
        header["optimizer"]["state_names"][0] = ["exp_avg", "../../etc/passwd"]
    elif edit == "hyper":
        header["optimizer"]["hyperparameters"]["lr"] = "NaN"
    members["header.json"] = json.dumps(header).encode()
    bad = tmp_path / "edited.fastbp"
    _write_zip(bad, members)
    _assert_refused(bad, with_optimizer=True)


@pytest.mark.parametrize("claim", [10**9, 2**31, 2**62, 10**30])
def test_header_claiming_huge_layers_with_tiny_arrays(saved, tmp_path, claim):
    path, _, _ = saved
    members = _members(path)
    header = json.loads(members["header.json"])
    header["layers"][0]["in_features"] = claim
    header["layers"][0]["out_features"] = claim
    members["header.json"] = json.dumps(header).encode()
    bad = tmp_path / "huge.fastbp"
    _write_zip(bad, members)
    _assert_refused(bad)
    _assert_refused(bad, with_optimizer=True)


@pytest.mark.parametrize("shape", [(10**6, 10**6), (2**40, 8), (30_000, 30_000)])
def test_npy_headers_claiming_huge_shapes(saved, tmp_path, shape):
    """Header and .npy both claim a huge first layer; the data is a few bytes."""
    path, _, _ = saved
    members = _members(path)
    header = json.loads(members["header.json"])
    header["layers"][0]["in_features"], header["layers"][0]["out_features"] = shape
    header["layers"][1]["in_features"] = shape[1]
    members["header.json"] = json.dumps(header).encode()
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    members["layers/0/W.npy"] = buf.getvalue() + b"\x00" * 64
    bad = tmp_path / "huge-npy.fastbp"
    _write_zip(bad, _rehash(members))
    _assert_refused(bad)


@pytest.mark.parametrize("which", ["all", "one_array", "header"])
def test_deflate_compressed_members(saved, tmp_path, which):
    path, _, _ = saved
    members = _members(path)
    bad = tmp_path / "deflated.fastbp"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            deflate = which == "all" or (which == "one_array" and name == "layers/1/W.npy") \
                or (which == "header" and name == "header.json")
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if deflate
                        else zipfile.ZIP_STORED)
    with zipfile.ZipFile(bad) as zf:       # the archive itself is intact
        assert zf.testzip() is None
    _assert_refused(bad)


def test_extra_and_missing_members(saved, tmp_path):
    path, _, _ = saved
    members = _members(path)
    extra = dict(members, **{"notes.txt": b"hello"})
    bad = tmp_path / "extra.fastbp"
    _write_zip(bad, extra)
    _assert_refused(bad)
    missing = {k: v for k, v in members.items() if k != "layers/1/b.npy"}
    _write_zip(bad, missing)
    _assert_refused(bad)
    _write_zip(bad, _rehash(missing))          # checksums consistent, array still missing
    _assert_refused(bad)


# ---------------------------------------------------------------- atomic save
def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".fastbp-")
                  or p.name.endswith(".tmp"))


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "m.fastbp"
    path.write_bytes(b"an old file that is not a model")
    model, opt = _model()
    model.save(path, optimizer=opt)
    assert _same_model(fastbp.load(path), model)
    other = fastbp.MLP((2, 5, 1), seed=1)
    other.save(path)
    assert _same_model(fastbp.load(path), other)
    assert _temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fastbp"]


@pytest.mark.parametrize("fail_at", [1, 2, 5, 100])
def test_failed_writestr_keeps_old_file(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "m.fastbp"
    old_model, old_opt = _model()
    old_model.save(path, optimizer=old_opt)
    old = path.read_bytes()
    new_model = fastbp.MLP((4, 16, 16, 3), loss="cross_entropy", seed=7)
    original = zipfile.ZipFile.writestr
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == fail_at:
            raise OSError("disk full (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    n_members = 1 + 2 * len(new_model.layers)
    if fail_at > n_members:
        new_model.save(path)                  # never reaches the failing call
        monkeypatch.undo()
        assert _same_model(fastbp.load(path), new_model)
    else:
        with pytest.raises(OSError, match="simulated"):
            new_model.save(path)
        monkeypatch.undo()
        assert path.read_bytes() == old, "a failed save must leave the old file intact"
        assert _same_model(fastbp.load(path), old_model)
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("exc", [OSError("rename failed"), KeyboardInterrupt()])
def test_failed_replace_keeps_old_file(tmp_path, monkeypatch, exc):
    path = tmp_path / "m.fastbp"
    old_model, _ = _model()
    old_model.save(path)
    old = path.read_bytes()

    def failing_replace(src, dst):
        raise exc

    monkeypatch.setattr(fio.os, "replace", failing_replace)
    with pytest.raises(type(exc)):
        fastbp.MLP((3, 3), seed=0).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert _temporaries(tmp_path) == []


def test_save_to_a_new_file_leaves_no_temporaries(tmp_path):
    model, opt = _model()
    for i in range(5):
        model.save(tmp_path / f"m{i}.fastbp", optimizer=opt if i % 2 else None)
    assert _temporaries(tmp_path) == []
    assert len(list(tmp_path.iterdir())) == 5


def test_saved_file_has_the_permissions_of_a_normally_created_file(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "m.fastbp"
    path.write_bytes(b"old")
    before = path.stat().st_mode & 0o777
    fastbp.MLP((2, 1), seed=0).save(path)
    assert path.stat().st_mode & 0o777 == before == (0o666 & ~umask)
