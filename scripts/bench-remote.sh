#!/usr/bin/env bash
# Benchmark (not a test), BENCHMARKS.md "Remote store": on the default pipeline (pipeline.toml),
# in one run:
#   1. workspace A computes ingest+pretext+embed+mine from an empty store (the recompute a teammate
#      would otherwise do; per-stage times from `scan run --json`);
#   2. pushes everything to the local nginx (WebDAV) and moto (S3) servers (scripts/remote-up.sh);
#   3. a teammate's checkout (pipeline.toml + pipeline.lock only: no dataset, no store) runs
#      `scan pull mine` from each server, RUNS times into an empty store: wall time and bytes;
#   4. a no-op `scan run mine` in A (4 stages, all in the store), with each remote configured and
#      without one (hyperfine medians).
# Usage: scripts/bench-remote.sh   (needs `cargo build --release --workspace` and the dataset:
#        scripts/setup-data.sh). Prints a summary on stdout; progress on stderr.
#   PRETEXT_EPOCHS=N  train pretext for N epochs instead of the pipeline's 30 (same artifact sizes:
#                     the weights and neighbours do not grow with epochs); the summary then also
#                     gives the per-epoch time and the 30-epoch recompute it implies.
#   SCAN=path         the scan binary (its stage binaries beside it); RUNS=n pulls per server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCAN="${SCAN:-$ROOT/target/release/scan}"
RUNS=${RUNS:-5}
DATA=/usr/share/datasets/fashion-mnist
[[ -x "$SCAN" ]] || { echo "build first: cargo build --release --workspace" >&2; exit 1; }
[[ -d "$DATA" ]] || { echo "dataset missing: scripts/setup-data.sh" >&2; exit 1; }
eval "$("$ROOT/scripts/remote-up.sh")"
WORK=$(mktemp -d /tmp/scan-bench-remote.XXXXXX)
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
PREFIX="bench-$(date +%s)-$$"
HTTP="$SCAN_TEST_HTTP_URL/$PREFIX"
S3="s3://$SCAN_TEST_S3_BUCKET/$PREFIX"

# Workspace A: the dataset as a workspace folder (a teammate's checkout will not have it).
A="$WORK/a"; mkdir -p "$A/data"
cp -r "$DATA" "$A/data/fashion-mnist"
sed 's|inputs = { data_dir = "/usr/share/datasets/fashion-mnist" }|inputs = { data_dir = "data/fashion-mnist" }|' \
  "$ROOT/pipeline.toml" > "$A/pipeline.toml"
grep -q 'data_dir = "data/fashion-mnist"' "$A/pipeline.toml"
EPOCHS=$(sed -n 's/^params = { epochs = \([0-9]*\), batch_size = 256.*/\1/p' "$A/pipeline.toml")
if [[ -n "${PRETEXT_EPOCHS:-}" ]]; then
  sed -i "s/^params = { epochs = $EPOCHS, batch_size = 256/params = { epochs = $PRETEXT_EPOCHS, batch_size = 256/" "$A/pipeline.toml"
  grep -q "epochs = $PRETEXT_EPOCHS, batch_size = 256" "$A/pipeline.toml"
fi
cd "$A"
echo "bench-remote: computing ingest+pretext+embed+mine in $A (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
t0=$(date +%s.%N)
"$SCAN" --remote none run mine --json > "$WORK/mine.json"
t1=$(date +%s.%N)
"$SCAN" --remote "$HTTP" push mine --json > "$WORK/push-http.json"
"$SCAN" --remote "$S3" push mine --json > "$WORK/push-s3.json"

# The teammate: pipeline.toml + pipeline.lock, nothing else.
B="$WORK/b"; mkdir -p "$B"
cp "$A/pipeline.toml" "$A/pipeline.lock" "$B/"
cd "$B"
pull() { # pull URL NAME → times in $WORK/pull-NAME.times, last JSON in $WORK/pull-NAME.json
  : > "$WORK/pull-$2.times"
  for _ in $(seq "$RUNS"); do
    rm -rf "$B/artifacts"
    s=$(date +%s.%N)
    "$SCAN" --remote "$1" pull mine --json > "$WORK/pull-$2.json"
    e=$(date +%s.%N)
    python3 -c "print($e - $s)" >> "$WORK/pull-$2.times"
  done
  "$SCAN" --remote "$1" status > "$WORK/status-$2.txt"
}
pull "$HTTP" http
pull "$S3" s3

cd "$A"
hyperfine -N --warmup 3 --runs 30 --export-json "$WORK/noop.json" \
  "$SCAN --remote $S3 run mine" "$SCAN --remote $HTTP run mine" "$SCAN --remote none run mine" >&2

python3 - "$WORK" "$t0" "$t1" "$RUNS" "${PRETEXT_EPOCHS:-$EPOCHS}" "$EPOCHS" <<'PY'
import json, statistics, sys, os
w, t0, t1, runs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
epochs, default_epochs = int(sys.argv[5]), int(sys.argv[6])
mine = {o["stage"]: o for o in json.load(open(f"{w}/mine.json"))}
print(f"load average at the end: {open('/proc/loadavg').read().split()[:3]}")
print(f"recompute (scan run mine, empty store, pretext {epochs} epochs): {t1 - t0:.1f} s wall; per stage: " +
      ", ".join(f"{s} {mine[s]['duration_s']:.1f} s ({mine[s]['status']})" for s in ["ingest", "pretext", "embed", "mine"]))
pem = sum(mine[s]['duration_s'] for s in ['pretext', 'embed', 'mine'])
print(f"  pretext+embed+mine: {pem:.1f} s")
if epochs != default_epochs:
    per = mine['pretext']['duration_s'] / epochs
    est = per * default_epochs + mine['embed']['duration_s'] + mine['mine']['duration_s']
    print(f"  pretext {per:.1f} s/epoch in this run → the default {default_epochs} epochs + embed + mine: ~{est:.0f} s (extrapolated)")
for name in ["http", "s3"]:
    p = json.load(open(f"{w}/push-{name}.json"))
    print(f"push to {name}: {p['objects']} objects, {p['bytes'] / 1048576:.2f} MiB, {p['seconds']:.2f} s")
for name in ["http", "s3"]:
    times = [float(x) for x in open(f"{w}/pull-{name}.times")]
    p = json.load(open(f"{w}/pull-{name}.json"))
    st = {s["stage"]: s["status"] for s in p["stages"]}
    print(f"pull mine from {name}: median {statistics.median(times):.3f} s wall (min {min(times):.3f}, max {max(times):.3f}, {runs} runs), "
          f"{p['objects']} objects, {p['bytes']} bytes ({p['bytes'] / 1048576:.2f} MiB); stages {st}")
    print("  status after pull:", open(f"{w}/status-{name}.txt").read().replace("\n", " | "))
for r in json.load(open(f"{w}/noop.json"))["results"]:
    print(f"no-op: {' '.join(r['command'].split()[1:])}: median {r['median'] * 1000:.1f} ms (mean {r['mean'] * 1000:.1f} ± {r['stddev'] * 1000:.1f} ms)")
PY
