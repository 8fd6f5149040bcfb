#!/usr/bin/env python3
"""ksmfleet fleet simulator (a benchmark, not a test): N simulated agents against one server (or replicas).

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
    the samples for the next one after a backoff (1 s doubling to 60 s, full jitter), as the agent's spool does;
    a failed push or poll whose reply said `Retry-After: S` waits at least S (spread over 1-1.2 S,
    at most 15 minutes), as the agent does (Backoff.next(hint:)).
So the server holds two connections per node, as with real agents (libcurl keeps the push
connection alive between pushes 60 s apart: its idle limit is 118 s, the server has none).

The orchestrator starts the release server on a fresh data dir (loopback, registration rate
limit off: `--registration-rate-limit 0`, what an operator sets while enrolling a fleet at once),
spreads the nodes over worker processes (at most --conns-per-proc connections each, 8,000 by
default: a process here cannot open more than 20,000 files, and one process of 15,000 saw
long-poll timeouts of its own) and source addresses 127.0.0.2..., waits for every
long-poll to be held, measures a steady window (server CPU seconds and RSS from /proc), makes one
fleet-wide change (`POST /api/v1/config/apply {"all": true}`) and measures for every node the
time until its long-poll returns the new generation (when the simulator reads it, and when it
reached the node's socket: the kernel's last receive time, TCP_INFO, so a worker's own backlog
after the change is told apart from the server's), then stops the workers (each pushes what it
has left), stops the server and counts in its SQLite file the samples stored per node against
the samples acknowledged to the simulator.

With --postgres URL (a PostgreSQL server on loopback) each run gets a fresh database on it
(dropped after) and --replicas R server processes on that database (each its own port and data
dir, one admin token): node i registers, polls and pushes on replica i % R, as agents each given
one replica's URL; the fleet-wide change goes through replica 0 only, so the spread over all nodes
measures the wake-up of the other replicas through LISTEN/NOTIFY. /metrics is read from every
replica; CPU and RSS are summed over the replicas and, separately, over the PostgreSQL server's
processes (the postmaster and its children); the stored samples are counted in the run's database
once every replica has stopped. R must leave each replica at most ~9,000 nodes (the file limit).
--no-metrics counts the long-polls held from the simulator's side instead of scraping /metrics.

  python3 Benchmarks/fleet_sim.py --server .build/release/ksmfleet-server --nodes 1000
  python3 Benchmarks/fleet_sim.py --server ... --find-max --start 2500 --step 2500 --max-steps 6
  python3 Benchmarks/fleet_sim.py --server ... --postgres postgres://postgres@127.0.0.1:PORT/postgres \
      --replicas 2 --nodes 10000
Everything is bounded: counts, and a deadline on every wait.
"""
import argparse, asyncio, glob, json, math, os, random, resource, select, shutil, signal, socket, sqlite3, struct, subprocess, sys
import tempfile, threading, time, urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_bench import Server, sample  # noqa: E402  (the same sample body as the ingest bench)

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: the port is picked at connect(), per 4-tuple
TCPI_LAST_DATA_RECV = 52  # linux/tcp.h: offset of struct tcp_info's tcpi_last_data_recv (u32, ms)
BATCH = 500  # AgentOptions.batchSize
LONG_POLL_WAIT = (30, 55)  # AgentOptions.longPollWait
REQUEST_TIMEOUT = 30.0  # AgentOptions.requestTimeout


class HTTPError(Exception):
    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


LONGEST_HINT = 900  # Backoff.longestHint


def backoff_wait(failures):
    """The agent's Backoff (base 1 s, cap 60 s, full jitter): the n-th failure in a row waits a
    random time in [c/2, c], c = min(60, 2^(n-1))."""
    ceiling = min(2 ** min(failures - 1, 30), 60)
    return random.uniform(ceiling / 2, ceiling)


def heeding(own, error):
    """The agent's wait after a failure: its own backoff, or the server's Retry-After (delay-seconds),
    spread over 1-1.2x and capped at 15 minutes, when that is longer."""
    hint = getattr(error, "retry_after", None)
    if not hint or hint <= 0:
        return own
    hint = min(hint, LONGEST_HINT)
    return max(own, random.uniform(hint, hint * 1.2))


class Conn:
    """One keep-alive HTTP/1.1 connection from a given loopback source address."""

    def __init__(self, port, source):
        self.port, self.source = port, source
        self.reader = self.writer = self.sock = None
        self.closed_arrived_ago = None  # data_arrived_ago, read before a `Connection: close` closed it
        self.retry_after = None  # the last reply's Retry-After (delay-seconds), None without one

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
        self.sock = sock

    def data_arrived_ago(self):
        """Seconds since the kernel last received data on this connection (TCP_INFO's
        tcpi_last_data_recv: milliseconds, in steps of a jiffy, 4 ms at HZ=250). Read right after
        a response, it tells when the response reached this machine's socket, apart from how
        long this process took to get to it (one event loop for thousands of simulated nodes)."""
        if self.sock is None:
            return self.closed_arrived_ago
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCPI_LAST_DATA_RECV + 4)
            return struct.unpack_from("=I", info, TCPI_LAST_DATA_RECV)[0] / 1000
        except OSError:
            return None

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
        self.retry_after = None
        for h in rest.split("\r\n"):
            name, _, value = h.partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "retry-after" and value.strip().isdigit():
                self.retry_after = int(value.strip())
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            ago = self.data_arrived_ago()
            self.close()
            self.closed_arrived_ago = ago
        return status, payload

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = self.sock = None


# ---------------------------------------------------------------------------------------------
# worker: a slice of the fleet in one process


class Node:
    __slots__ = ("i", "port", "id", "token", "source", "gen", "initial_gen", "next_seq", "outbox", "signal",
                 "acked", "acked_highest", "poll", "push", "changed_at", "changed_wire_at", "changed_asked_at", "failures", "retry_at", "polling")

    def __init__(self, i, port, source):
        self.i, self.port, self.source = i, port, source  # port: the replica of this node (i % R)
        self.id = self.token = None
        self.gen = self.initial_gen = None
        self.next_seq = 1
        self.outbox = []
        self.signal = asyncio.Event()
        self.acked = 0  # samples acknowledged (stored or duplicate: the server holds them)
        self.acked_highest = 0
        self.changed_at = None  # monotonic time the long-poll returned a new generation
        self.changed_wire_at = None  # monotonic time that answer reached the socket (Conn.data_arrived_ago)
        self.changed_asked_at = None  # monotonic time the poll that returned it was sent
        self.failures = 0
        self.retry_at = 0.0
        self.poll = self.push = None
        self.polling = False  # a long-poll sent and not answered yet


class Worker:
    def __init__(self, a):
        self.a = a
        self.ports = [int(p) for p in a.ports.split(",")]
        self.stopping = False
        self.stats = {"registered": 0, "register_errors": 0, "pushes": 0, "push_errors": 0, "poll_200": 0,
                      "poll_304": 0, "poll_errors": 0, "errors_by_kind": {}}
        self.push_lat = []  # (start monotonic, seconds, samples, replica)
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
        c = Conn(node.port, node.source)
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
        node.poll = Conn(node.port, node.source)
        failures = 0
        while not self.stopping:
            wait = random.randint(*LONG_POLL_WAIT)
            asked = time.monotonic()
            try:
                node.polling = True
                try:
                    st, body = await asyncio.wait_for(node.poll.request(
                        "GET", f"/api/v1/nodes/{node.id}/config?wait={wait}", node.token,
                        headers={"If-None-Match": f'"{node.gen}"', "Accept": "application/json"}), wait + 15)
                finally:
                    node.polling = False
                if st == 304:
                    self.stats["poll_304"] += 1
                elif st == 200:
                    self.stats["poll_200"] += 1
                    gen = json.loads(body)["generation"]
                    if gen != node.gen:
                        if node.changed_at is None and gen > node.initial_gen:
                            node.changed_at = time.monotonic()
                            ago = node.poll.data_arrived_ago()
                            if ago is not None:
                                node.changed_wire_at = node.changed_at - ago
                            node.changed_asked_at = asked
                        node.gen = gen
                        # The agent reports a new config at once (FleetAgent.handleConfig).
                        self.take_sample(node)
                else:
                    raise HTTPError(f"config {st} {body[:200]!r}", node.poll.retry_after)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 — counted, then the agent's backoff
                if self.stopping:
                    return
                self.stats["poll_errors"] += 1
                self.error("poll", e)
                node.poll.close()
                failures += 1
                await asyncio.sleep(heeding(backoff_wait(failures), e))

    async def push_loop(self, node):
        node.push = Conn(node.port, node.source)
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
                    node.push.request("POST", f"/api/v1/nodes/{node.id}/samples", node.token, body,
                                      {"KSMFleet-Timeout": "30"}), REQUEST_TIMEOUT)
                if st != 200:
                    raise HTTPError(f"samples {st} {resp[:200]!r}", node.push.retry_after)
                ack = json.loads(resp)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                self.stats["push_errors"] += 1
                self.error("push", e)
                node.push.close()
                node.failures += 1
                node.retry_at = time.monotonic() + heeding(backoff_wait(node.failures), e)
                continue
            self.push_lat.append((round(t0, 4), round(time.monotonic() - t0, 5), len(batch), node.i % len(self.ports)))
            self.stats["pushes"] += 1
            node.failures = 0
            node.retry_at = 0
            del node.outbox[:len(batch)]
            node.acked += len(batch)
            node.acked_highest = max(node.acked_highest, ack["highestSeq"])

    async def run(self):
        a = self.a
        sources = [f"127.0.0.{2 + k}" for k in range(a.addresses)]
        self.nodes = [Node(i, self.ports[i % len(self.ports)], sources[i % len(sources)])
                      for i in range(a.first, a.first + a.count)]
        deadline = time.monotonic() + a.max_seconds
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        stdin_buf = bytearray()

        def on_stdin():  # "stop" from the orchestrator, or its end (EOF); "count": long-polls in flight
            data = os.read(sys.stdin.fileno(), 4096)
            stdin_buf.extend(data)
            while b"\n" in stdin_buf:
                line, _, rest = bytes(stdin_buf).partition(b"\n")
                stdin_buf[:] = rest
                if line.strip() == b"count":
                    emit({"event": "polls", "held": sum(1 for n in self.nodes if n.polling)})
                elif line.strip() == b"stop":
                    data = b""
            if not data:
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
              "changed_at": [[n.i, n.changed_at, n.changed_wire_at, n.changed_asked_at] for n in self.nodes if n.id],
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


SCRAPES = []  # seconds each /metrics request of the run took (a scrape renders every node's series)


def metric_sum(servers, name):
    """The metric summed over every replica that answers; None when none does."""
    values = []
    for s in servers:
        t0 = time.monotonic()
        v = metric(s, name)
        SCRAPES.append(time.monotonic() - t0)
        if v is not None:
            values.append(v)
    return sum(values) if values else None


def simulator_polls(workers, timeout=20):
    """Long-polls the simulator's nodes have sent and not had answered (its own view of the
    waiters, for --no-metrics); None when a worker does not answer in time."""
    total = 0
    for w in workers:
        try:
            w.stdin.write("count\n")
            w.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
    answered = True
    for w in workers:
        while True:  # a worker past its --max-seconds may have sent its "done" line instead: kept
            r, _, _ = select.select([w.stdout], [], [], timeout)
            line = w.stdout.readline() if r else ""
            try:
                ev = json.loads(line)
            except ValueError:
                answered = False
                break
            if ev.get("event") == "polls":
                total += ev["held"]
                break
            w.extra_lines.append(line)
    return total if answered else None


def servers_stat(servers):
    """Over every server process: (CPU seconds, RSS MiB, VmHWM MiB summed; the most fds one holds)."""
    stats = [proc_stat(s.proc.pid) for s in servers]
    return (sum(x[0] for x in stats), sum(x[1] for x in stats), sum(x[2] for x in stats),
            max(x[3] for x in stats))


def log(msg):
    print(f"[fleet-sim {time.strftime('%H:%M:%S')}] {msg} (load {loadavg()})", file=sys.stderr, flush=True)


# --- PostgreSQL mode: a fresh database per run, R replicas on it, the PostgreSQL server measured


def psql(url, sql, timeout=300):
    """One statement through psql; the rows as lists of fields."""
    r = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"psql {sql[:60]!r}: {r.stderr.strip()[:300]}")
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def database_url(url, name):
    """`url` with its database replaced by `name`."""
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def find_postmaster(url):
    """The pid of the local postmaster serving the URL's port: a `postgres` process whose data
    directory (its working directory) holds a postmaster.pid naming that pid and that port."""
    port = str(urllib.parse.urlsplit(url).port or 5432)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            with open(os.path.join(os.readlink(f"/proc/{d}/cwd"), "postmaster.pid")) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        if len(lines) > 3 and lines[0].strip() == d and lines[3].strip() == port:
            return int(d)
    return None


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def tree_stat(pid):
    """The postmaster and its children: (CPU seconds, RSS MiB summed, PSS MiB summed, processes).
    The CPU includes children that have ended (the postmaster's cutime/cstime), so a difference
    of two readings is the tree's CPU in between. RSS counts shared_buffers once per process that
    touched them; PSS shares them out."""
    cpu = rss = pss = 0.0
    n = 0
    for p in [pid] + children(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            c = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
            r = q = 0.0
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        r = int(line.split()[1]) / 1024
                    elif line.startswith("Pss:"):
                        q = int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
        cpu, rss, pss, n = cpu + c, rss + r, pss + q, n + 1
    return cpu, rss, pss, n


# --- a memory guard: the machine is shared; a fleet too big for it is stopped, not swapped/OOM-killed


class Aborted(Exception):
    pass


class MemoryGuard:
    """Checks MemAvailable every second; below the floor it kills the simulator's workers (their
    memory and connections go) and marks the run aborted. Stopped with stop()."""

    def __init__(self, floor_mib):
        self.floor = floor_mib
        self.workers = []
        self.reason = None
        self.lowest = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def available_mib():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
        return float("inf")

    def _run(self):
        while not self._stop.wait(1.0):
            avail = self.available_mib()
            self.lowest = avail if self.lowest is None else min(self.lowest, avail)
            if avail < self.floor and self.reason is None:
                self.reason = f"MemAvailable {avail:.0f} MiB < {self.floor} MiB (--min-mem-available-mib)"
                log(f"ABORTING the run: {self.reason}; killing the simulator's workers")
                for w in list(self.workers):
                    if w.poll() is None:
                        w.kill()

    def check(self):
        if self.reason:
            raise Aborted(self.reason)

    def nap(self, seconds):
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def server_log_errors(tmp, servers):
    """Lines at level error or critical in the servers' logs: a count per replica, and the first
    few; warnings the same way (e.g. a fleet apply whose notices came back late)."""
    counts, first, warnings, first_warnings = [], [], [], []
    for s in servers:
        n = w = 0
        try:
            with open(s.log.name, errors="replace") as f:
                for line in f:
                    head = line[:48]  # "<timestamp> <level> <label>: …"
                    if " error " in head or " critical " in head:
                        n += 1
                        if len(first) < 5:
                            first.append(line.strip()[:300])
                    elif " warning " in head:
                        w += 1
                        if len(first_warnings) < 5:
                            first_warnings.append(line.strip()[:400])
        except OSError:
            pass
        counts.append(n)
        warnings.append(w)
    return {"per_replica": counts, "first": first, "warnings_per_replica": warnings, "first_warnings": first_warnings}


def run_fleet(a, nodes):
    """One fleet of `nodes` against a fresh server (or fresh database and --replicas servers on
    PostgreSQL); returns the result dict."""
    tmp = tempfile.mkdtemp(prefix="ksmfleet-fleet-")
    replicas = a.replicas if a.postgres else 1
    result = {"nodes": nodes, "interval_s": a.interval, "load_start": loadavg(),
              "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
              "database": "postgres" if a.postgres else "sqlite", "replicas": replicas,
              "mem_available_mib_start": round(MemoryGuard.available_mib())}
    dbname = run_url = None
    servers, workers, outs = [], [], []
    guard = MemoryGuard(a.min_mem_available_mib)
    try:
        if a.postgres:
            dbname = f"ksmfleet_sim_{nodes}_{os.getpid()}_{int(time.time())}"
            psql(a.postgres, f"CREATE DATABASE {dbname}")
            run_url = database_url(a.postgres, dbname)
            result["postgres_database"] = dbname
            result["postgres_fsync"] = psql(run_url, "SHOW fsync")[0][0]
            result["postgres_synchronous_commit"] = psql(run_url, "SHOW synchronous_commit")[0][0]
            token = "ka_bench_" + os.urandom(16).hex()
            t_up = time.monotonic()
            # Replica 0 first (it migrates the fresh database), then the others.
            for r in range(replicas):
                d = os.path.join(tmp, f"replica-{r}")
                os.makedirs(d)
                servers.append(Server(a.server, d, a.server_args.split() + ["--database", run_url], token=token))
            result["replicas_start_s"] = round(time.monotonic() - t_up, 1)
            log(f"{replicas} replicas on database {dbname} up in {result['replicas_start_s']} s "
                f"(ports {', '.join(str(s.port) for s in servers)}; fsync={result['postgres_fsync']})")
        else:
            servers.append(Server(a.server, tmp, a.server_args.split()))
        server = servers[0]
        st, body = admin_request(server, "POST", "/api/v1/enrollment-tokens", {"description": "fleet-sim"})
        assert st == 201, body
        enroll = json.loads(body)["token"]
        per_proc = max(1, a.conns_per_proc // 2)  # two connections per node
        nprocs = (nodes + per_proc - 1) // per_proc
        result["sim_processes"] = nprocs
        base, extra = divmod(nodes, nprocs)
        first = 0
        ports = ",".join(str(s.port) for s in servers)
        for w in range(nprocs):
            count = base + (1 if w < extra else 0)
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--ports", ports,
                   "--enroll", enroll, "--first", str(first), "--count", str(count), "--interval", str(a.interval),
                   "--addresses", str(a.addresses), "--register-concurrency", str(a.register_concurrency),
                   "--max-seconds", str(a.max_seconds)]
            # Each worker's nodes get their own source addresses (127.0.0.2 + offset ...).
            workers.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            workers[-1].extra_lines = []  # lines read while asking for the long-polls held
            guard.workers.append(workers[-1])
            first += count
        t_start = time.monotonic()
        registered = reg_errors = 0
        for w in workers:
            line = w.stdout.readline()  # bounded by the worker's own --max-seconds
            ev = json.loads(line) if line else {}
            registered += ev.get("count", 0)
            reg_errors += ev.get("errors", 0)
        guard.check()
        result["registered"] = registered
        result["register_errors"] = reg_errors
        result["register_seconds"] = round(time.monotonic() - t_start, 1)
        log(f"{registered} of {nodes} registered in {result['register_seconds']} s")
        # Every node holds its long-poll (on whichever replica it was given).
        SCRAPES.clear()
        waiting, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            if a.no_metrics:
                waiting = int(simulator_polls(workers) or 0)
            else:
                waiting = int(metric_sum(servers, "ksmfleet_config_waiters") or 0)
            if waiting >= registered:
                break
            guard.nap(1)
        result["waiters_before_change"] = waiting
        t_ready = time.monotonic()
        # Steady window: samples every interval, long-polls held and renewed.
        guard.nap(a.settle)
        t_steady = time.monotonic()
        cpu0, rss0, _, fds0 = servers_stat(servers)
        sim0 = sum(proc_stat(w.pid)[0] for w in workers)
        pg0 = tree_stat(a.postgres_pid) if a.postgres else None
        load_steady_start = loadavg()
        guard.nap(a.steady)
        cpu1, rss1, hwm1, fds1 = servers_stat(servers)
        sim = [proc_stat(w.pid) for w in workers]
        sim1 = sum(x[0] for x in sim)
        pg1 = tree_stat(a.postgres_pid) if a.postgres else None
        t_steady_end = time.monotonic()
        result["load_steady"] = f"{load_steady_start} -> {loadavg()}"
        steady_s = t_steady_end - t_steady
        result["steady_window_s"] = round(steady_s, 1)
        result["server_cpu_s_steady"] = round(cpu1 - cpu0, 2)
        result["server_cpu_pct_steady"] = round((cpu1 - cpu0) / steady_s * 100, 2)
        result["server_rss_mib"] = round(rss1, 1)
        result["sim_cpu_s_steady"] = round(sim1 - sim0, 2)
        result["sim_cpu_pct_steady"] = round((sim1 - sim0) / steady_s * 100, 2)
        result["sim_rss_mib"] = round(sum(x[1] for x in sim), 1)
        result["server_fds"] = fds1  # the most one server process holds (the limit is per process)
        msg = f"steady {steady_s:.0f} s: server CPU {cpu1 - cpu0:.2f} s, RSS {rss1:.0f} MiB, {fds1} fds"
        if pg0:
            result["pg_cpu_s_steady"] = round(pg1[0] - pg0[0], 2)
            result["pg_cpu_pct_steady"] = round((pg1[0] - pg0[0]) / steady_s * 100, 2)
            result["pg_rss_mib"] = round(pg1[1], 1)
            result["pg_pss_mib"] = round(pg1[2], 1)
            result["pg_processes"] = pg1[3]
            msg += (f"; PostgreSQL CPU {pg1[0] - pg0[0]:.2f} s, RSS {pg1[1]:.0f} MiB (PSS {pg1[2]:.0f}),"
                    f" {pg1[3]} processes")
        log(msg + f"; simulator CPU {sim1 - sim0:.2f} s")
        # The fleet-wide change (through replica 0 only: the others hear of it by LISTEN/NOTIFY).
        if a.no_metrics:
            waiting = int(simulator_polls(workers) or 0)
        else:
            waiting = int(metric_sum(servers, "ksmfleet_config_waiters") or 0)
        result["waiters_at_change"] = waiting
        cpu_c0 = servers_stat(servers)[0]
        sim_c0 = sum(proc_stat(w.pid)[0] for w in workers)
        pg_c0 = tree_stat(a.postgres_pid)[0] if a.postgres else None
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
        guard.nap(a.after)
        result["server_cpu_s_change"] = round(servers_stat(servers)[0] - cpu_c0, 2)
        result["sim_cpu_s_change"] = round(sum(proc_stat(w.pid)[0] for w in workers) - sim_c0, 2)
        if a.postgres:
            result["pg_cpu_s_change"] = round(tree_stat(a.postgres_pid)[0] - pg_c0, 2)
        cpu_end, rss_end, hwm_end, _ = servers_stat(servers)
        result["server_rss_mib_peak"] = round(hwm_end, 1)
        # Stop the workers: each pushes what it holds, then reports.
        t_stop = time.monotonic()
        for w in workers:
            try:
                w.stdin.write("stop\n")
                w.stdin.flush()
            except BrokenPipeError:
                pass
        for w in workers:
            out, _ = w.communicate(timeout=REQUEST_TIMEOUT + 60)
            for line in w.extra_lines + out.splitlines():
                ev = json.loads(line)
                if ev.get("event") == "done":
                    outs.append(ev)
        guard.check()
        result["run_seconds"] = round(time.monotonic() - t_start, 1)
        stored_metric = None if a.no_metrics else metric_sum(servers, "ksmfleet_samples_stored_total")
        result["waiters_from"] = "simulator" if a.no_metrics else "metrics"
        if SCRAPES:
            result["metrics_scrapes"] = len(SCRAPES)
            result["metrics_scrape_s_max"] = round(max(SCRAPES), 2)
        result["load_end"] = loadavg()
    except Aborted as e:
        result["aborted"] = str(e)
    finally:
        guard.stop()
        result["mem_available_mib_lowest"] = None if guard.lowest is None else round(guard.lowest)
        for w in workers:
            if w.poll() is None:
                w.kill()
        for s in servers:  # every replica at once, then wait for each
            if s.proc.poll() is None:
                s.proc.terminate()
        for s in servers:
            s.stop()
        if servers:
            result["server_log_errors"] = server_log_errors(tmp, servers)
        try:
            stored = {}
            if run_url and "aborted" not in result:
                # Counted in the database the replicas shared, after all of them stopped.
                for node_id, count, highest in psql(run_url, "SELECT node_id, COUNT(*), MAX(seq) FROM samples GROUP BY node_id"):
                    stored[node_id] = (int(count), int(highest))
                result["db"] = dbname
                result["db_size_mib"] = round(int(psql(run_url, f"SELECT pg_database_size('{dbname}')")[0][0]) / 2**20, 1)
            elif not run_url:
                dbs = [p for p in glob.glob(os.path.join(tmp, "db", "*")) if p.endswith((".sqlite", ".db", ".sqlite3"))]
                if dbs:
                    db = sqlite3.connect(dbs[0])
                    for node_id, count, highest in db.execute("SELECT node_id, COUNT(*), MAX(seq) FROM samples GROUP BY node_id"):
                        stored[node_id] = (count, highest)
                    db.close()
                result["db"] = os.path.basename(dbs[0]) if dbs else None
        finally:
            if dbname and not a.keep_database:
                try:
                    psql(a.postgres, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    log(f"could not drop database {dbname}: {e}")
            shutil.rmtree(tmp, ignore_errors=True)
    if "aborted" in result:
        result["pass"] = False
        result["targets"] = {}
        return result
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
    lat = [(t, s) for o in outs for t, s, *_ in o["push_lat"]]
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
    if a.dump_latencies:  # seconds since every node held its long-poll, push latency in seconds, replica
        with open(a.dump_latencies, "w") as f:
            f.write(f"# steady {t_steady - t_ready:.3f}..{t_steady_end - t_ready:.3f} apply {t_apply - t_ready:.3f}\n")
            for t, s, r in sorted((t, s, r) for o in outs for t, s, _, r in o["push_lat"]):
                f.write(f"{t - t_ready:.4f} {s:.5f} {r}\n")
    result["push_ms_steady"] = ms([s for t, s in lat if t_steady <= t < t_steady_end])
    if replicas > 1:  # the steady window per replica (one of them runs the rollups)
        result["push_ms_steady_by_replica"] = [
            ms([s for o in outs for t, s, _, r in o["push_lat"] if r == k and t_steady <= t < t_steady_end])
            for k in range(replicas)]
    result["push_ms_after_change"] = ms([s for t, s in lat if t_apply <= t < t_apply + 10])
    # Config change: per node, from the admin sending the request to its long-poll returning it.
    spread = lambda xs: None if not xs else {
        "p50": round(pct(xs, .5), 3), "p99": round(pct(xs, .99), 3), "max": round(max(xs), 3)}
    changed = [(i, c - t_apply) for o in outs for i, c, _, _ in o["changed_at"] if c is not None]
    # The same, to the moment the answer reached the node's socket (the kernel's receive time): a
    # real agent, alone on its machine, reads it then; a simulator process reads it when its one
    # event loop, busy with thousands of nodes after the change, gets to it.
    wire = {i: w - t_apply for o in outs for i, c, w, _ in o["changed_at"] if c is not None and w is not None}
    # Nodes whose long-poll was not held when the change committed: the one that returned it was
    # sent after the apply had answered (so after its commit; their last poll had ended, and the
    # worker asked again only later). Their agents were between two polls, not waiting for the
    # server.
    asked_late = {i for o in outs for i, c, _, s in o["changed_at"] if c is not None and s is not None and s > t_reply}
    result["change_received"] = len(changed)
    if a.dump_changes:  # per node: seconds from the admin's request to its long-poll returning the change
        with open(a.dump_changes, "w") as f:  # (read by the simulator; reached the socket), replica
            f.write(f"# apply request {result.get('apply_request_s')} s\n")
            for i, c in sorted(changed, key=lambda x: x[1]):
                w = wire.get(i)
                f.write(f"{c:.4f} {'-' if w is None else f'{w:.4f}'} {i % replicas}{' asked-after' if i in asked_late else ''}\n")
    result["change_within_2s"] = sum(1 for _, c in changed if c <= 2.0)
    result["change_s"] = spread([c for _, c in changed])
    result["change_at_socket_within_2s"] = sum(1 for w in wire.values() if w <= 2.0)
    result["change_at_socket_s"] = spread(list(wire.values()))
    result["change_polls_sent_after_the_change"] = len(asked_late)
    result["change_at_socket_missing"] = len(changed) - len(wire)  # answers whose arrival could not be read
    if replicas > 1:
        # Nodes of replica 0 (woken by the replica that made the change) and of the others
        # (woken through LISTEN/NOTIFY).
        result["change_s_replica0"] = spread([c for i, c in changed if i % replicas == 0])
        result["change_s_other_replicas"] = spread([c for i, c in changed if i % replicas != 0])
        result["change_at_socket_s_replica0"] = spread([w for i, w in wire.items() if i % replicas == 0])
        result["change_at_socket_s_other_replicas"] = spread([w for i, w in wire.items() if i % replicas != 0])
    per10k = 10000 / nodes
    result["server_cpu_pct_per_10k"] = round(result["server_cpu_pct_steady"] * per10k, 2)
    result["server_cpu_s_per_min_per_10k"] = round(result["server_cpu_s_steady"] / steady_s * 60 * per10k, 2)
    result["server_rss_mib_per_10k"] = round(result["server_rss_mib"] * per10k, 1)
    result["sim_cpu_pct_per_10k"] = round(result["sim_cpu_pct_steady"] * per10k, 2)
    if a.postgres:
        result["pg_cpu_pct_per_10k"] = round(result["pg_cpu_pct_steady"] * per10k, 2)
        result["pg_rss_mib_per_10k"] = round(result["pg_rss_mib"] * per10k, 1)
        result["pg_pss_mib_per_10k"] = round(result["pg_pss_mib"] * per10k, 1)
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
    return result


def table(results):
    pg = any(r.get("database") == "postgres" for r in results)
    cols = ["nodes", "procs", "pushes", "errors", "lost", "acked", "push ms (run) p50/p99/max", "steady p99", "burst p99",
            "change s p50/p99/max", "≤2 s", "≤2 s at socket", "CPU %", "CPU %/10k", "CPU s/min/10k", "RSS MiB", "RSS/10k", "fds",
            "load", "pass"]
    if pg:  # PostgreSQL mode: the replicas, and the PostgreSQL server and the simulator measured too
        cols[1:1] = ["replicas"]
        cols[-2:-2] = ["PG CPU %", "PG CPU %/10k", "PG RSS/PSS MiB", "PG PSS/10k", "sim CPU %"]
    rows = []
    for r in results:
        if "aborted" in r:
            rows.append([r["nodes"]] + ([r["replicas"]] if pg else []) + ["-"] * (len(cols) - 2 - pg)
                        + ["NO: aborted: " + r["aborted"]])
            continue
        p, ps, c = r.get("push_ms_run") or {}, r.get("push_ms_steady") or {}, r.get("change_s") or {}
        pb = r.get("push_ms_after_change") or {}
        row = [r["nodes"], r.get("sim_processes"), r["pushes"], r["errors"], r["lost"], r["samples_acked"],
               f"{p.get('p50')}/{p.get('p99')}/{p.get('max')}", ps.get("p99"), pb.get("p99"),
               f"{c.get('p50')}/{c.get('p99')}/{c.get('max')}", f"{r['change_within_2s']}/{r['nodes']}",
               f"{r.get('change_at_socket_within_2s')}/{r['nodes']}", r["server_cpu_pct_steady"], r["server_cpu_pct_per_10k"], r["server_cpu_s_per_min_per_10k"],
               r["server_rss_mib"], r["server_rss_mib_per_10k"], r["server_fds"], r["load_steady"],
               "yes" if r["pass"] else "NO: " + ", ".join(k for k, v in r["targets"].items() if not v)]
        if pg:
            row[1:1] = [r.get("replicas")]
            row[-2:-2] = [r.get("pg_cpu_pct_steady"), r.get("pg_cpu_pct_per_10k"),
                          f"{r.get('pg_rss_mib')}/{r.get('pg_pss_mib')}", r.get("pg_pss_mib_per_10k"),
                          r.get("sim_cpu_pct_steady")]
        rows.append(row)
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
    ap.add_argument("--dump-changes", help="write, per node, the seconds until the fleet-wide change reached it, and its replica")
    ap.add_argument("--postgres", metavar="URL",
                    help="a PostgreSQL server (postgres://user@127.0.0.1:PORT/postgres): each run gets a fresh database "
                         "on it (dropped after) and --replicas servers on that database instead of one on SQLite")
    ap.add_argument("--replicas", type=int, default=1,
                    help="--postgres: server processes on the run's database; node i registers, polls and pushes "
                         "on replica i %% R; the fleet-wide change goes through replica 0 (default 1)")
    ap.add_argument("--postgres-pid", type=int,
                    help="--postgres: the postmaster's pid, whose process tree is measured (default: found from "
                         "the URL's port, as the postgres process whose data directory's postmaster.pid names it)")
    ap.add_argument("--keep-database", action="store_true", help="--postgres: do not drop the run's database")
    ap.add_argument("--no-metrics", action="store_true",
                    help="do not scrape /metrics: count the long-polls held from the simulator's side (sent, not yet "
                         "answered). A scrape renders every node's series, and its first one at a large fleet keeps a "
                         "server busy for minutes (docs/benchmarks.md)")
    ap.add_argument("--min-mem-available-mib", type=int, default=1536,
                    help="abort a run (kill the simulator's workers) when MemAvailable falls below this (default 1536)")
    ap.add_argument("--json", help="append every result as a JSON line to this file")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ports", help=argparse.SUPPRESS)  # the replicas' ports: node i uses the (i % R)th
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
    if a.replicas < 1:
        ap.error("--replicas must be at least 1")
    if a.replicas > 1 and not a.postgres:
        ap.error("--replicas needs --postgres (replicas share one PostgreSQL database; SQLite is one server)")
    if a.postgres:
        # Each replica holds two connections per node of its own, plus its database connections and
        # files: past ~(limit − 2,000) / 2 nodes (9,000 at 20,000 files) it runs out of descriptors
        # mid-run (docs/benchmarks.md, "The cap"). Refuse before starting instead.
        per_replica = max(1, (hard - 2000) // 2)
        for n in sizes:
            need = math.ceil(n / per_replica)
            if a.replicas < need:
                ap.error(f"--replicas {a.replicas} is too few for {n} nodes: a replica holds 2 connections per node and "
                         f"may open at most {hard} files here, so at most {per_replica} nodes each; "
                         f"use --replicas {need} or more")
        if not shutil.which("psql"):
            ap.error("--postgres needs psql (apt-get install postgresql-client)")
        if urllib.parse.urlsplit(a.postgres).hostname not in ("127.0.0.1", "localhost", "::1"):
            ap.error("--postgres: loopback only (127.0.0.1)")
        try:
            max_conns = int(psql(a.postgres, "SHOW max_connections")[0][0])
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            ap.error(f"--postgres: cannot reach it: {e}")
        # A replica opens up to 8 reader connections, 1 writer, 1 for background writes, 1 listener and 1 for the background lock.
        if a.replicas * 12 + 5 > max_conns:
            ap.error(f"--replicas {a.replicas} may open {a.replicas * 12} PostgreSQL connections; "
                     f"the server allows {max_conns} (max_connections)")
        if a.postgres_pid is None:
            a.postgres_pid = find_postmaster(a.postgres)
            if a.postgres_pid is None:
                ap.error("--postgres: no local postmaster found for that port; give --postgres-pid")
        print(f"PostgreSQL: postmaster pid {a.postgres_pid}, max_connections {max_conns}; "
              f"{a.replicas} replica(s)", file=sys.stderr)
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
        if a.find_max and not (r["targets"].get("0 errors") and r["targets"].get("0 lost")):
            break
    print(table(results), flush=True)
    if a.find_max:
        for target in next((r["targets"] for r in results if r["targets"]), {}):
            met = [r["nodes"] for r in results if r["targets"].get(target)]
            print(f"  {target}: met up to {max(met) if met else 'none'} of the sizes tried "
                  f"({', '.join(str(r['nodes']) + ('' if r['targets'].get(target) else ' no') for r in results)})")
        ok = [r["nodes"] for r in results if r["pass"]]
        print(f"largest fleet meeting every target: {f'{max(ok)} nodes' if ok else 'none of the sizes tried'} "
              f"(first failure: {next((r['nodes'] for r in results if not r['pass']), 'none within the steps')})")


if __name__ == "__main__":
    main()
