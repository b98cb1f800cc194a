import ArgumentParser
import GeoGateCore
import GeoGatePolicy
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decide one address for a profile: exit 0 allowed, 1 denied, 2 error.",
        discussion: """
            Prints `ALLOW|DENY <CC|--> <reason>`, the same answer the firewall sets give. With --socket it asks \
            the running daemon (`geogate serve`); with --config (and --db) it decides from the files directly.
            """)

    @Option(help: ArgumentHelp("The daemon's socket.", valueName: "PATH")) var socket: String?
    @Option(help: ArgumentHelp("The config file (without --socket).", valueName: "FILE")) var config: String?
    @Option(help: ArgumentHelp("The trie file (default: the config's database).", valueName: "FILE")) var db: String?
    @Option(help: "The profile.") var profile: String
    @Argument(help: "The address.") var address: String

    func validate() throws {
        if (socket == nil) == (config == nil) { throw ValidationError("give either --socket PATH or --config FILE") }
        if socket != nil && db != nil { throw ValidationError("--db goes with --config, not --socket") }
    }

    func run() throws {
        guard let ip = IPAddress(address) else {
            printError("geogate: \"\(address)\" is not an IP address")
            throw ExitCode(2)
        }
        let answer: String
        if let socket {
            answer = try ask(socket: socket, "CHECK \(profile) \(ip)")
        } else {
            let (cfg, trie) = try PolicyOptions.load(config: config!, db: db)
            guard let p = cfg.profile(named: profile) else {
                printError("geogate: no profile \"\(profile)\" in \(cfg.path) (profiles: \(cfg.profiles.map(\.name).joined(separator: ", ")))")
                throw ExitCode(2)
            }
            answer = cfg.policy(p).decide(ip, country: trie.country(of: ip)).description
        }
        if answer.hasPrefix("ALLOW ") { print(answer); return }
        if answer.hasPrefix("DENY ") { print(answer); throw ExitCode(1) }
        printError("geogate: \(answer)")
        throw ExitCode(2)
    }

    /// One request line to the daemon, its one answer line back.
    func ask(socket path: String, _ request: String) throws -> String {
        func fail(_ what: String) -> ExitCode {
            printError("geogate: \(path): \(what): \(String(cString: strerror(errno))) (is `geogate serve` running?)")
            return ExitCode(2)
        }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw fail("socket") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            printError("geogate: \(path): socket path too long")
            throw ExitCode(2)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw fail("cannot connect") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let line = Array((request + "\n").utf8)
        guard line.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == line.count else { throw fail("write") }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !reply.contains(0x0A) {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw fail(n == 0 ? "connection closed without an answer" : "read") }
            reply += buffer[0..<n]
        }
        return String(decoding: reply.prefix { $0 != 0x0A }, as: UTF8.self)
    }
}
