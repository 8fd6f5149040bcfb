import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

/// `ksmfleet nodes pending|accept|reject|rotate-token` against a real server.
@Suite("ksmfleet: pending registrations and token rotation")
struct CLIIdentityTests {
    @Test("a host claiming web-1's machine id is listed with both hosts; accept lets it claim the node; rotate-token is asked")
    func pendingAcceptRotate() async throws {
        try await Fleet.with { f in
            let web1 = try f.id("web-1")
            let machine = try await f.admin.node(web1).machineId
            let anonymous = try FleetClient(ClientOptions(serverURL: f.server.baseURL))
            let enroll = try await f.server.makeEnrollmentToken()
            var request = RegisterRequest(
                hostname: "imposter", machineId: machine, kernel: "6.9", memTotalBytes: 1 << 30, numaNodes: 1,
                ksmFeatures: [], agentVersion: "t", registrationKey: "kr_cli")
            await #expect(throws: ClientError.self) { _ = try await anonymous.register(request, enrollmentToken: enroll) }

            let table = try await f.cli(["nodes", "pending"])
            #expect(table.status == Exit.ok, "\(table)")
            #expect(table.stdout.contains("imposter") && table.stdout.contains(web1) && table.stdout.contains("conflict"), "\(table)")
            let list = try await f.cli(["nodes", "pending", "-o", "json"]).json(PendingRegistrationList.self)
            let pending = try #require(list.registrations.first)
            #expect(pending.holder?.nodeId == web1 && pending.newcomer.hostname == "imposter")

            let rejected = try await f.cli(["nodes", "reject", pending.id])
            #expect(rejected.status == Exit.ok, "\(rejected)")
            let accepted = try await f.cli(["nodes", "accept", pending.id, "-o", "json"])
            #expect(try accepted.json(PendingRegistration.self).status == "accepted", "\(accepted)")
            request.hostname = "web-1"
            let claimed = try await anonymous.register(request, enrollmentToken: enroll)
            #expect(claimed.nodeId == web1 && claimed.reregistered)

            let missing = try await f.cli(["nodes", "accept", "p-000000000000"])
            #expect(missing.status == Exit.refused, "\(missing)")

            let rotate = try await f.cli(["nodes", "rotate-token", "web-2"])
            #expect(rotate.status == Exit.ok && rotate.stdout.contains("rotation"), "\(rotate)")
        }
    }
}
