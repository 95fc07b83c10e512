"Networks, batched variational inference, training and caches (tiny sizes; a toy dataset stands in for the phantom)."
import numpy as np
import pytest
import torch

from leukoxai_nb import models as M


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    "Tiny networks run fastest on one thread, and a shared CPU makes multi-threaded torch very slow."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def toy_data(tmp_path, monkeypatch):
    "Results in a temporary folder and a toy PatchSet in place of load_dataset('synthetic-qpi', 'smoke')."
    monkeypatch.setenv("LEUKOXAI_RESULTS", str(tmp_path))
    toy = M.ToyPatchSet(n_per_class=24, n_donor_test=12, seed=0)
    monkeypatch.setitem(M._DATA, ("synthetic-qpi", "smoke"), (toy, "toy-digest"))
    return toy


def test_shapes_and_attributes():
    lenet = M.build_model("lenet5", 0.25)
    assert lenet(torch.rand(3, 1, 50, 50)).shape == (3, 4)
    assert lenet.last_conv_shape == (120, 1, 1) and not lenet.has_spatial_last_conv
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
    model2, info2 = M.get_trained("lenet5", 0.5, 0, "smoke", device="cpu")
    assert not calls and info2["best_epoch"] == info["best_epoch"]
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
