#!/usr/bin/env python3
"""Summarises the runs of bench/compare.sh: medians per (load, in flight, system).

    bench/report.py DIR       # reads DIR/raw/*.json; writes DIR/table.md,
                              # DIR/results.json, DIR/throughput.png,
                              # DIR/latency.png, DIR/cpu.png; prints the table

Every metric is the median over the runs of its cell, taken separately: ops/s,
p50 and p99 latency (all operations), the servers' CPU (user + system of every
process of the system, over the measured window) in cores and in microseconds
per operation, and the generator's own CPU.
"""
import glob
import json
import os
import statistics
import sys

SYSTEMS = ["etcd", "redis", "hakv"]
NAMES = {"etcd": "etcd", "redis": "Redis", "hakv": "hakv"}
LOADS = ["write", "read", "mix"]
LOAD_NAMES = {"write": "writes", "read": "linearizable reads", "mix": "90% reads / 10% writes"}


def load_runs(out):
    cells = {}
    for path in sorted(glob.glob(os.path.join(out, "raw", "*.json"))):
        r = json.load(open(path))
        c = r.get("compare")
        if not c:
            continue
        window = c["window_s"] or 1.0
        cores = c["server_cpu_s"] / window
        ops = r["ops_per_sec"]
        cells.setdefault((c["load"], c["in_flight"], c["system"]), []).append(
            {
                "ops_per_sec": ops,
                "p50_ms": r["latency"]["all"]["p50_ms"],
                "p99_ms": r["latency"]["all"]["p99_ms"],
                "p999_ms": r["latency"]["all"]["p999_ms"],
                "errors": r["errors"],
                "server_cpu_cores": cores,
                "server_cpu_us_per_op": cores / ops * 1e6 if ops > 0 else None,
                "client_cpu_cores": r["client_cpu_cores"],
            }
        )
    return cells


def median(runs, key):
    vals = [r[key] for r in runs if r[key] is not None]
    return statistics.median(vals) if vals else None


def summarise(cells):
    out = {}
    for (load, inflight, system), runs in cells.items():
        out.setdefault(load, {}).setdefault(inflight, {})[system] = {
            "runs": len(runs),
            **{k: median(runs, k) for k in runs[0]},
            "errors": sum(r["errors"] for r in runs),
        }
    return out


def fmt_int(v):
    return "–" if v is None else f"{v:,.0f}"


def fmt_ms(v):
    return "–" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}")


def fmt_ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}×"


def table(summary, systems):
    others = [s for s in systems if s != "hakv"]
    head = ["load", "in flight"] + [f"{NAMES[s]} ops/s" for s in systems]
    if "hakv" in systems:
        head += [f"hakv/{NAMES[s]}" for s in others]
    head += [
        "p50 ms " + " / ".join(NAMES[s] for s in systems),
        "p99 ms " + " / ".join(NAMES[s] for s in systems),
        "server CPU µs/op " + " / ".join(NAMES[s] for s in systems),
        "server CPU cores " + " / ".join(NAMES[s] for s in systems),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for load in [l for l in LOADS if l in summary] + [l for l in summary if l not in LOADS]:
        for inflight in sorted(summary[load]):
            cell = summary[load][inflight]
            get = lambda s, k: cell.get(s, {}).get(k)
            # Failed operations (summed over the runs) are shown beside the throughput.
            row = [load, str(inflight)] + [
                fmt_int(get(s, "ops_per_sec")) + (f" ({get(s, 'errors'):,} errors)" if get(s, "errors") else "")
                for s in systems
            ]
            if "hakv" in systems:
                row += [fmt_ratio(get("hakv", "ops_per_sec"), get(s, "ops_per_sec")) for s in others]
            row += [
                " / ".join(fmt_ms(get(s, "p50_ms")) for s in systems),
                " / ".join(fmt_ms(get(s, "p99_ms")) for s in systems),
                " / ".join(fmt_int(get(s, "server_cpu_us_per_op")) for s in systems),
                " / ".join("–" if get(s, "server_cpu_cores") is None else f"{get(s, 'server_cpu_cores'):.2f}" for s in systems),
            ]
            lines.append("| " + " | ".join(row) + " |")
    errors = {s: sum(summary[l][i].get(s, {}).get("errors", 0) for l in summary for i in summary[l]) for s in systems}
    lines.append("")
    lines.append("Failed operations over all runs: " + ", ".join(f"{NAMES[s]} {errors[s]:,}" for s in systems) + ".")
    return "\n".join(lines) + "\n"


def plots(summary, systems, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib missing: no plots; apt-get install python3-matplotlib)", file=sys.stderr)
        return
    colors = {"etcd": "#419eda", "redis": "#d82c20", "hakv": "#2a9d55"}
    loads = [l for l in LOADS if l in summary]
    figs = [
        ("throughput.png", "ops_per_sec", "operations/s (median)", False),
        ("latency.png", "p99_ms", "p99 latency, ms (median)", True),
        ("cpu.png", "server_cpu_us_per_op", "server CPU µs per operation (median)", True),
    ]
    for name, key, label, logy in figs:
        fig, axes = plt.subplots(1, len(loads), figsize=(4.2 * len(loads), 3.6), squeeze=False)
        for ax, load in zip(axes[0], loads):
            xs = sorted(summary[load])
            for s in systems:
                pts = [(x, summary[load][x].get(s, {}).get(key)) for x in xs]
                pts = [(x, y) for x, y in pts if y is not None]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=NAMES[s], color=colors.get(s))
            ax.set_xscale("log")
            if logy:
                ax.set_yscale("log")
            ax.set_xticks(xs)
            ax.set_xticklabels([str(x) for x in xs])
            ax.set_xlabel("requests in flight")
            ax.set_title(LOAD_NAMES.get(load, load), fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel(label)
        axes[0][0].legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=110)
        plt.close(fig)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    cells = load_runs(out)
    if not cells:
        sys.exit(f"no runs in {out}/raw")
    summary = summarise(cells)
    present = {s for (_, _, s) in cells}
    systems = [s for s in SYSTEMS if s in present]
    md = table(summary, systems)
    machine = os.path.join(out, "machine.txt")
    if os.path.exists(machine):
        md += "\n```\n" + open(machine).read() + "```\n"
    open(os.path.join(out, "table.md"), "w").write(md)
    json.dump({l: {str(i): v for i, v in d.items()} for l, d in summary.items()}, open(os.path.join(out, "results.json"), "w"), indent=1)
    plots(summary, systems, out)
    print(md, end="")


if __name__ == "__main__":
    main()
