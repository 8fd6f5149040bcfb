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
