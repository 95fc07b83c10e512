"""Whole-frame scanning vs the paper's segmentation -> patches path, time per frame side by side; backbone throughput.

    python bench/scan_bench.py [--frames 6] [--window 50] [--stride 25] [--arch lenet5] [--threads 1] [--recentre]
    python bench/scan_bench.py --backbones [--sizes 64 112] [--threads 1] [--steps 2]

Scan mode: simulates one phantom recording (background from its first 100 frames, as the paper's median), then
for each held-out frame times `scan.scan_frame` and `scan.segment_frame` (threshold -> contours -> quality filter
-> 50 x 50 patches -> the same model) interleaved, frame by frame, with the same untrained model (the time does
not depend on the weights). Prints per-frame medians and spreads, and the ratio scan / segmentation last.
Backbones mode: training images/s (Adam, cross-entropy, batch 64, one model) of LeNet5 and the quick AlexNet (the
references of ../shared/MEASURED.md) and of every backbone at each input size, measured in one run, with ratios to
the quick AlexNet printed last. Shared CPUs drift: compare the ratios, not absolute figures.
"""
from __future__ import annotations
import argparse, os, time
import numpy as np
import torch


def bench_backbones(sizes, threads, steps, batch):
    from leukoxai_nb.backbones import training_throughput, BACKBONES, BACKBONE_NAMES
    rows = [("LeNet5", 32, 1.0, lambda: training_throughput("lenet5", 32, 1.0, batch, steps, threads)),
            ("AlexNet (quick)", 64, 0.25, lambda: training_throughput("alexnet", 64, 0.25, batch, steps, threads, fc_width=0.125))]
    for a in BACKBONES:
        for s in sizes:
            rows.append((BACKBONE_NAMES[a], s, 1.0, lambda a=a, s=s: training_throughput(a, s, 1.0, batch, steps, threads)))
    for w in (0.25, 0.125):                 # the quick profile's candidates: reduced width at the smaller input
        for a in BACKBONES:
            rows.append((BACKBONE_NAMES[a], sizes[0], w, lambda a=a, w=w: training_throughput(a, sizes[0], w, batch, steps, threads)))
    rows.append(("AlexNet (quick)", 64, 0.25, rows[1][3]))              # the reference again: load drift shows here
    out = []
    print(f"training throughput, batch {batch}, {steps} timed steps after 1 warm-up, torch threads {threads}, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    for name, s, w, fn in rows:
        r = fn(); out.append((name, s, w, r))
        print(f"  {name:16s} {s:4d} px  width x{w:<5} {r:9.1f} img/s", flush=True)
    ref = 0.5 * (out[1][3] + out[-1][3])
    print(f"ratios to the quick AlexNet (mean of its first and last measurement, {out[1][3]:.0f} and {out[-1][3]:.0f} img/s):")
    for name, s, w, r in out: print(f"  {name:16s} {s:4d} px  width x{w:<5} {r / ref:7.3f}x")
    return out


def bench_scan(n_frames, window, stride, arch, threads, seed, recentre=False):
    from leukoxai_nb.scan import phantom_scan_frames, scan_frame, segment_frame
    from leukoxai_nb.models import build_model
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(arch, 0.25).eval()
    data = phantom_scan_frames(n_frames, seed=seed)
    ts, tg = [], []
    for i, ph in enumerate(data["phase"]):
        t = time.perf_counter(); scan_frame(ph, model, window=window, stride=stride, recentre=recentre); ts.append(time.perf_counter() - t)
        t = time.perf_counter(); segment_frame(ph, model, pixel_size_um=data["pixel_size_um"],
                                               wavelength_nm=data["wavelength_nm"]); tg.append(time.perf_counter() - t)
    ts, tg = np.array(ts[1:] or ts), np.array(tg[1:] or tg)            # first frame: warm-up
    print(f"{arch}, window {window}, stride {stride}, recentre {recentre}, {len(ts)} frames timed (first dropped), torch threads {threads}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  scan          {1e3 * np.median(ts):8.1f} ms/frame (min {1e3 * ts.min():.1f}, max {1e3 * ts.max():.1f})")
    print(f"  segmentation  {1e3 * np.median(tg):8.1f} ms/frame (min {1e3 * tg.min():.1f}, max {1e3 * tg.max():.1f})")
    r = ts / tg
    print(f"ratio scan / segmentation: {np.median(r):.2f}x (per frame {r.min():.2f}-{r.max():.2f})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 112])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--stride", type=int, default=25)
    ap.add_argument("--arch", default="lenet5")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recentre", action="store_true")
    a = ap.parse_args()
    if a.backbones: bench_backbones(a.sizes, a.threads, a.steps, a.batch)
    else: bench_scan(a.frames, a.window, a.stride, a.arch, a.threads, a.seed, a.recentre)
