#!/usr/bin/python3
"""Aggregate a bench/run.sh result directory.

    report.py RESULTDIR MACHINE.TXT

Reads RESULTDIR/raw.csv (one row per measurement) and writes:
  results.csv   the median, min and max of every measured configuration, with the
                machine described in leading '#' lines, and the peak memory of
                mounted runs (daemon VmHWM, view pages in the kernel cache)
  ratios.md     the table of ratios: umapfs against each baseline (>1: umapfs faster),
                the disk's limit, and memory against buffer_size
  *.dat, plotvars.gp   inputs of bench/plot.gp
Only the Python standard library is used.
"""
import csv
import os
import statistics
import sys
from collections import OrderedDict, defaultdict

KEY = ("section", "workload", "system", "state", "page_size", "buffer_size", "data_bytes",
       "metric", "unit", "better")
# Metrics that restate another one of the same runs: not repeated in the ratio table.
SECONDARY = {"teps", "iops"}
MIB = 1 << 20


def human(n):
    n = int(float(n))
    if n <= 0:
        return "-"
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    if n >= 1 << 20:
        return f"{n / MIB:.0f}M"
    return str(n)


def fmt(v, unit):
    if unit == "s":
        return f"{v:.3f} s"
    if unit in ("TEPS",):
        return f"{v / 1e6:.1f} MTEPS"
    if v >= 100:
        return f"{v:.0f} {unit}"
    return f"{v:.3g} {unit}"


def main():
    out, machine = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(os.path.join(out, "raw.csv"))))
    groups = OrderedDict()
    for r in rows:
        if r["value"] in ("", "nan"):
            continue
        k = tuple(r[f] for f in KEY)
        g = groups.setdefault(k, {"values": [], "rss": 0, "kc": 0})
        g["values"].append(float(r["value"]))
        if r.get("peak_rss"):
            g["rss"] = max(g["rss"], int(float(r["peak_rss"])))
        if r.get("peak_kcache"):
            g["kc"] = max(g["kc"], int(float(r["peak_kcache"])))

    agg = []
    for k, g in groups.items():
        d = dict(zip(KEY, k))
        v = g["values"]
        d.update(median=statistics.median(v), min=min(v), max=max(v), runs=len(v),
                 peak_rss=g["rss"], peak_kcache=g["kc"])
        agg.append(d)

    # ---- results.csv
    with open(os.path.join(out, "results.csv"), "w") as f:
        for line in open(machine):
            f.write("# " + line.rstrip("\n") + "\n")
        f.write("# median/min/max over 'runs' repetitions; better=higher|lower; peak_rss = "
                "umapfs VmHWM, peak_kcache = view bytes in the kernel page cache (fincore)\n")
        w = csv.writer(f)
        cols = list(KEY) + ["median", "min", "max", "runs", "peak_rss", "peak_kcache"]
        w.writerow(cols)
        for d in agg:
            w.writerow([d[c] if not isinstance(d[c], float) else f"{d[c]:.6g}" for c in cols])

    # ---- ratios
    md = []
    disk = [d for d in agg if d["section"] == "disk"]
    if disk:
        md.append("Disk limit (O_DIRECT reads through io_uring): " + ", ".join(
            f"{d['workload']} {fmt(d['median'], d['unit'])}" for d in disk))
        md.append("")
    md.append("| section | workload | state | umapfs page / buffer | umapfs | baseline | baseline value | ratio |")
    md.append("|---|---|---|---|---|---|---|---|")
    bygroup = defaultdict(list)
    for d in agg:
        if d["section"] in ("disk", "study") or d["metric"] in SECONDARY:
            continue
        bygroup[(d["section"], d["workload"], d["state"], d["metric"])].append(d)
    ratio_rows = []
    for (sec, wl, st, metric), ds in bygroup.items():
        ours = [d for d in ds if d["system"] == "umapfs"]
        bases = [d for d in ds if d["system"] != "umapfs"]
        for o in ours:
            for b in bases:
                if o["median"] <= 0 or b["median"] <= 0:
                    continue
                r = (o["median"] / b["median"] if o["better"] == "higher"
                     else b["median"] / o["median"])
                cfg = f"{human(o['page_size'])} / {human(o['buffer_size'])}"
                md.append(f"| {sec} | {wl} | {st} | {cfg} | {fmt(o['median'], o['unit'])} | "
                          f"{b['system']} | {fmt(b['median'], b['unit'])} | **{r:.3g}** |")
                ratio_rows.append((f"{wl} {st}", b["system"], r, sec))
    md.append("")
    md.append("Ratio: speed of umapfs relative to the baseline (> 1: umapfs faster), from medians.")

    # ---- memory against buffer_size
    mem = [d for d in agg if d["system"] == "umapfs" and d["peak_rss"] and
           d["metric"] not in SECONDARY]
    seen = set()
    memrows = []
    for d in mem:
        k = (d["section"], d["workload"], d["page_size"], d["buffer_size"])
        if k in seen:
            continue
        seen.add(k)
        memrows.append(d)
    if memrows:
        md.append("")
        md.append("| section | workload | page / buffer | data | peak daemon RSS | peak kernel cache | sum | sum - buffer |")
        md.append("|---|---|---|---|---|---|---|---|")
        for d in memrows:
            tot = d["peak_rss"] + d["peak_kcache"]
            buf = int(d["buffer_size"])
            md.append(f"| {d['section']} | {d['workload']} | {human(d['page_size'])} / {human(buf)} | "
                      f"{int(d['data_bytes']) / MIB:.0f} MiB | {d['peak_rss'] / MIB:.0f} MiB | "
                      f"{d['peak_kcache'] / MIB:.0f} MiB | {tot / MIB:.0f} MiB | "
                      f"{(tot - buf) / MIB:+.0f} MiB |")
    open(os.path.join(out, "ratios.md"), "w").write("\n".join(md) + "\n")

    # ---- plot inputs
    bases = sorted({b for _, b, _, _ in ratio_rows})
    with open(os.path.join(out, "ratios.dat"), "w") as f:
        f.write("# label baseline ratio baseline_index\n")
        for label, b, r, sec in ratio_rows:
            f.write(f'"{sec}: {label}\\nvs {b}" "{b}" {r:.4f} {bases.index(b) + 1}\n')
    with open(os.path.join(out, "memory.dat"), "w") as f:
        f.write("# label buffer_size peak_rss peak_kcache\n")
        for d in memrows:
            f.write(f'"{d["workload"]}\\n{human(d["page_size"])}/{human(d["buffer_size"])}" '
                    f'{d["buffer_size"]} {d["peak_rss"]} {d["peak_kcache"]}\n')
    pv = [f'n_ratios = {len(ratio_rows)}', f'n_memory = {len(memrows)}']
    studies = OrderedDict()
    for d in agg:
        if d["section"] == "study" and d["metric"] == "time":
            studies.setdefault(d["workload"], []).append(d)
    names = []
    for i, (wl, ds) in enumerate(studies.items()):
        names.append(wl)
        kernel = [d["median"] for d in ds if d["system"] != "umapfs"]
        bufs = sorted({int(d["buffer_size"]) for d in ds if d["system"] == "umapfs"})
        with open(os.path.join(out, f"study{i + 1}.dat"), "w") as f:
            for b in bufs:
                f.write(f"# buffer {human(b)}\n")
                for d in sorted((d for d in ds if d["system"] == "umapfs" and
                                 int(d["buffer_size"]) == b), key=lambda d: int(d["page_size"])):
                    f.write(f"{int(d['page_size'])} {d['median']:.6f} {d['min']:.6f} {d['max']:.6f}\n")
                f.write("\n\n")
        pv.append(f'study{i + 1}_kernel = {kernel[0] if kernel else "NaN"}')
        pv.append(f'study{i + 1}_buffers = "{" ".join(human(b) for b in bufs)}"')
        pv.append(f'study{i + 1}_name = "{wl}"')
    pv.append(f"n_studies = {len(names)}")
    open(os.path.join(out, "plotvars.gp"), "w").write("\n".join(pv) + "\n")


if __name__ == "__main__":
    main()
