#!/usr/bin/env python3
"""KSM policy benchmark on the real kernel (not a test): every mode, one at a time.

For each mode: KSM is reset (run=2 until pages_shared is 0, advisor off, the kernel's defaults),
the first wave of the duplicate-memory workload is started and filled, then the policy starts
(t=0). Measured: time to 90 % of the wave's possible saving and ksmd CPU seconds to get there;
ksmd CPU seconds per minute in a window once nothing new merges; then a second wave starts and
the time to 90 % of its new saving is measured. Slow modes are cut at a cap ("> cap").

Run as root holding /tmp/ksmfleet-kernel-tests.lock (`make bench-ksm` does both). The KSM
settings found at start are put back at the end. Writes one CSV per mode and summary.json to
--out, and prints the table.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

KSM = "/sys/kernel/mm/ksm"
PAGE = os.sysconf("SC_PAGESIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def rd(name):
    with open(f"{KSM}/{name}") as f:
        text = f.read().strip()
    if "[" in text:
        return text[text.index("[") + 1:text.index("]")]
    return int(text) if text.lstrip("-").isdigit() else text


def wr(name, value):
    with open(f"{KSM}/{name}", "w") as f:
        f.write(str(value))


def ksmd_pid():
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "ksmd":
                        return int(pid)
            except OSError:
                pass
    raise SystemExit("no ksmd thread")


def ksmd_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


TUNABLES = ["pages_to_scan", "sleep_millisecs", "smart_scan", "use_zero_pages", "advisor_target_scan_time",
            "advisor_max_cpu", "advisor_min_pages_to_scan", "advisor_max_pages_to_scan"]


def capture():
    saved = {n: rd(n) for n in TUNABLES if os.path.exists(f"{KSM}/{n}")}
    saved["run"] = rd("run")
    if os.path.exists(f"{KSM}/advisor_mode"):
        saved["advisor_mode"] = rd("advisor_mode")
    return saved


def reset(defaults, timeout=180):
    wr("run", 2)
    end = time.time() + timeout
    while rd("pages_shared") != 0 or rd("pages_sharing") != 0:
        if time.time() > end:
            raise SystemExit("unmerge did not finish")
        time.sleep(0.2)
    if "advisor_mode" in defaults:
        wr("advisor_mode", "none")
    for n in TUNABLES:
        if n in defaults:
            wr(n, defaults[n])
    wr("run", 0)


def restore(saved):
    reset(saved)
    if saved.get("advisor_mode", "none") != "none":
        wr("advisor_mode", saved["advisor_mode"])
    wr("run", saved["run"] if saved["run"] != 2 else 0)


CHILDREN = []


def on_term(sig, frame):
    raise SystemExit(f"stopped by signal {sig}")


class Wave:
    def __init__(self, exe, count, mib, dup, vol, wave):
        self.procs = [subprocess.Popen([exe, str(mib), str(dup), str(vol), str(wave), str(i)],
                                       stdout=subprocess.PIPE, text=True) for i in range(count)]
        CHILDREN.extend(self.procs)
        self.possible = int(mib * 1024 * 1024 // PAGE * dup) * (count - 1)

    def wait_ready(self):
        for p in self.procs:
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("workload process failed")

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait()


class Policy:
    """How a mode is driven: sysfs writes (full speed) or the agent in standalone mode."""

    def __init__(self, name, agent, workdir, config=None, sysfs=None, kick=False):
        self.name, self.agent, self.workdir = name, agent, workdir
        self.config, self.sysfs, self.kick = config, sysfs, kick
        self.proc = None

    def start(self):
        if self.sysfs:
            for k, v in self.sysfs:
                wr(k, v)
            return
        path = os.path.join(self.workdir, f"{self.name}.json")
        with open(path, "w") as f:
            json.dump(self.config, f)
        log = open(os.path.join(self.workdir, f"{self.name}.agent.log"), "w")
        self.proc = subprocess.Popen([self.agent, "standalone", "--config", path], stdout=log, stderr=log)
        CHILDREN.append(self.proc)
        if self.kick:
            # SIGUSR1 before the agent handles it would kill it: wait for its first log line.
            logpath = os.path.join(self.workdir, f"{self.name}.agent.log")
            end = time.time() + 10
            while os.path.getsize(logpath) == 0 and time.time() < end:
                time.sleep(0.05)
            time.sleep(0.2)
            self.proc.send_signal(signal.SIGUSR1)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        wr("run", 0)


def modes(agent, workdir, only):
    run = {"run": "run", "thresCoef": 100}
    all_modes = [
        Policy("full-speed", agent, workdir, sysfs=[("pages_to_scan", 20000), ("sleep_millisecs", 0), ("run", 1)]),
        Policy("adaptive", agent, workdir, config={**run, "mode": "adaptive"}),
        Policy("adaptive-budget-20", agent, workdir, config={**run, "mode": "adaptive", "maxCpuPercent": 20}),
        Policy("throttle-kick", agent, workdir, config={**run, "mode": "throttle"}, kick=True),
        Policy("high", agent, workdir, config={**run, "mode": "high"}),
        Policy("standard", agent, workdir, config={**run, "mode": "standard"}),
        Policy("advisor", agent, workdir, config={**run, "mode": "advisor"}),
    ]
    return [m for m in all_modes if not only or m.name in only]


def measure(policy, args, exe, pid, defaults):
    reset(defaults)
    rows = []
    wave1 = Wave(exe, args.procs, args.mib, args.dup, args.volatile, 1)
    wave1.wait_ready()
    t0 = time.time()
    cpu0 = ksmd_cpu(pid)
    policy.start()

    def sample():
        t = time.time() - t0
        row = {"t": round(t, 2), "sharing": rd("pages_sharing"), "shared": rd("pages_shared"),
               "full_scans": rd("full_scans"), "cpu": round(ksmd_cpu(pid) - cpu0, 3),
               "pages_to_scan": rd("pages_to_scan"), "sleep": rd("sleep_millisecs")}
        rows.append(row)
        return row

    def until(cond, cap):
        start = time.time()
        while time.time() - start < cap:
            row = sample()
            if cond(row):
                return row
            time.sleep(args.period)
        return None

    result = {"mode": policy.name, "possible_pages": wave1.possible}
    hit = until(lambda r: r["sharing"] >= 0.9 * wave1.possible, args.cap)
    result["t90"] = hit["t"] if hit else None
    # ksmd's average share of a core up to 90 % (what a CPU budget limits while merging).
    result["cpu_share_to_90"] = round(hit["cpu"] / hit["t"], 3) if hit and hit["t"] > 0 else None
    result["cpu90"] = hit["cpu"] if hit else None
    # Nothing new merges from here on: wait, then measure a window.
    until(lambda r: False, args.settle)
    w0 = sample()
    until(lambda r: False, args.window)
    w1 = sample()
    result["cpu_per_min_settled"] = round((w1["cpu"] - w0["cpu"]) * 60 / (w1["t"] - w0["t"]), 3)
    result["settled_window"] = [w0["t"], w1["t"]]
    # Second wave.
    base = w1["sharing"]
    tw = time.time() - t0
    wave2 = Wave(exe, args.wave2_procs, args.mib, args.dup, args.volatile, 2)
    hit2 = until(lambda r: r["sharing"] >= base + 0.9 * wave2.possible, args.cap2)
    result["wave2_t90"] = round(hit2["t"] - tw, 2) if hit2 else None
    result["wave2_start"] = round(tw, 2)
    wave2.wait_ready()
    policy.stop()
    wave1.stop()
    wave2.stop()
    return result, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True, help="ksmfleet-agent binary")
    ap.add_argument("--workload", required=True, help="ksm-workload binary")
    ap.add_argument("--out", default=".build/ksm-bench")
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--dup", type=float, default=0.75)
    ap.add_argument("--volatile", type=float, default=0.0)
    ap.add_argument("--wave2-procs", type=int, default=2)
    ap.add_argument("--cap", type=float, default=150, help="longest wait for 90 %% of the first wave")
    ap.add_argument("--settle", type=float, default=30, help="seconds after 90 %% before the settled window")
    ap.add_argument("--window", type=float, default=60, help="settled window in seconds")
    ap.add_argument("--cap2", type=float, default=90, help="longest wait for 90 %% of the second wave")
    ap.add_argument("--period", type=float, default=0.25, help="sampling period in seconds")
    ap.add_argument("--only", nargs="*", help="modes to run (default: all)")
    ap.add_argument("--ksmd-nice", type=int, default=-10,
                    help="nice of ksmd while measuring (the kernel's is 5; restored after), so that other work on "
                         "a shared machine disturbs the comparison less")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (it writes /sys/kernel/mm/ksm)")
    os.makedirs(args.out, exist_ok=True)
    pid = ksmd_pid()
    saved = capture()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    saved_nice = os.getpriority(os.PRIO_PROCESS, pid)
    os.setpriority(os.PRIO_PROCESS, pid, args.ksmd_nice)
    defaults = {"pages_to_scan": 100, "sleep_millisecs": 20, "smart_scan": 1, "use_zero_pages": 0,
                "advisor_target_scan_time": 200, "advisor_max_cpu": 70, "advisor_min_pages_to_scan": 500,
                "advisor_max_pages_to_scan": 30000, "advisor_mode": "none"}
    defaults = {k: v for k, v in defaults.items() if k in saved}
    results = []
    try:
        for policy in modes(args.agent, args.out, args.only):
            print(f"== {policy.name}", file=sys.stderr, flush=True)
            result, rows = measure(policy, args, args.workload, pid, defaults)
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
            with open(os.path.join(args.out, f"{policy.name}.csv"), "w") as f:
                f.write(",".join(rows[0].keys()) + "\n")
                for r in rows:
                    f.write(",".join(str(v) for v in r.values()) + "\n")
            with open(os.path.join(args.out, "summary.json"), "w") as f:
                json.dump({"args": vars(args), "results": results}, f, indent=1)
    finally:
        for p in CHILDREN:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait()
        restore(saved)
        os.setpriority(os.PRIO_PROCESS, pid, saved_nice)
    def cell(v, cap, unit=""):
        return f"> {cap:g}{unit}" if v is None else f"{v:g}{unit}"
    print(f"\n{args.procs} × {args.mib} MiB, {args.dup:.0%} duplicate, {args.volatile:.0%} volatile; "
          f"second wave {args.wave2_procs} × {args.mib} MiB\n")
    print("| mode | time to 90 % | ksmd CPU-s to 90 % | ksmd CPU-s per minute settled | second wave: time to 90 % |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        cpu90 = "—" if r["cpu90"] is None else f"{r['cpu90']:g}"
        print(f"| {r['mode']} | {cell(r['t90'], args.cap, ' s')} | {cpu90} "
              f"| {r['cpu_per_min_settled']:g} | {cell(r['wave2_t90'], args.cap2, ' s')} |")


if __name__ == "__main__":
    main()
