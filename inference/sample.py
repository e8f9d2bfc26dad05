"""NUTS posteriors with NumPyro, returned as ArviZ InferenceData."""

import jax
import numpy as np
from numpyro.infer import MCMC, NUTS

from .model import Setup, corona_model, free_parameter_names, predictive_values, site_supports


def chain_method(chains: int) -> str:
    """'parallel' when there is a device per chain, else 'vectorized' (one device, chains batched)."""
    return "parallel" if jax.local_device_count() >= chains else "vectorized"


def run_nuts(setup: Setup, progress_bar=True) -> MCMC:
    cfg = setup.config
    kernel = NUTS(corona_model, target_accept_prob=cfg.target_accept, max_tree_depth=cfg.max_tree_depth,
                  dense_mass=True)  # the source power and D0 are strongly correlated
    mcmc = MCMC(kernel, num_warmup=cfg.warmup, num_samples=cfg.samples, num_chains=cfg.chains,
                chain_method=chain_method(cfg.chains), progress_bar=progress_bar,
                postprocess_fn=_constrain_without_model(setup))
    mcmc.run(jax.random.PRNGKey(cfg.seed), setup, extra_fields=("num_steps", "diverging"))
    jax.block_until_ready(mcmc.get_samples())  # JAX dispatches asynchronously: wait for the chains
    return mcmc


def _constrain_without_model(setup: Setup):
    """numpyro's default post-processing re-runs the model op by op for every sample; the
    sites here have fixed supports, so map them directly."""
    from numpyro.distributions import biject_to

    transforms = {name: biject_to(support) for name, support in site_supports(setup).items()}
    return lambda z: {k: transforms[k](v) for k, v in z.items()}


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
    observed = {o.name: o.value for o in setup.observed}
    constant = {}
    for o in setup.observed:
        constant[f"{o.name} E_GeV"] = o.E_GeV
        constant[f"{o.name} err_lo"] = o.err_lo
        constant[f"{o.name} err_hi"] = o.err_hi
        constant[f"{o.name} is_upper_limit"] = o.is_upper_limit.astype(int)
    dims = {o.name: [f"{o.name} point"] for o in setup.observed}
    dims.update({f"{o.name} {s}": [f"{o.name} point"] for o in setup.observed
                 for s in ("E_GeV", "err_lo", "err_hi", "is_upper_limit")})
    idata = az.from_dict(posterior=posterior, sample_stats=stats, posterior_predictive=predictive,
                         observed_data=observed, constant_data=constant, dims=dims)
    cfg = setup.config
    idata.posterior.attrs.update({"chains": cfg.chains, "warmup": cfg.warmup, "samples": cfg.samples, "seed": cfg.seed,
                                  "resolution": cfg.resolution, "cosmic_ray_mode": cfg.cosmic_ray_mode,
                                  "neutrino_mode": cfg.neutrino_mode, "gamma_mode": cfg.gamma_mode,
                                  "mock": str(cfg.mock)})
    return idata
