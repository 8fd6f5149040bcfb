/// Polls `condition` every `poll` until it holds or `timeout` passes; true when it held.
public func waitUntil(
    timeout: Duration, poll: Duration = .milliseconds(100), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if try await condition() { return true }
        if clock.now >= deadline { return false }
        try? await Task.sleep(for: poll)
    }
}
