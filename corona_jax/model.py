"""The one model object: the stage models and the static configuration they were built with.

`build_model(...)` does all numpy work once (grids, the pp, EBL and cascade tables, the
line-of-sight matrices) and returns a CoronaModel. It is a JAX pytree whose leaves are
the stages' arrays, so it can be passed to jit, grad, vmap or a NumPyro model as an
ordinary argument: a second model of the same shapes reuses the compiled code. Its
ModelConfig is static metadata (hashable, part of the tree structure), and is what
outputs and plots report.
"""

import dataclasses
import warnings
from typing import Callable, Optional, Union

import jax

from . import grids, spectrum, tables, transport
from .cosmology import Cosmology, validate_cosmology
from .errors import ConfigError
from .extragalactic import ExtragalacticModel, build_extragalactic_model
from .milky_way import MilkyWayModel, build_milky_way_model
from .units import R_SUN_KPC


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything a CoronaModel is built from, other than the fitted parameters.

    Tables are file names of the shipped tables (corona_jax/data/tables) or paths.
    stellar_mass_density: None for Madau & Dickinson (2014), or a callable z -> rho*
    [M_sun Mpc^-3] (then cascade must be False: the stored matrix assumes the default).
    """

    resolution: grids.Resolution = grids.Resolution()
    boundary: str = "outgoing"  # outer face of the transport grid: outgoing, absorbing, reflecting
    history: str = "paper"  # source history f(t): 'paper' (Eq. 5) or 'constant'
    observer_kpc: float = R_SUN_KPC  # galactocentric distance of the observer
    cosmology: Cosmology = Cosmology()
    cascade: bool = True  # electromagnetic cascades of the other galaxies' gamma rays
    stellar_mass_density: Optional[Callable] = None
    pp_table: str = tables.PP_TABLE_FILE
    ebl_table: str = tables.EBL_TABLE_FILE
    cascade_table: str = tables.CASCADE_TABLE_FILE
    # Alternatives that params.hadronic_mix and params.ebl_mix interpolate towards (None: the
    # mix has no effect), e.g. tables.PP_ALTERNATIVE_TABLE_FILE, tables.EBL_ALTERNATIVE_TABLE_FILE
    # with tables.CASCADE_ALTERNATIVE_TABLE_FILE
    pp_table_alternative: Optional[str] = None
    ebl_table_alternative: Optional[str] = None
    cascade_table_alternative: Optional[str] = None
    burst: bool = False  # the Galactic-centre burst, a second population with its own solve
    spectrum: str = "cutoff"  # injected spectrum: 'cutoff' (the paper's) or 'broken' (corona_jax.spectrum)
    features: str = "injection"  # where the broken spectrum's features act: injection, local, diffusion
    adjoint: Union[transport.DiscreteAdjoint, transport.AutodiffAdjoint] = transport.DiscreteAdjoint()

    def describe(self) -> dict:
        """Flat {name: str | float | int} of the configuration, for file attributes."""
        out = {f"resolution_{k}": v for k, v in dataclasses.asdict(self.resolution).items()}
        out.update({f"cosmology_{k}": float(v) for k, v in self.cosmology._asdict().items()})
        out.update(
            boundary=self.boundary,
            history=self.history,
            observer_kpc=float(self.observer_kpc),
            cascade=int(self.cascade),
            stellar_mass_density="Madau & Dickinson (2014), integrated" if self.stellar_mass_density is None
            else f"user-supplied ({getattr(self.stellar_mass_density, '__name__', 'callable')})",
            pp_table=tables.table_path(self.pp_table),
            ebl_table=tables.table_path(self.ebl_table),
            cascade_table=tables.table_path(self.cascade_table) if self.cascade else "none",
            pp_table_alternative=_path_or_none(self.pp_table_alternative),
            ebl_table_alternative=_path_or_none(self.ebl_table_alternative),
            cascade_table_alternative=_path_or_none(self.cascade_table_alternative) if self.cascade else "none",
            burst=int(self.burst),
            spectrum=self.spectrum,
            features=self.features,
            adjoint=repr(self.adjoint),
        )
        return out


def _path_or_none(name):
    return "none" if name is None else tables.table_path(name)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class CoronaModel:
    """Stage models (arrays, traced) and their configuration (static)."""

    transport: transport.TransportModel
    milky_way: MilkyWayModel
    extragalactic: ExtragalacticModel
    config: ModelConfig = dataclasses.field(metadata=dict(static=True), default=ModelConfig())

    @property
    def E_secondary_GeV(self):
        """Deprecated since 0.2, to be removed in 0.3: model.milky_way.E_secondary_GeV."""
        warnings.warn("CoronaModel.E_secondary_GeV is deprecated: use model.milky_way.E_secondary_GeV",
                      DeprecationWarning, stacklevel=2)
        return self.milky_way.E_secondary_GeV

    def with_adjoint(self, adjoint) -> "CoronaModel":
        """The same model differentiated another way (transport.DiscreteAdjoint / AutodiffAdjoint)."""
        return dataclasses.replace(self, config=dataclasses.replace(self.config, adjoint=adjoint))

    def with_history(self, history: str) -> "CoronaModel":
        """The same model with another source history ('paper' or 'constant')."""
        config = model_config(self.config, history=history)
        tm = self.transport._replace(history_weight=jax.numpy.float64(transport.history_weight(history)))
        return dataclasses.replace(self, transport=tm, config=config)


def model_config(config: ModelConfig = ModelConfig(), **changes) -> ModelConfig:
    """A checked ModelConfig: `config` with `changes`; resolution may be a name ('coarse', ...)."""
    if isinstance(changes.get("resolution"), str):
        changes["resolution"] = grids.resolution(changes["resolution"])
    unknown = set(changes) - {f.name for f in dataclasses.fields(ModelConfig)}
    if unknown:
        raise ConfigError(f"unknown model option(s) {', '.join(sorted(unknown))}")
    config = dataclasses.replace(config, **changes)
    config.resolution.validate()
    validate_cosmology(config.cosmology)
    if not (isinstance(config.observer_kpc, (int, float)) and 0 <= config.observer_kpc < grids.GAS_EDGE_KPC):
        raise ConfigError(f"observer_kpc must lie in [0, {grids.GAS_EDGE_KPC:g}) kpc, got {config.observer_kpc!r}")
    if (config.ebl_table_alternative is None) != (config.cascade_table_alternative is None) and config.cascade:
        raise ConfigError("ebl_table_alternative and cascade_table_alternative go together (the cascade of that EBL)")
    spectrum.break_weights(config.spectrum, config.features)  # raises on unknown names
    if not isinstance(config.adjoint, transport.ADJOINTS):
        raise ConfigError(f"unknown adjoint {config.adjoint!r}; use transport.DiscreteAdjoint() or AutodiffAdjoint()")
    return config


def build_model(config: ModelConfig = ModelConfig(), **changes) -> CoronaModel:
    """Build every stage once (numpy; a few seconds at the default resolution).

    build_model(resolution="coarse", observer_kpc=8.2) and build_model(ModelConfig(...)) both work.
    """
    config = model_config(config, **changes)
    pp = tables.load_pp_tables(tables.table_path(config.pp_table))
    pp_alt = None if config.pp_table_alternative is None else \
        tables.load_pp_tables(tables.table_path(config.pp_table_alternative))
    ebl_alt = None if config.ebl_table_alternative is None else \
        tables.load_ebl_table(tables.table_path(config.ebl_table_alternative))
    cascade_alt = None if config.cascade_table_alternative is None else tables.table_path(config.cascade_table_alternative)
    tm = transport.build_transport_model(config.resolution, config.history, config.boundary, pp,
                                         config.spectrum, config.features)
    mw = build_milky_way_model(tm, config.resolution, config.observer_kpc, pp, pp_alt)
    eg = build_extragalactic_model(
        mw.E_secondary_GeV, mw.E_table_GeV, pp, config.cosmology, config.cascade, config.stellar_mass_density,
        tables.load_ebl_table(tables.table_path(config.ebl_table)), tables.table_path(config.cascade_table),
        pp_alt, ebl_alt, cascade_alt,
    )
    return CoronaModel(tm, mw, eg, config)
