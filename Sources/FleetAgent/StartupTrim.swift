import KSMNode
import Logging

/// Start-up is over: drop its clean file pages from the page tables, once, and log the figures
/// (`ProcessMemory.trimCleanFileMappings`; agent/README.md, "Memory").
enum StartupTrim {
    static func run(logger: Logger) async {
        let before = ProcessMemory.usage()
        guard let trim = await ProcessMemory.trimCleanFileMappings() else { return }
        let after = ProcessMemory.usage()
        logger.info(
            "start-up over: dropped clean file pages from the page tables",
            metadata: [
                "mappings": "\(trim.mappings)", "released_kb": "\(trim.releasedKB)",
                "rss_kb_before": "\((before?.residentBytes ?? 0) / 1024)",
                "rss_kb_after": "\((after?.residentBytes ?? 0) / 1024)",
                "anon_kb": "\((after?.anonymousBytes ?? 0) / 1024)",
            ])
    }
}
