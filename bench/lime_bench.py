"""Tile-coded LIME (leukoxai_nb.explain.TileLime) vs stock `lime` on LeNet5.

Baseline: `lime.lime_image.LimeImageExplainer.explain_instance` called once per SLIC segmentation of the paper's
Table 4 (a `segmentation_fn` that returns the fixed segments), `num_samples` each, the S maps painted with the
surrogate weights and averaged exactly as the paper does. Both sides use the same segments, the same fill (each
switched-off superpixel replaced by its mean: lime's `hide_color=None`), the same kernel (cosine distance,
width 0.25), the same ridge surrogate (LimeBase, alpha=1, all superpixels) and the class probability as response.
Prints both times, the speed ratio (target >= 3x) and the Pearson r between the maps at `--agree-samples`
samples per segmentation (target >= 0.9).

    python bench/lime_bench.py [--profile smoke] [--patches 8] [--samples 1000] [--agree-samples 5000] [--agree-patches 4]
"""
from __future__ import annotations
import argparse, os, sys, time
os.environ.setdefault("TQDM_DISABLE", "1")          # stock lime draws a progress bar per call; keep it out of the timing
import numpy as np
import torch
from lime.lime_image import LimeImageExplainer
from leukoxai_nb.explain import TileLime, slic_segments, predict_proba, SLIC_SETTINGS
from leukoxai_nb.core import seed_everything


def get_lenet(profile: str):
    "The trained LeNet5 of `profile` when chapter 2 can provide it, else a freshly initialised one (timing is the same)."
    try:
        from leukoxai_nb.training import get_trained
        model, _ = get_trained("lenet5", 0.0, 0, profile, device="cpu")
        return model.eval(), "trained"
    except Exception as e:                      # models not built yet: the timing does not depend on the weights
        from leukoxai_nb.models import build_model
        from leukoxai_nb.core import get_profile
        print(f"(no trained LeNet5 for profile {profile!r}: {type(e).__name__}: {str(e)[:120]}; using an untrained one)")
        seed_everything(0)
        return build_model("lenet5", 0.0, input_size=get_profile(profile).models.lenet_input).eval(), "untrained"


def get_patches(profile: str, n: int):
    try:
        from leukoxai_nb.datasets import load_dataset
        ps = load_dataset("synthetic-qpi", profile)
        idx = np.random.default_rng(0).choice(len(ps), size=min(n, len(ps)), replace=False)
        return ps.images[idx].astype(np.float64), ps.label[idx], "synthetic QPI phantom"
    except Exception as e:
        print(f"(no dataset for profile {profile!r}: {type(e).__name__}: {str(e)[:120]}; using synthetic discs)")
        rng = np.random.default_rng(0); yy, xx = np.mgrid[:50, :50]
        imgs = [np.clip(1 - ((yy - 25) ** 2 + (xx - 25) ** 2) / rng.uniform(8, 16) ** 2, 0, 1) * (0.7 + 0.3 * rng.random((50, 50)))
                for _ in range(n)]
        return np.stack(imgs), rng.integers(0, 4, n), "synthetic discs"


def stock_lime(model, image, segs, label, num_samples, seed):
    "Stock lime, once per segmentation; weighted maps averaged (the paper's recipe on top of explain_instance)."
    clf = lambda imgs: predict_proba(model, np.asarray(imgs)[..., 0], batch_size=len(imgs))
    parts = []
    for s, seg in enumerate(segs):
        expl = LimeImageExplainer(random_state=seed + s)
        e = expl.explain_instance(image, clf, labels=(int(label),), top_labels=None, num_features=100000,
                                  num_samples=num_samples, batch_size=10, segmentation_fn=lambda im, seg=seg: seg,
                                  hide_color=None)
        w = np.zeros(seg.max() + 1)
        for f, v in e.local_exp[int(label)]: w[f] = v
        parts.append(w[seg])
    return np.mean(parts, 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="smoke"); ap.add_argument("--patches", type=int, default=8)
    ap.add_argument("--samples", type=int, default=1000); ap.add_argument("--agree-samples", type=int, default=5000)
    ap.add_argument("--agree-patches", type=int, default=4); ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, state = get_lenet(a.profile)
    x, y, src = get_patches(a.profile, max(a.patches, a.agree_patches))
    segs = np.stack([slic_segments(im) for im in x])
    target = predict_proba(model, x).argmax(1)
    print(f"LeNet5 ({state}), {src}, profile {a.profile}; S={len(SLIC_SETTINGS)} segmentations; "
          f"torch threads {torch.get_num_threads()}")
    n = a.patches
    # warm-up (first forward passes allocate)
    TileLime(model, num_samples=50).attribute(x[:1], target[:1], segments=segs[:1])
    t0 = time.perf_counter()
    for b in range(n): stock_lime(model, x[b], segs[b], target[b], a.samples, seed=b)
    t_stock = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    TileLime(model, num_samples=a.samples, seed=0).attribute(x[:n], target[:n], segments=segs[:n])
    t_tile = (time.perf_counter() - t0) / n
    print(f"time per patch at {len(SLIC_SETTINGS)} x {a.samples} samples: stock lime {t_stock:.3f} s, "
          f"tile-coded batched {t_tile:.3f} s, ratio {t_stock / t_tile:.1f}x (target >= 3x)")
    k = a.agree_patches
    ours = TileLime(model, num_samples=a.agree_samples, seed=123).attribute(x[:k], target[:k], segments=segs[:k]).maps
    rs = []
    for b in range(k):
        ref = stock_lime(model, x[b], segs[b], target[b], a.agree_samples, seed=1000 + b)
        rs.append(np.corrcoef(ref.ravel(), ours[b].ravel())[0, 1])
    print(f"agreement at {a.agree_samples} samples per segmentation over {k} patches: Pearson r mean {np.mean(rs):.3f}, "
          f"min {np.min(rs):.3f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
