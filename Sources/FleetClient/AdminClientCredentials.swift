import FleetAPI

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Named credentials (admin) and the audit trail (viewer and up).
extension FleetClient {
    /// `GET /api/v1/credentials`.
    public func credentials() async throws(ClientError) -> CredentialList {
        try await request("GET", APIPaths.credentials, as: CredentialList.self)
    }

    /// `POST /api/v1/credentials`: the reply carries the token itself, shown only once.
    public func createCredential(_ create: CreateCredentialRequest) async throws(ClientError) -> CredentialInfo {
        try await request("POST", APIPaths.credentials, json: create, as: CredentialInfo.self)
    }

    /// `DELETE /api/v1/credentials/{id}`.
    public func revokeCredential(_ id: String) async throws(ClientError) -> CredentialInfo {
        try await request("DELETE", APIPaths.credential(percentEncode(id)), as: CredentialInfo.self)
    }

    /// `GET /api/v1/whoami`.
    public func whoami() async throws(ClientError) -> WhoAmI {
        try await request("GET", APIPaths.whoami, as: WhoAmI.self)
    }

    /// `GET /api/v1/audit` with its filters (`since`/`until` as the server reads them:
    /// ISO 8601, a date, `now`, or `-24h`).
    public func audit(
        node: String? = nil, credential: String? = nil, action: String? = nil, since: String? = nil,
        until: String? = nil, record: Int64? = nil, afterNode: String? = nil, limit: Int? = nil
    ) async throws(ClientError) -> AuditList {
        var query: [(String, String)] = []
        if let node { query.append(("node", node)) }
        if let record { query.append(("record", String(record))) }
        if let afterNode { query.append(("afterNode", afterNode)) }
        if let credential { query.append(("credential", credential)) }
        if let action { query.append(("action", action)) }
        if let since { query.append(("since", since)) }
        if let until { query.append(("until", until)) }
        if let limit { query.append(("limit", String(limit))) }
        return try await request("GET", APIPaths.audit, query: query, as: AuditList.self)
    }
}
