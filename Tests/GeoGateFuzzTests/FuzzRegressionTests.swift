import GeoGateFuzzTargets
import GeoGateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every saved fuzz input, run once through its target without the fuzzer
/// (Tests/Fuzz/README.md): the reproducers of fixed bugs (Tests/Fuzz/regressions)
/// and the seeds (Tests/Fuzz/corpus). A broken invariant fails the test; a memory
/// error the fix removed would crash the suite, and does under Scripts/asan-test.sh.
@Suite struct FuzzRegressions {
    static let fuzz = repositoryRoot + "/Tests/Fuzz"

    @Test(arguments: FuzzTargets.all.map(\.name))
    func savedInputsPass(target name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        var count = 0
        for kind in ["regressions", "corpus"] {
            let directory = "\(Self.fuzz)/\(kind)/\(name)"
            guard isDirectory(directory) else { continue }
            for file in FuzzCorpus.files(under: directory) {
                let bytes = try #require(FuzzCorpus.read(file), "cannot read \(file)")
                count += 1
                do { try target.run(bytes) } catch { Issue.record("\(kind)/\(name)/\(file.split(separator: "/").last!): \(error)") }
            }
        }
        #expect(count > 0, "no seeds for \(name) in Tests/Fuzz/corpus/\(name)")
    }

    /// A reproducer saved under a name that is no target would never run.
    @Test func everySavedDirectoryNamesATarget() {
        let names = Set(FuzzTargets.all.map(\.name))
        for kind in ["regressions", "corpus"] where isDirectory("\(Self.fuzz)/\(kind)") {
            for path in FuzzCorpus.files(under: "\(Self.fuzz)/\(kind)") {
                let name = String(path.split(separator: "/").last!)
                #expect(names.contains(name), "Tests/Fuzz/\(kind)/\(name) is not a fuzz target (geogate-fuzz --list)")
            }
        }
    }

    /// The invariants are not vacuous: an answer line with a control byte, an
    /// error that leaks one, and a response split by an injected header fail.
    @Test func brokenInvariantsAreCaught() throws {
        #expect(throws: FuzzFailure.self) { try FuzzChecks.expectShownSafely("file: bad \u{1b}[31m field") }
        #expect(throws: FuzzFailure.self) { try FuzzChecks.expectShownSafely(String(repeating: "x", count: 5000)) }
        let split = Array("HTTP/1.1 204 No Content\r\nX-Geogate: ALLOW\nSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n".utf8)
        #expect(throws: FuzzFailure.self) { try FuzzChecks.expectWellFormedResponses(split) }
        let fine = Array("HTTP/1.1 204 No Content\r\nX-Geogate: ALLOW IT country-allowed\r\nContent-Length: 0\r\n\r\n".utf8)
        #expect(throws: Never.self) { try FuzzChecks.expectWellFormedResponses(fine) }
    }
}

func isDirectory(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
}
