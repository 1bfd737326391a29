"""The table and chart of bench/target.sh: per policy and load, throughput,
p50/p99 and goodput (items answered OK within 20 ms per second)."""

import json
import sys
from collections import defaultdict

out, capacity = sys.argv[1], float(sys.argv[2])
rows = defaultdict(dict)
for line in open(f"{out}/results.jsonl"):
    r = json.loads(line)
    name, load = r["label"].split(" load=")
    rows[name][int(load)] = r
names = list(rows)
loads = sorted({l for n in names for l in rows[n]})

lines = [
    f"# Batching policies under open-loop load (sim 5 ms + 20 µs/item, one batch at a time; capacity {capacity:,.0f} items/s)",
    "",
    "Each cell: throughput (OK answers that came within the measured window, items/s) · p50 / p99 ms (of the OK answers, from each item's intended send time) · goodput (OK within 20 ms, items/s) · refused or failed items/s.",
    "",
    "| load | " + " | ".join(names) + " |",
    "| --- | " + " | ".join("---" for _ in names) + " |",
]
for load in loads:
    cells = []
    for n in names:
        r = rows[n].get(load)
        if r is None:
            cells.append("")
            continue
        failed = sum(r["errors"].values()) / r["seconds"]
        lat = r["latency_us"]
        cells.append(
            f"{r['completed_per_sec']:,.0f} · {lat['p50']/1e3:.1f} / {lat['p99']/1e3:.1f} · "
            f"{r['within']['per_sec']:,.0f} · {failed:,.0f}"
        )
    lines.append(f"| {load}% | " + " | ".join(cells) + " |")

# The goals of the target mode, checked on these figures.
fixed = [n for n in names if n.startswith("fixed")]
checks = []
for t in ("target", "target-shed"):
    if t not in rows:
        continue
    below = [l for l in loads if l < 100 and l in rows[t]]
    worst_p99 = max(rows[t][l]["latency_us"]["p99"] for l in below) / 1e3
    checks.append(f"- `{t}`: worst p99 below capacity {worst_p99:.1f} ms (goal ≤ 20 ms)")
    for l in [l for l in loads if l >= 120]:
        best_fixed = max(rows[f][l]["within"]["per_sec"] for f in fixed)
        g = rows[t][l]["within"]["per_sec"]
        ratio = f"{g / best_fixed:.2f}x" if best_fixed else "best fixed has none"
        checks.append(f"- `{t}` at {l}%: goodput {g:,.0f}/s vs best fixed {best_fixed:,.0f}/s: {ratio} (goal ≥ 2x)")
    worst = min(
        rows[t][l]["completed_per_sec"] / max(rows[f][l]["completed_per_sec"] for f in fixed)
        for l in loads
    )
    checks.append(f"- `{t}`: lowest throughput vs the best fixed at the same load: {worst:.2f} (goal ≥ 0.95)")
lines += ["", "## The goals", ""] + checks
open(f"{out}/TARGET.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

# A chart: p99 (log) and goodput against load, one line per policy.
W, H, PAD = 900, 340, 60
colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def panel(x0, title, value, top, log=False):
    import math

    def y(v):
        if log:
            v = math.log10(max(v, 0.1))
            lo, hi = -1, math.log10(top)
        else:
            lo, hi = 0, top
        return PAD + (H - 2 * PAD) * (1 - (v - lo) / (hi - lo))

    def x(load):
        return x0 + PAD + (W / 2 - 2 * PAD) * (load - loads[0]) / (loads[-1] - loads[0])

    parts = [f'<text x="{x0 + W/4}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    parts.append(f'<line x1="{x0+PAD}" y1="{H-PAD}" x2="{x0+W/2-PAD}" y2="{H-PAD}" stroke="black"/>')
    parts.append(f'<line x1="{x0+PAD}" y1="{PAD}" x2="{x0+PAD}" y2="{H-PAD}" stroke="black"/>')
    for load in loads:
        parts.append(f'<text x="{x(load)}" y="{H-PAD+15}" text-anchor="middle" font-size="10">{load}%</text>')
    ticks = [0.1, 1, 10, 100, 1000, 10000] if log else [top * i / 4 for i in range(5)]
    for t in ticks:
        if t <= top:
            label = f"{t:g}" if log else f"{t/1000:.0f}k"
            parts.append(f'<text x="{x0+PAD-5}" y="{y(t)+3}" text-anchor="end" font-size="10">{label}</text>')
    if log:
        parts.append(f'<line x1="{x0+PAD}" y1="{y(20)}" x2="{x0+W/2-PAD}" y2="{y(20)}" stroke="gray" stroke-dasharray="4"/>')
    for i, n in enumerate(names):
        pts = " ".join(f"{x(l)},{y(value(rows[n][l]))}" for l in loads if l in rows[n])
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colors[i % len(colors)]}" stroke-width="2"/>')
    return parts


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 30}" font-family="sans-serif">',
       '<rect width="100%" height="100%" fill="white"/>']
svg += panel(0, "p99 latency, ms (log; dashed: 20 ms target)", lambda r: r["latency_us"]["p99"] / 1e3, 10000, log=True)
top = max(r["within"]["per_sec"] for n in names for r in rows[n].values()) * 1.1
svg += panel(W / 2, "goodput: items/s answered OK within 20 ms", lambda r: r["within"]["per_sec"], top)
for i, n in enumerate(names):
    svg.append(f'<text x="{PAD + i * 150}" y="{H + 20}" font-size="12" fill="{colors[i % len(colors)]}">■ {n}</text>')
svg.append("</svg>")
open(f"{out}/target.svg", "w").write("\n".join(svg))
