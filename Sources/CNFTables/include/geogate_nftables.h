#ifndef GEOGATE_NFTABLES_H
#define GEOGATE_NFTABLES_H

#include <stddef.h>

/// Runs an nft script (what `nft -f` reads) through libnftables: the kernel applies
/// it as one transaction, all or nothing. 0, or -1 with nft's message in `error`.
int gg_nft_run(const char *script, char *error, size_t error_length);

/// Like gg_nft_run, and what nft printed (a `list` command's answer, in nft's own
/// syntax) in *output, which the caller frees with free().
int gg_nft_run_output(const char *script, char **output, char *error, size_t error_length);

#endif
