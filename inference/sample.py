"""NUTS posteriors with NumPyro, returned as ArviZ InferenceData."""

import dataclasses
import functools
import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from corona_jax import interrupt
from corona_jax.errors import ConfigError

from .fit import hessian, lbfgs
from .model import FlatPotential, Setup, constrain, corona_model, free_parameter_names, predictions_and_derived


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
        m = lbfgs(potential, jnp.asarray(rng.uniform(-2.0, 2.0, len(names))), (setup.problem,), max_steps)
        optima.append((m.value, m.x))
        progress(f"  warm start, chain {c + 1}: potential {m.value:.3f} after {m.steps} L-BFGS steps"
                 + ("" if m.converged else " (step limit: not converged)"))
    _, best_x = min(optima, key=lambda o: o[0])
    H = np.asarray(hessian(potential, best_x, (setup.problem,)))
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


def sample_posterior(setup: Setup, progress_bar=True, progress=print, checkpoint: str = None,
                     resume: bool = False) -> "Posterior":
    """NUTS as the configuration says: warm start from the optimum ([sampler] init =
    'optimum', the default) or numpyro's random prior starts ('prior'). With `checkpoint`,
    the chains' state is saved there every [sampler] checkpoint_every samples, and
    resume=True continues from it (run_nuts)."""
    saved = load_checkpoint(checkpoint, setup) if resume else None
    start = None
    if setup.config.init == "optimum" and saved is None:
        progress("warm start: L-BFGS optimum per chain, inverse Hessian as the first mass matrix")
        start = warm_start(setup, setup.config.seed, progress=progress)
    return run_nuts(setup, progress_bar, start, checkpoint, saved, progress)


class Posterior(NamedTuple):
    """Constrained samples and sampler statistics, each (chains, draws, ...)."""

    samples: dict
    num_steps: np.ndarray
    diverging: np.ndarray

    def get_samples(self) -> dict:
        """Samples with the chains one after the other (as numpyro's MCMC.get_samples)."""
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in self.samples.items()}


EXTRA_FIELDS = ("num_steps", "diverging")


def run_nuts(setup: Setup, progress_bar=True, start: WarmStart = None, checkpoint: str = None,
             saved=None, progress=print) -> Posterior:
    """NUTS with a dense mass matrix; `start` (warm_start) gives initial points and mass matrix.

    Warm-up runs in one piece; the samples are drawn in pieces of [sampler] checkpoint_every,
    each continuing from the last state (numpyro's post_warmup_state). With `checkpoint`, the
    state and the samples so far are written there (atomically) after warm-up and after each
    piece; `saved` (load_checkpoint) continues such a run. Since an uninterrupted run takes
    the same pieces, a resumed run gives the same samples, bit for bit. A run killed during
    warm-up repeats it from the start."""
    cfg = setup.config
    kernel = NUTS(corona_model, target_accept_prob=cfg.target_accept, max_tree_depth=cfg.max_tree_depth,
                  dense_mass=True,  # the source power and D0 are strongly correlated
                  inverse_mass_matrix=None if start is None else start.inverse_mass_matrix)
    mcmc = MCMC(kernel, num_warmup=cfg.warmup, num_samples=min(cfg.checkpoint_every, cfg.samples),
                num_chains=cfg.chains, chain_method=chain_method(cfg.chains), progress_bar=progress_bar,
                postprocess_fn=functools.partial(constrain, setup.problem))
    if saved is None:
        init = None if start is None else (start.init_params if cfg.chains > 1
                                           else {k: v[0] for k, v in start.init_params.items()})
        mcmc.warmup(jax.random.PRNGKey(cfg.seed), setup.problem, extra_fields=EXTRA_FIELDS, init_params=init)
        state, pieces = mcmc.post_warmup_state, []
        if checkpoint:
            save_checkpoint(checkpoint, setup, state, pieces)
    else:
        leaves, pieces = saved
        state = restore_state(kernel, setup, leaves)
    done = sum(p.num_steps.shape[1] for p in pieces)
    while done < cfg.samples:
        interrupt.check()
        mcmc.num_samples = min(cfg.checkpoint_every, cfg.samples - done)
        mcmc.post_warmup_state = state
        mcmc.run(state.rng_key, setup.problem, extra_fields=EXTRA_FIELDS)
        extra = mcmc.get_extra_fields(group_by_chain=True)
        pieces.append(Posterior({k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()},
                                np.asarray(extra["num_steps"]), np.asarray(extra["diverging"])))
        state, done = mcmc.last_state, done + mcmc.num_samples
        if checkpoint:
            save_checkpoint(checkpoint, setup, state, pieces)
            progress(f"checkpoint: {done}/{cfg.samples} samples per chain in {checkpoint}")
    return Posterior({k: np.concatenate([p.samples[k] for p in pieces], axis=1) for k in pieces[0].samples},
                     np.concatenate([p.num_steps for p in pieces], axis=1),
                     np.concatenate([p.diverging for p in pieces], axis=1))


def convergence_warnings(summary, diverging, rhat_max=1.01, ess_min=100) -> list:
    """Messages for every parameter past the usual thresholds (R-hat > 1.01, bulk ESS < 100)
    and for divergent transitions; summary: arviz.summary's table."""
    out = []
    if summary["r_hat"].isna().all():
        out.append("R-hat needs at least 2 chains: convergence cannot be judged from one")
    for name, row in summary.iterrows():
        if row["r_hat"] > rhat_max:
            out.append(f"R-hat of {name} is {row['r_hat']:.3f} > {rhat_max}: the chains disagree "
                       "(run longer, or sample a better parameterisation)")
        if not row["ess_bulk"] >= ess_min:
            out.append(f"bulk ESS of {name} is {row['ess_bulk']:.0f} < {ess_min}: too few effective samples")
    n = int(np.sum(diverging))
    if n:
        out.append(f"{n} divergent transitions: the sampler missed part of the posterior "
                   "(raise target_accept, or reparameterise)")
    return out


def _fingerprint(setup: Setup) -> str:
    """What a checkpoint must have been made with to be continued: the configuration and versions."""
    import numpyro

    return json.dumps({"config": dataclasses.asdict(setup.config), "jax": jax.__version__, "numpyro": numpyro.__version__}, default=str, sort_keys=True)


CHECKPOINT_FORMAT = "corona_jax sample checkpoint, HDF5 arrays (version 2)"


def save_checkpoint(path: str, setup: Setup, state, pieces):
    """The chains' state (the leaves of numpyro's HMCState, in its flattening order) and the
    samples so far, as arrays in HDF5, written atomically. The format holds data only, so that
    reading a checkpoint can never run code (unlike a pickle)."""
    from corona_jax.output import new_hdf5

    with new_hdf5(path, ".tmp") as f:
        leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
        f.attrs.update(format=CHECKPOINT_FORMAT, fingerprint=_fingerprint(setup),
                       state_paths=json.dumps([jax.tree_util.keystr(path) for path, _ in leaves]))
        for i, (_, leaf) in enumerate(leaves):
            f[f"state/{i:04d}"] = np.asarray(leaf)
        for i, piece in enumerate(pieces):
            group = f.create_group(f"pieces/{i:04d}")
            for name, value in piece.samples.items():
                group[f"samples/{name}"] = value
            group["num_steps"], group["diverging"] = piece.num_steps, piece.diverging


def load_checkpoint(path: str, setup: Setup):
    """({path in the state: array}, pieces) of an interrupted run of the same configuration (run_nuts
    rebuilds the state from them); ConfigError if the file is missing, not such a checkpoint, or of
    another run."""
    import h5py

    if not path or not os.path.isfile(path):
        raise ConfigError(f"no checkpoint to continue at {path}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != CHECKPOINT_FORMAT:
                raise ConfigError(f"checkpoint {path} is not a corona_jax HDF5 checkpoint (an older or foreign "
                                  "file, never opened as code); delete it to start afresh")
            fingerprint = f.attrs["fingerprint"]
            leaves = dict(zip(json.loads(f.attrs["state_paths"]), (f["state"][k][()] for k in sorted(f["state"]))))
            pieces = [Posterior({n: g["samples"][n][()] for n in g["samples"]}, g["num_steps"][()], g["diverging"][()])
                      for g in (f["pieces"][k] for k in sorted(f.get("pieces", {})))]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"checkpoint {path} is not readable ({exc}); delete it to start afresh") from None
    if fingerprint != _fingerprint(setup):
        raise ConfigError(f"checkpoint {path} was made with another configuration or version; "
                          "delete it to start afresh")
    return leaves, pieces


def restore_state(kernel, setup: Setup, leaves: dict):
    """numpyro's HMCState from a checkpoint's arrays: a fresh state of the same kernel and problem
    (its momentum, None until numpyro keeps one, given the structure of the positions if the checkpoint
    holds one) gives the structure, and each of its leaves is replaced by the stored array at the same path.
    Batched chains need the kernel initialised with one key per chain: that is what makes numpyro batch its
    transitions (the chains' state may have been saved by a parallel run)."""
    chains, key = setup.config.chains, jax.random.PRNGKey(0)
    if chains > 1 and chain_method(chains) == "vectorized":
        key = jax.random.split(key, chains)
    template = kernel.init(key, setup.config.warmup, None, (setup.problem,), {})
    if template.r is None and any(name.startswith(".r[") for name in leaves):
        template = template._replace(r=template.z)
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [jax.tree_util.keystr(path) for path, _ in paths]
    if sorted(names) != sorted(leaves):
        raise ConfigError("the checkpoint's sampler state does not match this sampler's; delete it to start afresh")
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(leaves[n]) for n in names])


def to_inference_data(posterior_samples: Posterior, setup: Setup):
    """Posterior (parameters), sample stats, observed data (with errors as constant data),
    and the posterior predictive (the model at every data point)."""
    import arviz as az

    samples = posterior_samples.samples
    names = free_parameter_names(setup)
    posterior = {n: np.asarray(samples[n]) for n in names if n in samples}
    flat = {k: np.asarray(v).reshape(-1) for k, v in posterior.items()}
    shape = next(iter(posterior.values())).shape  # (chains, draws)
    predicted, derived = predictions_and_derived(setup, flat)
    predictive = {k: v.reshape(*shape, -1) for k, v in predicted.items()}
    posterior.update({k: v.reshape(*shape, *v.shape[1:]) for k, v in derived.items()})
    stats = {"n_steps": posterior_samples.num_steps, "diverging": posterior_samples.diverging}
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
