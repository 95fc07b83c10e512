"""The same 4-point smoke sweep run sequentially (no Dask) and on a 2-worker LocalCluster, side by side in one run.

    python bench/sweep_bench.py                    # chapter 03, seed = 0,1 x n_bins = 5,10, one round
    python bench/sweep_bench.py --rounds 2         # interleaved rounds (order alternates), medians compared

Both engines run the identical grid in their own sweep folders under a throw-away results root (the data set is
built once beforehand and shared by both). Each sweep's wall time includes everything `leukoxai sweep` does: the
check, the shared-data link, starting the LocalCluster (parallel engine only), the points, gathering and figures.
The issue's target: ratio >= 1.6x on 2 cores. The machine's load average is printed before and after, because the
cores may be shared with other work; the ratio is printed last.
"""
import argparse, os, subprocess, sys, tempfile, time, shutil
from pathlib import Path
import numpy as np

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="smoke"); ap.add_argument("--chapters", default="03")
    ap.add_argument("--rounds", type=int, default=1); ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the throw-away results root")
    a = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="sweep_bench_"))
    os.environ["LEUKOXAI_RESULTS"] = str(tmp / "results")
    manifest = (root / "data_manifest.yaml").read_bytes() if (root / "data_manifest.yaml").exists() else None
    from leukoxai_nb import sweep
    grid = {"seed": [0, 1], "n_bins": [5, 10]}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from leukoxai_nb.datasets import load_dataset, load_outliers; "
                    f"load_dataset('synthetic-qpi', {a.profile!r}); load_outliers('synthetic-qpi', {a.profile!r})"],
                   cwd=root, check=True, capture_output=True)
    print(f"data set of profile {a.profile} built once beforehand in {time.perf_counter() - t:.1f} s (not timed below)")
    load0 = os.getloadavg()
    times = {"sequential": [], f"{a.workers} workers": []}
    try:
        for r in range(a.rounds):
            order = [("sequential", 0), (f"{a.workers} workers", a.workers)]
            for label, workers in (order if r % 2 == 0 else order[::-1]):
                name = f"bench_r{r}_{'seq' if workers == 0 else 'par'}"
                t = time.perf_counter()
                res = sweep.run_sweep(name, a.profile, chapters=a.chapters, grid=grid, workers=workers, root=root,
                                      log=lambda *x, **k: None)
                dt = time.perf_counter() - t
                if res["failed"]: raise SystemExit(f"{label}: points failed: {res['failed']}")
                pts = ", ".join(f"{p['wall_s']:.0f}" for p in res["points"])
                shape = {k: tuple(__import__('pandas').read_csv(v).shape) for k, v in res["tables"].items()}
                print(f"round {r}: {label:12s} {dt:7.1f} s  (points {pts} s; tables {shape})", flush=True)
                times[label].append(dt)
    finally:
        if manifest is not None and (root / "data_manifest.yaml").read_bytes() != manifest:
            (root / "data_manifest.yaml").write_bytes(manifest)
        if not a.keep: shutil.rmtree(tmp, ignore_errors=True)
        else: print(f"kept {tmp}")
    load1 = os.getloadavg()
    seq, par = (float(np.median(v)) for v in times.values())
    print(f"cores: {len(os.sched_getaffinity(0))}; load average (1, 5, 15 min) before {tuple(round(x, 2) for x in load0)}, "
          f"after {tuple(round(x, 2) for x in load1)}")
    print(f"4-point {a.profile} sweep of chapter(s) {a.chapters}: sequential {seq:.1f} s, {a.workers} workers {par:.1f} s "
          f"(median of {a.rounds} round(s))")
    print(f"ratio sequential / {a.workers} workers = {seq / par:.2f}x (target >= 1.6x on 2 cores)")

if __name__ == "__main__":
    main()
