"""Numerically safe elementary functions for differentiable code."""

import jax.numpy as jnp

LOG_FLOOR = 1e-150  # 1/floor^2 must stay finite in float64 for second derivatives


def safe_log(x, floor=LOG_FLOOR):
    """ln(x) for x > floor, ln(floor) below, NaN for NaN; finite first and second derivatives
    everywhere else (the double-where form and a floor above 1e-154 keep 1/x^2 = inf out of
    forward-over-reverse products). A NaN stays a NaN: it must never pass for "no flux"."""
    above = x > floor
    clipped = jnp.where(above, jnp.log(jnp.where(above, x, 1.0)), jnp.log(floor))
    return jnp.where(jnp.isnan(x), x, clipped)
