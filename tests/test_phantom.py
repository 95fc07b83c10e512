"Fast tests of the synthetic QPI phantom (leukoxai_nb.phantom, chapter nbs/00_data.ipynb)."
import math
import numpy as np
import pandas as pd
import pytest

from leukoxai_nb.core import CLASSES, REGIONS
from leukoxai_nb import phantom as ph


@pytest.fixture(scope="module")
def rec():
    return ph.simulate_recording(4, seed=3, donor=1, cells_per_frame=8, composition={k: 1.0 for k in ph.OBJECT_KINDS})


def test_contract_shapes_dtypes_columns(rec):
    assert rec.frames.shape == (4, 382, 512) and rec.frames.dtype == np.float32
    assert rec.instances.shape == (4, 382, 512) and rec.instances.dtype == np.int32
    assert rec.regions.shape == (4, 382, 512) and rec.regions.dtype == np.uint8
    assert rec.background.shape == (382, 512) and rec.background.dtype == np.float32
    assert isinstance(rec.config, ph.PhantomConfig) and rec.config.wavelength_nm == 528.0
    for c in ["object_id", "frame", "y", "x", "kind", "true_class", "label", "donor", "diameter_um"]:
        assert c in rec.objects.columns
    o = rec.objects
    assert len(o) == 32 and o.object_id.is_unique and (o.object_id >= 1).all()
    assert set(o.kind) <= set(ph.OBJECT_KINDS) and (o.donor == 1).all()
    assert set(o.frame) == {0, 1, 2, 3}
    leu = o.kind == "leukocyte"
    assert set(o.true_class[leu]) <= set(CLASSES) and set(o.label[leu]) <= set(CLASSES)
    assert (o.true_class[~leu] == "").all() and (o.label[~leu] == "").all()
    assert [ph.REGION_BITS[r] for r in REGIONS] == [1, 2, 4, 8]


def test_ground_truth_consistent(rec):
    ids = set(np.unique(rec.instances)) - {0}
    assert ids == set(rec.objects.object_id)          # every object covers pixels, no unknown ids
    assert not ((rec.regions > 0) & (rec.instances == 0)).any()
    nuc = (rec.regions & 1) > 0; cyt = (rec.regions & 2) > 0
    assert not (nuc & cyt).any() and ((rec.instances > 0) == (nuc | cyt)).all()
    # each object's centre lies in its frame with room for a 50 x 50 patch
    assert (rec.objects.y >= 25).all() and (rec.objects.y <= 382 - 25).all()
    assert (rec.objects.x >= 25).all() and (rec.objects.x <= 512 - 25).all()
    assert (rec.objects[rec.objects.kind == "aggregate"].n_cells >= 2).all()
    assert np.isfinite(rec.frames).all()


def test_deterministic_and_chunk_invariant():
    kw = dict(seed=5, donor=2, cells_per_frame=4)
    a = ph.simulate_recording(3, **kw)
    chunks = list(ph.iter_recording(3, chunk=2, **kw))
    assert [len(c) for c in chunks] == [2, 1] and [c.first_frame for c in chunks] == [0, 2]
    assert np.array_equal(a.frames, np.concatenate([c.frames for c in chunks]))
    assert np.array_equal(a.instances, np.concatenate([c.instances for c in chunks]))
    assert np.array_equal(a.regions, np.concatenate([c.regions for c in chunks]))
    assert a.objects.equals(pd.concat([c.objects for c in chunks], ignore_index=True))
    assert all(np.array_equal(c.background, a.background) for c in chunks)
    b = ph.simulate_recording(3, **kw)
    assert np.array_equal(a.frames, b.frames) and a.objects.equals(b.objects)
    c = ph.simulate_recording(3, seed=6, donor=2, cells_per_frame=4)
    assert not np.array_equal(a.frames, c.frames)


def test_label_noise_rate_and_truth_kept():
    r = ph.simulate_recording(20, seed=1, donor=0, cells_per_frame=30, label_noise=0.2)
    leu = r.objects[r.objects.kind == "leukocyte"]
    rate = (leu.label != leu.true_class).mean()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(leu))
    counts = leu.true_class.value_counts()
    assert set(counts.index) == set(CLASSES) and counts.max() - counts.min() <= 20
    clean = ph.simulate_recording(2, seed=1, donor=0, cells_per_frame=10, label_noise=0.0)
    assert (clean.objects.label == clean.objects.true_class).all()


def test_background_static_and_median_recovers_it():
    cfg = ph.PhantomConfig(frame_shape=(96, 128))
    r = ph.simulate_recording(100, seed=2, donor=0, cells_per_frame=1, config=cfg)
    assert r.frames.shape == (100, 96, 128)
    nuis = ph.recording_nuisance(cfg, 2)
    est = np.median(r.frames, axis=0)
    truth = r.background + np.mean([ph.drift_pattern(nuis, f) for f in range(100)], axis=0)
    rare = (r.instances > 0).mean(0) < 0.1    # a small frame: judge the pixels that cells rarely cover
    d = (est - truth)[rare]
    assert rare.mean() > 0.3 and np.sqrt(np.mean((d - d.mean()) ** 2)) < 0.5 * nuis["noise_sd"]
    # beyond the slow drift the pattern is static: frame differences away from cells are noise
    free = (r.instances[0] == 0) & (r.instances[1] == 0)
    diff = (r.frames[0] - r.frames[1])[free]
    assert abs(np.corrcoef(diff, r.background[free])[0, 1]) < 0.1
    assert r.background.std() > 5 * cfg.noise_sd_rad     # subtraction is needed


def test_recording_nuisance_drift_and_noise():
    cfg = ph.PhantomConfig()
    a, b = ph.recording_nuisance(cfg, 4), ph.recording_nuisance(cfg, 5)
    assert cfg.noise_sd_range[0] <= a["noise_sd"] <= cfg.noise_sd_range[1] and a["noise_sd"] != b["noise_sd"]
    assert np.array_equal(ph.recording_nuisance(cfg, 4)["coloured_field"], a["coloured_field"])
    f = a["coloured_field"]
    assert np.corrcoef(f[:, :-1].ravel(), f[:, 1:].ravel())[0, 1] > 0.5          # spatially correlated
    m100 = np.mean([ph.drift_pattern(a, i) for i in range(100)], axis=0)
    res = [np.abs(ph.drift_pattern(a, i) - m100).max() for i in range(0, 2001, 100)]
    assert 1e-3 < max(res) < 0.2                                                   # there, and below the threshold
    assert np.array_equal(ph.drift_pattern(a, 7), ph.drift_pattern(a, 7))


def test_isolation_purity_and_structured_contamination():
    r = ph.simulate_recording(40, seed=3, donor=1, cells_per_frame=20, isolated_class="eosinophil", label_noise=0.1)
    leu = r.objects[r.objects.kind == "leukocyte"]
    assert (leu.label == "eosinophil").all()
    imp = leu[leu.true_class != "eosinophil"]
    assert abs(len(imp) / len(leu) - 0.1) < 4 * math.sqrt(0.09 / len(leu))
    assert imp.true_class.value_counts().idxmax() == "neutrophil"          # granulocytes contaminate each other
    cfg = ph.PhantomConfig()
    for c in CLASSES:
        p = ph.class_mix(cfg, c, 0.95)
        assert abs(p.sum() - 1) < 1e-12 and abs(p[CLASSES.index(c)] - 0.95) < 1e-12
    with pytest.raises(ValueError, match="isolated_class"):
        ph.simulate_recording(1, seed=0, donor=0, cells_per_frame=2, isolated_class="basophil")


def test_focus_offsets_and_propagation():
    cfg = ph.PhantomConfig()
    b = ph.sample_leukocytes(np.array(["neutrophil"] * 50, dtype=object), cfg.classes, np.random.default_rng(0), cfg)
    assert abs(np.std(b.dz) / cfg.focus_sd_um - 1) < 0.3
    b.dz[:] = 0
    W = cfg.window(True)
    r0 = ph.render_batch(b, cfg, W)
    same = ph.propagate_phase(r0.phase[:3], np.zeros(3), cfg)
    assert np.abs(same - r0.phase[:3]).max() < 1e-3                         # no offset: the phase is unchanged
    change = [np.sqrt(np.mean((ph.propagate_phase(r0.phase[:5], np.full(5, dz), cfg) - r0.phase[:5]) ** 2)) for dz in (1, 5, 20)]
    assert change[0] < change[1] < change[2]                                   # rings and blur grow with |dz|
    tot = ph.propagate_phase(r0.phase[:5], np.full(5, 3.0), cfg).sum((1, 2)) / r0.phase[:5].sum((1, 2))
    assert np.all(np.abs(tot - 1) < 0.1)               # the optical volume nearly stays (not exactly: a strong phase object)


def test_render_conserves_optical_volume():
    cfg = ph.PhantomConfig()
    b = ph.CellBatch.empty(1)
    b.a[:] = b.b[:] = b.c[:] = 3.5; b.dn_body[:] = b.dn_nucleus[:] = 0.03
    r = ph.render_batch(b, cfg, cfg.window())
    assert abs(r.optical_volume_um3[0] / (0.03 * 4 / 3 * np.pi * 3.5 ** 3) - 1) < 0.01
    assert r.peak_phase_rad[0] <= cfg.k0 * 7 * 0.03 + 1e-4
    assert r.footprint[0].sum() > 0 and (r.regions[0][~r.footprint[0]] == 0).all()


def test_class_statistics_plausible():
    cfg = ph.PhantomConfig()
    names = np.repeat(np.array(CLASSES, dtype=object), 60)
    b = ph.sample_leukocytes(names, cfg.classes, np.random.default_rng(0), cfg)
    r = ph.render_batch(b, cfg, cfg.window())
    df = pd.DataFrame(dict(c=names, d=b.diameter_um(), v=r.optical_volume_um3, p=r.peak_phase_rad))
    m = df.groupby("c").mean()
    assert m.d.idxmin() == "lymphocyte" and m.d.idxmax() == "monocyte" and m.v.idxmax() == "monocyte"
    assert m.p.between(2.0, 4.0).all() and (df.p > 4).mean() < 0.1
    lobes = pd.Series(b.n_lobes).groupby(names).agg(["min", "max"])
    assert lobes.loc["neutrophil", "min"] >= 3 and lobes.loc["neutrophil", "max"] <= 5
    assert lobes.loc["eosinophil", "min"] >= 2 and lobes.loc["eosinophil", "max"] <= 3
    assert (b.notch[names == "monocyte", 2] > 0).all()


def test_donors_shift_parameters():
    cfg = ph.PhantomConfig()
    assert ph.donor_classes(cfg, 7) == ph.donor_classes(cfg, 7)
    d0, d1 = ph.donor_classes(cfg, 0), ph.donor_classes(cfg, 1)
    for c in CLASSES:
        assert d0[c].diameter_um != d1[c].diameter_um
        assert abs(d0[c].diameter_um / cfg.classes[c].diameter_um - 1) < 0.2


@pytest.mark.parametrize("kwargs, err", [
    (dict(n_frames=-1), ValueError), (dict(seed=-2), ValueError), (dict(seed="a"), ValueError),
    (dict(donor=-1), ValueError), (dict(cells_per_frame=0), ValueError), (dict(label_noise=1.5), ValueError),
    (dict(composition={"platelet": 1.0}), ValueError), (dict(composition={"leukocyte": 0.0}), ValueError),
    (dict(chunk=0), ValueError), (dict(cells_per_frame=400), RuntimeError),
])
def test_bad_arguments_raise(kwargs, err):
    args = dict(n_frames=1, seed=0, donor=0, cells_per_frame=2) | kwargs
    n = args.pop("n_frames")
    with pytest.raises(err):
        ph.simulate_recording(n, **args)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="frame_shape"):
        ph.PhantomConfig(frame_shape=(10, 20))
    with pytest.raises(ValueError, match="pixel_size_um"):
        ph.PhantomConfig(pixel_size_um=0)


def test_empty_recording():
    r = ph.simulate_recording(0, seed=0, donor=0, cells_per_frame=3)
    assert r.frames.shape == (0, 382, 512) and len(r.objects) == 0 and "diameter_um" in r.objects.columns


def test_interior_visible_granules_overlap():
    "Phantom 2.0: the nucleus is denser than the cytoplasm, equally for all classes; eosinophil granules larger but not a switch."
    cls = ph.PhantomConfig().classes
    assert len({cls[c].dn_nucleus for c in CLASSES}) == 1                      # no unsourced class-specific nucleus
    for c in CLASSES:
        assert 0.015 <= cls[c].dn_nucleus - cls[c].dn_cytoplasm <= 0.035, c
    eo, ne = cls["eosinophil"], cls["neutrophil"]
    assert 1.2 <= eo.granule_radius_um / ne.granule_radius_um < 2 and eo.dn_granule < 1.5 * ne.dn_granule
    assert eo.granule_cell_sd > 0 and ne.granule_cell_sd > 0
    assert min(eo.lobe_spacing) >= 2.0 and min(ne.lobe_spacing) >= 2.0


def test_version():
    assert ph.GENERATOR_VERSION == "phantom-2.0"


def test_neutrophil_eosinophil_no_single_cue_decides():
    "Phantom 2.0's hard pair: rendered (focus offsets included) with white noise, no scalar cue reaches AUC 0.85."
    from leukoxai_nb import preprocessing as pp
    cfg = ph.PhantomConfig()
    names = np.repeat(np.array(["neutrophil", "eosinophil"], dtype=object), 150)
    rng = np.random.default_rng(11)
    b = ph.sample_leukocytes(names, cfg.classes, rng, cfg)
    W = cfg.window()
    r = ph.render_batch(b, cfg, W, off=rng.uniform(-0.5, 0.5, (len(names), 2)))
    lo = (W - 50) // 2
    patches = r.phase[:, lo:lo + 50, lo:lo + 50] + rng.normal(0, cfg.noise_sd_rad, (len(names), 50, 50)).astype(np.float32)
    cues = pp.scalar_cues(patches, cfg.pixel_size_um)
    auc = pp.pairwise_cue_auc(cues, (names == "eosinophil").astype(int), classes=("neutrophil", "eosinophil"))
    assert len(auc) == 1 and auc.best_auc.item() < 0.85, auc
    m = b.g_dn * b.g_r ** 3                          # a granule's optical volume (up to a constant)
    eo = np.isin(b.g_cell, np.flatnonzero(names == "eosinophil"))
    assert 1.5 < m[eo].mean() / m[~eo].mean() < 20    # eosinophil granules are still the heavier ones
