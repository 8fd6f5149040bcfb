import Testing

@testable import FleetServer

/// The node-token cache forgets one node at a time: a registration wave or one node's rotation
/// must not send every other node's pushes back to the database.
@Suite struct NodeTokenCacheTests {
    @Test func forgettingANodeKeepsTheOthersAndRefusesStaleLookups() {
        let cache = NodeTokenCache()
        let g0 = cache.generation
        cache.remember("hash-a", node: "n-a", ifStill: g0)
        cache.remember("hash-a2", node: "n-a", ifStill: g0)
        cache.remember("hash-b", node: "n-b", ifStill: g0)
        cache.forget(node: "n-a")
        #expect(cache.node(for: "hash-a") == nil && cache.node(for: "hash-a2") == nil)
        #expect(cache.node(for: "hash-b")?.node == "n-b")
        // A lookup that read the database before the forget (the token just replaced) is not stored.
        cache.remember("hash-a", node: "n-a", ifStill: g0)
        #expect(cache.node(for: "hash-a") == nil)
        cache.remember("hash-a3", node: "n-a", ifStill: cache.generation)
        #expect(cache.node(for: "hash-a3")?.node == "n-a")
    }
}
