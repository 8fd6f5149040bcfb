import FleetAPI
import Foundation
import KSMCore

extension FleetDatabase {
    /// Records the process report a newly stored sample carries: the node's newest report (when
    /// this one is not older than the one kept) and each listed group's figures of that UTC day.
    /// Called inside the sample batch's transaction, only for samples that were new (a replay
    /// must not count twice).
    static func writeProcessReport(_ db: StoreDB, nodeId: String, sample: StatusSample) throws {
        guard var report = sample.processes else { return }
        // Bounded whatever an agent sends: the top groups, names as long as any real one.
        report.groups = Array(report.groups.prefix(ProcessReport.maxGroups))
        for i in report.groups.indices where report.groups[i].name.count > ProcessReport.maxNameLength {
            report.groups[i].name = String(report.groups[i].name.prefix(ProcessReport.maxNameLength))
        }
        let at = Time.ms(sample.takenAt)
        try db.cachedStatement(
            sql: """
                UPDATE nodes SET processes_json = ?, processes_at = ?
                WHERE id = ? AND (processes_at IS NULL OR processes_at <= ?)
                """
        ).execute(arguments: [try StoredJSON.encode(report), at, nodeId, at])
        let seconds = Int64(sample.takenAt.timeIntervalSince1970.rounded(.down))
        let day = seconds - ((seconds % 86400) + 86400) % 86400
        let upsert = try db.cachedStatement(
            sql: """
                INSERT INTO process_savings_day AS d (node_id, day_start, kind, name, reports, peak_merged_bytes, peak_at,
                  last_merged_bytes, last_at, processes, sum_merged_bytes)
                VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (node_id, day_start, kind, name) DO UPDATE SET
                  reports = d.reports + 1,
                  peak_at = CASE WHEN excluded.peak_merged_bytes > d.peak_merged_bytes THEN excluded.peak_at ELSE d.peak_at END,
                  peak_merged_bytes = \(db.greatest("d.peak_merged_bytes", "excluded.peak_merged_bytes")),
                  last_merged_bytes = CASE WHEN excluded.last_at >= d.last_at THEN excluded.last_merged_bytes
                    ELSE d.last_merged_bytes END,
                  processes = CASE WHEN excluded.last_at >= d.last_at THEN excluded.processes ELSE d.processes END,
                  last_at = \(db.greatest("d.last_at", "excluded.last_at")),
                  sum_merged_bytes = d.sum_merged_bytes + excluded.sum_merged_bytes
                """)
        for g in report.groups {
            let bytes = g.mergedBytes(pageSize: sample.pageSize)
            try upsert.execute(arguments: [
                nodeId, day, g.kind.rawValue, g.name, bytes, at, bytes, at, g.processes, Double(bytes),
            ])
        }
    }

    /// Who benefited over a period: per node and group, the peak, mean and last merged bytes of
    /// the UTC days that overlap [since, until), largest peak first, at most `limit` rows.
    public func processSavings(nodeId: String?, since: Date, until: Date, limit: Int = 1000) async throws
        -> [ProcessSavingsRow]
    {
        let from = Int64(since.timeIntervalSince1970.rounded(.down))
        let fromDay = from - ((from % 86400) + 86400) % 86400
        let to = Int64(until.timeIntervalSince1970.rounded(.up))
        return try await read { db in
            var sql = """
                SELECT p.node_id, n.name AS node_name, p.kind, p.name, p.reports, p.peak_merged_bytes, p.peak_at,
                  p.last_merged_bytes, p.last_at, p.processes, p.sum_merged_bytes
                FROM process_savings_day p LEFT JOIN nodes n ON n.id = p.node_id
                WHERE p.day_start >= ? AND p.day_start < ?
                """
            var arguments: StoreArguments = [fromDay, to]
            if let nodeId {
                sql += " AND p.node_id = ?"
                arguments += [nodeId]
            }
            struct Key: Hashable {
                var node: String, kind: String, name: String
            }
            var rows: [Key: (row: ProcessSavingsRow, sum: Double)] = [:]
            for r in try StoreRow.fetchAll(db, sql: sql, arguments: arguments) {
                let kindText: String = r["kind"]
                guard let kind = ProcessGroupKind(rawValue: kindText) else { continue }
                let key = Key(node: r["node_id"], kind: kindText, name: r["name"])
                let reports: Int = r["reports"]
                let peak: Int64 = r["peak_merged_bytes"]
                let peakAt = Time.date(r["peak_at"] as Int64)
                let last: Int64 = r["last_merged_bytes"]
                let lastAt = Time.date(r["last_at"] as Int64)
                let processes: Int = r["processes"]
                let sum: Double = r["sum_merged_bytes"]
                if var (row, total) = rows[key] {
                    row.reports += reports
                    if peak > row.peakMergedBytes {
                        row.peakMergedBytes = peak
                        row.peakAt = peakAt
                    }
                    if lastAt >= row.lastAt {
                        row.lastAt = lastAt
                        row.lastMergedBytes = last
                        row.processes = processes
                    }
                    total += sum
                    row.avgMergedBytes = total / Double(max(row.reports, 1))
                    rows[key] = (row, total)
                } else {
                    let row = ProcessSavingsRow(
                        nodeId: key.node, nodeName: r["node_name"], kind: kind, name: key.name, reports: reports,
                        peakMergedBytes: peak, peakAt: peakAt, avgMergedBytes: sum / Double(max(reports, 1)),
                        lastMergedBytes: last, lastAt: lastAt, processes: processes)
                    rows[key] = (row, sum)
                }
            }
            let sorted = rows.values.map(\.row).sorted {
                if $0.peakMergedBytes != $1.peakMergedBytes { return $0.peakMergedBytes > $1.peakMergedBytes }
                if $0.nodeId != $1.nodeId { return $0.nodeId < $1.nodeId }
                return ($0.kind.rawValue, $0.name) < ($1.kind.rawValue, $1.name)
            }
            return Array(sorted.prefix(max(limit, 0)))
        }
    }
}
