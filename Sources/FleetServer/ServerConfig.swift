import Foundation
import Logging

/// Everything the server needs to start; the executable fills it from flags and environment,
/// tests from `TestServer`.
public struct ServerConfig: Sendable {
    /// Address to bind, e.g. `127.0.0.1` or `0.0.0.0`.
    public var host: String
    /// Port to bind; 0 picks a free one (learn it through `onServerRunning`).
    public var port: Int
    /// Directory for the database and the generated admin token (created with mode 0700).
    public var dataDir: URL
    /// A node is online when seen within this many seconds (3 × the agent's sample interval).
    public var offlineAfterSeconds: Double
    /// Raw samples older than this many days may be removed once rolled up.
    public var rawRetentionDays: Int
    /// Hourly/daily/monthly rollups older than this many days are removed (default 2 years).
    public var rollupRetentionDays: Int
    /// Admin token given by the operator (`KSMFLEET_ADMIN_TOKEN`); overrides the stored one.
    public var adminToken: String?
    /// Largest request body accepted (413 above).
    public var maxBodyBytes: Int
    public var logLevel: Logger.Level
    /// `--metrics-public`: serve `/metrics` without a credential (else it needs a viewer's).
    public var metricsPublic: Bool = false
    /// Node tokens are replaced after this many days (the agent is told in a sample reply and
    /// gets a new one; no sample or config is lost). 0 turns scheduled rotation off.
    public var tokenRotationDays: Double = 30
    /// Open client connections at most; a new one above it is closed at once. nil: the file
    /// limit less `ConnectionLimit.reserve` (every agent holds one or two connections).
    public var maxConnections: Int?
    /// Registrations accepted per source address per minute (429 above). 0 = no limit.
    public var registrationRateLimit: Int = 30
    /// Failed token checks (401) per source address per minute before every request from that
    /// address gets 429 until the minute is over. 0 = no limit.
    public var failedAuthRateLimit: Int = 30
    /// Called once with a newly generated admin token (first start, no token given), so the
    /// executable can print it. The token is also written to `<dataDir>/admin-token` (0600).
    public var onAdminTokenGenerated: (@Sendable (String, URL) -> Void)?
    /// Called with the bound port once the server listens.
    public var onServerRunning: (@Sendable (Int) async -> Void)?
    /// Serve HTTPS with this certificate and key (PEM files, re-read on SIGHUP); nil: plain HTTP.
    public var tls: TLSFiles?
    /// Peer addresses of reverse proxies whose `X-Forwarded-Proto`/`X-Forwarded-For` are believed.
    public var trustedProxies: [String] = []
    /// Failed dashboard sign-ins from one address before it is refused (429) for a while.
    public var loginMaxFailures = 5
    /// The window in which failed sign-ins are counted, and how long a refusal lasts at most.
    public var loginThrottleSeconds: TimeInterval = 15 * 60

    /// The PEM files of the server's own TLS.
    public struct TLSFiles: Sendable, Equatable {
        public var certificatePath: String
        public var privateKeyPath: String
        public init(certificatePath: String, privateKeyPath: String) {
            self.certificatePath = certificatePath
            self.privateKeyPath = privateKeyPath
        }
    }

    public init(
        host: String = "127.0.0.1", port: Int = 8080, dataDir: URL, offlineAfterSeconds: Double = 60,
        rawRetentionDays: Int = 14, rollupRetentionDays: Int = 730, adminToken: String? = nil, maxBodyBytes: Int = 1 << 20,
        logLevel: Logger.Level = .info, onAdminTokenGenerated: (@Sendable (String, URL) -> Void)? = nil,
        onServerRunning: (@Sendable (Int) async -> Void)? = nil
    ) {
        self.host = host
        self.port = port
        self.dataDir = dataDir
        self.offlineAfterSeconds = offlineAfterSeconds
        self.rawRetentionDays = rawRetentionDays
        self.rollupRetentionDays = rollupRetentionDays
        self.adminToken = adminToken
        self.maxBodyBytes = maxBodyBytes
        self.logLevel = logLevel
        self.onAdminTokenGenerated = onAdminTokenGenerated
        self.onServerRunning = onServerRunning
    }

    /// The store: nil for the SQLite file in the data directory, or a `postgres://` URL (several
    /// replicas may share one PostgreSQL database).
    public var database: String? = nil

    /// PostgreSQL replicas: how often the connection that LISTENs for other replicas' config
    /// changes is asked to answer (`SELECT 1`; 0.1 s to an hour). One not answered within twice
    /// that is closed and a new one listens: a connection lost without an error (a half-open TCP
    /// connection, a stalled backend) would otherwise deliver nothing, and wake nothing, until
    /// the OS gives up.
    public var listenCheckSeconds: Double = 10

    /// PostgreSQL replicas: a fleet-wide apply changing at most this many nodes wakes their
    /// long-polls on its own replica directly; a larger one leaves that to the commit's
    /// notifications while LISTEN is in place, as on every other replica (waking 20,000 nodes
    /// directly held that replica's answers back by 0.6–0.8 s). Not an option of the command:
    /// tests set it to 0 to try the notifications' path with a few nodes.
    public var applyDirectWakeLimit: Int = 256

    /// PostgreSQL replicas: how long after its commit a fleet apply that left its wake-ups to
    /// its notifications (`applyDirectWakeLimit`) checks that they came back. A node still
    /// waiting here without the change is then woken to read the store, and the replica logs a
    /// warning: a LISTEN connection that stalled without an error delivers nothing until its
    /// next check (`listenCheckSeconds`). The notices of 30,000 nodes came back within 0.6 s of
    /// the apply's answer on a saturated machine (docs/benchmarks.md). Not an option of the
    /// command: tests shorten it.
    public var applyNoticeGraceSeconds: Double = 2

    /// PostgreSQL: how long a request's transaction may wait for the database before its
    /// connection is closed and the request answered 503 `database_unavailable` (a partition or
    /// a hung host answers nothing, and TCP would hold every request for about 15 minutes).
    /// Long enough for a year's report of a large fleet. Not an option of the command: tests
    /// shorten it.
    public var databaseRequestDeadlineSeconds: Double = 60

    /// How long a graceful shutdown lets database work under way finish before giving it up
    /// (`ShutdownStart`): requests and passes end in milliseconds when the database answers.
    /// Not an option of the command: tests shorten it.
    public var shutdownDatabaseGraceSeconds: Double = 5

    /// The pause between two rounds of the background service (`RollupService`: rollups, the
    /// fleet's day rows, label sums, retention). Not an option of the command: tests shorten it
    /// (at least 0.1 s: 0 or less would run the rounds back to back).
    public var rollupIntervalSeconds: Double = 10

    /// A field of seconds as a duration: at least `atLeast` (an interval of 0 or less would spin),
    /// at most `atMost`, `ifNotANumber` for NaN or infinity (never a crash converting it).
    static func duration(
        _ seconds: Double, atLeast: Double = 0.1, atMost: Double = 86_400, ifNotANumber: Double
    ) -> Duration {
        guard seconds.isFinite else { return .milliseconds(Int64(ifNotANumber * 1000)) }
        return .milliseconds(Int64(min(max(seconds, atLeast), atMost) * 1000))
    }

    /// The SQLite file inside the data directory.
    public var databasePath: URL { dataDir.appending(path: "ksmfleet.sqlite") }
    /// Where a generated admin token is written.
    public var adminTokenFile: URL { dataDir.appending(path: "admin-token") }
}
