import KSMCore
import KSMNode
import Testing

@Suite("Parsing /proc and sysfs text")
struct ProcParsingTests {
    @Test func statWithAPlainComm() {
        let stat = "37 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 120 30 0 0 25 5 1 0 20 0 0 18446744073709551615"
        #expect(ProcParsing.cpuTicks(stat: stat) == 150)
        #expect(ProcParsing.statFields(stat)?.comm == "ksmd")
    }

    @Test(arguments: [
        ("4242 (my prog) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", "my prog", UInt64(11 + 12)),
        ("4242 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 1000 2000 0 0", "a) b) c", UInt64(3000)),
        ("7 (x (y)) S 1 2 3 4 5 6 7 8 9 10 5 6", "x (y)", UInt64(11)),
        ("8 ()) S 1 2 3 4 5 6 7 8 9 10 1 1\n", ")", UInt64(2)),
    ])
    func commWithSpacesAndParens(stat: String, comm: String, ticks: UInt64) {
        #expect(ProcParsing.statFields(stat)?.comm == comm)
        #expect(ProcParsing.cpuTicks(stat: stat) == ticks)
    }

    @Test func truncatedStat() {
        #expect(ProcParsing.cpuTicks(stat: "1 (init) S 0 1") == nil)
        #expect(ProcParsing.cpuTicks(stat: "garbage") == nil)
    }

    @Test func meminfoWithoutMemAvailable() {
        let m = ProcParsing.meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 30 kB\n")
        #expect(m?.memAvailableKB == 150)
        #expect(ProcParsing.meminfo("MemFree: 1 kB\n") == nil)
    }

    @Test func choiceFiles() {
        #expect(ProcParsing.selectedChoice("[none] scan-time\n") == "none")
        #expect(ProcParsing.selectedChoice("none [scan-time]\n") == "scan-time")
        #expect(ProcParsing.selectedChoice("always\n") == "always")
        #expect(ProcParsing.selectedChoice("\n") == nil)
        #expect(ProcParsing.integer(" 42\n") == 42)
        #expect(ProcParsing.integer("x") == nil)
    }
}
