"""`corona-jax evidence`: Bayesian evidence by nested sampling (jaxns through numpyro.contrib) and
Bayes factors between run configurations.

An evidence configuration is a run configuration (inference.config) plus

[evidence]  live_points (default 25 per free site), max_samples (default 100000), seed

The evidence Z is the likelihood averaged over the prior, so it depends on the priors' ranges:
compare configurations whose shared parameters have the same priors. The Bayes factor of
configuration B over A is Z_B / Z_A; its log error is the two runs' errors in quadrature.
"""

import dataclasses
import logging
import threading
from typing import NamedTuple

import jax
import numpy as np

from corona_jax.errors import ConfigError, install_hint

from .config import (_SECTIONS, RunConfig, _check_keys, _seed, _table, parse_run_sections, positive_integers, read_text,
                     read_toml)
from .model import Setup, corona_model, site_distributions

MAX_SAMPLES_REACHED = 1  # bit 0 of jaxns's termination reason


@dataclasses.dataclass(frozen=True)
class EvidenceConfig:
    run: RunConfig
    live_points: int = 0  # 0: 25 per free site (numpyro's default)
    max_samples: int = 100_000
    seed: int = 0


def parse_evidence_config(text: str, source: str = "config") -> EvidenceConfig:
    raw = read_toml(text, source, {*_SECTIONS, "evidence"})
    settings = _table(raw.pop("evidence", {}), "[evidence]")
    run = parse_run_sections(raw, source)
    _check_keys(settings, {"live_points", "max_samples", "seed"}, "evidence")
    values = positive_integers(settings, ("live_points", "max_samples"), "evidence")
    if "seed" in settings:
        values["seed"] = _seed(settings["seed"], "[evidence] seed")
    return EvidenceConfig(run, **values)


def load_evidence_config(path: str) -> EvidenceConfig:
    return parse_evidence_config(read_text(path), path)


class Evidence(NamedTuple):
    log_Z: float  # natural log of the evidence
    error: float  # jaxns's standard error of log_Z
    likelihood_evaluations: int
    effective_samples: float  # Kish ESS of the weighted posterior samples
    max_samples_reached: bool  # stopped by max_samples, not by the remaining evidence


def log_evidence(model, args, n_sites, live_points=0, max_samples=100_000, seed=0) -> Evidence:
    """log Z of a numpyro model(*args) whose latent sites hold n_sites numbers, by jaxns
    (numpyro.contrib.nested_sampling), stopping when the live points hold < 1e-4 of Z."""
    try:
        from numpyro.contrib.nested_sampling import NestedSampler
    except ImportError as exc:
        raise ConfigError(f"evidence needs jaxns 2.6: {install_hint('evidence')} ({exc})") from None
    logging.getLogger().setLevel(logging.WARNING)  # importing jaxns set the root logger to INFO, for every library
    sampler = NestedSampler(model, constructor_kwargs={"num_live_points": live_points or 25 * n_sites,
                                                       "max_samples": max_samples})
    _interruptible(sampler.run, jax.random.PRNGKey(seed), *args)
    r = sampler._results  # numpyro keeps jaxns's results here (no public accessor)
    return Evidence(float(r.log_Z_mean), float(r.log_Z_uncert), int(r.total_num_likelihood_evaluations),
                    float(r.ESS), bool(int(r.termination_reason) & MAX_SAMPLES_REACHED))


def _interruptible(function, *args):
    """function(*args) in a worker thread, the main thread waiting in short steps: jaxns runs the
    whole sampler as one XLA call, during which the main thread would not see Ctrl-C or SIGTERM.
    On KeyboardInterrupt the (daemon) worker is abandoned; nothing has been written yet."""
    outcome = {}

    def work():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def corona_evidence(setup: Setup, cfg: EvidenceConfig) -> Evidence:
    """log Z of a run configuration's posterior (priors and data)."""
    n_sites = sum(int(np.prod(d.shape())) for d in site_distributions(setup.problem).values())
    return log_evidence(corona_model, (setup.problem,), n_sites, cfg.live_points, cfg.max_samples, cfg.seed)


def bayes_factor(reference: Evidence, other: Evidence):
    """(ln B, its error) of other over reference."""
    return other.log_Z - reference.log_Z, float(np.hypot(other.error, reference.error))


def evidence_table(names, results):
    """One row per configuration: ln Z, its error, and ln B against the first with its error."""
    import pandas as pd

    rows = {}
    for i, (name, r) in enumerate(zip(names, results)):
        ln_B, error = bayes_factor(results[0], r) if i else (0.0, 0.0)
        rows[name] = {"ln_Z": r.log_Z, "ln_Z_error": r.error, "ln_B_vs_first": ln_B, "ln_B_error": error,
                      "likelihood_evaluations": r.likelihood_evaluations, "effective_samples": r.effective_samples,
                      "max_samples_reached": r.max_samples_reached}
    return pd.DataFrame.from_dict(rows, orient="index")
