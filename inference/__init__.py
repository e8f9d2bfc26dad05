"""corona_jax.inference: observational data sets, likelihoods and samplers.

Installed as the subpackage `corona_jax.inference` (the folder stays `inference/`
at the top of the repository; see pyproject.toml).
"""
