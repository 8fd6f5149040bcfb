// swift-tools-version:6.2
import PackageDescription

// Warnings are errors in every build of our own targets (CI included).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .unsafeFlags(["-warnings-as-errors"]),
    // Release objects put each function in a section of its own, so the link's --gc-sections and
    // --icf work per function, not per file (the static agent, stripped: 16,572,504 bytes without
    // this, 16,412,760 with it; docs/benchmarks.md).
    .unsafeFlags(["-Xfrontend", "-function-sections"], .when(configuration: .release)),
]

let package = Package(
    name: "ksmfleet",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ksmfleet-server", targets: ["ksmfleet-server"]),
        .executable(name: "ksmfleet-agent", targets: ["ksmfleet-agent"]),
        .executable(name: "ksmfleet", targets: ["ksmfleet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // TLS in the server itself (`--tls-cert/--tls-key`); never linked into the agent or the CLI.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // NIOCore's SocketAddress (the peer address for rate limits, login throttling, trusted
        // proxies and the audit trail); already in the graph through Hummingbird.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        // NIOHTTPTypes: the HTTP parts a channel handler sees under Hummingbird (HTTPParseErrorHandler);
        // already built for Hummingbird, so no build time added.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        // The PostgreSQL engine of the store (`--database postgres://…`): Vapor's client, built on
        // the SwiftNIO, swift-log and swift-crypto the server already links.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Pure domain: config model, presets, validation, tuner step, throttle machine, savings math.
        .target(name: "KSMCore", swiftSettings: swiftSettings),
        // The node edge: sysfs/procfs reader and writer, unmerge protocol, and the (JSON) config
        // files the standalone agent and the CLI read.
        .target(
            name: "KSMNode",
            dependencies: ["KSMCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // Wire types shared by server, agent and CLI.
        .target(name: "FleetAPI", dependencies: ["KSMCore"], swiftSettings: swiftSettings),
        // Generates the schema from migrations/*.sql into the FleetStore module.
        .executableTarget(name: "MigrationsGen", swiftSettings: swiftSettings),
        .plugin(name: "MigrationsPlugin", capability: .buildTool(), dependencies: ["MigrationsGen"]),
        .target(
            name: "FleetStore",
            dependencies: [
                "KSMCore", "FleetAPI",
                .product(name: "GRDB", package: "GRDB.swift"),
                // The SQLite C API for the sample insert's direct binding (Samples.swift).
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                // SHA-256 of stored secrets (Secrets.swift). Only the server links FleetStore.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // TLS to PostgreSQL (PostgresLocation): postgres-nio's own TLS library, built for it anyway.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["MigrationsPlugin"]),
        .target(
            name: "FleetServer",
            dependencies: [
                "KSMCore", "FleetAPI", "FleetStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                // HTTPParserError: a malformed chunked body is the client's error (400).
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                // SIGHUP reloads the TLS certificate.
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // openapi.yaml is a symlink to the one at the package root, embedded in the binary; so
            // are the dashboard's templates (one `PackageResources` array per file).
            resources: [.embedInCode("openapi.yaml"), .embedInCode("Dashboard/Templates")],
            swiftSettings: swiftSettings),
        // The one-line-per-record stderr log format of the server and the agent.
        .target(
            name: "FleetLog", dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // libcurl with small C shims for its variadic setopt/getinfo calls.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(
            name: "FleetClient",
            dependencies: ["FleetAPI", "CCurl"],
            swiftSettings: swiftSettings),
        .target(
            name: "FleetAgent",
            dependencies: [
                "KSMCore", "KSMNode", "FleetAPI", "FleetClient", "FleetLog",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "ksmfleet-server",
            dependencies: [
                "FleetServer", "FleetStore", "FleetLog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "ksmfleet-agent",
            dependencies: [
                "FleetAgent", "FleetAPI", "FleetLog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            // The static agent's size (≤ 16 MiB stripped; docs/benchmarks.md). The toolchain's
            // static-stdlib link passes -export-dynamic: every symbol of our objects goes into the
            // dynamic symbol table (nothing looks them up; no dlopen) and is kept as a
            // --gc-sections root. --icf=safe folds identical functions whose address is not taken
            // (gold, the toolchain's default linker, and lld; not ld.bfd).
            linkerSettings: [
                .unsafeFlags(["-Xlinker", "--no-export-dynamic", "-Xlinker", "--icf=safe"], .when(configuration: .release)),
            ]),
        .executableTarget(
            name: "ksmfleet",
            dependencies: [
                "FleetClient", "FleetAPI", "KSMCore",
                // ConfigFile (`config apply --file`).
                "KSMNode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),
        // Shared test helpers: the fake kernel, the kernel-test lock, sysfs snapshot/restore,
        // mergeable buffers, paths of the built executables.
        .target(
            name: "TestSupport",
            dependencies: ["KSMCore", "KSMNode"],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings),
        // Starting a real server (in-process on an ephemeral port, or the built binary as a
        // subprocess) for the HTTP, agent and CLI suites.
        .target(
            name: "FleetTestSupport",
            dependencies: ["FleetServer", "FleetStore", "FleetClient", "FleetAPI", "KSMCore", "TestSupport"],
            path: "Tests/FleetTestSupport",
            swiftSettings: swiftSettings),
        .testTarget(name: "KSMCoreTests", dependencies: ["KSMCore", "FleetAPI", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "KSMNodeTests", dependencies: ["KSMCore", "KSMNode", "FleetAPI", "TestSupport"],
            swiftSettings: swiftSettings),
        // Real kernel: serialized through TestSupport's kernel lock, restores KSM settings.
        .testTarget(
            name: "KernelTests",
            dependencies: ["KSMCore", "KSMNode", "FleetAPI", "FleetAgent", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "FleetStoreTests",
            dependencies: [
                "FleetStore", "FleetAPI", "KSMCore", "TestSupport",
                // Raw SQL on the writer's connection (SampleSavepointTests).
                .product(name: "GRDB", package: "GRDB.swift"),
                // Cells of PostgreSQL's binary arrays built by hand (PostgresArrayTests).
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "FleetServerTests",
            dependencies: [
                "FleetTestSupport", "FleetServer", "FleetStore", "FleetClient", "FleetAPI", "KSMCore", "TestSupport",
                // Raw SQL on a stopped server's database file (RestartTests).
                .product(name: "GRDB", package: "GRDB.swift"),
                // /metrics compared line for line with what swift-prometheus's registry writes for the
                // same series (ServerMetricsTests): a test oracle only, the server does not link it.
                .product(name: "Prometheus", package: "swift-prometheus"),
                // The dashboard's rows by name held to what Mustache's Mirror lookup gives.
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "FleetAgentTests",
            dependencies: ["FleetTestSupport",
                "FleetAgent", "FleetLog", "FleetClient", "FleetServer", "FleetStore", "FleetAPI", "KSMCore", "KSMNode",
                "TestSupport",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CLITests",
            dependencies: ["FleetTestSupport", "FleetServer", "FleetClient", "FleetAPI", "KSMCore", "TestSupport"],
            swiftSettings: swiftSettings),
    ]
)
