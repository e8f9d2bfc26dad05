"""Other galaxies: the standard cascade case, the paper's neutrino claim, build and run times.

Run: python benchmarks/extragalactic.py
1. Standard case (for comparison with other codes): photons dN/dE ~ E^-2.4 up to 1e8 GeV,
   sources uniform in comoving volume at 0 < z < 4, Inoue et al. (2013) baseline EBL + CMB,
   H0 = 67.8 km/s/Mpc, Omega_L = 0.692, no magnetic field: observed flux with cascade over
   the flux without interactions at 1, 10, 100 GeV, 1 and 10 TeV; tau(1 TeV) at z = 0.1, 1.
2. The paper's presets: per-flavour neutrinos (Milky Way anticentre + other galaxies, and with
   the Milky Way's sky mean instead) over the IceCube HESE segments between 100 TeV and 1 PeV.
3. Times: building the cascade matrix, and what the other galaxies add to a forward evaluation.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from corona_jax import absorption, cascade, cosmology, extragalactic, forward, grids, params, tables
from corona_jax import observations as datasets
from corona_jax.drivers import run_forward, xi_report
from corona_jax.model import build_model

sys.path.insert(0, os.path.dirname(__file__))
from timing import best_of  # noqa: E402


def standard_case():
    cosmo = cosmology.Cosmology(H0_km_s_Mpc=67.8, Omega_M=0.308, Omega_L=0.692, z_max=4.0)
    E = grids.secondary_energy_grid(grids.resolution("default"))
    uniform = lambda z: np.full_like(np.asarray(z, dtype=float), 1.0e8)  # noqa: E731  (any constant)
    w = extragalactic.redshift_weights(E, cosmo, stellar_mass_density=uniform)
    spectrum = lambda Ez: np.where(Ez <= 1.0e8 * (1 + 1e-9), Ez**-2.4, 0.0)  # noqa: E731
    L = spectrum(E)
    t0 = time.perf_counter()
    C = cascade.cascade_matrix(E, cosmo, tables.load_ebl_table(), stellar_mass_density=uniform)
    build_s = time.perf_counter() - t0
    free = extragalactic.redshift_integral(w.nu, w.emitted_GeV, spectrum)
    absorbed = extragalactic.redshift_integral(w.gamma, w.emitted_GeV, spectrum)
    with_cascade = absorbed + C @ L
    print("### Standard case\n")
    print(f"cascade matrix built in {build_s:.1f} s ({cascade.PER_DECADE} nodes per decade, "
          f"{cascade.cascade_grid(cosmo.z_max).z.size - 1} redshift steps to z = 4)\n")
    print("| E [GeV] | absorbed / free | (absorbed + cascade) / free |")
    print("|---|---|---|")
    for e in (1.0, 10.0, 100.0, 1.0e3, 1.0e4):
        k = grids.nearest_index(E, e)
        print(f"| {E[k]:g} | {absorbed[k] / free[k]:.4f} | {with_cascade[k] / free[k]:.4f} |")
    t = tables.load_ebl_table()
    for z in (0.1, 1.0):
        ebl = absorption.tau_ebl([1.0e3], [z], t)[0, 0]
        cmb = absorption.tau_cmb([1.0e3], [z], cosmo)[0, 0]
        print(f"\ntau(1 TeV, z = {z}) = {ebl + cmb:.4g} (EBL {ebl:.4g}, CMB {cmb:.2g})", end="")
    print()


def neutrinos_against_icecube():
    res = grids.resolution("default")
    model = build_model(resolution=res)
    cr = [datasets.load_cosmic_ray_dataset(n) for n in datasets.DEFAULT_CR_DATASETS]
    hese = datasets.load_neutrino_dataset()
    band = (hese.E_GeV >= 1.0e5) & (hese.E_GeV <= 1.0e6) & ~hese.is_upper_limit
    E = np.asarray(model.milky_way.E_secondary_GeV)
    print("\n### Per-flavour neutrinos against IceCube HESE 7.5 yr, 100 TeV - 1 PeV segments\n")
    print("| preset | segment [GeV] | other galaxies | isotropic total (MW anticentre + galaxies) | MW sky mean + galaxies | xi (formula / full) |")
    print("|---|---|---|---|---|---|")
    for name in params.PRESETS:
        r = run_forward(params.preset(name), model, "data", cr)
        xi = xi_report(r)

        def at(values, e):
            return float(np.exp(np.interp(np.log(e), np.log(E), np.log(np.maximum(values, 1e-300)))) / 3)

        for e, f in zip(hese.E_GeV[band], hese.flux_per_GeV_cm2_s_sr[band]):
            other = at(r.extragalactic.nu_all_flavour, e)
            iso = at(r.total.nu_all_flavour, e)
            mean = at(r.milky_way.sky_mean_nu_all_flavour + r.extragalactic.nu_all_flavour, e)
            print(f"| {name} | {e:.3g} | {other / f:.3%} | {iso / f:.2%} | {mean / f:.2%} | "
                  f"{xi['xi_paper_formula']:.2f} / {xi['xi_full_model']:.2f} |")


def timings(repeat=20):
    res = grids.resolution("default")
    p = jax.tree.map(jnp.asarray, params.preset("baseline"))
    model = build_model(resolution=res)
    run = jax.jit(forward.forward)
    mw = run(p, model).milky_way
    other = jax.jit(extragalactic.extragalactic)

    def best(fn):
        return best_of(fn, repeat)[0] * 1e3

    print("\n### Time added by the other galaxies (default resolution, 2-core CPU)\n")
    print(f"| forward, whole model | {best(lambda: run(p, model)):.2f} ms |")
    print(f"| other galaxies alone (four precomputed matrices times the proton-gas integral) | "
          f"{best(lambda: other(model.extragalactic, mw.proton_gas_per_GeV_cm3)):.2f} ms |")


if __name__ == "__main__":
    standard_case()
    neutrinos_against_icecube()
    timings()
