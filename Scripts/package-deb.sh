#!/usr/bin/env bash
# Builds geogate_<version>_<arch>.deb: a release build linked with
# --static-swift-stdlib (runs without any Swift toolchain), man pages generated
# from the argument parser's help (swift-argument-parser's generate-manual),
# shell completions, the config as a conffile, the dataset, the PHP client, the
# systemd units with sysusers.d and tmpfiles.d, the docs and examples; Depends
# computed by dpkg-shlibdeps; checked by lintian.
#
#   Scripts/package-deb.sh                 build (in .build-deb/), then package into .build-deb/
#   Scripts/package-deb.sh --no-build      package the binary already built in .build-deb/
#   Scripts/package-deb.sh --out DIR       write the .deb into DIR
#   Scripts/package-deb.sh --no-lintian    skip the lintian check
#   Scripts/package-deb.sh --build-only    only build (Scripts/test.sh: the package tests package it)
#
# Prints the .deb's path on the last line. $SOURCE_DATE_EPOCH (default: the last
# commit's time) dates the man pages and the files: the same tree gives the same
# package.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=.build-deb
out=$scratch
build=1
package=1
lintian=1
while [ $# -gt 0 ]; do
    case "$1" in
    --no-build) build=0 ;;
    --build-only) package=0 ;;
    --no-lintian) lintian=0 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-deb.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

version=$(sed -nE 's/^let geogateVersion = "([^"]+)"$/\1/p' Sources/geogate/GeoGate.swift)
[ -n "$version" ] || { echo "package-deb.sh: no geogateVersion in Sources/geogate/GeoGate.swift" >&2; exit 1; }
arch=$(dpkg --print-architecture)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

if [ "$build" = 1 ]; then
    # Its own scratch directory: the tests' build (-enable-testing, shared Swift
    # libraries) and this one would otherwise rebuild each other's modules.
    # -z now: all symbols bound at start, so the GOT can be read-only (full RELRO).
    swift build -c release --static-swift-stdlib -Xlinker -z -Xlinker now --scratch-path "$scratch" --product geogate
    swift build -c release --scratch-path "$scratch" --product generate-manual
fi
[ "$package" = 1 ] || exit 0
binary=$scratch/release/geogate
manual=$scratch/release/generate-manual
for f in "$binary" "$manual"; do
    [ -x "$f" ] || { echo "package-deb.sh: $f is missing: run without --no-build first" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/geogate
doc=$pkg/usr/share/doc/geogate

# The program, stripped (debug symbols would triple its size).
install -D -m 0755 "$binary" "$pkg/usr/bin/geogate"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/geogate"

# Man pages: geogate(1) and geogate-<verb>(1), from the same help `--help` prints.
mkdir -p "$work/man" "$pkg/usr/share/man/man1"
"$manual" "$pkg/usr/bin/geogate" --multi-page --date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" \
    --authors "The geogate developers" -o "$work/man"
verbs=$(cd "$work/man" && ls geogate.*.1 | sed -E 's/^geogate\.(.*)\.1$/\1/' | paste -sd'|')
for page in "$work"/man/*.1; do
    name=$(basename "$page" .1)
    name=${name//./-}                       # geogate.compile -> geogate-compile
    verb=${name#geogate}; verb=${verb#-}
    # Debian names a subcommand's page geogate-compile(1) (generate-manual:
    # geogate.compile), and whatis wants that one word in NAME; the synopsis
    # still reads "geogate compile ...".
    sed -E -e "s/\\bgeogate\\.($verbs)\\b/geogate-\\1/g" -e 's/^\.Dt GEOGATE\.([A-Z]+) /.Dt GEOGATE-\1 /' \
        -e 's/^\.Nm "geogate ([a-z]+)"$/.Nm geogate-\1/' \
        -e "$( [ -n "$verb" ] && printf 's/^\\.Nm$/.Nm geogate\\n.Cm %s/' "$verb" || echo 's/^$//' )" \
        "$page" | gzip -9n > "$pkg/usr/share/man/man1/$name.1.gz"
done

# Completions, from the argument parser.
install -d "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
    "$pkg/usr/share/fish/vendor_completions.d"
# (bash-completion sources the file: no #! line.)
"$pkg/usr/bin/geogate" --generate-completion-script bash | sed '1{/^#!/d}' > "$pkg/usr/share/bash-completion/completions/geogate"
"$pkg/usr/bin/geogate" --generate-completion-script zsh > "$pkg/usr/share/zsh/vendor-completions/_geogate"
"$pkg/usr/bin/geogate" --generate-completion-script fish > "$pkg/usr/share/fish/vendor_completions.d/geogate.fish"

# Config (a conffile), data, web client and page.
install -D -m 0644 Data/geogate.conf "$pkg/etc/geogate/geogate.conf"
install -D -m 0644 Data/geoip.gz "$pkg/usr/share/geogate/geoip.gz"
install -m 0644 Data/geoip6.gz Docs/clients/geogate.php "$pkg/usr/share/geogate/"
install -m 0644 Docs/web/denied.html "$pkg/usr/share/geogate/denied.html"

# systemd.
install -d "$pkg/lib/systemd/system" "$pkg/usr/lib/sysusers.d" "$pkg/usr/lib/tmpfiles.d"
install -m 0644 Docs/systemd/geogate.service Docs/systemd/geogate.socket Docs/systemd/geogate-refresh.service \
    Docs/systemd/geogate-refresh.timer Docs/systemd/geogate-sets.service "$pkg/lib/systemd/system/"
install -m 0644 Packaging/debian/sysusers.conf "$pkg/usr/lib/sysusers.d/geogate.conf"
install -m 0644 Packaging/debian/tmpfiles.conf "$pkg/usr/lib/tmpfiles.d/geogate.conf"

# What lintian reports that we accept, each with its reason.
install -D -m 0644 Packaging/debian/lintian-overrides "$pkg/usr/share/lintian/overrides/geogate"

# Docs and examples.
install -d "$doc/examples"
install -m 0644 README.md Docs/PROTOCOL.md Docs/FORMAT.md Docs/TRANSACTIONS.md "$doc/"
install -m 0644 Data/README.md "$doc/README.Data.md"
install -m 0644 Packaging/debian/copyright "$doc/copyright"
install -m 0644 Docs/examples/firewall-iptables.sh Docs/examples/firewall-nft.sh Docs/examples/geogate.cron \
    Docs/examples/nginx-geogate.conf Docs/systemd/geogate-self-refresh.conf \
    Docs/examples/nginx-publisher.conf Docs/systemd/geogate-publish.conf \
    Docs/examples/asterisk-manager.conf Docs/examples/geogate-ami.service "$doc/examples/"
install -m 0644 Data/geogate.conf "$doc/examples/geogate.conf"
install -m 0644 Docs/fail2ban/geogate.conf "$doc/examples/fail2ban-filter-geogate.conf"
install -m 0644 Docs/fail2ban/geogate.local "$doc/examples/fail2ban-jail-geogate.local"
sed -e "s/@VERSION@/$version/" -e "s/@DATE@/$(date -u -R -d "@$SOURCE_DATE_EPOCH")/" \
    Packaging/debian/changelog.in | gzip -9n > "$doc/changelog.gz"

# Control: Depends from the libraries the binary really links (dpkg-shlibdeps
# wants a debian/control beside it).
mkdir -p "$work/shlibs/debian" "$pkg/DEBIAN"
touch "$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$pkg/usr/bin/geogate" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "package-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
    Packaging/debian/control.in > "$pkg/DEBIAN/control"
echo /etc/geogate/geogate.conf > "$pkg/DEBIAN/conffiles"
install -m 0755 Packaging/debian/postinst Packaging/debian/prerm Packaging/debian/postrm "$pkg/DEBIAN/"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"

# Every file dated the same: reproducible.
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb=$out/geogate_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null

if [ "$lintian" = 1 ]; then
    # Errors fail the build. Each tag we accept is overridden, with the reason,
    # in Packaging/debian/lintian-overrides (shipped in the package).
    lintian --fail-on error --info "$deb" >&2
fi
echo "$deb"
