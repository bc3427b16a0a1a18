"""Draw the figures of ``docs/benchmarks.md`` from the JSON the benchmarks wrote.

Usage (needs ``benchmarks/requirements.txt``, i.e. matplotlib)::

    .venv/bin/python -m benchmarks.plot [--latency benchmarks/results/latency.json]
        [--startup benchmarks/results/startup.json] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from ._common import ROOT

COLORS = {
    "ours": "#1f77b4",
    "tinytuya": "#d62728",
    "tinytuya_nowait": "#ff9896",
    "tinytuya_seq": "#d62728",
    "tinytuya_pool": "#ff7f0e",
    "tinytuya_seq_nowait": "#e377c2",
    "tinytuya_pool_nowait": "#ffbb78",
}
LABELS = {
    "ours": "ours (asyncio)",
    "tinytuya": "tinytuya (default sendWait 10 ms)",
    "tinytuya_nowait": "tinytuya (sendWait None)",
    "tinytuya_seq": "tinytuya sequential",
    "tinytuya_pool": "tinytuya 8 threads",
    "tinytuya_seq_nowait": "tinytuya sequential, sendWait None",
    "tinytuya_pool_nowait": "tinytuya 8 threads, sendWait None",
}


def plot_latency(data: dict[str, Any], out: Path) -> None:
    results = data["results"]
    versions = [r["version"] for r in results]
    clients = list(results[0]["clients"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    width = 0.8 / len(clients)
    for ax, op, title in zip(
        axes, ("status", "set"), ("status() round trip", "set DP 1 -> confirmed"), strict=True
    ):
        for i, client in enumerate(clients):
            xs = [v + (i - (len(clients) - 1) / 2) * width for v in range(len(versions))]
            p50 = [r["clients"][client][op]["p50_ms"] for r in results]
            p99 = [r["clients"][client][op]["p99_ms"] for r in results]
            ax.bar(xs, p50, width, color=COLORS.get(client), label=LABELS.get(client, client))
            ax.scatter(xs, p99, marker="_", s=120, color="black", zorder=3)
        ax.set_xticks(range(len(versions)), [f"v{v}" for v in versions])
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("latency, ms (bar: p50, dash: p99; log scale)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(clients), fontsize=8)
    env = data["environment"]
    fig.suptitle(
        f"Loopback latency vs simulator subprocess, n={data['params']['n']} per bar "
        f"(Python {env['python']}, {env['cpu_count']} CPUs)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_startup(data: dict[str, Any], out: Path, version: str = "3.3") -> None:
    results = [r for r in data["results"] if r["version"] == version]
    delays = sorted({r["delay_ms"] for r in results})
    fig, axes = plt.subplots(1, len(delays), figsize=(5.5 * len(delays), 4.2), squeeze=False)
    for ax, delay in zip(axes[0], delays, strict=True):
        rows = sorted((r for r in results if r["delay_ms"] == delay), key=lambda r: r["count"])
        counts = [r["count"] for r in rows]
        for client in rows[0]["clients"]:
            ys = [r["clients"][client]["median_ms"] for r in rows]
            style = "--" if client.endswith("nowait") else "-"
            ax.plot(
                counts,
                ys,
                style,
                marker="o",
                color=COLORS.get(client),
                label=LABELS.get(client, client),
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("plugs (N)")
        ax.set_ylabel("time to all connected + first status, ms (median)")
        where = "plain loopback" if not delay else f"{delay:g} ms one-way delay (emulated Wi-Fi)"
        ax.set_title(f"v{version}, {where}", fontsize=10)
        ax.grid(which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__)
    p.add_argument("--latency", default=str(ROOT / "benchmarks/results/latency.json"))
    p.add_argument("--startup", default=str(ROOT / "benchmarks/results/startup.json"))
    p.add_argument("--out", default=str(ROOT / "docs"))
    args = p.parse_args(argv)
    out = Path(args.out)
    if Path(args.latency).exists():
        plot_latency(json.loads(Path(args.latency).read_text()), out / "bench_latency.png")
        print(out / "bench_latency.png")
    if Path(args.startup).exists():
        plot_startup(json.loads(Path(args.startup).read_text()), out / "bench_startup.png")
        print(out / "bench_startup.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
