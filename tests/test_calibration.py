"ECE/MCE against torchmetrics, temperature scaling, VI confidences, Table 2."
import numpy as np
import pytest
import torch
from scipy.special import softmax

from leukoxai_nb import calibration as C

tm = pytest.importorskip("torchmetrics.classification")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_bins", [10, 7])
def test_ece_mce_match_torchmetrics_multiclass(seed, n_bins):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(0, 2, (500, 4)), axis=1)
    target = rng.integers(0, 4, 500)
    conf, correct = probs.max(1), probs.argmax(1) == target
    for norm, ours in (("l1", C.ece), ("max", C.mce)):
        ref = tm.MulticlassCalibrationError(num_classes=4, n_bins=n_bins, norm=norm)(
            torch.tensor(probs, dtype=torch.float64), torch.tensor(target))
        assert abs(ours(conf, correct, n_bins) - ref.item()) < 1e-6, norm


@pytest.mark.parametrize("seed", [0, 1])
def test_ece_mce_match_torchmetrics_binary(seed):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0, 1, 800); correct = rng.uniform(size=800) < conf ** 2
    for norm, ours in (("l1", C.ece), ("max", C.mce)):
        ref = tm.BinaryCalibrationError(n_bins=10, norm=norm)(torch.tensor(conf, dtype=torch.float64),
                                                              torch.tensor(correct.astype(int)))
        assert abs(ours(conf, correct) - ref.item()) < 1e-6, norm


def test_perfect_calibration_gives_small_ece():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.25, 1, 100_000); correct = rng.uniform(size=conf.size) < conf
    assert C.ece(conf, correct) < 0.01


def test_known_values_and_errors():
    half = np.arange(100) % 2 == 0
    assert C.ece(np.full(100, 0.9), half) == pytest.approx(0.4)
    assert C.mce(np.r_[np.full(50, 0.95), np.full(50, 0.55)], np.r_[np.ones(50), np.zeros(50)]) == pytest.approx(0.55)
    assert C.bin_index([1.0])[0] == 9
    with pytest.raises(ValueError, match=r"\[0, 1\]"): C.ece([1.5], [1])
    with pytest.raises(ValueError, match="shape"): C.ece([0.5, 0.6], [1])


def _overconfident(rng, n=3000, factor=3.0):
    z = rng.normal(0, 1.5, (n, 4))
    y = (rng.uniform(size=(n, 1)) > softmax(z, axis=1).cumsum(1)).sum(1)
    return factor * z, y


def test_temperature_never_changes_argmax():
    rng = np.random.default_rng(1)
    for _ in range(5):
        z = rng.normal(0, rng.uniform(0.5, 10), (400, 4)); y = rng.integers(0, 4, 400)
        ts = C.TemperatureScaler().fit(z, y)
        assert ts.temperature_ > 0
        assert (ts.transform(z).argmax(1) == z.argmax(1)).all()


def test_fitted_temperature_above_one_for_overconfident_model():
    logits, y = _overconfident(np.random.default_rng(2))
    ts = C.TemperatureScaler().fit(logits, y)
    assert ts.temperature_ > 1 and 2.4 < ts.temperature_ < 3.6
    under, y2 = _overconfident(np.random.default_rng(3), factor=0.4)
    assert C.TemperatureScaler().fit(under, y2).temperature_ < 1
    p0, p1 = softmax(logits, axis=1), softmax(ts.transform(logits), axis=1)
    assert C.ece(p1.max(1), p1.argmax(1) == y) < C.ece(p0.max(1), p0.argmax(1) == y)


def test_vi_temperature_and_nll():
    rng = np.random.default_rng(4)
    logits, y = _overconfident(rng, n=1500)
    samples = logits[None] + rng.normal(0, 0.5, (16,) + logits.shape)
    ts = C.TemperatureScaler().fit(samples, y)
    assert ts.temperature_ > 1.5
    assert C.nll(samples, y, ts.temperature_) <= C.nll(samples, y) + 1e-12
    # (T, N, C) with identical samples gives the frequentist NLL
    assert C.nll(np.repeat(logits[None], 3, 0), y) == pytest.approx(C.nll(logits, y))
    with pytest.raises(RuntimeError): C.TemperatureScaler().transform(logits)


def test_vi_confidence_definitions():
    rng = np.random.default_rng(5)
    p = softmax(rng.normal(0, 2, (30, 10, 4)), axis=2)
    for m in C.CONF_METRICS:
        pred, conf = C.vi_confidence(p, m)
        assert pred.shape == conf.shape == (10,) and ((conf >= 0) & (conf <= 1)).all()
    assert np.allclose(C.vi_confidence(np.repeat(p[:1], 5, 0), "std")[1], 1.0)
    assert np.array_equal(C.vi_confidence(p, "std")[0], p.mean(0).argmax(1))
    with pytest.raises(ValueError): C.vi_confidence(p, "iqr")


def test_records_and_table2_on_fake_predictions():
    rng = np.random.default_rng(6)

    def split(n, T=12):
        logits, y = _overconfident(rng, n=n)
        vi = logits[None] + rng.normal(0, 1.0, (T, n, 4))
        return dict(idx=np.arange(n), label=y, true_label=y, logits=logits, vi_logits=vi)
    preds = {(a, p, r): {"val": split(300), "test": split(200), "donor_test": split(50)}
             for a in ("lenet5", "alexnet") for p in (0.0, 0.5) for r in range(2)}
    rec = C.calibration_records(preds)
    assert len(rec) == 2 * 2 * (1 + 4) * 2          # arch x run x (p=0: freq; p=0.5: freq + 3 VI) x (uncal, cal)
    fr = rec[~rec.vi]
    acc = fr.pivot_table(index=["arch", "dropout", "run"], columns="calibrated", values="accuracy")
    assert np.allclose(acc[False], acc[True])
    t = C.table2(rec, "smoke")
    assert len(t) == 2 * (2 + 3) and set(t["metric"]) == {"—", "mean", "median", "std.dev."}
    # over-confident fake models: calibration lowers the frequentist ECE
    assert (t[~t.vi]["ece_cal"] < t[~t.vi]["ece_uncal"]).all()
    assert (t["unit"] == "1e-1").all() and t["ece_arrow"].isin(list("↑↗→↘↓")).all()
    assert C.improvement_arrow(30) == "↑" and C.improvement_arrow(15) == "↗" and C.improvement_arrow(0) == "→"
    assert C.improvement_arrow(-15) == "↘" and C.improvement_arrow(-40) == "↓"
    assert C.chosen_dropout("lenet5", [0.0, 0.5]) == 0.5 and C.chosen_dropout("lenet5", [0, 0.25, 0.5]) == 0.25
    assert C.chosen_dropout("alexnet", [0.0, 0.25], vi=True) == 0.25
