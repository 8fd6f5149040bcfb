#!/usr/bin/env python3
"""Drives the ksmfleet dashboard in a real headless Chromium.

Starts the BUILT server on a free loopback port with a temporary data dir, seeds fake nodes with
two days of history through the API (register + push samples, as agents do), then logs in, loads
every page, checks the DOM for node names and figures, edits a config (and checks it through the
API), submits invalid values (and sees the field errors), kicks a throttle-mode node, downloads the
CSV, checks CSRF refusal and logout, and saves a screenshot of each page.

Bounded: every wait has a deadline, the whole run is limited by the caller's `timeout`.
Prints 'dashboard: N passed, N failed' and exits non-zero on any failure.
"""
import argparse
import http.cookiejar
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

GIB = 1 << 30
PAGE = 4096
ADMIN = "ka_dashboardtest" + "0" * 48

results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f"  -- {detail}"), flush=True)
    return ok


def api(base, method, path, body=None, token=ADMIN, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and r.headers.get("Content-Type", "").startswith("application/json") else raw)
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def sample(seq, t, saved, cpu_s, cpu_pct, scans, phase, reason, gen):
    return {
        "seq": seq, "takenAt": iso(t),
        "status": {"run": 1 if phase == "Running" else 0, "pagesToScan": 100, "sleepMillisecs": 20,
                   "pagesShared": saved // PAGE // 4, "pagesSharing": saved // PAGE, "pagesUnshared": 5000,
                   "pagesVolatile": 100, "fullScans": scans, "stableNodeChains": 3, "stableNodeDups": 12},
        "memory": {"memTotalKB": 64 * 1024 * 1024, "memAvailableKB": 8 * 1024 * 1024, "memFreeKB": 4 * 1024 * 1024,
                   "buffersKB": 0, "cachedKB": 0, "anonPagesKB": 40 * 1024 * 1024},
        "pageSize": PAGE, "ksmdCPUPercent": cpu_pct, "ksmdCPUSeconds": cpu_s, "phase": phase, "phaseReason": reason,
        "appliedGeneration": gen,
    }


def seed(base):
    st, tok = api(base, "POST", "/api/v1/enrollment-tokens", {"description": "dashboard test"})
    assert st in (200, 201), (st, tok)
    enroll = tok["token"]
    now = int(time.time())
    start = now - 48 * 3600
    # name, labels, saved bytes, ksmd CPU % , phase, silent window (a gap), counter reset time
    fleet = [
        ("alpha", {"rack": "r1"}, 2 * GIB, 12.0, "Running", None, None),
        ("bravo", {"rack": "r1"}, 1 * GIB, 4.0, "Running", None, now - 20 * 3600),
        ("charlie", {"rack": "r2"}, 3 * GIB, 25.0, "Running", None, None),
        ("delta", {}, GIB // 2, 1.0, "Stopped", (now - 30 * 3600, now - 6 * 3600), None),
    ]
    ids = {}
    for name, labels, saved, pct, phase, silent, reset in fleet:
        st, reg = api(base, "POST", "/api/v1/register", {
            "hostname": name, "machineId": "machine-" + name, "kernel": "6.8.0-test", "memTotalBytes": 64 * GIB,
            "numaNodes": 1, "ksmFeatures": ["run", "pages_to_scan"], "agentVersion": "test", "pageSize": PAGE,
        }, token=enroll)
        assert st in (200, 201), (st, reg)
        nid, ntok, gen = reg["nodeId"], reg["nodeToken"], reg["config"]["generation"]
        ids[name] = nid
        if labels:
            st, _ = api(base, "PUT", f"/api/v1/nodes/{nid}/labels", {"labels": labels})
            assert st == 200, st
        reason = ("Running: MemAvailable 12 % is below the 20 % threshold" if phase == "Running"
                  else "Stopped: run is stop (KSM is off by default)")
        samples, cpu, seq, t = [], 1000.0, 0, start
        while t <= now:
            if silent and silent[0] <= t < silent[1]:
                t += 300
                continue
            if reset and reset <= t < reset + 300:
                cpu = 3.0  # host reboot: the counter restarts
            cpu += pct / 100 * 300
            seq += 1
            samples.append(sample(seq, t, saved, round(cpu, 3), pct, seq, phase, reason, gen))
            t += 300
        for i in range(0, len(samples), 500):
            st, ack = api(base, "POST", f"/api/v1/nodes/{nid}/samples", {"samples": samples[i:i + 500]}, token=ntok)
            assert st == 200, (st, ack)
        if name == "delta":
            # Its clock jumped an hour ahead: the next batch is refused (422), and the node's page
            # says why its data stops.
            ahead = sample(seq + 1, now + 3600, saved, round(cpu, 3), pct, seq + 1, phase, reason, gen)
            st, _ = api(base, "POST", f"/api/v1/nodes/{nid}/samples", {"samples": [ahead]}, token=ntok)
            assert st == 422, st
    # echo: an agent that stopped cleanly two minutes ago (its last sample is a goodbye).
    # foxtrot: registered ten minutes ago; its saving ramps from 0 to 768 MiB, a sample every 10 s.
    for name in ["echo", "foxtrot"]:
        st, reg = api(base, "POST", "/api/v1/register", {
            "hostname": name, "machineId": "machine-" + name, "kernel": "6.8.0-test", "memTotalBytes": 64 * GIB,
            "numaNodes": 1, "ksmFeatures": ["run"], "agentVersion": "test", "pageSize": PAGE,
        }, token=enroll)
        assert st in (200, 201), (st, reg)
        ids[name] = reg["nodeId"]
        samples = []
        if name == "echo":
            for i in range(30):
                samples.append(sample(i + 1, now - 420 + i * 10, GIB // 4, 10.0 + i, 1.0, i, "Running",
                                      "Running: MemAvailable 12 % is below the 20 % threshold", reg["config"]["generation"]))
            bye = sample(31, now - 120, GIB // 4, 41.0, 1.0, 30, "Running",
                         "agent stopped: left KSM running (run=1), 65536 pages still merged", reg["config"]["generation"])
            bye["agentStopped"] = True
            samples.append(bye)
        else:
            for i in range(60):
                saved = min(3 * GIB // 4, 3 * GIB * i // 120) // PAGE * PAGE
                samples.append(sample(i + 1, now - 600 + i * 10, saved, 5.0 + i, 50.0, i, "Running",
                                      "Running: MemAvailable 12 % is below the 20 % threshold", reg["config"]["generation"]))
        st, ack = api(base, "POST", f"/api/v1/nodes/{reg['nodeId']}/samples", {"samples": samples},
                      token=reg["nodeToken"])
        assert st == 200, (st, ack)
    # golf: registered, no sample yet (its agent died before the first push, or is just starting).
    st, reg = api(base, "POST", "/api/v1/register", {
        "hostname": "golf", "machineId": "machine-golf", "kernel": "6.8.0-test", "memTotalBytes": 64 * GIB,
        "numaNodes": 1, "ksmFeatures": ["run"], "agentVersion": "test", "pageSize": PAGE,
    }, token=enroll)
    assert st in (200, 201), (st, reg)
    ids["golf"] = reg["nodeId"]
    # charlie runs in throttle mode (kick button).
    st, _ = api(base, "PATCH", f"/api/v1/nodes/{ids['charlie']}/config", {"mode": "throttle", "run": "run"})
    assert st == 200, st
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--screenshots", required=True)
    args = ap.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    data = tempfile.mkdtemp(prefix="ksmfleet-dash-")
    port_file = os.path.join(data, "port")
    log = open(os.path.join(data, "server.log"), "w")
    env = dict(os.environ, KSMFLEET_ADMIN_TOKEN=ADMIN)
    server = subprocess.Popen(
        [os.path.join(args.bin, "ksmfleet-server"), "--host", "127.0.0.1", "--port", "0", "--data-dir", data,
         "--port-file", port_file, "--offline-after", "900"], stdout=log, stderr=subprocess.STDOUT, env=env)
    driver = None
    try:
        deadline = time.time() + 60
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("server did not start; log: " + open(os.path.join(data, "server.log")).read()[-2000:])
            time.sleep(0.2)
        base = f"http://127.0.0.1:{open(port_file).read().strip()}"
        ids = seed(base)
        print(f"seeded {len(ids)} nodes on {base}", flush=True)

        opts = Options()
        for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1440,1000",
                  "--force-device-scale-factor=1"]:
            opts.add_argument(a)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium:
            opts.binary_location = chromium
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
        driver.set_page_load_timeout(60)
        wait = WebDriverWait(driver, 20)

        def shot(name, width=1440):
            height = driver.execute_script("return Math.max(document.body.scrollHeight, 600)")
            driver.set_window_size(width, min(int(height) + 40, 4000))
            path = os.path.join(args.screenshots, f"{name}.png")
            driver.save_screenshot(path)
            driver.set_window_size(1440, 1000)

        def text(css):
            els = driver.find_elements(By.CSS_SELECTOR, css)
            return els[0].text if els else ""

        # Login: wrong token, then the right one.
        driver.get(base + "/")
        check("unauthenticated visit lands on the login page", "/login" in driver.current_url, driver.current_url)
        shot("01-login")
        driver.find_element(By.ID, "token").send_keys("ka_wrong")
        driver.find_element(By.ID, "login-submit").click()
        # The refusal is a new page: wait for it rather than read the old one.
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "login-error"))
        check("wrong token is refused", "neither the admin token nor a live credential" in text("#login-error"), driver.page_source[:300])
        driver.find_element(By.ID, "token").send_keys(ADMIN)
        driver.find_element(By.ID, "login-submit").click()
        wait.until(lambda d: d.find_elements(By.ID, "card-saved-now"))
        cookies = {c["name"]: c for c in driver.get_cookies()}
        sess = cookies.get("ksmfleet_session", {})
        check("session cookie is HTTP-only and SameSite=Strict",
              sess.get("httpOnly") is True and sess.get("sameSite") == "Strict", sess)

        # Overview.
        check("overview: memory saved now is the sum of the online nodes' last samples (7.25 GiB)",
              "7.25 GiB" in text("#card-saved-now"), text("#card-saved-now"))
        check("overview: nodes online (echo's agent stopped: not online)", text("#nodes-online") == "5",
              text("#nodes-online"))
        check("overview: the stopped agent is counted apart", text("#nodes-agent-stopped") == "1",
              text("#card-nodes"))
        check("overview: a node without a sample is 'never reported', not online",
              "1 never reported" in text("#card-nodes") and "7 registered" in text("#card-nodes"), text("#card-nodes"))
        check("overview: saved now leaves the stopped node out and says so",
              "not counted" in text("#card-saved-now") and "256 MiB at their last report" in text("#card-saved-now"),
              text("#card-saved-now"))
        check("overview: drift count shown", text("#drift-count").isdigit(), text("#drift-count"))
        top = text("#top-cpu-table")
        check("overview: top ksmd CPU table lists charlie first",
              top.splitlines()[1:2] and top.splitlines()[1].startswith("charlie"), top)
        check("overview: top ksmd CPU chart names the nodes",
              all(n in driver.find_element(By.ID, "chart-top-cpu").get_attribute("innerHTML") for n in ["alpha", "charlie"]))
        check("overview: savings chart drawn", len(driver.find_elements(By.CSS_SELECTOR, "#chart-fleet-saved path")) >= 1)
        # alpha 2 + bravo 1 + charlie 3 + delta 0.5 + echo 0.25 + foxtrot's ramp ~0.56 (0 → 0.75 GiB in 5 min,
        # then 0.75 GiB for 5 min; its last sample's tail grows until the page loads).
        avg24 = text("#card-saved-24h").split(" GiB")[0].split()[-1] if " GiB" in text("#card-saved-24h") else ""
        check("overview: 24 h average saved is the sum of the nodes' averages (~7.3 GiB)",
              avg24.replace(".", "").isdigit() and 7.28 <= float(avg24) <= 7.4, text("#card-saved-24h"))
        shot("02-overview")
        shot("02-overview-laptop", width=1280)

        # Nodes table, filter, sort.
        driver.get(base + "/nodes")
        table = text("#nodes-table")
        check("nodes: every node listed", all(n in table for n in ["alpha", "bravo", "charlie", "delta"]), table)
        shot("03-nodes")
        driver.get(base + "/nodes?label=rack%3Dr1")
        rows = [r.get_attribute("data-node") for r in driver.find_elements(By.CSS_SELECTOR, "#nodes-table tbody tr[data-node]")]
        check("nodes: label filter rack=r1", sorted(rows) == ["alpha", "bravo"], rows)
        driver.get(base + "/nodes?sort=saved&dir=desc")
        rows = [r.get_attribute("data-node") for r in driver.find_elements(By.CSS_SELECTOR, "#nodes-table tbody tr[data-node]")]
        check("nodes: sorted by saved memory, largest first",
              rows == ["charlie", "alpha", "bravo", "foxtrot", "delta", "echo", "golf"], rows)
        # A node whose agent stopped: no live badge, its last figures marked as such.
        driver.get(base + "/nodes")
        golf_row = driver.find_element(By.CSS_SELECTOR, "#nodes-table tr[data-node='golf']")
        check("nodes: the node without a sample says 'never reported', with no figure, seen at its registration",
              "never reported" in golf_row.text and "GiB" not in golf_row.text and "registered" in golf_row.text
              and "last reported" not in golf_row.text, golf_row.text)
        echo_row = driver.find_element(By.CSS_SELECTOR, "#nodes-table tr[data-node='echo']")
        check("nodes: the stopped agent's row says so", "agent stopped" in echo_row.text
              and "Running (last reported)" in echo_row.text and "last reported" in echo_row.text, echo_row.text)
        check("nodes: the stopped agent's row is marked stale", "stale" in (echo_row.get_attribute("class") or ""))
        check("nodes: a reporting node has a live phase badge",
              "(last reported)" not in driver.find_element(By.CSS_SELECTOR, "#nodes-table tr[data-node='alpha']").text)
        shot("03b-nodes-agent-stopped")
        driver.get(base + "/nodes?phase=Stopped")
        rows = [r.get_attribute("data-node") for r in driver.find_elements(By.CSS_SELECTOR, "#nodes-table tbody tr[data-node]")]
        check("nodes: phase filter", rows == ["delta"], rows)

        # Node page.
        alpha = ids["alpha"]
        driver.get(base + f"/nodes/{alpha}")
        check("node: phase with its reason", "below the 20 % threshold" in text("#phase-reason"), text("#phase-reason"))
        check("node: saved counter", text("#st-saved") == "2 GiB", text("#st-saved"))
        check("node: status counters", "524" in text("#st-sharing"), text("#st-sharing"))
        check("node: saved-memory chart drawn", len(driver.find_elements(By.CSS_SELECTOR, "#chart-node-saved path")) >= 1)
        check("node: ksmd CPU chart drawn", len(driver.find_elements(By.CSS_SELECTOR, "#chart-node-cpu path")) >= 1)
        check("node: side-channel note", "side channels" in driver.page_source)
        check("node: the note says KSM is off while the config stops it", "KSM is off" in text("#side-channel-note"),
              text("#side-channel-note"))
        check("node: preset parameters are read-only", driver.find_element(By.ID, "maxPages").get_attribute("readonly") is not None)
        shot("04-node")

        # The stopped agent's page: marked, with its last figures.
        driver.get(base + f"/nodes/{ids['echo']}")
        check("node: agent stopped note", "The agent stopped" in text("#stale-note"), text("#stale-note"))
        check("node: no live phase badge for a stopped agent", "last reported" in driver.find_element(
            By.CSS_SELECTOR, ".panel .badge").text, driver.find_element(By.CSS_SELECTOR, ".panel .badge").text)
        shot("04c-node-agent-stopped")

        # A node registered ten minutes ago: its 24 h chart is drawn from raw samples from its
        # registration on, the ramp visible, no "no data" field before it existed.
        driver.get(base + f"/nodes/{ids['foxtrot']}")
        check("node: short ranges are raw samples since registration",
              "Raw samples" in text("#history-note") and "since the node registered" in text("#history-note"),
              text("#history-note"))
        saved_svg = driver.find_element(By.ID, "chart-node-saved").get_attribute("innerHTML")
        paths = [e.get_attribute("d") or "" for e in driver.find_elements(By.CSS_SELECTOR, "#chart-node-saved path")]
        check("node: the merge ramp is drawn sample by sample", sum(p.count("L") for p in paths) >= 50, paths)
        check("node: no 'no data' shading before the node existed", "<title>no data</title>" not in saved_svg)
        shot("04d-node-new-raw")

        # An offline stretch is drawn as a gap (shaded, line broken), not as zero.
        driver.get(base + f"/nodes/{ids['delta']}?range=7d")
        saved_svg = driver.find_element(By.ID, "chart-node-saved").get_attribute("innerHTML")
        check("node: the silent day is shaded as a gap", "<title>no data</title>" in saved_svg)
        paths = [e.get_attribute("d") or "" for e in driver.find_elements(By.CSS_SELECTOR, "#chart-node-saved path")]
        check("node: the line breaks at the gap", len(paths) == 1 and paths[0].count("M") == 2, paths)
        refused = text("#finding-samples_refused")
        check("node: refused samples are a finding that names the field", "samples[0].takenAt" in refused
              and "refuses this node's samples" in refused, refused)
        shot("04b-node-with-gap")
        driver.get(base + f"/nodes/{alpha}")

        # A valid edit: run, customized parameters, thresCoef, mergeAcrossNodes.
        Select(driver.find_element(By.ID, "run")).select_by_value("run")
        Select(driver.find_element(By.ID, "mode")).select_by_value("customized")
        for fid, val in [("thresCoef", "35"), ("maxPages", "5000"), ("boost", "300")]:
            el = driver.find_element(By.ID, fid)
            el.clear()
            el.send_keys(val)
        Select(driver.find_element(By.ID, "mergeAcrossNodes")).select_by_value("1")
        driver.find_element(By.ID, "save-config").click()
        wait.until(lambda d: d.find_elements(By.ID, "flash"))
        check("config edit: saved message", "Saved" in text("#flash"), text("#flash"))
        st, cfg = api(base, "GET", f"/api/v1/nodes/{alpha}/config")
        check("config edit: stored (seen through the API)",
              st == 200 and cfg.get("thresCoef") == 35 and cfg.get("mode") == "customized" and cfg.get("run") == "run"
              and cfg.get("parameters", {}).get("maxPages") == 5000 and cfg.get("parameters", {}).get("boost") == 300
              and cfg.get("mergeAcrossNodes") == 1, cfg)
        gen = cfg.get("generation")
        shot("05-node-saved")
        # Looking at a preset and coming back to customized keeps the node's own parameters (the
        # preset's values stayed in the fields, and a save stored them).
        Select(driver.find_element(By.ID, "mode")).select_by_value("high")
        high_boost = driver.find_element(By.ID, "boost").get_attribute("value")
        Select(driver.find_element(By.ID, "mode")).select_by_value("customized")
        back = [driver.find_element(By.ID, f).get_attribute("value") for f in ["boost", "maxPages"]]
        check("config form: a preset looked at and left gives the node's parameters back",
              high_boost == "200" and back == ["300", "5000"], (high_boost, back))

        # An invalid edit: minPages > maxPages and thresCoef out of range.
        for fid, val in [("minPages", "6000"), ("thresCoef", "150")]:
            el = driver.find_element(By.ID, fid)
            el.clear()
            el.send_keys(val)
        driver.find_element(By.ID, "save-config").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".field-error"))
        check("invalid edit: thresCoef error next to its field", "outside 0–100" in text("#error-thresCoef"), text("#error-thresCoef"))
        check("invalid edit: minPages error next to its field", "greater than maxPages" in text("#error-parameters-minPages"),
              text("#error-parameters-minPages"))
        check("invalid edit: submitted values kept in the form",
              driver.find_element(By.ID, "minPages").get_attribute("value") == "6000")
        st, cfg2 = api(base, "GET", f"/api/v1/nodes/{alpha}/config")
        check("invalid edit: nothing stored", cfg2.get("generation") == gen and cfg2.get("thresCoef") == 35, cfg2)
        shot("06-node-invalid")

        # Kick a throttle-mode node.
        charlie = ids["charlie"]
        driver.get(base + f"/nodes/{charlie}")
        driver.find_element(By.ID, "kick").click()
        wait.until(lambda d: d.find_elements(By.ID, "flash"))
        st, cfg3 = api(base, "GET", f"/api/v1/nodes/{charlie}/config")
        check("kick: counter raised (API)", cfg3.get("kickCounter") == 1, cfg3)

        # Savings report.
        driver.get(base + "/reports?since=-24h&until=now&by=node")
        rep = text("#report-table")
        check("report: every node listed", all(n in rep for n in ["alpha", "bravo", "charlie", "delta", "echo"]), rep)
        row = text("#report-table tr[data-key='%s']" % alpha)
        check("report: alpha averages 2 GiB saved, 48 GiB-hours over 24 h, 100 % coverage",
              row.startswith("alpha 1 2 GiB 2 GiB 48 ") and "100 %" in row, row)
        drow = text("#report-table tr[data-key='%s']" % ids["delta"])
        check("report: delta's silent hours listed as a gap", "1:" in drow and "UTC" in drow, drow)
        shot("07-report")
        driver.get(base + "/reports?since=-7d&until=now&by=label&label=rack")
        rep = text("#report-table")
        check("report: grouped by label", "rack=r1" in rep and "rack=r2" in rep, rep)
        driver.get(base + "/reports?since=-3d&until=now&by=day")
        check("report: grouped by day", len(driver.find_elements(By.CSS_SELECTOR, "#report-table tbody tr")) >= 3)
        shot("08-report-by-day")
        # CSV download with the browser's session.
        href = driver.find_element(By.ID, "csv-download").get_attribute("href")
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.addheaders = [("Cookie", "ksmfleet_session=" + sess.get("value", ""))]
        with opener.open(href, timeout=30) as r:
            csv = r.read().decode()
            check("report: CSV download", r.headers.get("Content-Type", "").startswith("text/csv")
                  and csv.startswith("key,name,deleted,nodes,") and "\nfleet," in csv, csv[:200])

        # CSRF: a POST without the form token is refused and changes nothing.
        req = urllib.request.Request(base + f"/nodes/{alpha}/config", data=b"run=stop&mode=standard&thresCoef=20&mergeAcrossNodes=",
                                     method="POST", headers={"Cookie": "ksmfleet_session=" + sess.get("value", ""),
                                                             "Content-Type": "application/x-www-form-urlencoded"})
        try:
            urllib.request.urlopen(req, timeout=30)
            code = 200
        except urllib.error.HTTPError as e:
            code = e.code
        st, cfg4 = api(base, "GET", f"/api/v1/nodes/{alpha}/config")
        check("CSRF: a POST without the token is refused", code == 403 and cfg4.get("run") == "run", (code, cfg4.get("run")))

        # Logout.
        driver.get(base + "/")
        driver.find_element(By.CSS_SELECTOR, "header.top form button").click()
        wait.until(lambda d: "/login" in d.current_url)
        driver.get(base + "/nodes")
        check("logout: the session is gone", "/login" in driver.current_url, driver.current_url)

        # Issue 14: an admin creates a viewer credential on the Credentials page (token shown
        # once); the viewer signs in, sees the node page without forms, and the audit page names
        # who changed what.
        driver.find_element(By.ID, "token").send_keys(ADMIN)
        driver.find_element(By.ID, "login-submit").click()
        wait.until(lambda d: d.find_elements(By.ID, "signed-in-as"))
        driver.get(base + "/credentials")
        driver.find_element(By.ID, "credential-name").send_keys("browser-viewer")
        Select(driver.find_element(By.ID, "credential-role")).select_by_value("viewer")
        driver.find_element(By.ID, "create-credential").click()
        wait.until(lambda d: d.find_elements(By.ID, "new-token"))
        viewer_token = text("#new-token")
        check("credentials: the new token is shown once", viewer_token.startswith("kc_"), viewer_token)
        shot("12-credentials")
        driver.get(base + "/credentials")
        check("credentials: the list does not show the token", viewer_token not in driver.page_source)
        driver.find_element(By.CSS_SELECTOR, "header.top form button").click()
        wait.until(lambda d: "/login" in d.current_url)
        driver.find_element(By.ID, "token").send_keys(viewer_token)
        driver.find_element(By.ID, "login-submit").click()
        wait.until(lambda d: d.find_elements(By.ID, "signed-in-as"))
        driver.get(base + f"/nodes/{alpha}")
        wait.until(lambda d: d.find_elements(By.ID, "read-only-note"))
        check("viewer: no config form and no kick on the node page",
              not driver.find_elements(By.ID, "config-form") and not driver.find_elements(By.ID, "save-config"))
        check("viewer: the header names the credential", "browser-viewer (viewer)" in text("#signed-in-as"))
        check("viewer: the node page lists the node's audit trail",
              "bootstrap" in text("#node-audit") or "registration" in text("#node-audit"), text("#node-audit")[:300])
        shot("13-viewer-node")
        driver.get(base + "/audit")
        wait.until(lambda d: d.find_elements(By.ID, "audit-table"))
        audit_text = text("#audit-table")
        check("audit page: changes are named by credential",
              "bootstrap" in audit_text and "credential-create" in audit_text and "browser-viewer" in audit_text,
              audit_text[:400])
        shot("14-audit")
        # A change to the whole fleet is one record per (config before, after) pair: "N nodes",
        # a link to its nodes, paged by node id with the page size kept.
        since = iso(time.time() - 1)
        st, applied = api(base, "POST", "/api/v1/config/apply", {"all": True, "change": {"thresCoef": 33}})
        apply_results = applied.get("results", []) if st == 200 and isinstance(applied, dict) else []
        changed = sorted(r["nodeId"] for r in apply_results if r["status"] == "changed")
        check("fleet apply: every node changed", st == 200 and len(changed) >= 3 and len(changed) == len(apply_results),
              f"{st} {applied}")
        driver.get(base + "/audit?action=apply&since=" + urllib.parse.quote(since))
        wait.until(lambda d: d.find_elements(By.ID, "audit-table"))
        links = driver.find_elements(By.CSS_SELECTOR, "a.audit-nodes")
        counts = [int(a.text.split()[0]) for a in links]
        rows = driver.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
        check("audit page: the fleet apply's nodes are one record per pair of configs",
              bool(links) and sum(counts) + len(rows) - len(links) == len(changed) and max(counts) >= 2,
              text("#audit-table")[:400])
        if links:
            def page_nodes():
                return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr td a")]
            driver.get(links[counts.index(max(counts))].get_attribute("href") + "&limit=1")
            wait.until(lambda d: d.find_elements(By.ID, "audit-table"))
            first_nodes = page_nodes()
            shot("14b-audit-record")
            nxt = driver.find_elements(By.ID, "audit-next")
            check("record page: one node a page of the whole record, and a next page",
                  len(nxt) == 1 and len(first_nodes) == 1
                  and f"a change to {max(counts)} nodes: 1 node on this page" in text("#audit-count"),
                  f"{first_nodes} {text('#audit-count')}")
            if nxt and first_nodes:
                nxt[0].click()
                wait.until(lambda d: "afterNode=" in d.current_url)
                second_nodes = page_nodes()
                check("record page: the next page keeps its size and holds the next node by id",
                      "limit=1" in driver.current_url and f"afterNode={first_nodes[0]}" in driver.current_url
                      and len(second_nodes) == 1 and second_nodes[0] > first_nodes[0],
                      f"{driver.current_url} {second_nodes}")
        check("viewer: no Credentials link", not driver.find_elements(By.CSS_SELECTOR, "a[href='/credentials']"))
        driver.delete_all_cookies()
        # Open redirect: a `next` with an encoded tab (%09) that a browser drops, which turned
        # /%09/evil.example into //evil.example, another host. Sign-in must land on this origin.
        origin = urllib.parse.urlsplit(base).netloc
        for hostile in ["/%09/evil.example", "/%5Cevil.example", "//evil.example"]:
            driver.get(base + "/login?next=" + hostile)
            driver.find_element(By.ID, "token").send_keys(ADMIN)
            driver.find_element(By.ID, "login-submit").click()
            try:
                WebDriverWait(driver, 20).until(lambda d: "/login" not in d.current_url)
            except Exception:
                pass
            landed = urllib.parse.urlsplit(driver.current_url)
            check(f"sign-in with next={hostile} lands on this origin",
                  landed.scheme == "http" and landed.netloc == origin and "evil" not in driver.current_url,
                  driver.current_url)
            driver.delete_all_cookies()
    except Exception as e:  # report, then fail
        check("dashboard run completed", False, repr(e))
        if driver is not None:
            try:
                driver.save_screenshot(os.path.join(args.screenshots, "zz-failure.png"))
            except Exception:
                pass
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        failed = sum(1 for _, ok in results if not ok)
        if failed:
            print("server log tail:\n" + open(os.path.join(data, "server.log")).read()[-3000:])
        shutil.rmtree(data, ignore_errors=True)
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"dashboard: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
