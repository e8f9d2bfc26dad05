"""The evidence that checks itself (inference.modes, inference.evidence) on problems whose evidence is
known: a two-mode likelihood in closed form, and a model whose evidence factorises exactly into
two independent parts (as the IGRB comparison's does)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jaxns")

import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from scipy import stats  # noqa: E402

from corona_jax.inference import evidence, modes  # noqa: E402

HALF_WIDTH = 5.0  # x ~ U(-5, 5)^2
MEANS = np.array([[-2.0, 1.0], [2.5, -1.0]])
WIDTHS = np.array([0.3, 0.6])
WEIGHTS = np.array([0.3, 0.7])


def two_modes():
    x = numpyro.sample("x", dist.Uniform(-HALF_WIDTH * jnp.ones(2), HALF_WIDTH).to_event(1))
    parts = [jnp.log(w) + jnp.sum(dist.Normal(m, s).log_prob(x)) for m, s, w in zip(MEANS, WIDTHS, WEIGHTS)]
    numpyro.factor("likelihood", jax.scipy.special.logsumexp(jnp.stack(parts)))


def two_modes_exact():
    """ln Z: each normalised Gaussian's mass inside the prior box, over the box's area."""
    inside = [w * np.prod(stats.norm.cdf((HALF_WIDTH - m) / s) - stats.norm.cdf((-HALF_WIDTH - m) / s))
              for m, s, w in zip(MEANS, WIDTHS, WEIGHTS)]
    return float(np.log(np.sum(inside) / (2 * HALF_WIDTH) ** 2))


def u_mode(mean, width):
    """The mode, in x, of one Gaussian's potential in the unconstrained coordinate of U(-5, 5): the
    logit map's Jacobian (5 + x)(5 - x) pulls it toward the middle, -(x - m)/s^2 + 1/(5 + x) - 1/(5 - x) = 0."""
    from scipy.optimize import brentq

    slope = lambda x: -(x - mean) / width ** 2 + 1 / (HALF_WIDTH + x) - 1 / (HALF_WIDTH - x)  # noqa: E731
    return brentq(slope, -HALF_WIDTH + 1e-9, HALF_WIDTH - 1e-9)


def settings(**changes):
    values = dict(run=None, live_points=300, max_samples=200_000, seed=0, starts=32, max_steps=200,
                  importance_samples=20_000)
    return evidence.EvidenceConfig(**{**values, **changes})


def test_the_mode_search_finds_both_modes_and_their_laplace_evidence():
    flat = modes.FlatModel.of(two_modes, ())
    assert flat.names == ("x",) and flat.size == 2
    search = modes.find_modes(flat.potential, (), flat.draw_prior(jax.random.PRNGKey(0), 32), max_steps=200)
    assert len(search.modes) == 2 and all(m.positive_definite for m in search.modes)
    found = np.asarray([np.asarray(flat.constrained(jnp.asarray(m.u))["x"]) for m in search.modes])
    assert sorted(found[:, 0]) == pytest.approx(sorted(u_mode(m[0], s) for m, s in zip(MEANS, WIDTHS)), abs=1e-4)
    assert search.modes[0].starts + search.modes[1].starts == search.converged == 32
    # each mode's Laplace value against its Gaussian's exact share (the logit map bends it a little:
    # the test below shows the error vanishing with the width)
    for m in search.modes:
        k = int(np.argmin(np.abs(MEANS[:, 0] - float(flat.constrained(jnp.asarray(m.u))["x"][0]))))
        exact = np.log(WEIGHTS[k] / (2 * HALF_WIDTH) ** 2)
        assert m.log_Z_laplace == pytest.approx(exact, abs=0.1)
    assert search.log_Z_laplace == pytest.approx(two_modes_exact(), abs=0.1)


def test_the_laplace_error_vanishes_as_the_posterior_narrows():
    """One Gaussian of width s inside U(-5, 5)^2: the Laplace evidence in the unconstrained
    coordinates converges to the exact one as s -> 0, its error falling like s^2."""
    errors = []
    for width in (0.8, 0.4, 0.2, 0.1):
        def model():
            x = numpyro.sample("x", dist.Uniform(-HALF_WIDTH * jnp.ones(2), HALF_WIDTH).to_event(1))
            numpyro.factor("likelihood", jnp.sum(dist.Normal(jnp.asarray([1.0, -2.0]), width).log_prob(x)))

        flat = modes.FlatModel.of(model, ())
        search = modes.find_modes(flat.potential, (), flat.draw_prior(jax.random.PRNGKey(1), 4), max_steps=200)
        assert len(search.modes) == 1
        errors.append(abs(search.log_Z_laplace - np.log(1 / (2 * HALF_WIDTH) ** 2)))
    ratios = np.asarray(errors[:-1]) / np.asarray(errors[1:])
    assert np.all((ratios > 3) & (ratios < 5)), errors
    assert errors[-1] < 2e-3


def test_checked_evidence_of_two_modes_equals_the_closed_form():
    result = evidence.checked_evidence(two_modes, (), settings(), progress=lambda line: None)
    exact = two_modes_exact()
    assert result.method == "importance sampling" and result.importance.pareto_k < 0.7
    assert abs(result.importance.log_Z - exact) < 3 * result.importance.error < 0.05
    assert abs(result.nested.log_Z - exact) < 3 * result.nested.error
    assert result.findings == ()


def test_a_mode_that_nested_sampling_missed_is_found_and_named():
    """A narrow, deep mode in a corner, with 1 % of the prior draining to it: 10 live points miss most
    of it, the search finds it, the check names both the disagreement and the live points that
    would catch the mode, and importance sampling reports the closed-form evidence."""
    def needle():
        x = numpyro.sample("x", dist.Uniform(-HALF_WIDTH * jnp.ones(2), HALF_WIDTH).to_event(1))
        wide = jnp.sum(dist.Normal(0.0, 1.0).log_prob(x))
        narrow = jnp.log(1e4) + jnp.sum(dist.Normal(jnp.asarray([4.5, -4.5]), 0.05).log_prob(x))
        numpyro.factor("likelihood", jnp.logaddexp(wide, narrow))

    exact = np.log((1.0 + 1e4) / 100.0)  # both Gaussians lie inside the prior box (to 1e-6)
    result = evidence.checked_evidence(needle, (), settings(live_points=10, starts=1024), progress=lambda line: None)
    assert result.nested.log_Z < exact - 5  # nested sampling missed most of the needle
    assert len(result.search.modes) == 2 and 0.005 < result.search.prior_shares()[0] < 0.03
    assert any("disagree" in line for line in result.findings)
    assert any(line.startswith("mode 0 holds 100% of the Laplace evidence") for line in result.findings)
    assert result.method == "importance sampling"
    assert abs(result.log_Z - exact) < 3 * result.error < 0.05


def test_a_mode_beyond_every_nested_sample_leaves_only_laplace():
    """The decision rule: nested sampling whose samples never reached the deepest mode's ln L is not
    reported; with importance sampling unreliable too, Laplace is, with no error."""
    search = modes.ModeSearch([modes.Mode(np.zeros(1), 1.0, np.eye(1), 8, True, -3.0)], 8, 8, np.zeros(8, int))
    nested = evidence.Evidence(-10.0, 0.2, 1000, 50.0, False, 2.0, -6.0, 100)
    importance = modes.Importance(-3.5, 0.5, 12.0, 0.9, 1000)
    result = evidence.check(nested, search, importance, mode_log_L=-1.0)
    assert result.method == "Laplace" and result.log_Z == -3.0 and np.isnan(result.error)
    assert result.findings[0] == ("nested sampling never reached the deepest mode's peak: ln L = -1.00 there, at most "
                                  "-6.00 in its samples")
    assert "importance sampling is unreliable: PSIS k-hat = 0.90, ESS = 12" in result.findings
    with pytest.warns(DeprecationWarning, match="use Check.nested.likelihood_evaluations"):
        assert result.likelihood_evaluations == 1000  # the field of the Evidence that was returned before 0.2.1


def test_the_evidence_of_independent_parts_is_the_sum_of_theirs():
    """Z(A and B) = Z(A) Z(B) when A and B share no parameter and no datum: the identity holds for the
    reported estimates, within their stated errors, for non-Gaussian likelihoods."""
    y_a = np.array([1.3, 1.1, 1.6])
    y_b = np.array([0.2, -0.4])

    def part_a():
        t = numpyro.sample("t", dist.Uniform(0.0, 3.0))
        numpyro.factor("a", jnp.sum(dist.Normal(jnp.sin(t) + 0.2 * t ** 2, 0.3).log_prob(y_a)))

    def part_b():
        s = numpyro.sample("s", dist.Normal(0.0, 2.0))
        r = numpyro.sample("r", dist.Uniform(0.1, 2.0))
        numpyro.factor("b", jnp.sum(dist.StudentT(3.0, s, r).log_prob(y_b)))

    def both():
        part_a()
        part_b()

    a, b, ab = (evidence.checked_evidence(m, (), settings(), progress=lambda line: None) for m in (part_a, part_b, both))
    for r in (a, b, ab):
        assert r.method == "importance sampling", r.findings
    error = np.sqrt(a.error ** 2 + b.error ** 2 + ab.error ** 2)
    assert abs(ab.log_Z - (a.log_Z + b.log_Z)) < 3 * error < 0.05
    nested_error = np.sqrt(a.nested.error ** 2 + b.nested.error ** 2 + ab.nested.error ** 2)
    assert abs(ab.nested.log_Z - (a.nested.log_Z + b.nested.log_Z)) < 3 * nested_error


SHARDED_SEARCH = """
import json, jax, numpy as np
from corona_jax.inference import modes
import test_evidence as t
flat = modes.FlatModel.of(t.two_modes, ())
search = modes.find_modes(flat.potential, (), flat.draw_prior(jax.random.PRNGKey(0), 30), max_steps=200, chunk=8)
weights = modes.importance_evidence(flat, (), search.modes, 5000, jax.random.PRNGKey(1), chunk=96)
print(json.dumps({"devices": jax.device_count(), "u": [list(map(float, m.u)) for m in search.modes],
                  "starts": [m.starts for m in search.modes], "ln_Z": weights.log_Z}))
"""


@pytest.mark.slow
def test_the_mode_search_and_importance_sampling_sharded_over_four_devices_agree_with_one():
    """The batched search and importance evaluation shard each chunk's rows over the devices
    (fit.in_chunks); with 4 emulated host devices, and chunks that do not divide the rows, the
    modes, their start counts and ln Z equal the single-device run's."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    runs = {}
    for devices in (1, 4):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_ENABLE_X64": "1",
               "PYTHONPATH": str(root / "tests")}
        done = subprocess.run([sys.executable, "-c", SHARDED_SEARCH], env=env, cwd=root, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[devices] = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs[4]["devices"] == 4 and runs[1]["devices"] == 1
    assert runs[4]["starts"] == runs[1]["starts"] and len(runs[4]["u"]) == 2
    np.testing.assert_allclose(runs[4]["u"], runs[1]["u"], atol=1e-8)
    assert runs[4]["ln_Z"] == pytest.approx(runs[1]["ln_Z"], abs=1e-8)
