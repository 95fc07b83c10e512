"""The architecture registry: every entry builds, backbones train one at a time through the grid path (seeded, cached),
display names, and the profiles' `models.architectures` / `backbone_dropouts` / `backbone_runs` checked with one-line errors."""
import copy

import numpy as np
import pytest
import torch

from leukoxai_nb import core
from leukoxai_nb import models as M
from leukoxai_nb import backbones as B


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # fixtures one_torch_thread, toy_data: conftest.py


def _profiles_with(**models_keys):
    "The real profiles with keys of smoke's `models` section replaced."
    p = copy.deepcopy(core._load_profiles())
    p["smoke"]["models"].update(models_keys)
    return p


@pytest.fixture
def tiny_backbone_smoke(monkeypatch):
    "The smoke profile training LeNet5 and a tiny ResNet50 (32 px, x0.125) for a few epochs."
    p = _profiles_with(architectures=["lenet5", "resnet50"], backbone_input=32, backbone_width=0.125,
                       backbone_fc_width=0.125, backbone_dropouts=[0.5], max_epochs=3, patience=2)
    monkeypatch.setattr(core, "_load_profiles", lambda: p)


def test_every_registry_entry_builds_with_the_common_interface():
    assert M.ARCHITECTURES == tuple(M.REGISTRY) and set(M.PAPER_ARCHITECTURES) < set(M.ARCHITECTURES)
    assert set(B.BACKBONES) == {a for a, e in M.REGISTRY.items() if e["settings"] == "backbone"}
    x = torch.rand(2, 1, 50, 50)
    for arch, e in M.REGISTRY.items():
        kw = dict(input_size=64, width=0.125, fc_width=0.125) if arch != "lenet5" else {}
        m = M.build_model(arch, 0.5, **kw).eval()
        assert m.arch == arch and m(x).shape == (2, 4) and m.input_size == (64 if kw else 32)
        fixed, sampled = m.split_head()
        assert isinstance(sampled[0], torch.nn.Dropout)
        assert M.is_wide(arch) == (arch in M.PAPER_ARCHITECTURES)
        assert isinstance(m, M.LeukoNet) == (arch in M.PAPER_ARCHITECTURES)
        assert M.display_name(arch) == e["name"]
    assert [M.display_name(a) for a in M.ARCHITECTURES] == ["LeNet5", "AlexNet", "ResNet50", "DenseNet121", "VGG16"]
    assert all(B.BACKBONE_NAMES[a] == M.display_name(a) for a in B.BACKBONES)
    with pytest.raises(ValueError, match="arch must be one of"): M.display_name("resnet18")
    with pytest.raises(ValueError, match="arch must be one of"): M.build_model("resnet18")
    with pytest.raises(ValueError, match=r"arch must be one of \('lenet5', 'alexnet'\)"): M.LeukoNet("resnet50")


def test_model_settings_and_note_state_the_backbone_sizes():
    for prof in core.PROFILE_NAMES:
        for a in M.profile_architectures(prof):
            s = M.model_settings(a, 0.5, prof)
            assert M.build_model(**s).input_size == s["input_size"]
    s = M.model_settings("resnet50", 0.5, "quick"); mp = core.get_profile("quick").models
    assert (s["input_size"], s["width"], s["fc_width"]) == (mp.backbone_input, mp.backbone_width, mp.backbone_fc_width)
    assert M.model_settings("alexnet", 0.0, "quick") == dict(arch="alexnet", dropout=0.0, input_size=mp.alexnet_input,
                                                               width=mp.alexnet_width, fc_width=mp.alexnet_fc_width)
    assert M.model_settings("lenet5", 0.25, "quick") == dict(arch="lenet5", dropout=0.25, input_size=32, width=1.0)
    note = M.model_note("quick")
    for a in M.profile_architectures("quick"):
        if not M.is_wide(a):
            assert f"{M.display_name(a)} {mp.backbone_input} px" in note and "Grad-CAM" in note and "paper: 224 px" in note
    paper = M.model_note("paper")
    assert all(f"{M.display_name(a)} 224 px" in paper for a in B.BACKBONES) and "x1.0, FC width x1.0, p =" in paper
    assert "ResNet50" not in M.model_note("smoke") or "resnet50" in core.get_profile("smoke").models.architectures


def test_profiles_train_the_backbones_they_promise():
    assert "resnet50" in M.profile_architectures("quick")          # quick: at least one backbone (Table 1)
    assert set(B.BACKBONES) <= set(M.profile_architectures("paper"))
    assert core.get_profile("paper").models.backbone_input == 224
    q = M.profile_configs("quick")
    n = len(M.arch_runs("resnet50", "quick"))
    assert n >= 2 and len(M.arch_runs("lenet5", "quick")) >= n     # a spread for every Table 1 row
    assert len([c for c in q if c[0] == "resnet50"]) == n * len(M.arch_dropouts("resnet50", "quick"))
    assert len(M.arch_runs("vgg16", "paper")) == core.get_profile("paper").models.n_runs == 15
    assert all(p > 0 for p in M.arch_dropouts("resnet50", "quick"))  # VI (chapters 03, 05, 06) needs p > 0
    from leukoxai_nb.calibration import chosen_dropout
    for prof in core.PROFILE_NAMES:                                 # the later chapters' rate is one that was trained
        for a in M.profile_architectures(prof):
            assert chosen_dropout(a, M.arch_dropouts(a, prof), vi=True) in M.arch_dropouts(a, prof)
    assert M.trained_dropout("resnet50", 0.0, "quick") == max(M.arch_dropouts("resnet50", "quick"))
    assert M.trained_dropout("lenet5", 0.25, "quick") == 0.25


@pytest.mark.parametrize("key,value,match", [
    ("architectures", ["lenet5", "resnet"], r"profile 'smoke': models.architectures lists 'resnet'; expected names among "
                                            r"lenet5, alexnet, resnet50, densenet121, vgg16"),
    ("architectures", [], r"profile 'smoke': models.architectures must be a non-empty list"),
    ("architectures", ["lenet5", "lenet5"], r"profile 'smoke': models.architectures repeats a name"),
    ("backbone_dropouts", [0.3], r"profile 'smoke': models.backbone_dropouts must be a non-empty subset of models.dropouts"),
    ("backbone_runs", 2, r"profile 'smoke': models.backbone_runs must be an integer in 1..n_runs \(1\), got 2"),
])
def test_bad_profile_architectures_are_one_line_errors(monkeypatch, key, value, match):
    p = _profiles_with(**{key: value, **({"architectures": ["lenet5", "resnet50"]} if key.startswith("backbone") else {})})
    monkeypatch.setattr(core, "_load_profiles", lambda: p)
    with pytest.raises(ValueError, match=match) as e: M.profile_configs("smoke")
    assert "\n" not in str(e.value)


def test_backbone_trains_through_the_grid_one_at_a_time_and_is_cached(toy_data, tiny_backbone_smoke, monkeypatch):
    cfg = M.profile_configs("smoke")
    assert [c for c in cfg if c[0] == "resnet50"] == [("resnet50", 0.5, 0)]
    assert M._chunks([("resnet50", 0.5, r) for r in range(3)] + [("lenet5", 0.0, r) for r in range(3)], 4, 1) == \
        [[("lenet5", 0.0, 0), ("lenet5", 0.0, 1), ("lenet5", 0.0, 2)]] + [[("resnet50", 0.5, r)] for r in range(3)]
    wide = []
    real_many = M.train_many
    monkeypatch.setattr(M, "train_many", lambda models, *a, **k: wide.append([m.arch for m in models]) or real_many(models, *a, **k))
    done = M.train_grid(cfg, "smoke", device="cpu", progress=False)
    assert done == cfg and all(set(w) == {"lenet5"} for w in wide)   # the backbone never went through train_many
    assert M.train_grid(cfg, "smoke", device="cpu", progress=False) == []                      # cached
    model, info = M.get_trained("resnet50", 0.5, 0, "smoke", device="cpu", progress=False)
    assert isinstance(model, B.BackboneNet) and model.input_size == 32 and not model.training
    assert info["stop"]["stop_reason"] in ("early stopping", "epoch cap") and len(info["history"]["val_loss"]) <= 3
    pred = M.get_predictions("resnet50", 0.5, 0, "smoke", device="cpu", progress=False)
    T = core.get_profile("smoke").models.vi_samples
    assert pred["test"]["vi_logits"].shape == (T, len(pred["test"]["idx"]), 4)
    t = M.table1({c: M.get_predictions(*c, "smoke", device="cpu", progress=False) for c in cfg}, "smoke")
    r = t[t.model == "ResNet50"]
    assert len(r) == 3 and (r.input_px == 32).all() and (r.width == 0.125).all() and (r.fc_width == 0.125).all()


def test_backbone_training_is_seeded_and_reproducible(toy_data):
    sp = M.pool_split(toy_data, 0)
    w = dict(model=dict(arch="resnet50", dropout=0.5, input_size=32, width=0.125, fc_width=0.125), seed=5, batch_size=16,
             lr=1e-3, max_epochs=2, patience=2, min_delta=0.0, lr_patience=1, lr_factor=0.5, plateau_margin=0.0)
    a = M._fit_chunk([w], [sp], toy_data.images, toy_data.label, "cpu", 1)
    b = M._fit_chunk([w], [sp], toy_data.images, toy_data.label, "cpu", 1)
    (sa, ha, _), (sb, hb, _) = a[0], b[0]
    assert sa.keys() == sb.keys() and all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6) for k in sa)
    assert np.allclose(ha["val_loss"], hb["val_loss"], atol=1e-6)
    c = M._fit_chunk([dict(w, seed=6)], [sp], toy_data.images, toy_data.label, "cpu", 1)[0][0]
    assert not torch.allclose(sa["head.0.weight"], c["head.0.weight"])        # another seed, another network
    assert any(k.endswith("running_mean") for k in sa)                            # BatchNorm statistics are kept


def test_a_single_patch_last_batch_does_not_break_batchnorm():
    torch.manual_seed(0)
    m = M.build_model("resnet50", 0.0, 32, 0.125, fc_width=0.125)
    x, y = np.random.default_rng(0).random((17, 50, 50), dtype=np.float32), np.arange(17) % 4
    hist, stop = M.train_model(m, x, y, x[:8], y[:8], max_epochs=1, patience=1, batch_size=8, lr=1e-3, seed=0,
                               progress=False)
    assert len(hist["train_loss"]) == 1 and np.isfinite(hist["train_loss"][0])


def test_weights_parameter_starts_the_backbone_from_the_file_and_keys_the_cache(toy_data, tiny_backbone_smoke, tmp_path,
                                                                                 monkeypatch):
    "`-p weights=` of chapter 02: checked and recorded once; training starts from the file; later lookups find it."
    cfg = [("resnet50", 0.5, 0)]
    torch.manual_seed(123)
    src = M.build_model(**M.model_settings("resnet50", 0.5, "smoke"))
    file = tmp_path / "resnet50_start.pt"
    torch.save({k: v for k, v in src.state_dict().items() if k.startswith("trunk.")}, file)
    rec = M.record_weights(str(file), "smoke")
    assert list(rec) == ["resnet50"] and rec["resnet50"]["sha256"] == core.sha256_file(file)
    assert M.backbone_weights("smoke") == rec and "started from resnet50_start.pt" in M.model_note("smoke")
    starts = []
    real = M.train_model
    def spy(m, *a, **k):
        starts.append({n: t.detach().clone() for n, t in m.state_dict().items()})
        return real(m, *a, **k)
    monkeypatch.setattr(M, "train_model", spy)
    assert M.train_grid(cfg, "smoke", device="cpu", progress=False) == cfg
    first_conv = next(k for k in starts[0] if k.startswith("trunk.") and k.endswith("weight"))
    assert torch.equal(starts[0][first_conv], src.state_dict()[first_conv])      # trained from the file, not from the seed
    assert M.train_grid(cfg, "smoke", device="cpu", progress=False) == []       # chapters 03-06 find the same cache
    model, info = M.get_trained("resnet50", 0.5, 0, "smoke", device="cpu", progress=False)
    assert len(starts) == 1
    M.record_weights("", "smoke")                                               # back to random starts: retrained
    assert M.backbone_weights("smoke") == {} and "random start" in M.model_note("smoke")
    assert M.train_grid(cfg, "smoke", device="cpu", progress=False) == cfg
    assert not torch.equal(starts[1][first_conv], src.state_dict()[first_conv])


def test_weights_parameter_errors_name_the_file_and_the_key(toy_data, tiny_backbone_smoke, tmp_path):
    bad = tmp_path / "bad.pt"
    sd = {k: v for k, v in M.build_model(**M.model_settings("resnet50", 0.5, "smoke")).state_dict().items()
          if k.startswith("trunk.")}
    k0 = next(iter(sd)); good_sd = dict(sd); sd[k0] = torch.zeros(3, 3)
    torch.save(sd, bad)
    with pytest.raises(ValueError, match=rf"bad.pt: key '{k0}' has shape \(3, 3\) in the file") as e:
        M.record_weights(str(bad), "smoke")
    assert "\n" not in str(e.value) and M.backbone_weights("smoke") == {}      # nothing recorded
    with pytest.raises(FileNotFoundError, match="resnet50=/no/such.pt: no such file"): M.record_weights("/no/such.pt", "smoke")
    with pytest.raises(ValueError, match="'vgg16' is not a backbone this profile trains"):
        M.record_weights(f"vgg16={bad}", "smoke")
    good = tmp_path / "good.pt"
    torch.save(good_sd, good)
    rec = M.record_weights(str(good), "smoke")
    good.write_bytes(good.read_bytes() + b"\0")                                 # the file changed after chapter 02
    with pytest.raises(ValueError, match="changed since chapter 02 recorded it"):
        M.load_start_weights(M.build_model(**M.model_settings("resnet50", 0.5, "smoke")), rec["resnet50"])
