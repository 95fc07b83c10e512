import os, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="session")
def repo_root():
    return ROOT

def find_chromium():
    "A headless-capable Chromium: $LEUKOXAI_CHROMIUM, or Debian's chromium on the PATH."
    for cand in (os.environ.get("LEUKOXAI_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).exists(): return cand
    return None

def require_chromium():
    "The Chromium for a browser test: fail under CI when there is none (`make browser` installs it), else skip."
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"): pytest.fail("CI has no chromium: `make browser` should have installed Debian's chromium")
        pytest.skip("no chromium on this machine (set LEUKOXAI_CHROMIUM)")
    return chromium

def write_chapter(path, title, params, body, prose=""):
    "A tiny chapter notebook for throw-away projects: a title (and prose), a `parameters` cell, then the `body` cells."
    from nbformat import write
    from nbformat.v4 import new_notebook, new_code_cell, new_markdown_cell
    head = f"# {title}" + (f"\n\n{prose}" if prose else "")
    nb = new_notebook(cells=[new_markdown_cell(head), new_code_cell(params, metadata={"tags": ["parameters"]}),
                             *[new_code_cell(b) for b in body]])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    write(nb, str(path))


@pytest.fixture(scope="module")
def one_torch_thread():
    "Tiny networks run fastest on one thread, and a shared CPU makes multi-threaded torch very slow."
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def toy_data(tmp_path, monkeypatch):
    "Results in a temporary folder and a toy PatchSet in place of load_dataset('synthetic-qpi', 'smoke')."
    from leukoxai_nb import models as M
    monkeypatch.setenv("LEUKOXAI_RESULTS", str(tmp_path))
    toy = M.ToyPatchSet(n_per_class=24, n_donor_test=12, seed=0)
    monkeypatch.setitem(M._DATA, ("synthetic-qpi", "smoke"), (toy, "toy-digest"))
    return toy
