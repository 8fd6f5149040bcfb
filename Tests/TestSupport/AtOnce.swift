/// Runs `body` for every seed at once (each must use databases of its own): `make test` runs
/// tests one at a time, and a test of several random fleets on PostgreSQL spends most of its
/// time waiting on round trips. The first error thrown ends the others.
public func forEachSeedAtOnce(
    _ seeds: [UInt64], _ body: @escaping @Sendable (UInt64) async throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for seed in seeds { group.addTask { try await body(seed) } }
        try await group.waitForAll()
    }
}
