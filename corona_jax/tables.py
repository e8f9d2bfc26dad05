"""Precomputed tables: pp interactions (needs aafragpy to generate) and the EBL optical
depth (needs ebltable); the runtime reads only the HDF5 files.

pp table

The table holds, on fixed master grids of total energy with 20 points per decade,
the inelastic pp cross section sigma_inel(E_p) [mb] and the production cross
sections dsigma/dE_s(E_p, E_s) [mb/GeV] of photons and of neutrinos (all flavours,
nu_e + anti-nu_e + nu_mu + anti-nu_mu), physics.md sec. 3:

* E_p >= 4 GeV: AAfrag (QGSJET-II-04m) through aafragpy's own interpolation;
* E_p < 4 GeV: Kamae et al. (2006), ApJ 647, 692 (as shipped in aafragpy), scaled by
  one factor per secondary so that the energy carried by the secondaries,
  int E_s dsigma/dE_s dE_s, is continuous at 4 GeV;
* sigma_inel: Kafexhiu et al. (2014), PRD 90, 123014, Eq. (1), zero below threshold.

Model grids must be subsets of the master grids (any E_per_decade dividing 20),
so the runtime never re-interpolates the tables.
"""

import functools
import os
from importlib import resources
from typing import NamedTuple

import h5py
import numpy as np

from .errors import ConfigError, DataError
from .units import PROTON_MASS_GEV

PP_TABLE_FILE = "pp_secondaries.h5"
TABLE_E_PER_DECADE = 20
TABLE_PROTON_E_GeV = np.logspace(0.0, 10.0, 10 * TABLE_E_PER_DECADE + 1)  # 1 GeV .. 1e10 GeV
TABLE_SECONDARY_E_GeV = np.logspace(-1.0, 10.0, 11 * TABLE_E_PER_DECADE + 1)  # 0.1 GeV .. 1e10 GeV
AAFRAG_MIN_E_GeV = 4.0  # lowest primary energy of the AAfrag tables
SECONDARIES = {"gamma": "gam", "nu_all": "nu_all"}  # our name -> aafragpy's name
_MOMENT_E_GeV = np.logspace(-4.0, 11.0, 1501)  # fine grid for energy moments (100 per decade)


class PPTables(NamedTuple):
    """pp tables on the master grids (numpy arrays)."""

    E_p_GeV: np.ndarray  # (N_p,) proton total energy
    E_s_GeV: np.ndarray  # (N_s,) secondary energy
    sigma_inel_mb: np.ndarray  # (N_p,)
    dsigma_dE_mb_per_GeV: dict  # name -> (N_p, N_s)
    attrs: dict


# --- generation (aafragpy) -------------------------------------------------------


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
        "generator": "corona_jax.tables.generate_pp_tables (script: data/make_tables.py)",
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


def write_pp_tables(path, tables: PPTables):
    """Write the tables to HDF5 (deterministic: no timestamps), with units attributes."""
    with h5py.File(path, "w") as f:
        for key, value in tables.attrs.items():
            f.attrs[key] = value
        f.create_dataset("E_p_GeV", data=tables.E_p_GeV).attrs["units"] = "GeV"
        f.create_dataset("E_s_GeV", data=tables.E_s_GeV).attrs["units"] = "GeV"
        f.create_dataset("sigma_inel_mb", data=tables.sigma_inel_mb).attrs["units"] = "mb"
        g = f.create_group("dsigma_dE_mb_per_GeV")
        for name, value in tables.dsigma_dE_mb_per_GeV.items():
            d = g.create_dataset(name, data=value)
            d.attrs["units"] = "mb/GeV"
            d.attrs["axes"] = "(E_p, E_s)"


# --- loading -----------------------------------------------------------------------


def default_table_path(name=PP_TABLE_FILE):
    return str(resources.files("corona_jax.data").joinpath("tables").joinpath(name))


@functools.lru_cache(maxsize=4)
def load_pp_tables(path=None) -> PPTables:
    """Read the pp tables; DataError if the file is missing or not a valid table."""
    path = default_table_path() if path is None else path
    if not os.path.isfile(path):
        raise DataError(f"pp table file {path} is missing; regenerate it with data/make_tables.py")
    try:
        with h5py.File(path, "r") as f:
            tables = PPTables(
                E_p_GeV=f["E_p_GeV"][()],
                E_s_GeV=f["E_s_GeV"][()],
                sigma_inel_mb=f["sigma_inel_mb"][()],
                dsigma_dE_mb_per_GeV={name: f["dsigma_dE_mb_per_GeV"][name][()] for name in SECONDARIES},
                attrs=dict(f.attrs),
            )
    except (OSError, KeyError) as exc:
        raise DataError(f"pp table file {path} is not a valid table ({exc})") from None
    shape = (tables.E_p_GeV.size, tables.E_s_GeV.size)
    arrays = [tables.sigma_inel_mb, *tables.dsigma_dE_mb_per_GeV.values()]
    if any(v.shape != shape for v in tables.dsigma_dE_mb_per_GeV.values()) or not all(
        np.all(np.isfinite(a)) and np.all(a >= 0) for a in arrays
    ):
        raise DataError(f"pp table file {path} is corrupt (wrong shapes, negative or non-finite values)")
    return tables


def grid_indices(master_GeV, E_GeV, what):
    """Indices of E_GeV on a master grid; ConfigError if E_GeV is not a subset of it."""
    idx = np.rint(np.log10(E_GeV / master_GeV[0]) * TABLE_E_PER_DECADE).astype(int)
    ok = (idx >= 0) & (idx < master_GeV.size)
    if not np.all(ok) or not np.allclose(master_GeV[np.clip(idx, 0, master_GeV.size - 1)], E_GeV, rtol=1e-9):
        raise ConfigError(
            f"{what} energies are not on the pp table's grid ({TABLE_E_PER_DECADE} per decade, "
            f"{master_GeV[0]:g}-{master_GeV[-1]:g} GeV); use an E_per_decade that divides "
            f"{TABLE_E_PER_DECADE} and decade-aligned limits"
        )
    return idx


# --- EBL optical depth (ebltable) --------------------------------------------------

EBL_TABLE_FILE = "ebl_inoue2013.h5"
EBL_MODEL = "inoue"  # Inoue et al. (2013), ApJ 768, 197, baseline model


class EBLTable(NamedTuple):
    """tau_EBL(E0, z) on ebltable's own grid (EBL only; the CMB is added by corona_jax.absorption)."""

    E0_GeV: np.ndarray  # (N_E,) observed photon energy
    z: np.ndarray  # (N_z,) source redshift, starting at 0 (tau = 0 there)
    tau: np.ndarray  # (N_E, N_z)
    attrs: dict


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
        "generator": "corona_jax.tables.generate_ebl_table (script: data/make_tables.py)",
        "ebltable_version": _package_version("ebltable"),
        "ebltable_model": EBL_MODEL,
        "reference": "Y. Inoue et al., ApJ 768 (2013) 197, baseline EBL model",
        "contents": "gamma gamma optical depth on the EBL only (no CMB) for a source at redshift z",
        "interpolation": "bilinear in (log10 E0, z), as ebltable's OptDepth with kx = ky = 1",
    }
    return EBLTable(E0, z, tau, attrs)


def write_ebl_table(path, table: EBLTable):
    with h5py.File(path, "w") as f:
        for key, value in table.attrs.items():
            f.attrs[key] = value
        f.create_dataset("E0_GeV", data=table.E0_GeV).attrs["units"] = "GeV"
        f.create_dataset("z", data=table.z).attrs["units"] = "1"
        d = f.create_dataset("tau", data=table.tau)
        d.attrs["units"] = "1"
        d.attrs["axes"] = "(E0, z)"


@functools.lru_cache(maxsize=4)
def load_ebl_table(path=None) -> EBLTable:
    """Read the EBL optical-depth table; DataError if missing or corrupt."""
    path = default_table_path(EBL_TABLE_FILE) if path is None else path
    if not os.path.isfile(path):
        raise DataError(f"EBL table file {path} is missing; regenerate it with data/make_tables.py")
    try:
        with h5py.File(path, "r") as f:
            table = EBLTable(f["E0_GeV"][()], f["z"][()], f["tau"][()], dict(f.attrs))
    except (OSError, KeyError) as exc:
        raise DataError(f"EBL table file {path} is not a valid table ({exc})") from None
    if (table.tau.shape != (table.E0_GeV.size, table.z.size) or not np.all(np.isfinite(table.tau))
            or np.any(table.tau < 0) or np.any(np.diff(table.z) <= 0) or np.any(np.diff(table.E0_GeV) <= 0)):
        raise DataError(f"EBL table file {path} is corrupt (shapes, order or values)")
    return table


# --- cascade matrices (corona_jax.cascade) ------------------------------------------

CASCADE_TABLE_FILE = "cascade_inoue2013.h5"
CASCADE_E_PER_DECADE = (5, 10, 20)  # one matrix per model energy grid


def generate_cascade_tables(progress=None):
    """Cascade matrices C for the default cosmology and the Inoue EBL, on the secondary
    energy grids with 5, 10 and 20 points per decade (0.1 GeV - 1e10 GeV)."""
    import dataclasses

    from . import cascade, grids
    from .cosmology import Cosmology

    cosmo = Cosmology()
    matrices = {}
    for per_decade in CASCADE_E_PER_DECADE:
        E_s = grids.secondary_energy_grid(dataclasses.replace(grids.Resolution(), E_per_decade=per_decade))
        matrices[per_decade] = (E_s, cascade.cascade_matrix(E_s, cosmo, load_ebl_table(), progress))
    attrs = {f"cosmology_{k}": float(v) for k, v in cosmo._asdict().items()}
    attrs.update({
        "generator": "corona_jax.tables.generate_cascade_tables (script: data/make_tables.py)",
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
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for per_decade, (E_s, C) in matrices.items():
            g = f.create_group(f"E_per_decade_{per_decade}")
            g.create_dataset("E_GeV", data=E_s).attrs["units"] = "GeV"
            d = g.create_dataset("C", data=C)
            d.attrs["units"] = "cm^-2 sr^-1"
            d.attrs["axes"] = "(observed E, emitted E)"


def load_cascade_matrix(E_s_GeV, cosmo, path=None):
    """The cascade matrix for this secondary grid and cosmology; ConfigError if none was built."""
    path = default_table_path(CASCADE_TABLE_FILE) if path is None else path
    if not os.path.isfile(path):
        raise DataError(f"cascade table file {path} is missing; regenerate it with data/make_tables.py")
    try:
        with h5py.File(path, "r") as f:
            built_for = {k: float(f.attrs[f"cosmology_{k}"]) for k in cosmo._fields}
            groups = {name: (f[name]["E_GeV"][()], f[name]["C"][()]) for name in f}
    except (OSError, KeyError) as exc:
        raise DataError(f"cascade table file {path} is not a valid table ({exc})") from None
    if any(not np.isclose(built_for[k], float(getattr(cosmo, k)), rtol=1e-12) for k in cosmo._fields):
        raise ConfigError(f"the cascade matrix was built for the cosmology {built_for}; for another one, "
                          "regenerate it (corona_jax.tables.generate_cascade_tables) or switch the cascade off")
    for E, C in groups.values():
        if E.shape == E_s_GeV.shape and np.allclose(E, E_s_GeV, rtol=1e-9):
            if C.shape != (E.size, E.size) or not np.all(np.isfinite(C)):
                raise DataError(f"cascade table file {path} is corrupt")
            return C
    raise ConfigError(f"no cascade matrix for this energy grid ({E_s_GeV.size} energies from {E_s_GeV[0]:g} GeV); "
                      f"built for {CASCADE_E_PER_DECADE} per decade from 0.1 to 1e10 GeV")
