import FleetClient
import FleetStore
import FleetTestSupport
import Foundation
import Testing

@testable import FleetServer
import TestSupport

/// Where the dashboard sends a browser after sign-in: a path on this origin only.
@Suite struct SafeRedirectTests {
    /// Each of these leaves this origin in some browser: `%09`/tab and newlines are dropped by
    /// the URL parser (`/\t/evil.example` is `//evil.example`), `\` counts as `/`, schemes run.
    @Test(arguments: [
        "/\t/evil.example", "/%09/evil.example", "/%2509/evil.example", "/\n/evil.example", "/%0a/evil.example",
        "/%0d%0a/evil.example", "//evil.example", "/%2F/evil.example", "/%2f%2fevil.example", "/\\evil.example",
        "/%5Cevil.example", "\\\\evil.example", "https://evil.example/", "javascript:alert(1)", "evil.example",
        " /x", "/ /evil.example", "/\u{200B}/evil.example", "/\u{0000}x", "", "%2F%2Fevil.example",
        "http:/evil.example", String(repeating: "/a", count: 2000),
    ])
    func refused(_ target: String) {
        #expect(LoginPage.safeNext(target) == "/", "\(target.debugDescription) was let through")
    }

    @Test(arguments: ["/", "/nodes", "/nodes/n-1a2b3c4d5e6f", "/reports?days=7", "/nodes/web%2D1", "/a/b#frag"])
    func kept(_ target: String) {
        #expect(LoginPage.safeNext(target) == target)
    }

    @Test func nothingGivenGoesHome() {
        #expect(LoginPage.safeNext(nil) == "/")
    }
}

/// The dashboard's sign-in as a browser sees it over HTTP: redirects, cookies, HSTS, throttling.
@Suite struct DashboardSignInHardeningTests {
    /// Runs `body` with a new server and a browser signed in to it as the admin; stops the
    /// server and removes its data after.
    static func signedIn(_ body: (TestServer, DashboardBrowser) async throws -> Void) async throws {
        try await TestServer.with { server in
            var browser = try DashboardBrowser(server)
            try await browser.signIn(adminToken: server.adminToken)
            try await body(server, browser)
        }
    }

    /// GET /login (with `next`), then POST the form as a browser would; returns the reply.
    static func signIn(
        _ client: FleetClient, token: String, next: String, headers: [String: String] = [:]
    ) async throws -> HTTPResponse {
        let page = try await client.send(method: "GET", path: "/login", query: [("next", next)], headers: headers)
        let loginToken = try #require(DashboardBrowser.cookie("ksmfleet_login", in: page))
        // The hidden field carries `next` as the page rendered it; post what was asked for.
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = [("csrf", loginToken), ("next", next), ("token", token)].map {
            "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
        }.joined(separator: "&")
        var all = headers
        all["Cookie"] = "ksmfleet_login=\(loginToken)"
        all["Content-Type"] = DashboardBrowser.form
        return try await client.send(method: "POST", path: "/login", headers: all, body: Data(body.utf8))
    }

    @Test(arguments: ["/\t/evil.example", "/%09/evil.example", "//evil.example", "/\\evil.example"])
    func aHostileNextLandsOnThisOrigin(_ next: String) async throws {
        let server = try await TestServer.start()
        defer {
            Task {
                await server.stop(); server.removeDataDir()
            }
        }
        let client = try Fixtures.client(server.baseURL, token: nil)
        let reply = try await Self.signIn(client, token: server.adminToken, next: next)
        #expect(reply.status == 303)
        #expect(reply.headers["location"] == "/")
        // Nor does the login page carry it into its form.
        let page = try await client.send(method: "GET", path: "/login", query: [("next", next)])
        #expect(!page.text.contains("evil.example"))
    }

    @Test func aPathOnThisOriginIsKept() async throws {
        let server = try await TestServer.start()
        defer {
            Task {
                await server.stop(); server.removeDataDir()
            }
        }
        let client = try Fixtures.client(server.baseURL, token: nil)
        let reply = try await Self.signIn(client, token: server.adminToken, next: "/reports")
        #expect(reply.status == 303)
        #expect(reply.headers["location"] == "/reports")
    }

    /// Over plain HTTP from anyone: no Secure (the browser would drop the cookie), no HSTS. A
    /// client that claims HTTPS itself is not believed.
    @Test func plainHTTPHasNoSecureCookieAndNoHSTS() async throws {
        let server = try await TestServer.start()
        defer {
            Task {
                await server.stop(); server.removeDataDir()
            }
        }
        let client = try Fixtures.client(server.baseURL, token: nil)
        let reply = try await Self.signIn(
            client, token: server.adminToken, next: "/", headers: ["X-Forwarded-Proto": "https"])
        #expect(reply.status == 303)
        let cookie = try #require(reply.headers["set-cookie"])
        #expect(cookie.contains("ksmfleet_session="))
        #expect(!cookie.contains("Secure"))
        #expect(reply.headers["strict-transport-security"] == nil)
    }

    /// Behind a proxy the operator named (`--trusted-proxy 127.0.0.1`) that says HTTPS: every
    /// cookie is Secure and HSTS is sent; the same proxy saying HTTP gets neither.
    @Test func aTrustedProxySayingHTTPSGetsSecureCookiesAndHSTS() async throws {
        let server = try await TestServer.start(configure: { $0.trustedProxies = ["127.0.0.1"] })
        defer {
            Task {
                await server.stop(); server.removeDataDir()
            }
        }
        let client = try Fixtures.client(server.baseURL, token: nil)
        let page = try await client.send(method: "GET", path: "/login", headers: ["X-Forwarded-Proto": "https"])
        #expect(page.headers["set-cookie"]?.contains("Secure") == true)
        let reply = try await Self.signIn(
            client, token: server.adminToken, next: "/", headers: ["X-Forwarded-Proto": "https"])
        #expect(reply.status == 303)
        let cookies = try #require(reply.headers["set-cookie"])
        #expect(cookies.contains("ksmfleet_session="))
        // Both cookies (the session and the cleared login cookie) are Secure.
        #expect(cookies.components(separatedBy: "Secure").count - 1 == 2, "\(cookies)")
        #expect(reply.headers["strict-transport-security"]?.hasPrefix("max-age=") == true)
        let health = try await client.send(method: "GET", path: "/healthz", headers: ["X-Forwarded-Proto": "https"])
        #expect(health.headers["strict-transport-security"] != nil)

        let plain = try await Self.signIn(
            client, token: server.adminToken, next: "/", headers: ["X-Forwarded-Proto": "http"])
        #expect(plain.headers["set-cookie"]?.contains("Secure") == false)
        #expect(plain.headers["strict-transport-security"] == nil)
    }

    /// After `loginMaxFailures` wrong tokens from one address: 429 with Retry-After, even for the
    /// right token, until the window has passed.
    @Test func failedSignInsAreThrottled() async throws {
        let server = try await TestServer.start(configure: { $0.loginMaxFailures = 3 })
        defer {
            Task {
                await server.stop(); server.removeDataDir()
            }
        }
        let client = try Fixtures.client(server.baseURL, token: nil)
        for _ in 0..<3 {
            let wrong = try await Self.signIn(client, token: "ka_wrong", next: "/")
            #expect(wrong.status == 401)
        }
        let refused = try await Self.signIn(client, token: server.adminToken, next: "/")
        #expect(refused.status == 429)
        let retry = try #require(refused.headers["retry-after"].flatMap { Int($0) })
        #expect(retry > 0 && retry <= 15 * 60)
        #expect(refused.headers["set-cookie"]?.contains("ksmfleet_session=") != true)
    }

    /// A link followed signed out comes back with its query after the sign-in (a shared report
    /// link kept its period only as a path); a banner shows only the numbers the server puts in.
    @Test func signInKeepsTheQueryAndBannersAreTheServers() async throws {
        try await Self.signedIn { server, browser in
            let client = try Fixtures.client(server.baseURL, token: nil)
            let out = try await client.send(method: "GET", path: "/reports", query: [("since", "-30d"), ("by", "label")])
            #expect(out.status == 303, "\(out.status)")
            let location = out.headers["location"] ?? ""
            #expect(location.contains("next=%2Freports%3Fsince%3D-30d%26by%3Dlabel"), "\(location)")
            let posted = try await client.send(
                method: "POST", path: "/nodes/n-abc/config", headers: ["Content-Type": DashboardBrowser.form],
                body: Data("csrf=x".utf8))
            #expect(posted.headers["location"]?.contains("next=%2Fnodes%2Fn-abc") == true, "\(posted.headers)")
            #expect(posted.headers["location"]?.contains("config") == false, "\(posted.headers)")
            let enroll = try await server.makeEnrollmentToken()
            let reg = try await Fixtures.client(server.baseURL, token: nil).register(
                Fixtures.registerRequest(machineId: "m-banner", hostname: "banner"), enrollmentToken: enroll)
            let spoofed = try await browser.get("/nodes/\(reg.nodeId)", query: [("saved", "7 — call +1 555 0100")])
            #expect(spoofed.status == 200 && !spoofed.text.contains("555 0100"), "a link's text in the banner")
            let real = try await browser.get("/nodes/\(reg.nodeId)", query: [("saved", "7")])
            #expect(real.text.contains("Saved: the config is now generation 7."))
        }
    }

    /// A browser sends a GET form's spaces as `+`: the dashboard's filters read them as spaces
    /// (a date typed as `2026-11-01 12:00` was "not a time"; `rack=r1, zone=a` became the key
    /// `+zone` and matched nothing, without a word).
    @Test func getFormsReadPlusAsASpace() async throws {
        try await Self.signedIn { _, browser in
            let report = try await browser.get("/reports?since=2026-11-01+12%3A00&until=now")
            #expect(report.status == 200 && !report.text.contains("is not a time"), "\(report.status)")
            let audit = try await browser.get("/audit?since=2026-11-01+12%3A00")
            #expect(audit.status == 200 && !audit.text.contains("is not a time"), "\(audit.status)")
        }
    }

    /// Sign-ins that check no token (an expired form, a body that is not a form) are not counted
    /// as guesses: the attempt counted when it was let through is given back.
    @Test func signInsThatCheckNoTokenAreNotCounted() async throws {
        let server = try await TestServer.start(configure: { $0.loginMaxFailures = 2 })
        defer {
            Task {
                await server.stop(); server.removeDataDir()
            }
        }
        let client = try Fixtures.client(server.baseURL, token: nil)
        for _ in 0..<4 {
            let garbled = try await client.send(
                method: "POST", path: "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                body: Data("token=%zz&csrf=%".utf8))
            #expect(garbled.status == 400, "\(garbled.status)")
            let expired = try await client.send(
                method: "POST", path: "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                body: Data("csrf=stale&token=ka_x".utf8))
            #expect(expired.status == 401 && expired.text.contains("The sign-in form expired"), "\(expired.status)")
        }
        let ok = try await Self.signIn(client, token: server.adminToken, next: "/")
        #expect(ok.status == 303, "the right token was throttled after attempts that checked none: \(ok.status)")
    }

    /// An error no dashboard page renders itself (a mistyped path, a form that is not
    /// URL-encoded data) is a page a browser shows, with the reason escaped and a way back; the
    /// API and the operations routes keep their JSON.
    @Test func errorsOnDashboardPathsArePagesAndOnTheAPIJSON() async throws {
        try await Self.signedIn { server, browser in try await Self.expectErrorPages(server, browser) }
    }

    static func expectErrorPages(_ server: TestServer, _ browser: DashboardBrowser) async throws {
        let typo = try await browser.get("/nodez")
        #expect(typo.status == 404 && typo.headers["content-type"]?.hasPrefix("text/html") == true, "\(typo.headers)")
        #expect(typo.text.contains("<h1>Not Found</h1>") && typo.text.contains("no route GET /nodez"), "\(typo.text)")
        #expect(typo.text.contains(#"<a href="/">"#))
        let hostile = try await browser.get("/x<script>alert(1)</script>")
        #expect(hostile.status == 404 && !hostile.text.contains("<script>"), "\(hostile.text)")
        // A form body that is not URL-encoded data (a hand-made request): 400 as a page.
        let raw = try await browser.client.send(
            method: "POST", path: "/nodes/n-000000000000/kick",
            headers: ["Cookie": "ksmfleet_session=\(browser.session)", "Content-Type": DashboardBrowser.form],
            body: Data("csrf=%zz".utf8))
        #expect(
            raw.status == 400 && raw.headers["content-type"]?.hasPrefix("text/html") == true
                && raw.text.contains("<h1>Bad Request</h1>"), "\(raw.status) \(raw.text)")

        let admin = try Fixtures.client(server.baseURL, token: server.adminToken)
        for path in ["/api/v1/nodez", "/api/v2/nodes", "/api"] {
            let api = try await admin.send(method: "GET", path: path)
            #expect(api.status == 404 && api.headers["content-type"]?.hasPrefix("application/json") == true, "\(path)")
            // Not `not_found`: an agent takes that for its node being gone and registers again.
            #expect(errorBody(api)?.error.code == "no_route", "\(path): \(api.text)")
        }
        let wrongMethod = try await admin.send(method: "DELETE", path: "/metrics")
        #expect(wrongMethod.status == 405 && errorBody(wrongMethod)?.error.code == "method_not_allowed")
    }

    @Test func theThrottleForgetsAfterItsWindowAndOnSuccess() {
        let throttle = LoginThrottle(maxFailures: 2, window: 60)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        #expect(throttle.attempt("a", now: t0) == nil)
        #expect(throttle.retryAfter("a", now: t0) == nil)
        #expect(throttle.attempt("a", now: t0.addingTimeInterval(1)) == nil)
        #expect(throttle.retryAfter("a", now: t0.addingTimeInterval(2)) == 58)
        #expect(throttle.attempt("a", now: t0.addingTimeInterval(2)) == 58)
        #expect(throttle.retryAfter("b", now: t0.addingTimeInterval(2)) == nil)
        #expect(throttle.retryAfter("a", now: t0.addingTimeInterval(61)) == nil)
        #expect(throttle.attempt("c", now: t0) == nil)
        throttle.succeeded("c")
        #expect(throttle.attempt("c", now: t0) == nil)
        #expect(throttle.retryAfter("c", now: t0) == nil)
        // An attempt that checked no token (an expired form) gives its count back.
        #expect(throttle.attempt("d", now: t0) == nil)
        throttle.checkedNoToken("d")
        #expect(throttle.attempt("d", now: t0) == nil)
        #expect(throttle.retryAfter("d", now: t0) == nil)
    }

    /// Sign-ins sent at once: each is counted as it is let through, so no more than the limit
    /// get to check a token, however many come together.
    @Test func attemptsAtOnceAreHeldToTheLimit() async {
        let throttle = LoginThrottle(maxFailures: 5, window: 60)
        let through = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<50 { group.addTask { throttle.attempt("10.0.0.9") == nil } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(through == 5)
    }

    /// The session is a row keyed by the hash of the cookie's value; signing out removes it.
    @Test func sessionsAreStoredHashedAndSignOutRemovesThem() async throws {
        try await Self.signedIn { server, browser in try await Self.expectSessionsHashed(server, browser) }
    }

    static func expectSessionsHashed(_ server: TestServer, _ browser: DashboardBrowser) async throws {
        let database = try FleetDatabase.open(try TestStore.location(for: server.dataDir))
        #expect(try await database.dashboardSessionCount() == 1)
        for file in ["ksmfleet.sqlite", "ksmfleet.sqlite-wal"] {
            let raw = (try? Data(contentsOf: server.dataDir.appending(path: file))) ?? Data()
            #expect(raw.range(of: Data(browser.session.utf8)) == nil, "the session id is stored in clear in \(file)")
        }
        let out = try await browser.post("/logout", [])
        #expect(out.status == 303)
        #expect(try await database.dashboardSessionCount() == 0)
        #expect(try await browser.get("/").status == 303)
    }
}
