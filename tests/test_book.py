"""The whole book in the smoke profile, checked as a reader would: every chapter runs through the runner, the report
renders, and a real browser (headless Chromium driven by Playwright) reads it. Every page loads, no image is broken,
every navigation link resolves; every chapter page shows its figures (as many images as the chapter saved), no
cell floods the page with outputs, implementation cells are folded, figure references and citations resolve, the
search box finds a word of chapter 04, the bibliography lists every cited key. Screenshots of the index and of
chapter 05 go to results/smoke/.

Chapters that do not yet use `finish_figure` are expected to fail the figure checks (xfail): when a chapter is
converted, its checks become strict by themselves."""
import datetime as dt, functools, http.server, json, os, threading
from pathlib import Path
import nbformat, pytest
from leukoxai_nb import runner, report
from conftest import require_chromium

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [c.stem for c in runner.chapter_list(ROOT)]
CONVERTED = {c.stem for c in runner.chapter_list(ROOT) if "finish_figure(" in c.read_text(encoding="utf-8")}
MAX_OUTPUTS_PER_CELL = 4
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]

def _per_chapter(chapter):
    "A chapter id, marked xfail while the chapter does not use finish_figure yet."
    if chapter in CONVERTED: return chapter
    return pytest.param(chapter, marks=pytest.mark.xfail(reason=f"{chapter} does not use core.finish_figure yet", strict=False))

@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory, repo_root):
    "Run every chapter present in the smoke profile once per test session, into temporary folders."
    base = tmp_path_factory.mktemp("book")
    keys = ("LEUKOXAI_RESULTS", "LEUKOXAI_BOOK", "LEUKOXAI_PROGRESS", "LEUKOXAI_CHAPTER")
    old = {k: os.environ.get(k) for k in keys}
    os.environ["LEUKOXAI_RESULTS"] = str(base / "results"); os.environ["LEUKOXAI_BOOK"] = str(base / "_book")
    os.environ.pop("LEUKOXAI_PROGRESS", None)   # the runner sets log (one line per loop) and the chapter's name
    try:
        times = runner.run_book("smoke", root=repo_root, device="cpu")
        index = report.render_book("smoke", root=repo_root, backend="html")
        yield {"base": base, "times": times, "index": index, "results": base / "results" / "smoke"}
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v

def figures_saved(smoke_book) -> dict:
    "PNG figures each chapter wrote in this run: by the figure index (finish_figure), else by the papermill time window."
    figdir = smoke_book["results"] / "figures"
    index = json.loads((figdir / "index.json").read_text()) if (figdir / "index.json").exists() else {}
    windows = {}
    for stem in smoke_book["times"]:
        meta = nbformat.read(str(smoke_book["index"].parent / "notebooks" / f"{stem}.ipynb"), as_version=4).metadata.papermill
        windows[stem] = (dt.datetime.fromisoformat(meta.start_time).timestamp(), dt.datetime.fromisoformat(meta.end_time).timestamp())
    out = {stem: set() for stem in smoke_book["times"]}
    for png in figdir.glob("*.png"):
        chapter = index.get(png.stem, {}).get("chapter")
        if chapter not in out:
            t = png.stat().st_mtime
            chapter = next((s for s, (a, b) in windows.items() if a - 1 <= t <= b + 1), None)
        if chapter: out[chapter].add(png.stem)
    return out

@pytest.fixture(scope="module")   # closed before test_lab and test_review start their own sync Playwright
def site(smoke_book):
    "The rendered book served over HTTP on 127.0.0.1 and a headless Chromium page on it."
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(smoke_book["index"].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}/", "page": page}
            browser.close()
    finally:
        httpd.shutdown()

_STATS = """() => {
  const cells = Array.from(document.querySelectorAll('.jp-Cell'));
  const outs = cells.map(c => Array.from(c.querySelectorAll('.jp-OutputArea-child')).filter(o => !o.querySelector('img')).length);
  const details = Array.from(document.querySelectorAll('details.lx-code'));
  return {images: Array.from(document.images).length,
          broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.src || '').slice(0, 80)),
          figures: Array.from(document.querySelectorAll('figure.lx-figure')).map(f => f.id),
          max_outputs: Math.max(0, ...outs), details: details.length, open_details: details.filter(d => d.open).length,
          unresolved: (document.body.innerText.match(/\\?\\?(fig-)?[\\w.+-]+/g) || []),
          fig_links: Array.from(document.querySelectorAll('a[href*="#fig-"]')).map(a => a.getAttribute('href')),
          links: Array.from(document.querySelectorAll('nav.lx-nav a, main.lx-page a')).map(a => a.getAttribute('href'))
                 .filter(h => h && !h.startsWith('http') && !h.startsWith('#') && !h.includes('.ipynb'))};
}"""

@pytest.fixture(scope="module")
def pages(site, smoke_book, repo_root):
    "Crawl the book from its index: statistics of every page reached; screenshots of the index and chapter 05."
    page, url, seen, todo, stats = site["page"], site["url"], set(), ["index.html"], {}
    while todo:
        name = todo.pop(0).split("#")[0]
        if name in seen: continue
        seen.add(name)
        resp = page.goto(url + name)
        assert resp is not None and resp.status == 200, f"{name} did not load"
        page.wait_for_load_state("load")
        stats[name] = page.evaluate(_STATS)
        todo += [l for l in stats[name]["links"] if l.split("#")[0] not in seen]
        if name in ("index.html", "05_meta_explanations.html"):
            shot = smoke_book["results"] / f"book_{name[:-5]}.png"
            page.screenshot(path=str(shot), full_page=False)
            repo_shot = repo_root / "results" / "smoke" / shot.name
            repo_shot.parent.mkdir(parents=True, exist_ok=True); repo_shot.write_bytes(shot.read_bytes())
    return stats

def test_every_chapter_ran(smoke_book, repo_root):
    expected = [c.stem for c in runner.chapter_list(repo_root)]
    assert list(smoke_book["times"]) == expected and len(expected) >= 1
    for a in runner.appendix_list(repo_root):             # a whole-book run executes the library appendices too
        assert (smoke_book["index"].parent / "notebooks" / a.name).exists(), f"appendix {a.stem} was not executed"
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

def test_every_page_loads_with_working_images_and_links(pages, smoke_book):
    for name, s in pages.items(): assert not s["broken"], f"broken images on {name}: {s['broken']}"
    want = {f"{c}.html" for c in smoke_book["times"]} | {"index.html", "provenance.html", "glossary.html", "references.html"}
    want |= {f"{a.stem}.html" for a in runner.appendix_list(ROOT)}          # the library appendices, after the chapters
    assert want <= set(pages), f"not reached from the index: {want - set(pages)}"

@pytest.mark.parametrize("chapter", [_per_chapter(c) for c in CHAPTERS])
def test_chapter_shows_every_figure_it_saves(pages, smoke_book, chapter):
    s, saved = pages[f"{chapter}.html"], figures_saved(smoke_book)[chapter]
    assert s["images"] >= 1, f"{chapter}: its page shows no image ({len(saved)} figures saved)"
    assert s["images"] == len(saved), f"{chapter}: {s['images']} images shown, {len(saved)} figures saved: {sorted(saved)}"
    if chapter in CONVERTED:
        assert sorted(f[4:] for f in s["figures"]) == sorted(saved), f"{chapter}: numbered figures differ from saved ones"

def test_images_shown_equal_figures_saved(pages, smoke_book):
    shown = sum(pages[f"{c}.html"]["images"] for c in smoke_book["times"])
    saved = len(list((smoke_book["results"] / "figures").glob("*.png")))
    if shown != saved and set(CHAPTERS) - CONVERTED:
        pytest.xfail(f"{shown} images shown, {saved} saved; not converted yet: {sorted(set(CHAPTERS) - CONVERTED)}")
    assert shown == saved, f"the book shows {shown} images; results/smoke/figures holds {saved}"

@pytest.mark.parametrize("chapter", [_per_chapter(c) for c in CHAPTERS] + ["index"])
def test_no_page_floods_with_outputs(pages, chapter):
    "Figures aside (a cell may legitimately draw several), no cell shows more than a few output blocks."
    n = pages[f"{chapter}.html"]["max_outputs"]
    assert n <= MAX_OUTPUTS_PER_CELL, f"{chapter}: a cell with {n} output blocks besides its figures"

@pytest.mark.parametrize("chapter", CHAPTERS)
def test_export_cells_are_folded(pages, site, chapter, repo_root):
    nb = nbformat.read(str(repo_root / "nbs" / f"{chapter}.ipynb"), as_version=4)
    exported = [c for c in nb.cells if c.cell_type == "code" and any(l.strip().startswith(("#| export", "#|export"))
                                                                      for l in c.source.splitlines())]
    s = pages[f"{chapter}.html"]
    assert s["details"] >= len(exported), f"{chapter}: {len(exported)} export cells, {s['details']} folded blocks"
    assert s["open_details"] == 0, f"{chapter}: {s['open_details']} folded blocks open on load"
    if exported:
        page = site["page"]; page.goto(site["url"] + f"{chapter}.html"); page.click("#lx-code-switch")
        assert page.evaluate("() => Array.from(document.querySelectorAll('details.lx-code')).every(d => d.open)")

def test_references_resolve(pages, smoke_book):
    summary = json.loads((smoke_book["index"].parent / "book.json").read_text())
    assert not summary["missing_figures"], f"@fig- references to unknown figures: {summary['missing_figures']}"
    assert not summary["missing_citations"], f"citations of keys not in nbs/references.bib: {summary['missing_citations']}"
    for name, s in pages.items():
        assert not s["unresolved"], f"{name}: unresolved references {s['unresolved'][:5]}"
        for href in s["fig_links"]:
            target, anchor = href.split("#")
            target = target or name
            assert anchor[4:] in summary["figures"], f"{name}: {href} names no figure"
            assert anchor in pages[target]["figures"], f"{name}: {href} has no target on {target}"

def test_search_finds_a_word_of_chapter_04(site):
    if "04_explanations" not in CHAPTERS: pytest.skip("no chapter 04")
    page = site["page"]; page.goto(site["url"] + "index.html"); page.fill("#lx-search", "superpixels")
    page.wait_for_selector("#lx-results a.lx-hit", timeout=5000)
    hrefs = page.eval_on_selector_all("#lx-results a.lx-hit", "els => els.map(e => e.getAttribute('href'))")
    assert any(h.startswith("04_explanations.html") for h in hrefs), hrefs

def test_bibliography_lists_every_cited_key(site, smoke_book):
    summary = json.loads((smoke_book["index"].parent / "book.json").read_text())
    assert summary["cited"], "no chapter cites anything"
    page = site["page"]; page.goto(site["url"] + "references.html")
    listed = set(page.eval_on_selector_all("ol.lx-refs li", "els => els.map(e => e.id.slice(4))"))
    assert set(summary["cited"]) <= listed, f"cited but not listed: {set(summary['cited']) - listed}"


def test_formulas_are_typeset_offline(site):
    "MathJax travels with the book: chapter 00's formulas are typeset with every request off this machine blocked."
    page = site["page"]
    page.route("http*://**", lambda r: r.continue_() if r.request.url.startswith(site["url"]) else r.abort())
    try:
        page.goto(site["url"] + "00_data.html"); page.wait_for_load_state("load")
        page.wait_for_function("document.querySelectorAll('.MathJax, .MathJax_CHTML, .MathJax_Display').length > 10",
                               timeout=30000)
        text = page.evaluate("document.body.innerText")
        assert "\\varphi" not in text and "$$" not in text, "raw TeX left on the page"
    finally:
        page.unroute("http*://**")
