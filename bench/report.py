#!/usr/bin/python3
"""Aggregate a bench/run.sh result directory.

    report.py RESULTDIR MACHINE.TXT

Reads RESULTDIR/raw.csv (one row per measurement) and writes:
  results.csv   the median, min and max of every measured configuration, with the
                machine described in leading '#' lines, and the peak memory of
                mounted runs (daemon VmHWM, view pages in the kernel cache).  A run
                past its time limit is a row with metric "timeout" (value: the
                limit), never a result.
  ratios.md     the tables: umapfs against each baseline (> 1: umapfs faster), the
                disk's limit, measurements without a baseline, timeouts, and memory
                against buffer_size
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
# Sections whose umapfs side or baseline has one state by design: their other
# states are compared across (see ratio_pairs).
CROSS_STATE = {"sort", "engine"}
BASELINE_NAMES = {
    "kernel-mmap": "kernel mmap",
    "cfitsio": "cfitsio per pixel",
    "odirect-pread": "O_DIRECT pread",
    "disk-odirect": "disk O_DIRECT",
}


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
    if unit == "TEPS":
        return f"{v / 1e6:.1f} MTEPS"
    if v >= 100:
        return f"{v:.0f} {unit}"
    return f"{v:.3g} {unit}"


def cfg(d):
    return f"{human(d['page_size'])} / {human(d['buffer_size'])}"


def aggregate(rows):
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
    return agg


def write_results(out, machine, agg):
    with open(os.path.join(out, "results.csv"), "w") as f:
        for line in open(machine):
            f.write("# " + line.rstrip("\n") + "\n")
        f.write("# median/min/max over 'runs' repetitions; better=higher|lower; metric=timeout: "
                "'runs' runs did not finish within the limit (the value), no result; peak_rss = "
                "umapfs VmHWM, peak_kcache = view bytes in the kernel page cache (fincore), "
                "bytes, largest over the runs\n")
        w = csv.writer(f)
        cols = list(KEY) + ["median", "min", "max", "runs", "peak_rss", "peak_kcache"]
        w.writerow(cols)
        for d in agg:
            w.writerow([d[c] if not isinstance(d[c], float) else f"{d[c]:.6g}" for c in cols])


def ratio_pairs(agg):
    """(umapfs row, baseline row, state label) for every comparison.

    Same section, workload and metric.  A umapfs row is compared with the
    baselines of its own state.  In CROSS_STATE sections, a state that only the
    baselines have (sort: kernel mmap warm; the mount is always cold) is also
    compared with every umapfs row, and a umapfs state without baselines
    (engine warm: O_DIRECT pread has no cache) with the other states' baselines.
    """
    by = defaultdict(lambda: defaultdict(lambda: {"u": [], "b": []}))
    for d in agg:
        if d["section"] in ("disk", "study") or d["metric"] in SECONDARY | {"timeout"}:
            continue
        side = "u" if d["system"] == "umapfs" else "b"
        by[(d["section"], d["workload"], d["metric"])][d["state"]][side].append(d)
    pairs = []
    for key, states in by.items():
        for st, g in states.items():
            for o in g["u"]:
                bases = g["b"]
                label = st
                if not bases and key[0] in CROSS_STATE:
                    bases = [b for s2, g2 in states.items() if s2 != st for b in g2["b"]]
                for b in bases:
                    lab = label if b["state"] == st else f"{st} (baseline {b['state']})"
                    pairs.append((o, b, lab))
            if g["b"] and not g["u"] and key[0] in CROSS_STATE:
                for s2, g2 in states.items():
                    if s2 == st or not g2["b"]:
                        # umapfs rows of a state that has no baselines were paired above
                        continue
                    for o in g2["u"]:
                        for b in g["b"]:
                            pairs.append((o, b, f"{s2} (baseline {st})"))
    return pairs


def main():
    out, machine = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(os.path.join(out, "raw.csv"))))
    agg = aggregate(rows)
    write_results(out, machine, agg)

    md = []
    disk = [d for d in agg if d["section"] == "disk"]
    if disk:
        md.append("Disk limit (O_DIRECT reads through io_uring): " + ", ".join(
            f"{d['workload']} {fmt(d['median'], d['unit'])}" for d in disk))
        md.append("")

    # ---- ratios
    timeouts = {(d["section"], d["workload"], d["system"], d["state"], d["page_size"],
                 d["buffer_size"]): d for d in agg if d["metric"] == "timeout"}
    md.append("| section | workload | state | umapfs page / buffer | umapfs | baseline | baseline value | ratio |")
    md.append("|---|---|---|---|---|---|---|---|")
    ratio_rows = []
    paired = set()
    for o, b, st in ratio_pairs(agg):
        paired.add(id(o))
        if o["median"] <= 0 or b["median"] <= 0:
            continue
        r = o["median"] / b["median"] if o["better"] == "higher" else b["median"] / o["median"]
        note = ""
        t = timeouts.get((o["section"], o["workload"], o["system"], o["state"], o["page_size"],
                          o["buffer_size"]))
        if t:
            note = f" ({t['runs']} more run(s) timed out)"
        md.append(f"| {o['section']} | {o['workload']} | {st} | {cfg(o)} | "
                  f"{fmt(o['median'], o['unit'])}{note} | {BASELINE_NAMES.get(b['system'], b['system'])} | "
                  f"{fmt(b['median'], b['unit'])} | **{r:.3g}** |")
        label = f"{o['workload']} {st}".replace("(baseline ", "vs ").replace(")", "")
        if human(o["page_size"]) not in o["workload"] and o["section"] != "bfs":
            label += f" {human(o['page_size'])}"
        ratio_rows.append((o["section"], label, b["system"], r))
    md.append("")
    md.append("Ratio: speed of umapfs relative to the baseline (> 1: umapfs faster), from medians. "
              "engine: the engine from an empty buffer (cold) and full (warm) against O_DIRECT pread, "
              "which has no cache; sort: the mount reads with O_DIRECT from a fresh mount (cold), "
              "against kernel mmap cold and warm.")

    # ---- umapfs measurements without a baseline
    alone = [d for d in agg if d["system"] == "umapfs" and id(d) not in paired and
             d["section"] != "study" and d["metric"] not in SECONDARY | {"timeout"}]
    if alone:
        md.append("")
        md.append("Without a baseline: " + "; ".join(
            f"{d['section']} {d['workload']} {d['state']} {cfg(d)}: {fmt(d['median'], d['unit'])}"
            for d in alone))

    # ---- timeouts
    if timeouts:
        md.append("")
        md.append("Timed out (no result; the study's figure marks them at the limit): " + "; ".join(
            f"{d['section']} {d['workload']} {d['system']} {d['state']} "
            f"{cfg(d) if d['system'] == 'umapfs' else ''} x{d['runs']} (limit {d['median']:.0f} s)"
            .replace("  ", " ") for d in timeouts.values()))

    # ---- memory against buffer_size: the largest over all runs of a mount configuration
    memrows = OrderedDict()
    for d in agg:
        if d["system"] != "umapfs" or not d["peak_rss"]:
            continue
        k = (d["section"], d["workload"], d["page_size"], d["buffer_size"])
        m = memrows.setdefault(k, dict(d))
        m["peak_rss"] = max(m["peak_rss"], d["peak_rss"])
        m["peak_kcache"] = max(m["peak_kcache"], d["peak_kcache"])
    memrows = list(memrows.values())
    if memrows:
        md.append("")
        md.append("Memory of each mount: the daemon's peak RSS (VmHWM) and the view's peak bytes in "
                  "the kernel page cache (fincore, sampled every 0.5 s), largest over the runs; "
                  "engine: the peak RSS of the engine_random process (the engine in-process; "
                  "O_DIRECT leaves no page cache).")
        md.append("")
        md.append("| section | workload | page / buffer | data | peak daemon RSS | peak kernel cache | sum | sum - buffer |")
        md.append("|---|---|---|---|---|---|---|---|")
        for d in memrows:
            tot = d["peak_rss"] + d["peak_kcache"]
            buf = int(d["buffer_size"])
            md.append(f"| {d['section']} | {d['workload']} | {cfg(d)} | "
                      f"{int(d['data_bytes']) / MIB:.0f} MiB | {d['peak_rss'] / MIB:.0f} MiB | "
                      f"{d['peak_kcache'] / MIB:.0f} MiB | {tot / MIB:.0f} MiB | "
                      f"{(tot - buf) / MIB:+.0f} MiB |")
    open(os.path.join(out, "ratios.md"), "w").write("\n".join(md) + "\n")

    # ---- plot inputs
    bases = sorted({b for _, _, b, _ in ratio_rows})
    with open(os.path.join(out, "ratios.dat"), "w") as f:
        f.write("# label baseline ratio baseline_index\n")
        for sec, label, b, r in ratio_rows:
            f.write(f'"{sec}: {label}" "{BASELINE_NAMES.get(b, b)}" {r:.6g} {bases.index(b) + 1}\n')
    with open(os.path.join(out, "memory.dat"), "w") as f:
        f.write("# label buffer_size peak_rss peak_kcache\n")
        for d in memrows:
            f.write(f'"{d["section"]}: {d["workload"]} {cfg(d).replace(" ", "")}" '
                    f'{d["buffer_size"]} {d["peak_rss"]} {d["peak_kcache"]}\n')
    pv = [f"n_ratios = {len(ratio_rows)}", f"n_memory = {len(memrows)}",
          f"n_bases = {len(bases)}"]
    for i, b in enumerate(bases):
        pv.append(f'base{i + 1} = "{BASELINE_NAMES.get(b, b)}"')
    if ratio_rows:
        rs = [r for _, _, _, r in ratio_rows]
        pv.append(f"ratio_min = {min(rs):.6g}")
        pv.append(f"ratio_max = {max(rs):.6g}")
    studies = OrderedDict()
    for d in agg:
        if d["section"] == "study" and d["metric"] in ("time", "timeout"):
            studies.setdefault(d["workload"], []).append(d)
    for i, (wl, ds) in enumerate(studies.items()):
        kernel = [d["median"] for d in ds if d["system"] != "umapfs" and d["metric"] == "time"]
        ours = [d for d in ds if d["system"] == "umapfs"]
        bufs = sorted({int(d["buffer_size"]) for d in ours if d["metric"] == "time"})
        with open(os.path.join(out, f"study{i + 1}.dat"), "w") as f:
            for b in bufs:
                f.write(f"# buffer {human(b)}\n")
                for d in sorted((d for d in ours if d["metric"] == "time" and
                                 int(d["buffer_size"]) == b), key=lambda d: int(d["page_size"])):
                    f.write(f"{int(d['page_size'])} {d['median']:.6f} {d['min']:.6f} {d['max']:.6f}\n")
                f.write("\n\n")
        tos = [d for d in ours if d["metric"] == "timeout"]
        with open(os.path.join(out, f"study{i + 1}_timeouts.dat"), "w") as f:
            f.write("# page_size limit buffer\n")
            for d in sorted(tos, key=lambda d: (int(d["buffer_size"]), int(d["page_size"]))):
                f.write(f'{int(d["page_size"])} {d["median"]:.6f} "{human(d["buffer_size"])}"\n')
        pv.append(f'study{i + 1}_kernel = {kernel[0] if kernel else "NaN"}')
        pv.append(f'study{i + 1}_buffers = "{" ".join(human(b) for b in bufs)}"')
        pv.append(f"study{i + 1}_ntimeouts = {len(tos)}")
        pv.append(f'study{i + 1}_name = "{wl}"')
    pv.append(f"n_studies = {len(studies)}")
    open(os.path.join(out, "plotvars.gp"), "w").write("\n".join(pv) + "\n")


if __name__ == "__main__":
    main()
