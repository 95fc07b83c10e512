"""Per-chapter wall times of the book, from one run.

    python bench/book_bench.py --profile quick          # run the book now and print the times
    python bench/book_bench.py --profile quick --read   # print the times recorded in results/<profile>/provenance.json

Prints each chapter's share of the total so the slowest chapter is visible, and the ratio of the total to the
10-minute budget of the quick profile (issue: `make book` <= 10 min on 2 cores, install excluded).
"""
import argparse, json, time
from leukoxai_nb.core import results_path
from leukoxai_nb.runner import run_book

BUDGET_S = {"smoke": 300, "quick": 600, "paper": None}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick"); ap.add_argument("--read", action="store_true")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    if a.read:
        times = json.loads(results_path(a.profile, "provenance.json", mkdir=False).read_text())["chapter_wall_s"]
    else:
        t0 = time.perf_counter(); times = run_book(a.profile, device=a.device); wall = time.perf_counter() - t0
        print(f"runner wall time incl. kernel start-ups: {wall:.1f} s")
    total = sum(times.values())
    print(f"{'chapter':28s} {'s':>8s} {'share':>7s}")
    for k, v in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"{k:28s} {v:8.1f} {v/total:7.1%}")
    print(f"{'total':28s} {total:8.1f}")
    if BUDGET_S.get(a.profile): print(f"total / budget ({BUDGET_S[a.profile]} s) = {total / BUDGET_S[a.profile]:.2f}")

if __name__ == "__main__":
    main()
