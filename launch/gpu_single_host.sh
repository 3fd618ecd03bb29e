#!/usr/bin/env bash
# Train on every GPU of one machine (data-parallel over all of them).
# Usage: launch/gpu_single_host.sh configs/esrgan_fft.py WORKDIR [--config.x=y ...]
# Needs JAX's CUDA plugin at the pinned version: pip install -r requirements-gpu.txt
set -euo pipefail
config=${1:?config file, e.g. configs/esrgan_fft.py}
workdir=${2:?workdir}
shift 2
# Let XLA take most of the GPU memory up front; TF (for TensorBoard) gets none.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
# The CPU install (requirements.txt) has no CUDA plugin: JAX would train on
# the CPU. Stop with the instruction instead.
if ! python -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' \
    2>/dev/null; then
  echo "error: JAX sees no GPU here; install its CUDA plugin at the pinned" \
    "JAX version: pip install -r requirements-gpu.txt" >&2
  exit 2
fi
exec python -m sr_jax.main --config="$config" --workdir="$workdir" "$@"
