# Jupyter server settings of this project, read by `make lab` (and by any `jupyter lab` started in this folder).
#
# Opening a committed notebook must not mark it modified. JupyterLab writes the kernel's `language_info` (with the
# Python version of the machine) into a notebook's metadata as soon as its kernel connects, and marks the notebook
# modified when that differs from what the file holds. The committed notebooks cannot hold it (`nbdev_clean` removes
# it, and the version differs from machine to machine), so the server adds this kernel's `language_info` when it
# hands a notebook to JupyterLab: the kernel then finds exactly what it would write, and nothing changes.
# (The kernelspec agrees already: `make venv` installs the kernel as "python3", the display name nbdev_clean writes.)
import sys
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

try:
    from ipykernel.ipkernel import IPythonKernel
    LANGUAGE_INFO = dict(IPythonKernel.language_info)
except Exception:  # the fields ipykernel reports
    LANGUAGE_INFO = {"name": "python", "version": sys.version.split()[0], "mimetype": "text/x-python",
                     "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]}, "pygments_lexer": "ipython3",
                     "nbconvert_exporter": "python", "file_extension": ".py"}


class ProjectContentsManager(AsyncLargeFileManager):
    "Notebooks as JupyterLab would rewrite them on opening: with the project kernel's language_info."

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if content and model.get("type") == "notebook" and model.get("content") is not None:
            meta = model["content"].setdefault("metadata", {})
            if meta.get("kernelspec", {}).get("name") == "python3":
                meta.setdefault("language_info", dict(LANGUAGE_INFO))
        return model


c = get_config()  # noqa: F821 (provided by Jupyter when it reads this file)
c.ServerApp.contents_manager_class = ProjectContentsManager
