"""Transport solver against closed forms, conservation laws, refinement and
finite differences (docs/physics.md sec. 2 checks)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from corona_jax import cosmic_rays, gas, grids, params, transport

RES = grids.resolution("default")
R_Q = grids.SOURCE_RADIUS_KPC


def _no_loss(model):
    return jnp.zeros((model.centres_kpc.shape[0], model.E_GeV.shape[0]))


def _sphere_steady_state(r, D, R_out=math.inf):
    """Steady density of a uniform unit source (1 per Gyr) in r < r_Q, no losses,
    j(R_out) = 0 (R_out = inf: the free-space solution)."""
    inside = (3 * R_Q**2 - r**2) / (6 * D)
    outside = R_Q**3 / (3 * D * r)
    return np.where(r < R_Q, inside, outside) - R_Q**3 / (3 * D * R_out)


@pytest.mark.parametrize("boundary", ["absorbing", "outgoing"])
def test_uniform_sphere_steady_state_matches_closed_form(boundary):
    # small domain, fast diffusion, constant source: steady state long before 10 Gyr
    res = dataclasses.replace(RES, R_out_kpc=1000.0, n_r_source=24, r_per_decade=60)
    model = transport.build_transport_model(res, history="constant", boundary=boundary)
    D = jnp.full(model.E_GeV.shape, 1.0e6)  # kpc^2/Gyr: decay time R^2/D << 10 Gyr
    G = np.asarray(transport.evolve(D, _no_loss(model), model))[:, 0]
    r = np.asarray(model.centres_kpc)
    R_out = 1000.0 if boundary == "absorbing" else math.inf
    expected = _sphere_steady_state(r, 1.0e6, R_out)
    inner = r < 700.0  # near an absorbing edge j -> 0 and the relative error grows
    np.testing.assert_allclose(G[inner], expected[inner], rtol=2e-3)


def test_steady_state_error_falls_at_second_order():
    errors = []
    for k in (1, 2):
        res = dataclasses.replace(RES, R_out_kpc=1000.0, n_r_source=12 * k, r_per_decade=30 * k)
        model = transport.build_transport_model(res, history="constant", boundary="absorbing")
        G = np.asarray(transport.evolve(jnp.full(model.E_GeV.shape, 1.0e6), _no_loss(model), model))[:, 0]
        r = np.asarray(model.centres_kpc)
        at = np.interp([1.0, 8.5, 30.0, 100.0], r, G)
        errors.append(np.max(np.abs(at / _sphere_steady_state(np.array([1.0, 8.5, 30.0, 100.0]), 1.0e6, 1000.0) - 1)))
    assert errors[0] / errors[1] > 3.0  # second order: 4 expected


def test_particle_number_equals_injected_number_without_losses_or_escape():
    """Reflecting boundary, no losses: N(today) = int Q dt dV = V_Q x 24 Gyr for Eq. (5)."""
    injected_time = 4.0 + 12.0 + 8.0  # int_0^10 f(t) dt [Gyr] for Eq. (5)
    rel = []
    for n_t in (100, 200):
        model = transport.build_transport_model(dataclasses.replace(RES, n_t=n_t), boundary="reflecting")
        D = transport.diffusion_coefficient_kpc2_gyr(params.preset("baseline"), model.E_GeV)
        G = np.asarray(transport.evolve(D, _no_loss(model), model))
        N = np.sum(np.asarray(model.volumes_kpc3)[:, None] * G, axis=0)
        exact = float(np.sum(model.volumes_kpc3 * model.source_fraction)) * injected_time
        # space conserves to rounding: every energy (D spans 3 decades) has the same N
        assert np.ptp(N) / exact < 1e-10
        rel.append(N[0] / exact - 1)
    assert abs(rel[1]) < 5e-5  # time-quadrature error of BDF2 at 200 steps
    assert rel[0] / rel[1] == pytest.approx(4.0, rel=0.05)  # second order in dt


def test_outer_boundary_far_enough(default_model):
    """Doubling R_out changes nothing at r <= 250 kpc by more than 0.5 % (docs/physics.md)."""
    p = params.preset("fast-diffusion")  # the fastest diffusion the paper uses
    G1 = np.asarray(transport.unit_spectrum_density(p, default_model))
    far = transport.build_transport_model(dataclasses.replace(RES, R_out_kpc=2 * RES.R_out_kpc))
    G2 = np.asarray(transport.unit_spectrum_density(p, far))
    n = (np.asarray(default_model.centres_kpc) <= 250.0).sum()
    assert np.max(np.abs(G1[:, :n] / G2[:, :n] - 1)) < 5e-3


def test_absorbing_boundary_too_close_is_detectably_wrong():
    """The pitfall docs/physics.md warns of: absorbing boundary at 0.5 Mpc."""
    p = params.preset("baseline")
    near = transport.build_transport_model(dataclasses.replace(RES, R_out_kpc=500.0), boundary="absorbing")
    far = transport.build_transport_model(RES)
    at = lambda m: cosmic_rays.at_radius(transport.unit_spectrum_density(p, m), m, 100.0)
    k = int(np.argmin(np.abs(np.log(np.asarray(far.E_GeV) / 1e8))))
    deficit = 1 - float(at(near)[k] / at(far)[k])
    assert 0.15 < deficit < 0.35  # docs/physics.md: ~25 %


def test_paper_statements(default_model):
    """Constant source: n ~ r^-A, 1 <= A <= 2 at 30-200 kpc; spectrum softer by ~1/3."""
    p = params.preset("baseline")
    const = transport.build_transport_model(RES, history="constant")
    G = np.asarray(transport.unit_spectrum_density(p, const))
    r, E = np.asarray(const.centres_kpc), np.asarray(const.E_GeV)
    sel = (r >= 30) & (r <= 200)
    for E0 in (1e2, 1e4, 1e6, 1e8):
        k = int(np.argmin(np.abs(np.log(E / E0))))
        A = -np.polyfit(np.log(r[sel]), np.log(G[k, sel]), 1)[0]
        assert 1.0 <= A <= 2.0, (E0, A)
    G = np.asarray(transport.unit_spectrum_density(p, default_model))
    band = (E >= 1e3) & (E <= 1e6)
    for r0 in (8.5, 50.0, 100.0):
        i = int(np.argmin(np.abs(r - r0)))
        slope = np.polyfit(np.log(E[band]), np.log(G[band, i]), 1)[0]
        assert slope == pytest.approx(-1.0 / 3.0, abs=0.03), (r0, slope)


def _log_j(p, model, adjoint=transport.DiscreteAdjoint()):
    G = transport.unit_spectrum_density(p, model, adjoint)
    j = cosmic_rays.cr_density(p, model, G)
    k = int(np.argmin(np.abs(np.log(np.asarray(model.E_GeV) / 1e5))))
    return jnp.log(cosmic_rays.at_radius(j[k : k + 1], model, 50.0)[0])


@pytest.mark.parametrize("field", ["log10_D0_cm2_s", "n0_inner_cm3", "n0_outer_cm3"])
def test_gradient_of_log_j_matches_central_differences(default_model, field):
    p = params.preset("baseline")
    f = jax.jit(lambda x: _log_j(p._replace(**{field: x}), default_model))
    x0 = getattr(p, field)
    g = float(jax.grad(f)(x0))
    h = 1e-4 * abs(x0) if field.startswith("n0") else 1e-4
    fd = (float(f(x0 + h)) - float(f(x0 - h))) / (2 * h)
    assert g == pytest.approx(fd, rel=1e-4)
    assert g != 0.0


@pytest.mark.parametrize("stored_bytes", [transport.DiscreteAdjoint().max_stored_bytes, 0.0], ids=["all-states", "checkpoints"])
def test_discrete_adjoint_equals_autodiff(default_model, stored_bytes):
    """Both ways of the adjoint (every state kept; sqrt(N) blocks recomputed) are exact."""
    p = params.preset("hard")
    loss = lambda q, adj: jnp.sum(jnp.log(transport.unit_spectrum_density(q, default_model, adj)[:, :80]))
    g1 = jax.grad(loss)(p, transport.DiscreteAdjoint(max_stored_bytes=stored_bytes))
    g2 = jax.grad(loss)(p, transport.AutodiffAdjoint())
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(float(a), float(b), rtol=1e-9, atol=1e-12)


def test_forward_mode_available_with_autodiff_adjoint(default_model):
    p = params.preset("baseline")
    f = lambda d: jnp.sum(transport.unit_spectrum_density(p._replace(log10_D0_cm2_s=d), default_model, transport.AutodiffAdjoint()))
    _, t = jax.jvp(f, (p.log10_D0_cm2_s,), (1.0,))
    g = jax.grad(lambda d: jnp.sum(transport.unit_spectrum_density(p._replace(log10_D0_cm2_s=d), default_model)))(p.log10_D0_cm2_s)
    assert float(t) == pytest.approx(float(g), rel=1e-9)


def test_results_are_float64_and_finite(default_model):
    G = transport.unit_spectrum_density(params.preset("baseline"), default_model)
    assert G.dtype == jnp.float64
    assert bool(jnp.all(jnp.isfinite(G))) and bool(jnp.all(G >= 0))


def test_unknown_options_raise():
    from corona_jax import ConfigError

    with pytest.raises(ConfigError, match="boundary"):
        transport.build_transport_model(RES, boundary="open")
    with pytest.raises(ConfigError, match="resolution"):
        grids.resolution("ultra")


@pytest.mark.slow
def test_default_resolution_within_one_percent_of_converged(default_model):
    """Where j > 1e-10 of its maximum, at r <= 250 kpc, versus an 8x finer run."""
    for name in ("baseline", "fast-diffusion", "hard"):
        p = params.preset(name)
        fine = transport.build_transport_model(RES.refined(8))
        Gf = transport.unit_spectrum_density(p, fine)
        Gd = transport.unit_spectrum_density(p, default_model)
        r = default_model.centres_kpc
        r = r[r <= 250.0]
        ref = np.asarray(jax.vmap(lambda v: jnp.interp(r, fine.centres_kpc, v))(Gf))
        got = np.asarray(Gd[:, : r.shape[0]])
        j = ref * np.exp(np.asarray(cosmic_rays.log_spectrum_shape(p, default_model.E_GeV)))[:, None]
        matters = j > 1e-10 * j.max()
        assert np.max(np.abs(got[matters] / ref[matters] - 1)) < 0.01, name


def test_loss_rate_is_n_sigma_beta_c(default_model):
    # collision rate of a proton of total energy E on gas at rest: n_g sigma_pp beta c
    p = params.preset("baseline")
    loss = np.asarray(transport.loss_rate_per_gyr(p, default_model))
    n = np.asarray(gas.gas_density_cells(p, default_model.faces_kpc, default_model.centres_kpc))
    E = np.asarray(default_model.E_GeV)
    sigma = np.asarray(default_model.sigma_pp_mb)
    for k in (1, 3, 10, 40):  # E = 1.26, 2.0, 10, 1e4 GeV
        beta = math.sqrt(1.0 - (0.938272 / E[k]) ** 2)
        for i in (0, 20, 60):
            by_hand = n[i] * sigma[k] * 1e-27 * beta * 2.99792458e10 * 3.15576e16  # per Gyr
            assert loss[i, k] == pytest.approx(by_hand, rel=1e-12), (i, E[k])
