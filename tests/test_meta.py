"Fast tests of leukoxai_nb.meta on synthetic arrays (no model needed)."
import numpy as np
import pytest
from leukoxai_nb import meta, core


def test_quantile_bins_equal_counts_and_edges():
    rng = np.random.default_rng(0)
    conf = np.r_[np.ones(40), rng.uniform(0.3, 1, 61)]
    idx, tab = meta.confidence_bins(conf, 6, "quantile")
    assert tab.n.sum() == len(conf) and tab.n.max() - tab.n.min() <= 1
    # bins are ordered by confidence: every bin's values lie within [lo, hi] and hi is non-decreasing
    for b in range(6):
        assert conf[idx == b].min() == tab.lo[b] and conf[idx == b].max() == tab.hi[b]
    assert (np.diff(tab.hi) >= 0).all()


def test_width_bins_and_errors():
    idx, tab = meta.confidence_bins(np.array([0.0, 0.1, 0.5, 0.99, 1.0]), 2, "width")
    assert idx.tolist() == [0, 0, 1, 1, 1] and np.allclose(tab.lo, [0, 0.5])
    with pytest.raises(ValueError, match="strategy"):
        meta.confidence_bins([0.5, 0.6], 2, "nope")
    with pytest.raises(ValueError, match="NaN"):
        meta.confidence_bins([np.nan, 0.6], 2)


def test_aggregate_maps_means_and_counts():
    maps = np.arange(6, dtype=float)[:, None, None] * np.ones((6, 3, 3))
    labels = np.array([0, 0, 1, 1, 3, 3]); bins = np.array([0, 0, 0, 1, 1, 1])
    mean, count = meta.aggregate_maps(maps, labels, bins, n_classes=4, n_bins=2)
    assert count.tolist() == [[2, 0], [1, 1], [0, 0], [0, 2]]
    assert np.allclose(mean[0, 0], 0.5) and np.allclose(mean[3, 1], 4.5) and np.isnan(mean[2]).all()
    with pytest.raises(ValueError, match="lengths differ"):
        meta.aggregate_maps(maps, labels[:3], bins)


def test_region_relevance_and_concentration():
    maps = np.zeros((1, 10, 10)); maps[0, 4:6, 4:6] = 2.0; maps[0, 0, 0] = -2.0
    masks = np.zeros((1, len(core.REGIONS), 10, 10), bool); masks[0, 0, 4:6, 4:6] = True
    rr = meta.region_relevance(maps, masks)
    assert rr.loc[0, "nucleus"] == 2.0 and np.isclose(rr.loc[0, "background"], -2.0 / 96)
    assert np.isclose(meta.cell_concentration(maps, masks)[0], 8 / 10)
    with pytest.raises(ValueError, match="masks"):
        meta.region_relevance(maps, masks[:, :, :5])


def test_sharpening_detects_trend_and_handles_constant():
    b = np.repeat(np.arange(6), 10)
    assert meta.sharpening(b * 0.1 + np.random.default_rng(0).normal(0, 0.05, 60), b)["rho"] > 0.8
    assert np.isnan(meta.sharpening(np.ones(60), b)["rho"])


def test_clusters_recover_separated_groups():
    rng = np.random.default_rng(1)
    lab = np.repeat(np.arange(4), 12)
    X = (rng.normal(size=(4, 64)) * 4)[lab] + rng.normal(size=(48, 64))
    tab, (emb, cl) = meta.cluster_agreement(X, lab, seeds=[0, 1], true_labels=lab)
    assert len(tab) == 2 and (tab.ari_label > 0.8).all() and (tab.ari_true_label == tab.ari_label).all()
    sh = meta.cluster_class_shares(cl, lab)
    assert list(sh.index) == ["C1", "C2", "C3", "C4"] and np.allclose(sh[list(core.CLASSES)].max(axis=1), 1.0)


def test_pick_dropout_follows_profile():
    assert meta.pick_dropout("lenet5", "quick") == 0.25 and meta.pick_dropout("alexnet", "quick") == 0.5
    assert meta.pick_dropout("lenet5", "smoke") == max(d for d in core.get_profile("smoke").models.dropouts if d > 0)


def test_normalize_maps():
    m = np.zeros((3, 4, 4)); m[0, 0, 0] = -5; m[0, 1, 1] = 2; m[1] = 0.1
    n = meta.normalize_maps(m)
    assert n[0, 0, 0] == -1 and np.isclose(n[0, 1, 1], 0.4) and np.allclose(n[1], 1) and (n[2] == 0).all()


def test_held_out_cells_test_first_then_val():
    def split(n, off):
        return dict(idx=np.arange(off, off + n), label=np.zeros(n, int), true_label=np.zeros(n, int),
                    logits=np.zeros((n, 4)), vi_logits=np.zeros((3, n, 4)))
    pred = {"test": split(5, 100), "val": split(10, 200)}
    c = meta.held_out_cells(pred, 8)
    assert c["idx"].tolist() == [100, 101, 102, 103, 104, 200, 201, 202] and c["vi_logits"].shape == (3, 8, 4)
    assert list(c["split"]) == ["test"] * 5 + ["val"] * 3
    assert len(meta.held_out_cells(pred, 3)["idx"]) == 3
