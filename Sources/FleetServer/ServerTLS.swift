import FleetStore
import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The server's own TLS: a certificate chain and private key from PEM files, re-read on SIGHUP
/// without restarting or dropping connections.
///
/// Hummingbird's `TLSChannel` builds one `NIOSSLContext` at start. That context is given an
/// `sslContextCallback`, which swift-nio-ssl calls for every new handshake (after the
/// ClientHello); it hands over the identity loaded last. So after a reload new connections get
/// the new certificate, while open ones keep the one they shook hands with. A reload whose files
/// do not load, or whose key does not match its certificate, is refused (logged) and the
/// previous identity stays in use.
public final class ServerTLS: Sendable {
    struct Identity: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
    }

    /// A certificate or key that could not be used, with the file and why.
    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    let files: ServerConfig.TLSFiles
    private let current: Mutex<Identity>

    public init(files: ServerConfig.TLSFiles) throws {
        self.files = files
        self.current = Mutex(try Self.load(files))
    }

    /// Reads and checks both files (the key must belong to the first certificate).
    static func load(_ files: ServerConfig.TLSFiles) throws -> Identity {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificatePath)
        } catch {
            throw LoadError(description: "cannot read the TLS certificate \(files.certificatePath): \(error)")
        }
        guard !chain.isEmpty else {
            throw LoadError(description: "no PEM certificate in \(files.certificatePath)")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: files.privateKeyPath, format: .pem)
        } catch {
            throw LoadError(description: "cannot read the TLS private key \(files.privateKeyPath): \(error)")
        }
        let identity = Identity(chain: chain, key: key)
        // BoringSSL checks that the key matches the certificate when a context is made from them.
        do {
            _ = try NIOSSLContext(configuration: staticConfiguration(identity))
        } catch {
            throw LoadError(
                description:
                    "the TLS private key \(files.privateKeyPath) does not fit the certificate \(files.certificatePath): \(error)"
            )
        }
        return identity
    }

    static func staticConfiguration(_ identity: Identity) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: identity.chain.map { .certificate($0) }, privateKey: .privateKey(identity.key))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }

    /// Re-reads the files; on failure the previous identity stays and the error is thrown.
    public func reload() throws {
        let identity = try Self.load(files)
        current.withLock { $0 = identity }
    }

    /// The configuration for Hummingbird's TLS channel: the current identity, per handshake.
    public var configuration: TLSConfiguration {
        var configuration = Self.staticConfiguration(current.withLock { $0 })
        configuration.sslContextCallback = { [self] _, promise in
            let identity = current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = identity.chain.map { .certificate($0) }
            override.privateKey = .privateKey(identity.key)
            promise.succeed(override)
        }
        return configuration
    }
}

/// Reloads the server's TLS identity on every SIGHUP until shutdown, and the files the
/// PostgreSQL URL names (`passfile`, `sslrootcert`, `sslcert`, `sslkey`: a rotated password or
/// certificate, for the connections made from then on). With nothing to reload a SIGHUP is
/// logged and ignored (rather than ending the process, its default action), so that
/// `systemctl reload` is always safe.
struct ReloadService: Service {
    let tls: ServerTLS?
    let database: FleetDatabase
    let logger: Logger
    /// A reload of the database's files is under way (on its thread).
    let databaseReloading = ReloadUnderWay()

    final class ReloadUnderWay: Sendable {
        let flag = Atomic<Bool>(false)
    }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        if let tls {
            logger.info(
                "TLS: serving the certificate; SIGHUP reloads it",
                metadata: ["certificate": "\(tls.files.certificatePath)"])
        }
        if !database.connectionFiles.isEmpty {
            logger.info(
                "database connection files: SIGHUP re-reads them",
                metadata: ["parameters": "\(database.connectionFiles.joined(separator: ","))"])
        }
        for await _ in signals.cancelOnGracefulShutdown() {
            let databaseFiles = reloadDatabaseFiles()
            guard let tls else {
                if databaseFiles {
                    logger.info("SIGHUP: HTTP is plain, no certificate of its own to reload")
                } else {
                    logger.notice("SIGHUP: nothing to reload (plain HTTP; the database URL names no file)")
                }
                continue
            }
            do {
                try tls.reload()
                logger.notice("TLS certificate reloaded", metadata: ["certificate": "\(tls.files.certificatePath)"])
            } catch {
                logger.error(
                    "TLS reload refused, the previous certificate stays in use", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Starts reading the database URL's files again, on a thread of its own that logs the
    /// outcome (never the files' contents); false when the URL names none. Not awaited: files on
    /// a stalled mount must hold neither this loop (the certificate's reload, later SIGHUPs, a
    /// shutdown) nor one of Swift concurrency's threads. While one reload is under way, another
    /// SIGHUP's is skipped, and logged.
    func reloadDatabaseFiles() -> Bool {
        guard !database.connectionFiles.isEmpty else { return false }
        guard databaseReloading.flag.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else {
            logger.warning("SIGHUP: the database files' last reload has not finished (a stalled file system?); not started again")
            return true
        }
        let (database, logger, reloading) = (self.database, self.logger, databaseReloading)
        Thread {
            defer { reloading.flag.store(false, ordering: .releasing) }
            do {
                let files = try database.reloadConnectionFiles()
                logger.notice(
                    "database connection files re-read; new connections use them, open ones go on",
                    metadata: ["parameters": "\(files.joined(separator: ","))", "database": "\(database.path)"])
            } catch {
                logger.error(
                    "database connection files refused, the ones read before stay in use",
                    metadata: ["error": "\(error)", "database": "\(database.path)"])
            }
        }.start()
        return true
    }
}
