"Parameter sweeps (appendix 96_sweep): a throw-away two-chapter project for the engine, and one real smoke sweep."
import json, os, time
from pathlib import Path
import pandas as pd
import nbformat, pytest
from nbformat.v4 import new_notebook, new_code_cell, new_markdown_cell
from conftest import write_chapter
from leukoxai_nb import sweep

ROOT = Path(__file__).resolve().parents[1]
quiet = lambda *a, **k: None

@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "settings.ini").write_text("[DEFAULT]\nlib_name = x\n")
    (tmp_path / "nbs").mkdir()
    (tmp_path / "_quarto.yml").write_text("project: {type: book}\nbook:\n  title: Tiny\n  chapters: [index.ipynb, 10_a.ipynb]\n")
    write_chapter(tmp_path / "nbs/10_a.ipynb", "Chapter A", 'profile = "smoke"\nseed = 0\ndevice = "auto"\nx = 1\ny = 0.0',
             ["import os, pandas as pd\nfrom leukoxai_nb.core import save_table",
              "if x == 2 and y == 0.5: raise ValueError('asked to fail')",
              "save_table(pd.DataFrame({'model': ['LeNet5', 'AlexNet'], 'dropout': [0.0, 0.0], 'vi': [False, False],\n"
              "                         'f1_mean': [0.5 + 0.1 * x + y, 0.6 + 0.1 * x], 'threads': [os.environ['OMP_NUM_THREADS']] * 2}),\n"
              "           profile, 'table1_classification')"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEUKOXAI_RESULTS", str(tmp_path / "results"))
    return tmp_path

def test_grid_parsing_and_ids():
    g = sweep.parse_grid(["dropout=0,0.25,0.5", "seed=0:3"])
    assert g == {"dropout": [0, 0.25, 0.5], "seed": [0, 1, 2]}
    assert len(sweep.grid_points(g)) == 9 and sweep.point_id({"dropout": 0.25, "seed": 1}) == "dropout-0.25_seed-1"
    with pytest.raises(ValueError, match="empty"): sweep.parse_grid(["seed=2:2"])

def test_unknown_or_mistyped_parameter_fails_before_any_worker(project, monkeypatch):
    started = []
    monkeypatch.setattr(sweep, "_run_dask", lambda *a, **k: started.append(1))
    monkeypatch.setattr(sweep, "run_point", lambda *a, **k: started.append(1))
    with pytest.raises(ValueError, match="nope"):
        sweep.run_sweep("bad", grid={"x": [1, 2], "nope": [1]}, workers=2, root=project, log=quiet)
    with pytest.raises(TypeError, match="x=three"):
        sweep.run_sweep("bad", grid={"x": [1, "three"]}, workers=2, root=project, log=quiet)
    with pytest.raises(ValueError, match="--profile"):
        sweep.run_sweep("bad", grid={"profile": ["quick"]}, workers=2, root=project, log=quiet)
    assert not started and not (project / "results/smoke/sweeps/bad").exists()

def test_failing_point_is_recorded_and_rerun_runs_only_it(project):
    grid = {"x": [1, 2], "y": [0.0, 0.5]}
    res = sweep.run_sweep("tiny", grid=grid, workers=2, root=project, log=quiet)
    assert sorted(res["executed"]) == sorted(sweep.point_id(p) for p in sweep.grid_points(grid))
    assert res["failed"] == ["x-2_y-0.5"]
    bad = next(r for r in res["points"] if r["id"] == "x-2_y-0.5")
    assert bad["status"] == "failed" and bad["failure"]["chapter"] == "10_a" and bad["failure"]["cell"] is not None
    assert "asked to fail" in bad["failure"]["exception"]
    t = pd.read_csv(res["tables"]["table1_classification"])
    assert t.shape == (3 * 2, 2 + 1 + 5) and list(t.columns[:3]) == ["x", "y", "point"]
    assert set(t.threads) == {1}                                  # one CPU thread per point
    assert (project / "results/smoke/sweeps/tiny/x-1_y-0.0/notebooks/10_a.ipynb").exists()
    assert res["figures"]["f1"].exists()
    prov = json.loads((project / "results/smoke/sweeps/tiny/sweep.json").read_text())
    assert prov["n_points"] == 4 and prov["grid"] == grid and prov["packages"]["distributed"]
    assert {p["id"]: p["status"] for p in prov["points"]}["x-2_y-0.5"] == "failed"
    kept = (project / "results/smoke/sweeps/tiny/x-1_y-0.0/point.json").stat().st_mtime_ns
    res2 = sweep.run_sweep("tiny", grid=grid, workers=0, root=project, log=quiet)   # rerun: only the failed point
    assert res2["executed"] == ["x-2_y-0.5"] and res2["failed"] == ["x-2_y-0.5"]
    assert (project / "results/smoke/sweeps/tiny/x-1_y-0.0/point.json").stat().st_mtime_ns == kept
    page = sweep.sweep_pages("smoke", project / "_book")
    assert [p.name for p in page] == ["sweep_tiny.ipynb"]
    text = page[0].read_text()
    assert "Parameter sweep" in text and "asked to fail" in text and "data:image/png;base64" in text
    from leukoxai_nb.report import notebook_to_html, chapter_title      # the book's renderer takes the page as is
    html = notebook_to_html(page[0])
    assert "<table" in html and "data:image/png;base64" in html and "0.700 ± 0.000" in html
    assert chapter_title(page[0]) == "Parameter sweep `tiny`"

def test_smoke_sweep_of_chapter_03_on_two_workers(tmp_path, monkeypatch):
    "2 x 2 real smoke sweep (chapter 03 trains its models in each point): 4 points gathered into every table."
    monkeypatch.setenv("LEUKOXAI_RESULTS", str(tmp_path / "results"))
    monkeypatch.chdir(ROOT)
    manifest = (ROOT / "data_manifest.yaml").read_bytes()
    t0 = time.perf_counter()
    res = sweep.run_sweep("smoke2x2", "smoke", chapters="03", grid={"seed": [0, 1], "n_bins": [5, 10]}, workers=2,
                          root=ROOT, log=quiet)
    assert res["failed"] == [] and len(res["executed"]) == 4, res["points"]
    for name in ("table2_calibration", "table1_classification"):
        if name in res["tables"]:
            t = pd.read_csv(res["tables"][name])
            assert t["point"].nunique() == 4 and {"seed", "n_bins"} <= set(t.columns)
    t2 = pd.read_csv(res["tables"]["table2_calibration"])
    assert len(t2) == 4 * len(pd.read_csv(tmp_path / "results/smoke/sweeps/smoke2x2/seed-0_n_bins-5/smoke/table2_calibration.csv"))
    shared = tmp_path / "results/smoke/sweeps/smoke2x2/_shared/smoke/data"
    assert (tmp_path / "results/smoke/sweeps/smoke2x2/seed-1_n_bins-10/smoke/data").resolve() == shared.resolve()
    prov = json.loads((tmp_path / "results/smoke/sweeps/smoke2x2/sweep.json").read_text())
    assert prov["shared_data"]["digests"] == {f.name: sweep.sha256_file(f) for f in sorted(shared.iterdir())}   # untouched
    assert "ece" in res["figures"]
    if (ROOT / "data_manifest.yaml").read_bytes() != manifest:          # the shared build may record a digest: undo it
        (ROOT / "data_manifest.yaml").write_bytes(manifest)
    print(f"smoke 2x2 sweep of chapter 03 on 2 workers: {time.perf_counter() - t0:.1f} s; table2 {t2.shape}")
