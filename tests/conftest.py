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
