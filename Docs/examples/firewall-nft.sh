#!/bin/sh
# The same country filter with nftables: `geogate apply --backend nft` loads table
# inet geogate with interval sets geogate-full-v4 / -v6 (and the run-time entries'
# geogate-full-rt-block-* / -rt-allow-*, with element timeouts) in one transaction through
# libnftables, under the run lock and after the lockout guard (established TCP and
# answered TCP/UDP flows); the chain below drops new connections from outside them.
# (`geogate sets --format nft | nft -f -` loads the same, without lock or guard.)
# With `backend: nft` in the config, `geogate refresh` reloads the sets itself, in
# the same transaction as the trie and the daemon. At boot, geogate-sets.service
# loads the sets again (after nftables.service); run this chain part from your
# own nftables.conf or once after it.
#
# Emergency off (locked out, on the console): `geogate apply --open --backend nft`
# makes both sets match every address, until the next `geogate apply`; without
# geogate: `nft delete chain inet geogate input`.
set -e
geogate apply --backend nft
nft -f - <<'NFT'
add chain inet geogate input { type filter hook input priority -10; policy accept; }
flush chain inet geogate input
add rule inet geogate input ip saddr @geogate-full-rt-block-v4 drop
add rule inet geogate input ip6 saddr @geogate-full-rt-block-v6 drop
add rule inet geogate input ct state established,related accept
add rule inet geogate input iif lo accept
add rule inet geogate input ip saddr @geogate-full-rt-allow-v4 accept
add rule inet geogate input ip6 saddr @geogate-full-rt-allow-v6 accept
add rule inet geogate input ip saddr != @geogate-full-v4 drop
add rule inet geogate input ip6 saddr != @geogate-full-v6 drop
NFT
