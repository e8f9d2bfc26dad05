"""The dependencies as installed against pyproject.toml's bounds, and the parts of the ArviZ and
jaxns APIs that the code relies on (docs/architecture.md, "Dependencies")."""
import importlib.metadata
import pathlib
import tomllib

import numpy as np
import pytest
from packaging.requirements import Requirement

PYPROJECT = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"


def declared_requirements():
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    lines = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [r for r in map(Requirement, lines) if r.name != project["name"]]


def test_every_installed_dependency_is_within_its_declared_bounds():
    outside = []
    for requirement in declared_requirements():
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra that this environment does not install
        if not requirement.specifier.contains(version, prereleases=True):
            outside.append(f"{requirement.name} {version} (declared {requirement.specifier})")
    assert not outside, outside


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")  # random draws, not a posterior
def test_the_arviz_api_the_code_uses(tmp_path):
    """What inference/sample.py, goodness.py, modes.py and results.py and the sample command call:
    ArviZ 1 changed each of these, which is why pyproject.toml caps arviz below 1."""
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(0)
    idata = az.from_dict(posterior={"alpha": rng.normal(size=(2, 200))},
                         sample_stats={"diverging": np.zeros((2, 200), bool)},
                         posterior_predictive={"d": rng.normal(size=(2, 200, 3))},
                         observed_data={"d": np.zeros(3)}, constant_data={"d E_GeV": np.ones(3)},
                         dims={"d": ["d point"], "d E_GeV": ["d point"]})
    idata.posterior.attrs.update({"chains": 2})
    idata.add_groups(log_likelihood={"d": -0.5 * rng.normal(size=(2, 200, 3)) ** 2},
                     dims={"d": ["d measured point"]})
    loo = az.loo(idata, var_name="d", pointwise=True)
    assert np.isfinite([loo.elpd_loo, loo.se, loo.p_loo]).all() and np.shape(loo.pareto_k) == (3,)
    _, k_hat = az.psislw(rng.normal(size=1000))
    assert np.isfinite(k_hat)
    table = az.summary(idata, var_names=["alpha"], hdi_prob=0.94)
    assert {"r_hat", "ess_bulk", "hdi_3%", "hdi_97%"} <= set(table.columns)
    path = str(tmp_path / "posterior.nc")
    idata.to_netcdf(path)
    back = az.from_netcdf(path)
    np.testing.assert_array_equal(back.posterior["alpha"].values, idata.posterior["alpha"].values)
    assert back.posterior.attrs["chains"] == 2 and sum(group.nbytes for group in back.values()) > 0


def test_numpyro_nested_sampling_imports_with_the_installed_jaxns():
    pytest.importorskip("jaxns")
    from numpyro.contrib.nested_sampling import NestedSampler

    assert callable(NestedSampler)
