"""leukoxai_nb.explain on the tiny network of leukoxai_nb.testing: every method gives finite (B, 50, 50) maps that depend on the target class."""
import numpy as np
import pytest
import torch
from captum.attr import Occlusion
from leukoxai_nb import explain as X
from leukoxai_nb.testing import TinyNet, tiny_patches, FAST_SETTINGS


@pytest.fixture(scope="module")
def patches(): return tiny_patches()


@pytest.mark.parametrize("method", sorted(X.METHODS))
def test_method_shape_finite_and_target_dependent(method, patches):
    model = TinyNet(True)
    a = X.explain(method, model, patches, [0, 1, 2], **FAST_SETTINGS.get(method, {}))
    b = X.explain(method, model, patches, [1, 2, 3], **FAST_SETTINGS.get(method, {}))
    assert a.shape == (3, 50, 50) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.abs(a - b).max() > 0


@pytest.mark.parametrize("method", sorted(X.METHODS))
def test_lenet_like(method, patches):
    model = TinyNet(False)
    if X.METHODS[method].needs_spatial_conv:
        with pytest.raises(X.NotApplicableError, match="spatial"):
            X.explain(method, model, patches, 0)
    else:
        a = X.explain(method, model, patches[:2], 1, **FAST_SETTINGS.get(method, {}))
        assert a.shape == (2, 50, 50) and np.isfinite(a).all()


def test_bad_inputs(patches):
    m = TinyNet()
    with pytest.raises(ValueError, match="unknown explanation method"): X.explain("nope", m, patches, 0)
    with pytest.raises(ValueError, match="one per patch"): X.explain("saliency", m, patches, [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 4\)"): X.explain("saliency", m, patches, 7)
    with pytest.raises(ValueError, match="B, 1, H, W"): X.explain("saliency", m, np.zeros((2, 3, 50, 50)), 0)


def test_occlusion_mean_matches_captum_on_disjoint_windows(patches):
    m = TinyNet().eval(); x = patches[:1]
    block = x.reshape(1, 10, 5, 10, 5).mean((2, 4)).repeat(5, 1).repeat(5, 2)[:, None]
    ref = Occlusion(X.ProbModel(m)).attribute(torch.from_numpy(x[:, None]), target=2, sliding_window_shapes=(1, 5, 5),
                                              strides=(1, 5, 5), baselines=torch.from_numpy(block).float())
    ours = X.explain("occlusion_mean", m, x, 2, window=5, stride=5)
    np.testing.assert_allclose(ours, ref[:, 0].numpy(), atol=1e-6)
    assert np.abs(X.explain("occlusion_mean", m, np.full((1, 50, 50), 0.3), 0)).max() < 1e-6


def test_lime_pieces(patches):
    segs = X.slic_segments(patches[0])
    assert segs.shape == (4, 50, 50) and all(s.min() == 0 and s.max() + 1 == len(np.unique(s)) for s in segs)
    res = X.TileLime(TinyNet(), num_samples=40, seed=1).attribute(patches[:2], [0, 3])
    assert res.parts.shape == (2, 4, 50, 50) and np.allclose(res.maps, res.parts.mean(1))
    again = X.TileLime(TinyNet(), num_samples=40, seed=1).attribute(patches[:2], [0, 3])
    assert np.array_equal(res.maps, again.maps)                      # seeded
    b = X.TileLime(TinyNet(), num_samples=40, seed=1, mode="binary").attribute(patches[:1], 0)
    assert set(np.unique(b.parts)) <= {0.0, 1.0}


def test_feature_maps_every_conv(patches):
    m = TinyNet(False)
    fm = X.feature_maps(m, patches[:2])
    assert len(fm) == 3 and all(v.shape[0] == 2 for v in fm.values())


def test_measurements(patches):
    masks = np.zeros((1, 4, 50, 50), bool); masks[0, 0, 20:30, 20:30] = True
    mp = np.zeros((1, 50, 50)); mp[0, 21:29, 21:29] = 2.0; mp[0, 0, 0] = -5
    mass, area = X.relevance_mass(mp, masks)
    assert mass[0, 0] == 1.0 and np.isclose(area[0, 0], 0.04) and np.isclose(area[0, -1], 0.96)
    with pytest.raises(ValueError, match="REGIONS"): X.relevance_mass(mp, masks[:, :2])
    m = TinyNet()
    di = X.deletion_insertion(m, patches[:2], patches[:2], [0, 1], steps=5)
    assert di["deletion"].shape == (2, 6) and np.allclose(di["deletion"][:, 0], di["insertion"][:, -1], atol=1e-6)
    s = X.randomisation_test("saliency", m, patches[:2], 0)
    assert len(s) == len(X.parametrised_layers(m)) and s["spearman"].between(-1, 1).all()
    ev = X.evaluate_methods(m, patches, np.repeat(masks, 3, 0), 0, ["saliency", "gradcam"], steps=4, sanity_cells=1,
                            progress=False)
    t = X.summarise_evaluation(ev, np.array([0, 2, 3]), "tiny")
    assert set(t["method"]) == {"saliency", "gradcam", "random"} and "all" in set(t["class"])


def test_randomisation_final_only(patches):
    m = TinyNet()
    full = X.randomisation_cascade(["saliency", "gradcam"], m, patches[:1], 0)
    last = X.randomisation_cascade(["saliency", "gradcam"], m, patches[:1], 0, every_layer=False)
    assert len(full) == 2 * len(X.parametrised_layers(m)) and len(last) == 2
    assert np.allclose(full[full.step == full.step.max()]["spearman"].to_numpy(), last["spearman"].to_numpy())
