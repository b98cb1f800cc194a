#ifndef GEOGATE_SUPPORT_H
#define GEOGATE_SUPPORT_H

#include <spawn.h>
#include <stdint.h>
#include <string.h>

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): the child starts with
/// no descriptor from `from` up, so a refresh started by the daemon holds none of
/// its sockets. glibc declares it only under _GNU_SOURCE, which Swift's Glibc
/// module does not set; support.c does.
int geogate_spawn_close_from(posix_spawn_file_actions_t *actions, int from);

/// Relaxed atomic counters in plain memory (the daemon's per-country verdict
/// counts: a table of them, which Swift's Atomic cannot be an element of).
static inline void geogate_counter_add(uint64_t *counter, uint64_t n) {
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}
static inline uint64_t geogate_counter_load(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/// Asks the CPU to start loading the cache line at `p` (read, keep in all levels).
/// Lookups call it for a node's value block while its key block is still being
/// compared, so the two cache misses overlap instead of following each other.
static inline void geogate_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/// The portable definition of geogate_at_most_mask32 (little-endian hosts), used
/// where SSE2 is missing and by the tests as the reference.
static inline uint32_t geogate_at_most_mask32_scalar(const void *p, uint16_t x) {
    uint32_t mask = 0;
    for (int i = 0; i < 32; i++) {
        uint16_t key;
        memcpy(&key, (const uint8_t *)p + 2 * i, 2);
        mask |= (uint32_t)(key <= x) << i;
    }
    return mask;
}

/// A bit mask of the 32 little-endian u16 keys at `p` (unaligned): bit i is set
/// when key i <= x. Swift's SIMD types cannot turn a comparison into a bit mask
/// (x86 `pmovmskb`), and with the mask a sorted block is answered by one
/// count-trailing-ones instead of summing lanes and masking the valid ones, which
/// was a third of an IPv6 lookup's instructions.
static inline uint32_t geogate_at_most_mask32(const void *p, uint16_t x) {
#if defined(__SSE2__)
    const __m128i xs = _mm_set1_epi16((short)x);
    const __m128i zero = _mm_setzero_si128();
    const __m128i *v = (const __m128i *)p;
    // key <= x  <=>  saturating (key - x) == 0
    __m128i a = _mm_cmpeq_epi16(_mm_subs_epu16(_mm_loadu_si128(v + 0), xs), zero);
    __m128i b = _mm_cmpeq_epi16(_mm_subs_epu16(_mm_loadu_si128(v + 1), xs), zero);
    __m128i c = _mm_cmpeq_epi16(_mm_subs_epu16(_mm_loadu_si128(v + 2), xs), zero);
    __m128i d = _mm_cmpeq_epi16(_mm_subs_epu16(_mm_loadu_si128(v + 3), xs), zero);
    uint32_t low = (uint32_t)_mm_movemask_epi8(_mm_packs_epi16(a, b));
    uint32_t high = (uint32_t)_mm_movemask_epi8(_mm_packs_epi16(c, d));
    return low | high << 16;
#else
    return geogate_at_most_mask32_scalar(p, x);
#endif
}

#endif
