"""The whole book in the smoke profile: every chapter runs through the runner, the report renders, and a real
browser (headless Chromium driven by Playwright) reads it: every page loads, no image is broken, every navigation
link resolves, and a screenshot of the index is saved under results/."""
import json, os, threading, functools, http.server
from pathlib import Path
import pytest
from leukoxai_nb import runner, report
from leukoxai_nb.core import CLASSES
from conftest import find_chromium

@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory, repo_root):
    "Run every chapter present in the smoke profile once per test session, into temporary folders."
    base = tmp_path_factory.mktemp("book")
    old = {k: os.environ.get(k) for k in ("LEUKOXAI_RESULTS", "LEUKOXAI_BOOK")}
    os.environ["LEUKOXAI_RESULTS"] = str(base / "results"); os.environ["LEUKOXAI_BOOK"] = str(base / "_book")
    try:
        times = runner.run_book("smoke", root=repo_root, device="cpu")
        index = report.render_book("smoke", root=repo_root, backend="html")
        yield {"base": base, "times": times, "index": index, "results": base / "results" / "smoke"}
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v

def test_every_chapter_ran(smoke_book, repo_root):
    expected = [c.stem for c in runner.chapter_list(repo_root)]
    assert list(smoke_book["times"]) == expected and len(expected) >= 1
    prov = json.loads((smoke_book["results"] / "provenance.json").read_text())
    assert prov["status"] == "complete" and set(prov["chapter_wall_s"]) == set(expected)
    assert prov["git"]["commit"] is None or len(prov["git"]["commit"]) == 40

EXPECTED_TABLES = {"02_models": ["table1_classification.csv"], "03_calibration": ["table2_calibration.csv"],
                   "04_explanations": ["table_explanations.csv"],
                   "06_applications": ["table_ood.csv", "table_ood_stats.csv", "table_mislabel.csv"],
                   "01_preprocessing": ["table_feature_baseline.csv"]}

def test_chapters_wrote_their_tables(smoke_book):
    import pandas as pd
    for chapter, tables in EXPECTED_TABLES.items():
        if chapter not in smoke_book["times"]: continue
        for t in tables:
            df = pd.read_csv(smoke_book["results"] / t)
            assert len(df) > 0, f"{t} of {chapter} is empty"

def test_report_in_a_real_browser(smoke_book, repo_root):
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"): pytest.fail("CI has no chromium: `make browser` should have installed Debian's chromium")
        pytest.skip("no chromium on this machine (set LEUKOXAI_CHROMIUM)")
    from playwright.sync_api import sync_playwright
    site = smoke_book["index"].parent
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
            page = browser.new_page()
            seen, todo = set(), ["index.html"]
            while todo:
                name = todo.pop(0)
                if name in seen: continue
                seen.add(name)
                resp = page.goto(url + name)
                assert resp is not None and resp.status == 200, f"{name} did not load"
                page.wait_for_load_state("load")
                broken = page.evaluate("""() => Array.from(document.images)
                    .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.src || '').slice(0, 80))""")
                assert not broken, f"broken images on {name}: {broken}"
                links = page.evaluate("""() => Array.from(document.querySelectorAll('nav.lx-nav a, main.lx-page a'))
                    .map(a => a.getAttribute('href')).filter(h => h && !h.startsWith('http') && !h.startsWith('#'))""")
                todo += [l for l in links if l not in seen]
                if name == "index.html":
                    shot = smoke_book["results"] / "book_index.png"
                    page.screenshot(path=str(shot), full_page=False)
                    repo_shot = repo_root / "results" / "smoke" / "book_index.png"
                    repo_shot.parent.mkdir(parents=True, exist_ok=True); repo_shot.write_bytes(shot.read_bytes())
            browser.close()
    finally:
        httpd.shutdown()
    chapters = {f"{c}.html" for c in smoke_book["times"]}
    assert chapters | {"index.html", "provenance.html"} <= seen, f"not reached from the index: {chapters - seen}"
