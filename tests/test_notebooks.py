"The notebooks are the source: each is clean, runnable by papermill, and every chapter declares its parameters."
from pathlib import Path
import nbformat, pytest
import re
from leukoxai_nb.runner import chapter_list, appendix_list, chapter_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_has_a_kernel(path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec missing (JupyterLab/papermill need it)"
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"{path.name}: cells {with_outputs} carry outputs; run nbdev_clean"

@pytest.mark.parametrize("path", chapter_list(ROOT), ids=lambda p: p.stem)
def test_chapter_has_one_parameters_cell(path):
    nb = nbformat.read(str(path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected 1"
    params = chapter_parameters(path)
    for name, tname in {"profile": "str", "seed": "int", "device": "str", "dataset": "str"}.items():
        assert name in params and params[name][0] == tname, f"{path.name}: parameter {name} ({tname}) missing"
    assert params["profile"][1].strip("'\"") == "smoke", f"{path.name}: the default profile must be smoke (fast in Jupyter)"
    assigned = re.findall(r"^([A-Za-z_]\w*)\s*=", tagged[0].source, re.M)
    unparsed = [a for a in assigned if a not in params]
    assert not unparsed, f"{path.name}: papermill cannot parse parameter line(s) {unparsed} (an '=' in the comment?): -p would refuse them"

def test_every_chapter_of_the_book_exists():
    missing = [p.name for p in chapter_list(ROOT, include_missing=True) if not p.exists()]
    assert not missing, f"_quarto.yml lists chapters that do not exist: {missing}"


def test_every_appendix_of_the_book_exists():
    missing = [p.name for p in appendix_list(ROOT, include_missing=True) if not p.exists()]
    assert not missing, f"_quarto.yml lists appendices that do not exist: {missing}"
    assert not set(appendix_list(ROOT)) & set(chapter_list(ROOT)), "a notebook is listed as chapter and appendix"

_CHECK = re.compile(r"\b(test_eq|test_close|test_fail|test_ne|assert)\b")

@pytest.mark.parametrize("path", appendix_list(ROOT), ids=lambda p: p.stem)
def test_appendix_checks_every_export_cell(path):
    "fastcore's rhythm: every export cell of a library appendix is followed within two cells by a check."
    cells = nbformat.read(str(path), as_version=4).cells
    exports = [i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.lstrip().startswith("#| export")]
    assert exports, f"{path.name}: no export cells"
    unchecked = [i for i in exports if not any(c.cell_type == "code" and _CHECK.search(c.source) for c in cells[i + 1:i + 3])]
    assert not unchecked, f"{path.name}: export cells {unchecked} have no check (test_eq/test_close/test_fail/assert) within two cells"


# IPython rebinds these after every cell (input/output history), so a notebook that assigns one works under
# nbdev_test (no history) and breaks in JupyterLab and papermill (seen: `_i = np.arange(4)` in 80_phantom).
_IPYTHON_HISTORY = re.compile(r"(?:^|[;\s])(_i{1,3}|_i\d+|_ih|_oh|_dh|_\d+|__|___)\s*(?:=(?!=)|,[^=]*=(?!=))", re.M)

@pytest.mark.parametrize("path", sorted((ROOT / "nbs").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_cell_assigns_an_ipython_history_name(path):
    nb = nbformat.read(path, as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code": continue
        m = _IPYTHON_HISTORY.search(c.source)
        assert m is None, f"{path.name} cell {i}: assigns {m.group(1)!r}, a name IPython rebinds after every cell"


def test_ipython_history_pattern():
    assert _IPYTHON_HISTORY.search("_b = f(); _i = np.arange(4)") and _IPYTHON_HISTORY.search("_ii, x = 1, 2")
    assert not _IPYTHON_HISTORY.search("_ix = np.arange(4)") and not _IPYTHON_HISTORY.search("for _, q in x: pass")
    assert not _IPYTHON_HISTORY.search("if _i == 3: pass")
