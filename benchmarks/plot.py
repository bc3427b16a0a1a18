"""Draw the figures of ``docs/benchmarks.md`` from the JSON the benchmarks wrote.

Usage (needs ``benchmarks/requirements.txt``, i.e. matplotlib)::

    .venv/bin/python -m benchmarks.plot [--latency benchmarks/results/latency.json]
        [--startup benchmarks/results/startup.json] [--hub benchmarks/results/hub.json]
        [--out docs]
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


def plot_hub(data: dict[str, Any], out: Path) -> None:
    """Direct vs through the hub: confirmed switch and state push, p50 bars, p99 dashes."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.0))
    colors = {"direct": "#1f77b4", "hub": "#2ca02c"}
    labels = {"direct": "direct (TuyaDevice)", "hub": "through the hub (HubClient)"}
    panels = (
        ("set", "set DP 1 -> confirmed state"),
        ("push", "plug-side change -> subscriber callback"),
    )
    for ax, (part, title) in zip(axes[:2], panels, strict=True):
        rows = data[part]
        versions = [r["version"] for r in rows]
        for i, path in enumerate(("direct", "hub")):
            xs = [v + (i - 0.5) * 0.38 for v in range(len(rows))]
            ax.bar(
                xs, [r[path]["p50_ms"] for r in rows], 0.38, color=colors[path], label=labels[path]
            )
            ax.scatter(
                xs, [r[path]["p99_ms"] for r in rows], marker="_", s=120, color="black", zorder=3
            )
        ax.set_xticks(range(len(versions)), [f"v{v}" for v in versions])
        ax.set_ylabel("ms (bars p50, dashes p99)")
        top = max(r[path]["p99_ms"] for r in rows for path in ("direct", "hub"))
        ax.set_ylim(0, top * 1.4)  # room for the legend above the p99 dashes
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    rows = data["set"]
    versions = [r["version"] for r in rows]
    ax = axes[2]
    ax.bar(
        range(len(rows)),
        [r["hub_user_ms_per_set"] for r in rows],
        0.5,
        color="#9467bd",
        label="user",
    )
    ax.bar(
        range(len(rows)),
        [r["hub_sys_ms_per_set"] for r in rows],
        0.5,
        bottom=[r["hub_user_ms_per_set"] for r in rows],
        color="#c5b0d5",
        label="system",
    )
    ax.set_xticks(range(len(versions)), [f"v{v}" for v in versions])
    ax.set_ylabel("ms of hub CPU per confirmed switch")
    ax.set_title("firmware CPU per command (unix port)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Hub firmware on the MicroPython unix port, loopback", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__)
    p.add_argument("--latency", default=str(ROOT / "benchmarks/results/latency.json"))
    p.add_argument("--startup", default=str(ROOT / "benchmarks/results/startup.json"))
    p.add_argument("--hub", default=str(ROOT / "benchmarks/results/hub.json"))
    p.add_argument("--out", default=str(ROOT / "docs"))
    args = p.parse_args(argv)
    out = Path(args.out)
    if Path(args.latency).exists():
        plot_latency(json.loads(Path(args.latency).read_text()), out / "bench_latency.png")
        print(out / "bench_latency.png")
    if Path(args.startup).exists():
        plot_startup(json.loads(Path(args.startup).read_text()), out / "bench_startup.png")
        print(out / "bench_startup.png")
    if Path(args.hub).exists():
        plot_hub(json.loads(Path(args.hub).read_text()), out / "bench_hub.png")
        print(out / "bench_hub.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
