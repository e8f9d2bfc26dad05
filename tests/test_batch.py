"""The batched model against the single-point one: forward, gradients and grouped summaries
point by point to 1e-12 (docs/architecture.md, "Batched model")."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from corona_jax import batch, forward, params, transport

RTOL = 1e-12
TINY = 1e-200  # values below are underflow in either order of the products, not physics


def _points(n):
    base = params.preset("baseline")
    return [base._replace(alpha=2.0 + 0.15 * i, log10_D0_cm2_s=28.5 + 0.4 * i, log10_Emax_GeV=6.0 + 0.5 * i,
                          n0_outer_cm3=0.001 + 0.0004 * i, log10_LCR_erg_s=39.5 + 0.3 * i) for i in range(n)]


def _assert_same(got, expected, where):
    """Every array of got equals the one of expected (a Prediction), skipping None fields; a
    dipole is compared where its sky is not dark."""
    for path, a in jax.tree_util.tree_leaves_with_path(got):
        b = expected
        for key in path:
            b = getattr(b, key.name)
        a, b = np.asarray(a), np.asarray(b)
        name = jax.tree_util.keystr(path)
        if "dipole" in name:
            mean = getattr(expected.milky_way, "sky_mean_" + name.split("dipole_")[1].replace("nu", "nu_all_flavour"))
            lit = np.asarray(mean) > TINY
            a, b = a[lit], b[lit]
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=TINY, err_msg=f"{where} {name}")


def test_forward_batch_equals_forward_point_by_point(coarse_forward_model):
    pts = _points(6)  # on a CPU: folds of 4 points, the second padded
    got = jax.jit(batch.forward_batch)(batch.stack(pts), coarse_forward_model)
    single = jax.jit(forward.forward)
    for i, p in enumerate(pts):
        _assert_same(jax.tree.map(lambda x: x[i], got), single(p, coarse_forward_model), f"point {i}")


def test_grouped_summaries_equal_forward(coarse_forward_model):
    m = coarse_forward_model
    solves = _points(5)  # on a CPU: folds of 4 solves, the second padded
    spectra = [(2.1, 6.5, 40.0), (2.5, 7.0, 41.0), (2.7, 9.5, 39.0)]
    points = [[s._replace(alpha=a, log10_Emax_GeV=e, log10_LCR_erg_s=lum) for a, e, lum in spectra] for s in solves]
    point_params = params.CoronaParams(*(jnp.asarray([[getattr(q, f) for q in row] for row in points])
                                         for f in params.CoronaParams._fields))
    got = jax.jit(batch.evaluate_grouped)(batch.stack(solves), point_params, m)
    single = jax.jit(forward.forward)
    for s, row in enumerate(points):
        for k, p in enumerate(row):
            _assert_same(jax.tree.map(lambda x: x[s, k], got), single(p, m), f"solve {s} point {k}")


def test_value_and_grad_batch_equals_single_point(coarse_forward_model):
    m = coarse_forward_model
    k_gamma, k_nu = 20, 40

    def objective(pred, p):
        return (jnp.log(pred.total.gamma[k_gamma]) + jnp.log(pred.milky_way.sky_mean_nu_all_flavour[k_nu])
                + jnp.log(pred.local_flux_per_GeV_cm2_s_sr[10]))

    pts = _points(3)  # on a CPU: folds of 2 points, the second padded
    values, grads = jax.jit(batch.value_and_grad_batch, static_argnums=0)(objective, batch.stack(pts), m)
    single = jax.jit(jax.value_and_grad(lambda p: objective(forward.forward(p, m), p)))
    for i, p in enumerate(pts):
        v, g = single(jax.tree.map(jnp.asarray, p))
        assert float(values[i]) == pytest.approx(float(v), rel=RTOL)
        for name in params.CoronaParams._fields:
            assert float(getattr(grads, name)[i]) == pytest.approx(float(getattr(g, name)), rel=RTOL, abs=1e-14), name


def test_one_solve_for_points_sharing_transport(coarse_forward_model, monkeypatch):
    # a batch varying only alpha, E_max and L_CR runs the solver once, on one energy vector
    calls = []
    evolve = transport.evolve

    def counting(D, loss, model, *args):
        jax.debug.callback(lambda: calls.append(D.shape[0] // model.E_GeV.shape[0]))
        return evolve(D, loss, model, *args)

    monkeypatch.setattr(transport, "evolve", counting)
    base = params.preset("baseline")
    rows = [[base._replace(alpha=a, log10_Emax_GeV=e, log10_LCR_erg_s=lum)
             for a in (2.0, 2.4, 2.8) for e in (6.0, 8.0) for lum in (39.0, 41.0)]]
    point_params = params.CoronaParams(*(jnp.asarray([[getattr(q, f) for q in row] for row in rows])
                                         for f in params.CoronaParams._fields))
    out = batch.evaluate_grouped(batch.stack([base]), point_params, coarse_forward_model)
    jax.block_until_ready(out)
    assert calls == [1]  # one call of the solver, for one solve
    assert out.total.gamma.shape[:2] == (1, 12)
