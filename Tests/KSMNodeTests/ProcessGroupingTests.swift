import KSMCore
import KSMNode
import Testing

/// The parsers behind per-process attribution, on text as the kernel writes it.
@Suite("Process grouping")
struct ProcessGroupingTests {
    @Test func ksmStatOfA61KernelIsRead() throws {
        let text = """
            ksm_rmap_items 524288
            ksm_zero_pages 12
            ksm_merging_pages 393216
            ksm_process_profit 1577058304
            ksm_merge_any: no
            ksm_mergeable: yes

            """
        let s = try #require(ProcessGrouping.ksmStat(text))
        #expect(
            s == ProcessKSMStat(
                rmapItems: 524288, zeroPages: 12, mergingPages: 393216, profitBytes: 1_577_058_304, mergeAny: false,
                mergeable: true))
        #expect(s.isMergeable)
    }

    @Test func ksmStatOfAnUntouchedProcessIsNotMergeable() throws {
        let s = try #require(
            ProcessGrouping.ksmStat(
                "ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\nksm_merge_any: no\nksm_mergeable: no\n"
            ))
        #expect(!s.isMergeable)
        #expect(ProcessGrouping.ksmStat("") == nil)
        // More rmap metadata than merged pages: a negative profit.
        #expect(ProcessGrouping.ksmStat("ksm_rmap_items 100\nksm_process_profit -6400\n")?.profitBytes == -6400)
        // prctl(PR_SET_MEMORY_MERGE) alone makes a process count, before KSM tracked any page.
        let prctl = try #require(ProcessGrouping.ksmStat("ksm_rmap_items 0\nksm_merge_any: yes\n"))
        #expect(prctl.isMergeable)
    }

    @Test(arguments: [
        (["/usr/bin/qemu-system-x86_64", "-name", "guest=web-1,debug-threads=on", "-m", "4096"], "web-1"),
        (["qemu-kvm", "-name", "db"], "db"),
        (["/usr/libexec/qemu-kvm", "-name", "a,,b,process=qemu:ab"], "a,b"),
        (["qemu-system-aarch64", "-m", "1G", "-name=ci,debug-threads=on"], "ci"),
    ])
    func qemuGuestsAreNamedByTheirGuestName(args: [String], name: String) {
        #expect(ProcessGrouping.qemuGuestName(args) == name)
        #expect(ProcessGrouping.group(arguments: args, cgroup: "/", command: "qemu-kvm") == .init(kind: .vm, name: name))
    }

    @Test func notQemuOrNoNameIsNoGuest() {
        #expect(ProcessGrouping.qemuGuestName(["/usr/bin/java", "-name", "x"]) == nil)
        #expect(ProcessGrouping.qemuGuestName(["qemu-system-x86_64", "-m", "1G"]) == nil)
        #expect(ProcessGrouping.qemuGuestName([]) == nil)
    }

    @Test func cmdlineIsSplitAtNULs() {
        #expect(ProcessGrouping.arguments("qemu-kvm\0-name\0guest=a\0") == ["qemu-kvm", "-name", "guest=a"])
    }

    @Test(arguments: [
        ("0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
         ProcessGroupKind.container, "docker:0123456789ab"),
        ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-aa11bb22cc33dd44.scope\n",
         .pod, "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"),
        ("0::/kubepods/besteffort/pod0a0b0c0d-0000-1111-2222-333344445555/abcdef\n", .pod,
         "0a0b0c0d-0000-1111-2222-333344445555"),
        ("0::/machine.slice/machine-qemu\\x2d3\\x2dweb\\x2d1.scope/libvirt/vcpu0\n", .vm, "web-1"),
        ("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-fedcba9876543210.scope/container\n",
         .container, "podman:fedcba987654"),
        ("0::/system.slice/postgresql.service\n", .unit, "postgresql.service"),
        ("12:memory:/docker/0123456789abcdef0123\n1:name=systemd:/docker/0123456789abcdef0123\n0::/\n", .container,
         "docker:0123456789ab"),
        ("0::/lxc.payload.build1\n", .container, "lxc:build1"),
    ])
    func cgroupsNameContainersPodsVMsAndUnits(cgroup: String, kind: ProcessGroupKind, name: String) throws {
        let path = try #require(ProcessGrouping.cgroupPath(cgroup))
        #expect(ProcessGrouping.group(cgroup: path) == ProcessGroupKey(kind: kind, name: name))
    }

    @Test(arguments: ["0::/\n", "0::/user.slice/user-1000.slice/session-3.scope\n", "0::/init.scope\n",
                      "4:memory:/process_api/fceefac1f79bc61419e49a807b9e458e\n0::/\n"])
    func otherCgroupsFallBackToTheCommand(cgroup: String) {
        let path = ProcessGrouping.cgroupPath(cgroup)
        #expect(path.flatMap(ProcessGrouping.group(cgroup:)) == nil)
        #expect(ProcessGrouping.group(arguments: ["/usr/bin/redis-server", "*:6379"], cgroup: path, command: "redis-server")
            == ProcessGroupKey(kind: .command, name: "redis-server"))
    }

    @Test func aNamedGuestWinsOverItsCgroup() {
        let g = ProcessGrouping.group(
            arguments: ["qemu-system-x86_64", "-name", "guest=mail"], cgroup: "/system.slice/libvirtd.service",
            command: "qemu-system-x86")
        #expect(g == ProcessGroupKey(kind: .vm, name: "mail"))
    }

    @Test func smapsRollupGivesAnonymousAndHugePages() {
        let text = """
            55d0c0000000-7ffd3a1fe000 ---p 00000000 00:00 0                          [rollup]
            Rss:             4194304 kB
            Anonymous:       4190000 kB
            AnonHugePages:   2097152 kB
            """
        let r = ProcessGrouping.anonymousAndHuge(smapsRollup: text)
        #expect(r.anonymousKB == 4_190_000)
        #expect(r.anonHugeKB == 2_097_152)
    }
}
