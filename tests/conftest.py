import subprocess

import jax
import pytest

import corona_jax  # noqa: F401  (enables float64)

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def default_model():
    from corona_jax import grids, transport

    return transport.build_transport_model(grids.resolution("default"))


@pytest.fixture(scope="session")
def coarse_forward_model():
    from corona_jax.model import build_model

    return build_model(resolution="coarse")


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system (tmpfs), where the machine lets this process mount one (root in a
    container or VM); skipped elsewhere."""
    folder = tmp_path / "small"
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
    except FileNotFoundError:  # no mount program
        mounted = None
    if mounted is None or mounted.returncode != 0:
        pytest.skip("cannot mount a small file system here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)
