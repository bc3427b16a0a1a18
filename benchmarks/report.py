"""Print the Markdown tables of ``docs/benchmarks.md`` from the benchmarks' JSON output.

Usage::

    .venv/bin/python -m benchmarks.report [--latency benchmarks/results/latency.json]
        [--startup benchmarks/results/startup.json] [--growth benchmarks/results/growth.json]
        [--growth-before ...] [--growth-after a.json,b.json] [--hub benchmarks/results/hub.json]
        [--heap benchmarks/results/firmware_heap.json] [--gcm benchmarks/results/gcm.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._common import ROOT


def latency_tables(data: dict[str, Any]) -> str:
    lines = [
        "| version | op | ours p50 | ours p99 | ours mean | tinytuya p50 | tinytuya p99 "
        "| ratio p50 | tinytuya nowait p50 | nowait p99 | ratio p50 (nowait) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in data["results"]:
        c = res["clients"]
        for op in ("status", "set"):
            o, t = c["ours"][op], c["tinytuya"][op]
            w = c.get("tinytuya_nowait", {}).get(op)
            row = (
                f"| {res['version']} | {op} | {o['p50_ms']:.3f} | {o['p99_ms']:.3f} "
                f"| {o['mean_ms']:.3f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} "
                f"| x{t['p50_ms'] / o['p50_ms']:.1f} "
            )
            if w:
                row += (
                    f"| {w['p50_ms']:.3f} | {w['p99_ms']:.3f} | x{w['p50_ms'] / o['p50_ms']:.2f} |"
                )
            else:
                row += "| - | - | - |"
            lines.append(row)
    return "\n".join(lines)


def runs_table(runs: list[dict[str, Any]]) -> str:
    """p50 of each client in each run and the tinytuya-without-sendWait/ours p50 ratio range."""
    out = [
        "| version | op | ours p50 per run | tinytuya (sendWait None) p50 per run "
        "| ratio nowait/ours p50 (min-max) | tinytuya default p50 per run |",
        "|---|---|---|---|---|---|",
    ]
    for i, res in enumerate(runs[0]["results"]):
        for op in ("status", "set"):
            ours = [r["results"][i]["clients"]["ours"][op]["p50_ms"] for r in runs]
            now = [r["results"][i]["clients"]["tinytuya_nowait"][op]["p50_ms"] for r in runs]
            dflt = [r["results"][i]["clients"]["tinytuya"][op]["p50_ms"] for r in runs]
            ratios = [n / o for n, o in zip(now, ours, strict=True)]
            out.append(
                f"| {res['version']} | {op} | {' / '.join(f'{x:.3f}' for x in ours)} "
                f"| {' / '.join(f'{x:.3f}' for x in now)} "
                f"| x{min(ratios):.2f} - x{max(ratios):.2f} "
                f"| {' / '.join(f'{x:.2f}' for x in dflt)} |"
            )
    return "\n".join(out)


def startup_tables(data: dict[str, Any]) -> str:
    out = []
    names = list(data["results"][0]["clients"])
    header = "| version | delay | N | " + " | ".join(names) + " |"
    out.append(header)
    out.append("|---|---|---:|" + "---:|" * len(names))
    for res in data["results"]:
        base = res["clients"]["ours"]["median_ms"]
        cells = []
        for name in names:
            ms = res["clients"][name]["median_ms"]
            cells.append(f"{ms:.1f}" if name == "ours" else f"{ms:.1f} (x{ms / base:.1f})")
        out.append(
            f"| {res['version']} | {res['delay_ms']:g} ms | {res['count']} | "
            + " | ".join(cells)
            + " |"
        )
    if data.get("memory"):
        out.append("")
        out.append(
            "| version | N | ours RSS/plug | ours tracemalloc/plug | tinytuya RSS/plug "
            "| tinytuya tracemalloc/plug |"
        )
        out.append("|---|---:|---:|---:|---:|---:|")
        for m in data["memory"]:
            out.append(
                f"| {m['version']} | {m['count']} "
                f"| {m['ours_rss']['rss_delta_per_plug_kib']:.1f} KiB "
                f"| {m['ours_tracemalloc']['tracemalloc_per_plug_kib']:.1f} KiB "
                f"| {m['tinytuya_rss']['rss_delta_per_plug_kib']:.1f} KiB "
                f"| {m['tinytuya_tracemalloc']['tracemalloc_per_plug_kib']:.1f} KiB |"
            )
        top = data["memory"][0]["ours_tracemalloc"]["tracemalloc_top"]
        out.append("")
        out.append(
            "Largest tracemalloc contributors (ours, per plug): "
            + ", ".join(f"`{t['file']}` {t['kib_per_plug']:.2f} KiB" for t in top)
        )
    for off in data.get("offline", []):
        out.append("")
        out.append(
            f"| one silent plug among {off['count']} (v{off['version']}) "
            "| all reachable plugs ready | everything settled | failed |"
        )
        out.append("|---|---:|---:|---:|")
        for name in ("ours", "tinytuya_seq", "tinytuya_pool"):
            r = off[name]
            out.append(
                f"| {name} | {r['reachable_ready_s']:.3f} s | {r['all_settled_s']:.3f} s "
                f"| {r['failed']} |"
            )
    return "\n".join(out)


def growth_table(data: dict[str, Any]) -> str:
    out = [
        "| set_dps calls so far | `_push_waiters` length | p50 ms | p99 ms | mean ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        out.append(
            f"| {r['set_dps_done']} | {r['push_waiters']} | {r['p50_ms']:.3f} "
            f"| {r['p99_ms']:.3f} | {r['mean_ms']:.3f} |"
        )
    mem = data.get("memory")
    if mem:
        out.append("")
        out.append(
            f"Retained memory: {mem['retained_bytes_per_call']:.0f} B per `set_dps` call "
            f"({mem['calls']} calls, tracemalloc after gc)."
        )
    return "\n".join(out)


def growth_compare_table(before: dict[str, Any], afters: list[dict[str, Any]]) -> str:
    """set_dps latency at each checkpoint: before the fix vs the runs after it."""
    n_after = len(afters)
    head = "| set_dps calls so far | before: `_push_waiters` | before p50 / mean ms |"
    head += "".join(f" after run {i + 1}: waiters | p50 / mean ms |" for i in range(n_after))
    out = [head, "|---:|---:|---:|" + "---:|---:|" * n_after]
    for i, b in enumerate(before["rows"]):
        row = (
            f"| {b['set_dps_done']} | {b['push_waiters']} "
            f"| {b['p50_ms']:.3f} / {b['mean_ms']:.3f} |"
        )
        for a in afters:
            r = a["rows"][i]
            row += f" {r['push_waiters']} | {r['p50_ms']:.3f} / {r['mean_ms']:.3f} |"
        out.append(row)
    mem = " | ".join(f"{a['memory']['retained_bytes_per_call']:.0f} B" for a in afters)
    out.append("")
    out.append(
        f"Retained per `set_dps` (tracemalloc after gc, {before['memory']['calls']} calls): "
        f"before {before['memory']['retained_bytes_per_call']:.0f} B, after {mem}."
    )
    return "\n".join(out)


def hub_tables(data: dict[str, Any]) -> str:
    out = [
        "| version | direct p50 | direct p99 | direct mean | hub p50 | hub p99 | hub mean "
        "| ratio p50 | ratio p99 | ratio mean | added p50 | hub ping p50 "
        "| firmware CPU/set (user + sys) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["set"]:
        d, h = r["direct"], r["hub"]
        out.append(
            f"| {r['version']} | {d['p50_ms']:.3f} | {d['p99_ms']:.3f} | {d['mean_ms']:.3f} "
            f"| {h['p50_ms']:.3f} | {h['p99_ms']:.3f} | {h['mean_ms']:.3f} "
            f"| x{r['ratio_p50']:.2f} | x{r['ratio_p99']:.2f} | x{r['ratio_mean']:.2f} "
            f"| {r['added_p50_ms']:.3f} | {r['ping']['p50_ms']:.3f} "
            f"| {r['hub_cpu_ms_per_set']:.3f} ({r.get('hub_user_ms_per_set', float('nan')):.3f}"
            f" + {r.get('hub_sys_ms_per_set', float('nan')):.3f}) |"
        )
    errs = {r["version"]: r["errors"] for r in data["set"]}
    out.append("")
    out.append(f"Errors (confirmed DP 1 missing or wrong): {errs}")
    if data.get("push"):
        out.append("")
        out.append(
            "| version | push direct p50 | direct p99 | direct mean | push via hub p50 "
            "| hub p99 | hub mean | ratio p50 | firmware CPU/push (user + sys) |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in data["push"]:
            d, h = r["direct"], r["hub"]
            out.append(
                f"| {r['version']} | {d['p50_ms']:.3f} | {d['p99_ms']:.3f} | {d['mean_ms']:.3f} "
                f"| {h['p50_ms']:.3f} | {h['p99_ms']:.3f} | {h['mean_ms']:.3f} "
                f"| x{r['ratio_p50']:.2f} "
                f"| {r.get('hub_user_ms_per_push', float('nan')):.3f}"
                f" + {r.get('hub_sys_ms_per_push', float('nan')):.3f} |"
            )
    return "\n".join(out)


def hub_runs_table(runs: list[dict[str, Any]]) -> str:
    """Per version, one cell per run: set p50 direct / hub, ratio, firmware user CPU per set and
    per push, and the ESP32 estimate of that CPU time (x125-180, the median run)."""
    out = [
        "| version | direct set p50 per run | hub set p50 per run | ratio p50 (min-max) "
        "| push direct p50 per run | push via hub p50 per run "
        "| firmware user CPU per set / per push (median) "
        "| ESP32 estimate per set / per push (x125-180) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, first in enumerate(runs[0]["set"]):
        sets = [r["set"][i] for r in runs]
        pushes = [r["push"][i] for r in runs] if runs[0].get("push") else []
        d = [x["direct"]["p50_ms"] for x in sets]
        h = [x["hub"]["p50_ms"] for x in sets]
        ratios = [x["ratio_p50"] for x in sets]
        cpu_set = sorted(x["hub_user_ms_per_set"] for x in sets)[len(sets) // 2]
        pd = [x["direct"]["p50_ms"] for x in pushes]
        ph = [x["hub"]["p50_ms"] for x in pushes]
        cpu_push = (
            sorted(x["hub_user_ms_per_push"] for x in pushes)[len(pushes) // 2]
            if pushes and "hub_user_ms_per_push" in pushes[0]
            else float("nan")
        )
        out.append(
            f"| {first['version']} | {' / '.join(f'{x:.3f}' for x in d)} "
            f"| {' / '.join(f'{x:.3f}' for x in h)} "
            f"| x{min(ratios):.2f} - x{max(ratios):.2f} "
            f"| {' / '.join(f'{x:.3f}' for x in pd)} | {' / '.join(f'{x:.3f}' for x in ph)} "
            f"| {cpu_set:.2f} ms / {cpu_push:.2f} ms "
            f"| {cpu_set * 125:.0f}-{cpu_set * 180:.0f} ms / "
            f"{cpu_push * 125:.0f}-{cpu_push * 180:.0f} ms |"
        )
    return "\n".join(out)


def heap_tables(data: dict[str, Any]) -> str:
    counts = data["counts"]
    out = [
        "| version | build | heap | "
        + " | ".join(f"N={n} alloc / free" for n in counts)
        + " | bytes/plug (N>=1 fit) | first plug (N 0->1) |",
        "|---|---|---|" + "---:|" * len(counts) + "---:|---:|",
    ]
    for r in data["rows"]:
        cells = []
        for n in counts:
            run = r["runs"].get(str(n), {})
            if "after_set" in run:
                a = run["after_set"]
                fails = len(run.get("failed_starts", []))
                mark = f" ({fails} failed start{'s' if fails > 1 else ''})" if fails else ""
                cells.append(f"{a['heap_alloc'] / 1024:.1f} / {a['heap_free'] / 1024:.1f}{mark}")
            else:
                cells.append(f"fails to start ({len(run.get('failures', []))}x)")
        first = r.get("after_set_first_plug")
        out.append(
            f"| {r['version']} | {r['build']} | {r['heapsize']} | "
            + " | ".join(cells)
            + f" | {r['after_set_bytes_per_plug']:.0f} "
            + f"| {first if first is not None else '-'} |"
        )
    return "\n".join(out)


def gcm_table(data: dict[str, Any]) -> str:
    builds = list(data["builds"])
    out = [
        "| operation | " + " | ".join(f"{b} µs | {b} bytes allocated" for b in builds) + " |",
        "|---|" + "---:|---:|" * len(builds),
    ]
    ops = [row["op"] for row in data["builds"][builds[0]]["rows"]]
    for op in ops:
        cells = []
        for b in builds:
            row = next(r for r in data["builds"][b]["rows"] if r["op"] == op)
            cells.append(f"{row['us']:.1f} | {row['alloc_bytes']}")
        out.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    p.add_argument("--latency", default=str(ROOT / "benchmarks/results/latency.json"))
    p.add_argument("--startup", default=str(ROOT / "benchmarks/results/startup.json"))
    p.add_argument("--growth", default=str(ROOT / "benchmarks/results/growth.json"))
    p.add_argument("--runs", help="comma-separated latency JSON files for the run-to-run table")
    p.add_argument(
        "--growth-before", default=str(ROOT / "benchmarks/results/growth_before_fix.json")
    )
    p.add_argument(
        "--growth-after",
        default=",".join(
            str(ROOT / f"benchmarks/results/{n}.json")
            for n in ("growth", "growth_run2", "growth_run3")
        ),
        help="comma-separated growth JSON files after the fix",
    )
    p.add_argument("--hub", default=str(ROOT / "benchmarks/results/hub.json"))
    p.add_argument(
        "--hub-runs",
        default=",".join(
            str(ROOT / f"benchmarks/results/{n}.json") for n in ("hub", "hub_run2", "hub_run3")
        ),
        help="comma-separated bench_hub JSON files for the run-to-run table",
    )
    p.add_argument("--heap", default=str(ROOT / "benchmarks/results/firmware_heap.json"))
    p.add_argument("--gcm", default=str(ROOT / "benchmarks/results/gcm.json"))
    args = p.parse_args(argv)
    if args.runs:
        runs = [json.loads(Path(f).read_text()) for f in args.runs.split(",")]
        for r in runs:
            env = r["environment"]
            load = f"{env.get('loadavg_at_start')} -> {env.get('loadavg_at_end')}"
            print(f"<!-- run {env['timestamp_utc']}, load {load} -->")
        print(runs_table(runs))
        print()
    for path, render in (
        (args.latency, latency_tables),
        (args.startup, startup_tables),
        (args.growth, growth_table),
        (args.hub, hub_tables),
        (args.heap, heap_tables),
        (args.gcm, gcm_table),
    ):
        if Path(path).exists():
            data = json.loads(Path(path).read_text())
            env = data["environment"]
            load = f"{env.get('loadavg_at_start')} -> {env.get('loadavg_at_end')}"
            print(f"<!-- {Path(path).name}: {env['timestamp_utc']}, load {load} -->")
            print(render(data))
            print()
    hub_runs = [f for f in args.hub_runs.split(",") if f and Path(f).exists()]
    if hub_runs:
        print("<!-- hub path, run to run -->")
        print(hub_runs_table([json.loads(Path(f).read_text()) for f in hub_runs]))
        print()
    afters = [f for f in args.growth_after.split(",") if f and Path(f).exists()]
    if Path(args.growth_before).exists() and afters:
        before = json.loads(Path(args.growth_before).read_text())
        print("<!-- set_dps growth before / after the fix -->")
        print(growth_compare_table(before, [json.loads(Path(f).read_text()) for f in afters]))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
