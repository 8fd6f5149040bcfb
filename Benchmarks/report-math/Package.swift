// swift-tools-version:6.2
// The report math's cost per sample, apart from the store and HTTP: `make bench-report-math`.
// Its own package so that the main build stays as it is; KSMCore is the main package's sources
// (a symbolic link), built here in release mode.
import PackageDescription

let package = Package(
    name: "report-math",
    targets: [
        .target(name: "KSMCore"),
        .executableTarget(name: "report-math", dependencies: ["KSMCore"]),
    ])
