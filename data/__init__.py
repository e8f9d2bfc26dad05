"""Data shipped with corona_jax: observations/*.csv (with provenance headers) and tables."""
