#!/usr/bin/env bash
# Benchmark of stage `mine` (not a test): exact top-21 inner-product search of 60 000 x 128 random
# L2-normalised vectors (fixed seed), `scan-mine` against faiss-cpu's exact IndexFlatIP in the same
# run; medians of REPS repetitions, their ratio, and a check that both give the same neighbour sets.
# Usage: scripts/bench-mine.sh [REPS]   (env: N, DIM, SEED, SCAN_THREADS)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPS="${1:-5}"
N="${N:-60000}"; DIM="${DIM:-128}"; SEED="${SEED:-0}"
THREADS="${SCAN_THREADS:-$(nproc)}"
export LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV="$ROOT/.venv" PATH="$ROOT/.venv/bin:$PATH"
PY="$ROOT/.venv/bin/python"
"$PY" -c "import faiss" 2>/dev/null || "$PY" -m pip install --quiet --disable-pip-version-check faiss-cpu
cargo build --release --bin scan-mine >&2
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
"$PY" scripts/bench_mine.py gen "$WORK" "$N" "$DIM" "$SEED"
echo '{"k_train": 20, "k_test": 5, "device": "cpu"}' > "$WORK/params.json"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, threads=$THREADS"
echo "faiss-cpu $("$PY" -c 'import faiss; print(faiss.__version__)'), IndexFlatIP add+search, k=21, ${N}x${DIM}"
FAISS="$("$PY" scripts/bench_mine.py faiss "$WORK" 21 "$REPS" "$THREADS")"
echo "faiss seconds: median ${FAISS}"

times=(); search=()
for r in $(seq "$REPS"); do
  rm -rf "$WORK/out"; mkdir "$WORK/out"
  t0=$(date +%s.%N)
  SCAN_THREADS="$THREADS" ./target/release/scan-mine --out "$WORK/out" --params "$WORK/params.json" \
    --input train="$WORK/train.parquet" --input test="$WORK/test.parquet"
  t1=$(date +%s.%N)
  times+=("$(echo "$t1 - $t0" | bc -l)")
  search+=("$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['train']['seconds']['search'])" "$WORK/out/metrics")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
M_STAGE="$(median "${times[@]}")"; M_SEARCH="$(median "${search[@]}")"; M_FAISS="${FAISS%% *}"
echo "scan-mine whole stage (read, train search, test 1000x128 search, write) seconds: median $M_STAGE (${times[*]})"
echo "scan-mine train search only seconds: median $M_SEARCH (${search[*]})"
printf 'ratio stage/faiss = %.3f, search/faiss = %.3f\n' "$(echo "$M_STAGE / $M_FAISS" | bc -l)" "$(echo "$M_SEARCH / $M_FAISS" | bc -l)"
"$PY" scripts/bench_mine.py compare "$WORK" "$WORK/out/train"
