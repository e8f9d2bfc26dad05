"""NUTS posteriors with NumPyro, returned as ArviZ InferenceData."""

from typing import NamedTuple

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from .fit import lbfgs
from .model import FlatPotential, Setup, constrain, corona_model, free_parameter_names, predictive_values


def use_host_devices(chains: int) -> int:
    """Give the CPU one XLA device per chain, so chains run as parallel threads.

    Must run before JAX makes its first array (later it changes nothing); a GPU,
    if present, stays the default device. Returns the number of devices JAX sees.
    On the 2-core CPU, 4 chains this way cost half the time of 4 vectorised ones
    (benchmarks/RESULTS.md)."""
    import numpyro

    numpyro.set_host_device_count(chains)
    return jax.local_device_count()


def chain_method(chains: int) -> str:
    """'parallel' when there is a device per chain, else 'vectorized' (one device, chains batched)."""
    return "parallel" if jax.local_device_count() >= chains else "vectorized"


class WarmStart(NamedTuple):
    """Where the chains begin (unconstrained coordinates, one row per chain) and the
    initial dense inverse mass matrix (None: numpyro's identity)."""

    init_params: dict  # site -> (chains,) unconstrained values
    inverse_mass_matrix: object  # (d, d), sites in sorted order, or None
    optimum: dict  # site -> unconstrained value at the lowest potential found


def warm_start(setup: Setup, seed: int, max_steps: int = 200, progress=print) -> WarmStart:
    """Start each chain from a draw of the Laplace approximation at an optimum.

    From one random point per chain (uniform in [-2, 2] in the unconstrained coordinates,
    as numpyro's init_to_uniform), optax L-BFGS minimises numpyro's potential energy. It
    includes the Jacobians of the priors' bijections, so the optimum is finite even where
    the likelihood peaks at a prior edge. The inverse Hessian there (reverse-over-reverse
    autodiff of the adjoint gradient) is the initial mass matrix, and each chain starts
    at its own optimum plus one draw from N(0, H^-1). With prior starts and a unit mass
    matrix the first adaptation window (75 + 25 iterations) runs at the tree-depth limit.
    """
    names = tuple(sorted(free_parameter_names(setup)))  # numpyro's order of sites in the mass matrix
    potential = FlatPotential(names)
    rng = np.random.default_rng(seed)
    optima = []
    for c in range(setup.config.chains):
        x, value, steps = lbfgs(potential, jnp.asarray(rng.uniform(-2.0, 2.0, len(names))), (setup.problem,), max_steps)
        optima.append((value, x))
        progress(f"  warm start, chain {c + 1}: potential {value:.3f} after {steps} L-BFGS steps")
    _, best_x = min(optima, key=lambda o: o[0])
    H = np.asarray(_hessian(potential, best_x, setup.problem))
    H = 0.5 * (H + H.T)
    if np.all(np.isfinite(H)) and np.all(np.linalg.eigvalsh(H) > 0):
        inverse_mass = np.linalg.inv(H)
        spread = np.linalg.cholesky(inverse_mass)
    else:  # not a proper minimum: keep numpyro's unit mass matrix, start at the optima
        progress("  warm start: Hessian not positive definite; unit initial mass matrix")
        inverse_mass, spread = None, np.zeros_like(H)
    starts = np.stack([np.asarray(x) + spread @ rng.standard_normal(len(names)) for _, x in optima])
    init = {n: jnp.asarray(starts[:, i]) for i, n in enumerate(names)}
    optimum = {n: float(best_x[i]) for i, n in enumerate(names)}
    return WarmStart(init, None if inverse_mass is None else jnp.asarray(inverse_mass), optimum)


@functools.partial(jax.jit, static_argnums=0)
def _hessian(potential, x, problem):
    """Hessian of the potential, reverse over reverse through the discrete adjoint."""
    return jax.jacrev(jax.grad(potential))(x, problem)


def sample_posterior(setup: Setup, progress_bar=True, progress=print) -> MCMC:
    """NUTS as the configuration says: warm start from the optimum ([sampler] init =
    'optimum', the default) or numpyro's random prior starts ('prior')."""
    start = None
    if setup.config.init == "optimum":
        progress("warm start: L-BFGS optimum per chain, inverse Hessian as the first mass matrix")
        start = warm_start(setup, setup.config.seed, progress=progress)
    return run_nuts(setup, progress_bar, start)


def run_nuts(setup: Setup, progress_bar=True, start: WarmStart = None) -> MCMC:
    """NUTS with a dense mass matrix; `start` (warm_start) gives initial points and mass matrix."""
    cfg = setup.config
    kernel = NUTS(corona_model, target_accept_prob=cfg.target_accept, max_tree_depth=cfg.max_tree_depth,
                  dense_mass=True,  # the source power and D0 are strongly correlated
                  inverse_mass_matrix=None if start is None else start.inverse_mass_matrix)
    mcmc = MCMC(kernel, num_warmup=cfg.warmup, num_samples=cfg.samples, num_chains=cfg.chains,
                chain_method=chain_method(cfg.chains), progress_bar=progress_bar,
                postprocess_fn=functools.partial(constrain, setup.problem))
    init = None if start is None else (start.init_params if cfg.chains > 1
                                       else {k: v[0] for k, v in start.init_params.items()})
    mcmc.run(jax.random.PRNGKey(cfg.seed), setup.problem, extra_fields=("num_steps", "diverging"), init_params=init)
    jax.block_until_ready(mcmc.get_samples())  # JAX dispatches asynchronously: wait for the chains
    return mcmc


def to_inference_data(mcmc: MCMC, setup: Setup):
    """Posterior (parameters), sample stats, observed data (with errors as constant data),
    and the posterior predictive (the model at every data point)."""
    import arviz as az

    samples = mcmc.get_samples(group_by_chain=True)
    names = free_parameter_names(setup)
    posterior = {n: np.asarray(samples[n]) for n in names if n in samples}
    flat = {k: np.asarray(v).reshape(-1) for k, v in posterior.items()}
    shape = next(iter(posterior.values())).shape  # (chains, draws)
    predictive = {k: v.reshape(*shape, -1) for k, v in predictive_values(setup, flat).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {"n_steps": np.asarray(extra["num_steps"]), "diverging": np.asarray(extra["diverging"])}
    observed = {o.name: o.value for o in setup.terms}
    constant = {}
    for o in setup.terms:
        constant[f"{o.name} E_GeV"] = o.E_GeV
        constant[f"{o.name} err_lo"] = o.err_lo
        constant[f"{o.name} err_hi"] = o.err_hi
        constant[f"{o.name} is_upper_limit"] = o.is_upper_limit.astype(int)
    dims = {o.name: [f"{o.name} point"] for o in setup.terms}
    dims.update({f"{o.name} {s}": [f"{o.name} point"] for o in setup.terms
                 for s in ("E_GeV", "err_lo", "err_hi", "is_upper_limit")})
    idata = az.from_dict(posterior=posterior, sample_stats=stats, posterior_predictive=predictive,
                         observed_data=observed, constant_data=constant, dims=dims)
    cfg = setup.config
    idata.posterior.attrs.update({"chains": cfg.chains, "warmup": cfg.warmup, "samples": cfg.samples, "seed": cfg.seed,
                                  "mock": str(cfg.mock), **{k: str(v) for k, v in cfg.data.items()},
                                  **setup.model.config.describe()})
    return idata
