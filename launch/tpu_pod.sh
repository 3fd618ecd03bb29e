#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: the same command runs on every host, and
# jax.distributed.initialize() wires them together.
# Usage: launch/tpu_pod.sh [--dry-run] [--install] TPU_NAME ZONE \
#            configs/esrgan_fft.py gs://bucket/workdir [--config.x=y ...]
# Each host needs the repo at ~/sr_jax and the pinned TPU install:
# pip install -r requirements-tpu.txt (--install runs it on every host
# first).
# The workdir must be on storage every host sees (e.g. a GCS bucket); the data
# folder too (or a copy on every host). Arguments reach sr_jax.main exactly
# as given (spaces and quotes included). --dry-run prints the gcloud command
# instead of running it.
set -euo pipefail
dry_run=0
install=0
while [ "${1:-}" = "--dry-run" ] || [ "${1:-}" = "--install" ]; do
  if [ "$1" = "--dry-run" ]; then dry_run=1; else install=1; fi
  shift
done
tpu=${1:?TPU name}; zone=${2:?zone}; config=${3:?config}; workdir=${4:?workdir}
shift 4
# The remote shell parses the command once: quote every argument for it.
remote="cd ~/sr_jax && "
if [ "$install" = 1 ]; then
  remote+="pip install -q -r requirements-tpu.txt && "
fi
remote+="python -m sr_jax.main --jax_distributed"
for arg in --config="$config" --workdir="$workdir" "$@"; do
  remote+=" $(printf '%q' "$arg")"
done
command=(gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all
         --command "$remote")
if [ "$dry_run" = 1 ]; then
  printf '%s\n' "$remote"
  exit 0
fi
exec "${command[@]}"
