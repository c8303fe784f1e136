#!/usr/bin/env python3
"""Collects and summarises scripts/bench-reference.sh (ours vs the reference, seed by seed).

    bench_reference.py ours WORKSPACE SEED WALL_S      -> one JSON line from a finished `scan run`
    bench_reference.py reference LOG SEED WALL_S       -> one JSON line from the reference's log
    bench_reference.py summary RESULTS.jsonl [MORE.jsonl ...] -> the Markdown tables of BENCHMARKS.md

Both sides report the same quantities: the last SimCLR epoch's loss, the last kNN monitor accuracy,
the accuracy of the mined top-20 train neighbours, SCAN's test ACC / NMI / ARI, the test ACC after
self-labeling, and wall times (stage and total). The summary gives mean ± sample std over seeds and
compares the two samples of each ACC with Welch's t-test and the Mann-Whitney U test (scipy).
"""
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path


def ours(ws, seed, wall):
    ws = Path(ws)
    # `scan run --json` with `--set`: one experiment, its name and its stages' outcomes. run.json is
    # the pipeline as it is (timed); the second run differs in the self-labeling threshold only.
    runs = [json.loads((ws / f).read_text())[0] for f in ("run.json", "run-reference-threshold.json")]
    for run in runs:
        failed = [o["stage"] for o in run["stages"] if o["status"] not in ("ran", "cached")]
        if failed:
            sys.exit(f"{ws}: stages did not run: {failed}")
    stage_s = {o["stage"]: o["duration_s"] for o in runs[0]["stages"]}

    def show(what, run=runs[0]):
        out = subprocess.run(["scan", "--exp", run["experiment"], "show", what], cwd=ws,
                             check=True, capture_output=True, text=True)
        return json.loads(Path(out.stdout.strip()).read_text())

    pre = show("pretext.curves")["records"]
    knn = [r["knn_acc"] for r in pre if "knn_acc" in r]
    confident = [r["confident_fraction"] for r in show("selflabel.curves", runs[1])["records"]
                 if "confident_fraction" in r]
    m_scan = show("evaluate_scan.metrics")
    return {
        "side": "ours", "seed": seed, "wall_s": wall,
        "pretext_s": stage_s["pretext"], "embed_mine_s": stage_s["embed"] + stage_s["mine"],
        "scan_s": stage_s["scan"], "selflabel_s": stage_s["selflabel"],
        "simclr_loss": pre[-1]["loss"], "knn_monitor": knn[-1] if knn else None,
        "neighbors_top20": show("mine.metrics")["train"]["neighbor_accuracy"],
        "kmeans_acc": show("kmeans.metrics")["acc"],
        "scan_acc": m_scan["acc"], "scan_nmi": m_scan["nmi"], "scan_ari": m_scan["ari"],
        "selflabel_acc": show("evaluate.metrics", runs[1])["acc"],
        "selflabel_acc_pipeline": show("evaluate.metrics")["acc"],
        "confident_fraction": statistics.mean(confident) if confident else None,
    }


# The reference prints its running average as `Loss 2.7052e+00 (2.6981e+00)`; the last value of the
# pretext phase (before the mined neighbours' accuracy is printed) is the average over most of the last epoch.
LOSS = re.compile(r"Loss\s+[-+.\deE]+\s+\(([-+.\deE]+)\)")


def reference(log, seed, wall):
    text = Path(log).read_text()
    lines = [l for l in text.splitlines() if l.startswith("{")]
    if not lines:
        sys.exit(f"{log}: no result line (the run failed; see the log)")
    r = json.loads(lines[-1])
    pretext_part = text.split("Accuracy of top-20", 1)[0]
    losses = LOSS.findall(pretext_part)
    return {
        "side": "reference", "seed": seed, "wall_s": wall,
        "pretext_s": r["pretext_s"], "embed_mine_s": r["mine_s"],
        "scan_s": r["scan_s"], "selflabel_s": r["selflabel_s"],
        "simclr_loss": float(losses[-1]) if losses else None,
        "knn_monitor": r["knn_monitor_acc"], "neighbors_top20": r["knn_top20_acc"],
        "kmeans_acc": None,
        "scan_acc": r["scan"]["acc"], "scan_nmi": r["scan"]["nmi"], "scan_ari": r["scan"]["ari"],
        "selflabel_acc": r["selflabel"]["acc"],
        "selflabel_acc_pipeline": None,
        "confident_fraction": r.get("selflabel_confident_fraction"),
    }


def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def mean_std(vs, digits=3):
    vs = [v for v in vs if v is not None]
    if not vs:
        return "–"
    if len(vs) == 1:
        return fmt(vs[0], digits)
    return f"{statistics.mean(vs):.{digits}f} ± {statistics.stdev(vs):.{digits}f}"


COLS = [("simclr_loss", "SimCLR loss, last epoch", 2), ("knn_monitor", "kNN monitor", 3),
        ("neighbors_top20", "neighbours top-20", 3), ("kmeans_acc", "K-means ACC", 3),
        ("scan_acc", "SCAN ACC", 3), ("scan_nmi", "NMI", 3), ("scan_ari", "ARI", 3),
        ("selflabel_acc", "+ self-label ACC (reference's threshold)", 3),
        ("selflabel_acc_pipeline", "+ self-label ACC (pipeline's threshold)", 3),
        ("confident_fraction", "confident fraction", 2), ("pretext_s", "pretext s", 0),
        ("scan_s", "SCAN s", 0), ("selflabel_s", "self-label s", 0), ("wall_s", "total s", 0)]


TIMES = {"pretext_s", "scan_s", "selflabel_s", "wall_s"}


def summary(*paths):
    from scipy import stats
    # The last line of each (side, seed, batch) counts: a seed run again replaces its earlier result.
    # `batch` (optional) labels runs made apart from this script's, e.g. an earlier series.
    latest = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                latest[(r["side"], r["seed"], r.get("batch", ""))] = r
    rows = [{k: r.get(k) for k in r} | {c: r.get(c) for c, _, _ in COLS} for r in latest.values()]
    head = "| run (seed) | " + " | ".join(c[1] for c in COLS) + " |"
    print(head)
    print("|" + "---|" * (len(COLS) + 1))
    for side in ("reference", "ours"):
        for r in sorted((r for r in rows if r["side"] == side),
                        key=lambda r: (r.get("batch") or "", r["seed"])):
            label = f"{r['seed']}, {r['batch']}" if r.get("batch") else f"{r['seed']}"
            print(f"| {side} ({label}) | " + " | ".join(fmt(r[k], d) for k, _, d in COLS) + " |")
    for side in ("reference", "ours"):
        mine = [r for r in rows if r["side"] == side]
        # Times only from this script's series: a machine's speed differs from day to day.
        print(f"| **{side}, mean ± std (n = {len(mine)})** | "
              + " | ".join(mean_std([r[k] for r in mine if k not in TIMES or not r.get("batch")], d)
                           for k, _, d in COLS) + " |")
    print()
    print("| quantity | ours − reference (means) | Welch t-test p | Mann-Whitney U p |")
    print("|---|---|---|---|")
    for k in ("simclr_loss", "knn_monitor", "neighbors_top20", "scan_acc", "scan_nmi", "scan_ari",
              "selflabel_acc", "confident_fraction"):
        a = [r[k] for r in rows if r["side"] == "ours" and r[k] is not None]
        b = [r[k] for r in rows if r["side"] == "reference" and r[k] is not None]
        if len(a) < 2 or len(b) < 2:
            continue
        t = stats.ttest_ind(a, b, equal_var=False)
        u = stats.mannwhitneyu(a, b, alternative="two-sided")
        print(f"| {k} | {statistics.mean(a) - statistics.mean(b):+.3f} | {t.pvalue:.3f} | {u.pvalue:.3f} |")
    walls = {s: statistics.median(r["wall_s"] for r in rows if r["side"] == s and not r.get("batch"))
             for s in ("ours", "reference")
             if any(r["side"] == s and not r.get("batch") for r in rows)}
    if len(walls) == 2:
        print(f"\nmedian wall time: ours {walls['ours']:.1f} s, reference {walls['reference']:.1f} s, "
              f"ratio {walls['reference'] / walls['ours']:.2f}x")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "summary":
        summary(*args)
    else:
        src, seed, wall = args
        row = (ours if cmd == "ours" else reference)(src, int(seed), float(wall))
        print(json.dumps(row))
