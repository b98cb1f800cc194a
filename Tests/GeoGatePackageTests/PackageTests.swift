import Foundation
import GeoGateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The Debian package as a server gets it: Scripts/package-deb.sh packages the
/// static release binary (built into .build-deb/ by Scripts/test.sh before the
/// suite, or by hand), lintian passes, and the unpacked package works on a
/// machine without a Swift toolchain, installs through dpkg into a scratch root
/// with its maintainer scripts, and names no path it does not ship.
@Suite(.serialized) struct PackageTests {
    /// Built once for the suite: the .deb and where it was unpacked.
    static let built: Result<(deb: String, root: String), PackageFailure> = {
        let binary = repositoryRoot + "/.build-deb/release/geogate"
        guard access(binary, X_OK) == 0 else {
            return .failure(PackageFailure(message: "\(binary) is missing: run Scripts/package-deb.sh (Scripts/test.sh does, before the suite)"))
        }
        let out = NSTemporaryDirectory() + "geogate-package-" + UUID().uuidString
        let r = shell("cd '\(repositoryRoot)' && bash Scripts/package-deb.sh --no-build --out '\(out)'")
        guard r.status == 0, let deb = r.stdout.split(separator: "\n").last.map(String.init), access(deb, R_OK) == 0 else {
            return .failure(PackageFailure(message: "package-deb.sh failed (\(r.status)):\n\(r.stdout)\n\(r.stderr)"))
        }
        let root = out + "/root"
        let x = shell("dpkg-deb -x '\(deb)' '\(root)' && dpkg-deb -e '\(deb)' '\(root)/DEBIAN'")
        guard x.status == 0 else { return .failure(PackageFailure(message: "dpkg-deb -x: \(x.stderr)")) }
        return .success((deb, root))
    }()

    struct PackageFailure: Error, CustomStringConvertible { let message: String; var description: String { message } }

    func package() throws -> (deb: String, root: String) { try Self.built.get() }

    /// Runs `script` with /opt/swift (the toolchain and its shared libraries)
    /// hidden under an empty tmpfs, in a private mount namespace.
    func withoutToolchain(_ script: String) -> CommandResult {
        let toolchain = URL(fileURLWithPath: "/opt/swift").resolvingSymlinksInPath().path
        return shell("unshare --mount --propagation private sh -c 'mount -t tmpfs none \(toolchain) && \(script.replacingOccurrences(of: "'", with: "'\\''"))'")
    }

    @Test func theBinaryRunsWithoutTheSwiftToolchain() throws {
        let (_, root) = try package()
        let bin = root + "/usr/bin/geogate"
        // The hiding works: the tests' own build, linked against the toolchain's
        // shared Swift libraries, cannot even start.
        let control = withoutToolchain("'\(geogateBinary)' --version")
        #expect(control.status == 127, "the test build should not start without the toolchain: \(control)")
        #expect(!shell("ldd '\(bin)'").stdout.contains("swift"), "no Swift shared library")

        let work = root + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let version = withoutToolchain("'\(bin)' --version")
        #expect(version.status == 0 && !version.stdout.isEmpty, "\(version)")
        // compile with no inputs finds the packaged dataset (/usr/share/geogate in
        // an installed package; here the unpacked root, through GEOGATE_DATA).
        let compile = withoutToolchain("cd '\(work)' && GEOGATE_DATA='\(root)/usr/share/geogate' '\(bin)' compile -o '\(work)/c.trie'")
        #expect(compile.status == 0, "\(compile)")
        let lookup = withoutToolchain("'\(bin)' lookup --db '\(work)/c.trie' 81.2.69.160 2a00:1450::1")
        #expect(lookup.status == 0 && lookup.stdout == "81.2.69.160 GB\n2a00:1450::1 IE\n", "\(lookup)")
        let info = withoutToolchain("'\(bin)' info --db '\(work)/c.trie'")
        #expect(info.status == 0 && info.stdout.contains("geoip.gz"), "\(info)")
        // The packaged config, with its database: pointed at the scratch trie.
        let conf = try String(contentsOfFile: root + "/etc/geogate/geogate.conf", encoding: .utf8)
            .replacingOccurrences(of: "database: /var/lib/geogate/countries.trie", with: "database: \(work)/c.trie")
        try conf.write(toFile: work + "/geogate.conf", atomically: true, encoding: .utf8)
        let sets = withoutToolchain("GEOGATE_CONFIG='\(work)/geogate.conf' '\(bin)' sets --format ipset")
        #expect(sets.status == 0 && sets.stdout.contains("create geogate-full-v4 hash:net"), "\(sets.stderr)")
        let check = withoutToolchain("GEOGATE_CONFIG='\(work)/geogate.conf' '\(bin)' check --profile web 81.2.69.160")
        #expect(check.status == 1 && check.stdout.hasPrefix("DENY GB"), "web allows IT and CH only: \(check)")
    }

    @Test func controlManPagesAndCompletions() throws {
        let (deb, root) = try package()
        let control = try String(contentsOfFile: root + "/DEBIAN/control", encoding: .utf8)
        let depends = control.split(separator: "\n").first { $0.hasPrefix("Depends: ") } ?? ""
        for library in ["libc6", "libmaxminddb0", "libipset13", "libarchive13", "libnftables1", "libnetfilter-conntrack3", "liblzma5", "zlib1g"] {
            #expect(depends.contains(library), "Depends from dpkg-shlibdeps names \(library): \(depends)")
        }
        #expect(!depends.contains("swift"))
        #expect(try String(contentsOfFile: root + "/DEBIAN/conffiles", encoding: .utf8) == "/etc/geogate/geogate.conf\n")
        #expect(URL(fileURLWithPath: deb).lastPathComponent.range(of: #"^geogate_\d+\.\d+\.\d+_[a-z0-9]+\.deb$"#, options: .regularExpression) != nil)
        // A man page for geogate and for every subcommand, rendered by man itself.
        let help = shell("'\(geogateBinary)' --help").stdout
        // A subcommand's line starts with two spaces and its name; its description's
        // continuation lines with many.
        let verbs = help.split(separator: "\n").drop { !$0.hasPrefix("SUBCOMMANDS:") }.dropFirst()
            .filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") && !$0.hasPrefix("  See ") }
            .compactMap { $0.split(separator: " ").first.map(String.init) }
        #expect(verbs.count >= 10, "\(verbs)")
        for page in ["geogate"] + verbs.map({ "geogate-\($0)" }) {
            let path = root + "/usr/share/man/man1/\(page).1.gz"
            #expect(access(path, R_OK) == 0, "\(page)(1)")
            let text = shell("MANWIDTH=100 man -l '\(path)' 2>&1 | col -b")
            #expect(text.status == 0 && text.stdout.contains("NAME") && text.stdout.contains(page.replacingOccurrences(of: "geogate-", with: "geogate ")), "\(page): \(text.stdout.prefix(300))")
        }
        let apply = shell("MANWIDTH=100 man -l '\(root)/usr/share/man/man1/geogate-apply.1.gz' | col -b").stdout
        #expect(apply.contains("--open") && apply.contains("--boot"), "\(apply.prefix(500))")
        // Completions that their shells accept.
        #expect(shell("bash -n '\(root)/usr/share/bash-completion/completions/geogate'").status == 0)
        #expect(access(root + "/usr/share/zsh/vendor-completions/_geogate", R_OK) == 0)
        #expect(access(root + "/usr/share/fish/vendor_completions.d/geogate.fish", R_OK) == 0)
        let bash = shell("source '\(root)/usr/share/bash-completion/completions/geogate' && COMP_WORDS=(geogate ap) COMP_CWORD=1 && _geogate && echo \"${COMPREPLY[@]}\"", bash: true)
        #expect(bash.stdout.contains("apply"), "\(bash)")
        // The copyright file carries the dataset's attribution.
        let copyright = try String(contentsOfFile: root + "/usr/share/doc/geogate/copyright", encoding: .utf8)
        #expect(copyright.contains("IPFire Project") && copyright.contains("CC-BY-SA-4.0") && copyright.contains("Apache-2.0"))
    }

    /// Every absolute path the units, the config and the docs name is in the
    /// package, made by its maintainer scripts or tmpfiles.d, or the admin's or
    /// the system's own (listed here, each with why).
    @Test func everyPathNamedExists() throws {
        let (_, root) = try package()
        let notOurs: [String: String] = [
            "/bin/kill": "procps, in every system",
            "/bin/sh": "dash, essential",
            "/usr/sbin/nologin": "login, in every system",
            "/etc/systemd/system": "the admin's unit overrides",
            "/etc/nginx/snippets/geogate.conf": "where the admin copies the nginx example",
            "/etc/cron.d/geogate": "where the admin copies the cron example",
            "/etc/geogate/maxmind.key": "the admin's MaxMind licence key",
            "/usr/share/common-licenses/Apache-2.0": "base-files",
            "/usr/share/tor/geoip": "tor-geoipdb, a refresh source example",
            "/etc/fail2ban": "where the admin installs the fail2ban filter and jail",
            "/var/log/geogate.log": "a log file of the admin's, in the fail2ban example",
            "/var/log/nginx": "nginx's logs, in the lookup examples",
            "/var/log/asterisk": "Asterisk's security log, in the lookup examples",
            "/etc/asterisk": "Asterisk's own config, in the ami-trust example",
            "/etc/geogate/ami.secret": "the admin's AMI secret, for ami-trust",
            "/etc/geogate/partners.txt": "the admin's own allow-list, in the feeds example",
            "/etc/geogate/keys": "a fleet's signing key (compile host) or trusted keys (nodes), made by geogate keygen",
            "/var/www": "the admin's web root, with a fleet's publication directory on the compile host",
            "/etc/nginx/snippets/geogate-publisher.conf": "where the admin copies the publisher's nginx example",
        ]
        let madeAtInstall = ["/run/geogate", "/var/lib/geogate", "/etc/geogate/profiles.d"]
        var files = ["/etc/geogate/geogate.conf", "/usr/share/doc/geogate/README.md", "/usr/share/geogate/geogate.php",
                     "/usr/share/doc/geogate/PROTOCOL.md", "/usr/share/doc/geogate/TRANSACTIONS.md"]
        files += (try FileManager.default.contentsOfDirectory(atPath: root + "/lib/systemd/system")).map { "/lib/systemd/system/" + $0 }
        files += (try FileManager.default.contentsOfDirectory(atPath: root + "/usr/share/doc/geogate/examples")).map { "/usr/share/doc/geogate/examples/" + $0 }
        files += ["/usr/lib/tmpfiles.d/geogate.conf", "/usr/lib/sysusers.d/geogate.conf"]
        var checked = 0
        for file in files {
            let text = try String(contentsOfFile: root + file, encoding: .utf8)
            let pattern = try NSRegularExpression(pattern: #"(?<![\w.$}/-])/(?:usr|etc|lib|run|var|bin)/[A-Za-z0-9_./+-]*[A-Za-z0-9_]"#)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let path = String(text[Range(match.range, in: text)!])
                checked += 1
                if access(root + path, F_OK) == 0 { continue }
                if notOurs.keys.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) { continue }
                if madeAtInstall.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) { continue }
                Issue.record("\(file) names \(path), which the package does not ship")
            }
        }
        #expect(checked > 40, "the scan found the paths (\(checked))")
        // The runtime and state directories come from tmpfiles.d and the postinst.
        let tmpfiles = try String(contentsOfFile: root + "/usr/lib/tmpfiles.d/geogate.conf", encoding: .utf8)
        #expect(tmpfiles.contains("d /run/geogate 0755 geogate geogate") && tmpfiles.contains("d /var/lib/geogate 0755 geogate geogate"))
        // No unit has systemd make /run/geogate: RuntimeDirectory= empties it when
        // the daemon stops, and the socket geogate.socket holds goes with it.
        for unit in try FileManager.default.contentsOfDirectory(atPath: root + "/lib/systemd/system") {
            let text = try String(contentsOfFile: root + "/lib/systemd/system/" + unit, encoding: .utf8)
            #expect(!text.split(separator: "\n").contains { $0.hasPrefix("RuntimeDirectory=") }, "\(unit) sets RuntimeDirectory=")
        }
        // Units that systemd itself accepts.
        for unit in ["geogate.service", "geogate.socket", "geogate-refresh.service", "geogate-refresh.timer", "geogate-sets.service"] {
            // (On this machine, where the package is not installed, /usr/bin/geogate
            // is missing: the check above found it in the package. The man pages of
            // Documentation= are looked up in the package's.)
            let verify = shell("MANPATH='\(root)/usr/share/man' SYSTEMD_LOG_LEVEL=warning systemd-analyze verify '\(root)/lib/systemd/system/\(unit)' 2>&1")
            let complaints = verify.stdout.split(separator: "\n")
                .filter { !$0.isEmpty && !$0.hasSuffix("Command /usr/bin/geogate is not executable: No such file or directory") }
            #expect(complaints.isEmpty, "\(unit): \(verify.stdout)")
        }
    }

    /// dpkg itself installs the package into a scratch root (--root, maintainer
    /// scripts run with $DPKG_ROOT): the user, the first trie, the conffile; then
    /// an upgrade keeps the admin's config and data; purge removes the data.
    @Test func dpkgInstallsUpgradesAndPurgesInAScratchRoot() throws {
        let (deb, _) = try package()
        let target = NSTemporaryDirectory() + "geogate-dpkg-root-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: target) }
        let setup = shell("""
            set -e
            mkdir -p '\(target)'/var/lib/dpkg/info '\(target)'/var/lib/dpkg/updates '\(target)'/var/lib/dpkg/triggers '\(target)'/etc '\(target)'/run
            touch '\(target)'/var/lib/dpkg/status
            printf 'root:x:0:0:root:/root:/bin/sh\\n' > '\(target)'/etc/passwd
            printf 'root:x:0:\\n' > '\(target)'/etc/group
            printf 'root:*::0:99999:7:::\\n' > '\(target)'/etc/shadow
            printf 'root:*::\\n' > '\(target)'/etc/gshadow
            """)
        try #require(setup.status == 0, "\(setup)")
        let dpkg = "dpkg --root='\(target)' --force-script-chrootless --force-depends --force-not-root --log=/dev/null"
        let install = shell("\(dpkg) -i '\(deb)' 2>&1")
        try #require(install.status == 0, "\(install.stdout)")
        let passwd = try String(contentsOfFile: target + "/etc/passwd", encoding: .utf8)
        let user = passwd.split(separator: "\n").first { $0.hasPrefix("geogate:") }
        #expect(user != nil && user!.hasSuffix(":/var/lib/geogate:/usr/sbin/nologin"), "\(passwd)")
        let uid = user.flatMap { Int($0.split(separator: ":")[2]) } ?? -1
        let trie = target + "/var/lib/geogate/countries.trie"
        var st = stat()
        #expect(stat(trie, &st) == 0 && Int(st.st_uid) == uid && st.st_mode & 0o777 == 0o644, "the first trie, owned by geogate")
        #expect(stat(target + "/run/geogate", &st) == 0 && Int(st.st_uid) == uid, "/run/geogate owned by geogate")
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: target + "/etc/geogate/profiles.d", isDirectory: &isDirectory) && isDirectory.boolValue,
                "the drop-in directory")
        let info = shell("'\(target)/usr/bin/geogate' info --db '\(trie)'")
        #expect(info.status == 0 && info.stdout.contains("countries:"), "\(info)")
        let firstTrie = try Data(contentsOf: URL(fileURLWithPath: trie))
        // The admin edits the config and the refresh replaces the data; a reinstall
        // (upgrade) keeps both.
        let conf = target + "/etc/geogate/geogate.conf"
        try (String(contentsOfFile: conf, encoding: .utf8) + "\n# edited by the admin\n").write(toFile: conf, atomically: true, encoding: .utf8)
        try Data(firstTrie).write(to: URL(fileURLWithPath: trie + ".new"))
        #expect(rename(trie + ".new", trie) == 0)
        #expect(stat(trie, &st) == 0)
        let inode = st.st_ino
        let upgrade = shell("\(dpkg) --force-confold -i '\(deb)' 2>&1")
        #expect(upgrade.status == 0, "\(upgrade.stdout)")
        #expect(try String(contentsOfFile: conf, encoding: .utf8).hasSuffix("# edited by the admin\n"), "the conffile is the admin's")
        #expect(stat(trie, &st) == 0 && st.st_ino == inode, "the live trie is not recompiled on upgrade")
        // Remove keeps config and data; purge removes them, and never the user.
        #expect(shell("\(dpkg) -r geogate 2>&1").status == 0)
        #expect(access(trie, F_OK) == 0 && access(conf, F_OK) == 0)
        #expect(access(target + "/usr/bin/geogate", F_OK) != 0)
        let purge = shell("\(dpkg) -P geogate 2>&1")
        #expect(purge.status == 0, "\(purge.stdout)")
        #expect(access(target + "/var/lib/geogate", F_OK) != 0 && access(conf, F_OK) != 0)
        #expect(try String(contentsOfFile: target + "/etc/passwd", encoding: .utf8).contains("geogate:"))
    }
}

/// The shell we ship passes shellcheck: scripts, examples, maintainer scripts, and
/// the cron line's command (once `sleep $(shuf ...)`, SC2046).
@Suite struct ShellTests {
    @Test func everyShippedShellScriptPassesShellcheck() throws {
        let files = ["Scripts/install-deps.sh", "Scripts/quickstart.sh", "Scripts/test.sh", "Scripts/package-deb.sh",
                     "Docs/examples/firewall-iptables.sh", "Docs/examples/firewall-nft.sh",
                     "Packaging/debian/postinst", "Packaging/debian/prerm", "Packaging/debian/postrm", ".ci/run",
                     "Benchmarks/run.sh"]
        let r = shell("cd '\(repositoryRoot)' && shellcheck -S warning \(files.joined(separator: " ")) 2>&1")
        #expect(r.status == 0, "\(r.stdout)")
        let cron = try String(contentsOfFile: repositoryRoot + "/Docs/examples/geogate.cron", encoding: .utf8)
        let commands = cron.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
            .map { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(6).joined(separator: " ") }
        #expect(commands.count == 1 && commands[0].contains("geogate refresh -q"))
        let file = NSTemporaryDirectory() + "geogate-cron-\(UUID().uuidString).sh"
        try commands.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let c = shell("shellcheck -s sh '\(file)' 2>&1")
        #expect(c.status == 0, "the cron line: \(c.stdout)")
    }
}

/// Runs a shell command line (sh, or bash); status and output.
func shell(_ script: String, bash: Bool = false) -> CommandResult {
    let directory = NSTemporaryDirectory() + "geogate-sh-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let status = run(bash ? "/bin/bash" : "/bin/sh", ["-c", script], stdout: directory + "/out", stderr: directory + "/err")
    return CommandResult(status: status, stdout: (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "")
}
