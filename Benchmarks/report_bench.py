#!/usr/bin/env python3
"""Report benchmark: fills a ksmfleet database with N nodes x one year of HOURLY history (hour, day
and month rollups, as the rollup service leaves them once raw samples have aged out; per-day process
savings and their months), optionally raw samples for the last 24 h, and times every report and history query shape
over HTTP.

Usage: report_bench.py fill DB_PATH [--nodes 1000] [--days 365] [--groups 4]
       report_bench.py fill-raw DB_PATH [--nodes 1000]          (every 10-60 s, by node)
       report_bench.py time URL TOKEN SERVER_PID [--reps 5] [--days 365] [--out table.md]
The schema must exist (start the server once on the data dir). Every 50th node has one silent day
(a gap) so the gap machinery is exercised too.
"""
import argparse
import re
import calendar
import json
import sqlite3
import os
import statistics
import time
import urllib.request

GIB = 1 << 30


def fill(path, nodes, days, groups=4):
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    now = int(time.time())
    end = now - now % 3600
    start = end - days * 86400
    hours = days * 24
    db.execute("DELETE FROM rollup_hour")
    db.execute("DELETE FROM rollup_day")
    db.execute("DELETE FROM rollup_month")
    db.execute("DELETE FROM process_savings_day")
    db.execute("DELETE FROM nodes WHERE id LIKE 'n-bench%'")
    for i in range(nodes):
        nid = f"n-bench{i:05d}"
        db.execute(
            "INSERT INTO nodes (id, name, machine_id, labels, kernel, mem_total_bytes, numa_nodes, ksm_features,"
            " agent_version, page_size, registered_at, last_seen_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (nid, f"bench-{i:05d}", f"machine-bench-{i}", json.dumps({"rack": f"r{i % 20}", "zone": f"z{i % 3}"}),
             "6.8.0", 256 * GIB, 2, '["run"]', "bench", 4096, (start - 86400) * 1000, now * 1000))
    cols = ("node_id, bucket_start, data_seconds, samples, saved_byte_seconds, saved_avg, saved_peak, cpu_seconds,"
            " cpu_pct_avg, cpu_pct_peak, full_scans, running_seconds, stopped_seconds, pruned_seconds,"
            " unmanaged_seconds, profit_byte_seconds, profit_seconds, gaps")
    ins_h = f"INSERT INTO rollup_hour ({cols}) VALUES ({','.join('?' * 18)})"
    ins_d = f"INSERT INTO rollup_day ({cols}) VALUES ({','.join('?' * 18)})"
    ins_m = f"INSERT INTO rollup_month ({cols}) VALUES ({','.join('?' * 18)})"
    t = time.time()
    for i in range(nodes):
        nid = f"n-bench{i:05d}"
        saved = (1 + i % 16) * GIB // 2
        cpu_pct = 1 + (i % 37)
        silent_day = start + (i % days) * 86400 if i % 50 == 0 else None
        rows = []
        day_rows = {}
        for h in range(hours):
            b = start + h * 3600
            if silent_day is not None and silent_day <= b < silent_day + 86400:
                continue
            s = saved + (h % 24) * GIB // 64
            cpu = cpu_pct * 36.0
            rows.append((nid, b, 3600.0, 60, s * 3600.0, float(s), s, cpu, float(cpu_pct), cpu_pct + 5.0, 12,
                         3600.0, 0.0, 0.0, 0.0, 0.0, 0.0, None))
            d = b - b % 86400
            acc = day_rows.setdefault(d, [0.0, 0, 0.0, 0, 0.0, 0.0, 0])
            acc[0] += 3600.0
            acc[1] += 60
            acc[2] += s * 3600.0
            acc[3] = max(acc[3], s)
            acc[4] += cpu
            acc[5] = max(acc[5], cpu_pct + 5.0)
            acc[6] += 12
        db.executemany(ins_h, rows)
        drows = []
        for d, a in sorted(day_rows.items()):
            lo, hi = max(d, start), min(d + 86400, end)
            # The silent span (24 h from an hour that is not midnight) leaves the hours it covers
            # out of the days on either side: a day row's gaps name them, as the rollup
            # service's do (a row's data time short of its span without gaps would say nothing
            # of where, and reports would count the whole day covered).
            if silent_day is not None:
                if d < silent_day < d + 86400:
                    hi = min(hi, silent_day)
                if d < silent_day + 86400 < d + 86400:
                    lo = max(lo, silent_day + 86400)
            gaps = []
            if lo > d:
                gaps.append([d, lo])
            if hi < d + 86400:
                gaps.append([hi, d + 86400])
            drows.append((nid, d, a[0], a[1], a[2], a[2] / a[0], a[3], a[4], a[4] / a[0] * 100, a[5], a[6], a[0],
                          0.0, 0.0, 0.0, 0.0, 0.0, json.dumps(gaps) if gaps else None))
        db.executemany(ins_d, drows)
        # Month rows merged from the day rows (what the rollup service does), with their gaps.
        months = {}
        for r in drows:
            d = r[1]
            y, m = time.gmtime(d).tm_year, time.gmtime(d).tm_mon
            ms = calendar.timegm((y, m, 1, 0, 0, 0))
            me = calendar.timegm((y + (m == 12), 1 if m == 12 else m + 1, 1, 0, 0, 0))
            acc = months.setdefault(ms, [me, 0.0, 0, 0.0, 0, 0.0, 0.0, 0, []])
            acc[1] += r[2]
            acc[2] += r[3]
            acc[3] += r[4]
            acc[4] = max(acc[4], r[6])
            acc[5] += r[7]
            acc[6] = max(acc[6], r[9])
            acc[7] += r[10]
            gaps = json.loads(r[17]) if r[17] else []
            lo, hi = d, d + 86400
            for g in gaps:
                if g[0] <= lo:
                    lo = max(lo, g[1])
                if g[1] >= hi:
                    hi = min(hi, g[0])
            acc[8].append((lo, hi))
        mrows = []
        for ms, a in sorted(months.items()):
            gaps, t0 = [], ms
            for lo, hi in sorted(a[8]):
                if lo > t0:
                    gaps.append([t0, lo])
                t0 = max(t0, hi)
            if t0 < a[0]:
                gaps.append([t0, a[0]])
            mrows.append((nid, ms, a[1], a[2], a[3], a[3] / a[1], a[4], a[5], a[5] / a[1] * 100, a[6], a[7], a[1],
                          0.0, 0.0, 0.0, 0.0, 0.0, json.dumps(gaps) if gaps else None))
        db.executemany(ins_m, mrows)
        # Per-day process savings: `groups` process groups a node a day (VMs), as the ingest keeps them.
        prows = []
        for d, _ in sorted(day_rows.items()):
            for g in range(groups):
                merged = (g + 1) * GIB // 8 + (i % 7) * GIB // 64
                prows.append((nid, d, "vm", f"vm-{i % 40}-{g}", 24, merged + GIB // 32, (d + 3600 * (g + 1)) * 1000,
                              merged, (d + 86000) * 1000, 1, merged * 24.0))
        db.executemany(
            "INSERT INTO process_savings_day (node_id, day_start, kind, name, reports, peak_merged_bytes, peak_at,"
            " last_merged_bytes, last_at, processes, sum_merged_bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?)", prows)
        if i % 100 == 99:
            db.commit()
            print(f"  {i + 1} nodes, {time.time() - t:.0f} s", flush=True)
    db.execute("INSERT OR REPLACE INTO rollup_state (key, value) VALUES ('rollup_rowid', COALESCE((SELECT MAX(rowid) FROM samples), 0))")
    # No raw samples of these hours: the retention cut of a server that kept rollups, not raw
    # samples, this long (`fill-raw` moves it back to its first sample). Without it reports take
    # the raw samples for complete: they look for exact peaks of the year's hours, and read the
    # year's fleet hour rows before they give up (a server with the default 14 days of raw
    # samples has the cut, and does not).
    db.execute("INSERT OR REPLACE INTO rollup_state (key, value) VALUES ('samples_cut', ?)", (now * 1000,))
    db.commit()
    # The month rows of those days, as the migration that created the table fills them (the
    # server writes both as reports arrive; the report reads whole months from the month rows).
    here = os.path.dirname(os.path.abspath(__file__))
    sql = open(os.path.join(here, "..", "migrations", "0042_process_savings_month.sql")).read()
    db.execute("DROP TABLE process_savings_month")
    db.executescript(sql)
    db.execute("DELETE FROM rollup_state WHERE key = 'process_savings_cut'")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # No ANALYZE here: the planner's statistics are the server's own (it refreshes them at start
    # and hourly), so that what is timed is what a running server plans.
    db.commit()
    db.close()
    print(f"filled {nodes} nodes x {hours} hours in {time.time() - t:.0f} s")


def fill_raw(path, nodes, interval):
    """Raw samples for the last 24 h (the first `nodes` bench nodes): what a 24 h report reads
    for its exact group peaks and partial-hour edges. One every `interval` s, or with interval 0 every
    10, 20, ... 60 s by node (agents' intervals differ). Inserted in time order, every node
    interleaved, as concurrent agents' pushes land (rowid order is time order, not node order)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("DELETE FROM samples")
    now = int(time.time())
    start = now - 86400
    t = time.time()
    ins = ("INSERT INTO samples (node_id, seq, taken_at, received_at, phase, page_size, saved_bytes, ksmd_cpu_percent,"
           " ksmd_cpu_seconds, full_scans, sample_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    steps = [interval or 10 * (1 + i % 6) for i in range(nodes)]
    nxt = [start + i % steps[i] for i in range(nodes)]
    seq = [0] * nodes
    total = 0
    for h0 in range(start, now, 3600):
        h1 = min(h0 + 3600, now)
        rows = []
        for i in range(nodes):
            nid = f"n-bench{i:05d}"
            saved = (1 + i % 16) * GIB // 2
            while nxt[i] < h1:
                ts = nxt[i]
                seq[i] += 1
                k = seq[i]
                s = saved + ((ts // 600) % 7) * GIB // 64
                rows.append((ts, nid, k, s))
                nxt[i] += steps[i]
        rows.sort()
        db.executemany(ins, [(nid, k, ts * 1000, ts * 1000, "Running", 4096, s, 5.0, 1000.0 + k * 0.5, k, "{}")
                             for ts, nid, k, s in rows])
        total += len(rows)
        db.commit()
    for i in range(nodes):
        db.execute("UPDATE nodes SET last_seq = ? WHERE id = ?", (seq[i], f"n-bench{i:05d}"))
    # Counted as rolled up up to the last whole hour: the hour rollups of those hours are already
    # filled (`fill`), and a rollup service that runs all along has no day-long backlog (catching
    # 3.5 M time-ordered samples up at once would take the server most of an hour). The samples
    # of the hour under way are left to the server's catch-up, as on a live server (`fill` has no
    # rollups for that hour).
    hour_start = (now - now % 3600) * 1000
    db.execute("INSERT OR REPLACE INTO rollup_state (key, value) VALUES ('rollup_rowid',"
               " COALESCE((SELECT MAX(rowid) FROM samples WHERE taken_at < ?), 0))", (hour_start,))
    # Raw samples start here: the retention cut a server records when it retires older ones
    # (`samples_cut`), which tells reports that peaks before it cannot be exact (see `fill`).
    db.execute("INSERT OR REPLACE INTO rollup_state (key, value) VALUES ('samples_cut', ?)", (start * 1000,))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(f"filled {total} raw samples ({nodes} nodes x 24 h every {interval or '10-60'} s, in time order)"
          f" in {time.time() - t:.0f} s")


def shapes(days):
    """Every report and history query shape: (name, path)."""
    out = []
    for p in ["1h", "24h", "7d", "30d", f"{days}d"]:
        out.append((f"savings by node, {p}", f"/api/v1/reports/savings?since=-{p}&by=node"))
    for p in ["1h", "24h", "7d", "30d", f"{days}d"]:
        out.append((f"savings by label (20 racks), {p}", f"/api/v1/reports/savings?since=-{p}&by=label&label=rack"))
    for p in ["1h", "24h", "7d", "30d", f"{days}d"]:
        out.append((f"savings by day, {p}", f"/api/v1/reports/savings?since=-{p}&by=day"))
    for by in ["node", "day"]:
        for p in ["24h", f"{days}d"]:
            extra = "&label=rack" if by == "label" else ""
            out.append((f"savings CSV by {by}, {p}", f"/api/v1/reports/savings?since=-{p}&by={by}{extra}&format=csv"))
    out.append((f"savings CSV by label, {days}d", f"/api/v1/reports/savings?since=-{days}d&by=label&label=rack&format=csv"))
    for p in ["24h", "7d", "30d", f"{days}d"]:
        out.append((f"processes (top 100), {p}", f"/api/v1/reports/processes?since=-{p}"))
    out.append((f"processes of one node, {days}d", f"/api/v1/reports/processes?since=-{days}d&node=bench-00007"))
    node = "bench-00050"  # has a silent day: gaps
    for p, res in [("1h", "raw"), ("6h", "raw"), ("24h", "raw"), ("24h", "hour"), ("7d", "hour"), ("30d", "hour"),
                   ("30d", "day"), (f"{days}d", "hour"), (f"{days}d", "day")]:
        out.append((f"node history, {p}, {res}", f"/api/v1/nodes/{node}/history?since=-{p}&resolution={res}"))
    out.append((f"node history, {days}d, automatic", f"/api/v1/nodes/{node}/history?since=-{days}d"))
    return out


def cpu_seconds(pid):
    """utime + stime of a process (its own threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(url, token, pid):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    with urllib.request.urlopen(req) as r:
        body = r.read()
    return time.perf_counter() - t0, cpu_seconds(pid) - c0, len(body)


def time_all(base, token, pid, reps, days, out, once=None):
    """First request of each shape (no earlier request of that shape since the server started),
    then the median of `reps` more: wall time and the server's CPU time (utime+stime, 10 ms ticks,
    so each CPU figure is a median of tick-rounded values)."""
    lines = ["| query | first (s) | median wall (s) | median server CPU (s) | size | load (1 min) |",
             "|---|---|---|---|---|---|"]
    print(lines[0], flush=True)
    print(lines[1], flush=True)
    for name, path in shapes(days):
        load = open("/proc/loadavg").read().split()[0]
        c0 = cpu_seconds(pid)
        first, _, size = timed(base + path, token, pid)
        first_cpu = cpu_seconds(pid) - c0
        walls, cpus = [], []
        if once and re.search(once, name):
            # Timed once (--once): too slow to repeat; its "median" is the first request.
            walls, cpus = [first], [first_cpu]
        for _ in range(reps if not walls else 0):
            w, c, size = timed(base + path, token, pid)
            walls.append(w)
            cpus.append(c)
        line = (f"| {name} | {first:.3f} | {statistics.median(walls):.3f} | {statistics.median(cpus):.2f} |"
                f" {size / 1024:.0f} KB | {load} |")
        lines.append(line)
        print(line, flush=True)
    if out:
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["fill", "fill-raw", "time"])
    ap.add_argument("db", help="DB_PATH, or the base URL for time")
    ap.add_argument("token", nargs="?")
    ap.add_argument("pid", nargs="?", type=int)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--once", help="time the shapes whose name matches this regex once (first request only)")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--out")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--interval", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "fill":
        fill(a.db, a.nodes, a.days, a.groups)
    elif a.cmd == "time":
        time_all(a.db, a.token, a.pid, a.reps, a.days, a.out, a.once)
    else:
        fill_raw(a.db, a.nodes, a.interval)
