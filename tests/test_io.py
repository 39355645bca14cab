"""Tests for model.save / fastbp.load: round trips (with optimizer state), atomic
writes, and refusal of foreign, truncated, corrupted and malicious files — none of
which may execute code (API.md: "save(path) writes exactly one file ...")."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastbp

LOSSES = ("mse", "mae", "huber", "binary_cross_entropy", "cross_entropy")
DTYPES = ["float32", "float64"]


def make_model(loss="mse", dtype="float64", seed=0, act="tanh", sizes=(4, 6, 5, 3)):
    model = fastbp.MLP(sizes, act, loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        layer.b[...] = rng.normal(size=layer.b.shape)
    return model


def data(loss="mse", n=12, n_in=4, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, size=n)
    elif loss == "binary_cross_entropy":
        y = rng.uniform(size=(n, n_out))
    else:
        y = rng.normal(size=(n, n_out))
    return X, y


def assert_same_model(a, b):
    assert repr(a) == repr(b)
    assert a.loss_name == b.loss_name
    assert a.dtype == b.dtype
    assert a.sizes == b.sizes
    assert [la.activation for la in a.layers] == [la.activation for la in b.layers]
    pa, pb = a.parameters(), b.parameters()
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def assert_state_equal(a, b):
    assert a["type"] == b["type"]
    assert a["step"] == b["step"]
    assert a["hyperparameters"] == b["hyperparameters"]
    assert len(a["state"]) == len(b["state"])
    for sa, sb in zip(a["state"], b["state"]):
        assert set(sa) == set(sb)
        for k in sa:
            assert np.asarray(sa[k]).dtype == np.asarray(sb[k]).dtype
            np.testing.assert_array_equal(sa[k], sb[k])


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
    X, y = data(loss)
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
    X, y = data()
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
    X, y = data(loss)
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
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa, pb)
    assert_state_equal(opt.state_dict(), bopt.state_dict())


def test_save_load_fit_on(tmp_path):
    X, y = data()
    a = make_model("mse", "float32")
    opt = fastbp.Adam(a.parameters(), lr=0.01)
    a.fit(X, y, epochs=2, batch_size=5, optimizer=opt, shuffle=False)
    a.save(tmp_path / "ckpt", optimizer=opt)
    a.fit(X, y, epochs=2, batch_size=5, optimizer=opt, shuffle=False)
    b, bopt = fastbp.load(tmp_path / "ckpt", with_optimizer=True)
    b.fit(X, y, epochs=2, batch_size=5, optimizer=bopt, shuffle=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa, pb)


def test_save_with_foreign_optimizer_raises(tmp_path):
    model, other = make_model(), make_model()
    with pytest.raises(ValueError, match="optimizer"):
        model.save(tmp_path / "m", optimizer=fastbp.Adam(other.parameters()))
    assert files_in(tmp_path) == []


def test_save_wrong_types(tmp_path):
    with pytest.raises(TypeError, match="optimizer"):
        make_model().save(tmp_path / "m", optimizer="adam")
    assert files_in(tmp_path) == []


# ---------------------------------------------------------------- one file, atomic

def test_single_file_no_temporaries(tmp_path):
    model = make_model()
    opt = fastbp.Adam(model.parameters())
    model.save(tmp_path / "a.fastbp", optimizer=opt)
    assert files_in(tmp_path) == ["a.fastbp"]
    assert (tmp_path / "a.fastbp").is_file()
    assert zipfile.is_zipfile(tmp_path / "a.fastbp")       # README: one ZIP file


def test_overwrite_replaces_old_file(tmp_path):
    path = tmp_path / "m.fastbp"
    old, new = make_model(seed=1), make_model(seed=2, sizes=(4, 3))
    old.save(path)
    new.save(path)
    assert files_in(tmp_path) == ["m.fastbp"]
    assert_same_model(new, fastbp.load(path))


def test_failed_overwrite_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.fastbp"
    old, new = make_model(seed=1), make_model(seed=2, sizes=(4, 8, 3))
    old.save(path)
    old_bytes = path.read_bytes()

    def failing_replace(src, dst, *args, **kwargs):
        raise OSError("simulated crash during replace")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        new.save(path)
    monkeypatch.undo()
    assert files_in(tmp_path) == ["m.fastbp"]         # no temporary file left behind
    assert path.read_bytes() == old_bytes
    assert_same_model(old, fastbp.load(path))


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

@pytest.fixture
def saved(tmp_path):
    """A valid file with a model and Adam state, and the model."""
    model = make_model("mse", "float64", sizes=(4, 5, 3))
    opt = fastbp.Adam(model.parameters(), lr=0.01)
    X, y = data()
    model.train_step(X, y, opt)
    path = tmp_path / "good.fastbp"
    model.save(path, optimizer=opt)
    return path, model


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


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_truncated_file(saved, tmp_path, fraction):
    good, _ = saved
    raw = good.read_bytes()
    path = tmp_path / "truncated.fastbp"
    path.write_bytes(raw[: int(len(raw) * fraction)])
    assert_refused(path, tmp_path)


def test_flipped_byte_in_array(saved, tmp_path):
    """One flipped byte in the middle of a stored array's data."""
    good, _ = saved
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = max((i for i in zf.infolist() if i.filename.endswith(".npy")),
                   key=lambda i: i.file_size)
        assert info.compress_type == zipfile.ZIP_STORED
    name_len = int.from_bytes(raw[info.header_offset + 26: info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28: info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    pos = start + info.file_size - 8 * 5          # inside the array data, not the npy header
    raw[pos] ^= 0x10
    path = tmp_path / "flipped.fastbp"
    path.write_bytes(bytes(raw))
    assert_refused(path, tmp_path)


def test_altered_array_with_valid_zip_checksum(saved, tmp_path):
    """The zip's CRC is right, the array is well formed: only the SHA-256 can tell."""
    good, _ = saved
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


def test_rewritten_but_unchanged_file_loads(saved, tmp_path):
    """Control for the tests below: re-zipping the members unchanged gives a valid file."""
    good, model = saved
    path = tmp_path / "copy.fastbp"
    members = read_members(good)
    rehash(members, array_member(members))
    write_members(path, members)
    assert_same_model(model, fastbp.load(path))


def test_wrong_format_tag(saved, tmp_path):
    good, _ = saved
    members = read_members(good)
    hname = header_name(members)
    header = json.loads(members[hname])
    header["format"] = "some-other-format"
    members[hname] = json.dumps(header).encode()
    path = tmp_path / "foreign.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)


def test_zip_without_header(saved, tmp_path):
    good, _ = saved
    members = read_members(good)
    del members[header_name(members)]
    path = tmp_path / "noheader.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)


def test_foreign_zip(tmp_path):
    path = tmp_path / "foreign.zip"
    write_members(path, {"readme.txt": b"hello", "data.csv": b"1,2,3\n"})
    assert_refused(path, tmp_path)


def test_unsupported_version(saved, tmp_path):
    good, _ = saved
    members = read_members(good)
    hname = header_name(members)
    header = json.loads(members[hname])
    header["version"] = 999
    members[hname] = json.dumps(header).encode()
    path = tmp_path / "future.fastbp"
    write_members(path, members)
    with pytest.raises(ValueError, match="version"):
        fastbp.load(path)


@pytest.mark.parametrize("edit", [
    lambda h: h.update(dtype="int64"),
    lambda h: h.update(loss="hinge"),
    lambda h: h["layers"][0].update(activation="swish"),
    lambda h: h["layers"][0].update(out_features=7),
    lambda h: h.update(layers="nope"),
    lambda h: h["optimizer"].update(type="lbfgs"),
    lambda h: h["optimizer"]["hyperparameters"].update(lr=-1.0),
])
def test_inconsistent_header(saved, tmp_path, edit):
    good, _ = saved
    members = read_members(good)
    hname = header_name(members)
    header = json.loads(members[hname])
    edit(header)
    members[hname] = json.dumps(header).encode()
    path = tmp_path / "bad.fastbp"
    write_members(path, members)
    with pytest.raises(ValueError):
        fastbp.load(path, with_optimizer=True)


def test_header_not_json(saved, tmp_path):
    good, _ = saved
    members = read_members(good)
    members[header_name(members)] = b"\x00\xff not json"
    path = tmp_path / "bad.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "does-not-exist.fastbp")


# ---------------------------------------------------------------- no code execution

class Payload:
    """Unpickling this creates (opens for writing) the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def payload_bytes(marker):
    return pickle.dumps(Payload(marker), protocol=2)


def test_payload_really_executes(tmp_path):
    """Control: the payload used below does run code when unpickled."""
    proof = tmp_path / "proof"
    fh = pickle.loads(payload_bytes(proof))
    fh.close()
    assert proof.exists()


def test_plain_pickle_file(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl"
    path.write_bytes(payload_bytes(marker))
    assert_refused(path, tmp_path)
    assert not marker.exists()


def test_pickle_as_zip_member(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.zip"
    write_members(path, {"model.pkl": payload_bytes(marker), "data.pkl": payload_bytes(marker)})
    assert_refused(path, tmp_path)
    assert not marker.exists()


def test_pickle_as_header(saved, tmp_path):
    good, _ = saved
    marker = tmp_path / "marker"
    members = read_members(good)
    members[header_name(members)] = payload_bytes(marker)
    path = tmp_path / "bad.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)
    assert not marker.exists()


def test_pickle_in_place_of_an_array(saved, tmp_path):
    good, _ = saved
    marker = tmp_path / "marker"
    members = read_members(good)
    for name in [n for n in members if n.endswith(".npy")]:
        members[name] = payload_bytes(marker)
        rehash(members, name)
    path = tmp_path / "bad.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)
    assert not marker.exists()


def model_and_optimizer_members(members):
    npys = [n for n in members if n.endswith(".npy")]
    opt = [n for n in npys if "optim" in n]
    model = [n for n in npys if n not in opt]
    assert model and opt, npys
    return model, opt


def object_array_npy(marker):
    arr = np.empty(1, dtype=object)
    arr[0] = Payload(marker)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("which", ["first", "last", "all"])
def test_npy_with_pickled_object_array(saved, tmp_path, which):
    good, _ = saved
    marker = tmp_path / "marker"
    members = read_members(good)
    model_arrays, opt_arrays = model_and_optimizer_members(members)
    targets = {"first": model_arrays[:1], "last": model_arrays[-1:],
               "all": model_arrays + opt_arrays}[which]
    for name in targets:
        members[name] = object_array_npy(marker)
        rehash(members, name)
    path = tmp_path / "objects.fastbp"
    write_members(path, members)
    assert_refused(path, tmp_path)
    assert not marker.exists()
    assert files_in(tmp_path) == sorted(["good.fastbp", "objects.fastbp"])


def test_npy_with_pickled_object_array_in_optimizer_state(saved, tmp_path):
    good, _ = saved
    marker = tmp_path / "marker"
    members = read_members(good)
    _, opt_arrays = model_and_optimizer_members(members)
    for name in opt_arrays:
        members[name] = object_array_npy(marker)
        rehash(members, name)
    path = tmp_path / "objects.fastbp"
    write_members(path, members)
    with pytest.raises(ValueError):
        fastbp.load(path, with_optimizer=True)
    assert not marker.exists()


def altered_optimizer_file(saved, tmp_path):
    """The saved file with one optimizer-state array changed (valid ZIP CRC, stale SHA-256)."""
    good, _ = saved
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
    """API.md: load of a corrupted file raises ValueError -- also when only the model
    is asked for (the file as a whole is corrupted)."""
    path = altered_optimizer_file(saved, tmp_path)
    with pytest.raises(ValueError, match="(?i)checksum|sha"):
        fastbp.load(path)
