"""Turns one bench/run.sh result folder into RESULTS.md (stdout).

Every ratio is computed from figures measured in the same run.
"""

import json
import os
import sys


def load(folder):
    """Every point, the median repetition of each label, and the extras.

    A label measured several times (bench/run.sh alternates each limit and
    batchgate pair REPS times) is represented by its median run: by items/s
    for a closed loop, by p99 latency for an open loop (fixed rate), with
    that run's other figures.
    """
    runs = [json.loads(line) for line in open(os.path.join(folder, "results.jsonl")) if line.strip()]
    extra = json.load(open(os.path.join(folder, "extra.json")))
    by_label = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r)
    medians = {}
    for label, reps in by_label.items():
        reps = sorted(reps, key=lambda r: r["latency_us"]["p99"] if r.get("rate") else r["items_per_sec"])
        median = dict(reps[(len(reps) - 1) // 2])
        median["reps"] = [r["items_per_sec"] for r in by_label[label]]
        medians[label] = median
    return medians, list(medians.values()), extra


def criterion(items=16384):
    """Scheduler throughput from the last `cargo bench --bench scheduler`."""
    base = "target/criterion/scheduler"
    found = {}
    for side in ("batchgate", "tower-batch"):
        for n in ("64", "1024"):
            path = os.path.join(base, side, n, "new", "estimates.json")
            if os.path.exists(path):
                mean_ns = json.load(open(path))["mean"]["point_estimate"]
                found[(side, n)] = items / (mean_ns / 1e9)
    return found


def main():
    folder = sys.argv[1]
    by, reports, extra = load(folder)
    rows = []

    def ratio(name, value, limit, target, unit=""):
        ok = value is not None and limit and value / limit >= target
        rows.append((name, value, limit, value / limit if (value and limit) else None, target, ok, unit))

    best = lambda prefix: max((r for r in reports if r["label"].startswith(prefix)), key=lambda r: r["items_per_sec"], default=None)
    bs, ls = best("batchgate-stream/"), best("limit-stream/")
    if bs and ls:
        ratio("StreamSubmit items/s (best window) vs bare bidi echo", bs["items_per_sec"], ls["items_per_sec"], 0.5)
    bu, lu = by.get("batchgate-unary/c=64"), by.get("limit-unary/c=64")
    if bu and lu:
        ratio("Unary Submit calls/s at 64 in flight (4 connections) vs bare unary echo", bu["items_per_sec"], lu["items_per_sec"], 0.8)
    bu, lu = by.get("batchgate-unary/c=64,k=16"), by.get("limit-unary/c=64,k=16")
    if bu and lu:
        ratio("the same, 64 in flight over 16 connections", bu["items_per_sec"], lu["items_per_sec"], 0.8)
    for key in ("h2load_batchgate", "h2load_mlserver"):
        extra[key] = float(extra[key]) if str(extra.get(key, "")).strip() else None
    if extra.get("h2load_batchgate") and extra.get("h2load_mlserver"):
        ratio("h2load unary req/s: batchgate Submit vs MLServer ModelInfer (64 in flight)", extra["h2load_batchgate"], extra["h2load_mlserver"], 10)
    s1, s64 = by.get("sim-batch1/c=256"), by.get("sim-batch64/c=256")
    if s1 and s64:
        ratio("sim (5 ms + 20 us/item) items/s: batch 64 vs batch 1", s64["items_per_sec"], s1["items_per_sec"], 10)
    crit = criterion()
    for n in ("64", "1024"):
        if ("batchgate", n) in crit and ("tower-batch", n) in crit:
            ratio(f"scheduler alone, {n} submitters: batchgate vs tower-batch", crit[("batchgate", n)], crit[("tower-batch", n)], 1.5)

    print("# batchgate benchmark results\n")
    print(f"- machine: {extra.get('machine')}")
    print(f"- date: {extra.get('date')}")
    print(f"- command: `{extra.get('command')}` (and `cargo bench --bench scheduler` for the scheduler rows)")
    print("- every ratio divides two figures measured in the same run; each limit/batchgate pair ran "
          f"{extra.get('reps', 1)} times, alternating, and each figure is the median run\n")
    print("## Ratios against the baseline of the same run\n")
    print("| what | batchgate | baseline | ratio | target | met |")
    print("| --- | ---: | ---: | ---: | ---: | :-: |")
    for name, value, limit, r, target, ok, _ in rows:
        print(f"| {name} | {value:,.0f} | {limit:,.0f} | {r:.2f} | ≥ {target} | {'yes' if ok else 'no'} |")

    print("\n## The cost of a remote gRPC backend hop (same echo, same run)\n")
    for mode, local, remote in (("unary, 64 in flight", "batchgate-unary/c=64", "batchgate-remote-unary/c=64"),
                                ("stream, window 1024", "batchgate-stream/w=1024", "batchgate-remote-stream/w=1024")):
        if local in by and remote in by:
            l, r = by[local]["items_per_sec"], by[remote]["items_per_sec"]
            print(f"- {mode}: built-in echo {l:,.0f} items/s, echo behind the Backend API {r:,.0f} items/s "
                  f"({r / l:.2f} of built-in; p99 {by[local]['latency_us']['p99']} us vs {by[remote]['latency_us']['p99']} us)")

    print("\n## Added latency (max_delay 2 ms)\n")
    print("Added latency = batchgate's p99 minus the bare echo's p99 at the same load, same run.\n")
    for name, ours, base, target in (
        ("a lone item (1 call at a time)", "batchgate-unary/c=1", "limit-unary/c=1", 2.5),
        (f"half of the maximum unary load ({extra.get('half_load_rate')} items/s offered, open loop)",
         "batchgate-open/half", "limit-open/half", 3.0),
    ):
        if ours in by and base in by:
            p99 = by[ours]["latency_us"]["p99"] / 1000
            base99 = by[base]["latency_us"]["p99"] / 1000
            added = p99 - base99
            print(f"- {name}: p50 {by[ours]['latency_us']['p50']/1000:.2f} ms, p99 {p99:.2f} ms; bare echo p99 "
                  f"{base99:.2f} ms; added p99 {added:.2f} ms (target ≤ {target} ms: {'met' if added <= target else 'not met'})")

    print("\n## Queue depth (paused queue of 16-byte items, then resumed)\n")
    print("| items queued | RSS growth per item | drain time | drain rate |")
    print("| ---: | ---: | ---: | ---: |")
    for n in ("1000", "100000", "1000000"):
        d = extra.get(f"depth_{n}")
        if d:
            print(f"| {int(n):,} | {d['bytes_per_item']} B | {d['drain_seconds']} s | {d['drain_items_per_sec']:,} items/s |")
    print("\n(RSS growth includes the payload, the per-stream answer slot and the "
          "client-chosen id of each item; at 1 000 items it is mostly noise.)")

    if extra.get("h2load_batchgate"):
        print("\n## h2load, unary, 4 connections x 16 streams\n")
        print(f"- batchgate Submit: {extra['h2load_batchgate']:,.0f} req/s")
        if extra.get("h2load_limit"):
            print(f"- bare tonic echo: {float(extra['h2load_limit']):,.0f} req/s")
        if extra.get("h2load_mlserver"):
            print(f"- Seldon MLServer {extra.get('mlserver_version', '')} ModelInfer, adaptive batching 64 / 2 ms, "
                  f"echo model: {extra['h2load_mlserver']:,.0f} req/s")

    print("\n## Every point (median run; all runs' items/s in the last column)\n")
    print("| series/point | items/s | p50 us | p99 us | p99.9 us | mean batch | errors | client CPU | runs, items/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in reports:
        l = r["latency_us"]
        runs = ", ".join(f"{x:,.0f}" for x in r["reps"])
        print(f"| {r['label']} | {r['items_per_sec']:,.0f} | {l['p50']} | {l['p99']} | {l['p999']} | "
              f"{r['batch_size']['mean']:.1f} | {sum(r['errors'].values())} | {r['client_cpu_percent']:.0f}% | {runs} |")
    print("\n![p99 latency vs throughput](chart.svg)")


if __name__ == "__main__":
    main()
