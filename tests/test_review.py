"Review of flagged cells (nbs/99_review): annotation store, queues, use of the answers, the page in a browser."
import json, multiprocessing as mp, os, socket, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from leukoxai_nb import review as R
from leukoxai_nb.core import CLASSES

SQUARE = [[20, 20], [30, 20], [30, 30], [20, 30]]

def test_store_latest_wins_history_kept(tmp_path):
    st = R.AnnotationStore(tmp_path / "a.jsonl", cell_ids={"c0", "c1", "o0"})
    st.append("c0", "keep", label="monocyte", reviewer="ana")
    st.append("c0", "relabel", label="eosinophil", reviewer="ana", outlines={"nucleus": SQUARE})
    st.append("o0", "not_leukocyte", reviewer="ben", queue="outlier")
    h = st.history()
    assert [r["line"] for r in h] == [1, 2, 3]
    lt = st.latest()
    assert lt["c0"]["decision"] == "relabel" and lt["c0"]["label"] == "eosinophil" and lt["c0"]["outlines"]["nucleus"][0] == [20, 20]
    assert lt["o0"]["queue"] == "outlier" and lt["o0"]["reviewer"] == "ben" and lt["o0"]["time"].endswith("Z")
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(l)["schema"] == R.SCHEMA for l in lines)

def _writer(path, k, n):
    st = R.AnnotationStore(path)
    for i in range(n):
        st.append(f"c{k * 1000 + i}", "relabel", label=CLASSES[i % 4], reviewer=f"writer{k}",
                  outlines={"nucleus": SQUARE * 10, "cytoplasm": [[5, 5], [45, 5], [45, 45], [5, 45]] * 10})

def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "review" / "annotations.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, k, 60)) for k in range(4)]
    for p in procs: p.start()
    for p in procs: p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    h = R.AnnotationStore(path).history()               # every line parses and validates
    assert len(h) == 240
    for k in range(4):
        mine = [int(r["cell"][1:]) - k * 1000 for r in h if r["reviewer"] == f"writer{k}"]
        assert mine == list(range(60))                  # each writer's lines complete and in order

@pytest.mark.parametrize("line,expect", [
    ("{not json", "line 2: not a JSON line"),
    ('{"foo": 1}', "line 2: not a leukoxai review annotation"),
    (dict(cell="c99"), "line 2: unknown cell id 'c99'"),
    (dict(decision="relabel", label="basophil"), "line 2: label 'basophil' is not one of"),
    (dict(decision="maybe"), "line 2: decision 'maybe'"),
    (dict(outlines={"cytoplasm": [[1, 1], [51, 1], [1, 9]]}), "line 2: cytoplasm outline leaves the 50x50 patch"),
    (dict(outlines={"nucleus": [[1, 1], [2, 2]]}), "line 2: nucleus outline needs at least 3"),
    (dict(time="yesterday"), "line 2: time 'yesterday'"),
])
def test_bad_lines_one_line_error(tmp_path, line, expect):
    good = R.make_record("c0", "keep", reviewer="ana")
    if isinstance(line, dict): line = json.dumps(dict(good, **line))
    p = tmp_path / "a.jsonl"; p.write_text(json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(R.AnnotationError) as e: R.AnnotationStore(p, cell_ids={"c0", "c1"}).history()
    msg = str(e.value)
    assert expect in msg and str(p) in msg and "\n" not in msg

def test_append_refuses_bad_decisions(tmp_path):
    st = R.AnnotationStore(tmp_path / "a.jsonl", cell_ids={"c0"})
    for kw, expect in [(dict(cell="c5", decision="keep"), "unknown cell id"),
                       (dict(cell="c0", decision="relabel", label="basophil"), "not one of"),
                       (dict(cell="c0", decision="keep", outlines={"nucleus": [[-1, 0], [3, 3], [0, 4]]}), "leaves the"),
                       (dict(cell="c0", decision="keep", reviewer=" "), "reviewer name missing")]:
        with pytest.raises(R.AnnotationError, match=expect): st.append(**{"reviewer": "x", **kw})
    assert not (tmp_path / "a.jsonl").exists()

def test_killed_writer_half_line_is_named_and_next_write_starts_fresh(tmp_path):
    p = tmp_path / "a.jsonl"; st = R.AnnotationStore(p)
    st.append("c0", "keep", reviewer="a")
    with open(p, "a") as f: f.write('{"schema": "leukoxai-review/1", "ce')     # a writer killed mid-line
    with pytest.raises(R.AnnotationError, match="line 2: not a JSON line"): st.history()
    st.append("c1", "unusable", reviewer="a")
    assert p.read_text().splitlines()[2].startswith("{") and json.loads(p.read_text().splitlines()[2])["cell"] == "c1"

def test_scripted_loop_on_toy_data(tmp_path):
    toy = R.toy_review_data(n=16, n_outliers=5)
    a = R.AnnotationStore(tmp_path / "oracle.jsonl", toy.cell_ids); b = R.AnnotationStore(tmp_path / "sloppy.jsonl", toy.cell_ids)
    R.scripted_review(toy, "oracle", store=a); R.scripted_review(toy, "sloppy", error_rate=0.4, seed=3, store=b)
    assert R.reviewer_agreement(a, a)["kappa"] == 1.0
    agr = R.reviewer_agreement(a, b); assert agr["n"] == toy.cards.cell.nunique() and agr["kappa"] < 1.0
    s = R.review_summary(toy, a); prec = R.detector_precision(s).set_index("queue")
    assert prec.loc["mislabel", "precision_reviewer"] == 1.0 and prec.loc["outlier", "precision_reviewer"] == 1.0
    assert s.reviewed.sum() == len(toy.cards)
    labels, counts = R.apply_relabels(toy.cells, tmp_path / "oracle.jsonl")
    reviewed = [R.parse_cell_id(c)[1] for c in toy.cards.cell.unique() if c.startswith("c")]
    assert (labels[reviewed] == toy.cells.true_label[reviewed]).all()
    assert counts["relabelled"] == int((toy.cells.label[reviewed] != toy.cells.true_label[reviewed]).sum()) > 0
    assert counts["outlier_set"] == 5 and counts["changes"].values.sum() == counts["relabelled"]
    assert (np.asarray(toy.cells.label) != labels).sum() == counts["relabelled"]    # the input is not modified
    for c, r in a.latest().items():
        if c.startswith("c"):
            o = R.outline_regions(r["outlines"]); t = R.truth_regions(toy.masks(c))
            assert (o["nucleus"] & t["nucleus"]).sum() / (o["nucleus"] | t["nucleus"]).sum() > 0.85

# ---- the page, as a user would use it: headless Chromium against `leukoxai review` ----
def _free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.fixture(scope="module")
def review_server(tmp_path_factory, repo_root):
    "`leukoxai review --profile smoke` on a free port (smoke data and network built into results/ when missing)."
    ann = tmp_path_factory.mktemp("review") / "annotations.jsonl"
    port = _free_port()
    exe = Path(sys.executable).parent / "leukoxai"
    proc = subprocess.Popen([str(exe), "review", "--profile", "smoke", "--port", str(port), "--annotations", str(ann),
                             "--device", "cpu", "--n-per-queue", "8"], cwd=repo_root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, t0 = [], time.time()
    while time.time() - t0 < 150:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None: break
        lines.append(line)
        if "leukoxai review: serving" in line: break
    if not any("leukoxai review: serving" in l for l in lines):
        proc.kill(); pytest.fail("leukoxai review did not start:\n" + "".join(lines[-20:]))
    while time.time() - t0 < 170:
        try: socket.create_connection(("127.0.0.1", port), 1).close(); break
        except OSError: time.sleep(0.3)
    yield dict(url=f"http://127.0.0.1:{port}/review", annotations=ann, banner=[l for l in lines if "serving" in l][0], proc=proc)
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill()

def test_server_says_where_it_listens(review_server):
    b = review_server["banner"]
    assert "http://127.0.0.1:" in b and "listening on 127.0.0.1" in b and str(review_server["annotations"]) in b

def _draw_freehand(page, box):
    import math
    cx, cy, r = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, box["width"] * 0.15
    page.mouse.move(cx + r, cy); page.mouse.down()
    for k in range(1, 41):
        a = 2 * math.pi * k / 40; page.mouse.move(cx + r * math.cos(a), cy + r * math.sin(a), steps=2)
    page.mouse.up()

def test_review_page_in_a_browser(review_server, repo_root):
    from conftest import find_chromium
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"): pytest.fail("CI has no chromium: `make browser` should have installed Debian's chromium")
        pytest.skip("no chromium on this machine (set LEUKOXAI_CHROMIUM)")
    from playwright.sync_api import sync_playwright
    from leukoxai_nb.core import results_path
    args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]
    ann = review_server["annotations"]
    def saved(page, n, wait=30):
        t0 = time.time()
        while time.time() - t0 < wait:
            if ann.exists() and len(ann.read_text().splitlines()) >= n: return
            page.wait_for_timeout(200)
        raise AssertionError(f"decision {n} not written to {ann}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(review_server["url"]); page.get_by_role("button", name="Keep label").wait_for(timeout=60000)
        page.get_by_role("textbox").first.fill("playwright"); page.get_by_role("textbox").first.press("Enter")
        def card_cell(): return page.locator(".review-card").first.get_attribute("data-cell")
        def next_cell():
            before = card_cell(); page.get_by_role("button", name="Next ▶").click()
            t0 = time.time()
            while card_cell() == before:                    # the server answers; slow when the machine is busy
                assert time.time() - t0 < 30, f"Next did not leave {before}"
                page.wait_for_timeout(200)
            return card_cell()
        cells = [card_cell()]; page.get_by_role("button", name="Relabel → neutrophil").click(); saved(page, 1)
        cells.append(next_cell()); page.get_by_role("button", name="Relabel → monocyte").click(); saved(page, 2)
        cells.append(next_cell()); page.get_by_role("button", name="Not a leukocyte").click(); saved(page, 3)
        cells.append(next_cell()); page.wait_for_timeout(500)
        canvases = [c.bounding_box() for c in page.locator("canvas").all()]
        box = min((b for b in canvases if b and 150 < b["width"] < 400), key=lambda b: (b["x"], b["y"]))
        _draw_freehand(page, box); page.wait_for_timeout(800)
        for attempt in range(4):          # the drawing syncs to the server asynchronously: save again until it is there
            page.get_by_role("button", name="Save outline").click()
            try: saved(page, 4, wait=5 + 5 * attempt); break
            except AssertionError:
                if attempt == 3: raise
        assert len(set(cells)) == 4, cells
        recs = [json.loads(l) for l in ann.read_text().splitlines()]
        assert [r["decision"] for r in recs[:3]] == ["relabel", "relabel", "not_leukocyte"]
        assert [r["label"] for r in recs[:2]] == ["neutrophil", "monocyte"] and recs[3]["cell"] == cells[3]
        assert recs[3]["outlines"]["nucleus"] and all(r["reviewer"] == "playwright" for r in recs)
        pts = np.array(recs[3]["outlines"]["nucleus"]); assert len(pts) >= 10 and (pts >= 0).all() and (pts <= 50).all()
        # reload: every decision so far is shown
        page.reload(); page.get_by_role("button", name="Keep label").wait_for(timeout=60000)
        page.locator("table.review-log").wait_for(timeout=20000)
        rows = page.locator("table.review-log tr[data-cell]")
        shown = {rows.nth(i).get_attribute("data-cell"): rows.nth(i).inner_text() for i in range(rows.count())}
        assert set(shown) == set(cells), shown
        assert "neutrophil" in shown[cells[0]] and "monocyte" in shown[cells[1]] and "not_leukocyte" in shown[cells[2]]
        assert "nucleus" in shown[cells[3]]
        for _ in range(3): next_cell()
        assert card_cell() == cells[3] and "outlined: nucleus" in page.locator(".review-card").first.inner_text()
        shot = results_path("smoke") / "review_page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000

def test_killed_server_loses_nothing(review_server):
    "After the browser test: SIGKILL the server; every decision it acknowledged is on disk and reads back."
    ann = review_server["annotations"]
    if not ann.exists(): pytest.skip("the browser test wrote no decisions (no chromium?)")
    n = len(ann.read_text().splitlines())
    review_server["proc"].kill(); review_server["proc"].wait(10)
    h = R.AnnotationStore(ann).history()
    assert len(h) == n >= 4 and len(R.AnnotationStore(ann).latest()) == 4

def test_smoke_queues_and_scripted_review(tmp_path):
    "Queues from the smoke profile's cached data and predictions; the whole loop with the scripted reviewers."
    d = R.build_queues("smoke", device="cpu", n_per_queue=10)
    c = d.cards
    assert set(c.queue) <= set(R.QUEUES) and {"outlier", "least_confident", "random"} <= set(c.queue)
    mis = c[c.queue == "mislabel"]
    assert ((mis.pred != mis.label) & (mis.conf >= 0.95)).all()
    lc = c[c.queue == "least_confident"]; assert (lc.split == "test").all() and lc.conf.is_monotonic_increasing
    assert c[c.queue == "outlier"].cell.str.startswith("o").all() and (c[c.queue == "outlier"].label == -1).all()
    p = c[[f"p_{k}" for k in CLASSES]].to_numpy(); assert np.allclose(p.sum(1), 1, atol=1e-6)
    assert (c[[f"sd_{k}" for k in CLASSES]].to_numpy() >= 0).all() and {"donor", "frame", "group"} <= set(c.columns)
    assert d.explanation(c.cell.iloc[0], "saliency").shape == (50, 50) and "saliency" in d.methods()
    a = R.AnnotationStore(tmp_path / "oracle.jsonl", d.cell_ids); b = R.AnnotationStore(tmp_path / "sloppy.jsonl", d.cell_ids)
    R.scripted_review(d, "oracle", store=a); R.scripted_review(d, "sloppy", error_rate=0.2, seed=1, store=b)
    agr = R.reviewer_agreement(a, b); assert agr["n"] == c.cell.nunique() and 0.3 < agr["kappa"] < 1
    prec = R.detector_precision(R.review_summary(d, a)).set_index("queue")
    assert prec.loc["outlier", "precision_reviewer"] == 1.0
    assert np.allclose(prec.precision_reviewer.fillna(-1), prec.precision_truth.fillna(-1))   # the oracle agrees with the truth
    labels, counts = R.apply_relabels(d.cells, a)
    assert counts["outlier_set"] == (c.drop_duplicates("cell").source == "outliers").sum()
    assert (labels != np.asarray(d.cells.label)).sum() == counts["relabelled"] + counts["rejected"]
    sc = R.outline_scores(d, a, methods=["saliency"], max_cells=6)
    assert len(sc) == 1 and sc.n_cells[0] == 6 and sc.iou_nucleus[0] > 0.7
    assert 0 <= sc.mass_nucleus_reviewer[0] <= 1 and abs(sc.mass_nucleus_reviewer[0] - sc.mass_nucleus_truth[0]) < 0.15

def test_relabels_refuse_cells_that_changed(tmp_path):
    toy = R.toy_review_data(n=8, n_outliers=2)
    st = R.AnnotationStore(tmp_path / "a.jsonl", toy.cell_ids)
    w = toy.where("c1"); st.append("c1", "relabel", label="neutrophil", reviewer="a", where=w)
    labels, counts = R.apply_relabels(toy.cells, st); assert labels[1] == CLASSES.index("neutrophil")
    st.append("c2", "keep", reviewer="a", where=dict(w, frame=w["frame"] + 1000))
    with pytest.raises(R.AnnotationError, match=r"line 2: cell c2 was .* when reviewed"): R.apply_relabels(toy.cells, st)

def test_cli_refuses_a_corrupt_annotations_file(tmp_path, repo_root):
    bad = tmp_path / "annotations.jsonl"; bad.write_text('{"schema": "something-else/2", "cell": "c1"}\n')
    exe = Path(sys.executable).parent / "leukoxai"
    r = subprocess.run([str(exe), "review", "--profile", "smoke", "--annotations", str(bad), "--port", str(_free_port())],
                       cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "line 1: not a leukoxai review annotation" in err[0] and str(bad) in err[0]

def test_relabel_patchset_smoke(tmp_path):
    from leukoxai_nb.datasets import load_dataset
    ds = load_dataset("synthetic-qpi", "smoke")
    st = R.AnnotationStore(tmp_path / "a.jsonl")
    bad = np.flatnonzero(np.asarray(ds.label) != np.asarray(ds.true_label))[:3]
    for i in bad: st.append(f"c{i}", "relabel", label=CLASSES[ds.true_label[i]], reviewer="t",
                            where=dict(donor=int(ds.donor[i]), frame=int(ds.frame[i]), object=int(ds.object_id[i])))
    good = int(np.flatnonzero(np.asarray(ds.label) == np.asarray(ds.true_label))[0])
    st.append(f"c{good}", "unusable", reviewer="t")
    out, counts = R.relabel_patchset(ds, st)
    assert counts["relabelled"] == len(bad) and counts["rejected"] == 1 and len(out) == len(ds) - 1
    assert counts["label_errors_after"] == counts["label_errors_before"] - len(bad)
