import KSMNode
import Testing

@Suite("PSI memory pressure parsing")
struct MemoryPressureTests {
    @Test("some avg10 is read from the first line")
    func some() {
        let text = "some avg10=12.50 avg60=3.00 avg300=0.10 total=123456\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=1\n"
        #expect(ProcParsing.pressureSomeAvg10(text) == 12.5)
    }

    @Test("a file without a some line gives nil")
    func missing() {
        #expect(ProcParsing.pressureSomeAvg10("full avg10=1.00\n") == nil)
        #expect(ProcParsing.pressureSomeAvg10("") == nil)
    }
}

@Suite("mergeable memory parsing")
struct MergeableMemoryTests {
    @Test("ksm_mergeable yes/no, and nil on kernels without the line")
    func mergeable() {
        #expect(ProcParsing.ksmMergeable("ksm_rmap_items 0\nksm_merge_any: no\nksm_mergeable: yes\n") == true)
        #expect(ProcParsing.ksmMergeable("ksm_mergeable: no\n") == false)
        #expect(ProcParsing.ksmMergeable("ksm_rmap_items 12\nksm_merging_pages 3\n") == nil)
    }

    @Test("RssAnon in kB")
    func rssAnon() {
        #expect(ProcParsing.rssAnonKB("Name:\tqemu\nRssAnon:\t  524288 kB\nRssFile:\t 10 kB\n") == 524_288)
        #expect(ProcParsing.rssAnonKB("Name:\tkthreadd\n") == nil)
    }
}
