"Standard backbones (MONAI ResNet50/DenseNet121, VGG16 from its configuration): sizes, interface, weights loading."
import numpy as np
import pytest
import torch

from leukoxai_nb import backbones as B
from leukoxai_nb import models as M


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_vgg16_published_parameter_count():
    vgg = B.build_backbone("vgg16", n_classes=1000, in_channels=3, input_size=224)
    assert B.n_params(vgg) == B.VGG16_PARAMS == 138_357_544
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vgg.trunk.features) == 13
    assert [m.out_features for m in vgg.head if isinstance(m, torch.nn.Linear)] == [4096, 4096, 1000]
    assert vgg.last_conv_shape == (512, 14, 14)


@pytest.mark.parametrize("arch,tv_total,tv_fc", [("resnet50", 25_557_032, 2048 * 1000 + 1000),
                                                 ("densenet121", 7_978_856, 1024 * 1000 + 1000)])
def test_monai_trunks_match_torchvision_counts(arch, tv_total, tv_fc):
    m = B.build_backbone(arch, in_channels=3)
    assert B.n_params(m, "trunk") == tv_total - tv_fc


@pytest.mark.parametrize("arch", B.BACKBONES)
def test_interface_like_leukonet(arch):
    m = B.build_backbone(arch, dropout=0.5, input_size=64, width=0.125)
    assert (m.arch, m.dropout, m.input_size, m.n_classes) == (arch, 0.5, 64, 4)
    x = torch.rand(3, 1, 50, 50)
    assert m.eval()(x).shape == (3, 4)
    assert m.trunk.resize.channels == 1 and m.trunk.resize.size == 64
    fixed, sampled = m.split_head()
    assert isinstance(sampled[0], torch.nn.Dropout) and isinstance(m.head[-1], torch.nn.Linear)
    assert m.head[-1].out_features == 4
    n_drop = sum(isinstance(k, torch.nn.Dropout) for k in m.head)
    assert n_drop == len(B.BACKBONE_HIDDEN[arch]) and all(k.p == 0.5 for k in m.head if isinstance(k, torch.nn.Dropout))
    assert m.has_spatial_last_conv and m.last_conv_shape[1:] == ((4, 4) if arch == "vgg16" else (2, 2))   # VGG: before its last pool
    from leukoxai_nb.explain import cam_layer
    assert cam_layer(m) is m.get_submodule(B.cam_layer_name(m))
    v = M.vi_logits(m, x, n_samples=8, seed=0)
    assert v.shape == (8, 3, 4) and v.std(0).sum() > 0
    assert torch.allclose(M.freq_logits(m, x), m.eval()(x), atol=1e-5)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="arch must be one of"): B.build_backbone("vgg19")
    with pytest.raises(ValueError, match="dropout"): B.build_backbone("vgg16", dropout=1.0)
    with pytest.raises(ValueError, match="input_size must be >= 32"): B.build_backbone("resnet50", input_size=16)


def _torchvision_like(arch):
    "A state dict named as torchvision names it: trunk keys without 'trunk.', a 3-channel stem, a 1,000-class head."
    src = B.build_backbone(arch, in_channels=3, input_size=64, width=0.125).eval()
    sd = {k.removeprefix("trunk."): v.clone() for k, v in src.state_dict().items() if k.startswith("trunk.")}
    if arch == "densenet121":     # torchvision's DenseNet names: denselayer1.norm1 (MONAI: denselayer1.layers.norm1)
        sd = {k.replace(".layers.", "."): v for k, v in sd.items()}
        sd["classifier.weight"], sd["classifier.bias"] = torch.zeros(1000, src.head[0].in_features), torch.zeros(1000)
    elif arch == "resnet50": sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, src.head[0].in_features), torch.zeros(1000)
    else:
        for i in (0, 3, 6): sd[f"classifier.{i}.weight"], sd[f"classifier.{i}.bias"] = torch.zeros(2, 2), torch.zeros(2)
    return src, sd


@pytest.mark.parametrize("arch", B.BACKBONES)
def test_load_weights_from_a_file_sums_rgb(tmp_path, arch):
    src, sd = _torchvision_like(arch)
    path = tmp_path / f"{arch}.pt"; torch.save(sd, path)
    dst = B.build_backbone(arch, dropout=0.25, input_size=64, width=0.125).eval()
    head_before = {k: v.clone() for k, v in dst.head.state_dict().items()}
    rep = B.load_weights(dst, path)
    assert len(rep["summed_rgb"]) == 1 and rep["skipped_head"]
    x = torch.rand(4, 1, 50, 50)
    with torch.no_grad(): assert torch.allclose(src.trunk(x), dst.trunk(x), atol=1e-4)
    assert all(torch.equal(v, dst.head.state_dict()[k]) for k, v in head_before.items())   # the head is not loaded


def test_load_weights_own_state_dict_round_trip(tmp_path):
    a = B.build_backbone("vgg16", input_size=64, width=0.125)
    torch.save(a.state_dict(), tmp_path / "own.pt")
    b = B.build_backbone("vgg16", input_size=64, width=0.125)
    rep = B.load_weights(b, tmp_path / "own.pt")
    assert rep["summed_rgb"] == [] and all(k.startswith("head.") for k in rep["skipped_head"])
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items() if k.startswith("trunk."))


def test_load_weights_mismatches_name_the_key_and_shapes(tmp_path):
    _, sd = _torchvision_like("resnet50")
    dst = B.build_backbone("resnet50", input_size=64, width=0.125)
    bad = dict(sd); bad["layer1.0.conv1.weight"] = torch.zeros(5, 5, 1, 1)
    with pytest.raises(ValueError, match=r"key 'layer1.0.conv1.weight' has shape \(5, 5, 1, 1\) in the file, \(8, 8, 1, 1\)"):
        B.load_weights(dst, bad)
    miss = dict(sd); del miss["layer4.2.bn3.running_var"]
    with pytest.raises(ValueError, match=r"trunk key 'trunk.layer4.2.bn3.running_var' .* is missing"):
        B.load_weights(dst, miss)
    extra = dict(sd); extra["layer9.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="key 'layer9.weight' .* has no place"):
        B.load_weights(dst, extra)
    with pytest.raises(ValueError, match="has shape"):               # no summing when asked not to
        B.load_weights(dst, sd, sum_rgb=False)
    torch.save({"a": 1}, tmp_path / "not_sd.pt")
    with pytest.raises(ValueError, match="expected a dict of tensors"): B.load_weights(dst, tmp_path / "not_sd.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"): B.load_weights(dst, tmp_path / "nope.pt")
    msg = None
    try: B.load_weights(dst, bad)
    except ValueError as e: msg = str(e)
    assert msg and "\n" not in msg


def test_training_step_and_throughput():
    r = B.training_throughput("resnet50", 32, width=0.125, batch_size=8, steps=1)
    assert r > 0
