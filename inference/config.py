"""Run configurations (TOML) for `corona-jax fit` and `corona-jax sample`.

Sections and keys (unknown ones are refused with one clear error):

[model]    preset (fixed values of parameters without a prior), resolution, spectrum ('cutoff', the
           paper's, or 'broken': the observed features, corona_jax.spectrum) and features (where
           the broken spectrum's features act: 'injection', 'local' or 'diffusion')
[priors]   <parameter> = { uniform = [low, high] } or { normal = [mean, sd] }; besides the
           CoronaParams fields, log10_LCR_minus_log10_D0 (log10 of L_CR [erg/s] / D0 [cm^2/s])
           may replace log10_LCR_erg_s: the local flux fixes this ratio, so sampling it and
           log10_D0_cm2_s removes the strongest posterior correlation
[data]     one key per entry of inference.terms.DATA_SOURCES, and its mode key:
           cosmic_rays (list), cosmic_ray_mode ('bound' | 'measurement'),
           neutrinos (name | 'none'), neutrino_mode ('bound' | 'component' | 'measurement'),
           gamma_foreground ('A' | 'B' | 'C' | 'interpolated' | 'none'; 'interpolated': between A, B
           and C with the nuisance igrb_foreground_model), gamma_mode (the modes of neutrinos, or
           'power_law': the IGRB as a cut-off power law alone, without the corona)
           neutrino_event ('KM3NeT-KM3-230213A' | 'KM3NeT-IceCube-Auger-joint' | 'none'),
           neutrino_event_mode ('bound' | 'measurement'),
           gamma_regions (list of LHAASO-KM2A regions), gamma_region_mode ('bound' | 'measurement'),
           neutrino_templates (list of IceCube Galactic-plane templates), neutrino_template_mode ('bound')
[systematics] gas, hadronic, ebl, history, burst, nuclei = true | false: each switches on a group
           of nuisance parameters with the documented priors of inference.systematics.SYSTEMATICS
           (a prior of the same name in [priors] replaces the default); energy_scale = true gives
           every cosmic-ray data set its experiment's energy-scale nuisance
           (inference.energy_scale), energy_scale_sd = { EXPERIMENT = sd } replaces a prior's sd;
           solar_modulation = true gives the low-energy direct data (AMS-02, DAMPE, CALET) their
           epoch's force-field potential (inference.solar_modulation); correlated_errors = true
           gives the data sets with a published error breakdown (AMS-02) their covariance across
           energy (inference.covariance)
[data.mock] seed and a value for every prior's parameter: replace the data by the model
           there plus noise with the real data's relative errors
[sampler]  chains, warmup, samples, seed (>= 0), target_accept, max_tree_depth, checkpoint_every
           (samples per chain between checkpoints, default 100), init ('optimum':
           chains start near the L-BFGS optimum with its inverse Hessian as the first mass
           matrix, the default; 'prior': numpyro's random starts and a unit mass matrix)
[fit]      starts, seed, max_steps, profile (parameter name), profile_points
"""

import math
import tomllib
from dataclasses import dataclass, field

from corona_jax import grids, spectrum
from corona_jax.errors import ConfigError
from corona_jax.observations import ERROR_BREAKDOWNS
from corona_jax.params import PARAMETER_RANGES, PRESETS

from .energy_scale import EXPERIMENT_SCALES
from .solar_modulation import check_selects_modulated
from .systematics import RATIO_PARAMETER, REPARAMETERISED, SYSTEMATICS
from .terms import DATA_SOURCES

PRIOR_RANGES = {**PARAMETER_RANGES, **REPARAMETERISED}
# a reparameterised site and the CoronaParams field it sets cannot both be free
_SAME_FIELD = ((RATIO_PARAMETER, "log10_LCR_erg_s"), ("gas_outer_log10_scale", "n0_outer_cm3"),
               ("gas_outer_slope", "beta_outer"), ("gas_inner_log10_scale", "n0_inner_cm3"),
               ("burst_log10_energy_erg", "burst_energy_erg"))
SAMPLER_INITS = ("optimum", "prior")


def default_data() -> dict:
    """The [data] section when a key is not given: every source's default and default mode."""
    out = {}
    for key, source in DATA_SOURCES.items():
        out[key] = source.default
        if source.mode_key:
            out[source.mode_key] = source.default_mode
    return out


@dataclass(frozen=True)
class Prior:
    kind: str  # 'uniform' or 'normal'
    a: float  # low or mean
    b: float  # high or sd


@dataclass(frozen=True)
class RunConfig:
    preset: str = "baseline"
    resolution: str = "coarse"
    spectrum: str = "cutoff"
    features: str = "injection"
    priors: dict = field(default_factory=dict)  # parameter -> Prior (with the systematics' sites)
    systematics: tuple = ()  # the groups of [systematics] switched on
    energy_scales: bool = False  # each cosmic-ray data set with its experiment's energy-scale nuisance
    energy_scale_sd: dict = field(default_factory=dict)  # experiment -> prior sd replacing the default
    solar_modulation: bool = False  # the low-energy direct data with their epoch's force-field potential
    correlated_errors: bool = False  # data sets with a published error breakdown get their covariance
    data: dict = field(default_factory=default_data)  # [data] key -> data sets or mode
    mock: dict = field(default_factory=dict)  # parameter -> value, plus 'seed'
    chains: int = 4
    warmup: int = 500
    samples: int = 500
    seed: int = 0
    target_accept: float = 0.8
    max_tree_depth: int = 8
    init: str = "optimum"
    checkpoint_every: int = 100
    starts: int = 8
    fit_seed: int = 0
    max_steps: int = 200
    profile: str = ""
    profile_points: int = 9


_SECTIONS = {
    "model": {"preset", "resolution", "spectrum", "features"},
    "priors": None,  # any parameter name, checked below
    "data": None,  # the keys of DATA_SOURCES, their mode keys and 'mock', checked below
    "sampler": {"chains", "warmup", "samples", "seed", "target_accept", "max_tree_depth", "init", "checkpoint_every"},
    "fit": {"starts", "seed", "max_steps", "profile", "profile_points"},
    "systematics": set(SYSTEMATICS) | {"energy_scale", "energy_scale_sd", "solar_modulation", "correlated_errors"},
}


def _table(value, where):
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table of keys, got {value!r}")
    return value


def _check_keys(table, allowed, where):
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key '{key}' in [{where}]; allowed: {', '.join(sorted(allowed))}")


def _number(value, where, integer=False, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if integer and (not isinstance(value, int)):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")
    return value


def _seed(value, where):
    value = _number(value, where, integer=True)
    if not 0 <= value < 2**32:
        raise ConfigError(f"{where} must be an integer in [0, 2^32), got {value}")
    return value


def _prior(name, spec):
    if name not in PRIOR_RANGES:
        raise ConfigError(f"unknown parameter '{name}' in [priors]; choose from {', '.join(PRIOR_RANGES)}")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"prior of {name} must be {{ uniform = [low, high] }} or {{ normal = [mean, sd] }}")
    (kind, args), = spec.items()
    if kind not in ("uniform", "normal") or not isinstance(args, list) or len(args) != 2:
        raise ConfigError(f"prior of {name}: unknown form {spec!r}; use uniform = [low, high] or normal = [mean, sd]")
    a, b = (_number(x, f"prior of {name}") for x in args)
    lo, hi = PRIOR_RANGES[name]
    if kind == "uniform" and not (lo <= a < b <= hi):
        raise ConfigError(f"uniform prior of {name} must satisfy {lo} <= low < high <= {hi}, got [{a}, {b}]")
    if kind == "normal" and (b <= 0 or not lo < a < hi):
        raise ConfigError(f"normal prior of {name} needs sd > 0 and a mean inside ({lo}, {hi})")
    return Prior(kind, float(a), float(b))


def _prior_span(prior: Prior):
    """(low, high) a prior reaches: a uniform's bounds, a normal's mean +- 4 sd."""
    return (prior.a, prior.b) if prior.kind == "uniform" else (prior.a - 4 * prior.b, prior.a + 4 * prior.b)


def check_spectral_priors(priors: dict, spectrum_name: str, preset_name: str):
    """ConfigError if break parameters are free for the paper's spectrum, if the priors of two breaks'
    rigidities overlap (the breaks could swap), or if the index could rise above every break."""
    free_breaks = [n for n in priors if any(n in spectrum.break_fields(b) for b in spectrum.BREAKS)]
    if free_breaks and spectrum_name != "broken":
        raise ConfigError(f"[priors] {free_breaks[0]} acts only with [model] spectrum = 'broken'")
    if spectrum_name != "broken":
        return
    fixed = PRESETS[preset_name]
    names = ["alpha"] + [n for b in spectrum.BREAKS for n in spectrum.break_fields(b)]
    span = {n: _prior_span(priors[n]) if n in priors else (getattr(fixed, n),) * 2 for n in names}
    rigidities = [spectrum.break_fields(b)[0] for b in spectrum.BREAKS]
    for low, high in zip(rigidities, rigidities[1:]):
        if not span[low][1] < span[high][0]:
            raise ConfigError(f"the priors of {low} and {high} overlap: the breaks must stay in order of rigidity")
    index = span["alpha"][0]
    for b in spectrum.BREAKS:
        index += span[spectrum.break_fields(b)[1]][0]
        if not index > 0:
            raise ConfigError(f"with these priors the injected index above the {b} can reach {index:g}: "
                              "the spectrum would grow without bound (it must stay above 0)")


def positive_integers(table: dict, keys, section: str) -> dict:
    """The keys of a section's table that are given, each checked as a positive integer."""
    return {k: _number(table[k], f"[{section}] {k}", integer=True, positive=True) for k in keys if k in table}


def require_measurements(run: "RunConfig", why: str):
    """ConfigError unless every selected data set is read as a measurement (`why`: what needs it)."""
    for key, source in DATA_SOURCES.items():
        mode = run.data.get(source.mode_key)
        if source.selects(run.data[key]) and mode not in (None, "measurement"):
            raise ConfigError(f"{why} needs every data set as a measurement: [data] {source.mode_key} = {mode!r}")


def read_toml(text: str, source: str, sections) -> dict:
    """The TOML text as a dict whose top-level keys are among `sections`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    _check_keys(raw, sections, "top level (sections)")
    return raw


def parse_model_and_data(raw: dict, source: str, free_parameters=()) -> dict:
    """The checked [model] and [data] sections as RunConfig values (preset, resolution, data, mock)."""
    values = {}
    model = _table(raw.get("model", {}), "[model]")
    _check_keys(model, _SECTIONS["model"], "model")
    if "preset" in model:
        if model["preset"] not in PRESETS:
            raise ConfigError(f"unknown preset {model['preset']!r}; choose one of {', '.join(PRESETS)}")
        values["preset"] = model["preset"]
    if "resolution" in model:
        grids.resolution(model["resolution"])  # raises on unknown names
        values["resolution"] = model["resolution"]
    for key in ("spectrum", "features"):
        if key in model:
            values[key] = model[key]
    spectrum.break_weights(values.get("spectrum", "cutoff"), values.get("features", "injection"))  # raises
    data = _table(raw.get("data", {}), "[data]")
    modes = {s.mode_key: s for s in DATA_SOURCES.values() if s.mode_key}
    _check_keys(data, {*DATA_SOURCES, *modes, "mock"}, "data")
    values["data"] = default_data()
    for key, value in data.items():
        if key in DATA_SOURCES:
            values["data"][key] = DATA_SOURCES[key].check(key, value)
        elif key in modes:
            if value not in modes[key].modes:
                raise ConfigError(f"[data] {key} must be one of {', '.join(modes[key].modes)}, got {value!r}")
            values["data"][key] = value
    if not any(s.selects(values["data"][key]) for key, s in DATA_SOURCES.items()):
        raise ConfigError(f"{source}: [data] selects no data set, so the posterior would be the prior")
    if "mock" in data:
        mock = dict(_table(data["mock"], "[data.mock]"))
        _check_keys(mock, set(free_parameters) | {"seed"}, "data.mock")
        missing = [p for p in free_parameters if p not in mock]
        if missing:
            raise ConfigError(f"[data.mock] needs a true value for every free parameter; missing {', '.join(missing)}")
        for k, v in mock.items():
            _seed(v, "[data.mock] seed") if k == "seed" else _number(v, f"[data.mock] {k}")
        values["mock"] = mock
    return values


def parse_config(text: str, source: str = "config") -> RunConfig:
    """Parse and check a TOML run configuration; ConfigError names the first problem."""
    return parse_run_sections(read_toml(text, source, _SECTIONS), source)


def parse_run_sections(raw: dict, source: str) -> RunConfig:
    """The RunConfig of a TOML document's run sections (read_toml's dict)."""
    priors = {name: _prior(name, spec) for name, spec in _table(raw.get("priors", {}), "[priors]").items()}
    if not priors:
        raise ConfigError(f"{source}: [priors] must give at least one free parameter")
    systematics = dict(_table(raw.get("systematics", {}), "[systematics]"))
    _check_keys(systematics, _SECTIONS["systematics"], "systematics")
    scale_sd = _table(systematics.pop("energy_scale_sd", {}), "[systematics] energy_scale_sd")
    for experiment, sd in scale_sd.items():
        if experiment not in EXPERIMENT_SCALES:
            raise ConfigError(f"unknown experiment {experiment!r} in [systematics] energy_scale_sd; "
                              f"choose from {', '.join(EXPERIMENT_SCALES)}")
        _number(sd, f"[systematics] energy_scale_sd {experiment}", positive=True)
    energy_scales = systematics.pop("energy_scale", False)
    modulation = systematics.pop("solar_modulation", False)
    correlated = systematics.pop("correlated_errors", False)
    for key, on in (("energy_scale", energy_scales), ("solar_modulation", modulation),
                    ("correlated_errors", correlated)):
        if not isinstance(on, bool):
            raise ConfigError(f"[systematics] {key} must be true or false, got {on!r}")
    if scale_sd and not energy_scales:
        raise ConfigError("[systematics] energy_scale_sd needs energy_scale = true")
    for group, on in systematics.items():
        if not isinstance(on, bool):
            raise ConfigError(f"[systematics] {group} must be true or false, got {on!r}")
        if on:
            for site, (kind, a, b) in SYSTEMATICS[group].items():
                priors.setdefault(site, Prior(kind, a, b))
    for site, field_name in _SAME_FIELD:
        if site in priors and field_name in priors:
            raise ConfigError(f"[priors] may give {site} or {field_name}, not both (the first sets the second)")
    values = parse_model_and_data(raw, source, priors)
    check_spectral_priors(priors, values.get("spectrum", "cutoff"), values.get("preset", "baseline"))
    values["priors"] = priors
    values["systematics"] = tuple(g for g, on in systematics.items() if on)
    values["energy_scales"] = energy_scales
    values["energy_scale_sd"] = dict(scale_sd)
    values["solar_modulation"] = modulation
    values["correlated_errors"] = correlated
    if energy_scales and not DATA_SOURCES["cosmic_rays"].selects(values["data"]["cosmic_rays"]):
        raise ConfigError("[systematics] energy_scale = true needs cosmic-ray data ([data] cosmic_rays)")
    if modulation:
        check_selects_modulated(values["data"]["cosmic_rays"])
    if correlated and not (values["data"]["cosmic_ray_mode"] == "measurement"
                           and any(n in ERROR_BREAKDOWNS for n in values["data"]["cosmic_rays"])):
        raise ConfigError("[systematics] correlated_errors = true needs a data set with a published error breakdown "
                          f"({', '.join(ERROR_BREAKDOWNS)}) in [data] cosmic_rays, with cosmic_ray_mode = 'measurement'")
    sampler = _table(raw.get("sampler", {}), "[sampler]")
    _check_keys(sampler, _SECTIONS["sampler"], "sampler")
    values.update(positive_integers(sampler, ("chains", "warmup", "samples", "max_tree_depth", "checkpoint_every"),
                                    "sampler"))
    if "seed" in sampler:
        values["seed"] = _seed(sampler["seed"], "[sampler] seed")
    if "target_accept" in sampler:
        t = _number(sampler["target_accept"], "[sampler] target_accept")
        if not 0 < t < 1:
            raise ConfigError("[sampler] target_accept must lie in (0, 1)")
        values["target_accept"] = float(t)
    if "init" in sampler:
        if sampler["init"] not in SAMPLER_INITS:
            raise ConfigError(f"[sampler] init must be one of {', '.join(SAMPLER_INITS)}, got {sampler['init']!r}")
        values["init"] = sampler["init"]
    fit = _table(raw.get("fit", {}), "[fit]")
    _check_keys(fit, _SECTIONS["fit"], "fit")
    values.update(positive_integers(fit, ("starts", "max_steps", "profile_points"), "fit"))
    if "seed" in fit:
        values["fit_seed"] = _seed(fit["seed"], "[fit] seed")
    if "profile" in fit:
        if fit["profile"] not in priors:
            raise ConfigError(f"[fit] profile must name a free parameter ({', '.join(priors)}), got {fit['profile']!r}")
        values["profile"] = fit["profile"]
    return RunConfig(**values)


def read_text(path: str) -> str:
    """The text of a configuration file; ConfigError if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8 text") from None


def load_config(path: str) -> RunConfig:
    return parse_config(read_text(path), path)
