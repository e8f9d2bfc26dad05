"""The batched model: many parameter points in one call (docs/architecture.md, "Batched model").

* The transport of a batch is one solve: the batch is folded into the solver's vector axis
  beside the energies, so each step of the radial Thomas sweeps works on one contiguous
  vector of B x N_E unknowns (`unit_spectrum_density_batch`). No vmap wraps the scans. On a
  CPU the batch is cut into folds of at most CPU_FOLD points, solved one after another.
* `forward_batch` is `forward` for a batch (everything downstream of G is vmapped), and
  `value_and_grad_batch` differentiates a per-point objective through it, one reverse pass
  per fold.
* Points that share D0 and the gas share one solve. Everything downstream of G is linear in
  the injected spectrum v(E_p) = A E_p^-alpha exp(-E_p / E_max) on the pp table's proton nodes
  (the other galaxies too, corona_jax.extragalactic), so `responses` contracts each output over
  radius once per solve into a matrix R (outputs x N_p), and a point costs one product R @ v
  (`summary`). `evaluate_grouped` does both for S solves with P points each.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from . import extragalactic as eg
from . import spectrum, transport
from .cosmic_rays import at_radius, flux_from_observer_density, injected_per_GeV_cm3_gyr
from .errors import ConfigError
from .forward import Prediction, forward, from_unit_density, total
from .gas import gas_density_cells
from .interactions import interpolate_tables
from .milky_way import MilkyWay, emission_matrices, unit_density_on_table_grid, volume_integral
from .model import CoronaModel
from .params import CoronaParams
from .sky import dipole_amplitude
from .units import KPC_CM

TRANSPORT_FIELDS = ("log10_D0_cm2_s", "n0_inner_cm3", "beta_inner", "rc_inner_kpc", "n0_outer_cm3",
                    "beta_outer", "rc_outer_kpc", "Rmax_kpc", "history_peak",
                    "history_shift_Gyr")  # what a transport solve depends on (without the burst)


def transport_fields(config) -> tuple:
    """TRANSPORT_FIELDS of a model (its ModelConfig), with the breaks that act in D(E)."""
    if config.spectrum == "broken" and config.features == "diffusion":
        return TRANSPORT_FIELDS + spectrum.break_fields("hardening")
    return TRANSPORT_FIELDS


CPU_FOLD = 4  # most solves folded into one vector on a CPU
CPU_GRADIENT_FOLD = 2  # the same for value and gradient (the adjoint's stored states double the traffic)


def stack(points) -> CoronaParams:
    """CoronaParams with float64 arrays of shape (B,) from a sequence of CoronaParams."""
    return CoronaParams(*(jnp.asarray(np.array(v, dtype=np.float64)) for v in zip(*points)))


def fold_size(batch_size: int, cpu_fold: int = CPU_FOLD) -> int:
    """How many solves share one folded solve: the whole batch on an accelerator; on a CPU at
    most cpu_fold, since larger vectors leave the cache and the solve becomes bound by memory
    traffic (benchmarks/RESULTS.md, "Sweeps")."""
    return batch_size if jax.default_backend() != "cpu" else min(batch_size, cpu_fold)


def unit_spectrum_density_batch(params: CoronaParams, tm: transport.TransportModel,
                                adjoint=transport.DiscreteAdjoint()):
    """G (B, N_E, N_r) [Gyr] of a batch of params (leaves of shape (B,)) by folded solves of
    fold_size(B) points each, one after another (transport.unit_spectrum_density point by
    point, to rounding)."""
    return _by_folds(lambda p: _folded_solve(p, tm, adjoint), params)


def _folded_solve(params: CoronaParams, tm: transport.TransportModel, adjoint):
    """G (B, N_E, N_r) of the whole batch as one solve whose vector axis is B x N_E."""
    D = jax.vmap(transport.diffusion_coefficient_kpc2_gyr, (0, None, None))(params, tm.E_GeV, tm.break_weights_diffusion)  # (B, N_E)
    loss = jax.vmap(transport.loss_rate_per_gyr, (0, None))(params, tm)  # (B, N_r, N_E)
    f = jax.vmap(transport.source_history, (0, None))(params, tm)  # (B, N_t)
    B, n_r, n_E = loss.shape
    f = jnp.broadcast_to(f.T[:, :, None], (f.shape[1], B, n_E)).reshape(f.shape[1], B * n_E)
    G = transport.evolve(D.reshape(B * n_E), jnp.transpose(loss, (1, 0, 2)).reshape(n_r, B * n_E), tm, adjoint, f)
    return jnp.transpose(G.reshape(n_r, B, n_E), (1, 2, 0))


def forward_batch(params: CoronaParams, model: CoronaModel) -> Prediction:
    """forward for a batch of params (leaves (B,)): a Prediction whose arrays lead with B (a model
    with the burst population: forward vmapped, without folding)."""
    if model.config.burst:
        return jax.vmap(forward, (0, None))(params, model)
    G = unit_spectrum_density_batch(params, model.transport, model.config.adjoint)
    return jax.vmap(from_unit_density, (0, None, 0))(params, model, G)


def value_and_grad_batch(objective, params: CoronaParams, model: CoronaModel):
    """(values (B,), gradients: CoronaParams of (B,) leaves) of objective(prediction, params) -> scalar,
    for every point of the batch: per fold, one folded solve and one reverse pass (the points are
    independent, so the gradient of their sum is each point's gradient)."""

    def fold(p):
        def total(p):
            values = jax.vmap(objective)(forward_batch(p, model), p)
            return jnp.sum(values), values

        (_, values), grads = jax.value_and_grad(total, has_aux=True)(p)
        return values, grads

    tm, adjoint = model.transport, model.config.adjoint
    cpu_fold = CPU_GRADIENT_FOLD
    if isinstance(adjoint, transport.DiscreteAdjoint):  # keep every state of a fold (no recomputation)
        per_point = tm.t_Gyr.size * tm.centres_kpc.size * tm.E_GeV.size * 8
        cpu_fold = max(1, min(cpu_fold, int(adjoint.max_stored_bytes // per_point)))
    return _by_folds(fold, params, cpu_fold)


def _by_folds(fn, inputs, cpu_fold: int = CPU_FOLD):
    """fn(inputs) for a batch (a pytree whose leaves lead with B), in folds of fold_size(B, cpu_fold)
    points one after another (the last padded with copies of the last point); fn returns arrays
    that lead with B."""
    B = jax.tree.leaves(inputs)[0].shape[0]
    k = fold_size(B, cpu_fold)
    if k == B:
        return fn(inputs)
    n = -(-B // k)
    padded = jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], n * k - B, axis=0)])
                          .reshape(n, k, *x.shape[1:]), inputs)
    out = jax.lax.map(fn, padded)
    return jax.tree.map(lambda x: x.reshape(n * k, *x.shape[2:])[:B], out)


def responses(params: CoronaParams, model: CoronaModel, G_Gyr):
    """What `summary` needs of one solve: linear maps (dict of (H, N_s, N_p) matrices, one per hadronic
    model) from the injected spectrum v on the pp table's proton nodes to the sky averages and the
    anticentre; g (N_p,) with the proton-gas integral p = g v; and G at the observer (N_E,) [Gyr]."""
    if model.config.burst:
        raise ConfigError("grouped sweeps do not support the burst population (build the model with burst=False)")
    mw, tm = model.milky_way, model.transport
    n_gas = gas_density_cells(params, tm.faces_kpc, tm.centres_kpc)
    G_f = unit_density_on_table_grid(mw, G_Gyr)  # (N_p, N_r)
    c0 = KPC_CM / (4.0 * math.pi)

    def along(kernel, geometry):
        """c0 sum_r geometry[s, r] n_g(r) K[h, s, p] G_f[p, r]: geometry (N_s, N_r) or (1, N_r)."""
        return c0 * kernel * ((geometry * n_gas[None, :]) @ G_f.T)[None, :, :]

    g = volume_integral(G_f * n_gas[None, :], tm.volumes_kpc3)  # p = v g
    out = dict(
        sky_mean_gamma=along(mw.emission_gamma, mw.sky_mean_gamma_kpc),
        sky_first_gamma=along(mw.emission_gamma, mw.sky_first_gamma_kpc),
        anticentre_gamma=along(mw.emission_gamma, mw.path_gamma_kpc[-1]),
        sky_mean_nu=along(mw.emission_nu_all, mw.sky_mean_nu_kpc[None, :]),
        sky_first_nu=along(mw.emission_nu_all, mw.sky_first_nu_kpc[None, :]),
        anticentre_nu=along(mw.emission_nu_all, mw.path_nu_kpc[-1][None, :]),
    )
    return out, g, at_radius(G_Gyr, tm, model.config.observer_kpc)


def summary(params: CoronaParams, model: CoronaModel, response) -> Prediction:
    """The Prediction of one point from its solve's `responses`, without the arrays that resolve
    r or psi (j, I(psi), q: None); equal to forward's to rounding."""
    tm, mw = model.transport, model.milky_way
    R, g, G_sun = response
    v = injected_per_GeV_cm3_gyr(params, tm, mw.E_table_GeV)
    out = {k: (interpolate_tables(m, params.hadronic_mix) @ v) * params.nuclear_enhancement for k, m in R.items()}
    p = g * v
    flux = flux_from_observer_density(params, tm, G_sun)
    K_gamma, K_nu = emission_matrices(params, mw)
    milky = MilkyWay(
        gamma=None, nu_all_flavour=None,
        sky_mean_gamma=out["sky_mean_gamma"], sky_mean_nu_all_flavour=out["sky_mean_nu"],
        anticentre_gamma=out["anticentre_gamma"], anticentre_nu_all_flavour=out["anticentre_nu"],
        dipole_gamma=dipole_amplitude(out["sky_mean_gamma"], out["sky_first_gamma"]),
        dipole_nu=dipole_amplitude(out["sky_mean_nu"], out["sky_first_nu"]),
        luminosity_gamma=K_gamma @ p, luminosity_nu_all_flavour=K_nu @ p,
        proton_gas_per_GeV_cm3=p, emissivity_gamma=None, emissivity_nu_all_flavour=None,
    )
    other = eg.extragalactic(model.extragalactic, p * params.nuclear_enhancement, params.hadronic_mix, params.ebl_mix)
    return Prediction(None, flux, milky, other, total(milky, other))


def evaluate_grouped(solve_params: CoronaParams, point_params: CoronaParams, model: CoronaModel) -> Prediction:
    """Summaries (leading axes (S, P)) of S solves (leaves (S,)) with P points each (leaves (S, P));
    a point's transport_fields must equal its solve's. On a CPU the solves go in folds (fold_size)."""

    def fold(inputs):
        solve, point = inputs
        G = _folded_solve(solve, model.transport, model.config.adjoint)
        R = jax.vmap(responses, (0, None, 0))(solve, model, G)
        return jax.vmap(jax.vmap(summary, (0, None, None)), (0, None, 0))(point, model, R)

    return _by_folds(fold, (solve_params, point_params))
