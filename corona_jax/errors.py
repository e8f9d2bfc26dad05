"""Exceptions raised for bad input. The CLI turns them into one line and exit code 2."""


class CoronaError(Exception):
    """Base class of every error corona_jax raises on purpose."""


class ParameterError(CoronaError, ValueError):
    """A model parameter is NaN, out of its physical range, or unknown."""


class ConfigError(CoronaError, ValueError):
    """A preset, resolution or configuration value is unknown or malformed."""


class DataError(CoronaError, ValueError):
    """An observational data set is unknown, missing or malformed."""


class OutputError(CoronaError, OSError):
    """An output file cannot be written."""


def install_hint(extra: str) -> str:
    """The exact command that adds an optional extra to a clone's installation."""
    return f'pip install ".[{extra}]" in the repository\'s root'
