#ifndef GEOGATE_CONNTRACK_H
#define GEOGATE_CONNTRACK_H

#include <stddef.h>
#include <stdint.h>

/// The flows the kernel's connection tracking knows in this network namespace,
/// read through libnetfilter_conntrack (a netlink dump; needs CAP_NET_ADMIN).
/// One flow in its original direction: who sent the first packet (src) to whom
/// (dst). Addresses are 16 bytes in network order (IPv4 in the first four).
typedef struct gg_flow {
    uint8_t family;       /* 4 or 6 */
    uint8_t protocol;     /* IPPROTO_TCP (6), IPPROTO_UDP (17), others as the kernel says */
    uint8_t assured;      /* traffic seen both ways (IPS_ASSURED) */
    uint8_t established;  /* TCP in ESTABLISHED */
    uint16_t src_port, dst_port;  /* host order */
    uint8_t src[16];
    uint8_t dst[16];
} gg_flow;

/// Dumps at most `max` flows into a buffer the caller frees with free(). Returns
/// the count, or -1 with a message in `error`.
long gg_conntrack_dump(gg_flow **flows, long max, char *error, size_t error_length);

#endif
