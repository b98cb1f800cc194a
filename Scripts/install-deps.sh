#!/usr/bin/env bash
# Installs the Debian packages geogate builds, runs and tests with, if missing.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
    pkg-config          # finds the C libraries below
    libmaxminddb-dev    # MMDB import (and the libmaxminddb reference in tests/benchmarks)
    zlib1g-dev          # .gz inputs, trie checksum (CRC-32)
    liblzma-dev         # .xz inputs
    libmaxmind-db-writer-perl  # MaxMind's own MMDB writer: builds the test/benchmark reference MMDB
    mmdb-bin            # mmdblookup, for checking by hand
    libipset-dev        # loading firewall sets through libipset (geogate apply)
    libnetfilter-conntrack-dev  # the lockout guard reads the kernel's tracked flows (UDP: SIP phones)
    libnftables-dev     # apply --backend nft: the nft script as one kernel transaction
    libarchive-dev      # .tar.gz and .zip downloads (geogate refresh)
    ipset iptables nftables iproute2  # the firewall tools the sets are for; the tests drive them in namespaces
    socat util-linux iputils-ping     # test peers: TCP connections for the lockout check, ping through the rules
    php-cli nginx-light curl          # the daemon's real clients in the tests: the PHP login helper, nginx auth_request
    perl gzip xz-utils tar zip    # test data: provider archives (.tar.gz, .zip) served by the refresh tests
    tinyproxy                     # a real HTTP proxy on loopback: refresh through http_proxy / refresh.proxy
    dpkg-dev lintian              # Scripts/package-deb.sh: dpkg-shlibdeps computes Depends, lintian checks the .deb
    shellcheck                    # the shell scripts and examples we ship are checked in the tests
    fail2ban                      # fail2ban-regex reads the decision log with the shipped filter (its daemon is never started)
    python3-prometheus-client     # the metrics test parses /metrics with Prometheus' own parser
)

# `install-deps.sh bench`: also what Benchmarks/run.sh measures with and against.
if [ "${1:-}" = bench ]; then
    packages+=(hyperfine redis-server gcc)  # gcc: Benchmarks/reference/mmdb-lookup.c
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "geogate: installing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null; then
    SUDO="sudo"
else
    echo "geogate: these packages are missing and I am not root: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Services in these packages (nginx, tinyproxy, fail2ban) are for the tests to
# start themselves: none may start at installation (fail2ban's would add rules to
# this machine's firewall). Debian's policy-rc.d says so for the install, if the
# machine has none of its own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
