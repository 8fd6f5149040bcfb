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

    /// On a store shared with other replicas the cache holds only while their changes are heard
    /// (their notices forget what they replace): nothing before, everything forgotten when
    /// hearing stops, and nothing remembered until it starts again.
    @Test func sharedStoreRemembersOnlyWhileOtherReplicasAreHeard() {
        let cache = NodeTokenCache(othersHeard: false)
        cache.remember("hash-a", node: "n-a", ifStill: cache.generation)
        #expect(cache.node(for: "hash-a") == nil, "remembered before the other replicas' changes were heard")
        cache.changesHeard()
        cache.remember("hash-a", node: "n-a", ifStill: cache.generation)
        cache.remember("hash-b", node: "n-b", ifStill: cache.generation)
        #expect(cache.node(for: "hash-a")?.node == "n-a" && cache.count == 2)
        let before = cache.generation
        cache.changesUnheard()
        #expect(cache.count == 0 && cache.node(for: "hash-b") == nil)
        cache.remember("hash-a", node: "n-a", ifStill: cache.generation)
        #expect(cache.node(for: "hash-a") == nil, "remembered while the other replicas' changes were not heard")
        cache.changesHeard()
        // A lookup that began while they were not heard is not stored.
        cache.remember("hash-a", node: "n-a", ifStill: before)
        #expect(cache.node(for: "hash-a") == nil)
        cache.remember("hash-a", node: "n-a", ifStill: cache.generation)
        #expect(cache.node(for: "hash-a")?.node == "n-a")
    }

    /// A node's entries are found by node: forgetting one node among many leaves the rest, and a
    /// hash remembered again for the same node is one entry.
    @Test func forgettingByNodeAmongMany() {
        let cache = NodeTokenCache()
        for i in 0..<10_000 { cache.remember("hash-\(i)", node: "n-\(i % 5_000)", ifStill: cache.generation) }
        cache.remember("hash-7", node: "n-7", ifStill: cache.generation)
        #expect(cache.count == 10_000)
        cache.forget(node: "n-7")
        #expect(cache.count == 9_998)
        #expect(cache.node(for: "hash-7") == nil && cache.node(for: "hash-5007") == nil)
        #expect(cache.node(for: "hash-8")?.node == "n-8" && cache.node(for: "hash-5008")?.node == "n-8")
        cache.forget(node: "n-7")
        #expect(cache.count == 9_998)
    }
}
