#!/usr/bin/env python3
"""Folded stacks and flame graphs for bench/profile.sh (standard library only).

    flame.py collapse-perf [--where OUT.tsv] < perf-script.txt > c.folded
    flame.py svg FOLDED OUT.svg [--title T] [--width 1200] [--min-width 0.3]
    flame.py top FOLDED [--n 15] [--mode self|lines|cfuncs|routes]
    flame.py where OUT.tsv        (the leaves by library, from collapse-perf --where)
    flame.py stages STAGES.tsv [--method GET] [--pattern /api/v1/tasks]

Folded format (Brendan Gregg's): one line per distinct stack, frames from
the root to the leaf joined by ';', then a space and a sample count.
"""
import argparse
import collections
import html
import re
import statistics
import sys
import zlib

# ---------------------------------------------------------------- perf ---

FRAME_RE = re.compile(r"^\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def short_dso(dso):
    base = dso.rsplit("/", 1)[-1]
    return base or dso


def frame_name(sym, dso):
    if dso.startswith("[kernel") or dso == "[vdso]":
        name = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        return (name if name and name != "[unknown]" else dso) + "_[k]"
    if sym in ("", "[unknown]"):
        return "[" + short_dso(dso) + "]"
    name = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    return name


MALLOC_RE = re.compile(r"malloc|free|tcache|_int_|unlink_chunk|consolidate|calloc|realloc|sysmalloc|arena")


def category(sym, dso):
    """Where a leaf sample was, in the terms of issue #9's breakdown."""
    base = short_dso(dso)
    if dso.startswith("[kernel") or dso == "[vdso]":
        return "kernel"
    if base.startswith("liblua5.4-cjson"):
        return "lua-cjson"
    if base.startswith("liblua5.4"):
        return "Lua interpreter (liblua5.4)"
    if base.startswith("libc.so"):
        return "libc: malloc/free" if MALLOC_RE.search(sym) else "libc: other (string, memcpy, syscalls)"
    if base == "taskapi":
        return "taskapi's own C"
    return base


def collapse_perf(inp, out, where_path=None):
    """perf script (with call graphs) -> folded stacks, rooted at the thread name."""
    counts = collections.Counter()
    where = collections.Counter()
    comm, frames, leaf = None, [], None

    def flush():
        if comm is not None and leaf is not None:
            where[category(*leaf)] += 1
        if comm is not None:
            stack = [comm] + [f for f in reversed(frames)]
            # consecutive unresolved frames of one library say nothing more than one
            dedup = []
            for f in stack:
                if not (dedup and f == dedup[-1] and f.startswith("[")):
                    dedup.append(f)
            counts[";".join(x.replace(";", "_") for x in dedup)] += 1

    for line in inp:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames, leaf = None, [], None
            continue
        if not line[0].isspace():
            flush()
            frames, leaf = [], None
            comm = line.split()[0] if line.split() else "?"
            continue
        m = FRAME_RE.match(line)
        if m:
            if leaf is None:
                leaf = (m.group(2), m.group(3))
            elif leaf[1] == "inlined":  # the leaf's library is that of the function it is inlined in
                leaf = (leaf[0], m.group(3))
            frames.append(frame_name(m.group(2), m.group(3)))
    flush()
    for stack, n in sorted(counts.items()):
        out.write("%s %d\n" % (stack, n))
    if where_path:
        with open(where_path, "w") as f:
            for k, n in where.most_common():
                f.write("%s\t%d\n" % (k, n))


def where_table(path):
    rows = []
    with open(path) as f:
        for line in f:
            k, _, n = line.rstrip("\n").rpartition("\t")
            rows.append((k, int(n)))
    total = sum(n for _, n in rows) or 1
    out = ["| leaf sample in | samples | share |", "|---|--:|--:|"]
    for k, n in rows:
        out.append("| %s | %d | %.1f %% |" % (k, n, 100.0 * n / total))
    return "\n".join(out)


# --------------------------------------------------------------- folded ---


def read_folded(path):
    stacks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, n = line.rpartition(" ")
            try:
                stacks.append((stack.split(";"), int(n)))
            except ValueError:
                continue
    return stacks


class Node:
    __slots__ = ("name", "count", "children")

    def __init__(self, name):
        self.name = name
        self.count = 0
        self.children = {}


def build_tree(stacks):
    root = Node("all")
    for frames, n in stacks:
        root.count += n
        node = root
        for fr in frames:
            child = node.children.get(fr)
            if child is None:
                child = node.children[fr] = Node(fr)
            child.count += n
            node = child
    return root


def color(name):
    h = zlib.crc32(name.encode()) & 0xFFFF
    v = h / 0xFFFF
    if "scripts/routes/" in name:  # a route author's own line: stands out
        return "rgb(%d,%d,%d)" % (60 + int(40 * v), 150 + int(50 * v), 220)
    if ":" in name and (name.startswith("scripts/") or name.startswith("plugins/")):
        return "rgb(%d,%d,%d)" % (80 + int(50 * v), 190 + int(40 * v), 80 + int(40 * v))
    if name.endswith("_[k]"):
        return "rgb(%d,%d,%d)" % (230, 130 + int(50 * v), 40)
    if name.startswith("[C]"):
        return "rgb(%d,%d,%d)" % (180 + int(40 * v), 180 + int(40 * v), 180 + int(40 * v))
    return "rgb(%d,%d,%d)" % (225 + int(30 * v), 90 + int(110 * v), 40 + int(40 * v))


def label_of(name, chars):
    """The text that fits in `chars`: a script frame drops its scripts/ and
    loses characters on the left, so the line number stays."""
    if name.startswith("scripts/") and ":" in name:
        name = name[len("scripts/"):]
        if len(name) > chars:
            return ".." + name[len(name) - chars + 2:] if chars > 4 else name[name.rfind(":"):][:chars]
        return name
    return name if len(name) <= chars else name[: max(chars - 2, 1)] + ".."


def render_svg(stacks, out_path, title, width, min_width):
    root = build_tree(stacks)
    total = root.count or 1
    row, pad_top, pad_bottom, xpad = 16, 44, 24, 10
    usable = width - 2 * xpad
    rects = []
    max_depth = 0

    def walk(node, x, depth):
        nonlocal max_depth
        w = node.count / total * usable
        if w < min_width:
            return
        max_depth = max(max_depth, depth)
        rects.append((node, x, depth, w))
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            walk(child, cx, depth + 1)
            cx += child.count / total * usable

    walk(root, xpad, 0)
    height = pad_top + (max_depth + 1) * row + pad_bottom
    out = [
        '<?xml version="1.0" standalone="no"?>',
        '<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" font-family="Verdana, sans-serif" font-size="11">' % (width, height, width, height),
        '<rect x="0" y="0" width="%d" height="%d" fill="#f8f8f4"/>' % (width, height),
        '<text x="%d" y="22" font-size="16" text-anchor="middle">%s</text>' % (width // 2, html.escape(title)),
        '<text x="%d" y="38" font-size="11" text-anchor="middle" fill="#555">%d samples; width = share of '
        'samples, bottom = root; hover a frame for its count</text>' % (width // 2, total),
    ]
    for node, x, depth, w in rects:
        y = height - pad_bottom - (depth + 1) * row
        pct = 100.0 * node.count / total
        label = "%s (%d samples, %.2f%%)" % (node.name, node.count, pct)
        out.append('<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" '
                   'rx="2" ry="2"/>' % (html.escape(label), x, y, max(w - 0.5, 0.1), row - 1, color(node.name)))
        chars = int((w - 6) / 6.6)
        if chars >= 3:
            text = label_of(node.name, chars)
            out.append('<text x="%.1f" y="%d">%s</text>' % (x + 3, y + row - 4, html.escape(text)))
        out.append("</g>")
    out.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")
    return width, height


# ------------------------------------------------------------------ top ---


def top(stacks, n, mode):
    total = sum(c for _, c in stacks) or 1
    counts = collections.Counter()
    for frames, c in stacks:
        if mode == "self":
            counts[frames[-1]] += c
        elif mode == "lines":
            # the running script line, with the C functions it called (a
            # query, cjson's encode, string.sub) counted on it
            lua = [f for f in frames if not f.startswith("[C]")]
            counts[lua[-1] if lua else "(C only)"] += c
        elif mode == "cfuncs":
            if frames[-1].startswith("[C]"):
                lua = [f for f in frames if not f.startswith("[C]")]
                counts["%s` from `%s" % (frames[-1], lua[-1] if lua else "?")] += c
        elif mode == "routes":
            # the deepest line of a route file on the stack: what the route's
            # own code was doing, callees included
            own = [f for f in frames if f.startswith("scripts/routes/")]
            counts[own[-1] if own else "(no scripts/routes frame)"] += c
    rows = ["| %s | samples | share |" % {
        "self": "frame (self)", "routes": "scripts/routes line (callees included)",
        "lines": "script line (C callees included)", "cfuncs": "C function called from Lua"}[mode],
            "|---|--:|--:|"]
    for name, c in counts.most_common(n):
        rows.append("| `%s` | %d | %.1f %% |" % (name, c, 100.0 * c / total))
    return "\n".join(rows)


# --------------------------------------------------------------- stages ---

STAGE_DOC = [
    ("parse", "HTTP parse and header checks (MHD's first call: edge, route, JWT)"),
    ("body", "until the request is queued (body read; none for GET)"),
    ("handoff", "in the worker queue until a worker takes it"),
    ("prelua", "user check and rate limit on the worker"),
    ("dispatch", "Lua: request table, dispatch, validation, until the first query"),
    ("sql", "SQL round trips (pool, PostgreSQL, libpq)"),
    ("rows", "row conversion: PGresult to Lua tables (l_db.c)"),
    ("handler", "the rest of the handler's Lua (shaping rows, cursor)"),
    ("json", "JSON encoding (lib.json: pre-pass and cjson)"),
    ("response", "MHD response object and headers"),
    ("resume", "resuming the connection on MHD's thread"),
    ("send", "writing the answer until MHD reports it sent"),
]


def pct(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def stages(path, method, pattern):
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    idx = {h: i for i, h in enumerate(header)}
    rows = [r for r in rows if len(r) == len(header) and r[2].startswith("2")]
    if method is None and pattern is None and rows:
        # the scenario's request: the most frequent route of the run
        method, pattern = collections.Counter((r[0], r[1]) for r in rows).most_common(1)[0][0]
    rows = [r for r in rows if (method is None or r[0] == method) and (pattern is None or r[1] == pattern)]
    if not rows:
        return "(no %s %s requests in %s)" % (method, pattern, path)
    col = {h: [float(r[idx[h]]) for r in rows] for h in header[3:-1]}
    mean_total = statistics.mean(col["total"])
    lines = ["%d requests (`%s %s`, 2xx); µs per request. p50s do not add up to the total's p50; the means do."
             % (len(rows), method or "*", pattern or "*"), "",
             "| stage | what | p50 µs | p90 µs | mean µs | share of mean |", "|---|---|--:|--:|--:|--:|"]
    for name, doc in STAGE_DOC:
        v = col[name]
        lines.append("| %s | %s | %.1f | %.1f | %.1f | %.0f %% |" % (
            name, doc, pct(v, 50), pct(v, 90), statistics.mean(v), 100.0 * statistics.mean(v) / mean_total))
    lines.append("| **total** | first access-handler call to sent | **%.1f** | %.1f | %.1f | 100 %% |" % (
        pct(col["total"], 50), pct(col["total"], 90), mean_total))
    each = [r[idx["sql_each"]].split(",") for r in rows if r[idx["sql_each"]] != "-"]
    nq = collections.Counter(len(e) for e in each)
    if each:
        lines += ["", "Queries per request: %s. Each query (round trip / row conversion), p50 µs:" % (
            ", ".join("%d (%d requests)" % (k, v) for k, v in sorted(nq.items()))), ""]
        for i in range(max(nq)):
            q = [float(e[i].split("/")[0]) for e in each if len(e) > i]
            r = [float(e[i].split("/")[1]) for e in each if len(e) > i]
            lines.append("- query %d: %.1f / %.1f" % (i + 1, pct(q, 50), pct(r, 50)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collapse-perf")
    c.add_argument("--where")
    w = sub.add_parser("where")
    w.add_argument("tsv")
    s = sub.add_parser("svg")
    s.add_argument("folded")
    s.add_argument("out")
    s.add_argument("--title", default="Flame graph")
    s.add_argument("--width", type=int, default=1200)
    s.add_argument("--min-width", type=float, default=0.3)
    t = sub.add_parser("top")
    t.add_argument("folded")
    t.add_argument("--n", type=int, default=15)
    t.add_argument("--mode", choices=["self", "lines", "cfuncs", "routes"], default="self")
    g = sub.add_parser("stages")
    g.add_argument("tsv")
    g.add_argument("--method")
    g.add_argument("--pattern")
    a = ap.parse_args()
    if a.cmd == "collapse-perf":
        collapse_perf(sys.stdin, sys.stdout, a.where)
    elif a.cmd == "where":
        print(where_table(a.tsv))
    elif a.cmd == "svg":
        w, h = render_svg(read_folded(a.folded), a.out, a.title, a.width, a.min_width)
        print("%d %d" % (w, h))
    elif a.cmd == "top":
        print(top(read_folded(a.folded), a.n, a.mode))
    elif a.cmd == "stages":
        print(stages(a.tsv, a.method, a.pattern))


if __name__ == "__main__":
    main()
