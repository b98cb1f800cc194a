#ifndef GEOGATE_NFTABLES_H
#define GEOGATE_NFTABLES_H

#include <stddef.h>

/// Runs an nft script (what `nft -f` reads) through libnftables: the kernel applies
/// it as one transaction, all or nothing. 0, or -1 with nft's message in `error`.
int gg_nft_run(const char *script, char *error, size_t error_length);

#endif
