"Fast tests of leukoxai_nb.applications on synthetic arrays (no model needed)."
import gzip
import numpy as np
import pytest
from leukoxai_nb import applications as A


def test_digit_and_noise_patches():
    d = A.digit_patches(7, seed=3)
    assert d.shape == (7, 50, 50) and d.dtype == np.float32 and d.min() >= 0 and d.max() <= 1
    assert np.allclose(A.digit_patches(7, seed=3), d)
    n = A.white_noise(4, seed=0)
    assert n.shape == (4, 50, 50) and abs(n.mean() - 0.5) < 0.05


def test_mnist_idx_reader(tmp_path):
    imgs = (np.random.default_rng(0).random((3, 28, 28)) * 255).astype(np.uint8)
    head = b"".join(int(v).to_bytes(4, "big") for v in (2051, 3, 28, 28))
    p = tmp_path / "t10k-images-idx3-ubyte.gz"; p.write_bytes(gzip.compress(head + imgs.tobytes()))
    out = A.digit_patches(2, mnist_path=str(p))
    assert out.shape == (2, 50, 50)
    np.savez(tmp_path / "m.npz", x_test=imgs)
    assert A.digit_patches(3, mnist_path=str(tmp_path / "m.npz")).shape == (3, 50, 50)
    bad = tmp_path / "bad"; bad.write_bytes(b"\x00" * 32)
    with pytest.raises(ValueError, match="2051"):
        A.digit_patches(1, mnist_path=str(bad))


def test_kruskal_posthoc_bonferroni():
    rng = np.random.default_rng(0)
    sets = {"leuko": rng.beta(20, 1, 150), "same": rng.beta(20, 1, 150), "noise": rng.beta(2, 2, 150)}
    kw, pairs = A.kruskal_posthoc(sets)
    assert kw["p"] < 1e-20 and kw["n"] == 450 and len(pairs) == 3
    assert np.allclose(pairs.p_bonferroni, np.minimum(3 * pairs.p_raw, 1))
    row = pairs.query("a == 'leuko' and b == 'noise'").iloc[0]
    assert row.reject and row["effect_P(a>b)"] > 0.95
    s = A.confidence_summary(sets)
    assert list(s.set) == list(sets) and (s["sem"] > 0).all()


def test_ood_auroc():
    rng = np.random.default_rng(0)
    assert A.ood_auroc(rng.uniform(0.8, 1, 50), rng.uniform(0, 0.7, 50)) == 1.0
    assert 0.4 < A.ood_auroc(rng.random(500), rng.random(500)) < 0.6
    with pytest.raises(ValueError):
        A.ood_auroc([], [0.1])


def test_mislabel_detector_precision_recall():
    rng = np.random.default_rng(0)
    n = 400; true = rng.integers(0, 4, n); label = true.copy()
    bad = rng.random(n) < 0.1; label[bad] = (true[bad] + 1) % 4
    pred = true.copy(); conf = np.where(bad, 0.99, rng.uniform(0.5, 1, n))   # a perfect model of the true class
    r = A.mislabel_detection(pred, conf, label, true, 0.95)
    assert r["precision"] == 1.0 and r["recall"] == 1.0 and r["n_flagged"] == bad.sum()
    pr = A.mislabel_pr_curve(pred, conf, label, true)
    assert (pr.precision == 1.0).all() and pr.recall.max() == 1.0


def test_calibrated_scores_and_ood_table():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (30, 8, 4))
    s = A.calibrated_scores(z, z.mean(0), 1.0, 1.0, "std")
    assert s["conf"].shape == (8,) and np.allclose(s["probs"].sum(1), 1) and ((0 <= s["conf"]) & (s["conf"] <= 1)).all()
    flat = A.calibrated_scores(z, z.mean(0), 1e3, 1e3, "std")      # huge temperature: samples agree, softmax flat
    assert (flat["conf"] > 0.99).all() and np.allclose(flat["freq_conf"], 0.25, atol=0.01)
    scores = {"in": {"conf": rng.uniform(0.8, 1, 40), "freq_conf": rng.uniform(0.8, 1, 40)},
              "out": {"conf": rng.uniform(0, 0.5, 30), "freq_conf": rng.uniform(0.8, 1, 30)}}
    t = A.ood_table(scores, "in")
    assert list(t.set) == ["in", "out"] and t.auroc_vi[1] == 1.0 and 0.3 < t.auroc_freq[1] < 0.7
    assert np.isnan(t.auroc_vi[0]) and (t.n == [40, 30]).all()


def test_take_is_seeded_subset():
    a = A.take(10, 50, 3)
    assert len(a) == 10 and len(set(a)) == 10 and (np.diff(a) > 0).all() and (A.take(10, 50, 3) == a).all()
    assert len(A.take(10, 4, 0)) == 4


def test_kruskal_identical_values_do_not_crash():
    kw, pairs = A.kruskal_posthoc({"a": np.ones(5), "b": np.ones(4)})
    assert np.isnan(kw["H"]) and len(pairs) == 1
