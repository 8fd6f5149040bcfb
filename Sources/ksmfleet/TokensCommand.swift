import ArgumentParser
import FleetAPI
import FleetClient
import Foundation
import KSMCore

struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "Enrollment tokens: what a new node's agent registers with.",
        subcommands: [Create.self, List.self, Revoke.self])
}

extension TokensCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an enrollment token; the token itself is shown only this once.")

        @Option(help: "When it stops working: ISO 8601 or a duration from now (7d, 24h). Default: never.")
        var expires: String?

        @Option(help: "What it is for, e.g. 'rack a12 rollout'.")
        var description: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let expiresAt = orExit { () throws(CLIError) in try TimeArgument.expiry(expires, example: "7d") }
            try await global.run { session in
                let info = try await session.client.createEnrollmentToken(
                    CreateEnrollmentTokenRequest(expiresAt: expiresAt, description: description))
                if session.json {
                    try printJSON(info)
                    return
                }
                var kv = KeyValues()
                kv.add("Token", info.token ?? "(not returned)")
                kv.add("ID", info.id)
                kv.add("Description", info.description ?? "-")
                kv.add("Expires", info.expiresAt.map { Fmt.dateAgo($0) } ?? "never")
                print(kv.render())
                print(
                    "\nThe token is shown only now. Enroll a node with:\n  ksmfleet-agent --server \(session.server) --enroll-token \(info.token ?? "TOKEN")"
                )
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enrollment tokens and whether they still work.")

        @OptionGroup var global: GlobalOptions

        static func state(_ t: EnrollmentTokenInfo, now: Date = Date()) -> String {
            if t.revokedAt != nil { return "revoked" }
            if let e = t.expiresAt, e <= now { return "expired" }
            return "active"
        }

        func run() async throws {
            try await global.run { session in
                let list = try await session.client.enrollmentTokens()
                if session.json {
                    try printJSON(list)
                    return
                }
                if list.tokens.isEmpty {
                    print("no enrollment tokens; create one with `ksmfleet tokens create`")
                    return
                }
                var t = Table("ID", "STATE", "CREATED", "EXPIRES", "DESCRIPTION")
                for tok in list.tokens.sorted(by: { $0.createdAt < $1.createdAt }) {
                    t.add([
                        tok.id, Self.state(tok), Fmt.date(tok.createdAt), tok.expiresAt.map(Fmt.isoSeconds) ?? "never",
                        tok.description ?? "-",
                    ])
                }
                print(t.render())
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke an enrollment token (nodes already registered keep working).")

        @Argument(help: "Token id (see `ksmfleet tokens list`).")
        var id: String

        @OptionGroup var global: GlobalOptions

        struct Result: Codable {
            var revoked: String
        }

        func run() async throws {
            try await global.run { session in
                try await CLIError.notFound(
                    "no enrollment token has the id '\(id)'; see `ksmfleet tokens list`"
                ) { () async throws(ClientError) in try await session.client.revokeEnrollmentToken(id) }
                if session.json {
                    try printJSON(Result(revoked: id))
                } else {
                    print("revoked enrollment token \(id)")
                }
            }
        }
    }
}
