"""Speed of the forward model with the Milky Way sky: transport + emissivity + lines of sight.

Run: python benchmarks/milky_way.py [--resolution default] [--repeat 20]
Prints a markdown table for benchmarks/RESULTS.md (targets, issue 3: forward < 0.3 s,
value and gradient < 1.5 s on a 2-core CPU).
"""

import os
import sys
import platform
import time

import jax
import jax.numpy as jnp

from corona_jax import forward, grids, milky_way, params, sky, transport
from corona_jax.model import build_model
from corona_jax.gas import gas_density_cells
from corona_jax.interactions import emissivity

sys.path.insert(0, os.path.dirname(__file__))
from timing import arguments, best_of  # noqa: E402


def icecube_band_log_flux(p, model):
    """A fit-like scalar: ln of the per-flavour neutrino energy flux over 100 TeV - 1 PeV (sky mean)."""
    mw = forward.forward(p, model).milky_way
    E = model.milky_way.E_secondary_GeV
    band = (E >= 1.0e5) & (E <= 1.0e6)
    return jnp.log(jnp.sum(jnp.where(band, E * mw.sky_mean_nu_all_flavour, 0.0)))


def main():
    args = arguments(__doc__.splitlines()[0])
    res = grids.resolution(args.resolution)
    p = jax.tree.map(jnp.asarray, params.preset("baseline"))
    t0 = time.perf_counter()
    model = build_model(resolution=res)
    t_build = time.perf_counter() - t0
    tm, mw = model.transport, model.milky_way
    G = jax.jit(transport.unit_spectrum_density)(p, tm)
    n_gas = gas_density_cells(p, tm.faces_kpc, tm.centres_kpc)

    @jax.jit
    def emissivities(p, G):
        j = milky_way.proton_density_on_table_grid(p, mw, tm, G)
        return emissivity(n_gas, mw.emission_gamma[0], j), emissivity(n_gas, mw.emission_nu_all[0], j)

    q_gamma, q_nu = emissivities(p, G)

    @jax.jit
    def lines_of_sight(q_gamma, q_nu):
        return (sky.intensity(mw.path_gamma_kpc, q_gamma), sky.intensity(mw.path_nu_kpc, q_nu),
                sky.sky_average(mw.sky_mean_gamma_kpc, q_gamma), sky.sky_average(mw.sky_first_gamma_kpc, q_gamma))

    solve = jax.jit(transport.unit_spectrum_density)
    run = jax.jit(forward.forward)
    value_and_grad = jax.jit(jax.value_and_grad(icecube_band_log_flux))
    rows = [
        ("model build (tables, absorption, line-of-sight and redshift matrices; numpy, once)", (t_build, t_build)),
        ("transport solve alone", best_of(lambda: solve(p, tm), args.repeat)),
        ("emissivity q = n_g K @ j, gamma + neutrinos", best_of(lambda: emissivities(p, G), args.repeat)),
        ("lines of sight: I(psi, E), sky mean, dipole moment", best_of(lambda: lines_of_sight(q_gamma, q_nu), args.repeat)),
        ("forward: transport + Milky Way + other galaxies", best_of(lambda: run(p, model), args.repeat)),
        ("value and gradient (11 parameters) of the IceCube-band flux",
         best_of(lambda: value_and_grad(p, model), args.repeat)),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} x {jax.devices()[0].platform}, "
          f"jax {jax.__version__}; resolution {args.resolution}: {tm.E_GeV.shape[0]} proton energies, "
          f"{mw.E_table_GeV.shape[0]} in the emissivity integral, {mw.E_secondary_GeV.shape[0]} gamma/nu "
          f"energies, {tm.centres_kpc.shape[0]} cells, {mw.psi_rad.shape[0]} directions, {res.n_t} steps\n")
    print("| part | best [ms] | median [ms] |")
    print("|---|---|---|")
    for name, (best, median) in rows:
        print(f"| {name} | {best * 1e3:.1f} | {median * 1e3:.1f} |")


if __name__ == "__main__":
    main()
