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
