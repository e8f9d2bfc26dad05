"""The tutorial notebooks in notebooks/ run from top to bottom, and are stored without outputs.

Each notebook is executed with nbclient in a kernel of this interpreter, at the coarse
resolution (CORONA_JAX_NOTEBOOK_RESOLUTION=coarse, read by the notebook's first code cell),
with a temporary working directory and TMPDIR, so nothing is written into the repository.
"""

import os
import re
import sys

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "notebooks")
NOTEBOOKS = [
    "01_gas_and_cosmic_rays.ipynb",
    "02_milky_way_sky.ipynb",
    "03_other_galaxies_and_cascade.ipynb",
    "04_inference.ipynb",
    "05_sweeps.ipynb",
]
SLOW = {"04_inference.ipynb"}  # over a minute on a 2-core CPU
KERNEL_NAME = "corona-jax-notebook-test"
CELL_TIMEOUT_S = 900
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read(name):
    return nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)


@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory):
    """A kernel spec for exactly this interpreter (sys.executable), in a folder of its own,
    so that no kernel installed elsewhere (a user's "python3") can be picked up instead."""
    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(path=str(folder / KERNEL_NAME))
    return KernelSpecManager(kernel_dirs=[str(folder)], ensure_native_kernel=False)


def test_every_notebook_is_tested():
    found = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
    assert found == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name):
    nb = read(name)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}, cell {i}: outputs are stored; clear them before committing"
            assert cell.execution_count is None, f"{name}, cell {i}: execution count is stored"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_code_cell_sets_the_resolution(name):
    first = next(c for c in read(name).cells if c.cell_type == "code")
    assert "RESOLUTION = " in first.source and "CORONA_JAX_NOTEBOOK_RESOLUTION" in first.source


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NOTEBOOKS])
def test_notebook_runs(name, tmp_path, monkeypatch, kernel_specs):
    monkeypatch.setenv("CORONA_JAX_NOTEBOOK_RESOLUTION", "coarse")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' figure folders
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # as tests/conftest.py
    before = sorted(os.listdir(NOTEBOOK_DIR))
    nb = read(name)
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(tmp_path)}})
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:  # its text holds the cell's source, output and traceback
        error = ANSI.sub("", str(exc))
    if error:
        pytest.fail(f"{name} failed:\n{error}", pytrace=False)
    assert km.kernel_spec.argv[0] == sys.executable
    assert sorted(os.listdir(NOTEBOOK_DIR)) == before, "the notebook wrote into notebooks/"
