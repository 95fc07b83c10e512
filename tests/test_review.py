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
