"""Training throughput of the quick profile's whole training grid: today's wide trainer against the old one-model loop.

Side by side in one process, same networks, same data, same number of epochs (early stopping switched off so that
both loops run exactly `--epochs` epochs), interleaved rounds, median of the rounds. Images per second = training
images processed (all networks together) / wall time of training including the per-epoch validation pass.
The old loop is a verbatim copy of `train_model` before the wide trainer (one network at a time, resize inside the
network, plain Adam, `cpu_threads` from the profile). Ratios are printed last.

    .venv/bin/python bench/train_bench.py [--profile quick] [--epochs 2] [--rounds 2] [--modes 1x1,1x2,2x1]

Mode PxT = P processes (`train_workers`) of T torch threads each; each process trains up to `train_group` networks
side by side; PxTgG trains groups of G instead (g1: one network per job, as the quick profile trains AlexNet,
`alexnet_train_group`). The old loop runs in this process with the profile's `cpu_threads`.
"""
import argparse, statistics, time
import numpy as np, torch
import torch.nn.functional as F
from leukoxai_nb.core import get_profile, get_device
from leukoxai_nb import models as M


def old_train_model(model, x_train, y_train, x_val, y_val, *, max_epochs, patience, batch_size, lr, seed, device="cpu"):
    "The one-model loop as it was (commit 46f6aba), without its progress bar."
    dev = torch.device(device)
    xt, yt = torch.as_tensor(x_train).float().to(dev), torch.as_tensor(y_train).long().to(dev)
    xv, yv = torch.as_tensor(x_val).float().to(dev), torch.as_tensor(y_val).long().to(dev)
    if xt.ndim == 3: xt, xv = xt.unsqueeze(1), xv.unsqueeze(1)
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    best, best_epoch, best_state, bad = float("inf"), -1, None, 0
    for epoch in range(max_epochs):
        model.train(); tot = 0.0
        for b in torch.randperm(len(xt), generator=gen).split(batch_size):
            b = b.to(dev)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xt[b]), yt[b])
            loss.backward(); opt.step(); tot += loss.item() * len(b)
        vl, va = M._evaluate(model, xv, yv)
        if vl < best - 1e-6:
            best, best_epoch, bad = vl, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience: break
    model.load_state_dict(best_state); model.eval()
    return best_epoch


def _warm(_):
    import leukoxai_nb.models  # noqa: F401  (import torch and the package once per worker)
    return 0


def grid(arch, profile, ds):
    mp = get_profile(profile).models
    cfg = [(float(p), r) for p in mp.dropouts for r in range(mp.n_runs)]
    splits = [M.pool_split(ds, M.run_seed(r)) for _, r in cfg]
    def fresh():
        out = []
        for p, r in cfg:
            torch.manual_seed(M.run_seed(r)); out.append(M.build_model(**M.model_settings(arch, p, profile)))
        return out
    return cfg, splits, fresh


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick"); ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2); ap.add_argument("--modes", default="1x1,1x2,2x1,2x1g1",
                    help="wide-trainer modes PROCESSESxTHREADS; the book's quick profile uses train_workers x cpu_threads")
    ap.add_argument("--archs", default="lenet5,alexnet"); ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    from leukoxai_nb.datasets import load_dataset
    dev = get_device(a.device); mp = get_profile(a.profile).models
    ds = load_dataset("synthetic-qpi", a.profile)
    modes = []
    for m in a.modes.split(","):
        w, rest = m.split("x"); t, _, g = rest.partition("g")
        modes.append((f"wide_{w}p{t}t" + (f"g{g}" if g else ""), int(w), int(t), int(g) if g else None))
    E = a.epochs
    def train_kw(arch):   # the book's settings (models._train_settings): AlexNet trains at the profile's alexnet_lr
        return dict(max_epochs=E, patience=E + 1, batch_size=int(mp.batch_size),
                    lr=float(mp.alexnet_lr if arch == "alexnet" else mp.lr))
    stop_kw = dict(min_delta=0.0, lr_patience=0, lr_factor=1.0)
    base_threads = int(mp.cpu_threads) or torch.get_num_threads()
    print(f"profile {a.profile}: {M.model_note(a.profile)}; device {dev}; {E} epochs, {a.rounds} interleaved rounds; "
          f"old loop at {base_threads} thread(s) (profile cpu_threads), wide trainer modes {[n for n, _, _, _ in modes]}, "
          f"train_group {mp.train_group}, alexnet_train_group {mp.alexnet_train_group}")
    ratios, pools = [], {}
    import multiprocessing as mproc
    from concurrent.futures import ProcessPoolExecutor
    for _, w, _, _ in modes:          # worker processes started (and warmed) once, outside the timings, as in the book
        if w > 1 and w not in pools:
            t0 = time.perf_counter(); pools[w] = ProcessPoolExecutor(w, mp_context=mproc.get_context("spawn"))
            list(pools[w].map(_warm, range(w)))
            print(f"started {w} worker processes in {time.perf_counter() - t0:.1f} s (paid once per chapter 02 run; not timed below)")
    for arch in a.archs.split(","):
        cfg, splits, fresh = grid(arch, a.profile, ds); kw = train_kw(arch)
        n_img = sum(len(s["train"]) for s in splits) * E
        times = {"old": []} | {name: [] for name, _, _, _ in modes}
        for rnd in range(a.rounds):
            torch.set_num_threads(base_threads)
            t0 = time.perf_counter()
            for m, (p, r), sp in zip(fresh(), cfg, splits):
                old_train_model(m, ds.images[sp["train"]], ds.label[sp["train"]], ds.images[sp["val"]],
                                ds.label[sp["val"]], seed=M.run_seed(r), device=dev, **kw)
            times["old"].append(time.perf_counter() - t0)
            for name, workers, t, g in modes:
                st = [dict(model=M.model_settings(arch, p, a.profile), seed=M.run_seed(r), **kw, **stop_kw) for p, r in cfg]
                k = max(1, min(int(g or mp.train_group), -(-len(cfg) // workers)))
                chunks = [(st[i:i + k], splits[i:i + k]) for i in range(0, len(cfg), k)]
                t0 = time.perf_counter()
                M.fit_chunks(chunks, ds.images, ds.label, dev, threads=t, workers=workers, progress=False,
                             executor=pools.get(workers))
                times[name].append(time.perf_counter() - t0)
            print(f"  {arch} round {rnd}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{arch}: {len(cfg)} networks x {E} epochs = {n_img:,} training images; " +
              "; ".join(f"{k} {n_img / v:,.0f} img/s" for k, v in med.items()))
        for k in med:
            if k != "old": ratios.append((arch, k, med["old"] / med[k]))
    torch.set_num_threads(base_threads)
    for ex in pools.values(): ex.shutdown()
    target = {"lenet5": 3.0, "alexnet": 1.5}
    print("ratios (wide trainer / old one-model loop, images per second; targets LeNet5 >= 3x, AlexNet >= 1.5x):")
    for arch, k, r in ratios: print(f"  {arch:8s} {k:9s} {r:5.2f}x  (target {target.get(arch, float('nan')):.1f}x)")


if __name__ == "__main__":
    main()
