#!/usr/bin/env python3
"""Sums an Nsight Compute CSV (ncu --csv --metrics gpu__time_duration.sum) per kernel: what one profiled decode step
spends in each kernel, measured in isolation (ncu serialises kernels, so the sum has no launch gaps; a graph replay of
the same step taking longer than the sum is the gaps).

usage: kernel_profile.py NCU_CSV --out summary.json [--label TEXT]
"""
import argparse, csv, io, json, re
from collections import defaultdict


def short(name: str) -> str:
    name = re.sub(r"^void ", "", name)
    depth, out = 0, []
    for ch in name:  # drop template arguments and parameter lists
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).strip() or name[:80]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("--out", required=True)
    p.add_argument("--label", default="")
    a = p.parse_args()
    lines = [l for l in open(a.csv, encoding="utf-8", errors="replace") if l.startswith('"')]
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    kernels = defaultdict(lambda: {"count": 0, "total_us": 0.0})
    total = 0.0
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "ns")
        us = value / 1000.0 if unit in ("nsecond", "ns") else value * 1000.0 if unit in ("msecond", "ms") else value
        k = kernels[short(r["Kernel Name"])]
        k["count"] += 1
        k["total_us"] += us
        total += us
    ranked = sorted(({"kernel": n, **v, "share": v["total_us"] / total if total else 0} for n, v in kernels.items()),
                    key=lambda k: -k["total_us"])
    summary = {"label": a.label, "kernels_launched": sum(k["count"] for k in ranked), "sum_of_kernel_us": total,
               "definition": "gpu__time_duration.sum per kernel, kernels run one at a time under ncu (no launch gaps)",
               "by_kernel": ranked}
    json.dump(summary, open(a.out, "w"), indent=1)
    print(f"{a.label}: {summary['kernels_launched']} kernels, {total:.1f} us in kernels")
    for k in ranked[:15]:
        print(f"  {k['total_us']:9.1f} us {k['count']:5d}x  {k['kernel'][:100]}")


if __name__ == "__main__":
    main()
