"Whole-frame scanning against the segmentation path on phantom frames (tiny untrained model, a few frames)."
import numpy as np
import pandas as pd
import pytest
import torch

from leukoxai_nb import scan as S
from leukoxai_nb import preprocessing as pp
from leukoxai_nb.models import build_model


@pytest.fixture(scope="module")
def model():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    torch.manual_seed(0)
    yield build_model("lenet5", 0.25).eval()
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def frames():
    return S.phantom_scan_frames(2, seed=0, n_background=12)


def test_window_grid_covers_the_frame():
    assert list(S.window_starts(120, 50, 25)) == [0, 25, 50, 70]
    assert list(S.window_starts(100, 50, 25)) == [0, 25, 50]
    with pytest.raises(ValueError, match="larger than the frame"): S.window_starts(40, 50, 25)
    with pytest.raises(ValueError, match="stride"): S.window_starts(100, 50, 0)


def test_windows_are_normalised_like_patches():
    rng = np.random.default_rng(0)
    ph = rng.uniform(-1, 5, (120, 130)).astype(np.float32)
    w, ys, xs = S.frame_windows(ph, 50, 25)
    assert w.shape == (len(ys), len(xs), 50, 50)
    i, j = 2, 3
    ref = pp.normalize_patch(ph[ys[i]:ys[i] + 50, xs[j]:xs[j] + 50])
    assert np.array_equal(w[i, j], ref) and w.min() >= 0 and w.max() <= 1
    with pytest.raises(ValueError, match="2-D"): S.frame_windows(ph[None])


def test_scan_frame_maps_and_detections(model, frames):
    ph = frames["phase"][0]
    r = S.scan_frame(ph, model)
    assert r.probs.shape == (4, 15, 20) and np.allclose(r.probs.sum(0), 1, atol=1e-5)
    assert r.score.shape == (15, 20) and r.seconds > 0
    # the probability map is the model on that window, batched or not
    w, ys, xs = S.frame_windows(ph)
    with torch.no_grad(): p = torch.softmax(model(torch.from_numpy(w[4, 7])[None, None]), 1)[0].numpy()
    assert np.allclose(r.probs[:, 4, 7], p, atol=1e-5)
    d = r.detections
    assert list(d.columns) == ["y", "x", "cls", "prob", "score"] and len(d) > 0 and (d["score"] >= 0.15).all()
    # non-maximum suppression: no two detections are grid neighbours
    cy, cx = r.centres
    assert len(d) <= (r.score >= 0.15).sum()
    r0 = S.scan_frame(ph, model, refine=False)
    rows = np.searchsorted(cy, r0.detections["y"]); cols = np.searchsorted(cx, r0.detections["x"])
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            assert max(abs(rows[a] - rows[b]), abs(cols[a] - cols[b])) > 1
    # an empty frame gives no detections with the phase objectness
    assert len(S.scan_frame(np.zeros((200, 200), np.float32), model).detections) == 0
    with pytest.raises(ValueError, match="objectness"): S.scan_frame(ph, model, objectness="nope")
    rr = S.scan_frame(ph, model, recentre=True)
    assert np.allclose(rr.detections[["y", "x"]], r.detections[["y", "x"]])
    y0, x0 = rr.detections[["y", "x"]].iloc[0]
    patch = pp.normalize_patch(pp.extract_patch(ph, (y0, x0), 50))
    with torch.no_grad(): q = torch.softmax(model(torch.from_numpy(patch)[None, None]), 1)[0].numpy()
    assert rr.detections["cls"].iloc[0] == q.argmax() and abs(rr.detections["prob"].iloc[0] - q.max()) < 1e-5
    rc = S.scan_frame(ph, model, objectness=lambda win, probs: probs[:, 0])
    assert np.allclose(rc.score, rc.probs[0], atol=1e-6)


def test_matching_and_metrics():
    truth = pd.DataFrame(dict(y=[100.0, 200.0, 300.0], x=[100.0, 300.0, 50.0],
                              kind=["leukocyte", "thrombocyte", "leukocyte"], true_class=["lymphocyte", "", "eosinophil"]))
    det = pd.DataFrame(dict(y=[104.0, 96.0, 210.0], x=[100.0, 100.0, 290.0], cls=[1, 0, 3]))
    assert list(S.match_detections(det, truth, 25)) == [0, -1, 1]      # one to one: the nearer detection wins
    m = S.frame_metrics(det, truth, 25)
    assert m["recall"] == 0.5 and abs(m["precision"] - 1 / 3) < 1e-12 and m["class_accuracy"] == 1.0
    assert m["false_thrombocyte"] == 1 and m["background_detections"] == 1 and m["n_leukocytes"] == 2
    empty = S.frame_metrics(det.iloc[:0], truth, 25)
    assert empty["recall"] == 0 and np.isnan(empty["precision"])


def test_evaluate_both_paths(model, frames):
    res = S.evaluate_scan(model, frames)
    pf, summ = res["per_frame"], res["summary"]
    assert len(pf) == 4 and set(pf["path"]) == {"scan", "segmentation"}
    assert set(summ["path"]) == {"scan", "segmentation"} and (summ["frames"] == 2).all()
    for m in S.METRICS: assert f"{m}_mean" in summ and f"{m}_std" in summ
    seg = pf[pf["path"] == "segmentation"]
    assert (seg["recall"] > 0.5).all()          # the phantom's cells are found by the paper's threshold
    scan = pf[pf["path"] == "scan"]
    assert (scan["recall"] > 0.5).all()         # and by the phase objectness of the windows
    assert (pf["seconds"] > 0).all()
    txt = S.format_scan_summary(summ)
    assert txt["seconds"].str.endswith("ms").all() and "±" in txt["recall"].iloc[0]
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    obj = frames["objects"]
    ax = S.plot_scan(frames["phase"][0], obj[obj["frame"] == 0], res["detections"]["scan"][0],
                     res["detections"]["segmentation"][0], title="t")
    assert len(ax.collections) >= 3
    plt.close("all")


def test_held_out_frames(frames):
    assert frames["phase"].shape == (2, 382, 512) and frames["pixel_size_um"] > 0
    obj = frames["objects"]
    assert set(obj["frame"]) == {0, 1} and {"y", "x", "kind", "true_class"} <= set(obj.columns)
    from leukoxai_nb.datasets import recording_seed
    assert S.scan_recording_seed(0) not in {recording_seed(0, p, d) for p in ("pool", "donor_test", "outliers") for d in range(8)}
