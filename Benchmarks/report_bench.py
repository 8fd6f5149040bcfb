#!/usr/bin/env python3
"""Fills a ksmfleet database with N nodes x one year of HOURLY history (hour, day and month rollups, as
the rollup service leaves them once raw samples have aged out), for the savings-report benchmark.

Usage: report_bench.py fill DB_PATH [--nodes 1000] [--days 365]
The schema must exist (start the server once on the data dir). Every 50th node has one silent day
(a gap) so the gap machinery is exercised too.
"""
import argparse
import calendar
import json
import sqlite3
import time

GIB = 1 << 30


def fill(path, nodes, days):
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    now = int(time.time())
    end = now - now % 3600
    start = end - days * 86400
    hours = days * 24
    db.execute("DELETE FROM rollup_hour")
    db.execute("DELETE FROM rollup_day")
    db.execute("DELETE FROM rollup_month")
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
        if i % 100 == 99:
            db.commit()
            print(f"  {i + 1} nodes, {time.time() - t:.0f} s", flush=True)
    db.execute("INSERT OR REPLACE INTO rollup_state (key, value) VALUES ('rollup_rowid', COALESCE((SELECT MAX(rowid) FROM samples), 0))")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("ANALYZE")
    db.commit()
    db.close()
    print(f"filled {nodes} nodes x {hours} hours in {time.time() - t:.0f} s")


def fill_raw(path, nodes, interval):
    """Raw samples for the last 24 h, one every `interval` s per node (the first `nodes` bench
    nodes), not yet rolled up: what a 24 h report reads for its exact group peaks."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    now = int(time.time())
    start = now - 86400
    t = time.time()
    ins = ("INSERT INTO samples (node_id, seq, taken_at, received_at, phase, page_size, saved_bytes, ksmd_cpu_percent,"
           " ksmd_cpu_seconds, full_scans, sample_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    total = 0
    for i in range(nodes):
        nid = f"n-bench{i:05d}"
        saved = (1 + i % 16) * GIB // 2
        rows = []
        for k, ts in enumerate(range(start, now, interval)):
            s = saved + ((ts // 600) % 7) * GIB // 64
            rows.append((nid, k + 1, ts * 1000, ts * 1000, "Running", 4096, s, 5.0, 1000.0 + k * 0.5, k, "{}"))
        db.executemany(ins, rows)
        total += len(rows)
        db.execute("UPDATE nodes SET last_seq = ? WHERE id = ?", (len(rows), nid))
        if i % 50 == 49:
            db.commit()
            print(f"  {i + 1} nodes, {total} samples, {time.time() - t:.0f} s", flush=True)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("ANALYZE")
    db.close()
    print(f"filled {total} raw samples ({nodes} nodes x 24 h every {interval} s) in {time.time() - t:.0f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["fill", "fill-raw"])
    ap.add_argument("db")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--interval", type=int, default=10)
    a = ap.parse_args()
    if a.cmd == "fill":
        fill(a.db, a.nodes, a.days)
    else:
        fill_raw(a.db, a.nodes, a.interval)
