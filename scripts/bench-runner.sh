#!/usr/bin/env bash
# Benchmark (not a test): a no-op `scan run` on a cached 7-stage pipeline of trivial script stages, and
# optionally (`--dvc`) `dvc repro` on an equivalent cached 3-stage dvc.yaml in the same run.
# Usage: scripts/bench-runner.sh [--dvc] [SCAN_BINARY...]   (default: target/release/scan; several binaries
#        are timed side by side on the same cached pipeline, e.g. a build without libtorch linked)
# With SCAN_BENCH_WORKSPACE=DIR (a workspace whose pipeline is fully built, e.g. after `make run`), also
# times the no-op `scan run` of that pipeline.
# Uses hyperfine when installed (`apt-get install -y hyperfine`), else a timing loop.
set -euo pipefail
DVC=0
if [[ "${1:-}" == "--dvc" ]]; then DVC=1; shift; fi
BINS=("$@")
[[ ${#BINS[@]} == 0 ]] && BINS=(target/release/scan)
for i in "${!BINS[@]}"; do BINS[$i]=$(realpath "${BINS[$i]}"); done
SCAN=${BINS[0]}
RUNS=${RUNS:-30}
WORK=$(mktemp -d /tmp/scan-bench.XXXXXX)
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

cat > "$WORK/stage.sh" <<'SH'
#!/bin/sh
# Trivial stage: writes its params and input names into its one output `o`.
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --params) params=$2; shift 2 ;;
    *) shift ;;
  esac
done
cat "$params" > "$out/o"
SH
chmod +x "$WORK/stage.sh"
echo "raw" > "$WORK/raw.txt"
{
  prev=""
  for s in ingest pretext embed mine cluster selflabel evaluate; do
    echo "[stages.$s]"
    echo "cmd = [\"./stage.sh\"]"
    echo "params = { name = \"$s\", lr = 0.4, epochs = 10 }"
    if [[ -z "$prev" ]]; then echo 'inputs = { raw = "raw.txt" }'; else echo "inputs = { x = \"$prev.o\" }"; fi
    echo 'outputs = ["o"]'
    prev=$s
  done
} > "$WORK/pipeline.toml"

(cd "$WORK" && "$SCAN" run >/dev/null 2>&1)
sleep 2.1 # let the stat cache trust raw.txt (files modified <2 s ago are re-hashed)
(cd "$WORK" && "$SCAN" run >/dev/null 2>&1)

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
CMDS=()
NAMES=()
for b in "${BINS[@]}"; do
  echo "scan: $b ($(ldd "$b" | grep -c torch) libtorch libraries linked)"
  CMDS+=("cd $WORK && $b run")
  NAMES+=("scan run (7 stages, no-op) [$b]")
done
if [[ -n "${SCAN_BENCH_WORKSPACE:-}" ]]; then
  WS=$(realpath "$SCAN_BENCH_WORKSPACE")
  n=$(cd "$WS" && "$SCAN" status --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert all(x["state"]=="fresh" for x in r), "not fully built"; print(len(r))')
  CMDS+=("cd $WS && $SCAN run")
  NAMES+=("scan run ($n stages of $WS/pipeline.toml, no-op)")
fi
if [[ $DVC == 1 ]]; then
  python3 -m venv "$WORK/dvcenv" && "$WORK/dvcenv/bin/pip" -q install dvc >/dev/null
  mkdir "$WORK/dvc" && cd "$WORK/dvc" && git init -q && "$WORK/dvcenv/bin/dvc" init -q
  echo raw > raw.txt
  cat > dvc.yaml <<'Y'
stages:
  a:
    cmd: cp raw.txt a.txt
    deps: [raw.txt]
    outs: [a.txt]
  b:
    cmd: cp a.txt b.txt
    deps: [a.txt]
    outs: [b.txt]
  c:
    cmd: cp b.txt c.txt
    deps: [b.txt]
    outs: [c.txt]
Y
  "$WORK/dvcenv/bin/dvc" repro -q >/dev/null 2>&1
  echo "dvc: $("$WORK/dvcenv/bin/dvc" --version)"
  CMDS+=("cd $WORK/dvc && $WORK/dvcenv/bin/dvc repro")
  NAMES+=("dvc repro (3 stages, no-op)")
fi
if command -v hyperfine >/dev/null; then
  args=()
  for i in "${!CMDS[@]}"; do args+=(-n "${NAMES[$i]}" "${CMDS[$i]}"); done
  hyperfine --warmup 3 --runs "$RUNS" --export-json "$WORK/h.json" "${args[@]}"
  python3 - "$WORK/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
for x in r:
    print(f"{x['command']}: median {x['median']*1000:.1f} ms (mean {x['mean']*1000:.1f} ± {x['stddev']*1000:.1f} ms, n={len(x['times'])})")
dvc = [x for x in r if x["command"].startswith("dvc")]
for x in r:
    if dvc and x is not dvc[0]:
        print(f"ratio dvc / {x['command']}: {dvc[0]['median'] / x['median']:.1f}x")
PY
else
  for i in "${!CMDS[@]}"; do
    ts=()
    for _ in $(seq "$RUNS"); do
      s=$(date +%s%N); bash -c "${CMDS[$i]}" >/dev/null 2>&1; e=$(date +%s%N); ts+=($(( (e - s) / 1000 )))
    done
    med=$(printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "${NAMES[$i]}: median $(( med / 1000 )).$(( med % 1000 / 100 )) ms (n=$RUNS, loop)"
  done
fi
