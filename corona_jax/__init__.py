"""corona_jax: differentiable gamma rays and neutrinos from cosmic rays in galactic coronae.

A JAX model of Kalashev & Troitsky (2016), arXiv:1608.07421.
"""

import jax

jax.config.update("jax_enable_x64", True)

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

from .errors import ConfigError, CoronaError, DataError, OutputError, ParameterError  # noqa: E402
from .params import PRESETS, CoronaParams, preset, validate_params  # noqa: E402

try:
    __version__ = version("corona_jax")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ConfigError",
    "CoronaError",
    "CoronaParams",
    "DataError",
    "OutputError",
    "PRESETS",
    "ParameterError",
    "preset",
    "validate_params",
]
