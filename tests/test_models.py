"Networks, batched variational inference, training and caches (tiny sizes; a toy dataset stands in for the phantom)."
import numpy as np
import pytest
import torch

from leukoxai_nb import models as M


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # fixtures one_torch_thread, toy_data: conftest.py


def test_shapes_and_attributes():
    lenet = M.build_model("lenet5", 0.25)
    assert lenet(torch.rand(3, 1, 50, 50)).shape == (3, 4)
    # C5 is Linear(16*5*5, 120); dropout after both hidden FC layers (C5, F6); the last conv is C3 (16 x 10 x 10)
    assert lenet.last_conv_shape == (16, 10, 10) and lenet.has_spatial_last_conv
    fcs = [m for m in lenet.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in fcs] == [(400, 120), (120, 84), (84, 4)]
    assert [type(m).__name__ for m in lenet.head] == ["Linear", "ReLU", "SeededDropout", "Linear", "ReLU", "SeededDropout", "Linear"]
    assert M.build_model("alexnet", 0.5, input_size=112, width=0.25, fc_width=0.125).last_conv_shape[1:] == (6, 6)
    alex = M.build_model("alexnet", 0.5, input_size=224, width=0.25)
    assert alex.last_conv_shape[1:] == (13, 13) and alex.has_spatial_last_conv
    assert isinstance(alex.last_conv, torch.nn.Conv2d) and alex.last_conv is alex.trunk[alex._last_conv_idx]
    assert sum(isinstance(m, torch.nn.Dropout) for m in alex.head) == 2
    assert isinstance(alex.head[-1], torch.nn.Linear) and alex.head[-1].out_features == 4
    assert (alex.arch, alex.dropout, alex.input_size) == ("alexnet", 0.5, 224)
    slim = M.build_model("alexnet", 0.5, input_size=64, width=0.25, fc_width=0.125)
    assert slim.head[0].out_features == 512 and slim.head[3].out_features == 512 and slim.last_conv_shape[1:] == (3, 3)
    assert M.build_model("alexnet", 0.5, input_size=64, width=0.25).head[0].out_features == 1024   # fc_width defaults to width
    # gradients come back in the 50 x 50 patch geometry
    x = torch.rand(2, 1, 50, 50, requires_grad=True)
    alex(x)[:, 1].sum().backward()
    assert x.grad.shape == (2, 1, 50, 50) and x.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="arch"): M.build_model("vgg")
    with pytest.raises(ValueError, match="dropout"): M.build_model("lenet5", 1.0)
    with pytest.raises(ValueError, match="too small"): M.build_model("alexnet", input_size=16)
    with pytest.raises(ValueError, match="shape"): M.freq_logits(M.build_model("lenet5"), torch.rand(2, 3, 50, 50))


def test_vi_p0_equals_frequentist_and_seeded():
    x = torch.rand(6, 1, 50, 50)
    m0 = M.build_model("alexnet", 0.0, input_size=64, width=0.25)
    assert torch.allclose(M.vi_logits(m0, x, 4), M.freq_logits(m0, x).expand(4, -1, -1), atol=1e-5)
    m = M.build_model("lenet5", 0.5)
    a, b = M.vi_logits(m, x, 8, seed=5), M.vi_logits(m, x, 8, seed=5)
    assert a.shape == (8, 6, 4) and torch.equal(a, b) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("arch,kw", [("lenet5", {}), ("alexnet", dict(input_size=64, width=0.25))])
def test_batched_vi_equals_full_passes_with_same_masks(arch, kw):
    m = M.build_model(arch, 0.5, **kw).eval()
    x = torch.rand(5, 1, 50, 50)
    with M.fixed_dropout_masks(m, 7, 5, seed=2):
        a = M.vi_logits(m, x, 7, batch_size=5)
        b = M.vi_logits_naive(m, x, 7)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.equal(a[0], a[1])           # the masks really differ between samples
    assert all(not isinstance(h, M.FixedMaskDropout) for h in m.head)


def test_vi_summary():
    z = np.random.default_rng(0).normal(size=(9, 4, 4))
    assert np.allclose(M.vi_summary(z, "mean").sum(1), 1)
    with pytest.raises(ValueError, match="metric"): M.vi_summary(z, "mode")


def test_split_is_stratified_and_pool_only(toy_data):
    sp = M.pool_split(toy_data, 3)
    allidx = np.concatenate(list(sp.values()))
    assert len(np.unique(allidx)) == len(allidx) and (toy_data.group[allidx] == "pool").all()
    counts = np.bincount(toy_data.label[sp["train"]], minlength=4)
    assert counts.max() - counts.min() <= 1
    assert not np.array_equal(M.pool_split(toy_data, 4)["train"], sp["train"])


def test_get_trained_caches_and_reloads_safely(toy_data, tmp_path, monkeypatch):
    model, info = M.get_trained("lenet5", 0.5, 0, "smoke", device="cpu", progress=False)
    path = tmp_path / "smoke" / "models" / "lenet5_p0.50_run0.pt"
    assert path.exists() and info["seed"] == 0 and set(info["split"]) == {"train", "val", "test"}
    blob = torch.load(path, weights_only=True)                      # loads without unpickling code
    assert "state_dict" in blob
    calls = []
    monkeypatch.setattr(M, "train_model", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(M, "train_many", lambda *a, **k: calls.append(1))
    model2, info2 = M.get_trained("lenet5", 0.5, 0, "smoke", device="cpu")
    assert not calls and info2["best_epoch"] == info["best_epoch"] and info2["stop"] == info["stop"]
    assert info["stop"]["stop_reason"] in ("early stopping", "epoch cap")
    x = torch.as_tensor(toy_data.images[:4])
    assert torch.allclose(M.freq_logits(model, x), M.freq_logits(model2, x))
    assert not model2.training


def test_get_predictions_and_table1(toy_data):
    T = M.get_profile("smoke").models.vi_samples
    preds = {(a, p, 0): M.get_predictions(a, p, 0, "smoke", device="cpu")
             for a in ("lenet5", "alexnet") for p in (0.0, 0.5)}
    d = preds[("alexnet", 0.5, 0)]
    assert set(d) == {"val", "test", "donor_test"}
    assert d["test"]["vi_logits"].shape == (T, len(d["test"]["idx"]), 4)
    assert (toy_data.group[d["donor_test"]["idx"]] == "donor_test").all()
    again = M.get_predictions("alexnet", 0.5, 0, "smoke", device="cpu")        # from the cache
    assert np.array_equal(again["test"]["vi_logits"], d["test"]["vi_logits"])
    t = M.table1(preds, "smoke")
    assert len(t) == 2 * (2 + 2) and {"f1_mean", "accuracy_std", "input_px", "data"} <= set(t.columns)
    assert t["accuracy_mean"].between(0, 1).all()
    assert list(M.format_table1(t).columns[:4]) == ["model", "dropout", "vi", "metric"]


def test_early_stopping_rule():
    s = M.EarlyStopping(patience=3, max_epochs=100, min_delta=0.01, lr_patience=1, lr_factor=0.5)
    for v in [1.0, 0.9, 0.95, 0.899, 0.898, 0.5]:      # 0.899, 0.898: new bests, but < 1 % better: no progress
        s.update(v)
        if s.stopped: break
    assert s.stopped and s.reason == "early stopping" and s.epoch == 4 and s.best_epoch == 4 and s.lr_scale == 0.125
    c = M.EarlyStopping(patience=2, max_epochs=3)
    for v in [3, 2, 1]: c.update(v)
    assert c.stopped and c.reason == "epoch cap" and c.summary()["stop_epoch"] == 2
    with pytest.raises(ValueError, match="patience"): M.EarlyStopping(0, 5)


def _train_both(arch, kw, toy, cfg, **train_kw):
    "The one-model-at-a-time reference loop and the wide trainer on the same seeded networks."
    splits = [M.pool_split(toy, r) for _, r in cfg]
    ref, wide = [], []
    for p, r in cfg:
        torch.manual_seed(r); ref.append(M.build_model(arch, p, **kw))
        torch.manual_seed(r); wide.append(M.build_model(arch, p, **kw))
    res_ref = [M.train_model(m, toy.images[sp["train"]], toy.label[sp["train"]], toy.images[sp["val"]],
                             toy.label[sp["val"]], seed=r, progress=False, **train_kw)
               for m, (_, r), sp in zip(ref, cfg, splits)]
    res_wide = M.train_many(wide, toy.images, toy.label, splits, [r for _, r in cfg], progress=False, **train_kw)
    return ref, wide, res_ref, res_wide


@pytest.mark.parametrize("arch,kw", [("lenet5", {}), ("alexnet", dict(input_size=64, width=0.25, fc_width=0.125))])
def test_wide_training_equals_one_model_loop(arch, kw):
    "Each run keeps its init, split, batch order and dropout masks: the wide network = the one-model loop, to float tolerance."
    toy = M.ToyPatchSet(n_per_class=24, n_donor_test=4, seed=1)
    cfg = [(0.0, 0), (0.5, 1), (0.25, 2)]
    ref, wide, rr, rw = _train_both(arch, kw, toy, cfg, max_epochs=3, patience=5, batch_size=16, lr=1e-3,
                                    min_delta=0.0, lr_patience=1, lr_factor=0.5)
    for (h1, s1), (h2, s2), a, b in zip(rr, rw, ref, wide):
        assert s1["stop_epoch"] == s2["stop_epoch"] and s1["best_epoch"] == s2["best_epoch"]
        assert np.allclose(h1["train_loss"], h2["train_loss"], atol=2e-4) and np.allclose(h1["val_loss"], h2["val_loss"], atol=2e-4)
        assert h1["lr"] == h2["lr"]
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(x, y, atol=2e-2, rtol=0), (k, (x - y).abs().max())
        assert (torch.cat([(x - y).abs().flatten() for x, y in zip(a.state_dict().values(), b.state_dict().values())]) < 1e-4).float().mean() > 0.99
        assert not b.training
    # with dropout the runs really differ from each other, and the dropout masks are the run's own
    assert not torch.allclose(ref[1].head[0].weight, ref[2].head[0].weight)


def test_wide_training_stops_members_independently():
    toy = M.ToyPatchSet(n_per_class=24, n_donor_test=4, seed=2)
    cfg = [(0.0, 0), (0.5, 1)]
    _, _, rr, rw = _train_both("lenet5", {}, toy, cfg, max_epochs=30, patience=2, batch_size=16, lr=3e-3, min_delta=0.02)
    assert [s["stop_epoch"] for _, s in rr] == [s["stop_epoch"] for _, s in rw]
    assert all(s["stop_reason"] == "early stopping" for _, s in rw)


def test_fit_chunks_in_two_processes_equals_in_process():
    toy = M.ToyPatchSet(n_per_class=12, n_donor_test=4, seed=3)
    kw = dict(max_epochs=2, patience=3, batch_size=16, lr=1e-3, min_delta=0.0, lr_patience=0, lr_factor=0.5)
    st = [dict(model=M.model_settings("lenet5", p, "smoke"), seed=r, **kw) for p, r in [(0.0, 0), (0.5, 1)]]
    sp = [M.pool_split(toy, w["seed"]) for w in st]
    chunks = [(st[:1], sp[:1]), (st[1:], sp[1:])]
    a = M.fit_chunks(chunks, toy.images, toy.label, "cpu", threads=1, workers=1, progress=False)
    b = M.fit_chunks(chunks, toy.images, toy.label, "cpu", threads=1, workers=2, progress=False)
    for ca, cb in zip(a, b):
        for (sa, ha, xa), (sb, hb, xb) in zip(ca, cb):
            assert xa == xb and np.allclose(ha["val_loss"], hb["val_loss"], atol=1e-6)
            assert all(torch.allclose(sa[k], sb[k], atol=1e-5) for k in sa)


def test_spread_verdict_agrees_with_numbers():
    v = M.spread_verdict("A beats B", [0.9, 0.91, 0.92], [0.80, 0.82, 0.81], "A", "B")
    assert v["verdict"] == "holds" and v["difference"] > v["spread"] and "0.910 ± 0.010" in v["text"]
    assert v["text"].startswith("A beats B: holds")
    v = M.spread_verdict("A beats B", [0.9, 0.7, 0.8], [0.78, 0.82, 0.80], "A", "B")
    assert v["verdict"] == "inconclusive at this profile" and abs(v["difference"]) <= v["spread"]
    assert M.spread_verdict("A beats B", [0.5, 0.51, 0.49], [0.9, 0.91, 0.92])["verdict"] == "does not hold"
    # equivalence within a margin: holds only when all of d ± s lies inside ±margin
    eq = lambda a, b, m, **k: M.spread_verdict("A = B", a, b, kind="equal", margin=m, **k)["verdict"]
    assert eq([0.5, 0.51, 0.49], [0.9, 0.91, 0.92], 0.02) == "does not hold"
    assert eq([0.50, 0.51, 0.49], [0.505, 0.5, 0.495], 0.05) == "holds"
    assert eq([0.5, 0.6, 0.4], [0.52, 0.5, 0.48], 0.02) == "inconclusive at this profile"   # huge spread: no verdict
    assert eq([0.5, 0.6, 0.4], [0.52, 0.5, 0.48], 0.5) == "holds"
    with pytest.raises(ValueError, match="margin"): M.spread_verdict("A = B", [0.5, 0.6], [0.5, 0.5], kind="equal")
    # paired: the sd of per-run differences, not of the two sets
    a, b = [0.70, 0.80, 0.90], [0.701, 0.802, 0.899]
    v = M.spread_verdict("VI = freq", a, b, kind="equal", margin=0.01, paired=True)
    assert v["verdict"] == "holds" and v["spread"] < 0.01 and "paired" in v["text"]
    assert eq(a, b, 0.01) == "inconclusive at this profile"                 # unpaired: the runs' spread swamps it
    with pytest.raises(ValueError, match="equal lengths"): M.spread_verdict("x", [1, 2], [1, 2, 3], paired=True)
    assert M.spread_verdict("one run", [0.9], [0.5])["verdict"] == "inconclusive at this profile"
    assert M.spread_verdict("rho > 0", [0.3, 0.35, 0.4], 0.0)["verdict"] == "holds"
    # a Table-1-like frame: the verdict written from it agrees with its means and sd's
    import pandas as pd
    per = pd.DataFrame(dict(arch=["a"] * 3 + ["b"] * 3, f1=[0.9, 0.92, 0.91, 0.85, 0.84, 0.86]))
    t = per.groupby("arch").f1.agg(["mean", "std"])
    v = M.spread_verdict("a > b", per[per.arch == "a"].f1, per[per.arch == "b"].f1)
    assert f"{t.loc['a', 'mean']:.3f} ± {t.loc['a', 'std']:.3f}" in v["text"]
    assert (v["verdict"] == "holds") == (t.loc["a", "mean"] - t.loc["b", "mean"] > np.hypot(*t["std"]))


def test_train_grid_and_stop_table(toy_data):
    cfg = [("lenet5", 0.0, 0), ("lenet5", 0.5, 0)]
    done = M.train_grid(cfg, "smoke", device="cpu", progress=False)
    assert done == cfg and M.train_grid(cfg, "smoke", device="cpu", progress=False) == []     # cached
    runs = M.training_runs(cfg, "smoke")
    assert set(runs.stop_reason) <= {"early stopping", "epoch cap"} and (runs.best_epoch <= runs.stop_epoch).all()
    t = M.stop_reason_table(runs)
    assert t.iloc[-1].runs == 2 and t.iloc[-1].early_stopping + t.iloc[-1].epoch_cap == 2


@pytest.fixture
def smoke_data_only(tmp_path, monkeypatch):
    "The smoke phantom (built where the results live), linked into an empty results folder: models land in tmp_path."
    from leukoxai_nb.core import results_path
    from leukoxai_nb.datasets import load_dataset
    load_dataset("synthetic-qpi", "smoke")
    (tmp_path / "smoke").mkdir(); (tmp_path / "smoke" / "data").symlink_to(results_path("smoke", "data", mkdir=False))
    monkeypatch.setenv("LEUKOXAI_RESULTS", str(tmp_path))
    monkeypatch.setattr(M, "_DATA", {})
    return tmp_path


def test_relabel_path_end_to_end_smoke(smoke_data_only):
    "A review's corrected labels train and evaluate a network of their own; counts say what changed; bad ids stop it."
    from leukoxai_nb import review as R
    from leukoxai_nb.core import CLASSES
    ds, _ = M._dataset("synthetic-qpi", "smoke")
    where = lambda i: dict(donor=int(ds.donor[i]), frame=int(ds.frame[i]), object=int(ds.object_id[i]))
    wrong = np.flatnonzero(ds.label != ds.true_label)[:3]; right = np.flatnonzero(ds.label == ds.true_label)[:2]
    assert len(wrong) == 3
    st = R.AnnotationStore(smoke_data_only / "smoke" / "review" / "annotations.jsonl")
    for i in wrong: st.append(f"c{i}", "relabel", label=CLASSES[ds.true_label[i]], reviewer="t", where=where(i))
    st.append(f"c{right[0]}", "unusable", reviewer="t", where=where(right[0]))
    st.append(f"c{right[1]}", "keep", label=CLASSES[ds.label[right[1]]], reviewer="t", where=where(right[1]))
    name, counts = M.relabelled_dataset("synthetic-qpi", "smoke", "results/smoke/review/annotations.jsonl")   # as -p passes it
    assert name.startswith("synthetic-qpi" + M.RELABEL_TAG) and counts["annotations"] == str(st.path.resolve())
    assert (counts["relabelled"], counts["rejected"], counts["kept"]) == (3, 1, 1) and counts["changes"].values.sum() == 3
    assert counts["label_errors_after"] == counts["label_errors_before"] - 3 and counts["n_after"] == len(ds) - 1
    rl, _ = M._dataset(name, "smoke")
    keep = np.setdiff1d(np.arange(len(ds)), right[:1])
    expect = ds.label.copy(); expect[wrong] = ds.true_label[wrong]
    assert np.array_equal(rl.label, expect[keep]) and np.array_equal(rl.true_label, ds.true_label[keep])
    # trained and evaluated on the corrected labels, cached beside (not over) the normal network
    pred = M.get_predictions("lenet5", 0.0, 0, "smoke", name, "cpu", progress=False)
    for sp in M.PRED_SPLITS: assert np.array_equal(pred[sp]["label"], rl.label[pred[sp]["idx"]])
    own = M._model_path("lenet5", 0.0, 0, "smoke", 0, name)
    assert own.exists() and own.name.endswith(f"_{name.split('+', 1)[1]}.pt")
    assert not M._model_path("lenet5", 0.0, 0, "smoke").exists()
    import json, torch
    settings = json.loads(torch.load(own, weights_only=True)["settings_json"])
    assert settings["dataset"] == name and settings["data_digest"] == M._dataset(name, "smoke")[1]
    assert M.train_grid([("lenet5", 0.0, 0)], "smoke", name, "cpu", progress=False) == []          # reused, not retrained
    # another decision: another digest, another data set name; outlines alone do not change it
    st.append(f"c{right[1]}", "keep", label=CLASSES[ds.label[right[1]]], reviewer="t", where=where(right[1]),
              outlines={"nucleus": [[20, 20], [30, 20], [30, 30]]})
    assert M.relabelled_dataset("synthetic-qpi", "smoke", st.path)[0] == name
    st.append(f"c{right[1]}", "not_leukocyte", reviewer="t", where=where(right[1]))
    assert M.relabelled_dataset("synthetic-qpi", "smoke", st.path)[0] != name
    # an unknown cell id: one line naming the file, the line and the id
    st.append(f"c{len(ds) + 5}", "relabel", label=CLASSES[0], reviewer="t")
    with pytest.raises(R.AnnotationError) as e: M.relabelled_dataset("synthetic-qpi", "smoke", st.path)
    msg = str(e.value)
    assert "\n" not in msg and str(st.path) in msg and "line 8" in msg and f"unknown cell id 'c{len(ds) + 5}'" in msg
    with pytest.raises(FileNotFoundError, match="relabels="): M.relabelled_dataset("synthetic-qpi", "smoke", "nowhere.jsonl")


def test_relabels_is_a_chapter_02_parameter(repo_root):
    from leukoxai_nb.runner import chapter_parameters, check_parameters
    nb = repo_root / "nbs" / "02_models.ipynb"
    assert chapter_parameters(nb)["relabels"][0] == "str"
    assert check_parameters([nb], {"relabels": "results/smoke/review/annotations.jsonl"})[nb]["relabels"].endswith(".jsonl")
