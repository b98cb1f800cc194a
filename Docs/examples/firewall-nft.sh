#!/bin/sh
# The same country filter with nftables: `geogate sets --format nft` writes table
# inet geogate with interval sets geogate-full-v4 / -v6 in one transaction; the
# chain below drops new connections from outside them. Re-run after each refresh
# (refresh.on-change: "sh /etc/geogate/firewall-nft.sh") to reload the sets.
set -e
geogate sets --config /etc/geogate/geogate.conf --db /var/lib/geogate/countries.trie --format nft | nft -f -
nft -f - <<'NFT'
add chain inet geogate input { type filter hook input priority -10; policy accept; }
flush chain inet geogate input
add rule inet geogate input ct state established,related accept
add rule inet geogate input iif lo accept
add rule inet geogate input ip saddr != @geogate-full-v4 drop
add rule inet geogate input ip6 saddr != @geogate-full-v6 drop
NFT
