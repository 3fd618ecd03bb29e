#!/usr/bin/env bash
# Train on every GPU of one machine (data-parallel over all of them).
# Usage: launch/gpu_single_host.sh configs/esrgan_fft.py WORKDIR [--config.x=y ...]
# Needs CUDA JAX:  pip install -U "jax[cuda12]"  (see README.md).
set -euo pipefail
config=${1:?config file, e.g. configs/esrgan_fft.py}
workdir=${2:?workdir}
shift 2
# Let XLA take most of the GPU memory up front; TF (for TensorBoard) gets none.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
exec python -m sr_jax.main --config="$config" --workdir="$workdir" "$@"
