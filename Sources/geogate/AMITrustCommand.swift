import ArgumentParser
import GeoGateCore
import GeoGateDaemon
import GeoGatePolicy
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `geogate ami-trust`: Asterisk's SuccessfulAuth events become run-time allow
/// entries (GeoGateDaemon/AMITrust.swift; Docs/examples/asterisk).
struct AMITrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ami-trust",
        abstract: "Trust the address of every phone that authenticates to Asterisk or FreeSWITCH, for a time.",
        discussion: """
            Logs in to the Asterisk Manager Interface (manager.conf: a user with `read = security`), and for each \
            SuccessfulAuth event of a listed service with a password, asks the daemon to ALLOW the phone's address \
            in the profile for --for (each address renewed at most every quarter of that, at most every 5 minutes). \
            So a phone that keeps registering stays let in, and one phone's bad password cannot get its office \
            blocked. With --pbx freeswitch it reads FreeSWITCH's event socket instead (event_socket.conf.xml; the \
            password in --secret-file), trusting the network-ip of each sofia::register event (a registration \
            the profile accepted). Reconnects after a failure (1 s, doubling to 60 s); pings after 60 s of \
            silence. Runs as the daemon's user or a member of entries.group (Docs/examples/geogate-ami.service).
            """)

    @Option(help: configHelp) var config: String?
    @Option(help: "The profile the phones are trusted in.") var profile: String
    @Option(name: .customLong("for"), help: ArgumentHelp("How long a trust lasts unless renewed: 90s, 15m, 2h (at most 24d).", valueName: "DURATION"))
    var duration = "1h"
    @Option(help: ArgumentHelp("asterisk (the AMI's SuccessfulAuth) or freeswitch (the event socket's sofia::register).", valueName: "PBX"))
    var pbx = "asterisk"
    @Option(help: ArgumentHelp("The AMI's or event socket's address and port, numeric (default 127.0.0.1:5038, FreeSWITCH 127.0.0.1:8021).", valueName: "HOST:PORT"))
    var ami: String?
    @Option(help: "The AMI user (manager.conf); FreeSWITCH's event socket has none.") var username: String?
    @Option(help: ArgumentHelp("A file holding the AMI user's secret, or the event socket's password (first line).", valueName: "FILE"))
    var secretFile: String
    @Option(help: ArgumentHelp("The services whose SuccessfulAuth counts.", valueName: "LIST")) var services = "PJSIP,SIP,IAX2"
    @Flag(help: "One session: stop when the connection ends (a first try by hand, tests).") var once = false

    func run() throws {
        let cfg = try loadConfig(configPath(config))
        guard cfg.profile(named: profile) != nil else {
            printError("geogate: no profile \"\(SafeText.field(profile, limit: 32))\" in \(cfg.path) (profiles: \(cfg.profiles.map(\.name).joined(separator: ", ")))")
            throw ExitCode(2)
        }
        guard let seconds = RuntimeEntries.parseDuration(duration), seconds > 0, seconds <= RuntimeEntries.maxDurationSeconds else {
            printError("geogate: --for \(SafeText.field(duration, limit: 32)): a duration from 1s to 24d")
            throw ExitCode(2)
        }
        guard let kind = PBX(rawValue: pbx) else {
            printError("geogate: --pbx is asterisk or freeswitch")
            throw ExitCode(2)
        }
        let ami = self.ami ?? (kind == .freeswitch ? "127.0.0.1:8021" : "127.0.0.1:5038")
        let username = self.username ?? ""
        if kind == .asterisk && username.isEmpty {
            printError("geogate: --username: the AMI user of manager.conf")
            throw ExitCode(2)
        }
        // "host:port" or "[v6]:port".
        var host = ami, port = kind == .freeswitch ? "8021" : "5038"
        if ami.hasPrefix("["), let close = ami.firstIndex(of: "]") {
            host = String(ami[ami.index(after: ami.startIndex)..<close])
            let rest = ami[ami.index(after: close)...]
            if rest.hasPrefix(":") { port = String(rest.dropFirst()) }
        } else if let colon = ami.lastIndex(of: ":") {
            host = String(ami[..<colon])
            port = String(ami[ami.index(after: colon)...])
        }
        guard IPAddress(host) != nil, let portNumber = UInt16(port), portNumber > 0 else {
            printError("geogate: --ami \(SafeText.field(ami, limit: 64)): a numeric address and port, like 127.0.0.1:5038 or [::1]:5038")
            throw ExitCode(2)
        }
        let secret: String
        do {
            let bytes = try readWholeFile(secretFile, limit: 4096)
            secret = String(decoding: bytes.prefix { $0 != 0x0A && $0 != 0x0D }, as: UTF8.self)
        } catch {
            printError("geogate: --secret-file: \(error)")
            throw ExitCode(2)
        }
        // Both go into the login block: no line breaks, nothing unprintable.
        for (name, value) in [("--username", kind == .asterisk ? username : "-"), ("the secret", secret)] where value.isEmpty || !SafeText.isClean(value) {
            printError("geogate: \(name) is empty or holds control characters")
            throw ExitCode(2)
        }
        bootstrapLogging()
        let trust = AMITrust(settings: .init(host: host, port: portNumber, username: username, secret: secret, profile: profile,
                                             seconds: Int(seconds), services: Set(services.split(separator: ",").map(String.init)),
                                             daemonSocket: cfg.daemon.socket, pbx: kind),
                             logger: Logger(label: "geogate-ami"))
        let status = trust.run(once: once)
        if once { print("events: \(trust.events), trusted: \(trust.trusted)") }
        if status != 0 { throw ExitCode(status) }
    }
}
