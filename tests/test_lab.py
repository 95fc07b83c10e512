"""The teaching path, checked as a student runs it: JupyterLab (started on 127.0.0.1 with a token, the project's
kernel) opens a chapter in headless Chromium; the notebook is not marked modified by opening it; Run > Run All
Cells runs it to the end; then no cell shows an error, a warning or an empty stderr strip, every figure the
chapter saves is shown as an image, and no output area holds more than five progress lines. The chapters run on a
copy of nbs/ (JupyterLab may autosave) with a temporary results folder, i.e. cold. Screenshots go to results/smoke/.

Chapters that do not yet use `finish_figure` (and core's `progress`) are expected to fail the figure count and the
progress check (xfail, as in test_book.py); errors, warnings and the modified flag are checked for every chapter."""
import json, os, re, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import nbformat, pytest
from conftest import require_chromium
from leukoxai_nb import runner

ROOT = Path(__file__).resolve().parents[1]
LAB_CHAPTERS = [c.stem for c in runner.chapter_list(ROOT)]   # every chapter, in book order: later ones reuse the caches
MAX_PROGRESS_LINES = 5
RUN_ALL_TIMEOUT_S = int(os.environ.get("LEUKOXAI_LAB_TIMEOUT", "600"))
_PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[\d|it/s\]|s/it\]")

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A JupyterLab server on a copy of the project's notebooks, and a headless Chromium page."
    chromium = require_chromium()
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists(): pytest.skip("JupyterLab is not installed in this environment (pip install -e '.[dev]')")
    base = tmp_path_factory.mktemp("lab")
    work = base / "project"; (work / "nbs").mkdir(parents=True)
    for f in ("settings.ini", "_quarto.yml", "jupyter_server_config.py", "data_manifest.yaml"): shutil.copy(ROOT / f, work / f)
    for nb in (ROOT / "nbs").glob("*.ipynb"): shutil.copy(nb, work / "nbs" / nb.name)
    shutil.copytree(ROOT / "data_fingerprints", work / "data_fingerprints")   # the manifest's reference digests
    settings = base / "settings" / "@jupyterlab" / "notebook-extension"; settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))   # every cell in the DOM
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "LEUKOXAI_RESULTS": str(base / "results"), "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"), "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    for k in ("LEUKOXAI_PROGRESS", "LEUKOXAI_CHAPTER", "MPLBACKEND"): env.pop(k, None)   # as a student's shell
    cmd = [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={work / 'nbs'}", f"--config={work / 'jupyter_server_config.py'}"]   # as `make lab`
    if os.geteuid() == 0: cmd.append("--allow-root")
    log = open(base / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work / "nbs")
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2); break
            except OSError: time.sleep(0.5)
        else: pytest.fail(f"JupyterLab did not start: {(base / 'jupyterlab.log').read_text()[-2000:]}")
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            yield {"url": url, "token": token, "page": page, "work": work, "results": base / "results"}
            browser.close()
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()

def _status(page) -> str:
    return page.evaluate("() => (document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')"
                         " || {dataset: {}}).dataset.status || ''")

def _wait_idle(page, timeout_s, need_counts=False):
    "Wait until the kernel is idle (and, after Run All, no cell is queued or running)."
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        busy = page.evaluate("() => Array.from(document.querySelectorAll('.jp-InputPrompt')).some(p => p.textContent.includes('*'))")
        if _status(page) == "idle" and not busy: return time.perf_counter() - t0
        time.sleep(1)
    raise AssertionError(f"the kernel was not idle after {timeout_s} s (status {_status(page)!r})")

def _saved_figures(results: Path, chapter: str, since: float) -> set:
    "Figures the chapter wrote in this run (the figure index says which chapter; else by modification time)."
    figdir = results / "smoke" / "figures"
    index = json.loads((figdir / "index.json").read_text()) if (figdir / "index.json").exists() else {}
    return {p.stem for p in figdir.glob("*.png") if p.stat().st_mtime >= since
            and index.get(p.stem, {}).get("chapter", chapter) == chapter}

@pytest.mark.parametrize("chapter", LAB_CHAPTERS)
def test_run_all_in_jupyterlab(lab, chapter, repo_root):
    src = repo_root / "nbs" / f"{chapter}.ipynb"
    if not src.exists(): pytest.skip(f"no {src.name}")
    page, shots = lab["page"], repo_root / "results" / "smoke"
    shots.mkdir(parents=True, exist_ok=True)
    auth = {"Authorization": f"token {lab['token']}"}
    sessions = json.loads(urllib.request.urlopen(urllib.request.Request(f"{lab['url']}/api/sessions", headers=auth)).read())
    for sess in sessions:                         # the previous chapter's kernel: shut it down, as a student closing it
        urllib.request.urlopen(urllib.request.Request(f"{lab['url']}/api/sessions/{sess['id']}", headers=auth, method="DELETE"))
    page.goto(f"{lab['url']}/lab/tree/{chapter}.ipynb?reset&token={lab['token']}")      # reset: only this notebook open
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=120_000)
    _wait_idle(page, 120)
    # While the kernel starts, JupyterLab flags the notebook for a moment and clears the flag when the metadata it
    # writes equals the file's; a real modification stays. Wait for 5 s of idle kernel without the flag (at most 90 s).
    t0, clean_since = time.perf_counter(), None
    while time.perf_counter() - t0 < 90:
        dirty = page.evaluate("() => Array.from(document.querySelectorAll('.lm-TabBar-tab.jp-mod-dirty')).map(t => t.textContent)")
        dirty = [t for t in dirty if chapter in t]
        if dirty or _status(page) != "idle": clean_since = None
        elif clean_since is None: clean_since = time.perf_counter()
        elif time.perf_counter() - clean_since >= 5: break
        time.sleep(0.5)
    assert not dirty, f"{chapter}: opening the notebook marked it modified ({dirty})"
    since = time.time() - 1
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    time.sleep(2)
    secs = _wait_idle(page, RUN_ALL_TIMEOUT_S)
    page.screenshot(path=str(shots / f"lab_{chapter}.png"), full_page=False)
    dom = page.evaluate("""() => {
      const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
      const areas = Array.from(nb.querySelectorAll('.jp-Cell .jp-OutputArea'));
      return {images: nb.querySelectorAll('.jp-OutputArea-output img').length,
              errors: nb.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').length,
              tracebacks: nb.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]').length,
              widgets: areas.map(a => a.querySelectorAll('.widget-hprogress, .jupyter-widgets.widget-hbox').length),
              texts: areas.map(a => a.innerText)};
    }""")
    page.keyboard.press("Control+s"); time.sleep(2)            # the copy only: read the outputs back from the file
    nb = nbformat.read(str(lab["work"] / "nbs" / f"{chapter}.ipynb"), as_version=4)
    outs = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs]
    errors = [f"cell {i}: {o.ename}: {o.evalue}" for i, o in outs if o.output_type == "error"]
    assert not errors and dom["tracebacks"] == 0, f"{chapter}: errors after Run All: {errors}"
    stderr = [(i, o.text[:200]) for i, o in outs if o.output_type == "stream" and o.name == "stderr"]
    assert not [s for s in stderr if not s[1].strip()], f"{chapter}: empty stderr strips in cells {[i for i, t in stderr if not t.strip()]}"
    warnings = [s for s in stderr if "Warning" in s[1]]
    assert not warnings, f"{chapter}: warnings shown to the student: {warnings[:3]}"
    problems = []                                             # what converting a chapter to core's helpers fixes
    for k, c in enumerate(nb.cells):
        if c.cell_type != "code": continue
        lines = sum(1 for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))
        lines += sum(1 for o in c.outputs if o.output_type == "stream"
                     for l in o.text.replace("\r", "\n").split("\n") if _PROGRESS.search(l))
        if lines > MAX_PROGRESS_LINES: problems.append(f"cell {k} shows {lines} progress lines")
    saved = _saved_figures(lab["results"], chapter, since)
    images = sum(1 for _, o in outs if "image/png" in o.get("data", {}))
    print(f"{chapter}: Run All {secs:.0f} s (cold), {images} images shown ({dom['images']} in the page), {len(saved)} figures saved")
    if not (images == len(saved) == dom["images"] and images >= 1):
        problems.append(f"{images} image outputs ({dom['images']} in the page), {len(saved)} figures saved: {sorted(saved)}")
    text = src.read_text(encoding="utf-8")
    if problems and "finish_figure(" not in text:
        pytest.xfail(f"{chapter} does not use core.finish_figure/progress yet: " + "; ".join(problems))
    assert not problems, f"{chapter}: " + "; ".join(problems)
