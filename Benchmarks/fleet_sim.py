#!/usr/bin/env python3
"""ksmfleet fleet simulator (a benchmark, not a test): N simulated agents against one server.

Each simulated node does what `ksmfleet-agent` does (Sources/FleetAgent), over plain HTTP/1.1
keep-alive from asyncio (stdlib only):
  - registers once with the enrollment token (`POST /api/v1/register`, a connection of its own
    that is closed afterwards, as the agent's anonymous client is), applies the config in the
    reply and pushes a first sample at once (the agent reports a new config at once);
  - holds the config long-poll on its own connection: `GET /api/v1/nodes/{id}/config?wait=W`
    with `If-None-Match: "<generation>"`, W random in 30..55 s, asked again as soon as it
    returns (a 200 with a new generation takes a sample and pushes it at once, as the agent does);
  - takes a sample every --interval seconds (the first at a random phase in the interval: a
    fleet's agents started at different moments) and pushes its outbox (up to 500 samples, seq
    numbered from 1) on a second connection; one push in flight per node; a failed push keeps
    the samples for the next one after a backoff (1 s doubling to 60 s), as the agent's spool does.
So the server holds two connections per node, as with real agents (libcurl keeps the push
connection alive between pushes 60 s apart: its idle limit is 118 s, the server has none).

The orchestrator starts the release server on a fresh data dir (loopback, registration rate
limit off: `--registration-rate-limit 0`, what an operator sets while enrolling a fleet at once),
spreads the nodes over worker processes (at most --conns-per-proc connections each, 8,000 by
default: a process here cannot open more than 20,000 files, and one process of 15,000 saw
long-poll timeouts of its own) and source addresses 127.0.0.2..., waits for every
long-poll to be held, measures a steady window (server CPU seconds and RSS from /proc), makes one
fleet-wide change (`POST /api/v1/config/apply {"all": true}`) and measures for every node the
time until its long-poll returns the new generation, then stops the workers (each pushes what it
has left), stops the server and counts in its SQLite file the samples stored per node against
the samples acknowledged to the simulator.

  python3 Benchmarks/fleet_sim.py --server .build/release/ksmfleet-server --nodes 1000
  python3 Benchmarks/fleet_sim.py --server ... --find-max --start 2500 --step 2500 --max-steps 6
Everything is bounded: counts, and a deadline on every wait.
"""
import argparse, asyncio, glob, json, os, random, resource, shutil, signal, socket, sqlite3, subprocess, sys
import tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_bench import Server, sample  # noqa: E402  (the same sample body as the ingest bench)

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: the port is picked at connect(), per 4-tuple
BATCH = 500  # AgentOptions.batchSize
LONG_POLL_WAIT = (30, 55)  # AgentOptions.longPollWait
REQUEST_TIMEOUT = 30.0  # AgentOptions.requestTimeout


class HTTPError(Exception):
    pass


class Conn:
    """One keep-alive HTTP/1.1 connection from a given loopback source address."""

    def __init__(self, port, source):
        self.port, self.source = port, source
        self.reader = self.writer = None

    async def open(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((self.source, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        except BaseException:
            sock.close()
            raise
        self.reader, self.writer = await asyncio.open_connection(sock=sock)

    async def request(self, method, path, token=None, body=None, headers=None):
        if self.writer is None:
            await self.open()
        data = b"" if body is None else body
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
        if data:
            head += "Content-Type: application/json\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, rest = raw.decode("latin-1").partition("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length = 0
        close = False
        for h in rest.split("\r\n"):
            name, _, value = h.partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, payload

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# ---------------------------------------------------------------------------------------------
# worker: a slice of the fleet in one process


class Node:
    __slots__ = ("i", "id", "token", "source", "gen", "initial_gen", "next_seq", "outbox", "signal",
                 "acked", "acked_highest", "poll", "push", "changed_at", "failures", "retry_at")

    def __init__(self, i, source):
        self.i, self.source = i, source
        self.id = self.token = None
        self.gen = self.initial_gen = None
        self.next_seq = 1
        self.outbox = []
        self.signal = asyncio.Event()
        self.acked = 0  # samples acknowledged (stored or duplicate: the server holds them)
        self.acked_highest = 0
        self.changed_at = None  # monotonic time the long-poll returned a new generation
        self.failures = 0
        self.retry_at = 0.0
        self.poll = self.push = None


class Worker:
    def __init__(self, a):
        self.a = a
        self.port = a.port
        self.stopping = False
        self.stats = {"registered": 0, "register_errors": 0, "pushes": 0, "push_errors": 0, "poll_200": 0,
                      "poll_304": 0, "poll_errors": 0, "errors_by_kind": {}}
        self.push_lat = []  # (start monotonic, seconds, samples)
        self.error_times = []
        self.nodes = []

    def error(self, kind, exc):
        self.error_times.append(round(time.monotonic(), 3))
        key = f"{kind}: {type(exc).__name__} {str(exc)[:80]}"
        d = self.stats["errors_by_kind"]
        d[key] = d.get(key, 0) + 1

    def take_sample(self, node):
        seq = node.next_seq
        node.next_seq += 1
        s = sample(seq, time.time())
        s["appliedGeneration"] = node.gen
        node.outbox.append(json.dumps(s, separators=(",", ":")))
        node.signal.set()

    def sample_timer(self, node, when):
        if self.stopping:
            return
        self.take_sample(node)
        loop = asyncio.get_running_loop()
        loop.call_at(when + self.a.interval, self.sample_timer, node, when + self.a.interval)

    async def register(self, node):
        req = {"hostname": f"sim-{node.i:06d}", "machineId": f"sim-machine-{node.i:06d}", "kernel": "6.8",
               "memTotalBytes": 17179869184, "numaNodes": 1, "ksmFeatures": ["run", "pages_to_scan"],
               "agentVersion": "fleet-sim", "pageSize": 4096, "registrationKey": f"sim-key-{node.i:06d}"}
        c = Conn(self.port, node.source)
        try:
            st, body = await asyncio.wait_for(
                c.request("POST", "/api/v1/register", self.a.enroll, json.dumps(req).encode()), REQUEST_TIMEOUT)
        finally:
            c.close()
        if st not in (200, 201):
            raise HTTPError(f"register {st} {body[:200]!r}")
        r = json.loads(body)
        node.id, node.token = r["nodeId"], r["nodeToken"]
        node.gen = node.initial_gen = r["config"]["generation"]

    async def poll_loop(self, node):
        node.poll = Conn(self.port, node.source)
        backoff = 1.0
        while not self.stopping:
            wait = random.randint(*LONG_POLL_WAIT)
            try:
                st, body = await asyncio.wait_for(node.poll.request(
                    "GET", f"/api/v1/nodes/{node.id}/config?wait={wait}", node.token,
                    headers={"If-None-Match": f'"{node.gen}"', "Accept": "application/json"}), wait + 15)
                if st == 304:
                    self.stats["poll_304"] += 1
                elif st == 200:
                    self.stats["poll_200"] += 1
                    gen = json.loads(body)["generation"]
                    if gen != node.gen:
                        if node.changed_at is None and gen > node.initial_gen:
                            node.changed_at = time.monotonic()
                        node.gen = gen
                        # The agent reports a new config at once (FleetAgent.handleConfig).
                        self.take_sample(node)
                else:
                    raise HTTPError(f"config {st} {body[:200]!r}")
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 — counted, then the agent's backoff
                if self.stopping:
                    return
                self.stats["poll_errors"] += 1
                self.error("poll", e)
                node.poll.close()
                await asyncio.sleep(min(backoff, 60) * random.uniform(0.9, 1.1))
                backoff *= 2

    async def push_loop(self, node):
        node.push = Conn(self.port, node.source)
        while True:
            if not node.outbox:
                if self.stopping:
                    return
                node.signal.clear()
                await node.signal.wait()
                continue
            delay = node.retry_at - time.monotonic()
            if delay > 0:
                if self.stopping:
                    return  # left unpushed (the agent would spool them)
                await asyncio.sleep(delay)
            batch = node.outbox[:BATCH]
            body = ('{"samples":[' + ",".join(batch) + "]}").encode()
            t0 = time.monotonic()
            try:
                st, resp = await asyncio.wait_for(
                    node.push.request("POST", f"/api/v1/nodes/{node.id}/samples", node.token, body), REQUEST_TIMEOUT)
                if st != 200:
                    raise HTTPError(f"samples {st} {resp[:200]!r}")
                ack = json.loads(resp)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                self.stats["push_errors"] += 1
                self.error("push", e)
                node.push.close()
                node.failures += 1
                node.retry_at = time.monotonic() + min(2 ** (node.failures - 1), 60)
                continue
            self.push_lat.append((round(t0, 4), round(time.monotonic() - t0, 5), len(batch)))
            self.stats["pushes"] += 1
            node.failures = 0
            node.retry_at = 0
            del node.outbox[:len(batch)]
            node.acked += len(batch)
            node.acked_highest = max(node.acked_highest, ack["highestSeq"])

    async def run(self):
        a = self.a
        sources = [f"127.0.0.{2 + k}" for k in range(a.addresses)]
        self.nodes = [Node(i, sources[i % len(sources)]) for i in range(a.first, a.first + a.count)]
        deadline = time.monotonic() + a.max_seconds
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_stdin():  # "stop" from the orchestrator, or its end (EOF)
            loop.remove_reader(sys.stdin.fileno())
            stop.set()
        loop.add_reader(sys.stdin.fileno(), on_stdin)
        tasks = []
        queue = list(reversed(self.nodes))

        async def registrar():
            while queue and time.monotonic() < deadline:
                node = queue.pop()
                for attempt in range(5):
                    try:
                        await self.register(node)
                        break
                    except Exception as e:  # noqa: BLE001
                        self.stats["register_errors"] += 1
                        self.error("register", e)
                        await asyncio.sleep(1 + attempt)
                if node.id is None:
                    continue
                self.stats["registered"] += 1
                self.take_sample(node)  # the first config applied: reported at once
                tasks.append(loop.create_task(self.push_loop(node)))
                tasks.append(loop.create_task(self.poll_loop(node)))
                first = time.monotonic() + random.uniform(0, a.interval)
                loop.call_at(first, self.sample_timer, node, first)

        t0 = time.monotonic()
        await asyncio.gather(*(registrar() for _ in range(a.register_concurrency)))
        emit({"event": "registered", "count": self.stats["registered"],
              "errors": self.stats["register_errors"], "seconds": round(time.monotonic() - t0, 2)})
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass
        # Stop: no new samples; every push loop sends what it holds (bounded), polls end.
        self.stopping = True
        for n in self.nodes:
            n.signal.set()
        polls = [t for t in tasks if t.get_coro().__name__ == "poll_loop"]
        for t in polls:
            t.cancel()
        pushes = [t for t in tasks if t.get_coro().__name__ == "push_loop"]
        if pushes:
            done, pending = await asyncio.wait(pushes, timeout=REQUEST_TIMEOUT + 5)
            for t in pending:
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for n in self.nodes:
            for c in (n.poll, n.push):
                if c is not None:
                    c.close()
        emit({"event": "done", "stats": self.stats,
              "nodes": [[n.id, n.acked, n.acked_highest, n.next_seq - 1, len(n.outbox)] for n in self.nodes if n.id],
              "changed_at": [n.changed_at for n in self.nodes if n.id],
              "push_lat": self.push_lat, "error_times": self.error_times})


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker_main(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(Worker(a).run())


# ---------------------------------------------------------------------------------------------
# orchestrator


def proc_stat(pid):
    """(cpu seconds utime+stime, VmRSS MiB, VmHWM MiB, open fds) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return cpu, rss, hwm, fds


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))]


def admin_request(server, method, path, body=None, timeout=120):
    async def go():
        c = Conn(server.port, "127.0.0.1")
        try:
            return await asyncio.wait_for(
                c.request(method, path, server.token, None if body is None else json.dumps(body).encode()), timeout)
        finally:
            c.close()
    return asyncio.run(go())


def metric(server, name):
    """The metric's value, None when the server does not answer within 20 s (e.g. out of fds)."""
    try:
        st, body = admin_request(server, "GET", "/metrics", timeout=20)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


def log(msg):
    print(f"[fleet-sim {time.strftime('%H:%M:%S')}] {msg} (load {loadavg()})", file=sys.stderr, flush=True)


def run_fleet(a, nodes):
    """One fleet of `nodes` against a fresh server; returns the result dict."""
    tmp = tempfile.mkdtemp(prefix="ksmfleet-fleet-")
    result = {"nodes": nodes, "interval_s": a.interval, "load_start": loadavg(),
              "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    server = Server(a.server, tmp, a.server_args.split())
    workers = []
    try:
        st, body = admin_request(server, "POST", "/api/v1/enrollment-tokens", {"description": "fleet-sim"})
        assert st == 201, body
        enroll = json.loads(body)["token"]
        per_proc = max(1, a.conns_per_proc // 2)  # two connections per node
        nprocs = (nodes + per_proc - 1) // per_proc
        result["sim_processes"] = nprocs
        base, extra = divmod(nodes, nprocs)
        first = 0
        for w in range(nprocs):
            count = base + (1 if w < extra else 0)
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--port", str(server.port),
                   "--enroll", enroll, "--first", str(first), "--count", str(count), "--interval", str(a.interval),
                   "--addresses", str(a.addresses), "--register-concurrency", str(a.register_concurrency),
                   "--max-seconds", str(a.max_seconds)]
            # Each worker's nodes get their own source addresses (127.0.0.2 + offset ...).
            workers.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            first += count
        t_start = time.monotonic()
        registered = reg_errors = 0
        for w in workers:
            line = w.stdout.readline()  # bounded by the worker's own --max-seconds
            ev = json.loads(line) if line else {}
            registered += ev.get("count", 0)
            reg_errors += ev.get("errors", 0)
        result["registered"] = registered
        result["register_errors"] = reg_errors
        result["register_seconds"] = round(time.monotonic() - t_start, 1)
        log(f"{registered} of {nodes} registered in {result['register_seconds']} s")
        # Every node holds its long-poll.
        waiting, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = int(metric(server, "ksmfleet_config_waiters") or 0)
            if waiting >= registered:
                break
            time.sleep(1)
        result["waiters_before_change"] = waiting
        t_ready = time.monotonic()
        # Steady window: samples every interval, long-polls held and renewed.
        time.sleep(a.settle)
        t_steady = time.monotonic()
        cpu0, rss0, _, fds0 = proc_stat(server.proc.pid)
        sim0 = sum(proc_stat(w.pid)[0] for w in workers)
        load_steady_start = loadavg()
        time.sleep(a.steady)
        cpu1, rss1, hwm1, fds1 = proc_stat(server.proc.pid)
        sim1 = sum(proc_stat(w.pid)[0] for w in workers)
        t_steady_end = time.monotonic()
        result["load_steady"] = f"{load_steady_start} -> {loadavg()}"
        steady_s = t_steady_end - t_steady
        result["steady_window_s"] = round(steady_s, 1)
        result["server_cpu_s_steady"] = round(cpu1 - cpu0, 2)
        result["server_cpu_pct_steady"] = round((cpu1 - cpu0) / steady_s * 100, 2)
        result["server_rss_mib"] = round(rss1, 1)
        result["sim_cpu_s_steady"] = round(sim1 - sim0, 2)
        result["server_fds"] = fds1
        log(f"steady {steady_s:.0f} s: server CPU {cpu1 - cpu0:.2f} s, RSS {rss1:.0f} MiB, {fds1} fds")
        # The fleet-wide change.
        waiting = int(metric(server, "ksmfleet_config_waiters") or 0)
        result["waiters_at_change"] = waiting
        cpu_c0 = proc_stat(server.proc.pid)[0]
        sim_c0 = sum(proc_stat(w.pid)[0] for w in workers)
        t_apply = time.monotonic()
        try:
            st, body = admin_request(server, "POST", "/api/v1/config/apply", {"all": True, "change": {"thresCoef": 25}})
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            st, body = 0, repr(e).encode()
        t_reply = time.monotonic()
        result["apply_status"] = st
        result["apply_changed"] = (sum(1 for r in json.loads(body)["results"] if r["status"] == "changed")
                                   if st == 200 else 0)
        if st != 200:
            log(f"the fleet-wide change failed: {st} {body[:200]!r}")
        result["apply_request_s"] = round(t_reply - t_apply, 3)
        time.sleep(a.after)
        result["server_cpu_s_change"] = round(proc_stat(server.proc.pid)[0] - cpu_c0, 2)
        result["sim_cpu_s_change"] = round(sum(proc_stat(w.pid)[0] for w in workers) - sim_c0, 2)
        cpu_end, rss_end, hwm_end, _ = proc_stat(server.proc.pid)
        result["server_rss_mib_peak"] = round(hwm_end, 1)
        # Stop the workers: each pushes what it holds, then reports.
        t_stop = time.monotonic()
        outs = []
        for w in workers:
            try:
                w.stdin.write("stop\n")
                w.stdin.flush()
            except BrokenPipeError:
                pass
        for w in workers:
            out, _ = w.communicate(timeout=REQUEST_TIMEOUT + 60)
            for line in out.splitlines():
                ev = json.loads(line)
                if ev.get("event") == "done":
                    outs.append(ev)
        result["run_seconds"] = round(time.monotonic() - t_start, 1)
        stored_metric = metric(server, "ksmfleet_samples_stored_total")
        result["load_end"] = loadavg()
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        server.stop()
    # Tally.
    stats = {}
    for o in outs:
        for k, v in o["stats"].items():
            if k == "errors_by_kind":
                d = stats.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            else:
                stats[k] = stats.get(k, 0) + v
    acked = {}
    taken = unpushed = 0
    for o in outs:
        for node_id, n_acked, highest, n_taken, left in o["nodes"]:
            acked[node_id] = (n_acked, highest)
            taken += n_taken
            unpushed += left
    stored = {}
    dbs = [p for p in glob.glob(os.path.join(tmp, "db", "*")) if p.endswith((".sqlite", ".db", ".sqlite3"))]
    if dbs:
        db = sqlite3.connect(dbs[0])
        for node_id, count, highest in db.execute("SELECT node_id, COUNT(*), MAX(seq) FROM samples GROUP BY node_id"):
            stored[node_id] = (count, highest)
        db.close()
    result["db"] = os.path.basename(dbs[0]) if dbs else None
    lost = sum(max(0, n_acked - stored.get(nid, (0, 0))[0]) for nid, (n_acked, _) in acked.items())
    result.update({
        "samples_taken": taken, "samples_acked": sum(v[0] for v in acked.values()),
        "samples_in_db": sum(v[0] for v in stored.values()), "samples_stored_metric": stored_metric,
        "lost": lost, "unpushed_at_stop": unpushed,
        "pushes": stats.get("pushes", 0),
        "errors": stats.get("register_errors", 0) + stats.get("push_errors", 0) + stats.get("poll_errors", 0),
        "push_errors": stats.get("push_errors", 0), "poll_errors": stats.get("poll_errors", 0),
        "polls_304": stats.get("poll_304", 0), "polls_200": stats.get("poll_200", 0),
        "errors_by_kind": stats.get("errors_by_kind", {}),
    })
    # Push latency: all, the steady window, and the 10 s after the change (every node pushes then).
    lat = [(t, s) for o in outs for t, s, _ in o["push_lat"]]
    ms = lambda xs: None if not xs else {"p50": round(pct(xs, .5) * 1000, 1), "p99": round(pct(xs, .99) * 1000, 1),
                                         "max": round(max(xs) * 1000, 1), "n": len(xs)}
    result["push_ms"] = ms([s for _, s in lat])
    # From every node registered and holding its long-poll to the stop: the load of the target.
    result["push_ms_run"] = ms([s for t, s in lat if t >= t_ready])
    # When the errors happened, in 10 s buckets from every node holding its long-poll (negative:
    # during the registrations; the change was made at "apply_at_s").
    hist = {}
    for o in outs:
        for t in o.get("error_times", []):
            b = int((t - t_ready) // 10 * 10)
            hist[b] = hist.get(b, 0) + 1
    result["errors_at_s"] = dict(sorted(hist.items()))
    result["apply_at_s"] = round(t_apply - t_ready, 1)
    if a.dump_latencies:  # seconds since every node held its long-poll, push latency in seconds
        with open(a.dump_latencies, "w") as f:
            f.write(f"# steady {t_steady - t_ready:.3f}..{t_steady_end - t_ready:.3f} apply {t_apply - t_ready:.3f}\n")
            for t, s in sorted(lat):
                f.write(f"{t - t_ready:.4f} {s:.5f}\n")
    result["push_ms_steady"] = ms([s for t, s in lat if t_steady <= t < t_steady_end])
    result["push_ms_after_change"] = ms([s for t, s in lat if t_apply <= t < t_apply + 10])
    # Config change: per node, from the admin sending the request to its long-poll returning it.
    changed = [c - t_apply for o in outs for c in o["changed_at"] if c is not None]
    result["change_received"] = len(changed)
    result["change_within_2s"] = sum(1 for c in changed if c <= 2.0)
    result["change_s"] = None if not changed else {
        "p50": round(pct(changed, .5), 3), "p99": round(pct(changed, .99), 3), "max": round(max(changed), 3)}
    per10k = 10000 / nodes
    result["server_cpu_pct_per_10k"] = round(result["server_cpu_pct_steady"] * per10k, 2)
    result["server_cpu_s_per_min_per_10k"] = round(result["server_cpu_s_steady"] / steady_s * 60 * per10k, 2)
    result["server_rss_mib_per_10k"] = round(result["server_rss_mib"] * per10k, 1)
    # The push target is judged on the steady window (--p99-over steady: samples every interval,
    # long-polls held) or on everything after the fleet was up, the change's burst included
    # (--p99-over run: every node pushes a sample at once when its new config arrives).
    p99 = (result["push_ms_" + a.p99_over] or {}).get("p99")
    result["p99_over"] = a.p99_over
    result["targets"] = {
        "0 errors": result["errors"] == 0 and result["registered"] == nodes,
        "0 lost": lost == 0 and result["samples_in_db"] >= result["samples_acked"],
        f"push p99 < 100 ms ({a.p99_over})": p99 is not None and p99 < 100,
        "change to all within 2 s": result["change_within_2s"] == nodes,
    }
    result["pass"] = all(result["targets"].values())
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def table(results):
    cols = ["nodes", "procs", "pushes", "errors", "lost", "acked", "push ms (run) p50/p99/max", "steady p99", "burst p99",
            "change s p50/p99/max", "≤2 s", "CPU %", "CPU %/10k", "CPU s/min/10k", "RSS MiB", "RSS/10k", "fds",
            "load", "pass"]
    rows = []
    for r in results:
        p, ps, c = r.get("push_ms_run") or {}, r.get("push_ms_steady") or {}, r.get("change_s") or {}
        pb = r.get("push_ms_after_change") or {}
        rows.append([r["nodes"], r.get("sim_processes"), r["pushes"], r["errors"], r["lost"], r["samples_acked"],
                     f"{p.get('p50')}/{p.get('p99')}/{p.get('max')}", ps.get("p99"), pb.get("p99"),
                     f"{c.get('p50')}/{c.get('p99')}/{c.get('max')}", f"{r['change_within_2s']}/{r['nodes']}",
                     r["server_cpu_pct_steady"], r["server_cpu_pct_per_10k"], r["server_cpu_s_per_min_per_10k"],
                     r["server_rss_mib"], r["server_rss_mib_per_10k"], r["server_fds"], r["load_steady"],
                     "yes" if r["pass"] else "NO: " + ", ".join(k for k, v in r["targets"].items() if not v)])
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    out = [" | ".join(str(x).ljust(w) for x, w in zip(cols, widths))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", help="the ksmfleet-server binary (release build)")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=60, help="seconds between samples per node (default 60)")
    ap.add_argument("--settle", type=float, default=5, help="seconds after every long-poll is held, before the window")
    ap.add_argument("--steady", type=float, default=75, help="steady window measured (seconds; ≥ the interval)")
    ap.add_argument("--after", type=float, default=20, help="seconds after the fleet-wide change before stopping")
    ap.add_argument("--conns-per-proc", type=int, default=8000,
                    help="connections per simulator process (≤ 15,000; one process of 15,000 saw long-poll timeouts of its own)")
    ap.add_argument("--addresses", type=int, default=32, help="source addresses 127.0.0.2..: node i connects from the (i %% N)th")
    ap.add_argument("--register-concurrency", type=int, default=32, help="registrations in flight per process")
    ap.add_argument("--max-seconds", type=float, default=900, help="hard deadline of a worker")
    ap.add_argument("--find-max", action="store_true", help="step the fleet up (--start/--step or --sizes) until errors or lost samples appear")
    ap.add_argument("--start", type=int, default=2500)
    ap.add_argument("--step", type=int, default=2500)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--sizes", help="--find-max: these fleet sizes in turn instead (e.g. 2500,5000,7500,9900)")
    ap.add_argument("--server-args", default="--registration-rate-limit 0",
                    help="extra server flags (default: the per-address registration limit off)")
    ap.add_argument("--p99-over", choices=["steady", "run"], default="steady",
                    help="pushes the p99 target is judged on: the steady window, or all after the fleet is up "
                         "(the burst after the fleet-wide change included)")
    ap.add_argument("--dump-latencies", help="write every push (start, latency) to this file")
    ap.add_argument("--json", help="append every result as a JSON line to this file")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--enroll", help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker_main(a)
    if not a.server:
        ap.error("--server is required")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    print(f"fd limit per process: {hard} (the server holds 2 connections per node)", file=sys.stderr)
    sizes = [a.nodes]
    if a.find_max:
        sizes = ([int(x) for x in a.sizes.split(",")][:a.max_steps] if a.sizes
                 else [a.start + k * a.step for k in range(a.max_steps)])
    results = []
    for n in sizes:
        log(f"fleet of {n} nodes")
        r = run_fleet(a, n)
        results.append(r)
        print(json.dumps(r), flush=True)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(r) + "\n")
        # Past a fleet that errs or loses samples nothing else means much: stop there. The latency
        # and spread targets may fail earlier on a busy machine; the steps go on to show the rest.
        if a.find_max and not (r["targets"]["0 errors"] and r["targets"]["0 lost"]):
            break
    print(table(results), flush=True)
    if a.find_max:
        for target in results[0]["targets"]:
            met = [r["nodes"] for r in results if r["targets"][target]]
            print(f"  {target}: met up to {max(met) if met else 'none'} of the sizes tried "
                  f"({', '.join(str(r['nodes']) + ('' if r['targets'][target] else ' no') for r in results)})")
        ok = [r["nodes"] for r in results if r["pass"]]
        print(f"largest fleet meeting every target: {f'{max(ok)} nodes' if ok else 'none of the sizes tried'} "
              f"(first failure: {next((r['nodes'] for r in results if not r['pass']), 'none within the steps')})")


if __name__ == "__main__":
    main()
