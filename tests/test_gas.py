import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

from corona_jax import gas, grids, params


@pytest.mark.parametrize(
    "r_kpc, n_expected", [(8.5, 0.04568), (45.0, 7.785e-4), (100.0, 1.966e-4), (250.0, 1.151e-4)]
)
def test_density_values_from_physics_md(r_kpc, n_expected):
    n = float(gas.gas_density(params.preset("baseline"), r_kpc))
    assert n == pytest.approx(n_expected, rel=1e-3)  # the spec quotes four digits


def test_profiles_cross_at_72_kpc_not_45():
    p = params.preset("baseline")

    def diff(r):
        return float(gas.beta_profile(r, p.n0_inner_cm3, p.beta_inner, p.rc_inner_kpc)
                     - gas.beta_profile(r, p.n0_outer_cm3, p.beta_outer, p.rc_outer_kpc))

    r_cross = brentq(diff, 10.0, 200.0)
    assert r_cross == pytest.approx(72.0, abs=0.1)
    assert float(gas.gas_density(p, r_cross)) == pytest.approx(2.38e-4, rel=5e-3)


def test_zero_beyond_rmax_and_cells_continuous_in_rmax():
    p = params.preset("baseline")
    assert float(gas.gas_density(p, 250.1)) == 0.0
    rg = grids.radial_grid(grids.resolution("default"))

    def total_gas(rmax):
        n = gas.gas_density_cells(p._replace(Rmax_kpc=rmax), rg.faces_kpc, rg.centres_kpc)
        return jnp.sum(n * rg.volumes_kpc3)

    # d/dRmax of the gas mass (/4 pi) is n(Rmax) Rmax^2 away from faces
    r = 180.0
    g = float(jax.grad(total_gas)(r))
    assert g == pytest.approx(float(gas.gas_density(p, r)) * r**2, rel=0.05)


def test_gradients_of_gas_parameters_match_finite_differences():
    p = params.preset("baseline")
    f = lambda n0, beta: gas.gas_density(p._replace(n0_outer_cm3=n0, beta_outer=beta), 150.0)
    g = jax.grad(f, argnums=(0, 1))(p.n0_outer_cm3, p.beta_outer)
    h = 1e-6
    fd0 = (f(p.n0_outer_cm3 * (1 + h), p.beta_outer) - f(p.n0_outer_cm3 * (1 - h), p.beta_outer)) / (2 * h * p.n0_outer_cm3)
    fd1 = (f(p.n0_outer_cm3, p.beta_outer + h) - f(p.n0_outer_cm3, p.beta_outer - h)) / (2 * h)
    np.testing.assert_allclose([g[0], g[1]], [fd0, fd1], rtol=1e-6)


def test_smooth_max_tends_to_hard_max():
    p = params.preset("baseline")
    r = jnp.array([10.0, 72.0, 150.0])
    hard = gas.gas_density(p, r)
    soft = gas.gas_density(p, r, smooth_max_dex=0.01)
    np.testing.assert_allclose(np.asarray(soft)[[0, 2]], np.asarray(hard)[[0, 2]], rtol=1e-6)
    assert float(soft[1]) >= float(hard[1])
