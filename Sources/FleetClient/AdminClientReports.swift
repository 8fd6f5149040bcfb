import FleetAPI
import KSMCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Typed calls for the history and savings-report API (admin token).
extension FleetClient {
    /// `GET /api/v1/nodes/{id}/history`. Times go as ISO 8601.
    public func history(
        _ id: String, since: Date? = nil, until: Date? = nil, resolution: HistoryResolution? = nil
    ) async throws(ClientError) -> HistoryResponse {
        var query: [(String, String)] = []
        if let since { query.append(("since", Self.wireTime(since))) }
        if let until { query.append(("until", Self.wireTime(until))) }
        if let resolution { query.append(("resolution", resolution.rawValue)) }
        return try await request("GET", APIPaths.history(percentEncode(id)), query: query, as: HistoryResponse.self)
    }

    /// `GET /api/v1/reports/savings` as JSON.
    public func savingsReport(
        since: Date? = nil, until: Date? = nil, by: ReportGrouping? = nil, label: String? = nil
    ) async throws(ClientError) -> SavingsReport {
        try await request(
            "GET", APIPaths.savingsReport, query: Self.reportQuery(since, until, by, label), as: SavingsReport.self)
    }

    /// `GET /api/v1/reports/savings` with `Accept: text/csv`: the server's CSV text.
    public func savingsReportCSV(
        since: Date? = nil, until: Date? = nil, by: ReportGrouping? = nil, label: String? = nil
    ) async throws(ClientError) -> String {
        let response = try await send(
            method: "GET", path: APIPaths.savingsReport, query: Self.reportQuery(since, until, by, label),
            headers: ["Accept": "text/csv"])
        try Self.throwIfError(response)
        return response.text
    }

    /// `GET /api/v1/reports/processes`: who benefited, per node and process group.
    public func processReport(
        since: Date? = nil, until: Date? = nil, node: String? = nil, limit: Int? = nil
    ) async throws(ClientError) -> ProcessSavingsReport {
        var query = Self.reportQuery(since, until, nil, nil)
        if let node { query.append(("node", node)) }
        if let limit { query.append(("limit", String(limit))) }
        return try await request("GET", APIPaths.processReport, query: query, as: ProcessSavingsReport.self)
    }

    // MARK: helpers

    static func reportQuery(_ since: Date?, _ until: Date?, _ by: ReportGrouping?, _ label: String?) -> [(
        String, String
    )] {
        var query: [(String, String)] = []
        if let since { query.append(("since", wireTime(since))) }
        if let until { query.append(("until", wireTime(until))) }
        if let by { query.append(("by", by.rawValue)) }
        if let label { query.append(("label", label)) }
        return query
    }

    /// ISO 8601 in UTC, whole seconds: `2026-11-23T12:00:00Z`.
    static func wireTime(_ date: Date) -> String {
        ReportTime.iso(date.timeIntervalSince1970.rounded(.down))
    }
}
