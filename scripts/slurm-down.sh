#!/usr/bin/env bash
# Stops the private Slurm cluster started by scripts/slurm-up.sh (pid files in the runtime dir).
# Cancels its jobs first (their slurmstepd processes outlive slurmd otherwise). Idempotent: no
# error when nothing is running. Keeps the runtime dir (job state, logs, munge key).
set -euo pipefail
DIR="${SCAN_SLURM_DIR:-/tmp/scan-slurm}"
export SLURM_CONF="$DIR/slurm.conf"
log() { echo "slurm-down: $*" >&2; }
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Cancel all jobs while the controller is still there, and wait (bounded) until they are gone.
if alive "$DIR/run/slurmctld.pid" && alive "$DIR/run/slurmd.pid"; then
  timeout 10 scancel --full --quiet --partition=debug 2>/dev/null || true
  for _ in $(seq 30); do
    [[ -z "$(timeout 5 squeue -h -t running,completing,pending -o %i 2>/dev/null)" ]] && break
    sleep 0.5
  done
fi

# Stop the daemons: SIGTERM to all (they shut down in parallel), SIGKILL whatever is left after ~10 s.
pids=()
for d in slurmd slurmctld munged; do
  pidf="$DIR/run/$d.pid"
  if alive "$pidf"; then
    pids+=("$(cat "$pidf")")
    kill "${pids[-1]}" 2>/dev/null || true
    log "stopping $d (${pids[-1]})"
  fi
  rm -f "$pidf"
done
for _ in $(seq 50); do
  left=(); for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
  [[ ${#left[@]} -eq 0 ]] && exit 0
  sleep 0.2
done
log "killing ${left[*]} (ignored SIGTERM)"
kill -9 "${left[@]}" 2>/dev/null || true
