/// One schema migration, embedded at build time from `migrations/NNNN_name.sql`.
public struct EmbeddedMigration: Sendable {
    public let number: Int
    public let name: String
    public let sql: String
}
