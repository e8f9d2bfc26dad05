"""Cosmic-ray transport in the corona, Eq. (4)-(5) of Kalashev & Troitsky (2016).

    dj/dt = D(E) r^-2 d/dr (r^2 dj/dr) - beta(E) c sigma_pp(E) n_g(r) j + Q(E, r, t)

Energies do not mix and the equation is linear in Q, so we solve once for the
unit-spectrum density G(E, r) [Gyr] (source 1 per Gyr inside r_Q, times the
time history f(t)); j = A E^-alpha exp(-E/E_max) G. Only D0, the gas and the history
need a new solve; alpha, E_max and the normalisation never do. A second population (the
Galactic-centre burst) is a unit solution of its own, solved beside the first.

Discretisation: conservative finite volumes in r (corona_jax.grids), regular
centre (zero face area at r = 0), outer face either outgoing (flux of a steady
1/r tail, D j / r), absorbing (j = 0) or reflecting (no flux). Time: BDF2
(L-stable, second order) after one backward-Euler step, uniform steps to
t = 10 Gyr. The matrices do not depend on time, so each is factorised once
(Thomas algorithm) and every step is one forward and one backward sweep, all
energies at once. How reverse mode differentiates the time loop is an object
passed as `adjoint=` (as in diffrax): DiscreteAdjoint (the default) or AutodiffAdjoint.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import grids
from .errors import ConfigError
from .gas import gas_density_cells
from .interactions import proton_beta, sigma_inelastic_mb
from .params import CoronaParams
from .spectrum import break_weights, log_features
from .tables import PPTables
from .units import C_CM_S, GYR_S, MB_CM2, cm2_s_to_kpc2_gyr

BOUNDARIES = ("outgoing", "absorbing", "reflecting")
HISTORIES = ("paper", "constant")


@dataclasses.dataclass(frozen=True)
class DiscreteAdjoint:
    """Reverse mode through the exact adjoint of the discrete BDF2 steps (transposed solves).

    The states of every step are kept when they fit in max_stored_bytes (the default grid
    needs 6 MB); otherwise the time loop is a two-level checkpointed lax.scan whose
    memory grows like sqrt(number of steps) and whose blocks are recomputed backwards.
    Reverse mode only (jax.grad, jax.vjp)."""

    max_stored_bytes: float = 64e6

    def keeps_every_state(self, source, n_steps) -> bool:
        return n_steps * source.size * source.dtype.itemsize <= self.max_stored_bytes


@dataclasses.dataclass(frozen=True)
class AutodiffAdjoint:
    """JAX differentiates the checkpointed scan itself: forward mode works too (jax.jvp,
    jax.hessian), at several times the cost of DiscreteAdjoint."""


ADJOINTS = (DiscreteAdjoint, AutodiffAdjoint)


class TransportModel(NamedTuple):
    """Static arrays of one transport configuration (a pytree; build once)."""

    E_GeV: jax.Array  # (N_E,) proton total energies
    faces_kpc: jax.Array  # (N_r+1,)
    centres_kpc: jax.Array  # (N_r,)
    volumes_kpc3: jax.Array  # (N_r,) cell volume / 4 pi
    face_coupling_kpc: jax.Array  # (N_r-1,)
    outer_coupling_kpc: jax.Array  # () outer-face flux per unit D and G of the last cell
    source_fraction: jax.Array  # (N_r,) part of each cell inside r_Q
    burst_fraction: jax.Array  # (N_r,) part of each cell inside BURST_RADIUS_KPC
    t_Gyr: jax.Array  # (N_t,) the end of each step
    history_weight: jax.Array  # () 1 for the paper's history (Eq. 5), 0 for a constant source
    dt_Gyr: jax.Array  # () step length
    sigma_pp_mb: jax.Array  # (N_E,)
    # where each break of the spectrum acts (spectrum.break_weights; all 0 for the paper's spectrum)
    break_weights_injection: jax.Array  # (4,) in the injected spectrum
    break_weights_observer: jax.Array  # (4,) in the flux at the observer only
    break_weights_diffusion: jax.Array  # (4,) in D(E)


def history_shape(u_Gyr):
    """h(u) of Eq. (5): the enhancement of the source, 0 before it, rising linearly to 1 at
    2 Gyr, 1 up to 6 Gyr, then falling linearly to 0 at 10 Gyr (jnp)."""
    return jnp.clip(jnp.minimum(0.5 * u_Gyr, 1.0 - 0.25 * (u_Gyr - 6.0)), 0.0, 1.0)


def eq5_history(t_Gyr, peak=3.0, shift_Gyr=0.0):
    """f(t) = 1 + (peak - 1) h(t - shift): for peak 3 and shift 0 the paper's Eq. (5), 1 + t/Gyr
    up to 2 Gyr, 3 up to 6 Gyr, then 3 - 0.5 (t/Gyr - 6)."""
    return 1.0 + (peak - 1.0) * history_shape(t_Gyr - shift_Gyr)


def source_history(params: CoronaParams, model: "TransportModel"):
    """f(t) at the end of each step: eq5_history with params.history_peak and history_shift_Gyr
    for the paper's history, 1 for a constant source (model.history_weight 1 or 0)."""
    return _model_history(model, params.history_peak, params.history_shift_Gyr)


def _model_history(model: "TransportModel", peak=3.0, shift_Gyr=0.0):
    return 1.0 + model.history_weight * (eq5_history(model.t_Gyr, peak, shift_Gyr) - 1.0)


BURST_RADIUS_KPC = 1.0  # the Galactic-centre burst fills r < 1 kpc
BURST_WIDTH_GYR = 0.25  # its duration: a Gaussian pulse of this standard deviation in time


def burst_history(params: CoronaParams, model: "TransportModel"):
    """f_b(t) at the end of each step: a Gaussian pulse centred burst_age_Gyr before today,
    normalised on the steps so that dt sum f_b = 1 Gyr (the unit of the solver's source)."""
    t_burst = model.t_Gyr[-1] - params.burst_age_Gyr
    pulse = jnp.exp(-0.5 * ((model.t_Gyr - t_burst) / BURST_WIDTH_GYR) ** 2)
    return pulse / (model.dt_Gyr * jnp.sum(pulse))


def history_weight(history: str) -> float:
    """w of source_history: 1 for 'paper', 0 for 'constant'."""
    if history not in HISTORIES:
        raise ConfigError(f"unknown source history {history!r}; choose one of {', '.join(HISTORIES)}")
    return 1.0 if history == "paper" else 0.0


def build_transport_model(
    res: grids.Resolution, history: str = "paper", boundary: str = "outgoing", pp: PPTables = None,
    spectrum: str = "cutoff", features: str = "injection",
) -> TransportModel:
    """Grids and constant arrays for the solver; pure numpy, done once. pp: the pp table
    whose sigma_inel is used (default: the shipped one); spectrum and features: the injected
    spectrum's family and where its breaks act (corona_jax.spectrum)."""
    weights = break_weights(spectrum, features)
    res.validate()
    if boundary not in BOUNDARIES:
        raise ConfigError(f"unknown boundary {boundary!r}; choose one of {', '.join(BOUNDARIES)}")
    E = grids.energy_grid(res)
    rg = grids.radial_grid(res)
    t = grids.time_steps(res)
    R, r_last = rg.faces_kpc[-1], rg.centres_kpc[-1]
    outer = {"outgoing": r_last, "absorbing": R**2 / (R - r_last), "reflecting": 0.0}[boundary]
    arrays = TransportModel(
        E_GeV=E,
        faces_kpc=rg.faces_kpc,
        centres_kpc=rg.centres_kpc,
        volumes_kpc3=rg.volumes_kpc3,
        face_coupling_kpc=rg.face_coupling_kpc,
        outer_coupling_kpc=np.float64(outer),
        source_fraction=grids.volume_fraction_inside(rg.faces_kpc, grids.SOURCE_RADIUS_KPC),
        burst_fraction=grids.volume_fraction_inside(rg.faces_kpc, BURST_RADIUS_KPC),
        t_Gyr=t,
        history_weight=np.float64(history_weight(history)),
        dt_Gyr=np.float64(t[0]),
        sigma_pp_mb=np.asarray(sigma_inelastic_mb(E, pp)),
        break_weights_injection=weights["injection"],
        break_weights_observer=weights["observer"],
        break_weights_diffusion=weights["diffusion"],
    )
    return TransportModel(*(jnp.asarray(a, dtype=jnp.float64) for a in arrays))


def diffusion_coefficient_kpc2_gyr(params: CoronaParams, E_GeV, break_weights=None):
    """D(E) = D0 (E/GeV)^(1/3) [kpc^2/Gyr], divided by the factors of the breaks that act in D
    (break_weights, TransportModel.break_weights_diffusion): since j ~ Q / D, a break that raises
    the flux's index by Delta raises D's by Delta."""
    D = cm2_s_to_kpc2_gyr(10.0 ** params.log10_D0_cm2_s) * E_GeV ** (1.0 / 3.0)
    if break_weights is None:
        return D
    return D * jnp.exp(-log_features(params, E_GeV, break_weights))


def loss_rate_per_gyr(params: CoronaParams, model: TransportModel):
    """Collision rate n_g(r) sigma_pp(E) beta(E) c [1/Gyr], shape (N_r, N_E) (Eq. 4, beta of the proton)."""
    n = gas_density_cells(params, model.faces_kpc, model.centres_kpc)
    rate = model.sigma_pp_mb * proton_beta(model.E_GeV)
    return (C_CM_S * MB_CM2 * GYR_S) * n[:, None] * rate[None, :]


class Factors(NamedTuple):
    """LU factors of a tridiagonal matrix (Thomas algorithm), layout (N_r, N_E)."""

    lower: jax.Array  # sub-diagonal l_i (l_0 = 0)
    upper_reduced: jax.Array  # c'_i = u_i / (d_i - l_i c'_{i-1})
    inv_pivot: jax.Array  # 1 / (d_i - l_i c'_{i-1})


def implicit_matrix(D, loss, model: TransportModel, theta_dt):
    """Diagonals of I - theta_dt L, where L is the finite-volume operator.

    D: (N_E,) [kpc^2/Gyr]; loss: (N_r, N_E) [1/Gyr]; returns (lower, diag, upper),
    each (N_r, N_E).
    """
    zero = jnp.zeros(1)
    k_lo = jnp.concatenate([zero, model.face_coupling_kpc]) / model.volumes_kpc3
    k_hi = jnp.concatenate([model.face_coupling_kpc, zero]) / model.volumes_kpc3
    k_out = jnp.concatenate([jnp.zeros_like(model.face_coupling_kpc), model.outer_coupling_kpc[None]])
    k_out = k_out / model.volumes_kpc3
    lower = -theta_dt * k_lo[:, None] * D[None, :]
    upper = -theta_dt * k_hi[:, None] * D[None, :]
    diag = 1.0 + theta_dt * ((k_lo + k_hi + k_out)[:, None] * D[None, :] + loss)
    return lower, diag, upper


def factorise(lower, diag, upper) -> Factors:
    """Thomas forward elimination, vectorised over energies (no pivoting: the
    matrix is an M-matrix, strictly diagonally dominant by at least 1)."""

    def eliminate(c_prev, row):
        l, d, u = row
        inv = 1.0 / (d - l * c_prev)
        c = u * inv
        return c, (c, inv)

    _, (c, inv) = jax.lax.scan(eliminate, jnp.zeros_like(diag[0]), (lower, diag, upper))
    return Factors(lower, c, inv)


def solve_factorised(f: Factors, rhs):
    """Solve the factorised system for rhs of shape (N_r, N_E)."""

    def forward(y_prev, row):
        l, r, inv = row
        y = (r - l * y_prev) * inv
        return y, y

    def backward(x_next, row):
        c, y = row
        x = y - c * x_next
        return x, x

    _, y = jax.lax.scan(forward, jnp.zeros_like(rhs[0]), (f.lower, rhs, f.inv_pivot))
    _, x = jax.lax.scan(backward, jnp.zeros_like(rhs[0]), (f.upper_reduced, y), reverse=True)
    return x


def factorise_transposed(lower, diag, upper) -> Factors:
    """Factors of the transposed tridiagonal matrix (for adjoint solves)."""
    zero = jnp.zeros_like(lower[:1])
    return factorise(jnp.concatenate([zero, upper[:-1]]), diag, jnp.concatenate([lower[1:], zero]))


def _tridiagonal_cotangent(r, x):
    """Cotangent of (lower, diag, upper) of M for x = M^-1 b, given r = M^-T xbar."""
    zero = jnp.zeros_like(x[:1])
    return (
        -r * jnp.concatenate([zero, x[:-1]]),
        -r * x,
        -r * jnp.concatenate([x[1:], zero]),
    )


def _bdf2_blocks(n_steps):
    """Split n BDF2 steps into a leading remainder and equal blocks of ~sqrt(n)."""
    block = max(1, math.isqrt(n_steps))
    n_blocks, rest = divmod(n_steps, block)
    return rest, n_blocks, block


def _bdf2_run(bdf2, carry, coeffs, source):
    """BDF2 steps from carry (G_n, G_{n-1}); returns final carry and all new states."""

    def step(c, coeff):
        g, g_prev = c
        g_new = solve_factorised(bdf2, (4.0 / 3.0) * g - (1.0 / 3.0) * g_prev + coeff[None, :] * source)
        return (g_new, g), g_new

    return jax.lax.scan(step, carry, coeffs)


def _bdf2_adjoint(bdf2_t, adj, states, coeffs, source):
    """Reverse sweep of BDF2 steps. adj = (cotangent of G_{k+1}, partial one of G_k).

    Returns the new adjoint carry and the summed cotangents of the matrix diagonals,
    of the source and of the per-step coefficients."""

    def step(c, xs):
        (gbar, gbar_prev), (acc_l, acc_d, acc_u, acc_s) = c
        g_out, coeff = xs
        r = solve_factorised(bdf2_t, gbar)
        dl, dd, du = _tridiagonal_cotangent(r, g_out)
        new = ((gbar_prev + (4.0 / 3.0) * r, -(1.0 / 3.0) * r),
               (acc_l + dl, acc_d + dd, acc_u + du, acc_s + coeff[None, :] * r))
        return new, jnp.sum(r * source, axis=0)

    zeros = jnp.zeros_like(source)
    (adj, acc), coeff_bar = jax.lax.scan(
        step, (adj, (zeros, zeros, zeros, zeros)), (states, coeffs), reverse=True
    )
    return adj, acc, coeff_bar


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _evolve_linear(keep_states, euler_m, bdf2_m, source, coeffs):
    """G_N of: M1 G_1 = c_0 S; M2 G_{k+1} = 4/3 G_k - 1/3 G_{k-1} + c_k S.
    keep_states: whether the adjoint stores every state (else sqrt(N) block starts)."""
    return _evolve_forward(euler_m, bdf2_m, source, coeffs)[0]


def _evolve_forward(euler_m, bdf2_m, source, coeffs, remat=False, keep_states=False):
    """Forward steps; returns G today and what the adjoint restarts from: every
    BDF2 state (keep_states) or the carries at the starts of ~sqrt(N) blocks.
    remat=True rematerialises each block when JAX differentiates this function."""
    euler, bdf2 = factorise(*euler_m), factorise(*bdf2_m)
    g1 = solve_factorised(euler, coeffs[0][None, :] * source)
    carry = (g1, jnp.zeros_like(g1))
    if keep_states:
        (g_today, _), states = _bdf2_run(bdf2, carry, coeffs[1:], source)
        return g_today, (g1, states)
    rest, n_blocks, block = _bdf2_blocks(coeffs.shape[0] - 1)
    carry, _ = _bdf2_run(bdf2, carry, coeffs[1 : 1 + rest], source)

    def run_block(c, cb):
        c_new, _ = _bdf2_run(bdf2, c, cb, source)
        return c_new, c  # save the carry at each block start

    if remat:
        run_block = jax.checkpoint(run_block)
    carry, block_starts = jax.lax.scan(
        run_block, carry, coeffs[1 + rest :].reshape(n_blocks, block, -1)
    )
    return carry[0], (g1, block_starts)


def _evolve_fwd(keep_states, euler_m, bdf2_m, source, coeffs):
    g_today, (g1, saved) = _evolve_forward(euler_m, bdf2_m, source, coeffs, keep_states=keep_states)
    return g_today, (euler_m, bdf2_m, source, coeffs, g1, saved)


def _evolve_bwd(keep_states, res, g_bar):
    """Adjoint of _evolve_linear; `saved` holds every BDF2 state, or (when they
    would not fit) the carries at block starts, from which blocks are recomputed."""
    euler_m, bdf2_m, source, coeffs, g1, saved = res
    bdf2_t = factorise_transposed(*bdf2_m)
    zeros = jnp.zeros_like(source)
    if keep_states:
        adj, acc, coeffs_bar = _bdf2_adjoint(bdf2_t, (g_bar, zeros), saved, coeffs[1:], source)
    else:
        adj, acc, coeffs_bar = _blockwise_adjoint(bdf2_m, bdf2_t, (g_bar, zeros), g1, saved, coeffs, source)
    l_bar, d_bar, u_bar, s_bar = acc
    # backward-Euler first step
    r = solve_factorised(factorise_transposed(*euler_m), adj[0])
    euler_bar = _tridiagonal_cotangent(r, g1)
    coeffs_bar = jnp.concatenate([jnp.sum(r * source, axis=0)[None], coeffs_bar])
    return euler_bar, (l_bar, d_bar, u_bar), s_bar + coeffs[0][None, :] * r, coeffs_bar


def _blockwise_adjoint(bdf2_m, bdf2_t, adj, g1, block_starts, coeffs, source):
    """Adjoint of the BDF2 steps, recomputing each block of states from its start."""
    bdf2 = factorise(*bdf2_m)
    rest, n_blocks, block = _bdf2_blocks(coeffs.shape[0] - 1)

    def adjoint_block(c, xs):
        adj, acc = c
        start, cb = xs
        _, states = _bdf2_run(bdf2, start, cb, source)  # recompute this block
        adj, acc_b, cbar = _bdf2_adjoint(bdf2_t, adj, states, cb, source)
        return (adj, tuple(a + b for a, b in zip(acc, acc_b))), cbar

    zeros = jnp.zeros_like(source)
    (adj, acc), cbar_blocks = jax.lax.scan(
        adjoint_block,
        (adj, (zeros, zeros, zeros, zeros)),
        (block_starts, coeffs[1 + rest :].reshape(n_blocks, block, -1)),
        reverse=True,
    )
    _, rest_states = _bdf2_run(bdf2, (g1, zeros), coeffs[1 : 1 + rest], source)
    adj, acc_r, cbar_rest = _bdf2_adjoint(bdf2_t, adj, rest_states, coeffs[1 : 1 + rest], source)
    acc = tuple(a + b for a, b in zip(acc, acc_r))
    return adj, acc, jnp.concatenate([cbar_rest, cbar_blocks.reshape(-1, coeffs.shape[1])])


_evolve_linear.defvjp(_evolve_fwd, _evolve_bwd)


def evolve(D, loss, model: TransportModel, adjoint=DiscreteAdjoint(), history=None, source_fraction=None):
    """Unit-spectrum density today, (N_r, N_cols) [Gyr], from G = 0 at t = 0, for N_cols
    independent columns (energies, or energies of several points or populations).

    One backward-Euler step, then BDF2:
    (I - 2/3 dt L) G_{n+1} = 4/3 G_n - 1/3 G_{n-1} + 2/3 dt S f(t_{n+1}).

    D (N_cols,) [kpc^2/Gyr]; loss (N_r, N_cols) [1/Gyr]; history f (N_t,) or one per column
    (N_t, N_cols), default the model's with the paper's peak and shift; source_fraction S (N_r,)
    or (N_r, N_cols), default the source sphere r_Q.
    adjoint: DiscreteAdjoint (default) or AutodiffAdjoint, how reverse mode runs.
    """
    dt = model.dt_Gyr
    if history is None:
        history = _model_history(model)
    fraction = model.source_fraction if source_fraction is None else source_fraction
    source = jnp.broadcast_to(fraction[:, None] if fraction.ndim == 1 else fraction, loss.shape)
    f = jnp.broadcast_to(history[:, None] if history.ndim == 1 else history, (history.shape[0], loss.shape[1]))
    euler_m = implicit_matrix(D, loss, model, dt)
    bdf2_m = implicit_matrix(D, loss, model, 2.0 * dt / 3.0)
    coeffs = jnp.concatenate([dt * f[:1], (2.0 / 3.0) * dt * f[1:]])
    if isinstance(adjoint, DiscreteAdjoint):
        return _evolve_linear(adjoint.keeps_every_state(source, coeffs.shape[0] - 1), euler_m, bdf2_m, source, coeffs)
    if isinstance(adjoint, AutodiffAdjoint):
        return _evolve_forward(euler_m, bdf2_m, source, coeffs, remat=True)[0]
    raise ConfigError(f"unknown adjoint {adjoint!r}; use transport.DiscreteAdjoint() or transport.AutodiffAdjoint()")


def unit_spectrum_density(params: CoronaParams, model: TransportModel, adjoint=DiscreteAdjoint()):
    """G(E, r) [Gyr], shape (N_E, N_r): the density today per unit source rate.

    Depends on params only through D0, the gas numbers and the history.
    """
    D = diffusion_coefficient_kpc2_gyr(params, model.E_GeV, model.break_weights_diffusion)
    return evolve(D, loss_rate_per_gyr(params, model), model, adjoint, source_history(params, model)).T


def unit_spectrum_densities_with_burst(params: CoronaParams, model: TransportModel, adjoint=DiscreteAdjoint()):
    """(G, G_burst) [Gyr], each (N_E, N_r): the main population and the Galactic-centre burst
    (source r < BURST_RADIUS_KPC, history burst_history), in one solve of 2 N_E columns (the
    transport is linear in the source, so each population is a unit solution of its own)."""
    D = diffusion_coefficient_kpc2_gyr(params, model.E_GeV, model.break_weights_diffusion)
    loss = loss_rate_per_gyr(params, model)
    n_E = D.shape[0]
    ones = jnp.ones(n_E)
    fraction = jnp.concatenate([jnp.outer(model.source_fraction, ones), jnp.outer(model.burst_fraction, ones)], axis=1)
    history = jnp.concatenate([jnp.outer(source_history(params, model), ones),
                               jnp.outer(burst_history(params, model), ones)], axis=1)
    G = evolve(jnp.concatenate([D, D]), jnp.concatenate([loss, loss], axis=1), model, adjoint, history, fraction).T
    return G[:n_E], G[n_E:]
