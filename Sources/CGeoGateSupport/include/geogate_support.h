#ifndef GEOGATE_SUPPORT_H
#define GEOGATE_SUPPORT_H

/// Asks the CPU to start loading the cache line at `p` (read, keep in all levels).
/// Lookups call it for a node's value block while its key block is still being
/// compared, so the two cache misses overlap instead of following each other.
static inline void geogate_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#endif
