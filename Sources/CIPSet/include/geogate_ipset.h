#ifndef GEOGATE_IPSET_H
#define GEOGATE_IPSET_H

#include <stddef.h>
#include <stdint.h>

/// A small, exit()-free face of libipset's session API for geogate.
///
/// Why a C shim: the session's print callback is C-variadic (Swift cannot define
/// one), and libipset's high-level `struct ipset` interface installs error handlers
/// that call exit(), which must never happen inside geogate (or its daemon). Every
/// function returns 0 on success and -1 on failure, with the kernel's or library's
/// message in gg_ipset_error(). Families are 4 or 6; addresses are 16 bytes in
/// network order (IPv4 in the first four).
typedef struct gg_ipset gg_ipset;

gg_ipset *gg_ipset_open(void);
void gg_ipset_close(gg_ipset *ctx);
const char *gg_ipset_error(const gg_ipset *ctx);

/// 1 when the set exists, 0 when it does not, -1 on another error.
int gg_ipset_exists(gg_ipset *ctx, const char *name);
/// Like gg_ipset_exists; on 1 also the set's type name ("hash:net") and family
/// (4, 6, or 0 for another).
int gg_ipset_header(gg_ipset *ctx, const char *name, char type[32], int *family);
/* The entry count the kernel reports for a set; -1 when it does not say, -2 on error. */
int64_t gg_ipset_count(gg_ipset *ctx, const char *name);
/// `with_timeout`: the set takes element timeouts (`timeout 0`: none by default).
int gg_ipset_create_hash_net(gg_ipset *ctx, const char *name, int family, uint32_t hashsize, uint32_t maxelem, int with_timeout);
/// Queues an add; adds to one set are sent in batches, as `ipset restore` does.
/// `sequence` (from 1) is echoed in the kernel's error for a bad entry.
/// `timeout` (seconds, 0: none) only for a set made with timeouts; -1 gives none.
int gg_ipset_add_net(gg_ipset *ctx, const char *name, int family, const uint8_t address[16], uint8_t prefix, uint32_t sequence,
                     int64_t timeout);
/// Sends queued adds.
int gg_ipset_commit(gg_ipset *ctx);
/// One element added (`add`: 1; an element already there takes the new timeout)
/// or deleted (`add`: 0; a missing one is no error), sent at once: `ipset -exist
/// add|del`. `timeout` as for gg_ipset_add_net (adds only).
int gg_ipset_change_net(gg_ipset *ctx, const char *name, int family, const uint8_t address[16], uint8_t prefix, int add,
                        int64_t timeout);
int gg_ipset_swap(gg_ipset *ctx, const char *from, const char *to);
int gg_ipset_rename(gg_ipset *ctx, const char *from, const char *to);
int gg_ipset_destroy(gg_ipset *ctx, const char *name);
/// Lists a set in `ipset save` form into the output buffer.
int gg_ipset_save(gg_ipset *ctx, const char *name);
const char *gg_ipset_output(const gg_ipset *ctx, size_t *length);
void gg_ipset_output_reset(gg_ipset *ctx);

#endif
