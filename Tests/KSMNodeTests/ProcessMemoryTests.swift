import Foundation
import KSMNode
import Testing

@Suite("ProcessMemory")
struct ProcessMemoryTests {
    /// A shortened /proc/PID/smaps of the static agent.
    static let smaps = """
        55d0c0a00000-55d0c0b00000 r--p 00000000 fd:01 4242                       /usr/local/bin/ksmfleet-agent
        Size:               1024 kB
        Rss:                 900 kB
        Anonymous:             0 kB
        VmFlags: rd mr mw me sd
        55d0c0b00000-55d0c1800000 r-xp 00100000 fd:01 4242                       /usr/local/bin/ksmfleet-agent
        Size:              13312 kB
        Rss:               12000 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me sd
        55d0c1800000-55d0c1900000 r--p 00e00000 fd:01 4242                       /usr/local/bin/ksmfleet-agent
        Rss:                 496 kB
        Anonymous:           496 kB
        VmFlags: rd mr mw me ac sd
        55d0c1900000-55d0c1910000 rw-p 00f00000 fd:01 4242                       /usr/local/bin/ksmfleet-agent
        Rss:                  64 kB
        Anonymous:            40 kB
        VmFlags: rd wr mr mw me ac sd
        55d0c2000000-55d0c2100000 rw-p 00000000 00:00 0                          [heap]
        Rss:                 140 kB
        Anonymous:           140 kB
        VmFlags: rd wr mr mw me ac sd
        7f0000000000-7f0000010000 r-xp 00000000 fd:01 77                         /usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0
        Rss:                 540 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me lo sd
        7f0000100000-7f0000200000 r--s 00000000 00:05 9                          /dev/shm/x
        Rss:                   4 kB
        Anonymous:             0 kB
        VmFlags: rd mr me ms sd
        7f0000300000-7f0000400000 r-xp 00000000 fd:01 99                         /opt/old/libfoo.so (deleted)
        Rss:                   8 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me sd
        7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0                          [vdso]
        Rss:                   4 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me de sd
        7f0000500000-7f0000600000 r--p 00000000 fd:01 101                        /usr/lib/x86_64-linux-gnu/libssl.so.3
        Rss:                  96 kB
        Anonymous:             0 kB
        Swap:                  8 kB
        VmFlags: rd mr mw me sd
        7f0000600000-7f0000800000 r--p 00000000 00:10 102                        /dev/hugepages/buf
        Rss:                2048 kB
        Anonymous:             0 kB
        VmFlags: rd mr mw me ht sd
        7f0000900000-7f0000a00000 r--p 00000000 fd:01 103                        /usr/lib/locale/locale-archive
        Rss:                  64 kB
        Anonymous:             0 kB
        VmFlags: rd mr mw me sd
        7f0000a00000-7f0000b00000 r-xp 00000000 fd:01 104                        /opt/my dir/libspace.so.1
        Rss:                  64 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me sd
        """

    @Test func onlyCleanReadOnlyFileMappingsAreTrimmed() {
        let maps = ProcessMemory.mappings(smaps: Self.smaps)
        #expect(maps.count == 13)
        #expect(maps[1].start == 0x55d0_c0b0_0000 && maps[1].end == 0x55d0_c180_0000)
        #expect(maps[1].permissions == "r-xp" && maps[1].path == "/usr/local/bin/ksmfleet-agent")
        #expect(maps[1].residentKB == 12000)
        #expect(maps[5].flags.contains("lo"))
        #expect(maps[7].path == "/opt/old/libfoo.so (deleted)")
        #expect(
            maps.map(\.isCleanFileMapping) == [
                true,  // rodata of the binary
                true,  // text
                false,  // relro: relocated, so copy-on-write anonymous pages
                false,  // writable data
                false,  // heap
                false,  // locked (mlock)
                false,  // a device/shm file
                false,  // a deleted file: nothing to fault the pages back from but the old inode
                false,  // not a file
                false,  // copy-on-write pages in swap
                false,  // huge pages
                true,  // a plain file...
                true,  // a path with a space
            ])
        let exe = "/usr/local/bin/ksmfleet-agent"
        #expect(maps[12].path == "/opt/my dir/libspace.so.1")
        #expect(maps.map { $0.isLoadedObject(executable: exe) } == [
            true, true, true, true, false, true, false, true, false, true, false, false, true,
        ])
    }

    /// On this very test process: the trim releases resident pages, and the code it dropped
    /// still runs afterwards (it faults back in from the page cache).
    @Test func trimmingThisProcessReleasesPagesAndEverythingStillRuns() async throws {
        // Other suites may run in this process at the same time, so only the clean file
        // mappings are compared (they are what the trim touches; the others allocate anonymous
        // memory).
        func cleanFileKB() throws -> Int64 {
            let text = try String(contentsOfFile: "/proc/self/smaps", encoding: .utf8)
            let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            return ProcessMemory.mappings(smaps: text).filter { $0.isCleanFileMapping && $0.isLoadedObject(executable: exe) }
                .reduce(0) { $0 + $1.residentKB }
        }
        #expect(try cleanFileKB() > 0)
        #expect(ProcessMemory.usage().map { $0.residentBytes > 0 && $0.anonymousBytes > 0 } == true)
        let started = ContinuousClock.now
        let trim = try #require(await ProcessMemory.trimCleanFileMappings(settle: .milliseconds(30)))
        #expect(ContinuousClock.now - started >= .milliseconds(30), "it reads smaps twice, 30 ms apart")
        #expect(trim.mappings > 0)
        #expect(trim.releasedKB > 1024, "a test process maps megabytes of code")
        let after = try cleanFileKB()
        // Pages used since then are back, but far fewer than were dropped.
        #expect(after < trim.releasedKB / 2, "released \(trim.releasedKB) kB, resident again \(after) kB")
        // Code and read-only data that were just dropped work again.
        let parsed = ProcessMemory.mappings(smaps: Self.smaps)
        #expect(parsed.filter(\.isCleanFileMapping).count == 4)
    }
}
