#!/usr/bin/env python3
"""Plots a ksm_bench.py run: pages_sharing and ksmd CPU seconds over time, one line per mode.

    python3 Benchmarks/ksm/plot_bench.py .build/ksm-bench docs/ksm-bench.png

Needs matplotlib (pip install matplotlib).
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "summary.json")) as f:
        summary = json.load(f)
    page = os.sysconf("SC_PAGESIZE")
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    for r in summary["results"]:
        rows = list(csv.DictReader(open(os.path.join(src, f"{r['mode']}.csv"))))
        t = [float(x["t"]) for x in rows]
        saved = [int(x["sharing"]) * page / 2**30 for x in rows]
        cpu = [float(x["cpu"]) for x in rows]
        ax1.plot(t, saved, label=r["mode"])
        ax2.plot(t, cpu, label=r["mode"])
        if r.get("wave2_start"):
            ax1.axvline(r["wave2_start"], color=ax1.lines[-1].get_color(), ls=":", lw=0.8)
    a = summary["args"]
    ax1.set_title(
        f"{a['procs']} × {a['mib']} MiB, {a['dup']:.0%} duplicate; second wave {a['wave2_procs']} × {a['mib']} MiB (dotted)")
    ax1.set_ylabel("saved (pages_sharing), GiB")
    ax2.set_ylabel("ksmd CPU seconds since the policy started")
    ax2.set_xlabel("seconds since the policy started")
    ax2.set_yscale("symlog", linthresh=1)
    ax2.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
