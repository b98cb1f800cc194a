#!/bin/sh
# Country filter for a whole server with iptables + ipset (profile "full" of
# Data/geogate.conf: sets geogate-full-v4 / geogate-full-v6, and the run-time
# entries' geogate-full-rt-block-* / geogate-full-rt-allow-*). Run once at boot,
# before the services; `geogate refresh` later swaps the sets' contents atomically
# and these rules keep pointing at them; at boot, geogate-sets.service loads the
# sets before netfilter-persistent restores saved rules that use them.
#
# Emergency off (locked out, on the console): `geogate apply --open` makes both
# sets match every address, until the next `geogate apply`; without geogate:
# `iptables -D INPUT -j GEOGATE; ip6tables -D INPUT -j GEOGATE`.
set -e
geogate apply                                             # creates and fills the sets (/etc/geogate/geogate.conf)
for cmd in iptables ip6tables; do
    fam=$([ $cmd = iptables ] && echo v4 || echo v6)
    $cmd -N GEOGATE 2>/dev/null || $cmd -F GEOGATE
    # Run-time blocks (`geogate block`) first: they cut established flows too.
    $cmd -A GEOGATE -m set --match-set "geogate-full-rt-block-$fam" src -j DROP
    $cmd -A GEOGATE -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
    $cmd -A GEOGATE -i lo -j RETURN
    # Run-time allows (`geogate allow`, phones that registered), then the profile.
    $cmd -A GEOGATE -m set --match-set "geogate-full-rt-allow-$fam" src -j RETURN
    $cmd -A GEOGATE -m set --match-set "geogate-full-$fam" src -j RETURN
    $cmd -A GEOGATE -j DROP
    $cmd -C INPUT -j GEOGATE 2>/dev/null || $cmd -I INPUT 1 -j GEOGATE
done
