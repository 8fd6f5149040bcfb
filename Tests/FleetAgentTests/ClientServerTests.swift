import FleetAPI
import FleetClient
import FleetTestSupport
import Foundation
import KSMCore
import Testing

@Suite("FleetClient against the real server")
struct ClientServerTests {
    func registerRequest(_ name: String) -> RegisterRequest {
        RegisterRequest(
            hostname: name, machineId: "m-\(name)-\(UUID().uuidString.prefix(6))", kernel: "6.8.0-test",
            memTotalBytes: 16 << 30, numaNodes: 1, ksmFeatures: ["run", "pages_to_scan"], agentVersion: FleetVersion.current,
            pageSize: 4096)
    }

    @Test("register, config, 304 on an unchanged long-poll, change wakes it, samples with dedup")
    func agentCalls() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        do {
            let enroll = try await server.makeEnrollmentToken()
            let anon = try FleetClient(ClientOptions(serverURL: server.baseURL))
            let reg = try await anon.register(registerRequest("c1"), enrollmentToken: enroll)
            #expect(!reg.nodeId.isEmpty)
            #expect(!reg.reregistered)

            let node = try FleetClient(ClientOptions(serverURL: server.baseURL, token: reg.nodeToken))
            let config = try #require(try await node.config(nodeId: reg.nodeId, ifNoneMatch: nil, waitSeconds: nil))
            #expect(config.generation == reg.config.generation)

            let unchanged = try await node.config(nodeId: reg.nodeId, ifNoneMatch: config.generation, waitSeconds: 1)
            #expect(unchanged == nil)

            // A change made during the long-poll answers it at once.
            let admin = try FleetClient(ClientOptions(serverURL: server.baseURL, token: server.adminToken))
            let started = ContinuousClock.now
            async let woken = node.config(nodeId: reg.nodeId, ifNoneMatch: config.generation, waitSeconds: 30)
            try await Task.sleep(for: .milliseconds(300))
            let patched = try await admin.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 40))
            let got = try #require(try await woken)
            #expect(got.generation == patched.generation)
            #expect(got.config.thresCoef == 40)
            #expect(ContinuousClock.now - started < .seconds(20))  // woken, not the 30 s deadline

            let ack = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: (1...5).map(makeSample)))
            #expect(ack.highestSeq == 5)
            #expect(ack.stored == 5)
            let again = try await node.pushSamples(nodeId: reg.nodeId, SampleBatch(samples: (4...7).map(makeSample)))
            #expect(again.highestSeq == 7)
            #expect(again.stored == 2)
            #expect(again.duplicates == 2)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("refusals are .api with the server's status and code")
    func apiErrors() async throws {
        let server = try await TestServer.start()
        defer { server.removeDataDir() }
        do {
            let anon = try FleetClient(ClientOptions(serverURL: server.baseURL))
            do {
                _ = try await anon.register(registerRequest("bad"), enrollmentToken: "not-a-token")
                Issue.record("registered with a bad enrollment token")
            } catch {
                #expect(error.status == 401)
                #expect(error.code == APIErrorCode.unauthorized)
            }
            let wrong = try FleetClient(ClientOptions(serverURL: server.baseURL, token: "ksmn_wrong"))
            do {
                _ = try await wrong.config(nodeId: "nope", ifNoneMatch: nil, waitSeconds: nil)
                Issue.record("config with a bad node token")
            } catch {
                #expect(error.status == 401)
            }
            let admin = try FleetClient(ClientOptions(serverURL: server.baseURL, token: server.adminToken))
            let enroll = try await server.makeEnrollmentToken()
            let reg = try await anon.register(registerRequest("c2"), enrollmentToken: enroll)
            do {
                _ = try await admin.patchConfig(reg.nodeId, ConfigPatch(thresCoef: 1000))
                Issue.record("an invalid thresCoef was accepted")
            } catch {
                #expect(error.status == 422)
                guard case .api(_, let body, _) = error else { throw error }
                #expect(body.error.field?.contains("thresCoef") == true)
            }
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("a stopped server is .unreachable")
    func stoppedServer() async throws {
        let server = try await TestServer.start()
        let url = server.baseURL
        await server.stop()
        server.removeDataDir()
        let client = try FleetClient(ClientOptions(serverURL: url, connectTimeout: 2))
        do {
            _ = try await client.send(method: "GET", path: "/healthz")
            Issue.record("expected an error")
        } catch {
            #expect(error.isUnreachable, "\(error)")
        }
    }
}
