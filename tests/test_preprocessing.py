"Tests of leukoxai_nb.preprocessing: the paper's pipeline steps, OpenCV agreement, and bad input."
import numpy as np
import pandas as pd
import pytest

from leukoxai_nb import preprocessing as pp
from leukoxai_nb.core import CLASSES

H, W = 382, 512


def disc(shape, center, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 < radius ** 2


def sphere_phase(shape, center, radius, peak=3.0):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    r2 = ((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / radius ** 2
    return (peak * np.sqrt(np.clip(1 - r2, 0, None))).astype(np.float32)


def random_blob(rng, size=80):
    "A random smooth star-shaped blob (ellipse with a wobbly border), as a cell-like mask."
    yy, xx = np.mgrid[:size, :size]
    r = rng.uniform(4, 25)
    a, b, th = r * rng.uniform(0.7, 1.3), r * rng.uniform(0.7, 1.3), rng.uniform(0, np.pi)
    y, x = yy - size / 2 + rng.uniform(-.5, .5), xx - size / 2 + rng.uniform(-.5, .5)
    u = (x * np.cos(th) + y * np.sin(th)) / a
    v = (-x * np.sin(th) + y * np.cos(th)) / b
    rad = 1 + 0.12 * rng.uniform(0, 1) * np.sin(rng.integers(2, 6) * np.arctan2(v, u) + rng.uniform(0, 6))
    return (u ** 2 + v ** 2) < rad ** 2


# --- contours and OpenCV ---------------------------------------------------------------------------------------
def test_perimeter_agrees_with_opencv_arclength():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(200):
        m = random_blob(rng)
        c = pp.trace_contour(m)
        ours = pp.contour_length(c)
        # 1) OpenCV's arcLength on the very same contour points
        same = cv2.arcLength(c[:, ::-1].astype(np.int32).reshape(-1, 1, 2), True)
        assert abs(ours - same) <= 1e-6 * same
        # 2) OpenCV's own findContours (Suzuki-Abe) + arcLength on the same mask: within 2 %
        cts, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        ref = cv2.arcLength(max(cts, key=len), True)
        counted = pp.chain_perimeters(m.astype(int))[1]          # 3) the vectorised count used by process_frame
        worst = max(worst, abs(ours - ref) / ref, abs(counted - ref) / ref)
    assert worst < 0.02, worst
    assert worst < 1e-6          # in fact the same chain


def test_counted_perimeter_on_irregular_shapes_and_many_objects():
    cv2 = pytest.importorskip("cv2")
    from scipy import ndimage as ndi
    rng = np.random.default_rng(5)
    m = ndi.gaussian_filter(rng.random((200, 260)), 1.5) > 0.53     # many irregular objects, some thin parts
    lab, n = pp.label_objects(m)
    per = pp.chain_perimeters(lab, n)
    assert n > 20
    for i in range(1, n + 1):
        cts, _ = cv2.findContours((lab == i).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        ref = cv2.arcLength(max(cts, key=len), True)
        assert abs(per[i] - ref) <= 1e-6 * max(ref, 1), (i, per[i], ref)


def test_features_perimeter_matches_opencv_in_um():
    cv2 = pytest.importorskip("cv2")
    m = disc((60, 60), (30, 30), 14)
    ph = sphere_phase((60, 60), (30, 30), 14)
    f = pp.morphological_features(ph, m, pixel_size_um=0.3, wavelength_nm=528)
    cts, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    ref = cv2.arcLength(cts[0], True) * 0.3
    assert abs(f["perimeter_um"] - ref) / ref < 0.02
    area = cv2.contourArea(cts[0])  # polygon area through pixel centres: a bit less than the pixel count
    assert area < f["pixels"] < area * 1.15


def test_merged_objects_are_flagged():
    ph = sphere_phase((100, 140), (50, 50), 16) + sphere_phase((100, 140), (50, 80), 16)
    inst = np.zeros((100, 140), np.int32); inst[disc((100, 140), (50, 50), 16)] = 1; inst[disc((100, 140), (50, 80), 16)] = 2
    t, _ = pp.process_frame(ph, pixel_size_um=0.25, wavelength_nm=528, instances=inst)
    assert len(t) == 1 and t["merged"].item() and t["object_id"].item() in (1, 2)
    assert pp.quality_filter(t).item() == "circularity < 0.85"


def test_find_cell_contours_counts_objects_and_min_area():
    m = np.zeros((100, 120), bool)
    m |= disc(m.shape, (30, 30), 10); m |= disc(m.shape, (60, 80), 6)
    m[90, 5] = True                          # a 1-pixel speck
    m[0:5, 100:110] = True                   # touches the edge
    dets = pp.find_cell_contours(m, min_area_px=5)
    assert len(dets) == 3
    assert sum(d.touches_edge for d in dets) == 1
    # holes are filled (an outer contour encloses them)
    ring = disc((50, 50), (25, 25), 15) & ~disc((50, 50), (25, 25), 5)
    (d,) = pp.find_cell_contours(ring)
    assert d.mask.sum() == disc((50, 50), (25, 25), 15).sum()


# --- features --------------------------------------------------------------------------------------------------
def test_morphological_features_definitions():
    px, lam = 0.25, 528.0
    m = disc((80, 80), (40, 40), 20)
    ph = np.full((80, 80), 2.0, np.float32)
    f = pp.morphological_features(ph, m, px, lam)
    assert set(f) == set(pp.FEATURE_NAMES)
    P = m.sum()
    assert f["pixels"] == P
    assert np.isclose(f["area_um2"], P * px ** 2)
    assert np.isclose(f["diameter_um"], np.sqrt(4 * f["area_um2"] / np.pi))
    assert np.isclose(f["optical_volume_um3"], 2.0 * P * lam * 1e-3 / (2 * np.pi) * px ** 2)
    assert np.isclose(f["circularity"], 4 * np.pi * f["area_um2"] / f["perimeter_um"] ** 2)
    assert abs(f["diameter_um"] - 40 * px) < 0.2          # a 40-px disc is 10 um across
    assert 0.9 < f["circularity"] < 1.15   # round; OpenCV's 8-connected chain runs ~5 % long on big discs
    with pytest.raises(ValueError, match="shape"):
        pp.morphological_features(ph[:10], m, px, lam)


def test_optical_volume_of_a_sphere():
    # a sphere of radius R (um) with index step dn has optical volume dn * 4/3 pi R^3
    px, lam, R, dn = 0.2, 528.0, 4.0, 0.04
    Rp = R / px
    yy, xx = np.mgrid[:60, :60]
    chord = 2 * np.sqrt(np.clip(R ** 2 - ((yy - 30) ** 2 + (xx - 30) ** 2) * px ** 2, 0, None))  # um
    ph = 2 * np.pi / (lam * 1e-3) * dn * chord
    m = chord > 0
    f = pp.morphological_features(ph, m, px, lam)
    assert abs(f["optical_volume_um3"] - dn * 4 / 3 * np.pi * R ** 3) / (dn * 4 / 3 * np.pi * R ** 3) < 0.02
    assert abs(f["diameter_um"] - 2 * R) < 0.3
    assert Rp > 10


# --- background -------------------------------------------------------------------------------------------------
def moving_cells(n=100, seed=0, shape=(H, W)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    bg = (0.4 * np.sin(xx / 7.0 + yy / 19.0) + 0.001 * xx).astype(np.float32)
    frames = np.empty((n,) + shape, np.float32)
    for i in range(n):
        f = bg + rng.normal(0, 0.03, shape).astype(np.float32)
        r = min(16, min(shape) // 8)
        for _ in range(6 if min(shape) > 200 else 1):
            c = rng.uniform(r + 2, np.array(shape) - r - 2)
            f += sphere_phase(shape, c, r)
        frames[i] = f
    return frames, bg


def test_median_background_recovers_static_pattern():
    frames, bg = moving_cells(100)
    est = pp.median_background(frames)
    assert np.abs(est - bg).mean() < 0.02 and np.percentile(np.abs(est - bg), 99) < 0.1
    sub, bad = pp.subtract_background(frames, est)
    assert not bad.any() and sub.dtype == np.float32
    assert abs(np.median(sub)) < 0.02


def test_background_needs_100_frames():
    frames, _ = moving_cells(20, shape=(40, 50))
    with pytest.raises(ValueError, match="20 usable frames.*needs 100"):
        pp.median_background(frames)


def test_blank_frames_are_left_out_and_counted():
    frames, bg = moving_cells(102, shape=(80, 90))
    frames[3] = 0.0; frames[50] = 7.0
    assert pp.blank_frames(frames).sum() == 2
    est = pp.median_background(frames)   # 100 usable frames remain
    assert np.abs(est - bg).mean() < 0.05
    frames[7] = 0.0
    with pytest.raises(ValueError, match="99 usable frames \\(3 blank"):
        pp.median_background(frames)


def test_nonfinite_pixels_are_counted_and_objects_touching_them_dropped():
    frames, bg = moving_cells(100, shape=(120, 160))
    frames[:, 5, 5] = np.nan              # a dead pixel in every frame
    frames[10, 60:64, 60:64] = np.inf
    est = pp.median_background(frames)
    assert np.isfinite(est).all()
    sub, bad = pp.subtract_background(frames, est)
    assert np.isfinite(sub).all() and bad[:, 5, 5].all() and bad.sum() == 100 + 16
    # a cell on top of the inf pixels is flagged and dropped by the 'non-finite pixels' rule
    ph = np.zeros((120, 160), np.float32) + sphere_phase((120, 160), (62, 62), 18)
    badm = np.zeros((120, 160), bool); badm[60:64, 60:64] = True
    t, _ = pp.process_frame(ph, pixel_size_um=0.25, wavelength_nm=528, nonfinite=badm)
    assert t["nonfinite"].tolist() == [True]
    assert pp.quality_filter(t).tolist() == ["non-finite pixels"]


@pytest.mark.parametrize("bad,err,match", [
    (np.zeros((2, 3, 4, 5), np.float32), ValueError, "shape"),
    (np.zeros((0, 382, 512), np.float32), ValueError, "empty stack"),
    (np.zeros((3, 382, 512), np.uint16), TypeError, "dtype uint16"),
    (np.zeros((3, 382, 512), bool), TypeError, "dtype bool"),
])
def test_check_frames_rejects_bad_stacks(bad, err, match):
    with pytest.raises(err, match=match):
        pp.check_frames(bad, name="rec.npy")


def test_check_frames_wrong_frame_shape_names_both():
    with pytest.raises(ValueError, match=r"rec.npy: frames of shape \(100, 100\).*expected \(382, 512\)"):
        pp.check_frames(np.zeros((2, 100, 100), np.float32), name="rec.npy", shape=(382, 512))


def test_empty_frame_gives_no_objects():
    t, lab = pp.process_frame(np.random.default_rng(0).normal(0, 0.03, (H, W)).astype(np.float32),
                              pixel_size_um=0.25, wavelength_nm=528, instances=np.zeros((H, W), np.int32))
    assert len(t) == 0 and lab.max() == 0 and list(t.columns)[:6] == list(pp.FEATURE_NAMES)


# --- filter ------------------------------------------------------------------------------------------------------
def test_quality_filter_rules_in_order():
    f = pd.DataFrame(dict(diameter_um=[8, 3, 8, 3, 9], circularity=[0.9, 0.9, 0.5, 0.5, 0.95],
                          touches_edge=[False, False, False, False, True], nonfinite=False))
    r = pp.quality_filter(f).tolist()
    assert r == ["kept", "diameter < 4 µm", "circularity < 0.85", "diameter < 4 µm", "touches frame edge"]
    rep = pp.filter_report(r, ["leukocyte", "thrombocyte", "aggregate", "thrombocyte", "leukocyte"], undetected={"defocused": 2})
    assert rep.loc["diameter < 4 µm", "thrombocyte"] == 2
    assert rep.loc["not detected", "defocused"] == 2
    assert rep.loc["kept", "total"] == 1 and rep["total"].sum() == 7


def test_process_frame_measures_and_matches_objects():
    ph = np.zeros((H, W), np.float32)
    inst = np.zeros((H, W), np.int32)
    for k, (c, r) in enumerate([((100, 100), 16), ((200, 300), 20), ((300, 60), 4)], start=1):
        ph += sphere_phase((H, W), c, r); inst[disc((H, W), c, r)] = k
    ph += np.random.default_rng(1).normal(0, 0.03, (H, W)).astype(np.float32)
    t, lab = pp.process_frame(ph, pixel_size_um=0.25, wavelength_nm=528, instances=inst)
    t = t.sort_values("object_id").reset_index(drop=True)
    assert t["object_id"].tolist() == [1, 2, 3] and not t["merged"].any()
    for k in range(3):          # the vectorised table equals the single-object function
        m = lab == lab[int(round(t.loc[k, "y"])), int(round(t.loc[k, "x"]))]
        f = pp.morphological_features(ph, m, 0.25, 528)
        assert all(np.isclose(f[c], t.loc[k, c]) for c in pp.FEATURE_NAMES)
    assert np.allclose(t["diameter_um"], [8, 10, 2], atol=0.6)
    assert pp.quality_filter(t).tolist() == ["kept", "kept", "diameter < 4 µm"]
    assert np.allclose(t[["y", "x"]].to_numpy(), [[100, 100], [200, 300], [300, 60]], atol=0.5)


# --- patches -----------------------------------------------------------------------------------------------------
def test_extract_patch_centred_and_padded():
    img = np.arange(100 * 120, dtype=np.float32).reshape(100, 120)
    p = pp.extract_patch(img, (50, 60))
    assert p.shape == (50, 50) and p[25, 25] == img[50, 60]
    q = pp.extract_patch(img, (3, 118))
    assert q.shape == (50, 50) and q[25, 25] == img[3, 118] and (q[:22] == 0).all() and (q[:, 27:] == 0).all()
    stack = np.stack([img, img])
    assert pp.extract_patch(stack, (50, 60)).shape == (2, 50, 50)


def test_normalize_patch_clip_and_minmax():
    x = np.array([-1.0, 0.0, 0.2, 2.1, 4.0, 9.0], np.float32)
    y = pp.normalize_patch(x)
    assert np.allclose(y, [0, 0, 0, 0.5, 1, 1]) and y.dtype == np.float32
    with pytest.raises(ValueError):
        pp.normalize_patch(x, clip=(4, 0.2))


# --- balance and splits ------------------------------------------------------------------------------------------
def test_balance_classes_reports_drops_and_errors():
    lab = np.repeat([0, 1, 2, 3], [10, 20, 15, 12])
    idx, rep = pp.balance_classes(lab, 10, seed=0)
    assert np.bincount(lab[idx]).tolist() == [10, 10, 10, 10]
    assert rep["dropped"].tolist() == [0, 10, 5, 2] and rep["class"].tolist() == list(CLASSES)
    assert (pp.balance_classes(lab, 10, seed=0)[0] == idx).all()
    with pytest.raises(ValueError, match="10 cells available, 11 requested"):
        pp.balance_classes(lab, 11, seed=0)


def test_split_indices_stratified_seeded_disjoint():
    lab = np.repeat(np.arange(4), 100)
    s = pp.split_indices(lab, seed=3)
    assert [len(s[k]) for k in ("train", "val", "test")] == [280, 80, 40]
    allidx = np.concatenate(list(s.values()))
    assert len(np.unique(allidx)) == 400
    for k in ("train", "val", "test"):
        assert len(set(np.bincount(lab[s[k]]).tolist())) == 1      # balanced in every split
    assert all((pp.split_indices(lab, seed=3)[k] == s[k]).all() for k in s)
    assert not (pp.split_indices(lab, seed=4)["test"] == s["test"]).all()
    with pytest.raises(ValueError, match="sum"):
        pp.split_indices(lab, 0, (0.5, 0.2, 0.2))


# --- phantom 2.0: scalar cues of the difficulty audit and the background-removal helper -------------------------
def _blob_patches():
    yy, xx = np.mgrid[0:50, 0:50]
    r = np.hypot(yy - 24.5, xx - 24.5)
    cell = np.where(r < 12, 3.0 * np.sqrt(np.clip(1 - (r / 12) ** 2, 0, 1)), 0).astype(np.float32)
    ph = np.stack([cell, cell * 0.5 + 0.0]).astype(np.float32)
    ph[:, 2:6, 2:6] += 0.6                          # a background speck in a corner
    return ph, r < 12


def test_scalar_cues_and_cell_mask():
    from leukoxai_nb.preprocessing import scalar_cues, cell_mask, CUE_NAMES
    ph, disc = _blob_patches()
    m = cell_mask(ph)
    assert m.shape == ph.shape and m[:, 25, 25].all() and not m[:, 3, 3].any()     # the centre component only
    c = scalar_cues(ph)
    assert list(c.columns) == list(CUE_NAMES) and len(c) == 2
    assert c.max_phase[0] == pytest.approx(ph[0].max()) and c.max_phase[1] == pytest.approx(ph[1].max())
    assert c.total_phase[0] > c.total_phase[1] and c.area_um2[0] >= c.area_um2[1]
    grainy = ph.copy(); grainy[:, ::3, ::3] += 0.3 * disc[::3, ::3]
    assert (scalar_cues(grainy).texture_energy > 1.5 * c.texture_energy).all()
    with pytest.raises(ValueError, match="patches"):
        scalar_cues(ph[0])


def test_pairwise_cue_auc():
    import pandas as pd
    from leukoxai_nb.preprocessing import pairwise_cue_auc
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], 50)
    cues = pd.DataFrame(dict(a=y + rng.normal(0, 0.01, 200), b=rng.normal(size=200)))
    t = pairwise_cue_auc(cues, y)
    assert len(t) == 6 and (t.best_cue == "a").all() and (t.best_auc > 0.99).all()
    assert (t.b < 0.8).all()


def test_replace_background_level_and_paste():
    from leukoxai_nb.preprocessing import replace_background, cell_mask, background_patches
    ph, disc = _blob_patches()
    m = cell_mask(ph)
    lev = replace_background(ph, m, "level", level=0.0, dilate_px=0)
    assert (lev[~m] == 0).all() and np.array_equal(lev[m], ph[m]) and lev[:, 3, 3].max() == 0
    other = np.full((50, 50), 0.07, np.float32)
    pst = replace_background(ph, m, "paste", other_background=other, dilate_px=0)
    assert np.allclose(pst[~m], 0.07) and np.array_equal(pst[m], ph[m])
    ph2 = ph + np.float32(0.05)                                    # a background that is not 0
    wide = replace_background(ph2, m, "level", dilate_px=2)
    assert (wide != 0).sum() > (replace_background(ph2, m, "level", dilate_px=0) != 0).sum()                      # the dilated mask keeps the cell's edge
    with pytest.raises(ValueError, match="other_background"):
        replace_background(ph, m, "paste")
    with pytest.raises(ValueError, match="mode"):
        replace_background(ph, m, "blur")
    with pytest.raises(ValueError, match="do not match"):
        replace_background(ph, m[:, :40], "level")
    frames = np.random.default_rng(1).normal(0, 0.04, (3, 120, 160)).astype(np.float32)
    inst = np.zeros((3, 120, 160), np.int32); inst[:, 40:80, 40:80] = 5
    bp = background_patches(frames, inst, 4, seed=0)
    assert bp.shape == (4, 50, 50) and np.abs(bp).max() < 0.5
    assert np.array_equal(bp, background_patches(frames, inst, 4, seed=0))
