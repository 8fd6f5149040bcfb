import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

extension Role: ExpressibleByArgument {}

struct CredentialsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials",
        abstract: "Named API credentials with a role (viewer, operator, admin); admin only.",
        discussion: """
            viewer: reads everything, changes nothing (monitoring, /metrics). operator: also changes configs and \
            labels, kicks, applies. admin: also credentials, enrollment tokens, deletes and purges. The bootstrap \
            admin token keeps working as the admin credential named 'bootstrap'.
            """,
        subcommands: [Create.self, List.self, Revoke.self, WhoAmI.self])
}

extension CredentialsCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a credential; its token is shown only this once.")

        @Argument(help: "Its name, as the audit trail shows it: letters, digits, '.', '_', '-', '@' (up to 64).")
        var name: String

        @Option(help: "viewer, operator or admin.")
        var role: Role

        @Option(help: "When it stops working: ISO 8601 or a duration from now (90d, 24h). Default: never.")
        var expires: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let expiresAt = orExit { () throws(CLIError) -> Date? in
                if let problem = CreateCredentialRequest.nameProblem(name) {
                    throw .usage("credential name '\(name)' \(problem)")
                }
                return try TimeArgument.expiry(expires, example: "90d")
            }
            try await global.run { session in
                let info = try await session.client.createCredential(
                    CreateCredentialRequest(name: name, role: role, expiresAt: expiresAt))
                if session.json {
                    try printJSON(info)
                    return
                }
                var kv = KeyValues()
                kv.add("Token", info.token ?? "(not returned)")
                kv.add("ID", info.id)
                kv.add("Name", info.name)
                kv.add("Role", info.role.rawValue)
                kv.add("Expires", info.expiresAt.map { Fmt.dateAgo($0) } ?? "never")
                print(kv.render())
                print("\nThe token is shown only now. Use it with --token or KSMFLEET_TOKEN.")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Named credentials and whether they still work.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let list = try await session.client.credentials()
                if session.json {
                    try printJSON(list)
                    return
                }
                var t = Table("ID", "NAME", "ROLE", "STATE", "CREATED", "BY", "EXPIRES")
                t.add(["bootstrap", "bootstrap", "admin", "active", "-", "-", "never"])
                for c in list.credentials {
                    t.add([
                        c.id, c.name, c.role.rawValue, c.state(), Fmt.date(c.createdAt), c.createdBy ?? "-",
                        c.expiresAt.map(Fmt.isoSeconds) ?? "never",
                    ])
                }
                print(t.render())
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a credential: it stops working at once, dashboard sessions included.")

        @Argument(help: "Credential id (see `ksmfleet credentials list`).")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let info = try await CLIError.notFound(
                    "no credential has the id '\(id)'; see `ksmfleet credentials list`"
                ) { () async throws(ClientError) in try await session.client.revokeCredential(id) }
                if session.json {
                    try printJSON(info)
                } else {
                    print("revoked credential \(info.id) (\(info.name))")
                }
            }
        }
    }

    struct WhoAmI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "whoami", abstract: "The credential this CLI uses: its name and role.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.run { session in
                let me = try await session.client.whoami()
                if session.json {
                    try printJSON(me)
                } else {
                    print("\(me.name) (\(me.role.rawValue))")
                }
            }
        }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The audit trail: which credential changed what, when, from where, before and after (viewer and up).")

    @Option(help: "Only this node (id or name).")
    var node: String?

    @Option(help: "Only this credential (name or id; 'bootstrap' for the admin token).")
    var credential: String?

    @Option(help: "Only this action (patch, replace, apply, kick, labels, delete, purge, create, login, credential-create, …).")
    var action: String?

    // Unconditional, as history's and reports': `--since -24h` is a value, not an option.
    @Option(parsing: .unconditional, help: "From this time: ISO 8601 or a duration back from now (24h, -24h, 7d).")
    var since: String?

    @Option(parsing: .unconditional, help: "Until this time: ISO 8601 or a duration back from now.")
    var until: String?

    @Option(help: "The nodes of one record, by node id (a change made to many nodes at once is one record: \"N nodes\").")
    var record: Int64?

    @Option(help: "With --record: the nodes after this node id (the next page).")
    var afterNode: String?

    @Option(help: "At most this many records (newest first, or by node id with --record; 1-10000).")
    var limit: Int = Self.defaultLimit

    static let defaultLimit = 50

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let (s, u) = orExit { () throws(CLIError) -> (String?, String?) in
            if !(1...10_000).contains(limit) { throw .usage("--limit must be from 1 to 10000") }
            if let record, record < 1 { throw .usage("--record must be an audit record's id (from 1)") }
            if afterNode != nil && record == nil { throw .usage("--after-node pages the nodes of one record: give --record too") }
            var s: String?, u: String?
            if let since { s = Fmt.isoSeconds(try TimeArgument.parse(since, option: "--since", direction: .past)) }
            if let until { u = Fmt.isoSeconds(try TimeArgument.parse(until, option: "--until", direction: .past)) }
            return (s, u)
        }
        try await global.run { session in
            let list = try await session.client.audit(
                node: node, credential: credential, action: action, since: s, until: u, record: record,
                afterNode: afterNode, limit: limit)
            if session.json {
                try printJSON(list)
                return
            }
            if list.entries.isEmpty {
                print("no audit records match")
                return
            }
            var t = Table("ID", "TIME", "CREDENTIAL", "FROM", "ACTION", "NODE", "TARGET", "GEN")
            for e in list.entries {
                t.add([
                    String(e.id), Fmt.isoSeconds(e.at), e.credential, e.source ?? "-", e.action,
                    e.nodeLabel ?? "-", e.target ?? "-",
                    e.generation.map(String.init) ?? "-",
                ])
            }
            print(t.render())
            if let record, list.entries.count == limit, let last = list.entries.last?.nodeId {
                // The next page keeps this page's size (a default-sized page says nothing more).
                let size = limit == Self.defaultLimit ? "" : " --limit \(limit)"
                print("more nodes may follow: ksmfleet audit --record \(record) --after-node \(last)\(size)")
            } else if record == nil, list.entries.contains(where: { $0.nodeId == nil && $0.nodeCount != nil }) {
                print("a change to several nodes is one record: its nodes with ksmfleet audit --record ID")
            }
        }
    }
}
