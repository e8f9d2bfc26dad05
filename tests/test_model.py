"""The one model object: its configuration reaches the output files, it is a pytree that jit
traces (no recompilation for new arrays of the same shapes), and the core runs without the
inference subpackage."""

import dataclasses
import subprocess
import sys
import textwrap

import h5py
import jax
import numpy as np
import pytest

from corona_jax import ConfigError, cosmology, forward, grids, output, params, transport
from corona_jax.drivers import run_forward, xi_report
from corona_jax.model import CoronaModel, ModelConfig, build_model

BASELINE = params.preset("baseline")


def test_output_records_the_configuration_the_model_was_built_with(tmp_path):
    cosmo = cosmology.Cosmology(H0_km_s_Mpc=70.0, Omega_M=0.3, Omega_L=0.7, z_max=4.0)
    coarse = grids.resolution("coarse")
    model = build_model(resolution=coarse, observer_kpc=8.2, cosmology=cosmo, cascade=False, history="constant")
    result = run_forward(BASELINE, model, normalisation="luminosity")
    path = output.write_forward(str(tmp_path / "r.h5"), result, xi=xi_report(result))
    with h5py.File(path) as f:
        assert f.attrs["observer_kpc"] == 8.2 and f["milky_way"].attrs["observer_kpc"] == 8.2
        assert f.attrs["history"] == "constant" and f.attrs["cascade"] == 0
        assert f.attrs["cascade_table"] == "none"
        for key, value in cosmo._asdict().items():
            assert f.attrs[f"cosmology_{key}"] == value
            assert f["extragalactic"].attrs[f"cosmology_{key}"] == value
        for key, value in dataclasses.asdict(coarse).items():
            assert f.attrs[f"resolution_{key}"] == value, key
        assert "8.2 kpc" in f["cr/local_flux_per_GeV_cm2_s_sr"].attrs["description"]
        assert f["grids/E_GeV"].shape[0] == grids.energy_grid(coarse).size
        assert not np.any(f["extragalactic/gamma_cascade"][()])  # the cascade was off
    # the observer moved: the local flux is read at 8.2 kpc, not at the default 8.5
    default = run_forward(BASELINE, build_model(resolution=coarse, cosmology=cosmo, cascade=False, history="constant"),
                          normalisation="luminosity")
    assert not np.allclose(default.cosmic_rays.local_flux_per_GeV_cm2_s_sr,
                           result.cosmic_rays.local_flux_per_GeV_cm2_s_sr, rtol=1e-3)


def test_bad_model_options_are_one_clear_error():
    with pytest.raises(ConfigError, match="observer_kpc"):
        build_model(resolution="coarse", observer_kpc=-1.0)
    with pytest.raises(ConfigError, match="unknown model option"):
        build_model(resolution="coarse", obsrever_kpc=8.0)
    with pytest.raises(ConfigError, match="unknown resolution"):
        build_model(resolution="medium")
    with pytest.raises(ConfigError, match="unknown adjoint"):
        build_model(resolution="coarse", adjoint="discrete")


def test_model_is_a_pytree_and_jit_traces_its_arrays(coarse_forward_model):
    leaves, tree = jax.tree_util.tree_flatten(coarse_forward_model)
    assert all(isinstance(x, jax.Array) for x in leaves)
    f = jax.jit(forward.forward)
    a = f(BASELINE, coarse_forward_model)
    # another model of the same shapes and configuration: other arrays, the same compiled code
    shifted = jax.tree_util.tree_unflatten(tree, [x * 1 for x in leaves])
    b = f(BASELINE, shifted)
    assert f._cache_size() == 1
    np.testing.assert_allclose(a.total.gamma, b.total.gamma, rtol=1e-12)
    # the configuration is static: another adjoint is another compilation
    f(BASELINE, coarse_forward_model.with_adjoint(transport.AutodiffAdjoint()))
    assert f._cache_size() == 2
    assert isinstance(coarse_forward_model, CoronaModel) and coarse_forward_model.config == ModelConfig(
        resolution=grids.resolution("coarse"))


def test_the_core_runs_with_inference_unimportable(tmp_path):
    code = textwrap.dedent(f"""
        import sys, importlib.abc

        class NoInference(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "corona_jax.inference" or name.startswith("corona_jax.inference."):
                    raise ImportError("inference is switched off in this test")

        sys.meta_path.insert(0, NoInference())
        from corona_jax import cli
        assert cli.main(["forward", "--resolution", "coarse", "--out", {str(tmp_path / "r.h5")!r}]) == 0
        assert cli.main(["transport", "--resolution", "coarse", "--out", {str(tmp_path / "t.h5")!r}]) == 0
        assert not any(m.startswith("corona_jax.inference") for m in sys.modules)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_with_history_rebuilds_only_the_transport_stage(coarse_forward_model):
    fast = coarse_forward_model.with_history("constant")
    built = build_model(resolution="coarse", history="constant")
    assert fast.config == built.config
    for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(built)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert fast.milky_way is coarse_forward_model.milky_way  # shared, not rebuilt


def test_cosmic_rays_at_another_source_power_equal_a_new_solve(coarse_forward_model):
    from corona_jax.drivers import at_source_power, run_cosmic_rays

    fast = params.preset("fast-diffusion")
    cr = run_cosmic_rays(fast, coarse_forward_model, "luminosity")
    scaled = at_source_power(cr, 39.7)
    solved = run_cosmic_rays(fast._replace(log10_LCR_erg_s=39.7), coarse_forward_model, "luminosity")
    for field in ("j_per_GeV_cm3", "local_flux_per_GeV_cm2_s_sr", "LCR_kinetic_erg_s"):
        np.testing.assert_allclose(getattr(scaled, field), getattr(solved, field), rtol=1e-12, err_msg=field)
    assert scaled.params == solved.params


def test_the_names_removed_in_0_2_still_work_with_a_warning_naming_the_replacement(coarse_forward_model):
    """Older scripts: forward.build_forward_model(res) and model.E_secondary_GeV."""
    from corona_jax import forward, grids

    with pytest.warns(DeprecationWarning, match="use corona_jax.model.build_model"):
        old = forward.build_forward_model(grids.resolution("coarse"))
    with pytest.warns(DeprecationWarning, match="model.milky_way.E_secondary_GeV"):
        E = old.E_secondary_GeV
    np.testing.assert_array_equal(E, coarse_forward_model.milky_way.E_secondary_GeV)
    assert old.config.describe() == coarse_forward_model.config.describe()
