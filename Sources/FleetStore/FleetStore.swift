/// One schema migration, embedded at build time from `migrations/NNNN_name.sql`.
public struct EmbeddedMigration: Sendable {
    public let number: Int
    public let name: String
    public let sql: String
}

/// The migrations this build carries, in order (generated from `migrations/*.sql`).
public let allMigrations: [EmbeddedMigration] = embeddedMigrations

/// The schema version this build understands: the highest embedded migration number.
public let latestSchemaVersion: Int = embeddedMigrations.map(\.number).max() ?? 0

/// The PostgreSQL series (`migrations/postgres/*.sql`), in order.
public let allPostgresMigrations: [EmbeddedMigration] = embeddedPostgresMigrations
