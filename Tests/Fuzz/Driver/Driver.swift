// geogate-fuzz: the fuzz targets' driver (Tests/Fuzz/README.md).
//
// Built by Scripts/fuzz.sh with `-sanitize=fuzzer,address -D GEOGATE_FUZZING`, it
// is a libFuzzer binary: its main hands libFuzzer's driver the arguments and
// `fuzzOne`, and GEOGATE_FUZZ_TARGET names the target. Built plainly (as `swift
// build` does), the same file is a replayer: `geogate-fuzz TARGET FILE|DIR...` runs
// saved inputs (a crash's reproducer, a corpus) through the target once.
import GeoGateFuzzTargets
#if GEOGATE_FUZZING
import CLibFuzzer
#endif
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var selectedTarget: FuzzTarget?

/// libFuzzer's callback: one input through the selected target.
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let target = selectedTarget else { return 0 }
    do {
        try target.run(UnsafeRawBufferPointer(start: data, count: size))
    } catch {
        // A broken invariant is a crash to libFuzzer: it saves the input.
        say("geogate-fuzz: \(target.name): invariant broken: \(error)")
        abort()
    }
    return 0
}

#if GEOGATE_FUZZING
@main enum Fuzzer {
    static func main() {
        let name = getenv("GEOGATE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        if name == "--list" {
            // For Scripts/fuzz.sh all: the targets, one a line.
            for t in FuzzTargets.all { print(t.name) }
            exit(0)
        }
        guard let target = FuzzTargets.named(name) else {
            say("geogate-fuzz: set GEOGATE_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: " "))")
            exit(2)
        }
        selectedTarget = target
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) })
    }
}
#endif

/// One line to standard error.
func say(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

#if !GEOGATE_FUZZING
/// `geogate-fuzz TARGET FILE|DIR...`: each file (each file of each directory) once.
@main enum Replayer {
    static func main() {
        replay(Array(CommandLine.arguments.dropFirst()))
    }
}

func replay(_ arguments: [String]) -> Never {
    if arguments.first == "--list" {
        for t in FuzzTargets.all { print("\(t.name)\t\(t.summary)") }
        exit(0)
    }
    guard arguments.count >= 2, let target = FuzzTargets.named(arguments[0]) else {
        say("usage: geogate-fuzz TARGET FILE|DIR...   (geogate-fuzz --list names the targets)\n")
        exit(2)
    }
    var failures = 0, count = 0
    for path in arguments.dropFirst() {
        for file in FuzzCorpus.files(under: path) {
            count += 1
            guard let bytes = FuzzCorpus.read(file) else {
                say("geogate-fuzz: cannot read \(file)\n")
                failures += 1
                continue
            }
            do { try target.run(bytes) } catch {
                say("geogate-fuzz: \(target.name): \(file): \(error)\n")
                failures += 1
            }
        }
    }
    print("geogate-fuzz: \(target.name): \(count) inputs, \(failures) failed")
    exit(failures == 0 ? 0 : 1)
}
#endif
