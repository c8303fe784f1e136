#!/usr/bin/env bash
# Ours against the reference implementation on the default pipeline's configuration, seed by seed.
#
#   REFERENCE_DRIVER=/path/to/driver.py scripts/bench-reference.sh [SEEDS] [OUT_DIR]
#
# SEEDS: a count N (seeds 0..N-1, default 5) or a comma-separated list (`2,3,4`). BENCH_SIDES:
# `both` (default), `ours` or `reference`. For each seed s, one after the other and interleaved
# (ours s, then the reference s, so that slow and fast spells of a shared machine hit both alike):
# - ours: `scan run --json --set pretext.seed=s --set scan.seed=s --set selflabel.seed=s` of
#   `pipeline.toml` in a fresh workspace (empty store, so every stage runs, ingest included; this
#   run's wall time is ours), then the same with `--set selflabel.threshold=$REFERENCE_THRESHOLD`
#   (default 0.99, the value the driver uses) for the self-labeling comparison;
# - the reference: `python $REFERENCE_DRIVER --seed s --knn-every K` with K the pipeline's
#   `pretext.knn_every`. The driver runs the authors' code (wvangansbeke/Unsupervised-Classification)
#   with the configuration of this repository's `pipeline.toml` and prints one JSON object as its
#   last line (keys used: total_s, pretext_s, mine_s, scan_s, selflabel_s, knn_monitor_acc,
#   knn_top20_acc, scan.{acc,nmi,ari}, selflabel.acc). The reference code is CC BY-NC licensed and
#   therefore not part of this repository; the driver needs torchvision (and faiss-cpu for the
#   reference's mining) in the venv.
#
# Appends one line per run to OUT_DIR/results.jsonl (runs accumulate across invocations; a seed run
# again replaces its earlier line in the summary) and prints the summary of
# scripts/bench_reference.py (mean ± std per side, Welch's t-test and Mann-Whitney U).
# Needs an otherwise idle machine: about (9 + 19) minutes per seed on 2 cores.
# BENCH_SMOKE=1 runs one epoch of each training stage on both sides (checks the script, not a result).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SEEDS="${1:-5}"
if [[ "$SEEDS" == *,* ]]; then IFS=, read -r -a SEED_LIST <<< "$SEEDS"; else SEED_LIST=($(seq 0 $((SEEDS - 1)))); fi
SIDES="${BENCH_SIDES:-both}"
OUT="${2:-$ROOT/target/bench-reference}"
PY="$ROOT/.venv/bin/python"
SCAN="$ROOT/target/release/scan"
: "${REFERENCE_DRIVER:?set REFERENCE_DRIVER to the reference driver script}"
[[ -x "$SCAN" ]] || { echo "build first: cargo build --release --workspace --bins" >&2; exit 2; }
"$PY" -c "import torchvision" || { echo "the reference needs torchvision in $ROOT/.venv" >&2; exit 2; }
export PATH="$ROOT/target/release:$PATH"
KNN_EVERY="$("$PY" -c "import tomllib,sys; print(tomllib.load(open(sys.argv[1],'rb'))['stages']['pretext']['params'].get('knn_every', 1))" "$ROOT/pipeline.toml")"
OURS_EXTRA=() REF_EXTRA=()
if [[ "${BENCH_SMOKE:-0}" == 1 ]]; then
  OURS_EXTRA=(--set pretext.epochs=1 --set scan.epochs=1 --set selflabel.epochs=1)
  REF_EXTRA=(--pretext-epochs 1 --scan-epochs 1 --selflabel-epochs 1)
fi
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
REFERENCE_THRESHOLD="${REFERENCE_THRESHOLD:-0.99}"

# `scan run --json` in the workspace $ws, output to the file $1, the other args passed on.
ours_run() {
  local out="$1"; shift
  (cd "$ws" && env -u SCAN_STORE "$SCAN" run --json "$@" > "$out" 2> "${out%.json}.err") \
    || { echo "ours failed ($ws/${out%.json}.err):" >&2; tail -5 "$ws/${out%.json}.err" >&2; exit 1; }
}
echo "bench-reference: seeds ${SEED_LIST[*]}, sides $SIDES, knn_every $KNN_EVERY, $(nproc) cores, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

for s in "${SEED_LIST[@]}"; do
  if [[ "$SIDES" != reference ]]; then
  ws="$OUT/ours-$s"
  rm -rf "$ws"; mkdir -p "$ws"; cp "$ROOT/pipeline.toml" "$ws/"
  seeds=(--set "pretext.seed=$s" --set "scan.seed=$s" --set "selflabel.seed=$s" "${OURS_EXTRA[@]}")
  t0=$(date +%s.%N)
  ours_run run.json "${seeds[@]}"
  t1=$(date +%s.%N)
  # The reference driver's self-labeling threshold (0.99, the paper's) where the pipeline's differs:
  # only self-labeling and its evaluation run again.
  ours_run run-reference-threshold.json "${seeds[@]}" --set "selflabel.threshold=$REFERENCE_THRESHOLD"
  "$PY" "$ROOT/scripts/bench_reference.py" ours "$ws" "$s" "$(echo "$t1 - $t0" | bc)" >> "$RESULTS"
  echo "ours seed $s: $(tail -1 "$RESULTS")"
  fi
  [[ "$SIDES" == ours ]] && continue

  ref="$OUT/reference-$s"   # the driver's output directory, which must not exist yet
  rm -rf "$ref"
  t0=$(date +%s.%N)
  "$PY" "$REFERENCE_DRIVER" --seed "$s" --knn-every "$KNN_EVERY" --out-dir "$ref" \
    "${REF_EXTRA[@]}" > "$ref.log" 2>&1 \
    || { echo "reference, seed $s failed ($ref.log):" >&2; tail -5 "$ref.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  "$PY" "$ROOT/scripts/bench_reference.py" reference "$ref.log" "$s" "$(echo "$t1 - $t0" | bc)" >> "$RESULTS"
  echo "reference seed $s: $(tail -1 "$RESULTS")"
done
"$PY" "$ROOT/scripts/bench_reference.py" summary "$RESULTS" | tee "$OUT/summary.md"
