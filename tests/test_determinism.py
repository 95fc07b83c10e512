"""Same seed, same profile, same tables: two smoke books from scratch give byte-identical CSV tables once the
clearly named timing columns (`seconds…`, `…_seconds`, `…per_s`) are set aside (issue 9, §5)."""
import os, re
from pathlib import Path
import pandas as pd
import pytest
from leukoxai_nb import runner

TIMING = re.compile(r"(^|_)(cpu_)?seconds($|_)|_per_s$|^wall")

def timing_columns(cols) -> list:
    "Columns that hold wall-clock measurements by the project's naming rule."
    return [c for c in cols if TIMING.search(str(c))]

def test_timing_rule():
    assert timing_columns(["seconds", "cpu_seconds", "seconds_per_cell", "frames_per_s", "lime_seconds", "wall_s"]) == \
        ["seconds", "cpu_seconds", "seconds_per_cell", "frames_per_s", "lime_seconds", "wall_s"]
    assert timing_columns(["f1", "ece", "n_bins", "frames", "speedup", "second_best"]) == []

def _tables(results: Path) -> dict:
    out = {}
    for f in sorted(results.glob("*.csv")):
        t = pd.read_csv(f, dtype=str, keep_default_na=False)
        out[f.name] = t.drop(columns=timing_columns(t.columns)).to_csv(index=False)
    return out

@pytest.fixture(scope="module")
def two_books(tmp_path_factory, repo_root):
    runs = []
    old = {k: os.environ.get(k) for k in ("LEUKOXAI_RESULTS", "LEUKOXAI_BOOK")}
    try:
        for i in range(2):
            base = tmp_path_factory.mktemp(f"det{i}")
            os.environ["LEUKOXAI_RESULTS"] = str(base / "results"); os.environ["LEUKOXAI_BOOK"] = str(base / "_book")
            runner.run_book("smoke", root=repo_root, device="cpu", log=lambda *a, **k: None)
            runs.append(base / "results" / "smoke")
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return runs

def test_two_smoke_books_give_identical_tables(two_books):
    a, b = (_tables(r) for r in two_books)
    assert len(a) >= 8 and set(a) == set(b)
    differ = [name for name in a if a[name] != b[name]]
    assert not differ, f"tables differ between two runs with the same seed: {differ}"
