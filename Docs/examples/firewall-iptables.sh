#!/bin/sh
# Country filter for a whole server with iptables + ipset (profile "full" of
# Data/geogate.conf: sets geogate-full-v4 / geogate-full-v6). Run once at boot,
# before the services; `geogate refresh` later swaps the sets' contents atomically
# and these rules keep pointing at them.
set -e
geogate apply --config /etc/geogate/geogate.conf          # creates and fills the sets
for cmd in iptables ip6tables; do
    fam=$([ $cmd = iptables ] && echo v4 || echo v6)
    $cmd -N GEOGATE 2>/dev/null || $cmd -F GEOGATE
    $cmd -A GEOGATE -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
    $cmd -A GEOGATE -i lo -j RETURN
    $cmd -A GEOGATE -m set --match-set geogate-full-$fam src -j RETURN
    $cmd -A GEOGATE -j DROP
    $cmd -C INPUT -j GEOGATE 2>/dev/null || $cmd -I INPUT 1 -j GEOGATE
done
