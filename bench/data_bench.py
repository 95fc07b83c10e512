"""Generation + preprocessing time of the synthetic-QPI data set (issue 2: paper profile in < 60 s on 2 cores).

Phantom 2.0 records one recording per (donor, isolated class): 6 x 4 + 4 + 1 = 29 recordings for the paper profile,
each with its own median of 100 frames, so about 100 frames per recording are generated even where fewer would hold
enough cells. The machine is shared: the script prints the load average and the CPU-bound time on idle cores.

    python bench/data_bench.py                     # paper profile (11,008 balanced leukocytes + 1,024 donor test + outliers)
    python bench/data_bench.py --profile quick
    python bench/data_bench.py --save              # also write the cache (results/<profile>/data) and time it

Builds in memory with `leukoxai_nb.datasets.build_synthetic` (the same code as `leukoxai data build`), prints the
frames it streamed, the time spent in the phantom (generation) and in preprocessing (background, segmentation,
features, filter, patches), the counts, and the ratio of the total to the 60 s target.
"""
import argparse, os, time
import pandas as pd

TARGET_S = 60.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="paper"); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", action="store_true", help="also cache the set and record/verify its digest")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    a = ap.parse_args()
    from leukoxai_nb import datasets as ds
    import resource
    cpu = lambda: sum(getattr(resource.getrusage(w), a) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for a in ("ru_utime", "ru_stime"))
    load0 = os.getloadavg()
    cpu0 = cpu()
    t0 = time.perf_counter()
    built = ds.build_synthetic(a.profile, a.seed, progress=False, workers=a.workers)
    wall = time.perf_counter() - t0
    cpu_total = cpu() - cpu0
    st = built["stats"]
    cells, outl = built["cells"], built["outliers"]
    load1 = os.getloadavg()
    print(f"profile {a.profile}, seed {a.seed}, cores visible: {os.cpu_count()}, threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"machine load (1-min average) before {load0[0]:.2f}, after {load1[0]:.2f}: above {os.cpu_count()} other processes shared the cores")
    print(f"worker processes         {st['workers']:8d}   (recordings run in parallel; $LEUKOXAI_DATA_WORKERS)")
    print(f"frames generated         {st['frames_generated']:8d}")
    print(f"frames preprocessed      {st['frames']:8d}")
    print(f"{'':25s}{'wall':>8s} {'CPU':>8s}   (summed over workers)")
    print(f"generation (phantom)     {st['generate_s']:8.1f} {st['generate_cpu_s']:8.1f} s")
    print(f"preprocessing            {st['preprocess_s']:8.1f} {st['preprocess_cpu_s']:8.1f} s")
    print(f"CPU time, all processes  {cpu_total:8.1f} s   -> {cpu_total / st['workers']:.1f} s of wall time on {st['workers']} idle core(s)")
    print(f"wall time, total         {wall:8.1f} s   target {TARGET_S:.0f} s   total/target = {wall / TARGET_S:.2f}"
          f"   (wall > CPU/cores means other processes shared the cores)")
    print(f"on idle cores (CPU / workers): {cpu_total / st['workers']:.1f} s   target/idle = {TARGET_S / max(cpu_total / st['workers'], 1e-9):.2f}x headroom")
    if a.save:
        t1 = time.perf_counter(); info = ds.save_synthetic(built, a.profile, a.seed)
        print(f"cache write + digest     {time.perf_counter() - t1:8.1f} s    (manifest: {info['manifest']})")
    print("\ncells per class (given label):")
    print(cells.counts().to_string())
    print(f"\noutliers per kind: {pd.Series(outl.kind).value_counts().to_dict()}")
    for name, rep in built["reports"].items():
        print(f"\nfilter report, {name}:\n{rep.to_string()}")


if __name__ == "__main__":
    main()
