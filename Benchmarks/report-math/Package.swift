// swift-tools-version:6.2
// The report math's cost per sample, and the savings report's JSON, apart from the store and
// HTTP: `make bench-report-math`. Its own package so that the main build stays as it is; KSMCore
// and FleetAPI are the main package's sources (symbolic links), built here in release mode.
import PackageDescription

let package = Package(
    name: "report-math",
    targets: [
        .target(name: "KSMCore"),
        .target(name: "FleetAPI", dependencies: ["KSMCore"]),
        .executableTarget(name: "report-math", dependencies: ["KSMCore", "FleetAPI"]),
    ])
