"""Command-line programs built on the library: benchmarks, sweeps and their
reports, export, interpolation, conversion, degradation previews, the
PyTorch parity runs (`torch_reference`, `run_parity`) and `make_lr`.

Nothing in the library imports from here. The commands the README documents
keep their short names (`python -m sr_jax.bench`, `sr_jax.sweep`,
`sr_jax.export`, `sr_jax.interpolate`, `sr_jax.preview_degradations`): each
is a three-line module at the top of the package that runs the tool.
"""
