"""Generating the precomputed tables that corona_jax.tables loads (script: data/make_tables.py).

pp table (needs aafragpy), docs/physics.md sec. 3:

* E_p >= 4 GeV: AAfrag (QGSJET-II-04m) through aafragpy's own interpolation;
* E_p < 4 GeV: Kamae et al. (2006), ApJ 647, 692 (as shipped in aafragpy), scaled by
  one factor per secondary so that the energy carried by the secondaries,
  int E_s dsigma/dE_s dE_s, is continuous at 4 GeV;
* sigma_inel: Kafexhiu et al. (2014), PRD 90, 123014, Eq. (1), zero below threshold.

Alternative pp table (generate_pp_tables(hadronic="kamae2006"), for the hadronic-model nuisance):
Kamae et al. (2006) unscaled at all E_p; above KAMAE_MAX_E_GeV (500 TeV, just below the top of
Kamae's fit, 512 TeV, where aafragpy's Kamae returns zeros) extended by Feynman scaling:
dsigma/dE_s(E_p, E_s) = (E_0/E_p) dsigma/dE_s(E_0, E_s E_0/E_p) sigma_inel(E_p)/sigma_inel(E_0),
the spectrum in x = E_s/E_p of E_0 = KAMAE_MAX_E_GeV scaled by the inelastic cross section
(Feynman 1969, PRL 23, 1415). Same grids and the same sigma_inel as the shipped table.

EBL optical depth (needs ebltable): Inoue et al. (2013), ApJ 768, 197, baseline model;
alternative (generate_ebl_table("saldana-lopez")): Saldana-Lopez et al. (2021), MNRAS 507,
5144, fiducial model. Each on ebltable's own (E0, z) nodes.
Cascade matrices: corona_jax.cascade on an EBL table (generate_cascade_tables(ebl_path=...)),
for the default cosmology.
"""

import dataclasses
import os

import h5py
import numpy as np

from . import cascade, grids
from .cosmology import Cosmology
from .errors import ConfigError, install_hint
from .tables import (
    EBL_TABLE_FILE,
    SECONDARIES,
    TABLE_E_PER_DECADE,
    CASCADE_E_PER_DECADE,
    EBLTable,
    PPTables,
    load_ebl_table,
    table_path,
)
from .units import PROTON_MASS_GEV

TABLE_PROTON_E_GeV = np.logspace(0.0, 10.0, 10 * TABLE_E_PER_DECADE + 1)  # 1 GeV .. 1e10 GeV
TABLE_SECONDARY_E_GeV = np.logspace(-1.0, 10.0, 11 * TABLE_E_PER_DECADE + 1)  # 0.1 GeV .. 1e10 GeV
AAFRAG_MIN_E_GeV = 4.0  # lowest primary energy of the AAfrag tables
_MOMENT_E_GeV = np.logspace(-4.0, 11.0, 1501)  # fine grid for energy moments (100 per decade)
EBL_MODEL = "inoue"  # Inoue et al. (2013), ApJ 768, 197, baseline model
EBL_REFERENCES = {  # ebltable model name -> reference (the file attribute "reference")
    "inoue": "Y. Inoue et al., ApJ 768 (2013) 197, baseline EBL model",
    "saldana-lopez": "A. Saldana-Lopez et al., MNRAS 507 (2021) 5144, fiducial EBL model",
}
PP_HADRONIC_MODELS = ("aafrag", "kamae2006")  # generate_pp_tables(hadronic=...): shipped, alternative
KAMAE_MAX_E_GeV = 5.0e5  # junction E_0 [GeV, total energy] of the Feynman-scaled Kamae extension
KAMAE_FIT_MAX_E_GeV = 5.12e5  # aafragpy's Kamae2006 returns zeros from this E_p (top of the fit)


def _aafragpy():
    try:
        from aafragpy import Kafexhiu2014, aafrag
    except ImportError:
        raise ConfigError(
            f"regenerating the pp tables needs aafragpy: {install_hint('tables')}"
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


def kamae_scaled_dsigma_dE(secondary, E_p_GeV, E_s_GeV):
    """Kamae et al. (2006) dsigma/dE_s [mb/GeV] at any E_p [GeV], shape (N_p, N_s): as is up to
    E_0 = KAMAE_MAX_E_GeV; above, Feynman scaling from E_0,
    (E_0/E_p) dsigma/dE_s(E_0, E_s E_0/E_p) sigma_inel(E_p)/sigma_inel(E_0) (Kafexhiu sigma_inel)."""
    E_p_GeV = np.atleast_1d(np.asarray(E_p_GeV, dtype=float))
    E_s_GeV = np.atleast_1d(np.asarray(E_s_GeV, dtype=float))
    out = np.zeros((E_p_GeV.size, E_s_GeV.size))
    low = E_p_GeV <= KAMAE_MAX_E_GeV
    if np.any(low):
        out[low] = kamae_dsigma_dE(secondary, E_p_GeV[low], E_s_GeV)
    if np.any(~low):
        sigma_0 = sigma_inel_kafexhiu_mb(KAMAE_MAX_E_GeV)[()]
        for i in np.flatnonzero(~low):
            r = KAMAE_MAX_E_GeV / E_p_GeV[i]  # E_0 / E_p < 1
            scale = r * sigma_inel_kafexhiu_mb(E_p_GeV[i])[()] / sigma_0
            out[i] = scale * kamae_dsigma_dE(secondary, KAMAE_MAX_E_GeV, E_s_GeV * r)[0]
    return out


def junction_factor(secondary):
    """Scale of the Kamae cross section that makes the secondaries' energy continuous at 4 GeV."""
    aafrag_moment = energy_moment_GeV_mb(_MOMENT_E_GeV, aafrag_dsigma_dE(secondary, AAFRAG_MIN_E_GeV, _MOMENT_E_GeV))
    kamae_moment = energy_moment_GeV_mb(_MOMENT_E_GeV, kamae_dsigma_dE(secondary, AAFRAG_MIN_E_GeV, _MOMENT_E_GeV))
    return float(aafrag_moment[0] / kamae_moment[0])


def production_cross_section(secondary, E_p_GeV, E_s_GeV, hadronic="aafrag"):
    """dsigma/dE_s [mb/GeV] (N_p, N_s). hadronic="aafrag" (shipped): AAfrag from 4 GeV up,
    scaled Kamae below; "kamae2006" (alternative): kamae_scaled_dsigma_dE at every E_p."""
    _check_hadronic(hadronic)
    if hadronic == "kamae2006":
        return kamae_scaled_dsigma_dE(secondary, E_p_GeV, E_s_GeV)
    E_p_GeV = np.atleast_1d(np.asarray(E_p_GeV, dtype=float))
    low = E_p_GeV < AAFRAG_MIN_E_GeV
    out = np.zeros((E_p_GeV.size, np.size(E_s_GeV)))
    if np.any(~low):
        out[~low] = aafrag_dsigma_dE(secondary, E_p_GeV[~low], E_s_GeV)
    if np.any(low):
        out[low] = junction_factor(secondary) * kamae_dsigma_dE(secondary, E_p_GeV[low], E_s_GeV)
    return out


def _check_hadronic(hadronic):
    if hadronic not in PP_HADRONIC_MODELS:
        raise ConfigError(f"unknown hadronic model {hadronic!r}; choose one of {PP_HADRONIC_MODELS}")


def generate_pp_tables(hadronic="aafrag") -> PPTables:
    """Compute the tables on the master grids (needs aafragpy). hadronic="aafrag": the shipped
    table (a few seconds); "kamae2006": the alternative, Kamae et al. (2006) at all energies."""
    _check_hadronic(hadronic)
    version = _package_version("aafragpy")
    dsigma = {
        name: production_cross_section(name, TABLE_PROTON_E_GeV, TABLE_SECONDARY_E_GeV, hadronic)
        for name in SECONDARIES
    }
    sigma_inel = sigma_inel_kafexhiu_mb(TABLE_PROTON_E_GeV)
    if hadronic == "kamae2006":
        return PPTables(TABLE_PROTON_E_GeV, TABLE_SECONDARY_E_GeV, sigma_inel, dsigma, _kamae_attrs(version))
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
    return PPTables(TABLE_PROTON_E_GeV, TABLE_SECONDARY_E_GeV, sigma_inel, dsigma, attrs)


def _kamae_attrs(version):
    """File attributes of the alternative (Kamae 2006) pp table."""
    return {
        "generator": "corona_jax.table_generation.generate_pp_tables(hadronic='kamae2006') "
                     "(script: data/make_tables.py)",
        "aafragpy_version": version,
        "hadronic_model": "kamae2006",
        "model": "Kamae et al. 2006, ApJ 647, 692 (aafragpy.get_cross_section_Kamae2006, diffractive=True), "
                 "unscaled, at every E_p; alternative to the shipped AAfrag table",
        "high_energy_extension": "Feynman scaling above the junction E_0 (Feynman 1969, PRL 23, 1415): "
                                 "dsigma/dE_s(E_p, E_s) = (E_0/E_p) dsigma/dE_s(E_0, E_s E_0/E_p) "
                                 "sigma_inel(E_p)/sigma_inel(E_0), the Kamae spectrum in x = E_s/E_p at E_0 "
                                 "scaled by sigma_inel; Kamae's fit ends at 512 TeV, where aafragpy's "
                                 "Kamae returns zeros",
        "junction_E_GeV": KAMAE_MAX_E_GeV,
        "kamae_fit_max_E_GeV": KAMAE_FIT_MAX_E_GeV,
        "sigma_inel_model": "Kafexhiu et al. 2014 Eq. (1) (aafragpy.Kafexhiu2014.s_total_inelastic), "
                            "zero below threshold",
        "E_per_decade": TABLE_E_PER_DECADE,
        "energies": "total energies in GeV (proton and secondary)",
    }


def pp_energy_moment_ratios(alternative: PPTables, reference: PPTables, E_p_GeV=(1.0e1, 1.0e3, 1.0e5, 1.0e7)):
    """{secondary: (N,)} ratio alternative / reference of int E_s dsigma/dE_s dE_s [GeV mb] at the
    table nodes nearest to E_p_GeV (both tables on their own secondary grids)."""
    out = {}
    for name in SECONDARIES:
        moments = []
        for t in (alternative, reference):
            i = np.abs(np.log(t.E_p_GeV[:, None] / np.asarray(E_p_GeV, dtype=float)[None, :])).argmin(axis=0)
            moments.append(energy_moment_GeV_mb(t.E_s_GeV, t.dsigma_dE_mb_per_GeV[name][i]))
        out[name] = moments[0] / moments[1]
    return out


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


def generate_ebl_table(model=EBL_MODEL) -> EBLTable:
    """Read an EBL optical depth through ebltable (needs ebltable), on its own (E0 [GeV], z) nodes:
    model="inoue" (shipped, Inoue et al. 2013 baseline) or "saldana-lopez" (alternative,
    Saldana-Lopez et al. 2021 fiducial)."""
    if model not in EBL_REFERENCES:
        raise ConfigError(f"unknown EBL model {model!r}; choose one of {tuple(EBL_REFERENCES)}")
    try:
        from ebltable.tau_from_model import OptDepth
    except ImportError:
        raise ConfigError(f"regenerating the EBL table needs ebltable: {install_hint('tables')}") from None
    opt_depth = OptDepth.readmodel(model)  # pads z = 0 with tau = 0
    E0 = 10.0 ** np.asarray(opt_depth._x, dtype=float)
    z = np.asarray(opt_depth._y, dtype=float)
    tau = np.asarray(opt_depth.evaluate(E0, z), dtype=float).T  # (N_z, N_E) -> (N_E, N_z), on its own nodes
    attrs = {
        "generator": "corona_jax.table_generation.generate_ebl_table (script: data/make_tables.py)",
        "ebltable_version": _package_version("ebltable"),
        "ebltable_model": model,
        "reference": EBL_REFERENCES[model],
        "contents": "gamma gamma optical depth on the EBL only (no CMB) for a source at redshift z",
        "interpolation": "bilinear in (log10 E0, z), as ebltable's OptDepth with kx = ky = 1",
    }
    return EBLTable(E0, z, tau, attrs)


def write_ebl_table(path, table: EBLTable):
    with _new_table_file(path, table.attrs) as f:
        _dataset(f, "E0_GeV", table.E0_GeV, "GeV")
        _dataset(f, "z", table.z, "1")
        _dataset(f, "tau", table.tau, "1", "(E0, z)")


def ebl_table_reaching(table: EBLTable, z_top):
    """The table, with one more redshift node at z_top where its last node lies below z_top:
    tau extrapolated linearly in z from the last two nodes (what absorption.tau_ebl's bilinear
    formula gives there; it refuses z beyond the table). Returns (table, note or None)."""
    if z_top <= table.z[-1]:
        return table, None
    z0, z1 = table.z[-2], table.z[-1]
    tau_top = table.tau[:, -1] + (z_top - z1) / (z1 - z0) * (table.tau[:, -1] - table.tau[:, -2])
    extended = table._replace(z=np.append(table.z, z_top), tau=np.concatenate([table.tau, tau_top[:, None]], axis=1))
    note = (f"the EBL table ends at z = {z1:g}; tau at the cascade's last redshift step z = {z_top:.6g} (above "
            f"z_max, weighted only for sources up to z_max) extrapolated linearly in z from z = {z0:g}, {z1:g}")
    return extended, note


def generate_cascade_tables(progress=None, ebl_path=EBL_TABLE_FILE):
    """Cascade matrices C for the default cosmology and an EBL table (ebl_path: a file, or the
    name of a shipped table; default the Inoue one), on the secondary energy grids with 5, 10
    and 20 points per decade (0.1 GeV - 1e10 GeV). An EBL table ending below the cascade's last
    redshift step is extended there (ebl_table_reaching; recorded in the attributes)."""
    cosmo = Cosmology()
    path = table_path(ebl_path)
    ebl = load_ebl_table(path)
    ebl_used, note = ebl_table_reaching(ebl, cascade.cascade_grid(cosmo.z_max).z[-1])
    matrices = {}
    for per_decade in CASCADE_E_PER_DECADE:
        E_s = grids.secondary_energy_grid(dataclasses.replace(grids.Resolution(), E_per_decade=per_decade))
        matrices[per_decade] = (E_s, cascade.cascade_matrix(E_s, cosmo, ebl_used, progress))
    attrs = {f"cosmology_{k}": float(v) for k, v in cosmo._asdict().items()}
    attrs.update({
        "generator": "corona_jax.table_generation.generate_cascade_tables (script: data/make_tables.py)",
        "ebl_table": os.path.basename(path),
        "ebl_model": ebl.attrs["reference"],
        "stellar_mass_density": "Madau & Dickinson (2014) Eq. (15), integrated, return fraction as attribute",
        "internal_nodes_per_decade": cascade.PER_DECADE,
        "lepton_min_GeV": cascade.LEPTON_MIN_GeV,
        "photon_min_GeV": cascade.E_MIN_GeV,
        "units": "C in cm^-2 sr^-1: I_cascade [GeV^-1 cm^-2 s^-1 sr^-1] = C @ L_MW [GeV^-1 s^-1]",
    })
    if note is not None:
        attrs["ebl_z_extrapolation"] = note
    return matrices, attrs


def write_cascade_tables(path, generated):
    matrices, attrs = generated
    with _new_table_file(path, attrs) as f:
        for per_decade, (E_s, C) in matrices.items():
            g = f.create_group(f"E_per_decade_{per_decade}")
            _dataset(g, "E_GeV", E_s, "GeV")
            _dataset(g, "C", C, "cm^-2 sr^-1", "(observed E, emitted E)")
