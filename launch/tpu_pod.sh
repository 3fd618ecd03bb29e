#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: the same command runs on every host, and
# jax.distributed.initialize() wires them together.
# Usage: launch/tpu_pod.sh TPU_NAME ZONE configs/esrgan_fft.py gs://bucket/workdir [--config.x=y ...]
# Each host needs the repo at ~/sr_jax and: pip install -r requirements.txt "jax[tpu]"
# The workdir must be on storage every host sees (e.g. a GCS bucket); the data
# folder too (or a copy on every host).
set -euo pipefail
tpu=${1:?TPU name}; zone=${2:?zone}; config=${3:?config}; workdir=${4:?workdir}
shift 4
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command \
  "cd ~/sr_jax && python -m sr_jax.main --jax_distributed --config=$config --workdir=$workdir $*"
