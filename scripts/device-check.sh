#!/usr/bin/env bash
# The GPU check of the training engine, in two halves:
#
#   scripts/device-check.sh --prepare   here (Rust toolchain, venv): builds the release binaries and
#                                       the integration tests with `--features cuda-tests`, and packs
#                                       them with Fashion-MNIST into carry/device/ (git-ignored).
#   scripts/device-check.sh --run       on a CUDA machine with only Python 3 + torch 2.11 (no Rust,
#                                       no network), from the repository root with carry/ beside it;
#                                       ≤ 8 minutes on one H100/H200. Writes its logs to $OUT (or
#                                       /tmp/device-check) and prints one line per result:
#     1. the CUDA tests (training in fp32/bf16/fp16 with channels-last, fp16 resume with its loss
#        scale, the CUDA k-NN and augmentation against the CPU);
#     2. speed, side by side: our SimCLR, SCAN and self-label epochs on 50 000 32×32×3 images
#        (Fashion-MNIST padded and tiled to RGB, in the CIFAR-10 binary format) in each precision,
#        with the split into augmentation and compute (SCAN_TIME_SPLIT=1), and PyTorch eager's
#        SimCLR epoch (bf16 autocast + channels-last, augmentation on the GPU);
#        the projected CIFAR-10 protocol time (500 + 50 + 200 epochs) from our fastest precision;
#     3. accuracy: the full Fashion-MNIST pipeline (width 64) with a fixed budget (pretext 100,
#        SCAN 20, self-labeling 10 epochs), ACC/NMI/ARI and the wall time per stage.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=carry/device

prepare() {
  export LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
  cargo build --release --workspace --bins
  local test_bin
  test_bin=$(cargo test --release -p scan --features cuda-tests --test integration --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "integration" and m.get("executable"):
        print(m["executable"])')
  rm -rf "$CARRY" && mkdir -p "$CARRY/stage/target/release/deps" "$CARRY/fmnist"
  for b in target/release/scan target/release/scan-*; do
    [[ -x "$b" && ! "$b" == *.d ]] && cp "$b" "$CARRY/stage/target/release/"
  done
  cp "$test_bin" "$CARRY/stage/target/release/deps/integration"
  strip "$CARRY"/stage/target/release/scan* "$CARRY/stage/target/release/deps/integration"
  tar -C "$CARRY/stage" -cJf "$CARRY/bins.tar.xz" target && rm -rf "$CARRY/stage"
  cp /usr/share/datasets/fashion-mnist/*.gz "$CARRY/fmnist/"
  du -sh "$CARRY"
  echo "device-check: prepared; on the device: bash scripts/device-check.sh --run (carry: [\"carry\"])"
}

run() {
  local out="${OUT:-/tmp/device-check}" work=/tmp/scan-device
  mkdir -p "$out" "$work"
  tar -C "$work" -xJf "$CARRY/bins.tar.xz"
  local bin="$work/target/release" fm="$PWD/$CARRY/fmnist"
  LD_LIBRARY_PATH="$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib"
  export LD_LIBRARY_PATH SCAN_PYTHON=python3 SCAN_FMNIST_DIR="$fm" PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /'
  "$bin/scan-doctor" 2>&1 | sed 's/^/doctor: /' | head -12

  # 1. CUDA tests.
  set +e
  (cd "$work" && "$bin/deps/integration" cuda --test-threads 1) >"$out/cuda-tests.log" 2>&1
  local rc=$?
  set -e
  echo "cuda-tests: $(grep -E '^test result' "$out/cuda-tests.log" | tail -1) (exit $rc)"

  # 2. Speed: our epochs per precision, then PyTorch eager.
  python3 scripts/device/make_cifar_like.py "$fm" "$work/cifar"
  local sp="$work/speed"
  mkdir -p "$sp"
  sed -e "s#^params = { dataset = \"fashion-mnist\", splits = \[\"train\", \"test\"\] }#params = { dataset = \"cifar10\", splits = [\"train\", \"test\"] }#" \
      -e "s#/usr/share/datasets/fashion-mnist#$work/cifar#" pipelines/fashion-mnist.toml >"$sp/pipeline.toml"
  for prec in fp32 bf16 fp16; do
    (cd "$sp" && SCAN_TIME_SPLIT=1 "$bin/scan" -q run --name "$prec" \
      --set pretext.epochs=3 --set pretext.knn_every=0 --set scan.epochs=2 --set selflabel.epochs=2 \
      --set pretext.precision=$prec --set scan.precision=$prec --set selflabel.precision=$prec \
      evaluate) >"$out/speed-$prec.log" 2>&1 || echo "speed $prec: failed (see speed-$prec.log)"
    for st in pretext scan selflabel; do
      local c
      c=$(cd "$sp" && "$bin/scan" --exp "$prec" show "$st.curves" 2>/dev/null) || continue
      python3 - "$c" "$prec" "$st" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))["records"]
last = recs[-1]
rate = last["images_per_s"]
n = {"pretext": 50000, "scan": 50000, "selflabel": 50000}[sys.argv[3]]
split = (f"; augmentation {last['augment_s']:.2f} s + compute {last['step_s']:.2f} s"
         if "augment_s" in last else "")
print(f"ours {sys.argv[2]} {sys.argv[3]}: {rate:.0f} images/s, {n / rate:.2f} s/epoch (last of {len(recs)} epochs{split})")
PY
    done
  done | tee "$out/speed.txt"
  python3 scripts/device/torch_simclr_bench.py 50000 3 512 | tee -a "$out/speed.txt"
  python3 - "$out/speed.txt" <<'PY'
import re, sys
best = {}
for line in open(sys.argv[1]):
    m = re.match(r"ours (\w+) (\w+): .*, ([\d.]+) s/epoch", line)
    if m:
        best[m[2]] = min(best.get(m[2], 1e9), float(m[3]))
if len(best) == 3:
    t = 500 * best["pretext"] + 50 * best["scan"] + 200 * best["selflabel"]
    print(f"projected CIFAR-10 protocol (500 + 50 + 200 epochs, fastest precision each): {t / 60:.1f} min")
PY

  # 3. Accuracy with a fixed budget on the full Fashion-MNIST.
  local acc="$work/acc"
  mkdir -p "$acc"
  sed "s#/usr/share/datasets/fashion-mnist#$fm#" pipelines/fashion-mnist.toml >"$acc/pipeline.toml"
  (cd "$acc" && "$bin/scan" run --json --set pretext.epochs=100 --set pretext.knn_every=20 \
    --set scan.epochs=20 --set selflabel.epochs=10) >"$out/accuracy.json" 2>"$out/accuracy.log" \
    || echo "accuracy: failed (see accuracy.log)"
  for st in evaluate_scan evaluate; do
    local m
    m=$(cd "$acc" && "$bin/scan" --exp "$(cd "$acc" && "$bin/scan" exp show --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["experiments"][-1]["name"])')" show "$st.metrics" 2>/dev/null) || continue
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(f'accuracy {sys.argv[2]}: ACC {m[\"acc\"]:.4f} NMI {m[\"nmi\"]:.4f} ARI {m[\"ari\"]:.4f}')" "$m" "$st"
  done
  python3 - "$out/accuracy.json" <<'PY'
import json, sys
try:
    runs = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(f"accuracy: no run record ({e})")
for o in runs:
    for s in o.get("stages", [o]):
        print(f"accuracy stage {s['stage']}: {s['status']} in {s['duration_s']:.1f} s")
PY
}

case "${1:-}" in
  --prepare) prepare ;;
  --run) run ;;
  *) echo "usage: $0 --prepare | --run" >&2; exit 2 ;;
esac
