#!/usr/bin/env python3
"""Tables and SVG plots for scripts/bench.sh (python3 standard library only).

    report.py summary   --csv results.csv --meta meta.txt --rss-dir rss/ [--locks-dir locks/] --out DIR
    report.py callgrind --csv callgrind.csv --meta meta.txt --out DIR
    report.py overview  --summary summary.md --out overview.svg

summary: medians per workload and allocator of wall time, CPU time and peak RSS over
the runs that passed, ratios to goalloc (below 1: less than goalloc) and their geometric
means per allocator; writes summary.txt (also printed), summary.md, medians.csv and
time_ratio.svg, peak_rss.svg, rss_after_peak.svg, and overview.svg: the README's plot,
the peers' ratios to goalloc in wall time and peak RSS, a row per workload. With
--locks-dir (goalloc's GOALLOC_STATS=json reports, W-goalloc-rN.json): the locks' traffic
per workload (acquisitions and contended ones per million malloc+free, mean hold time,
share of the wall time held) and a model of each lock's utilisation at 16, 64 and 128
threads on as many cores; also in locks.csv.

overview: overview.svg again from the tables of a summary.md (the committed results keep
summary.md, not the CSV).

callgrind: instructions per malloc+free per allocation pattern (batch, fixed, cycle, ring),
size and allocator, one table per pattern; writes callgrind.txt (also printed) and
callgrind.md.
"""
import argparse
import csv
import json
import math
import os
import statistics
import sys
from xml.sax.saxutils import escape

ALLOCATOR_ORDER = ["goalloc", "before", "goalloc-prof", "glibc", "tcmalloc", "jemalloc", "mimalloc",
                   "mimalloc3", "snmalloc"]
COLORS = {
    "goalloc": "#00add8",  # Go's blue
    "before": "#9ad9ea",  # an earlier goalloc build (bench.sh --baseline)
    "goalloc-prof": "#005f77",  # goalloc with GOALLOC_PROFILE on
    "glibc": "#7f7f7f",
    "tcmalloc": "#e6a100",
    "jemalloc": "#c0392b",
    "mimalloc": "#27ae60",
    "mimalloc3": "#0b5d2a",  # mimalloc 3 built from crates.io (benches/peers/mimalloc3)
    "snmalloc": "#8e44ad",  # built from crates.io (benches/peers/snmalloc)
}
# Workloads whose wall time is mostly a fixed wait: left out of the wall-time geomean.
FIXED_WALL = {"peak"}


def read_meta(path):
    meta = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                if ":" in line:
                    k, v = line.split(":", 1)
                    meta[k.strip()] = v.strip()
    return meta


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def order_allocators(names):
    known = [a for a in ALLOCATOR_ORDER if a in names]
    return known + sorted(a for a in names if a not in ALLOCATOR_ORDER)


# ---- summary ------------------------------------------------------------------------


def load_results(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.append(r)
    workloads, allocators = [], []
    for r in rows:
        if r["workload"] not in workloads:
            workloads.append(r["workload"])
        if r["allocator"] not in allocators:
            allocators.append(r["allocator"])
    return rows, workloads, order_allocators(allocators)


def medians(rows, workloads, allocators):
    """{(w, a): dict(n, runs, wall, cpu, rss_mib, wall_min, wall_max)}; failed runs left out."""
    out = {}
    for w in workloads:
        for a in allocators:
            runs = [r for r in rows if r["workload"] == w and r["allocator"] == a]
            good = [r for r in runs if r["status"] == "0" and r["output_ok"] == "1"]
            cell = {"runs": len(runs), "n": len(good)}
            if good:
                walls = [float(r["wall_s"]) for r in good]
                cell.update(
                    wall=statistics.median(walls),
                    wall_min=min(walls),
                    wall_max=max(walls),
                    cpu=statistics.median(float(r["cpu_s"]) for r in good),
                    rss=statistics.median(float(r["maxrss_kib"]) for r in good) / 1024.0,
                )
            out[(w, a)] = cell
    return out


def fmt_num(v):
    if v is None:
        return "-"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def metric_table(med, workloads, allocators, base, key, skip_geo=()):
    """Rows of cells (strings) and the geomean of ratios per allocator."""
    rows = []
    ratios = {a: [] for a in allocators}
    for w in workloads:
        b = med[(w, base)].get(key)
        cells = []
        for a in allocators:
            c = med[(w, a)]
            v = c.get(key)
            if v is None:
                cells.append(("FAIL" if c["runs"] else "-", None))
                continue
            r = v / b if b else None
            if r is not None and w not in skip_geo:
                ratios[a].append(r)
            cells.append((fmt_num(v), r))
        rows.append((w, cells))
    geo = {a: geomean(ratios[a]) for a in allocators}
    return rows, geo


def round_walls(rows, w, a):
    """{round: wall time} of the runs of w under a that passed."""
    return {r["round"]: float(r["wall_s"]) for r in rows
            if r["workload"] == w and r["allocator"] == a and r["status"] == "0"
            and r["output_ok"] == "1"}


def best_peer_md(rows, med, workloads, allocators, base, skip_geo=()):
    """A table of base's wall time against the fastest peer's (by median) on each
    workload: the ratio of the medians; the median and range of the ratios round by round
    (runs made next to each other, so a noisy neighbour weighs less); and the spread of
    the rounds ((max - min) / median) of both. Then the geomean of the ratios of the
    medians. None when there is no peer."""
    peers = [a for a in allocators if a not in (base, "before", "goalloc-prof")]
    if not peers:
        return None

    def spread(c):
        return "%.0f%%" % (100.0 * (c["wall_max"] - c["wall_min"]) / c["wall"]) if c.get("wall") else "-"
    lines = ["| workload | %s | best peer | its time | %s / best | round by round (range) | spread %s | spread best |"
             % (base, base, base),
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    ratios = []
    for w in workloads:
        b = med[(w, base)]
        timed = [(med[(w, a)]["wall"], a) for a in peers if med[(w, a)].get("wall")]
        if not b.get("wall") or not timed:
            lines.append("| %s | %s | - | - | - | - | - | - |" % (w, fmt_num(b.get("wall"))))
            continue
        t, a = min(timed)
        r = b["wall"] / t
        if w not in skip_geo:
            ratios.append(r)
        bw, pw = round_walls(rows, w, base), round_walls(rows, w, a)
        paired = [bw[k] / pw[k] for k in bw if k in pw and pw[k] > 0]
        by_round = ("%.2f× (%.2f-%.2f)" % (statistics.median(paired), min(paired), max(paired))
                    if paired else "-")
        lines.append("| %s | %s s | %s | %s s | %s | %s | %s | %s |"
                     % (w, fmt_num(b["wall"]), a, fmt_num(t),
                        ("**%.2f×**" if r > 1 else "%.2f×") % r, by_round, spread(b),
                        spread(med[(w, a)])))
    g = geomean(ratios)
    if g is not None:
        lines.append("| **geomean** | | | | **%.2f×** | | | |" % g)
    return "\n".join(lines)


def render_text(title, rows, geo, allocators, base, unit):
    lines = [title]
    width = 17
    lines.append("%-12s" % "workload" + "".join("%-*s" % (width, a) for a in allocators))
    for w, cells in rows:
        line = "%-12s" % w
        for a, (v, r) in zip(allocators, cells):
            if r is None or a == base:
                s = v + ("" if v in ("-", "FAIL") else unit)
            else:
                s = "%s%s (%.2f)" % (v, unit, r)
            line += "%-*s" % (width, s)
        lines.append(line)
    line = "%-12s" % "geomean"
    for a in allocators:
        g = geo[a]
        line += "%-*s" % (width, "-" if g is None else "(%.2f)" % g)
    lines.append(line)
    return "\n".join(lines)


def render_md(rows, geo, allocators, base, unit):
    lines = ["| workload | " + " | ".join(allocators) + " |",
             "| --- | " + " | ".join("---:" for _ in allocators) + " |"]
    for w, cells in rows:
        out = []
        for a, (v, r) in zip(allocators, cells):
            if r is None or a == base:
                out.append(v + ("" if v in ("-", "FAIL") else " " + unit))
            else:
                out.append("%s %s (%.2f×)" % (v, unit, r))
        lines.append("| %s | %s |" % (w, " | ".join(out)))
    lines.append("| **geomean ratio** | " + " | ".join(
        "-" if geo[a] is None else "**%.2f×**" % geo[a] for a in allocators) + " |")
    return "\n".join(lines)


def read_rss_samples(path):
    meta, samples = {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line[1:].split()
                if len(parts) == 2 and parts[1].isdigit():
                    meta[parts[0]] = int(parts[1])
                continue
            t, kib = line.split()
            samples.append((int(t) / 1000.0, int(kib) / 1024.0))
    return meta, samples


def load_rss(rss_dir, allocators):
    """{allocator: [(round, meta, samples)]} from peak-<alloc>-r<round>.tsv."""
    runs = {}
    if not rss_dir or not os.path.isdir(rss_dir):
        return runs
    for name in sorted(os.listdir(rss_dir)):
        if not (name.startswith("peak-") and name.endswith(".tsv")):
            continue
        stem = name[len("peak-"):-len(".tsv")]
        alloc, _, rnd = stem.rpartition("-r")
        if alloc not in allocators or not rnd.isdigit():
            continue
        meta, samples = read_rss_samples(os.path.join(rss_dir, name))
        if samples:
            runs.setdefault(alloc, []).append((int(rnd), meta, samples))
    for a in runs:
        runs[a].sort(key=lambda x: x[0])
    return runs


def rss_table(rss_runs, allocators):
    rows = []
    for a in allocators:
        if a not in rss_runs:
            continue
        rs = rss_runs[a]
        peak = statistics.median(m.get("rss_peak_kib", 0) for _, m, _ in rs) / 1024.0
        freed = statistics.median(m.get("rss_after_free_kib", 0) for _, m, _ in rs) / 1024.0
        end = statistics.median(s[-1][1] for _, _, s in rs)
        secs = rs[-1][2][-1][0]
        rows.append((a, peak, freed, end, secs))
    return rows


# ---- SVG ----------------------------------------------------------------------------


def svg_doc(width, height, body):
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">\n'
            '<rect width="100%%" height="100%%" fill="white"/>\n%s</svg>\n'
            % (width, height, width, height, "\n".join(body)))


def text(x, y, s, anchor="start", size=None, weight=None, fill="#222"):
    attrs = ' text-anchor="%s" fill="%s"' % (anchor, fill)
    if size:
        attrs += ' font-size="%s"' % size
    if weight:
        attrs += ' font-weight="%s"' % weight
    return '<text x="%.1f" y="%.1f"%s>%s</text>' % (x, y, attrs, escape(s))


def legend(allocators, x, y):
    body = []
    for a in allocators:
        body.append('<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/>'
                    % (x, y - 10, COLORS.get(a, "#555")))
        body.append(text(x + 16, y, a))
        x += 24 + 7 * len(a) + 10
    return body


def bar_chart(path, title, subtitle, groups, allocators, log_base, ticks, fmt, ref=None):
    """Horizontal grouped bars on a log axis. groups: [(label, {alloc: value})]."""
    bar_h, gap, left, right, top = 11, 9, 110, 70, 62
    plot_w = 620
    n_bars = sum(len([a for a in allocators if g.get(a)]) for _, g in groups)
    height = top + n_bars * bar_h + len(groups) * gap + 40
    width = left + plot_w + right
    lo, hi = ticks[0], ticks[-1]

    def xpos(v):
        v = min(max(v, lo), hi)
        return left + (math.log(v, log_base) - math.log(lo, log_base)) / (
            math.log(hi, log_base) - math.log(lo, log_base)) * plot_w

    body = [text(left, 20, title, size=14, weight="bold"), text(left, 36, subtitle, fill="#555")]
    body += legend(allocators, left, 54)
    bottom = height - 28
    for t in ticks:
        x = xpos(t)
        body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (x, top - 4, x, bottom))
        body.append(text(x, bottom + 14, fmt(t), anchor="middle", fill="#555"))
    if ref is not None:
        x = xpos(ref)
        body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-dasharray="4,3"/>'
                    % (x, top - 4, x, bottom))
    y = top
    for label, vals in groups:
        present = [a for a in allocators if vals.get(a)]
        if not present:
            continue
        gh = len(present) * bar_h
        body.append(text(left - 8, y + gh / 2 + 4, label, anchor="end", weight="bold"))
        for a in present:
            v = vals[a]
            # bars start at the reference line when there is one (ratios), else at the left
            x0, x1 = xpos(lo if ref is None else ref), xpos(v)
            xa, xb = min(x0, x1), max(x0, x1)
            body.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s %s: %s</title></rect>'
                        % (xa, y, max(xb - xa, 1.5), bar_h - 2, COLORS.get(a, "#555"),
                           escape(label), a, fmt(v)))
            if x1 >= x0:
                body.append(text(xb + 4, y + bar_h - 3, fmt(v), size=9, fill="#444"))
            else:
                body.append(text(xa - 4, y + bar_h - 3, fmt(v), anchor="end", size=9, fill="#444"))
            y += bar_h
        y += gap
    with open(path, "w") as f:
        f.write(svg_doc(width, height, body))


def nice_ticks_log2(values):
    lo = min(values + [1.0])
    hi = max(values + [1.0])
    a = 2 ** math.floor(math.log2(lo) - 1e-9)
    b = 2 ** math.ceil(math.log2(hi) + 1e-9)
    a = min(a, 0.5)
    b = max(b, 2)
    ticks = []
    t = a
    while t <= b * 1.0001:
        ticks.append(t)
        t *= 2
    return ticks


def nice_ticks_log10(values):
    lo = min(values)
    hi = max(values)
    a = 10 ** math.floor(math.log10(lo))
    b = 10 ** math.ceil(math.log10(hi))
    if b <= a:
        b = a * 10
    ticks = []
    t = a
    while t <= b * 1.0001:
        ticks.append(t)
        t *= 10
    return ticks


def fmt_ratio(v):
    return ("%.2f" % v).rstrip("0").rstrip(".") + "×" if v < 10 else "%.0f×" % v


def fmt_mib(v):
    if v >= 1024:
        return "%.1f GiB" % (v / 1024)
    if v >= 10:
        return "%.0f MiB" % v
    return "%.1f MiB" % v


def line_chart(path, title, subtitle, series, allocators, marks):
    """series: {alloc: [(t, mib)]}; marks: {alloc: peak_mib} drawn at t = 0 as a dot."""
    left, right, top, bottom_pad = 70, 150, 62, 40
    plot_w, plot_h = 600, 300
    width, height = left + plot_w + right, top + plot_h + bottom_pad
    t_max = max((s[-1][0] for s in series.values() if s), default=1) or 1
    y_max = max([v for s in series.values() for _, v in s] + list(marks.values()) + [1])
    step = 10 ** math.floor(math.log10(y_max))
    for m in (1, 2, 5, 10):
        if y_max / (step * m) <= 6:
            step *= m
            break
    y_top = math.ceil(y_max / step) * step

    def xy(t, v):
        return left + t / t_max * plot_w, top + plot_h - v / y_top * plot_h

    body = [text(left, 20, title, size=14, weight="bold"), text(left, 36, subtitle, fill="#555")]
    body += legend(allocators, left, 54)
    v = 0
    while v <= y_top + 1e-9:
        _, y = xy(0, v)
        body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (left, y, left + plot_w, y))
        body.append(text(left - 6, y + 4, fmt_mib(v) if v else "0", anchor="end", fill="#555"))
        v += step
    for k in range(int(t_max) + 1):
        x, _ = xy(k, 0)
        body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (x, top, x, top + plot_h))
        body.append(text(x, top + plot_h + 16, "%d s" % k, anchor="middle", fill="#555"))
    body.append(text(left + plot_w / 2, height - 6, "time after the frees", anchor="middle", fill="#555"))
    labels = []
    # lines drawn later are thinner, so that lines which coincide stay visible as stripes
    drawn = [a for a in allocators if series.get(a)]
    for k, a in enumerate(drawn):
        s = series[a]
        pts = " ".join("%.1f,%.1f" % xy(t, v) for t, v in s)
        body.append('<polyline fill="none" stroke="%s" stroke-width="%.1f" points="%s"><title>%s</title></polyline>'
                    % (COLORS.get(a, "#555"), 1.5 + 0.8 * (len(drawn) - 1 - k), pts, a))
        if a in marks:
            x, y = xy(0, marks[a])
            body.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s at the peak: %s</title></circle>'
                        % (x, y, COLORS.get(a, "#555"), a, fmt_mib(marks[a])))
        labels.append([xy(*s[-1])[1], a, s[-1][1]])
    # spread the end labels so that they do not overlap
    labels.sort()
    for i in range(1, len(labels)):
        if labels[i][0] - labels[i - 1][0] < 13:
            labels[i][0] = labels[i - 1][0] + 13
    for y, a, v in labels:
        body.append(text(left + plot_w + 8, y + 4, "%s %s" % (a, fmt_mib(v)), fill=COLORS.get(a, "#555")))
    with open(path, "w") as f:
        f.write(svg_doc(width, height, body))


def overview_chart(path, labels, panels, allocators, title, subtitle):
    """The README's plot: a row per workload (labels; the last one the geometric mean), a
    dot per peer at its ratio to goalloc, a panel per metric side by side.
    panels: [(heading, {label: {alloc: ratio}})]; a row missing from a panel stays empty."""
    row_h, top, left, gap, panel_w = 17, 78, 92, 36, 330
    width = left + len(panels) * (panel_w + gap)
    bottom = top + len(labels) * row_h
    height = bottom + 34
    body = [text(8, 20, title, size=14, weight="bold"), text(8, 36, subtitle, fill="#555")]
    body += legend(allocators, 8, 56)
    for i, label in enumerate(labels):
        body.append(text(left - 8, top + i * row_h + row_h / 2 + 4, label, anchor="end",
                         weight="bold" if i == len(labels) - 1 else None))
    for k, (heading, rows) in enumerate(panels):
        x0 = left + k * (panel_w + gap)
        ticks = nice_ticks_log2([v for g in rows.values() for v in g.values()])
        lo, hi = ticks[0], ticks[-1]

        def xpos(v, x0=x0, lo=lo, hi=hi):
            v = min(max(v, lo), hi)
            return x0 + (math.log2(v) - math.log2(lo)) / (math.log2(hi) - math.log2(lo)) * panel_w

        body.append(text(x0 + panel_w / 2, top - 6, heading, anchor="middle", weight="bold"))
        for t in ticks:
            body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>'
                        % (xpos(t), top, xpos(t), bottom))
            body.append(text(xpos(t), bottom + 14, fmt_ratio(t), anchor="middle", fill="#555"))
        y_geo = top + (len(labels) - 1) * row_h
        body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999"/>'
                    % (x0, y_geo, x0 + panel_w, y_geo))
        body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"/>'
                    % (xpos(1), top, xpos(1), bottom, COLORS["goalloc"]))
        for i, label in enumerate(labels):
            y = top + i * row_h + row_h / 2
            body.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#f0f0f0"/>'
                        % (x0, y, x0 + panel_w, y))
            g = rows.get(label)
            if not g:
                body.append(text(x0 + 4, y + 4, "not compared (a fixed wait)", size=9, fill="#999"))
                continue
            for a in allocators:
                if a in g:
                    body.append('<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s" fill-opacity="0.85">'
                                '<title>%s, %s: %s</title></circle>'
                                % (xpos(g[a]), y, 6 if i == len(labels) - 1 else 4.5,
                                   COLORS.get(a, "#555"), escape(label), a, fmt_ratio(g[a])))
        body.append(text(x0 + panel_w / 2, bottom + 28,
                         "right of the blue line (goalloc): more than goalloc", anchor="middle",
                         size=10, fill="#555"))
    with open(path, "w") as f:
        f.write(svg_doc(width, height, body))


def overview(path, wall_rows, rss_rows, peers, rounds):
    """overview_chart of the wall-time and peak-RSS ratios: [(label, {alloc: ratio})]
    each, in workload order with the geomean last."""
    labels = [w for w, _ in rss_rows if w != "geomean"]
    labels += [w for w, _ in wall_rows if w != "geomean" and w not in labels]
    labels.append("geomean")
    overview_chart(path, labels,
                   [("wall time, peer / goalloc", dict(wall_rows)),
                    ("peak RSS, peer / goalloc", dict(rss_rows))],
                   peers, "goalloc against the other allocators",
                   "median of %s rounds per workload, log scale; a dot per allocator; "
                   "their geometric means in the last row" % rounds)


def read_summary_md(path):
    """The wall-time and peak-RSS ratio tables of a summary.md: {metric: [(workload,
    {alloc: ratio})]}, and its first line (what run it was)."""
    tables, metric, first = {}, None, None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if first is None and line:
                first = line
            if line.startswith("Wall time"):
                metric = "wall"
            elif line.startswith("CPU time"):
                metric = "cpu"
            elif line.startswith("Peak RSS"):
                metric = "rss"
            elif line.startswith("| workload |"):
                header = [c.strip() for c in line.strip("|").split("|")]
                tables[metric] = {"allocators": header[1:], "rows": []}
            elif not line.startswith("|"):
                if metric in tables and tables[metric]["rows"]:
                    metric = None
            elif line.startswith("| ") and metric in tables and not line.startswith("| ---"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                label = cells[0].replace("*", "").replace("geomean ratio", "geomean")
                g = {}
                for a, c in zip(tables[metric]["allocators"], cells[1:]):
                    c = c.replace("*", "")
                    if "(" in c:
                        g[a] = float(c[c.index("(") + 1:c.index("×")])
                    elif c.endswith("×"):
                        g[a] = float(c[:-1])
                    elif c not in ("-", "FAIL"):
                        g[a] = 1.0
                tables[metric]["rows"].append((label, g))
    return tables, first


# ---- commands -----------------------------------------------------------------------


def header(meta):
    lines = []
    if meta:
        lines.append("commit %s, dirty: %s" % (meta.get("commit", "?"), meta.get("dirty", "?")))
        lines.append("%s; %s round(s), scale %s, %s threads; %s"
                     % (meta.get("machine", "?"), meta.get("rounds", "?"), meta.get("scale", "?"),
                        meta.get("threads", "?"), meta.get("date", "")))
    return lines


# ---- locks ------------------------------------------------------------------------------

MODEL_THREADS = [16, 64, 128]


def load_locks(locks_dir):
    """{(workload, allocator, round): {"calls": n, "locks": {name: [acq, contended, held_ns]}}}
    from W-A-rN.json, each a JSON report per line (one per process), the processes summed."""
    runs = {}
    if not locks_dir or not os.path.isdir(locks_dir):
        return runs
    for name in sorted(os.listdir(locks_dir)):
        if not name.endswith(".json"):
            continue
        rest, _, rnd = name[:-len(".json")].rpartition("-r")
        w, _, a = rest.rpartition("-")
        if not rnd.isdigit() or not w:
            continue
        run = {"calls": 0, "locks": {}}
        with open(os.path.join(locks_dir, name)) as f:
            for line in f:
                try:
                    locks = json.loads(line).get("locks")
                except ValueError:
                    continue
                if not locks:
                    continue
                run["calls"] += locks["calls"]
                for lk in locks["by_lock"]:
                    c = run["locks"].setdefault(lk["lock"], [0, 0, 0])
                    c[0] += lk["acquisitions"]
                    c[1] += lk["contended"]
                    c[2] += lk["held_ns"]
        runs[(w, a, int(rnd))] = run
    return runs


def split_threads(workload, default):
    """"prodcons@16" -> ("prodcons", 16); "prodcons" -> ("prodcons", default)."""
    w, _, n = workload.partition("@")
    return w, int(n) if n.isdigit() else default


def lock_table(lock_runs, rows, workloads, default_threads, alloc="goalloc"):
    """Per workload and lock, the rounds pooled: acquisitions, contended and ns held per
    million malloc+free, mean hold, share of the wall time held, and per CPU-second the
    acquisitions and ns held; then the model of utilisation at MODEL_THREADS threads on as
    many cores. Rows: dicts; the busiest mcentral lock (most time held) stands for its kind
    beside `mcentral`, the sum of all classes."""
    table = []
    for w in workloads:
        good = {int(r["round"]): r for r in rows if r["workload"] == w and r["allocator"] == alloc
                and r["status"] == "0" and r["output_ok"] == "1"}
        runs = [(lock_runs[(w, alloc, k)], good[k]) for k in sorted(good) if (w, alloc, k) in lock_runs]
        if not runs:
            continue
        calls = sum(lr["calls"] for lr, _ in runs)
        cpu = sum(float(r["cpu_s"]) for _, r in runs)
        wall = sum(float(r["wall_s"]) for _, r in runs)
        totals = {}
        for lr, _ in runs:
            for name, c in lr["locks"].items():
                t = totals.setdefault(name, [0, 0, 0])
                for i in range(3):
                    t[i] += c[i]
        classes = [n for n in totals if n.startswith("mcentral[")]
        busiest = max(classes, key=lambda n: totals[n][2], default=None)
        base, threads = split_threads(w, default_threads)
        for name in ["mheap", "caches", "profile", "mcentral"] + ([busiest] if busiest else []):
            acq, cont, held = totals.get(name, [0, 0, 0])
            if acq == 0:
                continue
            table.append({
                "workload": w, "base": base, "threads": threads, "lock": name,
                "kind": "mcentral[busiest]" if name == busiest else name,
                "calls": calls, "cpu_s": cpu, "wall_s": wall,
                "acquisitions": acq, "contended": cont, "held_ns": held,
                "acq_per_million": acq * 1e6 / calls if calls else 0.0,
                "contended_per_million": cont * 1e6 / calls if calls else 0.0,
                "hold_ns": held / acq,
                "held_wall": held / (wall * 1e9) if wall else 0.0,
                "acq_per_cpu_s": acq / cpu if cpu else 0.0,
            })
    # The model: n threads, each on its own core and as busy as a CPU-second of the run,
    # take the lock n x (acquisitions per CPU-second) times a second and hold it for the
    # mean hold time: utilisation = n x rate x hold. The rate comes from the run with the
    # most threads not above n (its caches and hand-overs are those of many threads), the
    # hold the shortest of the runs' means (on 2 busy cores a hold includes any time the
    # holder sat preempted, which n cores would not see). Given once per workload and lock,
    # in the row of the run with the fewest threads.
    for row in table:
        same = [r for r in table if r["base"] == row["base"] and r["kind"] == row["kind"]]
        if row is not min(same, key=lambda r: r["threads"]):
            continue
        hold = min(r["hold_ns"] for r in same)
        row["model_hold_ns"] = hold
        for n in MODEL_THREADS:
            below = [r for r in same if r["threads"] <= n]
            src = max(below, key=lambda r: r["threads"]) if below else row
            row["model_%d" % n] = n * src["acq_per_cpu_s"] * hold * 1e-9
    return table


def render_locks(table, md):
    head = ["workload", "lock", "acq/M", "contended/M", "ns/acq", "held % wall"] + \
        ["util %d" % n for n in MODEL_THREADS]
    out = []
    if md:
        out.append("| " + " | ".join(head) + " |")
        out.append("| --- | --- | " + " | ".join("---:" for _ in head[2:]) + " |")
    else:
        out.append("%-14s %-14s %10s %12s %9s %12s" % tuple(head[:6]) +
                   "".join("%10s" % h for h in head[6:]))
    for r in table:
        cells = [r["workload"], r["lock"], "%.1f" % r["acq_per_million"],
                 "%.2f" % r["contended_per_million"], "%.0f" % r["hold_ns"],
                 "%.3f%%" % (100 * r["held_wall"])] + \
            ["%.2f%%" % (100 * r["model_%d" % n]) if "model_%d" % n in r else ""
             for n in MODEL_THREADS]
        if md:
            out.append("| " + " | ".join(cells) + " |")
        else:
            out.append("%-14s %-14s %10s %12s %9s %12s" % tuple(cells[:6]) +
                       "".join("%10s" % c for c in cells[6:]))
    return out


LOCKS_NOTE = ("Locks under goalloc (GOALLOC_STATS=json of each run, rounds pooled): acq/M and "
              "contended/M per million malloc+free, ns/acq the mean hold, held % wall the share "
              "of the run's wall time the lock was held; util N: modelled utilisation with N "
              "threads on N cores = N x acquisitions per CPU-second (from the run with the most "
              "threads up to N) x the mean hold (the shortest of the runs'), in the row of the run with "
              "the fewest threads. "
              "mcentral is all classes' locks summed; mcentral[c] the class held longest.")


def cmd_summary(args):
    rows, workloads, allocators = load_results(args.csv)
    if not rows:
        print("no results in %s" % args.csv)
        return 1
    meta = read_meta(args.meta)
    base = "goalloc" if "goalloc" in allocators else allocators[0]
    med = medians(rows, workloads, allocators)
    rounds = meta.get("rounds", "?")

    wall_rows, wall_geo = metric_table(med, workloads, allocators, base, "wall", FIXED_WALL)
    cpu_rows, cpu_geo = metric_table(med, workloads, allocators, base, "cpu")
    rss_rows, rss_geo = metric_table(med, workloads, allocators, base, "rss")
    rss_runs = load_rss(args.rss_dir, allocators)
    rss_after = rss_table(rss_runs, allocators)
    try:
        default_threads = int(meta.get("threads", "2"))
    except ValueError:
        default_threads = 2
    locks = lock_table(load_locks(args.locks_dir), rows, workloads, default_threads)

    note = "median of %s round(s); in brackets the ratio to %s (below 1: less than %s)" % (rounds, base, base)
    txt = header(meta) + [""]
    txt.append(render_text("Wall time, s: " + note + ("; geomean without %s (fixed wait)" % ", ".join(sorted(FIXED_WALL))
                                                         if any(w in FIXED_WALL for w in workloads) else ""),
                           wall_rows, wall_geo, allocators, base, ""))
    txt.append("")
    txt.append(render_text("CPU time (user+sys), s: " + note, cpu_rows, cpu_geo, allocators, base, ""))
    txt.append("")
    txt.append(render_text("Peak RSS, MiB: " + note, rss_rows, rss_geo, allocators, base, ""))
    if rss_after:
        txt.append("")
        txt.append("RSS after the peak workload frees (median over rounds), MiB:")
        txt.append("%-10s %10s %12s %12s" % ("allocator", "at peak", "after free", "at the end"))
        for a, peak, freed, end, secs in rss_after:
            txt.append("%-10s %10.0f %12.0f %12.0f" % (a, peak, freed, end))
        txt.append("(the end is %.1f s after the frees)" % rss_after[0][4])
    if locks:
        txt.append("")
        txt.append(LOCKS_NOTE)
        txt += render_locks(locks, md=False)
    failed = [(w, a, med[(w, a)]) for w in workloads for a in allocators
              if med[(w, a)]["n"] < med[(w, a)]["runs"]]
    if failed:
        txt.append("")
        txt.append("FAILED runs (left out of the medians):")
        for w, a, c in failed:
            txt.append("  %s under %s: %d of %d runs failed" % (w, a, c["runs"] - c["n"], c["runs"]))
    summary = "\n".join(txt) + "\n"
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(summary)
    print(summary, end="")

    md = []
    if meta:
        md.append("Commit `%s` (working tree dirty: %s), %s, %s round(s), %s threads, scale %s, %s."
                  % (meta.get("commit", "?")[:12], meta.get("dirty", "?"), meta.get("machine", "?"),
                     rounds, meta.get("threads", "?"), meta.get("scale", "?"), meta.get("date", "")))
        md.append("")
    md.append("Wall time, median in seconds; in brackets the ratio to %s (below 1: faster than %s)." % (base, base))
    md.append("")
    md.append(render_md(wall_rows, wall_geo, allocators, base, "s"))
    if any(w in FIXED_WALL for w in workloads):
        md.append("")
        md.append("The wall time of `peak` is mostly its fixed 5 s of RSS sampling: it is left out of the geomean.")
    best = best_peer_md(rows, med, workloads, allocators, base, FIXED_WALL)
    if best:
        md.append("")
        md.append("%s against the fastest peer of each workload by median wall time: the ratio "
                  "of the medians (above 1, in bold: slower than that peer); the median and range "
                  "of the ratios of the two taken round by round, runs made next to each other; "
                  "spread: (slowest - fastest round) / median. The geomean is of the ratios of "
                  "the medians%s." % (base, ", without " + ", ".join(sorted(FIXED_WALL))
                                      if any(w in FIXED_WALL for w in workloads) else ""))
        md.append("")
        md.append(best)
        for label, geo in (("wall time", wall_geo), ("peak RSS", rss_geo)):
            gp = [(g, a) for a, g in geo.items() if g and a not in (base, "before", "goalloc-prof")]
            if gp:
                g, a = min(gp)
                md.append("")
                md.append("Geomean of %s: the best peer is %s; %s / %s = %.2f×."
                          % (label, a, base, a, 1.0 / g))
    md.append("")
    md.append("CPU time (user+sys), median in seconds, ratio to %s." % base)
    md.append("")
    md.append(render_md(cpu_rows, cpu_geo, allocators, base, "s"))
    md.append("")
    md.append("Peak RSS, median in MiB, ratio to %s." % base)
    md.append("")
    md.append(render_md(rss_rows, rss_geo, allocators, base, "MiB"))
    if rss_after:
        md.append("")
        md.append("RSS of `peak` (MiB): at the peak, right after the frees, and %.0f s later." % rss_after[0][4])
        md.append("")
        md.append("| allocator | at peak | after free | at the end |")
        md.append("| --- | ---: | ---: | ---: |")
        for a, peak, freed, end, secs in rss_after:
            md.append("| %s | %.0f | %.0f | %.0f |" % (a, peak, freed, end))
    if locks:
        md.append("")
        md.append(LOCKS_NOTE)
        md.append("")
        md += render_locks(locks, md=True)
        with open(os.path.join(args.out, "locks.csv"), "w", newline="") as f:
            keys = list(locks[0].keys())
            wr = csv.DictWriter(f, fieldnames=keys, restval="")
            wr.writeheader()
            for r in locks:
                wr.writerow(r)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    with open(os.path.join(args.out, "medians.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "allocator", "runs", "passed", "wall_median_s", "wall_min_s",
                     "wall_max_s", "cpu_median_s", "maxrss_median_mib", "wall_ratio", "cpu_ratio", "rss_ratio"])
        for w in workloads:
            b = med[(w, base)]
            for a in allocators:
                c = med[(w, a)]

                def ratio(k):
                    return "%.4f" % (c[k] / b[k]) if c.get(k) and b.get(k) else ""
                wr.writerow([w, a, c["runs"], c["n"]] +
                            ["%.4f" % c[k] if k in c else "" for k in
                             ("wall", "wall_min", "wall_max", "cpu", "rss")] +
                            [ratio("wall"), ratio("cpu"), ratio("rss")])

    # plots
    groups = []
    vals_all = []
    for w in workloads:
        if w in FIXED_WALL:
            continue
        b = med[(w, base)].get("wall")
        g = {}
        for a in allocators:
            v = med[(w, a)].get("wall")
            if v and b:
                g[a] = v / b
                vals_all.append(v / b)
        groups.append((w, g))
    geo_group = {a: wall_geo[a] for a in allocators if wall_geo[a]}
    groups.append(("geomean", geo_group))
    vals_all += list(geo_group.values())
    if vals_all:
        bar_chart(os.path.join(args.out, "time_ratio.svg"),
                  "Wall time relative to %s" % base,
                  "median of %s round(s), log scale; left of the dashed line: faster than %s" % (rounds, base),
                  groups, allocators, 2, nice_ticks_log2(vals_all), fmt_ratio, ref=1.0)
    groups = []
    vals_all = []
    for w in workloads:
        g = {a: med[(w, a)]["rss"] for a in allocators if med[(w, a)].get("rss")}
        vals_all += list(g.values())
        groups.append((w, g))
    if vals_all:
        bar_chart(os.path.join(args.out, "peak_rss.svg"), "Peak RSS per workload",
                  "median of %s round(s), log scale" % rounds,
                  groups, allocators, 10, nice_ticks_log10(vals_all), fmt_mib)
    peers = [a for a in allocators if a not in (base, "before")]
    if peers:
        def ratio_rows(key, geo, skip=()):
            rows = []
            for w in workloads:
                if w in skip:
                    continue
                b = med[(w, base)].get(key)
                rows.append((w, {a: med[(w, a)][key] / b for a in peers
                                 if b and med[(w, a)].get(key)}))
            rows.append(("geomean", {a: geo[a] for a in peers if geo[a]}))
            return rows
        overview(os.path.join(args.out, "overview.svg"),
                 ratio_rows("wall", wall_geo, FIXED_WALL), ratio_rows("rss", rss_geo),
                 peers, rounds)
    if rss_runs:
        series, marks = {}, {}
        for a, runs in rss_runs.items():
            # the round whose final RSS is the median one
            runs_sorted = sorted(runs, key=lambda x: x[2][-1][1])
            rnd, m, s = runs_sorted[len(runs_sorted) // 2]
            series[a] = s
            if "rss_peak_kib" in m:
                marks[a] = m["rss_peak_kib"] / 1024.0
        line_chart(os.path.join(args.out, "rss_after_peak.svg"),
                   "RSS after a peak is freed (workload peak)",
                   "RSS sampled every 100 ms while each thread does a little work; dot: RSS at the peak",
                   series, allocators, marks)
    return 0


PATTERN_ORDER = ["batch", "fixed", "cycle", "ring"]
PATTERN_TEXT = {
    "batch": "batches of 32 objects of SIZE bytes, allocated, then freed in allocation order "
             "or in reverse",
    "fixed": "malloc(SIZE) then free, one object live at a time",
    "cycle": "one object live at a time, its size cycling through 8 sizes from 16 B to SIZE "
             "(16 + k(SIZE - 16)/7 rounded down to a multiple of 16 for k = 0..6, then SIZE)",
    "ring": "a ring of 1000 live objects of SIZE bytes: each pair frees the oldest and "
            "allocates a new one in its place",
}


def cmd_callgrind(args):
    rows = list(csv.DictReader(open(args.csv)))
    for r in rows:
        r.setdefault("pattern", "batch")  # CSVs from before the patterns
    meta = read_meta(args.meta)
    allocators = order_allocators(sorted({r["allocator"] for r in rows}))
    found = {r["pattern"] for r in rows}
    patterns = [p for p in PATTERN_ORDER if p in found] + sorted(found - set(PATTERN_ORDER))
    val = {(r["pattern"], r["allocator"], int(r["size"])): float(r["instr_per_pair"]) for r in rows}
    harness = {r["pattern"]: r["harness"] for r in rows}
    head = []
    if meta:
        head = ["commit %s, dirty: %s" % (meta.get("commit", "?"), meta.get("dirty", "?")),
                "goalloc: %s" % meta.get("goalloc", "?"),
                "%s; %s" % (meta.get("machine", "?"), meta.get("date", "")), ""]
    txt = head + ["Instructions per malloc+free (callgrind; difference of two runs of "
                  "`pairs -P PATTERN -S SIZE -n N`, less the loop's own instructions per pair "
                  "measured with -N)"]
    md = ["Instructions per malloc+free pair (valgrind --tool=callgrind, difference of two runs "
          "of `pairs -P PATTERN -S SIZE -n N`, less the loop's own instructions per pair, "
          "measured with `-N`), per allocation pattern."]
    for p in patterns:
        sizes = sorted({int(r["size"]) for r in rows if r["pattern"] == p})
        what = PATTERN_TEXT.get(p, p)
        txt += ["", "%s: %s; loop: %s instructions" % (p, what, harness[p]),
                "%-10s" % "size" + "".join("%12s" % a for a in allocators)]
        md += ["", "**`%s`**: %s (the loop's own %s instructions subtracted)." % (p, what, harness[p]),
               "", "| size | " + " | ".join(allocators) + " |",
               "| ---: | " + " | ".join("---:" for _ in allocators) + " |"]
        for s in sizes:
            txt.append("%-10d" % s + "".join(
                "%12s" % ("%.1f" % val[(p, a, s)] if (p, a, s) in val else "-") for a in allocators))
            md.append("| %d | %s |" % (s, " | ".join(
                "%.0f" % val[(p, a, s)] if (p, a, s) in val else "-" for a in allocators)))
    out = "\n".join(txt) + "\n"
    with open(os.path.join(args.out, "callgrind.txt"), "w") as f:
        f.write(out)
    with open(os.path.join(args.out, "callgrind.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(out, end="")
    return 0


def cmd_overview(args):
    tables, first = read_summary_md(args.summary)
    if "wall" not in tables or "rss" not in tables:
        print("%s: no wall-time or peak-RSS table" % args.summary)
        return 1
    peers = [a for a in tables["wall"]["allocators"] if a not in ("goalloc", "before")]
    wall = [(w, g) for w, g in tables["wall"]["rows"] if w not in FIXED_WALL]
    rounds = "?"
    for part in (first or "").split(","):
        if "round" in part:
            rounds = part.split()[0]
    overview(args.out, wall, tables["rss"]["rows"], peers, rounds)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overview")
    o.add_argument("--summary", required=True)
    o.add_argument("--out", required=True)
    s = sub.add_parser("summary")
    s.add_argument("--csv", required=True)
    s.add_argument("--meta")
    s.add_argument("--rss-dir")
    s.add_argument("--locks-dir")
    s.add_argument("--out", required=True)
    c = sub.add_parser("callgrind")
    c.add_argument("--csv", required=True)
    c.add_argument("--meta")
    c.add_argument("--out", required=True)
    args = p.parse_args()
    if args.cmd == "overview":
        return cmd_overview(args)
    return cmd_summary(args) if args.cmd == "summary" else cmd_callgrind(args)


if __name__ == "__main__":
    sys.exit(main())
