#!/usr/bin/env bash
# The default pipeline end to end, this checkout against a baseline checkout, seed by seed.
#
#   BASELINE=/path/to/other/checkout scripts/bench-builds.sh [SEEDS] [OUT_DIR]
#
# Both checkouts must have their release binaries built (`cargo build --release --workspace
# --bins`); each side runs its own binaries on its own `pipeline.toml`. SEEDS: a count N (seeds
# 0..N-1, default 2) or a comma-separated list. For each seed s, the two sides run one right after
# the other (this checkout first), each as `scan run --json --set pretext.seed=s --set scan.seed=s
# --set selflabel.seed=s` in a fresh workspace (empty store: every stage runs). BENCH_SIDES=current
# runs this checkout only. Appends one JSON line per run to OUT_DIR/results.jsonl (wall time, per-stage
# times, K-means / SCAN / self-label ACC) and prints the summary of scripts/bench_builds.py (median
# wall time per side, their ratio, ACC mean ± std). Needs an otherwise idle machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SEEDS="${1:-2}"
if [[ "$SEEDS" == *,* ]]; then IFS=, read -r -a SEED_LIST <<< "$SEEDS"; else SEED_LIST=($(seq 0 $((SEEDS - 1)))); fi
OUT="${2:-$ROOT/target/bench-builds}"
SIDES="${BENCH_SIDES:-both}"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3
if [[ "$SIDES" == both ]]; then
  : "${BASELINE:?set BASELINE to the baseline checkout (or BENCH_SIDES=current)}"
  BASELINE="$(cd "$BASELINE" && pwd)"
fi
mkdir -p "$OUT"
echo "bench-builds: seeds ${SEED_LIST[*]}, $(nproc) cores, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" \
  "current $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo +changes)" \
  "${BASELINE:+baseline $(git -C "$BASELINE" rev-parse --short HEAD)}" | tee -a "$OUT/machine.txt"

run_side() {  # side checkout seed
  local side="$1" checkout="$2" s="$3" ws="$OUT/$1-$3"
  [[ -x "$checkout/target/release/scan" ]] || { echo "$checkout: build its release binaries first" >&2; exit 2; }
  rm -rf "$ws" && mkdir -p "$ws" && cp "$checkout/pipeline.toml" "$ws/"
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$ws" && env -u SCAN_STORE PATH="$checkout/target/release:$PATH" "$checkout/target/release/scan" run --json \
    --set "pretext.seed=$s" --set "scan.seed=$s" --set "selflabel.seed=$s" > run.json 2> run.err) \
    || { echo "$side seed $s failed ($ws/run.err)" >&2; tail -5 "$ws/run.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  PATH="$checkout/target/release:$PATH" "$PY" "$ROOT/scripts/bench_builds.py" row "$ws" "$side" "$s" \
    "$(echo "$t1 - $t0" | bc)" >> "$OUT/results.jsonl"
  echo "$side seed $s: $(tail -1 "$OUT/results.jsonl")"
}

for s in "${SEED_LIST[@]}"; do
  run_side current "$ROOT" "$s"
  [[ "$SIDES" == both ]] && run_side baseline "$BASELINE" "$s"
done
"$PY" "$ROOT/scripts/bench_builds.py" summary "$OUT/results.jsonl"
