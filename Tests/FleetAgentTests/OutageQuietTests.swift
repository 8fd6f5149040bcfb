import FleetAPI
import FleetAgent
import Logging
import Testing
@testable import FleetServer

/// The server's outage log against the agent's defaults: both modules, so here.
struct OutageQuietTests {
    @Test("the quiet that ends a server's outage without writes outlasts one agent's refusals: its push's wait and its backoff")
    func quietOutlastsAnAgentsRefusals() {
        let agent = AgentOptions(serverURL: "http://127.0.0.1:1")
        // A push behind a locked table: refused after the server's limit of the agent's timeout,
        // then the next one up to the backoff's cap later. With a shorter quiet, each refusal of
        // a lone agent was an outage begun and ended.
        let apart = ClientTimeout.serverLimit(agent.requestTimeout) + agent.backoffCap
        let outage = DatabaseOutage(logger: Logger(label: "test"))
        #expect(outage.quietInterval > .seconds(apart), "quiet \(outage.quietInterval), refusals up to \(apart) s apart")
    }
}
