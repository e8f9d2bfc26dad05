"""`corona-jax evidence`: Bayesian evidence by nested sampling (jaxns through numpyro.contrib),
checked by a multi-start mode search, Laplace and importance sampling (inference.modes), and
Bayes factors between run configurations.

An evidence configuration is a run configuration (inference.config) plus

[evidence]  live_points (default 25 per free site), max_samples (default 100000), seed,
            starts (L-BFGS starts from prior draws, default 64), max_steps (per start, default 300),
            importance_samples (default 20000)

The evidence Z is the likelihood averaged over the prior, so it depends on the priors' ranges:
compare configurations whose shared parameters have the same priors. The Bayes factor of
configuration B over A is Z_B / Z_A, from each run's most reliable estimate (`check`); its log
error is the two errors in quadrature.
"""

import dataclasses
import logging
import threading
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from corona_jax.errors import ConfigError, install_hint

from .config import (_SECTIONS, RunConfig, _check_keys, _seed, _table, parse_run_sections, positive_integers, read_text,
                     read_toml)
from .model import Setup, corona_model
from .modes import FlatModel, Importance, ModeSearch, find_modes, importance_evidence

MAX_SAMPLES_REACHED = 1  # bit 0 of jaxns's termination reason
POSTERIOR_DRAWS = 400  # nested sampling's posterior draws handed to the importance proposal


@dataclasses.dataclass(frozen=True)
class EvidenceConfig:
    run: RunConfig
    live_points: int = 0  # 0: 25 per free site (numpyro's default)
    max_samples: int = 100_000
    seed: int = 0
    starts: int = 64
    max_steps: int = 300
    importance_samples: int = 20_000


def parse_evidence_config(text: str, source: str = "config") -> EvidenceConfig:
    raw = read_toml(text, source, {*_SECTIONS, "evidence"})
    settings = _table(raw.pop("evidence", {}), "[evidence]")
    run = parse_run_sections(raw, source)
    integers = ("live_points", "max_samples", "starts", "max_steps", "importance_samples")
    _check_keys(settings, {*integers, "seed"}, "evidence")
    values = positive_integers(settings, integers, "evidence")
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
    information_nats: float  # H = E_post[ln L] - ln Z: the prior-to-posterior compression
    max_log_L: float  # the highest ln L any sample reached
    live_points: int
    posterior_draws: dict = None  # site -> (POSTERIOR_DRAWS, ...) resampled from the weighted samples



def log_evidence(model, args, n_sites, live_points=0, max_samples=100_000, seed=0) -> Evidence:
    """log Z of a numpyro model(*args) whose latent sites hold n_sites numbers, by jaxns
    (numpyro.contrib.nested_sampling), stopping when the live points hold < 1e-4 of Z."""
    try:
        from numpyro.contrib.nested_sampling import NestedSampler
    except ImportError as exc:
        raise ConfigError(f"evidence needs jaxns 2.6: {install_hint('evidence')} ({exc})") from None
    logging.getLogger().setLevel(logging.WARNING)  # importing jaxns set the root logger to INFO, for every library
    live_points = live_points or 25 * n_sites
    sampler = NestedSampler(model, constructor_kwargs={"num_live_points": live_points, "max_samples": max_samples})
    _interruptible(sampler.run, jax.random.PRNGKey(seed), *args)
    r = sampler._results  # numpyro keeps jaxns's results here (no public accessor)
    n = int(r.total_num_samples)
    log_L, log_dp = np.asarray(r.log_L_samples)[:n], np.asarray(r.log_dp_mean)[:n]
    weights = np.exp(log_dp - logsumexp(log_dp))
    information = float(np.sum(weights * np.where(weights > 0, log_L, 0.0)) - float(r.log_Z_mean))
    return Evidence(float(r.log_Z_mean), float(r.log_Z_uncert), int(r.total_num_likelihood_evaluations),
                    float(r.ESS), bool(int(r.termination_reason) & MAX_SAMPLES_REACHED), information,
                    float(np.max(log_L)), live_points,
                    sampler.get_samples(jax.random.PRNGKey(seed + 1), POSTERIOR_DRAWS))


TARGET_ERROR = 0.5  # nats on each ln Z: ln B then to +-0.7, finer than Jeffreys' steps of 1 nat


def live_points_needed(information_nats, error=TARGET_ERROR):
    """Live points for a nested-sampling error of `error` on ln Z: sqrt(H / n_live) = error."""
    return int(np.ceil(information_nats / error ** 2))


class Check(NamedTuple):
    """One configuration's evidence by three methods, and which is reported."""

    nested: Evidence
    search: ModeSearch
    importance: Importance
    log_Z: float  # the reported (most reliable) estimate
    error: float
    method: str  # 'importance sampling' | 'nested sampling' | 'Laplace'
    findings: tuple  # one line each: disagreements, a missed mode, too few live points
    mode_log_L: float  # ln L at the deepest mode

    # corona_evidence returned nested sampling's Evidence before 0.2.1; its other fields live on
    @property
    def likelihood_evaluations(self):
        return _deprecated(self, "likelihood_evaluations")

    @property
    def effective_samples(self):
        return _deprecated(self, "effective_samples")

    @property
    def max_samples_reached(self):
        return _deprecated(self, "max_samples_reached")


def _deprecated(check: "Check", name: str):
    """Check.<name>: deprecated since 0.2.1, to be removed in 0.3; Check.nested.<name>."""
    warnings.warn(f"Check.{name} is deprecated: use Check.nested.{name} (nested sampling's)", DeprecationWarning,
                  stacklevel=3)
    return getattr(check.nested, name)


def check(nested: Evidence, search: ModeSearch, importance: Importance, mode_log_L: float, sigmas=3.0,
          laplace_tolerance=1.0) -> Check:
    """Compare nested sampling, Laplace and importance sampling; report the most reliable.

    Importance sampling is reported when PSIS k-hat <= 0.7 and its ESS >= 100 (its proposal then
    covers the posterior, every mode the search found included); otherwise nested sampling, unless
    the search found a mode that nested sampling never reached, when only Laplace is left (its error
    unknown: nan). Disagreements beyond `sigmas` combined errors (Laplace: beyond
    laplace_tolerance nats, as it has no error of its own) are each one line in findings."""
    findings = []
    reliable_is = importance.pareto_k <= 0.7 and importance.effective_samples >= 100
    missed = mode_log_L > nested.max_log_L + 1.0
    if missed:
        findings.append(f"nested sampling never reached the deepest mode's peak: ln L = {mode_log_L:.2f} there, at most "
                        f"{nested.max_log_L:.2f} in its samples")
    if not reliable_is:
        findings.append(f"importance sampling is unreliable: PSIS k-hat = {importance.pareto_k:.2f}, ESS = "
                        f"{importance.effective_samples:.0f}")
    difference = importance.log_Z - nested.log_Z
    combined = float(np.hypot(importance.error, nested.error))
    if abs(difference) > sigmas * combined:
        findings.append(f"nested sampling ({nested.log_Z:.2f} +- {nested.error:.2f}) and importance sampling "
                        f"({importance.log_Z:.2f} +- {importance.error:.2f}) disagree by {abs(difference) / combined:.1f} "
                        "combined errors")
    if reliable_is:
        log_Z, error, method = importance.log_Z, importance.error, "importance sampling"
    elif not missed:
        log_Z, error, method = nested.log_Z, nested.error, "nested sampling"
    else:
        log_Z, error, method = search.log_Z_laplace, float("nan"), "Laplace"
    if abs(search.log_Z_laplace - log_Z) > max(laplace_tolerance, sigmas * (error if np.isfinite(error) else 0)):
        findings.append(f"Laplace ({search.log_Z_laplace:.2f}, summed over {len(search.modes)} modes) differs from "
                        f"{method} ({log_Z:.2f}) by more than {laplace_tolerance:g} nat: the posterior is not Gaussian "
                        "in the unconstrained coordinates")
    shares = search.prior_shares()
    posterior_shares = _posterior_shares(search)
    for k, (mode, f, p) in enumerate(zip(search.modes, shares, posterior_shares)):
        if p >= 0.01 and nested.live_points * f < 10:
            findings.append(f"mode {k} holds {p:.0%} of the Laplace evidence but only {f:.1%} of the prior drains to "
                            f"it: {nested.live_points} live points put {nested.live_points * f:.1f} there; "
                            f"live_points >= {int(np.ceil(10 / max(f, 1e-12)))} would catch it")
    needed = live_points_needed(nested.information_nats)
    if needed > nested.live_points:
        findings.append(f"the information H = {nested.information_nats:.1f} nats needs {needed} live points for "
                        f"+-{TARGET_ERROR} on ln Z (sqrt(H / n_live)); {nested.live_points} were used")
    return Check(nested, search, importance, log_Z, error, method, tuple(findings), mode_log_L)


def _posterior_shares(search: ModeSearch) -> np.ndarray:
    """Each mode's share of the summed Laplace evidence (0 for a mode without one)."""
    values = np.asarray([m.log_Z_laplace if m.positive_definite else -np.inf for m in search.modes])
    if not np.isfinite(values).any():
        return np.zeros(len(values))
    return np.exp(values - logsumexp(values))


def checked_evidence(model, args, cfg: "EvidenceConfig", progress=print) -> Check:
    """Nested sampling of model(*args), then the multi-start search, Laplace at each mode and the
    defensive importance sampling, and their comparison (check)."""
    flat = FlatModel.of(model, args)
    progress(f"  nested sampling (jaxns, {cfg.live_points or 25 * flat.size} live points) ...")
    nested = log_evidence(model, args, flat.size, cfg.live_points, cfg.max_samples, cfg.seed)
    progress(f"  ln Z = {nested.log_Z:.3f} +- {nested.error:.3f} by nested sampling ({nested.likelihood_evaluations} "
             f"likelihood evaluations; H = {nested.information_nats:.1f} nats)")
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1)
    search_key, importance_key = jax.random.split(key)
    progress(f"  mode search: {cfg.starts} L-BFGS starts from the prior ...")
    search = find_modes(flat.potential, args, flat.draw_prior(search_key, cfg.starts), cfg.max_steps)
    progress(f"  {len(search.modes)} distinct mode(s); {search.agreeing} of {cfg.starts} starts reach the deepest, "
             f"{search.converged} converged; ln Z = {search.log_Z_laplace:.3f} by Laplace")
    draws = {k: v for k, v in nested.posterior_draws.items() if k in flat.names}
    importance = importance_evidence(flat, args, search.modes, cfg.importance_samples, importance_key,
                                     posterior_draws=flat.unconstrained(draws))
    progress(f"  ln Z = {importance.log_Z:.3f} +- {importance.error:.3f} by importance sampling (ESS "
             f"{importance.effective_samples:.0f} of {importance.samples}, PSIS k-hat {importance.pareto_k:.2f})")
    mode_log_L = float(flat.log_likelihood(jnp.asarray(search.modes[0].u), *args)) if search.modes else -np.inf
    return check(nested, search, importance, mode_log_L)


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


def corona_evidence(setup: Setup, cfg: EvidenceConfig, progress=print) -> Check:
    """The checked evidence of a run configuration's posterior (priors and data)."""
    return checked_evidence(corona_model, (setup.problem,), cfg, progress)


def bayes_factor(reference: Check, other: Check):
    """(ln B, its error) of other over reference, from each one's reported estimate."""
    return other.log_Z - reference.log_Z, float(np.hypot(other.error, reference.error))


def evidence_table(names, results):
    """One row per configuration: the reported ln Z (and its method) with ln B against the first,
    then each method's estimate and its diagnostics."""
    import pandas as pd

    rows = {}
    for i, (name, r) in enumerate(zip(names, results)):
        ln_B, error = bayes_factor(results[0], r) if i else (0.0, 0.0)
        n, s, m = r.nested, r.search, r.importance
        rows[name] = {
            "ln_Z": r.log_Z, "ln_Z_error": r.error, "ln_Z_method": r.method, "ln_B_vs_first": ln_B, "ln_B_error": error,
            "ln_Z_nested": n.log_Z, "ln_Z_nested_error": n.error, "ln_Z_importance": m.log_Z,
            "ln_Z_importance_error": m.error, "ln_Z_laplace": s.log_Z_laplace,
            "importance_ess": m.effective_samples, "importance_pareto_k": m.pareto_k, "importance_samples": m.samples,
            "modes": len(s.modes), "starts": s.starts, "starts_at_deepest_mode": s.agreeing, "starts_converged": s.converged,
            "ln_L_deepest_mode": r.mode_log_L, "ln_L_max_nested": n.max_log_L, "information_nats": n.information_nats,
            "live_points": n.live_points, "live_points_needed": live_points_needed(n.information_nats),
            "likelihood_evaluations": n.likelihood_evaluations, "nested_effective_samples": n.effective_samples,
            "max_samples_reached": n.max_samples_reached, "findings": " | ".join(r.findings)}
    return pd.DataFrame.from_dict(rows, orient="index")
