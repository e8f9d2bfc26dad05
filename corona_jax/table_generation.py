"""Generating the precomputed tables that corona_jax.tables loads (script: data/make_tables.py).

pp table (needs aafragpy), docs/physics.md sec. 3:

* E_p >= 4 GeV: AAfrag (QGSJET-II-04m) through aafragpy's own interpolation;
* E_p < 4 GeV: Kamae et al. (2006), ApJ 647, 692 (as shipped in aafragpy), scaled by
  one factor per secondary so that the energy carried by the secondaries,
  int E_s dsigma/dE_s dE_s, is continuous at 4 GeV;
* sigma_inel: Kafexhiu et al. (2014), PRD 90, 123014, Eq. (1), zero below threshold.

EBL optical depth (needs ebltable): Inoue et al. (2013), ApJ 768, 197, baseline model.
Cascade matrices: corona_jax.cascade on the EBL table, for the default cosmology.
"""

import dataclasses

import h5py
import numpy as np

from . import cascade, grids
from .cosmology import Cosmology
from .errors import ConfigError
from .tables import (
    EBL_TABLE_FILE,
    SECONDARIES,
    TABLE_E_PER_DECADE,
    CASCADE_E_PER_DECADE,
    EBLTable,
    PPTables,
    load_ebl_table,
)
from .units import PROTON_MASS_GEV

TABLE_PROTON_E_GeV = np.logspace(0.0, 10.0, 10 * TABLE_E_PER_DECADE + 1)  # 1 GeV .. 1e10 GeV
TABLE_SECONDARY_E_GeV = np.logspace(-1.0, 10.0, 11 * TABLE_E_PER_DECADE + 1)  # 0.1 GeV .. 1e10 GeV
AAFRAG_MIN_E_GeV = 4.0  # lowest primary energy of the AAfrag tables
_MOMENT_E_GeV = np.logspace(-4.0, 11.0, 1501)  # fine grid for energy moments (100 per decade)
EBL_MODEL = "inoue"  # Inoue et al. (2013), ApJ 768, 197, baseline model


def _aafragpy():
    try:
        from aafragpy import Kafexhiu2014, aafrag
    except ImportError:
        raise ConfigError(
            "regenerating the pp tables needs aafragpy: pip install 'corona-jax[tables]'"
        ) from None
    return aafrag, Kafexhiu2014


def energy_moment_GeV_mb(E_s_GeV, dsigma_dE):
    """int E_s dsigma/dE_s dE_s [GeV mb] by the trapezoid rule in ln E_s (last axis)."""
    return np.trapezoid(dsigma_dE * E_s_GeV**2, np.log(E_s_GeV), axis=-1)


def sigma_inel_kafexhiu_mb(E_p_GeV):
    """sigma_inel [mb] from aafragpy's Kafexhiu et al. (2014) fit, zero below threshold."""
    _, kafexhiu = _aafragpy()
    T = np.asarray(E_p_GeV, dtype=float) - PROTON_MASS_GEV
    above = T > kafexhiu.T_p_th
    sigma = np.zeros_like(T)
    sigma[above] = kafexhiu.s_total_inelastic(T[above])
    return sigma


def aafrag_dsigma_dE(secondary, E_p_GeV, E_s_GeV):
    """AAfrag dsigma/dE_s [mb/GeV], shape (N_p, N_s); E_p >= 4 GeV."""
    aafrag, _ = _aafragpy()
    E_p_GeV, E_s_GeV = np.atleast_1d(E_p_GeV), np.atleast_1d(E_s_GeV)
    cs, _, _ = aafrag.get_cross_section(SECONDARIES[secondary], "p-p", E_p_GeV, E_s_GeV)
    return np.nan_to_num(np.reshape(cs, (E_p_GeV.size, E_s_GeV.size)), nan=0.0, posinf=0.0)


def kamae_dsigma_dE(secondary, E_p_GeV, E_s_GeV):
    """Kamae et al. (2006) dsigma/dE_s [mb/GeV] with diffraction, shape (N_p, N_s)."""
    aafrag, _ = _aafragpy()
    E_p_GeV, E_s_GeV = np.atleast_1d(E_p_GeV), np.atleast_1d(E_s_GeV)
    cs, _, _ = aafrag.get_cross_section_Kamae2006(SECONDARIES[secondary], E_p_GeV, E_s_GeV)
    cs = np.reshape(cs, (E_p_GeV.size, E_s_GeV.size))
    return np.clip(np.nan_to_num(cs, nan=0.0, posinf=0.0), 0.0, None)


def junction_factor(secondary):
    """Scale of the Kamae cross section that makes the secondaries' energy continuous at 4 GeV."""
    aafrag_moment = energy_moment_GeV_mb(_MOMENT_E_GeV, aafrag_dsigma_dE(secondary, AAFRAG_MIN_E_GeV, _MOMENT_E_GeV))
    kamae_moment = energy_moment_GeV_mb(_MOMENT_E_GeV, kamae_dsigma_dE(secondary, AAFRAG_MIN_E_GeV, _MOMENT_E_GeV))
    return float(aafrag_moment[0] / kamae_moment[0])


def production_cross_section(secondary, E_p_GeV, E_s_GeV):
    """dsigma/dE_s [mb/GeV] (N_p, N_s): AAfrag from 4 GeV up, scaled Kamae below."""
    E_p_GeV = np.atleast_1d(np.asarray(E_p_GeV, dtype=float))
    low = E_p_GeV < AAFRAG_MIN_E_GeV
    out = np.zeros((E_p_GeV.size, np.size(E_s_GeV)))
    if np.any(~low):
        out[~low] = aafrag_dsigma_dE(secondary, E_p_GeV[~low], E_s_GeV)
    if np.any(low):
        out[low] = junction_factor(secondary) * kamae_dsigma_dE(secondary, E_p_GeV[low], E_s_GeV)
    return out


def generate_pp_tables() -> PPTables:
    """Compute the tables on the master grids (a few seconds; needs aafragpy)."""
    version = _package_version("aafragpy")
    dsigma = {
        name: production_cross_section(name, TABLE_PROTON_E_GeV, TABLE_SECONDARY_E_GeV) for name in SECONDARIES
    }
    attrs = {
        "generator": "corona_jax.table_generation.generate_pp_tables (script: data/make_tables.py)",
        "aafragpy_version": version,
        "high_energy_model": "AAfrag (QGSJET-II-04m), aafragpy.get_cross_section(secondary, 'p-p', E_p, E_s)",
        "low_energy_model": "Kamae et al. 2006 (aafragpy.get_cross_section_Kamae2006, diffractive=True), "
                            "scaled to AAfrag's secondary energy at the junction",
        "junction_E_GeV": AAFRAG_MIN_E_GeV,
        "sigma_inel_model": "Kafexhiu et al. 2014 Eq. (1) (aafragpy.Kafexhiu2014.s_total_inelastic), "
                            "zero below threshold",
        "E_per_decade": TABLE_E_PER_DECADE,
        "energies": "total energies in GeV (proton and secondary)",
    }
    for name in SECONDARIES:
        attrs[f"junction_factor_{name}"] = junction_factor(name)
    return PPTables(TABLE_PROTON_E_GeV, TABLE_SECONDARY_E_GeV, sigma_inel_kafexhiu_mb(TABLE_PROTON_E_GeV), dsigma, attrs)


def _package_version(name):
    from importlib.metadata import version

    return version(name)


def _dataset(group, name, data, units, axes=None):
    d = group.create_dataset(name, data=data)
    d.attrs["units"] = units
    if axes:
        d.attrs["axes"] = axes


def _new_table_file(path, attrs):
    """An HDF5 file with the table's attributes (deterministic: no timestamps)."""
    f = h5py.File(path, "w")
    for key, value in attrs.items():
        f.attrs[key] = value
    return f


def write_pp_tables(path, tables: PPTables):
    """Write the tables to HDF5, with units attributes."""
    with _new_table_file(path, tables.attrs) as f:
        _dataset(f, "E_p_GeV", tables.E_p_GeV, "GeV")
        _dataset(f, "E_s_GeV", tables.E_s_GeV, "GeV")
        _dataset(f, "sigma_inel_mb", tables.sigma_inel_mb, "mb")
        g = f.create_group("dsigma_dE_mb_per_GeV")
        for name, value in tables.dsigma_dE_mb_per_GeV.items():
            _dataset(g, name, value, "mb/GeV", "(E_p, E_s)")


def generate_ebl_table() -> EBLTable:
    """Read the Inoue et al. (2013) baseline optical depth through ebltable (needs ebltable)."""
    try:
        from ebltable.tau_from_model import OptDepth
    except ImportError:
        raise ConfigError("regenerating the EBL table needs ebltable: pip install 'corona-jax[tables]'") from None
    model = OptDepth.readmodel(EBL_MODEL)  # pads z = 0 with tau = 0
    E0 = 10.0 ** np.asarray(model._x, dtype=float)
    z = np.asarray(model._y, dtype=float)
    tau = np.asarray(model.evaluate(E0, z), dtype=float).T  # (N_z, N_E) -> (N_E, N_z), on its own nodes
    attrs = {
        "generator": "corona_jax.table_generation.generate_ebl_table (script: data/make_tables.py)",
        "ebltable_version": _package_version("ebltable"),
        "ebltable_model": EBL_MODEL,
        "reference": "Y. Inoue et al., ApJ 768 (2013) 197, baseline EBL model",
        "contents": "gamma gamma optical depth on the EBL only (no CMB) for a source at redshift z",
        "interpolation": "bilinear in (log10 E0, z), as ebltable's OptDepth with kx = ky = 1",
    }
    return EBLTable(E0, z, tau, attrs)


def write_ebl_table(path, table: EBLTable):
    with _new_table_file(path, table.attrs) as f:
        _dataset(f, "E0_GeV", table.E0_GeV, "GeV")
        _dataset(f, "z", table.z, "1")
        _dataset(f, "tau", table.tau, "1", "(E0, z)")


def generate_cascade_tables(progress=None):
    """Cascade matrices C for the default cosmology and the Inoue EBL, on the secondary
    energy grids with 5, 10 and 20 points per decade (0.1 GeV - 1e10 GeV)."""
    cosmo = Cosmology()
    matrices = {}
    for per_decade in CASCADE_E_PER_DECADE:
        E_s = grids.secondary_energy_grid(dataclasses.replace(grids.Resolution(), E_per_decade=per_decade))
        matrices[per_decade] = (E_s, cascade.cascade_matrix(E_s, cosmo, load_ebl_table(), progress))
    attrs = {f"cosmology_{k}": float(v) for k, v in cosmo._asdict().items()}
    attrs.update({
        "generator": "corona_jax.table_generation.generate_cascade_tables (script: data/make_tables.py)",
        "ebl_table": EBL_TABLE_FILE,
        "ebl_model": load_ebl_table().attrs["reference"],
        "stellar_mass_density": "Madau & Dickinson (2014) Eq. (15), integrated, return fraction as attribute",
        "internal_nodes_per_decade": cascade.PER_DECADE,
        "lepton_min_GeV": cascade.LEPTON_MIN_GeV,
        "photon_min_GeV": cascade.E_MIN_GeV,
        "units": "C in cm^-2 sr^-1: I_cascade [GeV^-1 cm^-2 s^-1 sr^-1] = C @ L_MW [GeV^-1 s^-1]",
    })
    return matrices, attrs


def write_cascade_tables(path, generated):
    matrices, attrs = generated
    with _new_table_file(path, attrs) as f:
        for per_decade, (E_s, C) in matrices.items():
            g = f.create_group(f"E_per_decade_{per_decade}")
            _dataset(g, "E_GeV", E_s, "GeV")
            _dataset(g, "C", C, "cm^-2 sr^-1", "(observed E, emitted E)")
