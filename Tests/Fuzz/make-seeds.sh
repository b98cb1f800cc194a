#!/usr/bin/env bash
# Writes the seed corpus under Tests/Fuzz/corpus/TARGET/: real data cut down
# (Data/), the shapes each format's documentation shows, and the error cases
# the unit tests name. Run again after a format change; commit the result.
# Needs the built geogate (for the trie seeds), perl's MaxMind::DB::Writer
# (Scripts/make-mmdb.pl), gzip, xz, tar and zip.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=Tests/Fuzz/corpus
geogate=${GEOGATE_BIN:-.build/release/geogate}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
for t in trie address lookup tor dbip-csv maxmind-csv mmdb rir cidr-list archive config entries ami feed manifest protocol http; do mkdir -p "$out/$t"; done
seed() { printf '%b' "$3" > "$out/$1/$2"; }

# --- Real text, cut down: the first networks of the embedded Tor/IPFire files.
gzip -dc Data/geoip.gz | sed -n 1,40p > "$work/geoip"
gzip -dc Data/geoip6.gz | sed -n 1,40p > "$work/geoip6"
cp "$work/geoip" "$out/tor/geoip"
cp "$work/geoip6" "$out/tor/geoip6"
gzip -9nc "$work/geoip" > "$out/tor/geoip.gz"
xz -9c "$work/geoip6" > "$out/tor/geoip6.xz"
seed tor bad-country '16777216,16777471,UX\n'
seed tor inverted '16777471,16777216,AU\n'
seed tor overlap '16777216,16777471,AU\n16777300,16777400,JP\n'
seed tor crlf-bom '\xef\xbb\xbf16777216,16777471,AU\r\n'
head -c 60 "$out/tor/geoip.gz" > "$out/tor/truncated.gz"

# --- DB-IP lite CSV.
seed dbip-csv lite '"1.0.0.0","1.0.0.255","AU"\n"1.0.1.0","1.0.3.255","CN"\n"2001:200::","2001:200:ffff:ffff:ffff:ffff:ffff:ffff","JP"\n'
seed dbip-csv mapped '::ffff:1.0.0.0,::ffff:1.0.0.255,AU\n::fffe:ffff:fff0,::ffff:0.0.0.15,JP\n2001:db8::,2001:db8::ff,IT\n'
seed dbip-csv unassigned '1.0.0.0,1.0.0.255,ZZ\n1.0.1.0,1.0.1.255,\n1.0.2.0,1.0.2.255,--\n'
seed dbip-csv mixed-family '1.0.0.0,2001:db8::,AU\n'
printf '1.0.0.0,1.0.0.255,AU\n' | xz -9c > "$out/dbip-csv/lite.xz"

# --- MaxMind CSV: Locations, a --blocks-- line, then blocks.
loc='geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,is_in_european_union\n2077456,en,OC,Oceania,AU,Australia,0\n6255148,en,EU,Europe,,,0\n3175395,en,EU,Europe,IT,Italy,1\n'
seed maxmind-csv v4 "$loc--blocks--\nnetwork,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider,is_anycast\n1.0.0.0/24,2077456,2077456,,0,0,\n2.0.0.0/16,,3175395,,0,0,\n5.0.0.0/8,,,,1,0,\n6.0.0.0/8,,,,0,1,\n"
seed maxmind-csv v6 "$loc--blocks--\nnetwork,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider\n2001:200::/32,3175395,3175395,,0,0\n::ffff:1.0.0.0/120,2077456,,,0,0\n"
seed maxmind-csv unknown-id "$loc--blocks--\nnetwork,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider\n1.0.0.0/24,999,,,0,0\n"
seed maxmind-csv bad-header 'geoname_id,locale_code\n1,en\n--blocks--\nnetwork\n1.0.0.0/24\n'

# --- MMDB, from MaxMind's writer (Scripts/make-mmdb.pl): IPv6 tree with IPv4 at ::/96.
printf '16777216,16777471,AU\n1358054656,1358055167,GB\n' > "$work/v4"
printf '2001:620::,2001:627:ffff:ffff:ffff:ffff:ffff:ffff,CH\n2a02:8070::,2a02:8070:ffff:ffff:ffff:ffff:ffff:ffff,DE\n' > "$work/v6"
perl Scripts/make-mmdb.pl "$out/mmdb/small.mmdb" "$work/v4" "$work/v6"
gzip -9nc "$out/mmdb/small.mmdb" > "$out/mmdb/small.mmdb.gz"
head -c 200 "$out/mmdb/small.mmdb" > "$out/mmdb/cut"

# --- RIR delegated(-extended) statistics.
seed rir extended '2|ripencc|20261129|5|19830705|20261128|+0100\nripencc|*|ipv4|*|3|summary\nripencc|*|ipv6|*|2|summary\nripencc|FR|ipv4|2.0.0.0|1048576|20100712|allocated|abc\nripencc|IT|ipv4|5.8.0.0|768|20120101|assigned|def\nripencc|DE|ipv6|2001:608::|32|19990820|allocated|ghi\nripencc||ipv4|5.9.0.0|256||available|\nripencc|EU|asn|3333|1|19930901|allocated|x\n'
seed rir bad-count 'ripencc|FR|ipv4|2.0.0.0|0|20100712|allocated\nripencc|FR|ipv6|2001:608::|129|20100712|allocated\n'

# --- CIDR lists (ipdeny zones; the country from --list-country in the target's options, else the name).
seed cidr-list zone '# it.zone\n2.32.0.0/11\n5.8.0.0/21\n5.8.8.0-5.8.9.255\n2001:b00::/29\n'
seed cidr-list bad-prefix '2.32.0.0/33\n'
seed cidr-list host-bits '2.32.0.1/11\n'

# --- Archives: the shapes refresh unpacks (ipdeny .tar.gz, MaxMind .zip, .tar.xz).
mkdir -p "$work/a/all-zones" "$work/z/GeoLite2-Country-CSV_20261128"
printf '2.32.0.0/11\n5.8.0.0/21\n' > "$work/a/all-zones/it.zone"
printf '1.0.0.0,1.0.0.255,AU\n' > "$work/a/all-zones/au.csv"
printf 'x\n' > "$work/a/all-zones/.hidden.zone"
(cd "$work/a" && tar --owner=0 --group=0 --mtime=@0 -czf "$OLDPWD/$out/archive/zones.tar.gz" all-zones)
(cd "$work/a" && tar --owner=0 --group=0 --mtime=@0 -cJf "$OLDPWD/$out/archive/zones.tar.xz" all-zones)
(cd "$work/a" && tar --owner=0 --group=0 --mtime=@0 -cf "$OLDPWD/$out/archive/zones.tar" all-zones)
printf '1.0.0.0,1.0.0.255,AU\n' > "$work/z/GeoLite2-Country-CSV_20261128/blocks.csv"
(cd "$work/z" && TZ=UTC zip -qX -r "$OLDPWD/$out/archive/csv.zip" GeoLite2-Country-CSV_20261128)
head -c 300 "$out/archive/zones.tar" > "$out/archive/cut.tar"

# --- Config: the shipped one, and the error cases the policy tests name.
cp Data/geogate.conf "$out/config/shipped.conf"
seed config minimal 'profiles:\n  web:\n    scope: web-only\n    allow-countries: [IT]\n'
seed config networks 'trusted:\n  defaults: false\n  networks: [10.0.0.0/8, "2001:db8::/32"]\nprofiles:\n  p:\n    scope: full-server\n    deny-countries: [CN, RU]\n    allow-networks: [1.2.3.0/24, 0.0.0.0/0]\n    block-networks: [1.2.3.4, ::/0]\n    no-country: allow\n    set-name: geo\n'
seed config refresh 'profiles:\n  p: {scope: web-only, allow-countries: [IT]}\nrefresh:\n  keep-previous: 2\n  stale-after: 2d\n  sources:\n    - name: tor\n      url: https://example.org/geoip.gz\n      sha256: 0000000000000000000000000000000000000000000000000000000000000000\n    - name: zones\n      file: /tmp/zones.tar.gz\n      members: [.zone]\n      list-country: IT\n'
seed config fleet-node 'profiles:\n  p: {scope: web-only, allow-countries: [IT]}\nrefresh:\n  sources:\n    - trie: https://geo.example.com/geogate/\n      public-key: [/etc/geogate/keys/publisher.pub, "geogate-ed25519 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]\n'
seed config fleet-publisher 'profiles:\n  p: {scope: web-only, allow-countries: [IT]}\nrefresh:\n  publish: {dir: /var/www/geogate, sign-key: /etc/geogate/keys/geogate.key, keep: 3}\n  sources:\n    - provider: rir\n'
seed config unknown-key 'profiles:\n  p:\n    scope: web-only\n    allow-countrys: [IT]\n'
seed config same-network 'profiles:\n  p:\n    scope: web-only\n    allow-countries: [IT]\n    allow-networks: [1.0.0.0/8]\n    block-networks: [1.0.0.0/8]\n'
seed config anchors 'a: &x [IT, CH]\nprofiles:\n  p:\n    scope: web-only\n    allow-countries: *x\n'
seed config tab-indent 'profiles:\n\tp: 1\n'

# --- Address text: one text a line, the forms people write and the near misses.
seed address forms '81.2.69.160\n::\n::1\n1::\n2001:620::1\n2001:0620:0000:0000:0000:0000:0000:0001\n2A02:26F0::A\n1:2:3:4:5:6:7::\n::2:3:4:5:6:7:8\n::ffff:81.2.69.1\n64:ff9b::1.2.3.4\nfe80::1%eth0'
seed address near-misses '1:2:3:4:5:6:7:8:9\n1::2::3\n12345::\n1:2:3:4:5:6:7:\n:1::\n1:::2\ng::\n2001:620::1/64\n01.2.3.4\n1.2.3.4.5\n256.1.1.1\n::1.2.3\n\x80::1'

# --- lookup's stream: byte 0 the layout (bits 0-2 field, bit 3 delimiter, bits 4-5 which, bit 6 JSON).
seed lookup plain '\x0081.2.69.160\n 10.1.2.3 \r\n\n2a00::1\nnot-an-ip\n::ffff:2.3.4.5\nlast'
seed lookup nginx-field-1 '\x0110.0.0.7 - - [28/Nov/2026:03:12:44 +0000] "GET / HTTP/1.1" 200\n2001:db8::9  -  - "x"\n- - -\n'
seed lookup asterisk-slash-6 '\x1ea="IPV4/UDP/10.0.0.5/5060",RemoteAddress="IPV4/UDP/2.3.4.5/5060"\nno slashes here\n'
seed lookup json-field-csv '\x491.0.0.1,"quoted" back\\slash\ttab\x07\xff\xc3\xa9\n198.51.100.1,x\n,\n'
printf '\x00' > "$out/lookup/long-line"; head -c 70000 /dev/zero | tr '\0' '9' >> "$out/lookup/long-line"; printf '\n10.0.0.1\n' >> "$out/lookup/long-line"

# --- Line protocol: byte 0 sets the read size (0: one read), then request lines.
seed protocol requests '\x00LOOKUP 1.0.0.1\nCHECK web 2.2.3.4\nCHECK full 10.9.1.1\ncheck full ::ffff:10.1.1.1\nINFO\nSTATS\nPING\nRELOAD test\nLOOKUP 2001:db8::1\r\n'
seed protocol errors '\x03LOOKUP\nCHECK nope 1.2.3.4\nLOOKUP 1.2.3.4 5\nFROB\n\n   \nLOOKUP 999.1.1.1\nCHECK web\x01 1.1.1.1\nlast-without-newline'
printf '\x07' > "$out/protocol/too-long"; head -c 1100 /dev/zero | tr '\0' 'A' >> "$out/protocol/too-long"; printf '\nPING\n' >> "$out/protocol/too-long"

# --- Feeds: byte 0 the cap, then the shapes Spamhaus DROP, FireHOL and plain lists have.
seed feed spamhaus-drop '\x40; Spamhaus DROP List 2026/11/30\n; Last-Modified: Mon, 30 Nov 2026\n1.10.16.0/20 ; SBL256894\n2.56.192.0/22 ; SBL459831\n'
seed feed firehol-netset '\x40#\n# firehol_level1\n#\n0.0.0.0/8\n2001:db8:bad::/48\n\t 5.188.10.0/23  \r\n'
seed feed plain-and-bad '\x02203.0.113.7\n198.51.100.0/24 extra words\n10.0.0.1/8\n0.0.0.0/0\n'

# --- A fleet publisher's manifest: a real one's shape, and the refusals the tests name.
seed manifest published 'geogate-manifest 1\ntrie geogate-0123456789abcdef.trie\nsize 5242880\nsha256 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\ngzip geogate-0123456789abcdef.trie.gz 2202009\nsignature geogate-ed25519-signature 0011223344556677 AAAA\nbuilt 1764471600\npublished 1764472000\nsource dbip-country-lite.csv.gz 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 4718592 dbip-csv\n'
seed manifest path-traversal 'geogate-manifest 1\ntrie ../../etc/passwd\nsize 10\nsha256 abababababababababababababababababababababababababababababababab\nsignature x\nbuilt 1\n'
seed manifest twice 'geogate-manifest 1\r\ntrie a.trie\r\ntrie b.trie\r\n'

# --- Run-time entries: the state file, then each line as an entry request.
seed entries state-file '# geogate run-time entries\nv1\nblock full 203.0.113.7/32 1800000600 1800000000 0 SIP scanner\nallow web 2001:db8::/48 - 1800000000 33 login alice\n'
seed entries requests 'ALLOW full 192.0.2.44 1h phone 201 registered\nBLOCK full 203.0.113.0/24 0\nUNLIST full ::ffff:192.0.2.1\nENTRIES full\nBLOCK full 0.0.0.0/0 5\nALLOW web 10.0.0.1/8 1x\n'
seed entries bad-network 'v1\nallow full 10.0.0.1/8 - 1 0\n'

# --- Asterisk Manager Interface: byte 0 the read size, then the recorded session of the tests.
{ printf '\x07Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\n'
  sed 's/$/\r/' Tests/GeoGateDaemonTests/ami/session.txt; } > "$out/ami/session"
{ printf '\x85Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n'
  body=$(sed '/^---$/,$d' Tests/GeoGateDaemonTests/esl/events.txt)
  printf 'Content-Length: %d\nContent-Type: text/event-plain\n\n%s\n' "$(( ${#body} + 1 ))" "$body"; } > "$out/ami/esl-session"
seed ami odd '\x00banner\nEvent: SuccessfulAuth\nService: PJSIP\nRemoteAddress: IPV6/UDP/::ffff:1.2.3.4/5060\nno colon here\nEvent: SuccessfulAuth\n\nRemoteAddress: IPV4/UDP/1.2.3.4\n\n'

# --- HTTP auth_request endpoint: byte 0 sets the read size, then requests.
seed http check '\x00GET /check?profile=web HTTP/1.1\r\nHost: geogate\r\nX-Real-IP: 198.51.100.9\r\n\r\nGET /check?profile=full&x=1 HTTP/1.1\r\nHost: g\r\nX-Real-IP: 2001:db8::5\r\n\r\n'
seed http metrics '\x05GET /metrics HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n'
seed http bad '\x00POST /check?profile=web HTTP/1.0\r\nContent-Length: 4\r\n\r\nabcdGET /check HTTP/1.1\r\nX-Real-IP: x\r\n\r\nGET /nothing HTTP/1.1\r\n\r\n'
seed http chunked '\x00GET /check?profile=web HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Real-IP: 1.0.0.1\r\n\r\n3\r\nabc\r\n0\r\n\r\n'

# --- Trie files: a small one compiled by geogate, and cut ones.
"$geogate" compile "$out/tor/geoip" "$out/tor/geoip6" -o "$out/trie/small.trie" >/dev/null
printf '1.0.0.0/24\n' > "$work/au.zone"
"$geogate" compile --format cidr-list --country AU "$work/au.zone" -o "$out/trie/one.trie" >/dev/null
head -c 64 "$out/trie/small.trie" > "$out/trie/header-only"
echo "seeds written to $out: $(find "$out" -type f | wc -l) files, $(du -sh "$out" | cut -f1)"
