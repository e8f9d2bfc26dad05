"""Regenerate the tables in data/tables: pp interactions (aafragpy), EBL optical depth
(ebltable) and the cascade matrices (corona_jax.cascade, from the EBL table; ~4 minutes on 2 cores),
and the alternatives of each for the systematics nuisances (docs/tables.md): pp from Kamae et al.
(2006) at all energies, the Saldana-Lopez et al. (2021) EBL and the cascade on it.

    pip install 'corona-jax[tables]' && python data/make_tables.py [--only NAME]

NAME: pp, ebl, cascade, pp-alternative, ebl-alternative, cascade-alternative. The cascade
tables are computed from the shipped EBL tables (data/tables), so regenerate an EBL table
before its cascade. After each alternative table the script prints its checks against the
shipped one (pp: energy moments of the secondaries; EBL: tau; cascade: cascade energy).

Deterministic: running it again reproduces the shipped file's arrays and attributes
exactly (tests/test_tables.py checks this when aafragpy is installed). The sha256 of each
table goes into SHA256SUMS beside it; the loaders refuse a table that does not match.
"""

import argparse
import functools
import os
import time

import numpy as np

from corona_jax import absorption, grids
from corona_jax import table_generation as gen
from corona_jax import tables
from corona_jax.cosmology import Cosmology


def _table(directory, name):
    """The table `name` in `directory` if it is there, else the shipped one."""
    path = os.path.join(directory, name)
    return path if os.path.isfile(path) else tables.default_table_path(name)


def check_pp_alternative(directory):
    """Print the alternative / shipped ratio of int E_s dsigma/dE_s dE_s at 10 GeV - 10 PeV."""
    alt = tables.load_pp_tables(_table(directory, tables.PP_ALTERNATIVE_TABLE_FILE))
    ref = tables.load_pp_tables(_table(directory, tables.PP_TABLE_FILE))
    E_p_GeV = (1.0e1, 1.0e3, 1.0e5, 1.0e7)
    print("  energy moment int E_s dsigma/dE_s dE_s, Kamae 2006 / AAfrag (shipped):")
    print("    E_p [GeV]  " + "  ".join(f"{E:9.0e}" for E in E_p_GeV))
    for name, ratio in gen.pp_energy_moment_ratios(alt, ref, E_p_GeV).items():
        print(f"    {name:9s}  " + "  ".join(f"{r:9.4f}" for r in ratio))


def check_ebl_alternative(directory):
    """Print tau_EBL of the alternative and of the shipped table at a few (E0, z)."""
    alt = tables.load_ebl_table(_table(directory, tables.EBL_ALTERNATIVE_TABLE_FILE))
    ref = tables.load_ebl_table(_table(directory, tables.EBL_TABLE_FILE))
    E0_GeV, z = np.array([1.0e2, 1.0e3, 1.0e4]), np.array([0.01, 0.1, 1.0])
    tau_alt, tau_ref = absorption.tau_ebl(E0_GeV, z, alt), absorption.tau_ebl(E0_GeV, z, ref)
    print(f"  tau_EBL: grid {alt.E0_GeV.size} E0 x {alt.z.size} z (shipped {ref.E0_GeV.size} x {ref.z.size}), "
          f"E0 {alt.E0_GeV[0]:g}-{alt.E0_GeV[-1]:g} GeV, z <= {alt.z[-1]:g}")
    for i, E in enumerate(E0_GeV):
        for j, zj in enumerate(z):
            print(f"    E0 = {E:7.0e} GeV, z = {zj:4.2f}: Saldana-Lopez {tau_alt[i, j]:10.4g}, "
                  f"Inoue {tau_ref[i, j]:10.4g}, ratio {tau_alt[i, j] / tau_ref[i, j]:.4f}")


def check_cascade_alternative(directory):
    """Print the ratio of the cascade energy flux (int E I_cascade dE) for an E^-2 luminosity."""
    cosmo = Cosmology()
    E_s = grids.secondary_energy_grid(grids.Resolution())
    L = E_s**-2.0 * np.exp(-E_s / 1.0e8)
    flux = [np.trapezoid(E_s**2 * (tables.load_cascade_matrix(E_s, cosmo, _table(directory, name)) @ L), np.log(E_s))
            for name in (tables.CASCADE_ALTERNATIVE_TABLE_FILE, tables.CASCADE_TABLE_FILE)]
    print(f"  cascade energy flux for L ~ E^-2 exp(-E/1e8 GeV): Saldana-Lopez / Inoue = {flux[0] / flux[1]:.4f}")


def main():
    jobs = {
        "pp": (tables.PP_TABLE_FILE, gen.generate_pp_tables, gen.write_pp_tables, None),
        "ebl": (tables.EBL_TABLE_FILE, gen.generate_ebl_table, gen.write_ebl_table, None),
        "cascade": (tables.CASCADE_TABLE_FILE, gen.generate_cascade_tables, gen.write_cascade_tables, None),
        "pp-alternative": (tables.PP_ALTERNATIVE_TABLE_FILE,
                           functools.partial(gen.generate_pp_tables, hadronic="kamae2006"),
                           gen.write_pp_tables, check_pp_alternative),
        "ebl-alternative": (tables.EBL_ALTERNATIVE_TABLE_FILE,
                            functools.partial(gen.generate_ebl_table, model="saldana-lopez"),
                            gen.write_ebl_table, check_ebl_alternative),
        "cascade-alternative": (tables.CASCADE_ALTERNATIVE_TABLE_FILE,
                                functools.partial(gen.generate_cascade_tables,
                                                  ebl_path=tables.EBL_ALTERNATIVE_TABLE_FILE),
                                gen.write_cascade_tables, check_cascade_alternative),
    }
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=tuple(jobs), help="regenerate one table only")
    parser.add_argument("--dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tables"),
                        help="output folder (default: data/tables beside this script)")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    for name, (filename, generate, write, check) in jobs.items():
        if args.only not in (None, name):
            continue
        t0 = time.perf_counter()
        path = os.path.join(args.dir, filename)
        write(path, generate())
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
        print(f"recorded its checksum in {tables.write_checksums(args.dir, [filename])}")
        if check is not None:
            check(args.dir)


if __name__ == "__main__":
    main()
