"The runner and the report on a tiny throw-away project (two chapters that take a second each)."
import json, os
from pathlib import Path
import nbformat, pytest
from nbformat.v4 import new_notebook, new_code_cell, new_markdown_cell
from conftest import write_chapter
from leukoxai_nb import runner, report
from leukoxai_nb.cli import main

def _chapter(path, title, params, body): write_chapter(path, title, params, body, prose="prose")

@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "settings.ini").write_text("[DEFAULT]\nlib_name = x\n")
    (tmp_path / "nbs").mkdir()
    (tmp_path / "_quarto.yml").write_text(
        "project: {type: book}\nbook:\n  title: Tiny\n  chapters: [index.ipynb, 00_a.ipynb, 01_b.ipynb, 02_missing.ipynb]\n")
    _chapter(tmp_path / "nbs/index.ipynb", "Tiny book", "", ["print('preface')"])
    _chapter(tmp_path / "nbs/00_a.ipynb", "Chapter A", 'profile = "smoke"\nseed = 0\ndevice = "auto"\nn = 3',
             ["import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
              "from leukoxai_nb.core import save_table, save_figure\nimport pandas as pd\n"
              "save_table(pd.DataFrame({'n': [n]}), profile, 'table_a')\n"
              "fig, ax = plt.subplots(); ax.plot(range(n)); save_figure(fig, profile, 'fig_a'); plt.show()"])
    _chapter(tmp_path / "nbs/01_b.ipynb", "Chapter B", 'profile = "smoke"\nseed = 0\ndevice = "auto"\nfail = False',
             ["if fail: raise ValueError('asked to fail')", "print('b ran')"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEUKOXAI_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LEUKOXAI_BOOK", str(tmp_path / "_book"))
    return tmp_path

def test_chapter_list_follows_quarto(project):
    assert [c.stem for c in runner.chapter_list(project)] == ["00_a", "01_b"]
    assert [c.stem for c in runner.chapter_list(project, include_missing=True)][-1] == "02_missing"

def test_appendices_run_after_the_chapters_and_follow_them_in_the_book(project):
    "Library appendices (`book.appendices` notebooks) run after a whole-book run and get pages after the chapters."
    cfg = project / "_quarto.yml"
    cfg.write_text(cfg.read_text() + "  appendices: [80_lib.ipynb, 81_missing.ipynb, provenance.qmd]\n")
    write_chapter(project / "nbs/80_lib.ipynb", "The library", "", ["x = 1", "assert x == 1"])
    assert [a.stem for a in runner.appendix_list(project)] == ["80_lib"]
    assert [a.stem for a in runner.appendix_list(project, include_missing=True)] == ["80_lib", "81_missing"]
    assert "80_lib" not in [c.stem for c in runner.chapter_list(project)]
    times = runner.run_book("smoke", root=project, log=lambda *a, **k: None)
    assert list(times) == ["00_a", "01_b"]                          # chapter times only; the appendix ran too
    assert (project / "_book/smoke/notebooks/80_lib.ipynb").exists()
    index = report.render_html_book("smoke", root=project)
    assert "The library" in (index.parent / "80_lib.html").read_text()
    html = index.read_text()
    assert html.index("01_b.html") < html.index("80_lib.html") < html.index("provenance.html")
    nav = (index.parent / "01_b.html").read_text()
    assert "80_lib.html" in nav                                       # 'next' from the last chapter is the appendix

def test_run_render_and_provenance(project):
    times = runner.run_book("smoke", params={"n": 4}, root=project, log=lambda *a, **k: None)
    assert list(times) == ["00_a", "01_b"] and all(t > 0 for t in times.values())
    assert (project / "results/smoke/table_a.csv").read_text().split() == ["n", "4"]
    prov = json.loads((project / "results/smoke/provenance.json").read_text())
    assert prov["status"] == "complete" and prov["parameters"]["n"] == 4 and prov["profile"] == "smoke"
    assert {a["path"] for a in prov["artifacts"]} == {"table_a.csv", "figures/fig_a.png"}
    assert all(len(a["sha256"]) == 64 for a in prov["artifacts"])
    index = report.render_html_book("smoke", root=project)
    html = index.read_text()
    assert "00_a.html" in html and "01_b.html" in html and "provenance.html" in html
    page_a = (project / "_book/smoke/00_a.html").read_text()
    assert 'href="01_b.html"' in page_a and "data:image/png;base64" in page_a
    assert "Provenance" in (project / "_book/smoke/provenance.html").read_text()

def test_unknown_and_mistyped_parameters_fail_before_running(project):
    with pytest.raises(ValueError, match="nope"):
        runner.run_book("smoke", params={"nope": 1}, root=project, log=lambda *a, **k: None)
    with pytest.raises(TypeError, match="'n'"):
        runner.run_book("smoke", params={"n": "three"}, root=project, log=lambda *a, **k: None)
    assert not (project / "results/smoke/table_a.csv").exists()  # nothing ran

def test_failing_chapter_stops_and_keeps_partial(project):
    runner.run_book("smoke", chapters="00", root=project, log=lambda *a, **k: None)
    before = (project / "results/smoke/table_a.csv").stat().st_mtime
    with pytest.raises(runner.ChapterFailed) as e:
        runner.run_book("smoke", chapters="01", params={"fail": True}, root=project, log=lambda *a, **k: None)
    assert e.value.chapter == "01_b" and e.value.exc_name == "ValueError" and "asked to fail" in e.value.exc_value
    assert Path(e.value.partial).exists()
    assert (project / "results/smoke/table_a.csv").stat().st_mtime == before
    prov = json.loads((project / "results/smoke/provenance.json").read_text())
    assert prov["status"] == "failed" and "00_a" in prov["chapter_wall_s"]

def test_cli_reports_errors(project, capsys):
    assert main(["run", "--profile", "smoke", "--chapters", "07"]) == 2
    assert "07" in capsys.readouterr().err
    assert main(["run", "--profile", "smoke", "-p", "n=x"]) == 2

def test_failed_rerun_keeps_the_good_notebook_and_record(project, capsys):
    runner.run_book("smoke", params={"n": 4}, root=project, log=lambda *a, **k: None)
    nbdir = project / "_book/smoke/notebooks"
    good = (nbdir / "01_b.ipynb").read_text()
    with pytest.raises(runner.ChapterFailed) as e:
        runner.run_book("smoke", chapters="01", params={"fail": True}, root=project, log=lambda *a, **k: None)
    assert (nbdir / "01_b.ipynb").read_text() == good                       # the good executed notebook stays
    assert Path(e.value.partial) == nbdir / "01_b.failed.ipynb" and Path(e.value.partial).exists()
    assert not list(nbdir.glob("*.running.ipynb"))
    prov = json.loads((project / "results/smoke/provenance.json").read_text())
    rec = prov["chapters"]["01_b"]
    assert rec["last_good"]["parameters"]["n"] == 4 and "fail" not in rec["last_good"]["parameters"]
    assert rec["last_failure"]["parameters"]["fail"] is True and "asked to fail" in rec["last_failure"]["exception"]
    assert prov["parameters"]["n"] == 4 and prov["failed_chapters"] == ["01_b"] and prov["status"] == "failed"
    assert main(["render", "--profile", "smoke", "--backend", "html"]) == 3        # the book is marked as not whole
    err = capsys.readouterr().err
    assert "chapter 01_b failed in its latest run" in err and "01_b.failed.ipynb" in err
    runner.run_book("smoke", chapters="01", root=project, log=lambda *a, **k: None)  # a good rerun clears the failure
    assert not (nbdir / "01_b.failed.ipynb").exists() and runner.failed_chapters("smoke") == {}
    assert main(["render", "--profile", "smoke", "--backend", "html"]) == 0

def test_unwritable_results_folder_is_one_line_before_anything_runs(project, monkeypatch, capsys):
    blocker = project / "blocked"; blocker.write_text("a file where the results folder should be")
    monkeypatch.setenv("LEUKOXAI_RESULTS", str(blocker))
    assert main(["run", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "blocked" in err and "cannot write results here" in err
    assert not (project / "_book/smoke/notebooks/00_a.ipynb").exists()

def test_full_disk_while_writing_names_the_folder(project, monkeypatch):
    import errno
    from leukoxai_nb import core
    def full(*a, **k): raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(core.tempfile, "mkstemp", full)
    with pytest.raises(core.ResultsNotWritable, match=r"results/smoke: cannot write results here \(No space left on device\)"):
        core.save_json(core.results_path("smoke", "x.json"), {})

def test_result_files_are_group_readable(project):
    import stat
    from leukoxai_nb import core
    old = os.umask(0o022)
    try: p = core.save_json(core.results_path("smoke", "x.json"), {"a": 1})
    finally: os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644

def _meet(me, other):
    "Chapter body: leave a mark, then wait until the other chapter's mark appears (only possible if both run at once)."
    return [f"import time, pathlib\nd = pathlib.Path({str(me.parent)!r})\n(d / {me.name!r}).write_text('here')\n"
            f"t0 = time.time()\nwhile not (d / {other.name!r}).exists():\n"
            f"    assert time.time() - t0 < limit, 'the other chapter never ran beside this one'\n    time.sleep(0.2)"]

def test_independent_chapters_run_in_two_lanes(project):
    "Chapters that `needs:` declares independent run side by side; a chapter waits for what it needs."
    marks = project / "marks"; marks.mkdir()
    cfg = project / "_quarto.yml"
    cfg.write_text(cfg.read_text().replace("02_missing.ipynb", "02_c.ipynb, 03_d.ipynb")
                   + "needs:\n  01_b: []\n  02_c: []\n  03_d: [02_c]\n")
    _chapter(project / "nbs/00_a.ipynb", "A", 'profile = "smoke"\nseed = 0\ndevice = "auto"\nlimit = 90', _meet(marks / "a", marks / "b"))
    _chapter(project / "nbs/01_b.ipynb", "B", 'profile = "smoke"\nseed = 0\ndevice = "auto"\nlimit = 90', _meet(marks / "b", marks / "a"))
    _chapter(project / "nbs/02_c.ipynb", "C", 'profile = "smoke"\nseed = 0\ndevice = "auto"',
             ["import pathlib, time; time.sleep(1); pathlib.Path('../marks/c').write_text('c')"])
    _chapter(project / "nbs/03_d.ipynb", "D", 'profile = "smoke"\nseed = 0\ndevice = "auto"',
             ["import pathlib; assert pathlib.Path('../marks/c').exists(), 'ran before the chapter it needs'"])
    lines = []
    times = runner.run_book("smoke", root=project, lanes=2, log=lines.append)
    assert list(times) == ["00_a", "01_b", "02_c", "03_d"] and "lanes=2" in lines[0]
    for m in marks.iterdir(): m.unlink()
    with pytest.raises(runner.ChapterFailed, match="never ran beside"):     # one lane: A waits for B in vain
        runner.run_book("smoke", chapters="00", params={"limit": 2}, root=project, lanes=1, log=lambda *a, **k: None)

def test_a_failure_in_one_lane_lets_the_other_finish_and_skips_its_dependents(project):
    cfg = project / "_quarto.yml"
    cfg.write_text(cfg.read_text().replace("02_missing.ipynb", "02_c.ipynb") + "needs:\n  01_b: []\n  02_c: [01_b]\n")
    _chapter(project / "nbs/02_c.ipynb", "C", 'profile = "smoke"\nseed = 0\ndevice = "auto"', ["print('c ran')"])
    with pytest.raises(runner.ChapterFailed) as e:
        runner.run_book("smoke", params={"fail": True}, root=project, lanes=2, log=lambda *a, **k: None)
    assert e.value.chapter == "01_b" and "asked to fail" in e.value.exc_value
    nbdir = project / "_book/smoke/notebooks"
    assert (nbdir / "00_a.ipynb").exists() and (nbdir / "01_b.failed.ipynb").exists()   # the other lane finished
    assert not (nbdir / "02_c.ipynb").exists()                                            # its dependent never started
    prov = json.loads((project / "results/smoke/provenance.json").read_text())
    assert prov["failed_chapters"] == ["01_b"] and "00_a" in prov["chapter_wall_s"]
