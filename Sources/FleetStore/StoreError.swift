import FleetAPI
import KSMCore

/// Errors of the store, each carrying what a caller needs to answer the request.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The database was written by a newer ksmfleet-server (schema `database` > `supported`).
    case databaseTooNew(path: String, database: Int, supported: Int)
    /// The PostgreSQL database at `path` stores text in `encoding`, not UTF8.
    case databaseNotUTF8(path: String, encoding: String)
    /// No live node with this id (or name).
    case nodeNotFound(String)
    /// `--database` is a `postgres://` URL the store cannot use as written: why, without the
    /// URL (it may hold a password).
    case badDatabaseURL(String)
    case enrollmentTokenNotFound(String)
    case credentialNotFound(String)
    /// A live credential already has this name.
    case credentialNameTaken(String)
    /// The enrollment token is unknown, revoked or expired.
    case enrollmentRefused(String)
    /// `If-Match` named a generation that is no longer current.
    case generationConflict(expected: Int64, current: Int64)
    /// The change produced an invalid config.
    case invalidConfig(ConfigValidationError)
    /// A registration claimed a known (or deleted) machine id without proof: kept as pending.
    case registrationPending(PendingRegistration)
    /// An admin rejected this agent's pending registration.
    case registrationRejected(PendingRegistration)
    case registrationNotFound(String)

    public var description: String {
        switch self {
        case .databaseTooNew(let path, let database, let supported):
            return
                "the database \(path) has schema version \(database), but this ksmfleet-server supports up to version \(supported); it was written by a newer server. Run that newer version (or restore a backup made for this one); refusing to start so as not to damage it"
        case .databaseNotUTF8(let path, let encoding):
            let why =
                encoding == "SQL_ASCII"
                ? "it stores any bytes unchecked" : "a name, label or description with a character \(encoding) lacks would fail its request"
            return
                "the PostgreSQL database \(path) stores text as \(encoding), not UTF8: \(why). Create it in UTF8 (createdb --encoding UTF8 --locale C --template template0 …; an existing database's data moves across with pg_dump and pg_restore); refusing to start"
        case .nodeNotFound(let id): return "node '\(id)' not found"
        case .badDatabaseURL(let why):
            return why
        case .enrollmentTokenNotFound(let id): return "enrollment token '\(id)' not found"
        case .credentialNotFound(let id): return "credential '\(id)' not found"
        case .credentialNameTaken(let name):
            return "a live credential is already named '\(name)'; revoke it first or choose another name"
        case .enrollmentRefused(let why): return why
        case .generationConflict(let expected, let current):
            return "config generation is \(current), not \(expected): it was changed meanwhile; read it again and retry"
        case .invalidConfig(let e): return e.description
        case .registrationPending(let p):
            return "registration \(p.id) is waiting for an admin: \(p.explanation) (ksmfleet nodes accept|reject \(p.id))"
        case .registrationRejected(let p):
            return "an admin rejected registration \(p.id) of this host (machine id \(p.machineId)); give the host its own machine id, or ask an admin to accept it"
        case .registrationNotFound(let id): return "pending registration '\(id)' not found"
        }
    }
}
