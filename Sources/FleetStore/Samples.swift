import FleetAPI
import Foundation
import GRDB
import KSMCore

extension FleetDatabase {
    /// Stores a batch of samples for a live node in one transaction (`INSERT OR IGNORE` on
    /// (node_id, seq), so replays and duplicates are stored once) and updates the node's
    /// last-seen time and, from the newest sample, its phase and applied generation. Returns
    /// only after the commit: the acknowledgement may be trusted by the agent.
    /// `json` may carry each sample's JSON as received (same order), saving the re-encoding.
    public func insertSamples(
        nodeId: String, _ samples: [StatusSample], json: [String]? = nil, receivedAt: Date = Date()
    ) async throws -> SampleBatchAck {
        // Encode outside the write transaction: the writer is the one shared resource.
        let rows: [(StatusSample, String)]
        if let json, json.count == samples.count {
            rows = Array(zip(samples, json))
        } else {
            rows = try samples.map { ($0, try StoredJSON.encode($0)) }
        }
        let received = Time.ms(receivedAt)
        return try await pool.write { db in
            guard
                let lastSeq = try Row.fetchOne(
                    db, sql: "SELECT last_seq FROM nodes WHERE id = ? AND deleted_at IS NULL", arguments: [nodeId])
            else { throw StoreError.nodeNotFound(nodeId) }
            let previousHighest: Int64? = lastSeq["last_seq"]
            let insert = try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO samples (node_id, seq, taken_at, received_at, phase, phase_reason, run,
                      pages_to_scan, sleep_millisecs, pages_shared, pages_sharing, pages_unshared, pages_volatile,
                      full_scans, stable_node_chains, stable_node_dups, ksm_zero_pages, general_profit, mem_total_kb,
                      mem_available_kb, anon_pages_kb, page_size, saved_bytes, ksmd_cpu_percent, ksmd_cpu_seconds,
                      applied_generation, apply_error, sample_json)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
            var stored = 0
            for (s, json) in rows {
                let st = s.status
                let args: [(any DatabaseValueConvertible)?] = [
                    nodeId, s.seq, Time.ms(s.takenAt), received, s.phase.rawValue, s.phaseReason, st.run,
                    st.pagesToScan, st.sleepMillisecs, st.pagesShared, st.pagesSharing, st.pagesUnshared,
                    st.pagesVolatile, st.fullScans, st.stableNodeChains, st.stableNodeDups, st.ksmZeroPages,
                    st.generalProfit, s.memory.memTotalKB, s.memory.memAvailableKB, s.memory.anonPagesKB,
                    s.pageSize, s.savedBytes, s.ksmdCPUPercent, s.ksmdCPUSeconds, s.appliedGeneration,
                    s.applyError, json,
                ]
                try insert.execute(arguments: StatementArguments(args))
                stored += db.changesCount
            }
            let highest =
                try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM samples WHERE node_id = ?", arguments: [nodeId]) ?? -1
            // The node's state comes from the newest sample it ever sent: an old batch replayed
            // out of order must not roll the phase back.
            if let (newest, json) = rows.max(by: { $0.0.seq < $1.0.seq }), newest.seq >= (previousHighest ?? Int64.min) {
                try db.execute(
                    sql: """
                        UPDATE nodes SET last_seen_at = ?, phase = ?, phase_reason = ?, applied_generation = ?,
                          apply_error = ?, last_seq = ?, last_sample_json = ?, page_size = ?
                        WHERE id = ?
                        """,
                    arguments: [
                        received, newest.phase.rawValue, newest.phaseReason, newest.appliedGeneration,
                        newest.applyError, highest, json, newest.pageSize, nodeId,
                    ])
            } else {
                try db.execute(
                    sql: "UPDATE nodes SET last_seen_at = ?, last_seq = ? WHERE id = ?",
                    arguments: [received, highest >= 0 ? highest : nil, nodeId])
            }
            return SampleBatchAck(highestSeq: highest, stored: stored, duplicates: rows.count - stored)
        }
    }

    /// Marks a node as seen now (a config poll counts as a sign of life).
    public func touch(nodeId: String, at: Date = Date()) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE nodes SET last_seen_at = ? WHERE id = ? AND deleted_at IS NULL",
                arguments: [Time.ms(at), nodeId])
        }
    }
}
