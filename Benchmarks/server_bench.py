#!/usr/bin/env python3
"""ksmfleet-server benchmarks (not tests): sample ingest rate and long-poll capacity.

Starts the given ksmfleet-server binary on a free loopback port with a temp data dir and
drives it with plain HTTP/1.1 keep-alive connections from asyncio (no third-party modules):

  ingest    N agents push sample batches (seq-numbered, as the agent sends them) over C
            connections; reports samples/s stored (acknowledged after commit) and the server's
            CPU time per sample and per request. The load comes from wrk with a Lua script
            (--driver wrk, the default when wrk is installed) or from asyncio (--driver python).
  push      the issue's yardstick for an agent's normal push: in one run, with the same wrk
            (-t2, --connections), nginx (Debian's, one worker) answering `return 204` on loopback,
            the server's GET /healthz, and single-sample pushes from 100 nodes, each with its own
            token; prints each rate, pushes/s as a fraction of nginx's, and server CPU µs per push.
  scrape    N nodes with a sample each; the full /metrics against /metrics?fleet=false (a
            replica's own series), and GET /api/v1/nodes, in turn: wall and server CPU ms per
            request, bytes.
  pages     N nodes with a sample each, just registered (a young fleet: every node's hour under
            way pending, every node registered within the reports' periods); what an operator
            opens, in turn: the dashboard's overview, nodes table, node, reports and audit pages,
            GET /api/v1/nodes, savings reports (by node over 24 h and 30 d, by day over 30 d) and
            one node's history: wall and server CPU ms per request, bytes.
  register  N new nodes registered, 32 at a time, in blocks (--register-nodes, --register-block):
            registrations a second and server CPU µs each per block, to see whether a
            registration's cost grows with the fleet already registered.
  longpoll  W agents, each with its own node and token, wait on GET /config with
            If-None-Match and wait=60; one fleet-wide change (POST /config/apply all=true)
            must wake them all; reports how many woke and the wake-up latency.

  python3 Benchmarks/server_bench.py --server .build/release/ksmfleet-server [--waiters 10000]
"""
import argparse, asyncio, json, os, re, resource, shutil, socket, statistics, subprocess, sys, tempfile, time


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method, path, token=None, body=None, headers=None):
        if self.writer is None:
            await self.open()
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(data)}"]
        if data:
            lines.append("Content-Type: application/json")
        if token:
            lines.append(f"Authorization: Bearer {token}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1])
        length = 0
        for h in header_lines:
            if h.lower().startswith("content-length:"):
                length = int(h.split(":", 1)[1])
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    def close(self):
        if self.writer is not None:
            self.writer.close()


def sample(seq, taken):
    return {
        "seq": seq, "takenAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(taken)),
        "status": {"run": 1, "pagesToScan": 100, "sleepMillisecs": 20, "pagesShared": 1000 + seq % 50,
                   "pagesSharing": 9000 + seq % 500, "pagesUnshared": 20000, "pagesVolatile": 300,
                   "fullScans": seq // 10},
        "memory": {"memTotalKB": 16_000_000, "memAvailableKB": 2_500_000, "memFreeKB": 1_000_000,
                   "buffersKB": 10_000, "cachedKB": 900_000, "anonPagesKB": 9_000_000},
        "pageSize": 4096, "ksmdCPUPercent": 3.5, "ksmdCPUSeconds": seq * 0.7, "phase": "Running",
        "phaseReason": "Running: MemAvailable 15 % is below the 20 % threshold", "appliedGeneration": 1,
    }


class Server:
    def __init__(self, binary, data_dir, extra_args=(), token=None):
        # Replicas on one database share one admin token (KSMFLEET_ADMIN_TOKEN).
        self.token = token or "ka_bench_" + os.urandom(16).hex()
        port_file = os.path.join(data_dir, "port")
        env = dict(os.environ, KSMFLEET_ADMIN_TOKEN=self.token)
        self.log = open(os.path.join(data_dir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", "0", "--data-dir", os.path.join(data_dir, "db"),
             "--port-file", port_file, "--log-level", "warning",
             # Every simulated node registers from 127.0.0.1: the per-address limit (30 a minute) is
             # for real fleets, where each machine has its own address. Later flags win (extra_args).
             "--registration-rate-limit", "0", *extra_args], env=env, stdout=self.log, stderr=self.log)
        for _ in range(300):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.1)
        self.port = int(open(port_file).read().strip())

    def cpu_seconds(self):
        """utime + stime of the server process so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def register_nodes(server, count, concurrency=32):
    admin = Conn(server.port)
    st, body = await admin.request("POST", "/api/v1/enrollment-tokens", server.token, {"description": "bench"})
    assert st == 201, body
    enroll = json.loads(body)["token"]
    admin.close()
    nodes = [None] * count
    queue = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker():
        c = Conn(server.port)
        while not queue.empty():
            i = queue.get_nowait()
            req = {"hostname": node_name(i), "machineId": f"bench-machine-{i:05d}", "kernel": "6.8",
                   "memTotalBytes": 17179869184, "numaNodes": 1, "ksmFeatures": ["run"], "agentVersion": "bench",
                   "pageSize": 4096}
            st, body = await c.request("POST", "/api/v1/register", enroll, req)
            assert st in (200, 201), body
            r = json.loads(body)
            nodes[i] = (r["nodeId"], r["nodeToken"], r["config"]["generation"])
        c.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return nodes


async def bench_register(server, count, block, concurrency=32):
    """Registers `count` new nodes, `block` at a time (each block `concurrency` at once over
    keep-alive connections); per block: registrations a second and the server's CPU µs each. A
    registration's cost should not grow with the nodes already registered."""
    admin = Conn(server.port)
    st, body = await admin.request("POST", "/api/v1/enrollment-tokens", server.token, {"description": "bench"})
    assert st == 201, body
    enroll = json.loads(body)["token"]
    admin.close()
    conns = [Conn(server.port) for _ in range(concurrency)]
    blocks = []
    for first in range(0, count, block):
        queue = asyncio.Queue()
        for i in range(first, min(first + block, count)):
            queue.put_nowait(i)

        async def worker(c):
            while not queue.empty():
                i = queue.get_nowait()
                req = {"hostname": f"reg-{i:06d}", "machineId": f"reg-machine-{i:06d}", "kernel": "6.8",
                       "memTotalBytes": 17179869184, "numaNodes": 1, "ksmFeatures": ["run"],
                       "agentVersion": "bench", "pageSize": 4096}
                st, body = await c.request("POST", "/api/v1/register", enroll, req)
                assert st == 201, body

        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        await asyncio.gather(*(worker(c) for c in conns))
        seconds, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
        n = min(first + block, count) - first
        blocks.append({"registered_before": first, "per_second": round(n / seconds), "server_cpu_us_each": round(cpu * 1e6 / n)})
        print(json.dumps({"block": blocks[-1]}), flush=True)
    for c in conns:
        c.close()
    return {"nodes": count, "block": block, "concurrency": concurrency, "blocks": blocks,
            "first_block_per_second": blocks[0]["per_second"], "last_block_per_second": blocks[-1]["per_second"]}


async def bench_ingest(server, agents, batch, connections, total):
    nodes = await register_nodes(server, agents)
    per_conn = max(1, total // connections)
    start_gate = asyncio.Event()
    stored = 0
    next_seq = {n[0]: 1 for n in nodes}

    async def worker(k):
        nonlocal stored
        c = Conn(server.port)
        await c.open()
        await start_gate.wait()
        sent = 0
        i = k
        while sent < per_conn:
            node_id, token, _ = nodes[i % len(nodes)]
            i += connections
            seq = next_seq[node_id]
            next_seq[node_id] = seq + batch
            now = time.time()
            body = json.dumps({"samples": [sample(s, now) for s in range(seq, seq + batch)]}).encode()
            st, resp = await c.request("POST", f"/api/v1/nodes/{node_id}/samples", token, body, {"KSMFleet-Timeout": "30"})
            assert st == 200, resp
            stored += json.loads(resp)["stored"]
            sent += batch
        c.close()

    tasks = [asyncio.create_task(worker(k)) for k in range(connections)]
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    start_gate.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return {"agents": agents, "batch": batch, "connections": connections, "stored": stored,
            "seconds": round(elapsed, 3), "samples_per_second": round(stored / elapsed)}


# wrk's per-thread Lua state builds each batch: thread `tid` owns the nodes i with i % threads == tid
# and cycles through them, so every node's seq numbers only grow and no sample is sent twice.
WRK_SCRIPT = r"""
local nodes = {%(nodes)s}
local threads, batch = %(threads)d, %(batch)d
local counter = 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
local mine, seqs, k = {}, {}, 0
-- takenAt advances 10 ms a seq from a minute ago, as close to the server's clock as an agent's:
-- whole seconds a seq ran 600 s ahead after 600 pushes a node, and the server refuses a sample
-- more than 10 min ahead (422), which a 10 s run at 6,000 pushes/s already reaches.
local base = os.time() - 60
local template = '{"seq":%%d,"takenAt":"%%s","status":{"run":1,"pagesToScan":100,"sleepMillisecs":20,' ..
  '"pagesShared":%%d,"pagesSharing":%%d,"pagesUnshared":20000,"pagesVolatile":300,"fullScans":%%d},' ..
  '"memory":{"memTotalKB":16000000,"memAvailableKB":2500000,"memFreeKB":1000000,"buffersKB":10000,' ..
  '"cachedKB":900000,"anonPagesKB":9000000},"pageSize":4096,"ksmdCPUPercent":3.5,"ksmdCPUSeconds":%%.1f,' ..
  '"phase":"Running","phaseReason":"Running: MemAvailable 15 %%%% is below the 20 %%%% threshold","appliedGeneration":1}'
function init(args)
  for i, n in ipairs(nodes) do
    if (i - 1) %% threads == tid then mine[#mine + 1] = n; seqs[n[1]] = 1 end
  end
end
function request()
  k = k %% #mine + 1
  local id, token = mine[k][1], mine[k][2]
  local first = seqs[id]
  seqs[id] = first + batch
  local parts = {}
  for s = first, first + batch - 1 do
    local at = os.date("!%%Y-%%m-%%dT%%H:%%M:%%S", base + math.floor(s / 100)) .. string.format(".%%02dZ", s %% 100)
    parts[#parts + 1] = string.format(template, s, at,
      1000 + s %% 50, 9000 + s %% 500, math.floor(s / 10), s * 0.7)
  end
  return wrk.format("POST", "/api/v1/nodes/" .. id .. "/samples",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json", ["KSMFleet-Timeout"] = "30"},
    '{"samples":[' .. table.concat(parts, ",") .. ']}')
end
"""


async def metric(server, name):
    c = Conn(server.port)
    st, body = await c.request("GET", "/metrics", server.token)
    c.close()
    assert st == 200, body
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NGINX_CONF = """
worker_processes 1;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:%(port)d;
        location / { return 204; }
    }
}
"""


def wrk_rate(url, connections, seconds, threads=2, script=None):
    """Runs wrk; returns (requests, seconds, stdout)."""
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    reqs = re.search(r"(\d+) requests in ([\d.]+)s", out.stdout)
    return int(reqs.group(1)), float(reqs.group(2)), out.stdout


def latency(text, pct):
    m = re.search(r"\s%d%%\s+(\S+)" % pct, text)
    return m.group(1) if m else None


def bench_nginx(connections, seconds, threads=2):
    """The machine's HTTP limit under this load generator: nginx (Debian's package, one worker)
    answering `return 204` on loopback, as the issue measures it."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        raise RuntimeError("nginx is not installed (Debian package nginx; make bench-server installs it)")
    tmp = tempfile.mkdtemp(prefix="ksmfleet-nginx-")
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"dir": tmp, "port": port})
    proc = subprocess.Popen([nginx, "-p", tmp, "-e", os.path.join(tmp, "error.log"), "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        n, elapsed, text = wrk_rate(f"http://127.0.0.1:{port}/", connections, seconds, threads)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"driver": "wrk", "path": "nginx return 204", "connections": connections, "requests": n,
            "requests_per_second": round(n / elapsed), "latency_p99": latency(text, 99),
            "load": os.getloadavg()}


async def bench_http_floor(server, connections, seconds, threads=2):
    """GET /healthz (no auth, no body, no database): what one request costs the HTTP stack alone."""
    cpu_before = server.cpu_seconds()
    n, elapsed, text = wrk_rate(f"http://127.0.0.1:{server.port}/healthz", connections, seconds, threads)
    cpu = server.cpu_seconds() - cpu_before
    return {"driver": "wrk", "path": "/healthz", "connections": connections, "requests": n,
            "requests_per_second": round(n / elapsed), "server_cpu_us_per_request": round(cpu * 1e6 / max(n, 1), 1),
            "latency_p99": latency(text, 99), "load": os.getloadavg()}


async def bench_ingest_wrk(server, agents, batch, connections, seconds, threads=2):
    """The same load as bench_ingest, generated by wrk (C, event loop per thread) instead of Python."""
    nodes = await register_nodes(server, agents)
    tmp = tempfile.mkdtemp(prefix="ksmfleet-wrk-")
    script = os.path.join(tmp, "ingest.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % {"nodes": ",".join('{"%s","%s"}' % (n[0], n[1]) for n in nodes),
                              "threads": threads, "batch": batch})
    before = await metric(server, "ksmfleet_samples_stored_total")
    cpu_before = server.cpu_seconds()
    try:
        n, elapsed, text = wrk_rate(f"http://127.0.0.1:{server.port}", connections, seconds, threads, script)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = server.cpu_seconds() - cpu_before
    stored = await metric(server, "ksmfleet_samples_stored_total") - before
    dups = await metric(server, "ksmfleet_samples_duplicate_total")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    if n > 0 and stored == 0:
        raise RuntimeError("wrk sent requests but nothing was stored (Lua script error?):\n" + text)
    return {"driver": "wrk", "agents": agents, "batch": batch, "connections": connections,
            "requests": n, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else None, "duplicates": int(dups),
            "stored": int(stored), "seconds": elapsed, "requests_per_second": round(n / elapsed),
            # A refused request (4xx) is cheap and acknowledges nothing: the rate that counts is
            # of 2xx answers.
            "acknowledged_per_second": round((n - (int(bad.group(1)) if bad else 0)) / elapsed),
            "samples_per_second": round(stored / elapsed),
            # Less noisy than the rate on a shared machine: the server's own CPU time per sample.
            "server_cpu_s": round(cpu, 2), "server_cpu_us_per_sample": round(cpu * 1e6 / max(stored, 1), 1),
            "server_cpu_us_per_request": round(cpu * 1e6 / max(n, 1), 1),
            "latency_p50": latency(text, 50), "latency_p99": latency(text, 99), "load": os.getloadavg()}


async def bench_longpoll(server, waiters):
    t_reg = time.perf_counter()
    nodes = await register_nodes(server, waiters, concurrency=64)
    reg_seconds = time.perf_counter() - t_reg
    conns = [Conn(server.port) for _ in nodes]
    # Open the connections in slices: a 10,000-socket burst overflows the listen backlog.
    for i in range(0, len(conns), 500):
        await asyncio.gather(*(c.open() for c in conns[i:i + 500]))
    woken_at = [None] * len(nodes)
    statuses = [None] * len(nodes)

    async def wait_one(i):
        node_id, token, gen = nodes[i]
        st, _ = await conns[i].request("GET", f"/api/v1/nodes/{node_id}/config?wait=60", token,
                                       headers={"If-None-Match": f'"{gen}"'})
        woken_at[i] = time.perf_counter()
        statuses[i] = st

    tasks = [asyncio.create_task(wait_one(i)) for i in range(len(nodes))]
    admin = Conn(server.port)
    deadline = time.time() + 120
    waiting = 0
    while time.time() < deadline:
        st, body = await admin.request("GET", "/metrics", server.token)
        for line in body.decode().splitlines():
            if line.startswith("ksmfleet_config_waiters "):
                waiting = int(float(line.split()[1]))
        if waiting >= len(nodes):
            break
        await asyncio.sleep(0.2)
    # One node's change while all wait: how fast its own agent hears of it.
    one_id, one_token, one_gen = nodes[0]
    t_one = time.perf_counter()
    st, body = await admin.request("PATCH", f"/api/v1/nodes/{one_id}/config", server.token, {"thresCoef": 25})
    assert st == 200, body
    await tasks[0]
    single_ms = (woken_at[0] - t_one) * 1000
    nodes[0] = (one_id, one_token, one_gen + 1)
    tasks[0] = asyncio.create_task(wait_one(0))
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    st, body = await admin.request("POST", "/api/v1/config/apply", server.token,
                                   {"all": True, "change": {"run": "run"}})
    t_applied = time.perf_counter()
    assert st == 200, body
    changed = sum(1 for r in json.loads(body)["results"] if r["status"] == "changed")
    done, pending = await asyncio.wait(tasks, timeout=70)
    for t in pending:
        t.cancel()
    lat = sorted((w - t0) * 1000 for w in woken_at if w is not None)
    for c in conns:
        c.close()
    admin.close()
    ok = sum(1 for s in statuses if s == 200)
    pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None
    return {"waiters": len(nodes), "single_change_wake_ms": round(single_ms, 1), "registered_in_s": round(reg_seconds, 1), "waiting_before_change": waiting,
            "apply_changed": changed, "apply_request_ms": round((t_applied - t0) * 1000, 1), "woken_200": ok,
            "woken_within_1s": sum(1 for x in lat if x <= 1000), "latency_ms_p50": pct(0.5),
            "latency_ms_p99": pct(0.99), "latency_ms_max": round(lat[-1], 1) if lat else None,
            # First wake-up to last: the notifications start right after the commit.
            "spread_first_to_last_ms": round(lat[-1] - lat[0], 1) if lat else None,
            "woken_within_1s_of_apply_reply": sum(1 for x in lat if x <= (t_applied - t0) * 1000 + 1000)}


async def nodes_with_a_sample(server, nodes_count):
    """N registered nodes, each with one sample just taken; [(id, token, generation)]."""
    nodes = await register_nodes(server, nodes_count, concurrency=64)
    queue = asyncio.Queue()
    for n in nodes:
        queue.put_nowait(n)

    async def pusher():
        c = Conn(server.port)
        while not queue.empty():
            node_id, token, gen = queue.get_nowait()
            s = sample(1, time.time())
            s["appliedGeneration"] = gen
            st, body = await c.request("POST", f"/api/v1/nodes/{node_id}/samples", token, {"samples": [s]})
            assert st == 200, body
        c.close()

    await asyncio.gather(*(pusher() for _ in range(32)))
    return nodes


async def timed_in_turn(server, paths, rounds, headers_of=lambda kind: {}):
    """Each of `paths` ({kind: path}) `rounds` times, in turn, with the admin token (or the
    headers `headers_of(kind)` gives): medians of wall ms and server CPU ms (in the kernel's
    10 ms ticks), and bytes."""
    conn = Conn(server.port)
    times = {kind: [] for kind in paths}
    sizes = {}
    for i in range(rounds * len(paths)):
        kind = list(paths)[i % len(paths)]
        headers = headers_of(kind)
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        st, body = await conn.request("GET", paths[kind], None if headers else server.token, headers=headers)
        wall, cpu = time.perf_counter() - t0, server.cpu_seconds() - cpu0
        assert st == 200, (paths[kind], st, body[:200])
        times[kind].append((wall, cpu))
        sizes[kind] = len(body)
    conn.close()
    out = {}
    for kind, rows in times.items():
        out[f"{kind}_wall_ms_median"] = round(statistics.median(w for w, _ in rows) * 1000, 1)
        out[f"{kind}_server_cpu_ms_median"] = round(statistics.median(c for _, c in rows) * 1000, 1)
        out[f"{kind}_bytes"] = sizes[kind]
    return out


async def bench_scrape(server, nodes_count, scrapes):
    """N nodes with one sample each; `scrapes` scrapes of the full /metrics, as many of
    /metrics?fleet=false (a replica's own series) and as many GET /api/v1/nodes, in turn: wall
    ms and server CPU ms each (CPU in the kernel's 10 ms ticks)."""
    await nodes_with_a_sample(server, nodes_count)
    # The same nodes' read serves the listing (`ksmfleet nodes`): timed beside the scrapes.
    paths = {"full": "/metrics", "own": "/metrics?fleet=false", "list": "/api/v1/nodes"}
    out = {"nodes": nodes_count, "scrapes_each": scrapes}
    out.update(await timed_in_turn(server, paths, scrapes))
    return out


async def dashboard_session(server):
    """A dashboard session cookie for the admin token (the login form, as a browser posts it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

    async def exchange(request):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length:")), 0)
        body = await reader.readexactly(length) if length else b""
        cookies = [h.split(":", 1)[1].strip().split(";")[0] for h in lines if h.lower().startswith("set-cookie:")]
        return body, cookies

    page, cookies = await exchange(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
    form = f"csrf={csrf}&token={server.token}&next=%2F".encode()
    _, session = await exchange(
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Cookie: {cookies[0]}\r\nContent-Length: {len(form)}\r\n\r\n".encode() + form)
    writer.close()
    return next(c for c in session if c.startswith("ksmfleet_session=") and not c.endswith("="))


async def bench_pages(server, nodes_count, rounds):
    """N nodes with one sample each; what an operator opens, `rounds` times each in turn."""
    nodes = await nodes_with_a_sample(server, nodes_count)
    session = await dashboard_session(server)
    node = nodes[0][0]
    paths = {"overview": "/", "nodes_page": "/nodes", "node_page": f"/nodes/{node}", "reports_page": "/reports",
             "audit_page": "/audit", "list": "/api/v1/nodes",
             # One page of the listing (what the CLI asks for), the first and one from the middle.
             "list_page_first": "/api/v1/nodes?limit=1000",
             "list_page_mid": f"/api/v1/nodes?limit=1000&after={node_name(nodes_count // 2)}",
             "by_node_24h": "/api/v1/reports/savings?by=node&since=-24h",
             "by_node_30d": "/api/v1/reports/savings?by=node&since=-30d",
             "by_day_30d": "/api/v1/reports/savings?by=day&since=-30d",
             "history": f"/api/v1/nodes/{node}/history?resolution=hour"}
    dashboard = {"overview", "nodes_page", "node_page", "reports_page", "audit_page"}
    out = {"nodes": nodes_count, "rounds": rounds}
    out.update(await timed_in_turn(server, paths, rounds, lambda kind: {"Cookie": session} if kind in dashboard else {}))
    out.update(await all_pages(server, 1000, rounds))
    return out


async def all_pages(server, limit, rounds):
    """The whole listing read page by page (`limit` nodes each, following `next`), as the CLI
    reads it, `rounds` times: medians of wall ms and server CPU ms for all the pages, the pages'
    largest answer and the nodes read."""
    conn = Conn(server.port)
    rows, largest, nodes = [], 0, 0
    for _ in range(rounds):
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        after, nodes, pages = None, 0, 0
        while True:
            path = f"/api/v1/nodes?limit={limit}" + (f"&after={after}" if after else "")
            st, body = await conn.request("GET", path, server.token)
            assert st == 200, (path, st, body[:200])
            page = json.loads(body)
            nodes, pages, largest = nodes + len(page["nodes"]), pages + 1, max(largest, len(body))
            after = page.get("next")
            if not after:
                break
        rows.append((time.perf_counter() - t0, server.cpu_seconds() - cpu0))
    conn.close()
    return {"list_all_pages_wall_ms_median": round(statistics.median(w for w, _ in rows) * 1000, 1),
            "list_all_pages_server_cpu_ms_median": round(statistics.median(c for _, c in rows) * 1000, 1),
            "list_all_pages_pages": pages, "list_all_pages_nodes": nodes, "list_all_pages_largest_bytes": largest}


# Node names: bench-00042 (zero-padded, the default: byte order is the dashboard's name order),
# or with --plain-names bench-42, as hosts are often named (byte order puts bench-10 before bench-9,
# which the nodes table's name order does not).
PLAIN_NAMES = False


def node_name(i):
    return f"bench-{i}" if PLAIN_NAMES else f"bench-{i:05d}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--only", choices=["ingest", "push", "longpoll", "scrape", "pages", "register"])
    ap.add_argument("--scrape-nodes", type=int, default=10000, help="nodes in --only scrape and --only pages")
    ap.add_argument("--plain-names", action="store_true",
                    help="nodes named bench-42 instead of bench-00042 (--only scrape and pages)")
    ap.add_argument("--scrapes", type=int, default=7,
                    help="requests of each kind in --only scrape and --only pages (at least 1)")
    ap.add_argument("--waiters", type=int, default=10000)
    ap.add_argument("--register-nodes", type=int, default=20000, help="nodes registered in --only register")
    ap.add_argument("--register-block", type=int, default=2000,
                    help="--only register: the rate and CPU are printed per this many registrations")
    ap.add_argument("--ingest-total", type=int, default=200_000)
    ap.add_argument("--driver", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python",
                    help="ingest load generator (default: wrk when installed)")
    ap.add_argument("--seconds", type=int, default=10, help="wrk run length per batch size")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--agents", type=int, default=100, help="nodes pushing in --only push (each its own token)")
    ap.add_argument("--batches", default="1,10,100,500,1000",
                    help="samples per push: 1 is an agent's normal push, 500 its spool replay, 1000 the limit")
    args = ap.parse_args()
    global PLAIN_NAMES
    PLAIN_NAMES = args.plain_names
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = []

    def run(name, coro_fn):
        tmp = tempfile.mkdtemp(prefix="ksmfleet-bench-")
        server = Server(args.server, tmp)
        try:
            r = asyncio.run(coro_fn(server))
            r["bench"] = name
            print(json.dumps(r), flush=True)
            results.append(r)
        finally:
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    if args.only == "push":
        # The yardstick, all with the same wrk in one run: nginx `return 204`, /healthz,
        # single-sample pushes; pushes/s as a fraction of nginx's.
        if args.driver != "wrk":
            raise SystemExit("--only push needs wrk (Debian package wrk)")
        floor = bench_nginx(args.connections, args.seconds)
        floor["bench"] = "nginx"
        print(json.dumps(floor), flush=True)
        results.append(floor)
        run("http floor", lambda s: bench_http_floor(s, connections=args.connections, seconds=args.seconds))
        run("ingest batch=1", lambda s: bench_ingest_wrk(s, agents=args.agents, batch=1,
                                                         connections=args.connections, seconds=args.seconds))
        push = results[-1]
        # Pushes are the acknowledged ones; a run with refusals is reported, never counted as met.
        acked = push["acknowledged_per_second"]
        summary = {"bench": "push vs nginx", "nginx_rps": floor["requests_per_second"],
                   "healthz_rps": results[-2]["requests_per_second"], "push_rps": acked,
                   "refused": push["non_2xx"],
                   "push_over_nginx": round(acked / floor["requests_per_second"], 3),
                   # The server's own floor: what a push costs beside a request with no auth, body
                   # or database on the same stack (the measure proposed in docs/benchmarks.md).
                   "push_over_healthz": round(acked / max(results[-2]["requests_per_second"], 1), 3),
                   # CPU per acknowledged push (refused ones cost CPU too, but acknowledge nothing).
                   "server_cpu_us_per_push": round(push["server_cpu_s"] * 1e6 / max(acked * push["seconds"], 1), 1),
                   "push_p99": push["latency_p99"],
                   "target_0_5x_met": push["non_2xx"] == 0 and acked >= 0.5 * floor["requests_per_second"]}
        print(json.dumps(summary), flush=True)
        results.append(summary)
        return results
    if args.only == "scrape":
        if args.scrapes < 1:
            raise SystemExit("--scrapes must be at least 1")
        run("scrape", lambda s: bench_scrape(s, args.scrape_nodes, args.scrapes))
        return results
    if args.only == "register":
        if args.register_nodes < 1 or args.register_block < 1:
            raise SystemExit("--register-nodes and --register-block must be at least 1")
        run("register", lambda s: bench_register(s, args.register_nodes, args.register_block))
        return results
    if args.only == "pages":
        if args.scrapes < 1:
            raise SystemExit("--scrapes must be at least 1")
        run("pages", lambda s: bench_pages(s, args.scrape_nodes, args.scrapes))
        return results
    if args.only in (None, "ingest") and args.driver == "wrk":
        run("http floor", lambda s: bench_http_floor(s, connections=args.connections, seconds=args.seconds))
    if args.only in (None, "ingest"):
        for batch in (int(b) for b in args.batches.split(",")):
            if args.driver == "wrk":
                run(f"ingest batch={batch}",
                    lambda s, b=batch: bench_ingest_wrk(s, agents=100, batch=b, connections=args.connections,
                                                        seconds=args.seconds))
            else:
                run(f"ingest batch={batch}",
                    lambda s, b=batch: bench_ingest(s, agents=100, batch=b, connections=args.connections,
                                                    total=min(args.ingest_total, 20_000 * b)))
    if args.only in (None, "longpoll"):
        run("longpoll", lambda s: bench_longpoll(s, args.waiters))
    return results


if __name__ == "__main__":
    main()
