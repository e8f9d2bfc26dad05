"""Loading the precomputed tables (HDF5, shipped in corona_jax/data/tables): pp interactions,
the EBL optical depth and the cascade matrices. Reading only; corona_jax.table_generation
makes them (script: data/make_tables.py).

pp table: on fixed master grids of total energy with TABLE_E_PER_DECADE points per decade,
the inelastic pp cross section sigma_inel(E_p) [mb] and the production cross sections
dsigma/dE_s(E_p, E_s) [mb/GeV] of photons and of neutrinos (all flavours, nu_e + anti-nu_e +
nu_mu + anti-nu_mu), docs/physics.md sec. 3. Model grids must be subsets of the master grids
(any E_per_decade dividing 20), so the runtime never re-interpolates the tables.

Each table has an alternative (the *_ALTERNATIVE_TABLE_FILE constants) that the systematics
nuisances interpolate towards; docs/tables.md lists them all.
"""

import functools
import hashlib
import os
from importlib import resources
from typing import NamedTuple

import h5py
import numpy as np

from .errors import ConfigError, DataError

PP_TABLE_FILE = "pp_secondaries.h5"
# alternative for the hadronic-model nuisance: Kamae et al. (2006) at all E_p (Feynman-scaled
# above 500 TeV), same grids and sigma_inel (docs/tables.md)
PP_ALTERNATIVE_TABLE_FILE = "pp_secondaries_kamae2006.h5"
TABLE_E_PER_DECADE = 20
SECONDARIES = {"gamma": "gam", "nu_all": "nu_all"}  # our name -> aafragpy's name


class PPTables(NamedTuple):
    """pp tables on the master grids (numpy arrays)."""

    E_p_GeV: np.ndarray  # (N_p,) proton total energy
    E_s_GeV: np.ndarray  # (N_s,) secondary energy
    sigma_inel_mb: np.ndarray  # (N_p,)
    dsigma_dE_mb_per_GeV: dict  # name -> (N_p, N_s)
    attrs: dict



def default_table_path(name=PP_TABLE_FILE):
    return str(resources.files("corona_jax.data").joinpath("tables").joinpath(name))


CHECKSUM_FILE = "SHA256SUMS"  # '<sha256>  <file name>' per shipped table, written by data/make_tables.py


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(directory: str) -> dict:
    """{file name: sha256} from the SHA256SUMS file of a table folder ({} if there is none)."""
    path = os.path.join(directory, CHECKSUM_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return {name: digest for digest, name in (line.split() for line in f if line.strip())}


def write_checksums(directory: str, names) -> str:
    """Record the sha256 of the named tables of `directory` in its SHA256SUMS (other entries kept)."""
    sums = read_checksums(directory)
    sums.update({name: file_sha256(os.path.join(directory, name)) for name in names})
    path = os.path.join(directory, CHECKSUM_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
    return path


def verify_checksum(path: str, what: str):
    """DataError if a table listed in the SHA256SUMS beside it (the package's, for the shipped
    tables) has other contents than recorded there."""
    expected = read_checksums(os.path.dirname(os.path.abspath(path)))
    name = os.path.basename(path)
    if name in expected and file_sha256(path) != expected[name]:
        raise DataError(f"{what} file {path} does not match the checksum the package recorded for it "
                        "(modified or damaged); regenerate it with data/make_tables.py")


def table_path(name_or_path: str) -> str:
    """A bare file name means the shipped table of that name; anything else is a path."""
    return default_table_path(name_or_path) if os.path.basename(name_or_path) == name_or_path else name_or_path


@functools.lru_cache(maxsize=4)
def load_pp_tables(path=None) -> PPTables:
    """Read the pp tables; DataError if the file is missing or not a valid table."""
    path = default_table_path() if path is None else path
    if not os.path.isfile(path):
        raise DataError(f"pp table file {path} is missing; regenerate it with data/make_tables.py")
    verify_checksum(path, "pp table")
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
# alternative for the EBL nuisance: Saldana-Lopez et al. (2021), on its own (E0, z) nodes (z <= 6)
EBL_ALTERNATIVE_TABLE_FILE = "ebl_saldana-lopez2021.h5"


class EBLTable(NamedTuple):
    """tau_EBL(E0, z) on ebltable's own grid (EBL only; the CMB is added by corona_jax.absorption)."""

    E0_GeV: np.ndarray  # (N_E,) observed photon energy
    z: np.ndarray  # (N_z,) source redshift, starting at 0 (tau = 0 there)
    tau: np.ndarray  # (N_E, N_z)
    attrs: dict


@functools.lru_cache(maxsize=4)
def load_ebl_table(path=None) -> EBLTable:
    """Read the EBL optical-depth table; DataError if missing or corrupt."""
    path = default_table_path(EBL_TABLE_FILE) if path is None else path
    if not os.path.isfile(path):
        raise DataError(f"EBL table file {path} is missing; regenerate it with data/make_tables.py")
    verify_checksum(path, "EBL table")
    try:
        with h5py.File(path, "r") as f:
            table = EBLTable(f["E0_GeV"][()], f["z"][()], f["tau"][()], dict(f.attrs))
    except (OSError, KeyError) as exc:
        raise DataError(f"EBL table file {path} is not a valid table ({exc})") from None
    if (table.tau.shape != (table.E0_GeV.size, table.z.size) or not np.all(np.isfinite(table.tau))
            or np.any(table.tau < 0) or np.any(np.diff(table.z) <= 0) or np.any(np.diff(table.E0_GeV) <= 0)):
        raise DataError(f"EBL table file {path} is corrupt (shapes, order or values)")
    return table


# --- cascade matrices (built by corona_jax.cascade) ------------------------------------------

CASCADE_TABLE_FILE = "cascade_inoue2013.h5"
CASCADE_ALTERNATIVE_TABLE_FILE = "cascade_saldana-lopez2021.h5"  # from EBL_ALTERNATIVE_TABLE_FILE
CASCADE_E_PER_DECADE = (5, 10, 20)  # one matrix per model energy grid


def load_cascade_matrix(E_s_GeV, cosmo, path=None):
    """The cascade matrix for this secondary grid and cosmology; ConfigError if none was built."""
    path = default_table_path(CASCADE_TABLE_FILE) if path is None else path
    if not os.path.isfile(path):
        raise DataError(f"cascade table file {path} is missing; regenerate it with data/make_tables.py")
    verify_checksum(path, "cascade table")
    try:
        with h5py.File(path, "r") as f:
            built_for = {k: float(f.attrs[f"cosmology_{k}"]) for k in cosmo._fields}
            groups = {name: (f[name]["E_GeV"][()], f[name]["C"][()]) for name in f}
    except (OSError, KeyError) as exc:
        raise DataError(f"cascade table file {path} is not a valid table ({exc})") from None
    if any(not np.isclose(built_for[k], float(getattr(cosmo, k)), rtol=1e-12) for k in cosmo._fields):
        raise ConfigError(f"the cascade matrix was built for the cosmology {built_for}; for another one, "
                          "regenerate it (corona_jax.table_generation.generate_cascade_tables) or switch the cascade off")
    for E, C in groups.values():
        if E.shape == E_s_GeV.shape and np.allclose(E, E_s_GeV, rtol=1e-9):
            if C.shape != (E.size, E.size) or not np.all(np.isfinite(C)):
                raise DataError(f"cascade table file {path} is corrupt")
            return C
    raise ConfigError(f"no cascade matrix for this energy grid ({E_s_GeV.size} energies from {E_s_GeV[0]:g} GeV); "
                      f"built for {CASCADE_E_PER_DECADE} per decade from 0.1 to 1e10 GeV")
