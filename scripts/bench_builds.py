"""Rows and summary of scripts/bench-builds.sh.

  bench_builds.py row WORKSPACE SIDE SEED WALL_S   one JSON line for a finished `scan run --json`
  bench_builds.py summary RESULTS.jsonl            per side: runs, median wall time, per-stage
                                                   medians, ACC mean ± std; the wall-time ratio
"""
import json
import statistics
import subprocess
import sys
from pathlib import Path

STAGES = ("pretext", "scan", "selflabel")


def row(ws, side, seed, wall):
    ws = Path(ws)
    run = json.loads((ws / "run.json").read_text())[0]
    bad = [o["stage"] for o in run["stages"] if o["status"] != "ran"]
    if bad:
        sys.exit(f"{ws}: stages that did not run from scratch: {bad}")

    def show(what):
        out = subprocess.run(["scan", "--exp", run["experiment"], "show", what], cwd=ws,
                             check=True, capture_output=True, text=True)
        return json.loads(Path(out.stdout.strip()).read_text())

    return {
        "side": side, "seed": int(seed), "wall_s": float(wall),
        **{f"{s}_s": o["duration_s"] for o in run["stages"] for s in STAGES if o["stage"] == s},
        "kmeans_acc": show("kmeans.metrics")["acc"],
        "scan_acc": show("evaluate_scan.metrics")["acc"],
        "selflabel_acc": show("evaluate.metrics")["acc"],
    }


def summary(path):
    rows = {}
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        rows[(r["side"], r["seed"])] = r  # a seed run again replaces its earlier line
    sides = sorted({s for s, _ in rows}, key=lambda s: s != "current")
    med = {}
    print("| side | runs (seeds) | wall s, median | pretext s | SCAN s | self-label s | K-means ACC | SCAN ACC | self-label ACC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for side in sides:
        rs = [r for (s, _), r in sorted(rows.items()) if s == side]
        med[side] = statistics.median(r["wall_s"] for r in rs)
        acc = lambda k: (f"{statistics.mean(r[k] for r in rs):.3f}"
                         + (f" ± {statistics.stdev(r[k] for r in rs):.3f}" if len(rs) > 1 else ""))
        stage = lambda s: f"{statistics.median(r[f'{s}_s'] for r in rs):.0f}"
        print(f"| {side} | {len(rs)} ({', '.join(str(r['seed']) for r in rs)}) | {med[side]:.0f} "
              f"| {stage('pretext')} | {stage('scan')} | {stage('selflabel')} "
              f"| {acc('kmeans_acc')} | {acc('scan_acc')} | {acc('selflabel_acc')} |")
    if "baseline" in med and "current" in med:
        print(f"\nmedian wall time: baseline {med['baseline']:.0f} s, current {med['current']:.0f} s, "
              f"ratio {med['baseline'] / med['current']:.2f}x")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "row":
        print(json.dumps(row(*args)))
    else:
        summary(*args)
