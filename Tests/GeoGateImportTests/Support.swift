import Foundation
@_exported import GeoGateTestSupport
@testable import GeoGateCore
@testable import GeoGateImport

/// A fresh temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "geogate-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) -> String {
        let file = path + "/" + name
        try! text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func write(_ name: String, bytes: [UInt8]) -> String {
        let file = path + "/" + name
        precondition(FileManager.default.createFile(atPath: file, contents: Data(bytes)), "cannot write \(file)")
        return file
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs a program and returns its exit status; stdout/stderr go to the test log.
@discardableResult
func run(_ program: String, _ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// Loads one input and expects an ImportError; returns its text.
func importError(_ paths: [String], format: SourceFormat? = nil, options: ImportOptions = ImportOptions()) -> String? {
    do {
        _ = try SourceLoader.load(paths: paths, format: format, options: options)
        return nil
    } catch {
        return error.description
    }
}

func cc(_ s: String) -> CountryCode { CountryCode(s)! }
func ip(_ s: String) -> UInt128 { IPAddress(s)!.value }
