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


def fake_arrays(n=130, seed=0):
    r = np.random.default_rng(seed)
    return {"phase": r.uniform(-0.1, 4, (n, 50, 50)).astype(np.float32), "features": r.uniform(0.8, 60, (n, 6)).astype(np.float32),
            "label": r.integers(0, 4, n), "true_label": r.integers(0, 4, n), "kind": np.array(["leukocyte"] * n, "U16"),
            "masks_packed": np.packbits(r.random((n, 4 * 2500)) > 0.5, axis=1)}


def test_fingerprint_not_recorded_then_recorded_then_verified(manifest):
    a = fake_arrays()
    before = manifest.read_text()
    assert ds.verify_build("smoke", 0, {"cells": a}, {"cells": "x.npz"})["status"] == "not recorded"
    assert manifest.read_text() == before                                   # verifying never writes the manifest
    ref = ds.record_build("smoke", 0, {"cells": a})
    assert ref.exists() and ref.parent.name == "data_fingerprints"
    entry = ds.read_manifest(manifest)["datasets"]["synthetic-qpi"]["builds"][0]
    assert entry["reference"] == "data_fingerprints/synthetic-qpi_smoke_seed0.json" and entry["n_cells"] == 130
    assert ds.verify_build("smoke", 0, {"cells": a}, {"cells": "x.npz"})["status"] == "verified"
    assert ds.verify_build("smoke", 1, {"cells": a}, {"cells": "x.npz"})["status"] == "not recorded"


def test_fingerprint_tolerates_ulps_and_names_real_changes(manifest):
    a = fake_arrays(); ds.record_build("smoke", 0, {"cells": a})
    few_ulps = dict(a, phase=np.nextafter(np.nextafter(np.nextafter(a["phase"], np.inf), np.inf), np.inf))
    few_ulps["features"] = np.nextafter(a["features"], -np.inf)
    check = ds.verify_build("smoke", 0, {"cells": few_ulps}, {"cells": "x.npz"})
    assert check["status"] == "verified within tolerance" and "sha256 differs" in check["note"]
    one_cell = dict(a, phase=a["phase"].copy()); one_cell["phase"][100] += 1e-2
    label = dict(a, label=a["label"].copy()); label["label"][5] = (label["label"][5] + 1) % 4
    mask = dict(a, masks_packed=a["masks_packed"].copy()); mask["masks_packed"][7, 10] ^= 0b100
    feat = dict(a, features=a["features"].copy()); feat["features"][3, 5] *= 0.98
    for changed, words in ((one_cell, ["phase: block 1 (cells 64-127) sum expected"]),
                           (label, ["label: sha256 expected", "; counts"]),
                           (mask, ["masks_packed: sha256 expected", "block 0 (cells 0-63) has"]),
                           (feat, ["features column 5: block 0"])):
        with pytest.raises(ds.FingerprintMismatch) as e:
            ds.verify_build("smoke", 0, {"cells": changed}, {"cells": "cache/x.npz"})
        msg = str(e.value)
        assert msg.startswith("cache/x.npz: ") and all(w in msg for w in words), msg
        assert "leukoxai data record --profile smoke --seed 0" in msg and "\n" not in msg


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


def _write_labels(root, text):
    (root / "labels.csv").write_text(text)


@pytest.mark.parametrize("text, words", [
    ("file,label,donor\n", ["labels.csv: no rows (header only)"]),
    ("file,label,donor\nmono.npy,monocyte,1\nmono.npy,monocyte,1\n", ["row 3 duplicates row 2"]),
    ("file,label,donor\nmono.npy,monocyte,1\nmono.npy,eosinophil,1\n", ["row 3 lists file 'mono.npy' again", "label 'monocyte'"]),
    ("file,label,donor,group\nmono.npy,monocyte,1,pool\nlympho.tif,lymphocyte,1,donor_test\n", ["row 3 puts donor 1 in both", "rows 2, 3"]),
    ("file,label,donor,group\nmono.npy,monocyte,1,pool\nmono.npy,monocyte,2,donor_test\n", ["row 3 lists file 'mono.npy' again"]),
    ("file,label,donor\n../mono.npy,monocyte,1\n", ["row 2 has file '../mono.npy'", "outside the data folder"]),
    ("file,label,donor\n/tmp/mono.npy,monocyte,1\n", ["row 2 has file '/tmp/mono.npy'", "outside"]),
    ("file,label,donor,pixel_size_um\nmono.npy,monocyte,1,0\n", ["row 2 has pixel_size_um '0'", "positive number"]),
    ("file,label,donor,pixel_size_um\nmono.npy,monocyte,1,-0.2\n", ["row 2 has pixel_size_um '-0.2'"]),
    ("file,label,donor,pixel_size_um\nmono.npy,monocyte,1,wide\n", ["row 2 has pixel_size_um 'wide'"]),
    ("file,label,donor\nmono.npy,monocyte,A7\n", ["row 2 has donor 'A7'", "integer"]),
    ("file,label,donor\nmono.npy,monocyte,1.5\n", ["row 2 has donor '1.5'"]),
    ("", ["labels.csv: empty file"]),
])
def test_user_qpi_labels_rejected_with_row_and_value(user_folder, text, words):
    _write_labels(user_folder, text)
    with pytest.raises(ValueError) as e:
        ds.load_user_qpi(user_folder)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_user_qpi_stack_size_checked_before_reading(user_folder, monkeypatch):
    import h5py
    with h5py.File(user_folder / "huge.h5", "w") as h:
        h.create_dataset("phase", shape=(16000, 512, 512), dtype="f4", chunks=(1, 64, 64))
    assert (user_folder / "huge.h5").stat().st_size < 10_000
    monkeypatch.setattr(ds, "max_stack_bytes", lambda: 2 * 2**30)
    _write_labels(user_folder, "file,label,donor\nhuge.h5,monocyte,1\n")
    with pytest.raises(ValueError, match=r"huge.h5: declares 16000 x 512 x 512 float32 = 15.6 GiB, above the limit of 2.0 GiB"):
        ds.load_user_qpi(user_folder)
    np.save(user_folder / "big.npy", np.zeros((100, 64, 64), np.float32))
    monkeypatch.setattr(ds, "max_stack_bytes", lambda: 1000)
    with pytest.raises(ValueError, match="big.npy: declares 100 x 64 x 64 float32"):
        ds.read_stack(user_folder / "big.npy")


def test_user_qpi_reads_in_chunks(user_folder, monkeypatch):
    reads = []
    orig = ds.StackReader.read
    def spy(self, i0=0, i1=None): reads.append((self.path.name, i0, i1)); return orig(self, i0, i1)
    monkeypatch.setattr(ds.StackReader, "read", spy)
    np.save(user_folder / "long.npy", recording(n=230, seed=8))
    t, P, st = ds.process_recording(ds.StackReader(user_folder / "long.npy"), pixel_size_um=0.25, wavelength_nm=528)
    assert st["frames"] == 230 and len(P) > 50
    assert all(i1 - i0 <= 100 for _, i0, i1 in reads) and {i0 for _, i0, _ in reads} == {0, 100, 200}


def test_user_qpi_nonfinite_recording_named_when_no_cells_left(user_folder):
    fr = recording(seed=3); fr[:, :, :] = np.nan; fr[:, 0, 0] = 0.1
    fr[:, 0, 1] = 0.2
    np.save(user_folder / "nan.npy", fr)
    t = pd.read_csv(user_folder / "labels.csv"); t.loc[2, "file"] = "nan.npy"; t.to_csv(user_folder / "labels.csv", index=False)
    with pytest.raises(ValueError) as e:
        ds.load_user_qpi(user_folder)
    msg = str(e.value)
    assert "no neutrophil cells left in the pool" in msg and "nan.npy: 0 kept" in msg and "non-finite pixels" in msg, msg


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
    mp.setenv("LEUKOXAI_DATA_WORKERS", "1")
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


def test_synthetic_cache_tamper_is_detected_and_corrupt_cache_rebuilt(smoke_build, capsys):
    tmp = smoke_build[0]
    ds.cli_record("smoke", 0)
    f = tmp / "results" / "smoke" / "data" / "synthetic-qpi_seed0.npz"
    backup = f.read_bytes()
    try:
        z = dict(np.load(f)); z["label"] = z["label"].copy(); z["label"][0] = (z["label"][0] + 1) % 4
        with open(f, "wb") as fh: np.savez(fh, **z)
        ds._MEMO.clear()
        with pytest.raises(ds.FingerprintMismatch, match=r"synthetic-qpi_seed0.npz: label: sha256 expected .*; counts"):
            ds.load_dataset("synthetic-qpi", "smoke")
        assert ds.cli_verify() == 1
        assert "FAILED" in capsys.readouterr().out
        f.write_bytes(backup[: len(backup) // 3])                           # truncated: named, moved aside, rebuilt
        ds._MEMO.clear(); capsys.readouterr()
        s = ds.load_dataset("synthetic-qpi", "smoke")
        assert len(s) > 0 and (f.parent / (f.name + ".corrupt")).exists()
        assert "synthetic-qpi_seed0.npz: cached file is unreadable" in capsys.readouterr().out
        assert ds.cli_verify() == 0
    finally:
        f.write_bytes(backup); ds._MEMO.clear()


def test_caches_are_per_seed(smoke_build):
    tmp = smoke_build[0]
    ds._MEMO.clear()
    s0 = ds.load_dataset("synthetic-qpi", "smoke", seed=0)
    s1 = ds.load_dataset("synthetic-qpi", "smoke", seed=1)
    data = tmp / "results" / "smoke" / "data"
    assert (data / "synthetic-qpi_seed0.npz").exists() and (data / "synthetic-qpi_seed1.npz").exists()
    assert not np.array_equal(s0.phase[:4], s1.phase[:4])
    ds._MEMO.clear()
    assert np.array_equal(ds.load_dataset("synthetic-qpi", "smoke", seed=0).phase, s0.phase)   # seed 0 not replaced


def _numpy_other_simd_env():
    "An environment that runs numpy at another SIMD level than this CPU's best, or None."
    import subprocess, sys, os
    for env in ({"NPY_DISABLE_CPU_FEATURES": "X86_V3"}, {"NPY_DISABLE_CPU_FEATURES": "AVX2 FMA3"}):
        r = subprocess.run([sys.executable, "-W", "error", "-c", "import numpy"], env={**os.environ, **env}, capture_output=True, text=True)
        if r.returncode == 0: return env
    return None


def test_build_at_another_simd_level_verifies_against_full_simd_reference(smoke_build):
    import subprocess, sys, os
    env = _numpy_other_simd_env()
    if env is None: pytest.skip("numpy knows no lower SIMD group to switch to on this CPU")
    tmp = smoke_build[0]
    ds.cli_record("smoke", 0)                                             # the reference, at this CPU's full SIMD level
    other = tmp / "other"
    r = subprocess.run([sys.executable, "-c", "from leukoxai_nb.cli import main; raise SystemExit(main())",
                        "data", "build", "--profile", "smoke"], capture_output=True, text=True,
                       env={**os.environ, **env, "LEUKOXAI_RESULTS": str(other), "LEUKOXAI_MANIFEST": os.environ["LEUKOXAI_MANIFEST"]})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "reference: verified" in r.stdout, r.stdout[-2000:]
    a = np.load(tmp / "results/smoke/data/synthetic-qpi_seed0.npz"); b = np.load(other / "smoke/data/synthetic-qpi_seed0.npz")
    assert np.array_equal(a["label"], b["label"]) and np.abs(a["phase"].astype(float) - b["phase"]).max() < 1e-4


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        ds.load_dataset("mnist")


def test_malformed_manifest_is_one_line_naming_the_field(tmp_path):
    m = yaml.safe_load((REPO / "data_manifest.yaml").read_text())
    cases = []
    a = {"datasets": {k: v for k, v in m["datasets"].items() if k != "synthetic-qpi"}}; cases.append((a, "datasets.synthetic-qpi is missing"))
    b = yaml.safe_load(yaml.safe_dump(m)); b["datasets"]["synthetic-qpi"]["builds"] = [{"profile": "smoke", "seed": "zero"}]
    cases.append((b, "builds[0].seed is 'zero'; expected an integer"))
    c = yaml.safe_load(yaml.safe_dump(m)); c["datasets"]["user-qpi"]["defaults"]["pixel_size_um"] = 0
    cases.append((c, "datasets.user-qpi.defaults.pixel_size_um is 0; expected a positive number"))
    for i, (bad, words) in enumerate(cases):
        p = tmp_path / f"m{i}.yaml"; p.write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError) as e: ds.read_manifest(p)
        assert str(p) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)


def test_verify_fails_on_a_user_supplied_bloodmnist_with_wrong_md5(manifest, tmp_path, monkeypatch, capsys):
    f = tmp_path / "bloodmnist_64.npz"; make_bloodmnist(f)
    monkeypatch.setenv("LEUKOXAI_BLOODMNIST", str(f))
    assert ds.cli_verify() == 1
    out = capsys.readouterr().out
    assert f"FAILED  {f}: md5" in out and "not a published BloodMNIST file" in out


def test_missing_or_corrupt_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml: data manifest not found"):
        ds.read_manifest(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"; bad.write_text("datasets: [unclosed")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML"):
        ds.read_manifest(bad)
    bad.write_text("- just a list")
    with pytest.raises(ValueError, match="expected a mapping with a 'datasets' key"):
        ds.read_manifest(bad)
