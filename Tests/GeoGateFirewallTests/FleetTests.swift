import Foundation
import Testing

/// A fleet on one machine (issue 16): a publisher's directory served by a real
/// nginx, and 20 nodes, each with its own config, state directory and trie,
/// running `geogate refresh` against it. Seventeen run in the publisher's network
/// namespace and reach nginx on its loopback; three are full servers, each in a
/// namespace of its own (joined to the publisher's by a veth pair), with the
/// kernel's sets and a daemon. Every refusal is checked on all 20: the exit
/// status, the live trie byte for byte, and on the full nodes the kernel's sets
/// and the daemon's answers.
@Suite(.serialized, .enabled(if: namespacesAvailable, "needs root and ip netns"))
struct FleetTests {
    static let lightNodes = 17
    static let fullNodes = 3
    static var nodes: [Int] { Array(1...(lightNodes + fullNodes)) }
    static func isFull(_ node: Int) -> Bool { node > lightNodes }

    /// Moves 198.51.100.0/24 from IT to CN and gives 203.0.113.0/24 to IT.
    static let secondData = TransactionTests.newData
    /// Gives 192.0.2.0/24 to IT as well.
    static let thirdData = """
        198.51.100.0,198.51.100.255,CN
        203.0.113.0,203.0.113.255,IT
        192.0.2.0,192.0.2.255,IT
        2001:db8:1::,2001:db8:1:ffff:ffff:ffff:ffff:ffff,CN
        2001:db8:3::,2001:db8:3:ffff:ffff:ffff:ffff:ffff,IT

        """

    @Test func aPublicationReachesEveryNodeAndNothingElseDoes() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let dir = scratch.path
        let publisher = Namespace(scratch, tag: "pub")
        defer { publisher.remove() }
        var full: [Int: Namespace] = [:]
        defer { for ns in full.values { ns.remove() } }
        for node in Self.nodes where Self.isFull(node) {
            let ns = Namespace(scratch, tag: "node\(node)")
            full[node] = ns
            let k = node - Self.lightNodes
            let joined = connect(publisher, ns, link: "gf\(k)\(getpid() % 10_000)", serverAddresses: ["10.97.\(k).1"],
                                 clientAddresses: ["10.97.\(k).2"], scratch: scratch)
            try #require(joined.status == 0, "\(joined.stderr)")
        }

        // The publisher: three keys (old, new, one no node trusts) and three datasets.
        var ids: [String: String] = [:]
        for keys in ["keys-old", "keys-new", "keys-other"] {
            // "key <id>: ..."
            let made = bash("\"$GEOGATE\" keygen --out \(dir)/\(keys)", in: scratch)
            try #require(made.status == 0, "\(made.stderr)")
            ids[keys] = String(made.stdout.dropFirst(4).prefix(16))
        }
        let oldID = ids["keys-old"]!, newID = ids["keys-new"]!, otherID = ids["keys-other"]!
        for (name, data, built) in [("a", testDataset, 1000), ("b", Self.secondData, 2000), ("c", Self.thirdData, 3000)] {
            let input = scratch.write("\(name).csv", data)
            let r = bash("\"$GEOGATE\" compile -q \(input) -o \(dir)/\(name).trie --build-time \(built)", in: scratch)
            try #require(r.status == 0, "\(r.stderr)")
        }
        /// Publishes `trie` with `keys` into `www/<into>` (a fresh directory for a saved publication).
        func publish(_ trie: String, _ keys: String, into: String = "geogate") -> CommandResult {
            bash("\"$GEOGATE\" publish --db \(dir)/\(trie).trie --dir \(dir)/www/\(into) --sign-key \(dir)/\(keys)/geogate.key", in: scratch)
        }
        func sha(_ path: String) -> String {
            bash("sha256sum \(path) | cut -d' ' -f1", in: scratch).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let shaA = sha(dir + "/a.trie"), shaB = sha(dir + "/b.trie"), shaC = sha(dir + "/c.trie")

        // nginx in the publisher's namespace, with the shipped snippet: loopback for
        // the 17, the veth addresses for the 3.
        let publisherSnippet = try String(contentsOfFile: repositoryRoot + "/Docs/examples/nginx-publisher.conf", encoding: .utf8)
        #expect(publisherSnippet.contains("root /var/www;"))
        try FileManager.default.createDirectory(atPath: dir + "/www/geogate", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/nginx-tmp", withIntermediateDirectories: true)
        scratch.write("nginx.conf", """
            user root;
            daemon off;
            master_process off;
            error_log \(dir)/nginx-error.log;
            pid \(dir)/nginx.pid;
            events {}
            http {
                log_format fleet '$status $bytes_sent $request_uri';
                access_log \(dir)/access.log fleet;
                client_body_temp_path \(dir)/nginx-tmp; proxy_temp_path \(dir)/nginx-tmp;
                fastcgi_temp_path \(dir)/nginx-tmp; uwsgi_temp_path \(dir)/nginx-tmp; scgi_temp_path \(dir)/nginx-tmp;
                server {
                    listen 8080;
                    \(publisherSnippet.replacingOccurrences(of: "root /var/www;", with: "root \(dir)/www;"))
                }
            }
            """)
        func startNginx() throws {
            let started = publisher.run("""
                /usr/sbin/nginx -p \(dir) -c \(dir)/nginx.conf > nginx.out 2>&1 &
                for i in $(seq 100); do [ -s \(dir)/nginx.pid ] && exit 0; sleep 0.05; done; exit 1
                """)
            try #require(started.status == 0, "cannot start /usr/sbin/nginx (Scripts/install-deps.sh installs nginx-light): \(started.stderr)")
        }
        func stopNginx() {
            publisher.run("kill $(cat \(dir)/nginx.pid); for i in $(seq 100); do [ -e \(dir)/nginx.pid ] || exit 0; sleep 0.05; done")
        }
        try startNginx()

        // The 20 nodes.
        func node(_ n: Int) -> String { "\(dir)/node\(n)" }
        func writeConfigs(trusting keys: [String]) {
            for n in Self.nodes {
                try? FileManager.default.createDirectory(atPath: node(n), withIntermediateDirectories: true)
                // Even nodes give the key inline, odd ones its file.
                let trusted = keys.map { k in
                    n % 2 == 0 ? "\"" + ((try? String(contentsOfFile: "\(dir)/\(k)/geogate.pub", encoding: .utf8)) ?? "")
                        .trimmingCharacters(in: .whitespacesAndNewlines) + "\"" : "\(dir)/\(k)/geogate.pub"
                }
                let host = Self.isFull(n) ? "10.97.\(n - Self.lightNodes).1" : "127.0.0.1"
                scratch.write("node\(n)/geogate.conf", """
                    runtime-dir: \(node(n))/run
                    lock-wait: 60
                    database: \(node(n))/live.trie
                    daemon:
                      socket: \(node(n))/geogate.sock
                      watch-interval: 0
                    profiles:
                      full:
                        scope: \(Self.isFull(n) ? "full-server" : "web-only")
                        allow-countries: [IT]
                        no-country: deny
                    refresh:
                      state-dir: \(node(n))/state
                      min-ranges: 2
                      max-family-change: 100
                      max-country-change: 100
                      retries: 0
                      timeout: 10
                      apply-sets: \(Self.isFull(n))
                      reload-daemon: \(Self.isFull(n))
                      sources:
                        - trie: http://\(host):8080/geogate/
                          public-key: [\(trusted.joined(separator: ", "))]

                    """)
            }
        }
        writeConfigs(trusting: ["keys-old"])

        /// One refresh on every node at once; each node's exit status, and its log in node<n>/refresh.log.
        func round(_ label: String) -> [Int: Int32] {
            var script = ""
            for n in Self.nodes {
                let ns = Self.isFull(n) ? full[n]!.name : publisher.name
                script += "(ip netns exec \(ns) \"$GEOGATE\" refresh --config \(node(n))/geogate.conf > \(node(n))/refresh.log 2>&1; echo \(n) $? >> \(dir)/round.out) &\n"
            }
            let r = bash("rm -f \(dir)/round.out\n" + script + "wait\ncat \(dir)/round.out", in: scratch)
            var out: [Int: Int32] = [:]
            for line in r.stdout.split(separator: "\n") {
                let w = line.split(separator: " ")
                if w.count == 2, let n = Int(w[0]), let s = Int32(w[1]) { out[n] = s }
            }
            return out
        }
        func log(_ n: Int) -> String { (try? String(contentsOfFile: node(n) + "/refresh.log", encoding: .utf8)) ?? "" }
        func expectAll(_ statuses: [Int: Int32], _ status: Int32, _ label: String, logSays: String? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) {
            for n in Self.nodes {
                #expect(statuses[n] == status, "\(label): node \(n) exited \(statuses[n].map(String.init) ?? "?"): \(log(n))",
                        sourceLocation: sourceLocation)
                if let logSays {
                    #expect(log(n).contains(logSays), "\(label): node \(n)'s log: \(log(n))", sourceLocation: sourceLocation)
                }
            }
        }
        func expectLive(_ expected: String, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
            for n in Self.nodes {
                #expect(sha(node(n) + "/live.trie") == expected, "\(label): node \(n)'s live trie", sourceLocation: sourceLocation)
            }
        }
        /// On a full node: the kernel's set and the daemon, for two addresses.
        func fullState(_ n: Int) -> String {
            full[n]!.run("""
                for a in 198.51.100.7 203.0.113.9 192.0.2.5; do
                  ipset -q test geogate-full-v4 $a && echo "$a in" || echo "$a out"
                  "$GEOGATE" check --socket \(node(n))/geogate.sock --profile full $a
                done
                """).stdout
        }
        func kernel(_ n: Int) -> String { full[n]!.run("ipset save | sort").stdout }

        // 1. The first publication reaches all 20.
        #expect(publish("a", "keys-old").status == 0)
        let first = round("first")
        expectAll(first, 0, "first publication", logSays: "signed by key \(oldID)")
        expectLive(shaA, "first publication")
        // The full nodes' daemons start on the first data.
        for (n, ns) in full {
            let started = ns.run("""
                "$GEOGATE" serve --config \(node(n))/geogate.conf > \(node(n))/serve.log 2>&1 &
                for i in $(seq 100); do [ -S \(node(n))/geogate.sock ] && exit 0; sleep 0.05; done; exit 1
                """)
            try #require(started.status == 0, "node \(n)'s daemon did not start")
            let state = fullState(n)
            #expect(state.contains("198.51.100.7 in") && state.contains("203.0.113.9 out") && state.contains("ALLOW IT"), "node \(n): \(state)")
            try expectKernelSetsAsPlanned(ns, node(n) + "/geogate.conf", dir + "/a.trie", "node \(n), first publication")
            let status = ns.run("\"$GEOGATE\" status --config \(node(n))/geogate.conf").stdout
            #expect(status.contains("signature: key \(oldID), verified with \(dir)/keys-old/geogate.pub")
                    || status.contains("signature: key \(oldID), verified with refresh.sources public-key[0] (inline)"), "\(status)")
        }

        // The snippet serves the publication, and not the publishers' lock file.
        let headers = publisher.run("curl -sI http://127.0.0.1:8080/geogate/manifest; curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/geogate/.publish.lock").stdout
        #expect(headers.contains("200 OK") && headers.contains("Cache-Control: no-cache") && headers.hasSuffix("403"), "\(headers)")

        // 2. The next run of every node is one conditional request: a 304, exit 3.
        let requestsBefore = bash("wc -l < \(dir)/access.log", in: scratch).stdout
        expectAll(round("second"), 3, "no new publication")
        let seen = bash("tail -n +\(Int(requestsBefore.trimmingCharacters(in: .whitespacesAndNewlines))! + 1) \(dir)/access.log", in: scratch).stdout
        #expect(seen.split(separator: "\n").count == 20 && seen.split(separator: "\n").allSatisfy { $0.hasPrefix("304 ") && $0.hasSuffix("/geogate/manifest") },
                "20 requests, each a 304 of the manifest: \(seen)")

        // 3. A new publication: every node, its sets and its daemon follow.
        #expect(publish("b", "keys-old").status == 0)
        expectAll(round("third"), 0, "second publication")
        expectLive(shaB, "second publication")
        for (n, ns) in full {
            let state = fullState(n)
            #expect(state.contains("198.51.100.7 out") && state.contains("203.0.113.9 in") && state.contains("DENY CN"), "node \(n): \(state)")
            try expectKernelSetsAsPlanned(ns, node(n) + "/geogate.conf", dir + "/b.trie", "node \(n), second publication")
        }
        // (Saved: publication C by the trusted key, C by a key no node trusts, and A again.)
        #expect(publish("c", "keys-old", into: "saved-c").status == 0)
        #expect(publish("c", "keys-other", into: "saved-other").status == 0)
        #expect(publish("a", "keys-old", into: "saved-a").status == 0)
        let kernelB = Dictionary(uniqueKeysWithValues: full.keys.map { ($0, kernel($0)) })
        let answersB = Dictionary(uniqueKeysWithValues: full.keys.map { ($0, fullState($0)) })

        /// Serves a saved publication, changed by `edit` (bash, in www/geogate).
        /// Each served manifest gets a time of its own, as a publisher gives it
        /// (nginx's ETag is the time in seconds and the size).
        var served = 0
        func serve(_ saved: String, edit: String = "") {
            served += 1
            let r = bash("""
                rm -rf \(dir)/www/geogate && cp -a \(dir)/www/\(saved) \(dir)/www/geogate && cd \(dir)/www/geogate && \(edit.isEmpty ? "true" : edit)
                touch -d @$(( $(date +%s) + 100 + \(served) )) manifest
                """, in: scratch)
            #expect(r.status == 0, "\(r.stderr)")
        }
        func expectRefused(_ label: String, logSays: String) {
            expectAll(round(label), 1, label, logSays: logSays)
            expectLive(shaB, label)
            for n in full.keys {
                #expect(kernel(n) == kernelB[n], "\(label): node \(n)'s kernel sets are those of the second publication")
                #expect(fullState(n) == answersB[n], "\(label): node \(n)'s daemon answers as before")
            }
        }
        let trieC = "geogate-\(shaC.prefix(16)).trie"

        // 4. A tampered trie, the manifest made to match it (and without the gzip
        // line, so the nodes fetch the plain file): the signature does not.
        serve("saved-c", edit: """
            sed -i '/^gzip /d' manifest
            printf '\\x01' | dd of=\(trieC) bs=1 seek=300 conv=notrunc 2>/dev/null
            sed -i "s/^sha256 .*/sha256 $(sha256sum \(trieC) | cut -d' ' -f1)/" manifest
            """)
        expectRefused("tampered trie", logSays: "does not match the file's bytes")

        // 5. A manifest that names another hash.
        // (The first publication's hash: not what the nodes have, not what they get.)
        serve("saved-c", edit: "sed -i 's/^sha256 .*/sha256 \(shaA)/' manifest")
        expectRefused("manifest names another hash", logSays: "SHA-256 \(shaC), the manifest names \(shaA)")

        // 6. A cut transfer: the gzipped trie shorter than the manifest says; the
        // plain one, too.
        serve("saved-c", edit: "truncate -s 300 \(trieC).gz")
        expectRefused("truncated gzip", logSays: "\(trieC).gz: 300 bytes, the manifest says")
        serve("saved-c", edit: "sed -i '/^gzip /d' manifest; truncate -s 1000 \(trieC)")
        expectRefused("truncated trie", logSays: "\(trieC): 1000 bytes, the manifest says")

        // 7. A signature by a key no node trusts.
        serve("saved-other")
        expectRefused("unknown key", logSays: "signed by key \(otherID), which is not among the trusted keys")

        // 8. An old publication served again (properly signed): no step back.
        serve("saved-a")
        expectRefused("replayed old publication", logSays: "before the live one (2000): an old publication")

        // 9. The publisher down: exit 1, the data kept.
        stopNginx()
        expectRefused("publisher down", logSays: "publisher")
        try startNginx()

        // 10. Key rotation: both keys trusted, a publication by the new key is taken...
        writeConfigs(trusting: ["keys-old", "keys-new"])
        _ = bash("rm -rf \(dir)/www/geogate", in: scratch)
        #expect(publish("c", "keys-new").status == 0)
        expectAll(round("rotation"), 0, "rotation, both keys trusted", logSays: "signed by key \(newID)")
        expectLive(shaC, "rotation")
        for (n, ns) in full {
            #expect(fullState(n).contains("192.0.2.5 in"), "node \(n) serves the new key's data")
            try expectKernelSetsAsPlanned(ns, node(n) + "/geogate.conf", dir + "/c.trie", "node \(n), rotation")
        }
        // ...then only the new key: the same publication stays live (304)...
        writeConfigs(trusting: ["keys-new"])
        expectAll(round("new key only"), 3, "only the new key trusted")
        for (n, ns) in full {
            let status = ns.run("\"$GEOGATE\" status --config \(node(n))/geogate.conf").stdout
            #expect(status.contains("signature: key \(newID), verified"), "node \(n): \(status)")
        }
        // ...and the same bytes re-signed by the retired key are refused, the data kept.
        #expect(publish("c", "keys-old").status == 0)
        expectAll(round("retired key"), 1, "retired key", logSays: "signed by key \(oldID), which is not among the trusted keys")
        expectLive(shaC, "retired key")
    }
}
