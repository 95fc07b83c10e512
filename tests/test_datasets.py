"Tests of leukoxai_nb.datasets: PatchSet, manifest digests, BloodMNIST (offline fixture), user-qpi, synthetic build."
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leukoxai_nb import datasets as ds
from leukoxai_nb import preprocessing as pp
from leukoxai_nb.core import CLASSES, sha256_arrays

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def manifest(tmp_path, monkeypatch):
    "A private copy of the repository's manifest with no recorded builds; results in a temporary folder."
    m = yaml.safe_load((REPO / "data_manifest.yaml").read_text())
    m["datasets"]["synthetic-qpi"]["builds"] = []
    p = tmp_path / "data_manifest.yaml"
    p.write_text(yaml.safe_dump(m, sort_keys=False))
    monkeypatch.setenv("LEUKOXAI_MANIFEST", str(p))
    monkeypatch.setenv("LEUKOXAI_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LEUKOXAI_BLOODMNIST", raising=False)
    return p


def test_repository_manifest_lists_the_three_datasets():
    m = ds.read_manifest(REPO / "data_manifest.yaml")
    assert set(m["datasets"]) == {"synthetic-qpi", "bloodmnist", "user-qpi"}
    files = m["datasets"]["bloodmnist"]["files"]
    assert files[64]["md5"] == "2b94928a2ae4916078ca51e05b6b800b" and "zenodo.org/records/10519652" in files[28]["url"]


def tiny_patchset(n=8):
    rng = np.random.default_rng(0)
    ph = rng.uniform(0, 4, (n, 50, 50)).astype(np.float32)
    return ds.PatchSet(images=pp.normalize_patch(ph), phase=ph, label=np.arange(n) % 4, true_label=np.arange(n) % 4,
                       donor=np.zeros(n, np.int64), group=np.array(["pool"] * n, "U16"), kind=np.array(["leukocyte"] * n, "U16"),
                       masks=rng.random((n, 4, 50, 50)) > 0.5, features=rng.random((n, 6)).astype(np.float32))


def test_patchset_subset_roundtrip_and_counts():
    s = tiny_patchset()
    sub = s.subset([1, 3])
    assert len(sub) == 2 and sub.label.tolist() == [1, 3] and sub.masks.shape == (2, 4, 50, 50)
    back = ds.PatchSet.from_arrays(s.arrays())
    assert np.array_equal(back.masks, s.masks) and np.allclose(back.images, s.images) and back.group.tolist() == s.group.tolist()
    assert s.counts().loc["pool", "total"] == 8
    with pytest.raises(ValueError, match="'donor' has 3 rows"):
        ds.PatchSet(**{**{k: getattr(s, k) for k in ds.PatchSet._ARRAYS}, "donor": np.zeros(3, np.int64)})


def test_digest_recorded_then_verified_then_mismatch_names_file(manifest):
    assert ds.check_or_record_digest("smoke", 0, {"cells": "a" * 64}, {"cells": "x.npz"}) == "recorded"
    assert ds.check_or_record_digest("smoke", 0, {"cells": "a" * 64}, {"cells": "x.npz"}) == "verified"
    with pytest.raises(ds.DigestMismatch) as e:
        ds.check_or_record_digest("smoke", 0, {"cells": "b" * 64}, {"cells": "x.npz"})
    assert "x.npz" in str(e.value) and "a" * 64 in str(e.value) and "b" * 64 in str(e.value)
    assert ds.check_or_record_digest("smoke", 1, {"cells": "b" * 64}, {"cells": "x.npz"}) == "recorded"  # other seed


# --- BloodMNIST -------------------------------------------------------------------------------------------------
def make_bloodmnist(path, per_class=3, size=28):
    rng = np.random.default_rng(0)
    arr = {}
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        labs = np.repeat(np.arange(8), per_class * n)
        imgs = rng.integers(0, 256, (len(labs), size, size, 3), dtype=np.uint8)
        arr[f"{split}_images"], arr[f"{split}_labels"] = imgs, labs.reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arr)
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_bloodmnist_loader_on_fixture(manifest, tmp_path):
    f = tmp_path / "bloodmnist_64.npz"
    md5 = make_bloodmnist(f, size=64)
    cells, outl, rep = ds.load_bloodmnist(profile="smoke", size=64, path=f, md5=md5)
    assert cells.images.shape[1:] == (50, 50) and cells.images.dtype == np.float32
    assert 0 <= cells.images.min() and cells.images.max() <= 1
    assert np.bincount(cells.label, minlength=4).tolist() == [12, 12, 12, 12]     # 3 per class per split-unit x 4
    assert not cells.has_masks and not cells.masks.any() and np.isnan(cells.features).all()
    assert sorted(set(outl.kind.tolist())) == ["erythroblast", "platelet"] and (outl.label == -1).all()
    assert rep.set_index("name").loc["basophil", "role"] == "dropped"


def test_bloodmnist_md5_mismatch_is_an_error_naming_file_and_digests(manifest, tmp_path):
    f = tmp_path / "bloodmnist_64.npz"
    actual = make_bloodmnist(f)
    with pytest.raises(ds.DigestMismatch) as e:
        ds.load_bloodmnist(profile="smoke", size=64, path=f)     # the manifest's published MD5
    msg = str(e.value)
    assert str(f) in msg and "2b94928a2ae4916078ca51e05b6b800b" in msg and actual in msg


def test_bloodmnist_bad_archives(manifest, tmp_path):
    f = tmp_path / "b.npz"; np.savez(f, train_images=np.zeros((1, 28, 28, 3), np.uint8))
    with pytest.raises(ValueError, match="missing keys"):
        ds.load_bloodmnist(path=f, md5=ds.md5_file(f))
    g = tmp_path / "c.npz"; g.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="could not be read"):
        ds.load_bloodmnist(path=g, md5=ds.md5_file(g))
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        ds.load_bloodmnist(path=tmp_path / "nope.npz")
    h = tmp_path / "d.npz"; make_bloodmnist(h)
    z = dict(np.load(h)); z["test_labels"][0] = 9; np.savez(h, **z)
    with pytest.raises(ValueError, match=r"labels \[9\] outside"):
        ds.load_bloodmnist(path=h, md5=ds.md5_file(h))


# --- user-qpi ---------------------------------------------------------------------------------------------------
def recording(n=100, shape=(120, 160), seed=0, r=14):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    bg = (0.3 * np.sin(xx / 9.0) + 0.001 * yy).astype(np.float32)
    out = np.empty((n,) + shape, np.float32)
    for i in range(n):
        f = bg + rng.normal(0, 0.03, shape).astype(np.float32)
        for _ in range(2):
            c = rng.uniform(r + 30, np.array(shape) - r - 30)
            d2 = ((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / r ** 2
            f += 3 * np.sqrt(np.clip(1 - d2, 0, None))
        out[i] = f
    return out


@pytest.fixture()
def user_folder(tmp_path, manifest):
    import tifffile, h5py
    root = tmp_path / "user"; root.mkdir()
    np.save(root / "mono.npy", recording(seed=1))
    tifffile.imwrite(root / "lympho.tif", recording(seed=2))
    with h5py.File(root / "neutro.h5", "w") as h: h["phase"] = recording(seed=3)
    np.save(root / "eosino.npy", recording(seed=4))
    np.save(root / "donor9.npy", recording(seed=5))
    pd.DataFrame(dict(file=["mono.npy", "lympho.tif", "neutro.h5", "eosino.npy", "donor9.npy"],
                      label=["monocyte", "lymphocyte", "neutrophil", "Eosinophil", "monocyte"],
                      donor=[1, 1, 2, 2, 9], group=["pool"] * 4 + ["donor_test"])).to_csv(root / "labels.csv", index=False)
    return root


def test_user_qpi_reads_npy_tif_h5_and_balances(user_folder):
    cells, outl, rep = ds.load_user_qpi(user_folder, profile="smoke")
    pool = cells.subset(cells.group == "pool")
    counts = np.bincount(pool.label, minlength=4)
    assert len(set(counts.tolist())) == 1 and counts[0] > 20
    assert (cells.group == "donor_test").sum() > 20 and set(cells.donor[cells.group == "donor_test"]) == {9}
    assert len(outl) == 0 and not cells.has_masks
    assert np.all((cells.features[:, 2] >= 4) & (cells.features[:, 5] >= 0.85))
    assert set(rep["file"]) == {"mono.npy", "lympho.tif", "neutro.h5", "eosino.npy", "donor9.npy"}


def test_user_qpi_bad_labels_and_files(user_folder):
    t = pd.read_csv(user_folder / "labels.csv")
    t.loc[2, "label"] = "basophil"; t.to_csv(user_folder / "labels.csv", index=False)
    with pytest.raises(ValueError, match=r"labels.csv: row 4 has label 'basophil' outside the class set"):
        ds.load_user_qpi(user_folder)
    t.loc[2, "label"] = "neutrophil"; t.loc[0, "file"] = "missing.npy"; t.to_csv(user_folder / "labels.csv", index=False)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        ds.load_user_qpi(user_folder)
    (user_folder / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="broken.npy: could not read"):
        ds.read_stack(user_folder / "broken.npy")
    np.save(user_folder / "short.npy", recording(n=30))
    with pytest.raises(ValueError, match="30 usable frames.*needs 100"):
        ds.process_recording(ds.read_stack(user_folder / "short.npy"), pixel_size_um=0.25, wavelength_nm=528)
    np.save(user_folder / "ints.npy", np.zeros((100, 60, 60), np.uint16))
    with pytest.raises(TypeError, match="ints.npy: dtype uint16"):
        ds.read_stack(user_folder / "ints.npy")
    (user_folder / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported extension"):
        ds.read_stack(user_folder / "x.png")


def test_user_qpi_counts_nonfinite_and_blank_frames(tmp_path):
    fr = recording(n=105, seed=7)
    fr[:, 0, 0] = np.nan; fr[3] = 0.0; fr[4] = np.inf
    t, P, st = ds.process_recording(fr, pixel_size_um=0.25, wavelength_nm=528)
    assert st["blank_frames"] == 2 and st["nonfinite_pixels"] >= 103
    assert len(P) == (t["rule"] == "kept").sum() > 50 and np.isfinite(P).all()


# --- synthetic-qpi build (real phantom, smoke profile) -----------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_build(tmp_path_factory):
    pytest.importorskip("leukoxai_nb.phantom")
    tmp = tmp_path_factory.mktemp("synth")
    mp = pytest.MonkeyPatch()
    m = yaml.safe_load((REPO / "data_manifest.yaml").read_text()); m["datasets"]["synthetic-qpi"]["builds"] = []
    (tmp / "m.yaml").write_text(yaml.safe_dump(m))
    mp.setenv("LEUKOXAI_MANIFEST", str(tmp / "m.yaml")); mp.setenv("LEUKOXAI_RESULTS", str(tmp / "results"))
    ds._MEMO.clear()
    import contextlib, io
    out = io.StringIO()
    with contextlib.redirect_stdout(out): rc = ds.cli_build("synthetic-qpi", "smoke")
    yield tmp, rc, out.getvalue()
    mp.undo(); ds._MEMO.clear()


def test_synthetic_smoke_build_is_balanced_and_verified(smoke_build, capsys):
    tmp, rc, out = smoke_build
    assert rc == 0
    assert "Filter report" in out and "diameter < 4 µm" in out
    from leukoxai_nb.core import get_profile
    d = get_profile("smoke").data
    assert out.strip().splitlines()[-1].startswith(f"{4 * d.cells_per_class:,} leukocytes in the training pool, balanced over 4 classes")
    s = ds.load_dataset("synthetic-qpi", "smoke")
    pool = s.subset(s.group == "pool")
    assert np.bincount(pool.label, minlength=4).tolist() == [d.cells_per_class] * 4
    dt = s.subset(s.group == "donor_test")
    assert len(dt) == d.donor_test_cells and not set(dt.donor) & set(pool.donor)
    assert s.images.dtype == np.float32 and 0 <= s.images.min() and s.images.max() <= 1
    assert s.masks.shape == (len(s), 4, 50, 50) and s.masks[:, 1].any(axis=(1, 2)).mean() > 0.9   # cytoplasm present
    assert np.all(s.features[:, 2] >= 4) and np.all(s.features[:, 5] >= 0.85)
    assert (s.true_label != s.label).mean() < 0.2
    o = ds.load_outliers("synthetic-qpi", "smoke")
    assert set(o.kind) == set(ds.OUTLIER_KINDS) and (o.label == -1).all()
    assert pd.Series(o.kind).value_counts().min() == d.outliers_per_kind
    rep = pd.read_csv(tmp / "results" / "smoke" / "data_filter_report_cells.csv").set_index("rule")
    assert rep.loc["kept", "leukocyte"] > 0 and rep["thrombocyte"].drop("kept").sum() > 0
    assert ds.cli_verify() == 0


def test_synthetic_cache_tamper_is_detected(smoke_build, capsys):
    tmp = smoke_build[0]
    f = tmp / "results" / "smoke" / "data" / "synthetic-qpi.npz"
    backup = f.read_bytes()
    try:
        z = dict(np.load(f)); z["label"] = z["label"].copy(); z["label"][0] = (z["label"][0] + 1) % 4
        with open(f, "wb") as fh: np.savez(fh, **z)
        ds._MEMO.clear()
        with pytest.raises(ds.DigestMismatch, match="synthetic-qpi.npz: sha256 digest mismatch: expected"):
            ds.load_dataset("synthetic-qpi", "smoke")
        assert ds.cli_verify() == 1
        assert "FAILED" in capsys.readouterr().out
        f.write_bytes(b"corrupt")
        with pytest.raises(ValueError, match="could not be read"):
            ds.load_dataset("synthetic-qpi", "smoke")
    finally:
        f.write_bytes(backup); ds._MEMO.clear()


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        ds.load_dataset("mnist")


def test_missing_or_corrupt_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml: data manifest not found"):
        ds.read_manifest(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"; bad.write_text("datasets: [unclosed")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML"):
        ds.read_manifest(bad)
    bad.write_text("- just a list")
    with pytest.raises(ValueError, match="expected a mapping with a 'datasets' key"):
        ds.read_manifest(bad)
