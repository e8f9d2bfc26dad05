"""gammapy's formats: data and predictions as GADF flux points, the corona as gammapy models.

The one place where astropy units appear. Flux points are ECSV tables (`e_ref`, `e_min`,
`e_max`, the SED columns `<sed>`, `<sed>_errn`, `<sed>_errp`, `<sed>_ul` and `is_ul`, the SED
type in the `SED_TYPE` key) with the intensities per steradian that the data and the model
are: dN/dE [GeV^-1 cm^-2 s^-1 sr^-1] ('dnde') or a band-integrated intensity
[cm^-2 s^-1 sr^-1] ('flux', the Fermi-LAT IGRB bands). Upper-limit rows carry the limit in
`<sed>_ul` and NaN in `<sed>`.

gammapy (2.1) assumes point-source units when it reads flux points: without a reference model
in the same units FluxPoints.read refuses sr^-1, and its to_table, write and plot convert to
point-source units and fail. `read_flux_points` passes such a reference model
(`intensity_reference_model`); the files are written here, with astropy, not through gammapy.

gammapy models: the isotropic part (Milky Way anticentre + other galaxies) as a SkyModel of a
TemplateSpectralModel times ConstantSpatialModel (gammapy's convention: the spectral values
are the intensity with sr^-1 moved to the spatial model's 1 sr^-1); the Milky Way's sky
I(psi, E) as a TemplateSpatialModel map cube (CAR, Galactic) with an energy axis.
"""

import json
import math
import os

import numpy as np

from . import observations, sky
from .errors import ConfigError, DataError, OutputError, install_hint
from .output import atomic_write, check_writable

INTENSITY_UNIT = "GeV-1 cm-2 s-1 sr-1"
BAND_UNIT = "cm-2 s-1 sr-1"
PREDICTIVE_PERCENTILES = (2.5, 16.0, 50.0, 84.0, 97.5)  # 95 / 68 % bands and median (also inference.plots')
EDGE_CENTRE_RTOL = 1e-6  # e_ref within this of sqrt(e_min e_max): gammapy's energy_ref is e_ref
BAND_SUFFIX = "-bands"  # the IGRB's band intensities: Fermi-IGRB-A-bands, ...
BAND_TERMS = {*(f"Fermi-IGRB-{m}" for m in observations.FOREGROUND_MODELS), "Fermi-IGRB-interpolated"}


def _gammapy():
    """The gammapy package, or ConfigError naming the extra."""
    try:
        import gammapy
    except ImportError:
        raise ConfigError(f"gammapy formats need gammapy: {install_hint('gammapy')}") from None
    return gammapy


def dataset_names() -> list:
    """Every observational data set that exports as flux points."""
    return [*observations.COSMIC_RAY_DATASETS, *observations.GAMMA_DATASETS,
            *(f"Fermi-IGRB-{m}{BAND_SUFFIX}" for m in observations.FOREGROUND_MODELS),
            *observations.GAMMA_REGION_DATASETS, *observations.NEUTRINO_DATASETS,
            *observations.NEUTRINO_EVENT_DATASETS, *observations.NEUTRINO_TEMPLATE_DATASETS]


def flux_points_table(E_GeV, value, sed_type, unit, err_lo=None, err_hi=None, is_upper_limit=None,
                      E_lo_GeV=None, E_hi_GeV=None, meta=None):
    """An astropy Table in GADF flux-point layout. value holds the limit on upper-limit rows.
    Bin edges are written where every row has them: as e_min / e_max where e_ref is their
    geometric mean, else as bin_e_min / bin_e_max (gammapy takes the bins' log centres for
    energy_ref and ignores e_ref, which would move such a point to another energy)."""
    import astropy.units as u
    from astropy.table import Table

    E = np.asarray(E_GeV, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    ul = np.zeros(E.size, bool) if is_upper_limit is None else np.asarray(is_upper_limit, bool)
    unit = u.Unit(unit)
    table = Table(meta={"SED_TYPE": sed_type, **(meta or {})})
    table["e_ref"] = E * u.GeV
    if E_lo_GeV is not None and np.all(np.isfinite(E_lo_GeV)) and np.all(np.isfinite(E_hi_GeV)):
        lo, hi = np.asarray(E_lo_GeV, dtype=np.float64), np.asarray(E_hi_GeV, dtype=np.float64)
        centred = np.allclose(np.sqrt(lo * hi), E, rtol=EDGE_CENTRE_RTOL, atol=0.0)
        table["e_min" if centred else "bin_e_min"] = lo * u.GeV
        table["e_max" if centred else "bin_e_max"] = hi * u.GeV
    table[sed_type] = np.where(ul, np.nan, value) * unit
    if err_lo is not None:
        table[f"{sed_type}_errn"] = np.where(ul, np.nan, np.asarray(err_lo, dtype=np.float64)) * unit
        table[f"{sed_type}_errp"] = np.where(ul, np.nan, np.asarray(err_hi, dtype=np.float64)) * unit
    if ul.any():
        table[f"{sed_type}_ul"] = np.where(ul, value, np.nan) * unit
    table["is_ul"] = ul
    return table


def _spectrum_meta(d: observations.SpectralData, **more):
    meta = {"name": d.name, "species": d.species, "energy": f"{d.energy_kind} energy per particle",
            "reference": d.reference, "corona_jax_dataset": d.name}
    if d.species.startswith("neutrino"):
        meta["flavour"] = "per flavour, nu + nubar of one flavour"
    return {**meta, **more}


def data_table(name: str):
    """Flux points of one observational data set (dataset_names()); DataError for an unknown name."""
    if name.endswith(BAND_SUFFIX) and name.removesuffix(BAND_SUFFIX).startswith("Fermi-IGRB-"):
        b = observations.load_gamma_bands(name.removesuffix(BAND_SUFFIX).removeprefix("Fermi-IGRB-"))
        table = flux_points_table(np.sqrt(b.E_lo_GeV * b.E_hi_GeV), b.intensity_per_cm2_s_sr, "flux", BAND_UNIT,
                                  b.err_lo, b.err_hi, None, b.E_lo_GeV, b.E_hi_GeV,
                                  {"name": name, "species": "gamma", "reference": b.reference,
                                   "errors": "statistical + instrumental; the foreground-model systematic, "
                                             "correlated across bands, in fgsyst_lo / fgsyst_hi"})
        table["fgsyst_lo"] = b.fgsyst_lo * table["flux"].unit
        table["fgsyst_hi"] = b.fgsyst_hi * table["flux"].unit
        return table
    if name in observations.COSMIC_RAY_DATASETS:
        d = observations.load_cosmic_ray_dataset(name)
        more = {"rows": f"from {observations.COSMIC_RAY_DATASETS[name][3]:g} GeV on, as corona_jax uses them"}
    elif name in observations.GAMMA_DATASETS:
        d, more = observations.load_gamma_dataset(name), {}
    elif name in observations.GAMMA_REGION_DATASETS:
        d, (l_min, l_max), b_max = observations.load_gamma_region(name)
        more = {"region": f"{l_min:g} < l < {l_max:g} deg, |b| < {b_max:g} deg (Galactic); a region average"}
    elif name in observations.NEUTRINO_DATASETS:
        d, more = observations.load_neutrino_dataset(name), {}
    elif name in observations.NEUTRINO_EVENT_DATASETS:
        d, more = observations.load_neutrino_event(name), {"event": "one event: an E^-2 flux over its energy range"}
    elif name in observations.NEUTRINO_TEMPLATE_DATASETS:
        d = observations.load_neutrino_template(name)
        more = {"template": "a Galactic-plane template's fitted flux: sky-integrated / 4 pi sr, curve points; "
                            "the errors are one normalisation's, fully correlated across rows"}
    else:
        raise DataError(f"unknown data set {name!r}; choose from {', '.join(dataset_names())} or 'all'")
    edges = d.extra.get("E_lo_GeV"), d.extra.get("E_hi_GeV")
    return flux_points_table(d.E_GeV, d.flux_per_GeV_cm2_s_sr, "dnde", INTENSITY_UNIT, d.err_lo, d.err_hi,
                             d.is_upper_limit, *edges, _spectrum_meta(d, **more))


def spectrum_table(E_GeV, intensity, name, what):
    """Flux points (dnde, no errors) of a model spectrum [GeV^-1 cm^-2 s^-1 sr^-1] on its energy grid."""
    return flux_points_table(E_GeV, intensity, "dnde", INTENSITY_UNIT, meta={"name": name, "model": what})


def forward_tables(path: str) -> dict:
    """{file stem: table} of a forward result file (corona-jax forward): the isotropic gamma rays and
    per-flavour neutrinos (Milky Way anticentre + other galaxies)."""
    f = _read_forward(path)
    return {"forward_isotropic_gamma": spectrum_table(f["E_GeV"], f["gamma"], "isotropic gamma rays", f["what"]),
            "forward_isotropic_nu_per_flavour": spectrum_table(
                f["E_GeV"], f["nu_per_flavour"], "isotropic neutrinos per flavour", f["what"])}


def _read_forward(path: str) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {"E_GeV": f["grids/E_secondary_GeV"][()], "gamma": f["total/gamma"][()],
                    "nu_per_flavour": f["total/nu_per_flavour"][()], "other_gamma": f["extragalactic/gamma"][()],
                    "psi_rad": f["grids/psi_rad"][()], "sky_gamma": f["milky_way/intensity_gamma"][()],
                    "what": f"corona_jax {f.attrs.get('corona_jax_version', '?')} forward result {os.path.basename(path)}"}
    except (OSError, KeyError) as exc:
        raise DataError(f"{path} is not a forward result file (corona-jax forward --out): {exc}") from None


def posterior_tables(path: str) -> dict:
    """{file stem: table} of a posterior (corona-jax sample): per data set, the posterior-predictive
    median with its 68 % band (posterior_<name>_68) and 95 % band (posterior_<name>_95) as
    asymmetric errors, at the data's points, with the percentiles of inference.plots' bands."""
    idata = _read_posterior(path)
    out = {}
    for name in idata.posterior_predictive.data_vars:
        E = np.asarray(idata.constant_data[f"{name} E_GeV"], dtype=np.float64)
        draws = np.asarray(idata.posterior_predictive[name], dtype=np.float64).reshape(-1, E.size)
        lo95, lo68, mid, hi68, hi95 = np.percentile(draws, PREDICTIVE_PERCENTILES, axis=0)
        sed, unit, edges = _term_sed(name, E)
        for level, lo, hi in ((68, lo68, hi68), (95, lo95, hi95)):
            meta = {"name": name, "model": f"posterior-predictive median and central {level} % band of "
                                            f"{os.path.basename(path)}", "credible_level": level / 100,
                    "n_sigma": 1 if level == 68 else 2, "draws": draws.shape[0]}
            out[f"posterior_{name}_{level}"] = flux_points_table(E, mid, sed, unit, mid - lo, hi - mid, None, *edges, meta)
    return out


def _read_posterior(path: str):
    import arviz as az

    try:
        idata = az.from_netcdf(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a posterior file (corona-jax sample --out): {exc}") from None
    if not all(hasattr(idata, group) for group in ("posterior_predictive", "constant_data")):
        raise DataError(f"{path} has no posterior-predictive draws (corona-jax sample --out writes them)")
    return idata


def _term_sed(name: str, E_GeV):
    """(sed type, unit, (E_lo, E_hi) or (None, None)) of a likelihood term's values."""
    if name in BAND_TERMS:
        b = observations.load_gamma_bands("A")  # the three foreground models share their bands
        if np.allclose(np.sqrt(b.E_lo_GeV * b.E_hi_GeV), E_GeV):
            return "flux", BAND_UNIT, (b.E_lo_GeV, b.E_hi_GeV)
        raise DataError(f"the posterior's {name} points are not the Fermi-LAT IGRB bands")
    return "dnde", INTENSITY_UNIT, (None, None)


def fit_tables(path: str) -> dict:
    """{file stem: table} of a best fit (corona-jax fit): the model at every data point of the fit's
    configuration (fit_<name>) and its isotropic spectra (fit_isotropic_*), evaluated at the best fit."""
    from corona_jax import forward
    from corona_jax.inference import model as inference_model
    from corona_jax.inference.systematics import corona_params

    setup, best = _read_fit(path)
    nuisances = inference_model.nuisance_distributions(setup.problem)
    predicted, _ = inference_model.predictions_and_derived(setup, {k: np.array([v]) for k, v in best.items()})
    out = {}
    for term in setup.terms:
        sed, unit, edges = _term_sed(term.name, np.asarray(term.E_GeV))
        out[f"fit_{term.name}"] = flux_points_table(term.E_GeV, predicted[term.name][0], sed, unit, None, None, None,
                                                    *edges, {"name": term.name, "model": f"best fit of {path}"})
    params = corona_params(setup.problem.base_params, {k: v for k, v in best.items() if k not in nuisances})
    pred = forward.forward(params, setup.model)
    E = np.asarray(setup.model.milky_way.E_secondary_GeV)
    what = f"best fit of {os.path.basename(path)}"
    out["fit_isotropic_gamma"] = spectrum_table(E, np.asarray(pred.total.gamma), "isotropic gamma rays", what)
    out["fit_isotropic_nu_per_flavour"] = spectrum_table(
        E, np.asarray(pred.total.nu_all_flavour) / forward.NEUTRINO_FLAVOURS, "isotropic neutrinos per flavour", what)
    return out


def _read_fit(path: str):
    """(Setup, {parameter: best-fit value}) of a fit file (inference.results.write_fit's layout)."""
    import h5py
    from corona_jax.inference.config import Prior, RunConfig
    from corona_jax.inference.model import build_setup

    try:
        with h5py.File(path, "r") as f:
            raw = json.loads(f.attrs["config"])
            best = {n: float(f["best_fit"][n][()]) for n in f.attrs["parameters"].split(",") if n}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path} is not a fit file (corona-jax fit --out): {exc}") from None
    raw["priors"] = {k: Prior(**v) for k, v in raw["priors"].items()}
    raw["systematics"] = tuple(raw["systematics"])
    return build_setup(RunConfig(**raw)), best


def intensity_reference_model():
    """A gammapy reference model in intensity units (E^-2, GeV^-1 cm^-2 s^-1 sr^-1), which
    FluxPoints.read needs for flux points per steradian: its spatial part is a dimensionless norm,
    so gammapy's unit check accepts a spectral model with sr^-1."""
    _gammapy()
    import astropy.units as u
    from gammapy.maps import MapCoord
    from gammapy.modeling.models import PiecewiseNormSpatialModel, SkyModel, TemplateSpectralModel

    E = np.geomspace(1e-6, 1e15, 22) * u.GeV
    spectral = TemplateSpectralModel(energy=E, values=(E / u.GeV) ** -2 * u.Unit(INTENSITY_UNIT))
    corners = MapCoord.create({"lon": [-30.0, 30.0, -30.0, 30.0] * u.deg, "lat": [-30.0, -30.0, 30.0, 30.0] * u.deg},
                              frame="galactic")
    return SkyModel(spectral_model=spectral, spatial_model=PiecewiseNormSpatialModel(corners), name="per-sr-reference")


def read_flux_points(path: str):
    """gammapy FluxPoints of a file written here (intensities per steradian)."""
    _gammapy()
    from gammapy.estimators import FluxPoints

    return FluxPoints.read(path, reference_model=intensity_reference_model())


def isotropic_sky_model(E_GeV, intensity, name="corona-isotropic"):
    """SkyModel of an isotropic intensity [GeV^-1 cm^-2 s^-1 sr^-1] on an energy grid: a
    TemplateSpectralModel (the intensity x 1 sr) times a ConstantSpatialModel (1 sr^-1), so that the
    model evaluates to the intensity. Energies where it is 0 are left out (log interpolation)."""
    _gammapy()
    import astropy.units as u
    from gammapy.modeling.models import ConstantSpatialModel, SkyModel, TemplateSpectralModel

    E, I = np.asarray(E_GeV, dtype=np.float64), np.asarray(intensity, dtype=np.float64)
    keep = I > 0
    spectral = TemplateSpectralModel(energy=E[keep] * u.GeV, values=I[keep] * u.Unit(INTENSITY_UNIT) * u.sr)
    return SkyModel(spectral_model=spectral, spatial_model=ConstantSpatialModel(value=1.0 / u.sr), name=name)


def milky_way_map(E_GeV, psi_rad, I_psi_E, binsz_deg=1.0):
    """gammapy Map (CAR, Galactic, axis energy_true) of the Milky Way's intensity I(psi, E)
    [GeV^-1 cm^-2 s^-1 sr^-1], interpolated in psi as corona_jax.sky does."""
    _gammapy()
    import astropy.units as u
    from gammapy.maps import Map, MapAxis, WcsGeom

    E = np.asarray(E_GeV, dtype=np.float64)
    axis = MapAxis.from_nodes(E * u.GeV, name="energy_true", interp="log")
    geom = WcsGeom.create(binsz=binsz_deg, width=(360.0, 180.0), frame="galactic", proj="CAR", axes=[axis])
    lon, lat = geom.to_image().get_coord()
    psi = sky.galactic_psi_rad(lon.to_value(u.deg), lat.to_value(u.deg))
    cube = Map.from_geom(geom, unit=INTENSITY_UNIT, dtype=np.float64)
    I = np.asarray(I_psi_E, dtype=np.float64)
    for k in range(E.size):
        cube.data[k] = sky.intensity_at_psi(I[:, k], np.asarray(psi_rad), psi)
    return cube


def milky_way_sky_model(cube, name="corona-milky-way"):
    """SkyModel of a Milky Way map cube: TemplateSpatialModel (not normalised: the cube is the
    intensity) times a PowerLawNormSpectralModel of norm 1."""
    _gammapy()
    from gammapy.modeling.models import PowerLawNormSpectralModel, SkyModel, TemplateSpatialModel

    spatial = TemplateSpatialModel(cube, normalize=False, filename=f"{name}.fits")
    return SkyModel(spectral_model=PowerLawNormSpectralModel(), spatial_model=spatial, name=name)


def gammapy_model_files(path: str, binsz_deg=1.0) -> dict:
    """{file name: writer(tmp path)} of the corona as gammapy models from a forward result file:
    corona_isotropic.yaml (the isotropic part: anticentre + other galaxies), and the whole sky
    without counting the anticentre twice, corona_sky.yaml: the Milky Way's map cube
    (corona-milky-way.fits) plus the other galaxies (isotropic)."""
    import yaml

    f = _read_forward(path)
    iso = isotropic_sky_model(f["E_GeV"], f["gamma"], "corona-isotropic")
    other = isotropic_sky_model(f["E_GeV"], f["other_gamma"], "corona-other-galaxies")
    cube = milky_way_map(f["E_GeV"], f["psi_rad"], f["sky_gamma"], binsz_deg)
    mw = milky_way_sky_model(cube)

    def models_yaml(models):  # not Models.to_yaml, which also writes the map file into the working folder
        text = yaml.dump({"components": [m.to_dict() for m in models]}, sort_keys=False, default_flow_style=False)
        return lambda tmp: _write_text(tmp, text)

    return {"corona_isotropic.yaml": models_yaml([iso]), "corona_sky.yaml": models_yaml([mw, other]),
            "corona-milky-way.fits": lambda tmp: cube.write(tmp, format="gadf", overwrite=True)}


def _write_text(path, text):
    with open(path, "w") as out:
        out.write(text)


def ecsv_writers(tables: dict) -> dict:
    """{<stem>.ecsv: writer(tmp path)} of {stem: table}, for write_files."""
    return {f"{stem}.ecsv": (lambda t: lambda tmp: t.write(tmp, format="ascii.ecsv"))(table)
            for stem, table in tables.items()}


def check_targets(names, out_dir: str, overwrite=False) -> list:
    """The absolute target paths, or OutputError (one line) for an existing file without overwrite,
    or a folder or file that cannot be written: before anything is written."""
    if not os.path.isdir(out_dir):
        raise OutputError(f"output folder {os.path.abspath(out_dir)} does not exist")
    paths = [check_writable(os.path.join(out_dir, n)) for n in names]
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]} exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; "
                          "give --overwrite to replace it")
    return paths


def write_files(writers: dict, out_dir: str, overwrite=False) -> list:
    """Write {file name: writer(tmp path)} into out_dir, each file atomically, after check_targets."""
    paths = check_targets(writers, out_dir, overwrite)
    suffix = {".ecsv": ".tmp.ecsv", ".yaml": ".tmp.yaml", ".fits": ".tmp.fits"}
    for path, write in zip(paths, writers.values()):
        with atomic_write(path, suffix.get(os.path.splitext(path)[1], ".tmp")) as tmp:
            write(tmp)
    return paths


def add_export_parser(subparsers):
    """The `export` command."""
    p = subparsers.add_parser(
        "export", help="data and predictions as gammapy (GADF) flux points; the corona as gammapy models",
        description="Write GADF flux points (ECSV, intensities per sr; read them with "
                    "corona_jax.gadf.read_flux_points) of observational data sets, a forward result, a fit's best fit "
                    "or a posterior's median with 68 %% and 95 %% bands, and the corona as gammapy models.")
    p.add_argument("--out", required=True, metavar="DIR", help="existing folder for the files")
    p.add_argument("--data", action="append", metavar="NAME", help="a data set, or 'all' (repeatable)")
    p.add_argument("--forward", metavar="FILE.h5", help="a forward result (corona-jax forward --out)")
    p.add_argument("--fit", metavar="FILE.h5", help="a fit result (corona-jax fit --out)")
    p.add_argument("--posterior", metavar="FILE.nc", help="a posterior (corona-jax sample --out)")
    p.add_argument("--gammapy-model", action="store_true",
                   help="with --forward: also the corona as gammapy models (YAML and a FITS map cube)")
    p.add_argument("--map-binsz-deg", type=float, default=1.0, help="pixel size of the map cube [deg] (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args):
    """Check every input and target, then write; returns 0."""
    _gammapy()
    if not (args.data or args.forward or args.fit or args.posterior):
        raise ConfigError("export needs at least one of --data, --forward, --fit, --posterior")
    if args.gammapy_model and not args.forward:
        raise ConfigError("--gammapy-model needs --forward FILE.h5")
    if not (math.isfinite(args.map_binsz_deg) and 0 < args.map_binsz_deg <= 10):
        raise ConfigError(f"--map-binsz-deg must lie in (0, 10], got {args.map_binsz_deg:g}")
    names = dataset_names() if "all" in (args.data or []) else list(dict.fromkeys(args.data or []))
    unknown = [n for n in names if n not in dataset_names()]
    if unknown:
        raise DataError(f"unknown data set {unknown[0]!r}; choose from {', '.join(dataset_names())} or 'all'")
    for flag, path in (("--forward", args.forward), ("--fit", args.fit), ("--posterior", args.posterior)):
        if path and not os.path.isfile(path):
            raise DataError(f"{flag} {path}: no such file")
    tables = {n: data_table(n) for n in names}
    if args.forward:
        tables.update(forward_tables(args.forward))
    if args.posterior:
        tables.update(posterior_tables(args.posterior))
    if args.fit:
        tables.update(fit_tables(args.fit))
    writers = ecsv_writers(tables)
    if args.gammapy_model:
        writers.update(gammapy_model_files(args.forward, args.map_binsz_deg))
    for path in write_files(writers, args.out, args.overwrite):
        print(f"wrote {path}")
    return 0
