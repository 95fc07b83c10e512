"""Tile-coded LIME (leukoxai_nb.explain.TileLime) vs stock `lime` on LeNet5.

Baseline: `lime.lime_image.LimeImageExplainer.explain_instance` called once per SLIC segmentation of the paper's
Table 4 (a `segmentation_fn` that returns the fixed segments), `num_samples` each, its default `batch_size=10`;
the S maps painted with the surrogate weights and averaged as the paper does (`explain.stock_lime_map`). Both
sides use the same segments, the same fill (each switched-off superpixel replaced by its mean: lime's
`hide_color=None`), the same kernel (cosine distance, width 0.25), the same ridge surrogate (LimeBase, alpha=1,
all superpixels) and the class probability as response. Prints both times per patch, the speed ratio
(target >= 3x) and the Pearson r between the maps at `--agree-samples` samples per segmentation (target >= 0.9),
and writes them to results/<profile>/lime_bench.json.

    python bench/lime_bench.py [--profile smoke] [--patches 8] [--samples 1000] [--agree-samples 5000] [--agree-patches 4]
"""
from __future__ import annotations
import argparse, os, sys
import numpy as np
import torch
from leukoxai_nb.explain import lime_speed_agreement, predict_proba, SLIC_SETTINGS
from leukoxai_nb.core import seed_everything, results_path, save_json


def get_lenet(profile: str):
    "The trained LeNet5 of `profile` (chapter 2's cache, trained if missing), else a freshly initialised one."
    try:
        from leukoxai_nb.models import get_trained
        model, _ = get_trained("lenet5", 0.0, 0, profile, device="cpu", progress=False)
        return model.eval(), "trained"
    except Exception as e:                      # the timing does not depend on the weights
        from leukoxai_nb.models import build_model
        from leukoxai_nb.core import get_profile
        print(f"(no trained LeNet5 for profile {profile!r}: {type(e).__name__}: {str(e)[:160]}; using an untrained one)")
        seed_everything(0)
        return build_model("lenet5", 0.0, input_size=get_profile(profile).models.lenet_input).eval(), "untrained"


def get_patches(profile: str, n: int):
    try:
        from leukoxai_nb.datasets import load_dataset
        ps = load_dataset("synthetic-qpi", profile)
        idx = np.random.default_rng(0).choice(len(ps), size=min(n, len(ps)), replace=False)
        return ps.images[idx], "synthetic QPI phantom"
    except Exception as e:
        print(f"(no dataset for profile {profile!r}: {type(e).__name__}: {str(e)[:160]}; using synthetic discs)")
        rng = np.random.default_rng(0); yy, xx = np.mgrid[:50, :50]
        imgs = [np.clip(1 - ((yy - 25) ** 2 + (xx - 25) ** 2) / rng.uniform(8, 16) ** 2, 0, 1) * (0.7 + 0.3 * rng.random((50, 50)))
                for _ in range(n)]
        return np.stack(imgs).astype(np.float32), "synthetic discs"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="smoke"); ap.add_argument("--patches", type=int, default=8)
    ap.add_argument("--samples", type=int, default=1000); ap.add_argument("--agree-samples", type=int, default=5000)
    ap.add_argument("--agree-patches", type=int, default=4); ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, state = get_lenet(a.profile)
    x, src = get_patches(a.profile, a.patches)
    target = predict_proba(model, x).argmax(1)
    print(f"LeNet5 ({state}), {src}, profile {a.profile}; S={len(SLIC_SETTINGS)} segmentations; torch threads "
          f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes "
          f"slow small-batch stock lime far more than the batched version)")
    r = lime_speed_agreement(model, x, target, a.samples, a.agree_samples, a.agree_patches)
    print(f"time per patch at {len(SLIC_SETTINGS)} x {a.samples} samples ({r['patches']} patches): "
          f"stock lime {r['stock_s_per_patch']:.3f} s | tile-coded batched {r['tile_s_per_patch']:.3f} s | "
          f"ratio {r['ratio']:.1f}x (target >= 3x)")
    print(f"agreement at {a.agree_samples} samples per segmentation over {r['agree_patches']} patches: "
          f"Pearson r mean {r['pearson_r_mean']:.3f}, min {r['pearson_r_min']:.3f} (target >= 0.9)")
    save_json(results_path(a.profile, "lime_bench.json"), dict(r, model=state, data=src, load_average=os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
