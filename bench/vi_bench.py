"""Batched variational inference vs T full forward passes, and training throughput, per model.

    python bench/vi_bench.py [--profile quick] [--n 256] [--T 100] [--device auto] [--threads N] [--paper-alexnet]

For each network: (1) with the SAME pre-drawn dropout masks, the batched sampler (trunk once, head T times in one
call; `models.vi_logits`) and T full forward passes (`models.vi_logits_naive`) must give the same outputs (asserted);
(2) both are timed with ordinary random dropout on the same inputs and the speed-up is printed beside its target
(>= 5x AlexNet, >= 3x LeNet5); (3) training throughput (images/s, Adam + cross-entropy, the profile's batch size).
Timings are the best of `--repeat` runs; the machine's load is printed because shared CPUs vary a lot.
"""
from __future__ import annotations
import argparse, os, time
import torch
import torch.nn.functional as F
from leukoxai_nb.core import get_profile, get_device, seed_everything
from leukoxai_nb.models import build_model, vi_logits, vi_logits_naive, fixed_dropout_masks

TARGET = {"lenet5": 3.0, "alexnet": 5.0}


def _sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()


def best_time(fn, dev, repeat):
    fn(); _sync(dev)                                  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); _sync(dev); ts.append(time.perf_counter() - t)
    return min(ts)


def check_same_masks(model, x, T):
    "Batched and naive VI under identical masks must agree."
    B = min(len(x), 32)
    with fixed_dropout_masks(model, T, B, seed=1):
        a = vi_logits(model, x[:B], T, batch_size=B)
        b = vi_logits_naive(model, x[:B], T)
    err = (a - b).abs().max().item()
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), f"batched VI differs from T full passes: max |diff| {err:.2e}"
    return err


def train_throughput(model, dev, batch_size, n_images, repeat):
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(n_images, 1, 50, 50, device=dev); y = torch.randint(0, 4, (n_images,), device=dev)

    def epoch():
        for i in range(0, n_images, batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size]).backward(); opt.step()
    return n_images / best_time(epoch, dev, repeat)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--n", type=int, default=256, help="inputs per VI call")
    ap.add_argument("--T", type=int, default=None, help="VI samples (default: the profile's vi_samples)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--paper-alexnet", action="store_true", help="also AlexNet at 224 px, width 1 (the paper's)")
    a = ap.parse_args(argv)
    mp = get_profile(a.profile).models
    if a.threads: torch.set_num_threads(a.threads)
    T = a.T or int(mp.vi_samples)
    dev = get_device(a.device)
    seed_everything(0)
    nets = [("lenet5", dict(input_size=mp.lenet_input)),
            ("alexnet", dict(input_size=mp.alexnet_input, width=mp.alexnet_width, fc_width=mp.alexnet_fc_width))]
    if a.paper_alexnet and (mp.alexnet_input, mp.alexnet_width) != (224, 1.0):
        nets.append(("alexnet", dict(input_size=224, width=1.0, fc_width=1.0)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {dev}, torch threads {torch.get_num_threads()}, load average {load:.2f}; "
          f"profile {a.profile!r}, {a.n} inputs, T = {T}")
    hdr = f"{'model (px, conv/FC width)':<26}{'same-mask max|diff|':>20}{'T full passes s':>17}{'batched s':>11}{'speed-up':>10}{'target':>8}{'train img/s':>13}"
    print(hdr); print("-" * len(hdr))
    x = torch.rand(a.n, 1, 50, 50)
    ok = True
    for arch, kw in nets:
        model = build_model(arch, 0.5, **kw).to(dev).eval()
        err = check_same_masks(model, x, T)
        t_naive = best_time(lambda: vi_logits_naive(model, x, T), dev, a.repeat)
        t_batch = best_time(lambda: vi_logits(model, x, T), dev, a.repeat)
        tp = train_throughput(build_model(arch, 0.5, **kw), dev, int(mp.batch_size), a.train_images, a.repeat)
        r = t_naive / t_batch; ok &= r >= TARGET[arch]
        name = f"{arch} {kw.get('input_size')}px w{kw.get('width', 1.0)}/{kw.get('fc_width', kw.get('width', 1.0))}"
        print(f"{name:<26}{err:>20.1e}{t_naive:>17.3f}{t_batch:>11.3f}{r:>9.1f}x{TARGET[arch]:>7.0f}x{tp:>13.0f}")
    print("all speed-up targets met" if ok else "SOME SPEED-UP TARGETS NOT MET")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
