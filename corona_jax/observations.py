"""Curated observational spectra with units and provenance (the core loads them itself).

Every file in corona_jax/data/observations is a CSV with a '#' header holding
its provenance (dataset, quantity, reference, source, conversions) followed by
the columns E_GeV, E_lo_GeV, E_hi_GeV, flux, err_lo, err_hi, is_upper_limit.
Fluxes are dN/dE in GeV^-1 cm^-2 s^-1 sr^-1; errors are absolute 1-sigma.
"""

import csv
import io
import math
from importlib import resources
from typing import NamedTuple

import numpy as np

from .errors import DataError


class SpectralData(NamedTuple):
    """One measured spectrum. Energies are what `energy_kind` says."""

    name: str
    E_GeV: np.ndarray
    flux_per_GeV_cm2_s_sr: np.ndarray
    err_lo: np.ndarray
    err_hi: np.ndarray
    is_upper_limit: np.ndarray  # bool
    energy_kind: str  # 'kinetic' (direct proton data) or 'total' (air showers)
    species: str  # 'proton', 'all-particle', 'neutrino per flavour' or 'gamma'
    reference: str
    meta: dict
    extra: dict = {}  # further numeric columns of the file (e.g. fgsyst_hi for Fermi-LAT)


# name -> (file, energy kind, species, lowest kinetic/total energy used [GeV])
COSMIC_RAY_DATASETS = {
    "AMS02": ("cr_proton_AMS02_2015.csv", "kinetic", "proton", 20.0),
    "DAMPE": ("cr_proton_DAMPE2019.csv", "kinetic", "proton", 0.0),
    "CALET": ("cr_proton_CALET2022.csv", "kinetic", "proton", 0.0),
    "CREAM-III": ("cr_proton_CREAMIII2017.csv", "kinetic", "proton", 0.0),
    "KASCADE2011": ("cr_allparticle_KASCADE2011_QGSJETII-02.csv", "total", "all-particle", 0.0),
    "KASCADE2005-SIBYLL": ("cr_allparticle_KASCADE2005_SIBYLL-2.1.csv", "total", "all-particle", 0.0),
    "KASCADE-Grande2013": (
        "cr_allparticle_KASCADEGrande2013_QGSJETII-02.csv", "total", "all-particle", 0.0,
    ),
    "KASCADE-Grande-QGSJETII-04": (
        "cr_allparticle_KASCADEGrande_QGSJETII-04.csv", "total", "all-particle", 0.0,
    ),
    # protons from air showers (the proton fraction depends on the hadronic model)
    "GRAPES-3-2024": ("cr_proton_GRAPES3_2024.csv", "total", "proton", 0.0),
    "LHAASO-2025-knee": ("cr_proton_LHAASO2025_knee.csv", "total", "proton", 0.0),
    "LHAASO-2025-knee-EPOS-LHC": ("cr_proton_LHAASO2025_knee_EPOS-LHC.csv", "total", "proton", 0.0),
    # LHAASO all-particle spectrum 0.3-30 PeV (PRL 132, 131002, 2024), one file per hadronic model;
    # its mean log-mass is composition_LHAASO2024_lnA.csv, documentation only (no loader)
    "LHAASO-2024-allparticle": ("cr_allparticle_LHAASO2024_QGSJETII-04.csv", "total", "all-particle", 0.0),
    "LHAASO-2024-allparticle-EPOS-LHC": ("cr_allparticle_LHAASO2024_EPOS-LHC.csv", "total", "all-particle", 0.0),
    "LHAASO-2024-allparticle-SIBYLL-2.3d": (
        "cr_allparticle_LHAASO2024_SIBYLL-2.3d.csv", "total", "all-particle", 0.0,
    ),
}

# The paper's "does not exceed the observed flux" with all of it: direct proton
# spectra (AMS-02 above 20 GeV, where solar modulation is small) and the
# KASCADE / KASCADE-Grande all-particle spectra of its Fig. 4 (docs/physics.md sec. 2).
DEFAULT_CR_DATASETS = ("AMS02", "DAMPE", "CREAM-III", "KASCADE2011", "KASCADE-Grande2013")

# IceCube: per-flavour (nu + nubar of one flavour) astrophysical flux; one spectrum per likelihood
NEUTRINO_DATASETS = {
    "IceCube-HESE-7.5yr": "nu_IceCube_HESE7.5yr_segmented.csv",
    "IceCube-NST-9.5yr": "nu_IceCube_NST9.5yr_segmented.csv",
    "IceCube-combined-2026": "nu_IceCube2026_combinedfit_segmented.csv",
    "IceCube-MESE-2026": "nu_IceCube2026_MESE_segmented.csv",
}
# one event: an E^-2 flux estimate over its 90 % energy range (E_lo_GeV, E_hi_GeV); the joint
# KM3NeT + IceCube + Auger estimate (arXiv:2502.08173) is the flux expecting that one event in the
# three experiments' exposures together
NEUTRINO_EVENT_DATASETS = {
    "KM3NeT-KM3-230213A": "nu_KM3NeT_KM3-230213A.csv",
    "KM3NeT-IceCube-Auger-joint": "nu_KM3NeT_IceCube_Auger_joint_KM3-230213A.csv",
}
# event data set -> its detector's published effective area (load_effective_area); an event data set
# without one is compared as an E^-2-equivalent flux (inference.terms.neutrino_event_terms)
EFFECTIVE_AREAS = {"KM3NeT-KM3-230213A": "nu_KM3NeT_ARCA_KM3-230213A_effective_area.csv"}

# LHAASO-KM2A diffuse gamma rays averaged over a sky region (Cao et al. 2023, PRL 131, 151001):
# name -> (file, (l_min, l_max) [deg], |b| < b_max [deg]); known sources are masked in the data
GAMMA_REGION_DATASETS = {
    "LHAASO-KM2A-inner": ("gamma_LHAASO_KM2A2023_diffuse_inner.csv", (15.0, 125.0), 5.0),
    "LHAASO-KM2A-outer": ("gamma_LHAASO_KM2A2023_diffuse_outer.csv", (125.0, 235.0), 5.0),
}
DEFAULT_NEUTRINO_DATASET = "IceCube-HESE-7.5yr"

# IceCube Galactic-plane templates (Science 380, 1338, 2023), each scaled to its best-fit normalisation:
# per-flavour flux integrated over the template / 4 pi (extra: flux_skyintegrated). Concentrated in the
# plane, so not an all-sky spectrum: a bound on the corona's projection on a plane template
# |b| < NEUTRINO_TEMPLATE_PLANE_B_MAX_DEG (inference.terms.NeutrinoTemplate), not in NEUTRINO_DATASETS
NEUTRINO_TEMPLATE_DATASETS = {
    "IceCube-GP-2023-KRA5": "nu_IceCube2023_GalacticPlane_KRA5.csv",
    "IceCube-GP-2023-KRA50": "nu_IceCube2023_GalacticPlane_KRA50.csv",
    "IceCube-GP-2023-pi0": "nu_IceCube2023_GalacticPlane_pi0.csv",
}
NEUTRINO_TEMPLATE_PLANE_B_MAX_DEG = 5.0  # the uniform band standing in for each template's sky

# Fermi-LAT IGRB (Ackermann et al. 2015) for foreground models A, B, C, as dN/dE
GAMMA_DATASETS = {f"Fermi-IGRB-{m}": f"gamma_FermiLAT_IGRB2015_differential_model{m}.csv" for m in "ABC"}
DEFAULT_GAMMA_DATASET = "Fermi-IGRB-A"

_COLUMNS = ("E_GeV", "E_lo_GeV", "E_hi_GeV", "flux", "err_lo", "err_hi", "is_upper_limit")

# data set -> its publication's table of errors by source, in rigidity bins (a different layout:
# load_error_breakdown)
ERROR_BREAKDOWNS = {"AMS02": "cr_proton_AMS02_2015_error_breakdown.csv"}
_BREAKDOWN_COLUMNS = ("Rigidity_GV_inf", "Rigidity_GV_sup", "Phi", "sigma_stat", "sigma_syst")


def _read_text(filename):
    try:
        return resources.files("corona_jax.data").joinpath("observations", filename).read_text()
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"data file {filename} is missing from the installation ({exc})") from None


def _split_header(text: str):
    """('key: value' metadata of the '#' header, the CSV lines below it)."""
    meta, rows = {}, []
    for line in text.splitlines():
        if line.startswith("#"):
            body = line[1:].strip()
            if ":" in body and not line.startswith("#   "):
                key, value = body.split(":", 1)
                meta.setdefault(key.strip(), value.strip())
        elif line.strip():
            rows.append(line)
    return meta, rows


def parse_spectrum_csv(text: str, name: str):
    """Parse header metadata and columns; DataError names the file and the problem."""
    meta, rows = _split_header(text)
    if not rows:
        raise DataError(f"{name}: no table found")
    table = list(csv.DictReader(io.StringIO("\n".join(rows))))
    missing = [c for c in _COLUMNS if c not in (table[0].keys() if table else ())]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}")
    for key in ("dataset", "reference", "source"):
        if key not in meta:
            raise DataError(f"{name}: provenance header lacks '{key}'")

    def column(col):
        try:
            return np.array([float(r[col]) if r[col] not in ("", None) else math.nan for r in table])
        except ValueError as exc:
            raise DataError(f"{name}: column {col} is not numeric ({exc})") from None

    cols = {c: column(c) for c in table[0].keys()}
    E, flux, ul = cols["E_GeV"], cols["flux"], cols["is_upper_limit"]
    if not (np.all(np.isfinite(E)) and np.all(E > 0)):
        raise DataError(f"{name}: energies must be finite and positive")
    if not np.all(np.isfinite(flux)) or np.any(flux < 0):
        raise DataError(f"{name}: fluxes must be finite and non-negative")
    if not np.all(np.isin(ul, (0.0, 1.0))):
        raise DataError(f"{name}: is_upper_limit must be 0 or 1")
    return meta, cols


def load_cosmic_ray_dataset(name: str) -> SpectralData:
    """Load one of COSMIC_RAY_DATASETS, keeping rows above its lowest trusted energy."""
    try:
        filename, kind, species, E_min = COSMIC_RAY_DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown cosmic-ray data set {name!r}; choose from {', '.join(COSMIC_RAY_DATASETS)}"
        ) from None
    meta, cols = parse_spectrum_csv(_read_text(filename), filename)
    keep = (cols["E_GeV"] >= E_min) & (cols["flux"] > 0)
    return SpectralData(
        name=name,
        E_GeV=cols["E_GeV"][keep],
        flux_per_GeV_cm2_s_sr=cols["flux"][keep],
        err_lo=cols["err_lo"][keep],
        err_hi=cols["err_hi"][keep],
        is_upper_limit=cols["is_upper_limit"][keep].astype(bool),
        energy_kind=kind,
        species=species,
        reference=meta["reference"],
        meta=meta,
    )


def _load_diffuse(name, files, species):
    try:
        filename = files[name]
    except KeyError:
        raise DataError(f"unknown {species} data set {name!r}; choose from {', '.join(files)}") from None
    meta, cols = parse_spectrum_csv(_read_text(filename), filename)
    return SpectralData(
        name=name,
        E_GeV=cols["E_GeV"],
        flux_per_GeV_cm2_s_sr=cols["flux"],
        err_lo=cols["err_lo"],
        err_hi=cols["err_hi"],
        is_upper_limit=cols["is_upper_limit"].astype(bool),
        energy_kind="total",
        species=species,
        reference=meta["reference"],
        meta=meta,
        extra={k: v for k, v in cols.items() if k not in _COLUMNS or k in ("E_lo_GeV", "E_hi_GeV")},
    )


def load_neutrino_dataset(name: str = DEFAULT_NEUTRINO_DATASET) -> SpectralData:
    """One IceCube astrophysical spectrum, per flavour (upper limits flagged)."""
    return _load_diffuse(name, NEUTRINO_DATASETS, "neutrino per flavour")


def load_neutrino_template(name: str) -> SpectralData:
    """A Galactic-plane neutrino template's best-fit flux, per flavour: flux = sky-integrated / 4 pi sr,
    extra holds flux_skyintegrated [GeV^-1 cm^-2 s^-1]; the errors are one normalisation's, correlated."""
    return _load_diffuse(name, NEUTRINO_TEMPLATE_DATASETS, "neutrino template")


def load_neutrino_event(name: str) -> SpectralData:
    """A one-event neutrino flux estimate, per flavour; extra holds its energy range E_lo/E_hi_GeV."""
    return _load_diffuse(name, NEUTRINO_EVENT_DATASETS, "neutrino event")


class EffectiveArea(NamedTuple):
    """A neutrino telescope's sky-averaged, all-flavour effective area and livetime: an isotropic
    per-flavour flux Phi_1f gives N = 4 pi T int A_eff(E) Phi_1f(E) dE expected events."""

    name: str
    E_GeV: np.ndarray
    area_cm2: np.ndarray
    livetime_s: float
    reference: str
    meta: dict


def load_effective_area(name: str) -> EffectiveArea:
    """The effective area of EFFECTIVE_AREAS[name] (KM3NeT/ARCA for KM3-230213A: its data release)."""
    if name not in EFFECTIVE_AREAS:
        raise DataError(f"no effective area for {name!r}; available: {', '.join(EFFECTIVE_AREAS)}")
    filename = EFFECTIVE_AREAS[name]
    meta, rows = _split_header(_read_text(filename))
    table = list(csv.DictReader(io.StringIO("\n".join(rows))))
    if not table or any(c not in table[0] for c in ("E_GeV", "Aeff_cm2")) or "reference" not in meta:
        raise DataError(f"{filename}: missing columns E_GeV, Aeff_cm2 or provenance")
    try:
        E, area = (np.array([float(r[c]) for r in table]) for c in ("E_GeV", "Aeff_cm2"))
        livetime_s = float(meta["livetime_s"])
    except (KeyError, ValueError) as exc:
        raise DataError(f"{filename}: non-numeric value or no livetime_s ({exc})") from None
    if not (np.all(np.diff(E) > 0) and E[0] > 0 and np.all(area >= 0) and livetime_s > 0):
        raise DataError(f"{filename}: energies must increase, areas be >= 0 and the livetime > 0")
    return EffectiveArea(name, E, area, livetime_s, meta["reference"], meta)


def load_gamma_region(name: str):
    """(SpectralData, (l_min, l_max) [deg], b_max [deg]) of a region-averaged diffuse gamma-ray spectrum."""
    if name not in GAMMA_REGION_DATASETS:
        raise DataError(f"unknown gamma-ray region data set {name!r}; choose from {', '.join(GAMMA_REGION_DATASETS)}")
    filename, l_range, b_max = GAMMA_REGION_DATASETS[name]
    return _load_diffuse(name, {name: filename}, "gamma"), l_range, b_max


def load_gamma_dataset(name: str = DEFAULT_GAMMA_DATASET) -> SpectralData:
    """The Fermi-LAT IGRB for one foreground model; extra holds fgsyst_lo/hi and the EGB."""
    return _load_diffuse(name, GAMMA_DATASETS, "gamma")


FERMI_BANDS_FILE = "gamma_FermiLAT_IGRB2015_integrated_bands.csv"
FOREGROUND_MODELS = ("A", "B", "C")


class BandData(NamedTuple):
    """Band-integrated intensities [ph cm^-2 s^-1 sr^-1] (Fermi-LAT IGRB for one foreground model)."""

    name: str
    E_lo_GeV: np.ndarray
    E_hi_GeV: np.ndarray
    intensity_per_cm2_s_sr: np.ndarray
    err_lo: np.ndarray  # statistical + instrumental, absolute
    err_hi: np.ndarray
    fgsyst_lo: np.ndarray  # foreground-model systematic, correlated across bands
    fgsyst_hi: np.ndarray
    reference: str
    meta: dict


def load_gamma_bands(foreground_model: str = "A") -> BandData:
    """The Fermi-LAT IGRB (Ackermann et al. 2015) integrated over its 26 bands, for model A, B or C."""
    if foreground_model not in FOREGROUND_MODELS:
        raise DataError(f"unknown Fermi-LAT foreground model {foreground_model!r}; choose A, B or C")
    meta, rows = _split_header(_read_text(FERMI_BANDS_FILE))
    table = [r for r in csv.DictReader(io.StringIO("\n".join(rows))) if r.get("model") == foreground_model]
    needed = ("Emin_GeV", "Emax_GeV", "IGRB_int", "IGRB_err_lo", "IGRB_err_up", "IGRB_fgsyst_lo", "IGRB_fgsyst_up")
    if not table or any(c not in table[0] for c in needed) or "reference" not in meta:
        raise DataError(f"{FERMI_BANDS_FILE}: missing rows, columns or provenance")
    try:
        col = {c: np.array([float(r[c]) for r in table]) for c in needed}
    except ValueError as exc:
        raise DataError(f"{FERMI_BANDS_FILE}: non-numeric value ({exc})") from None
    if not (np.all(col["Emax_GeV"] > col["Emin_GeV"]) and np.all(col["IGRB_err_up"] > 0)):
        raise DataError(f"{FERMI_BANDS_FILE}: bad band edges or errors")
    return BandData(f"Fermi-IGRB-{foreground_model}", col["Emin_GeV"], col["Emax_GeV"], col["IGRB_int"],
                    col["IGRB_err_lo"], col["IGRB_err_up"], col["IGRB_fgsyst_lo"], col["IGRB_fgsyst_up"],
                    meta["reference"], meta)


def segment_flux(data, E_GeV) -> float:
    """dN/dE [GeV^-1 cm^-2 s^-1 sr^-1] of a segmented fit at E: the segment holding E, in which
    E^2 dN/dE is constant (IceCube's segmented spectra)."""
    lo, hi = data.extra["E_lo_GeV"], data.extra["E_hi_GeV"]
    k = int(np.flatnonzero((lo <= E_GeV) & (E_GeV < hi))[0])
    return float(data.flux_per_GeV_cm2_s_sr[k] * (data.E_GeV[k] / E_GeV) ** 2)


def load_error_breakdown(name: str) -> dict:
    """The error table of ERROR_BREAKDOWNS[name]: column -> array (bin edges R [GV], the flux Phi and
    each sigma_<source> in the units of Phi); DataError names a missing or malformed file."""
    try:
        filename = ERROR_BREAKDOWNS[name]
    except KeyError:
        raise DataError(f"no error breakdown for data set {name!r}; available: {', '.join(ERROR_BREAKDOWNS)}") from None
    meta, rows = _split_header(_read_text(filename))
    table = list(csv.DictReader(io.StringIO("\n".join(rows)), skipinitialspace=True))
    columns = [c.strip() for c in (table[0].keys() if table else ())]
    missing = [c for c in _BREAKDOWN_COLUMNS if c not in columns]
    if missing or "reference" not in meta:
        raise DataError(f"{filename}: missing column(s) or provenance: {', '.join(missing) or 'reference'}")
    try:
        out = {c.strip(): np.array([float(r[c]) for r in table]) for c in table[0].keys()}
    except (TypeError, ValueError) as exc:
        raise DataError(f"{filename}: a value is not numeric ({exc})") from None
    if not all(np.all(np.isfinite(v)) for v in out.values()) or np.any(out["Phi"] <= 0):
        raise DataError(f"{filename}: values must be finite and fluxes positive")
    return out
