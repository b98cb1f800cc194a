#include "geogate_conntrack.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>

struct gg_dump {
    gg_flow *flows;
    long count, capacity, max;
    int out_of_memory;
};

static int gg_collect_flow(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data) {
    (void)type;
    struct gg_dump *dump = data;
    if (dump->count >= dump->max) return NFCT_CB_STOP;
    if (dump->count == dump->capacity) {
        long capacity = dump->capacity ? dump->capacity * 2 : 1024;
        if (capacity > dump->max) capacity = dump->max;
        gg_flow *grown = realloc(dump->flows, (size_t)capacity * sizeof *grown);
        if (!grown) { dump->out_of_memory = 1; return NFCT_CB_STOP; }
        dump->flows = grown;
        dump->capacity = capacity;
    }
    gg_flow *f = &dump->flows[dump->count];
    memset(f, 0, sizeof *f);
    uint8_t l3 = nfct_get_attr_u8(ct, ATTR_L3PROTO);
    if (l3 == AF_INET) {
        f->family = 4;
        uint32_t s = nfct_get_attr_u32(ct, ATTR_IPV4_SRC), d = nfct_get_attr_u32(ct, ATTR_IPV4_DST);
        memcpy(f->src, &s, 4);
        memcpy(f->dst, &d, 4);
    } else if (l3 == AF_INET6) {
        f->family = 6;
        const void *s = nfct_get_attr(ct, ATTR_IPV6_SRC), *d = nfct_get_attr(ct, ATTR_IPV6_DST);
        if (s) memcpy(f->src, s, 16);
        if (d) memcpy(f->dst, d, 16);
    } else {
        return NFCT_CB_CONTINUE;
    }
    f->protocol = nfct_get_attr_u8(ct, ATTR_L4PROTO);
    if (f->protocol == IPPROTO_TCP || f->protocol == IPPROTO_UDP) {
        f->src_port = ntohs(nfct_get_attr_u16(ct, ATTR_PORT_SRC));
        f->dst_port = ntohs(nfct_get_attr_u16(ct, ATTR_PORT_DST));
    }
    f->assured = (nfct_get_attr_u32(ct, ATTR_STATUS) & IPS_ASSURED) != 0;
    f->established = f->protocol == IPPROTO_TCP && nfct_get_attr_u8(ct, ATTR_TCP_STATE) == TCP_CONNTRACK_ESTABLISHED;
    dump->count++;
    return NFCT_CB_CONTINUE;
}

long gg_conntrack_dump(gg_flow **flows, long max, char *error, size_t error_length) {
    *flows = NULL;
    struct nfct_handle *h = nfct_open(CONNTRACK, 0);
    if (!h) {
        snprintf(error, error_length, "cannot open a conntrack netlink socket: %s", strerror(errno));
        return -1;
    }
    struct gg_dump dump = { .max = max };
    nfct_callback_register(h, NFCT_T_ALL, gg_collect_flow, &dump);
    uint32_t family = AF_UNSPEC;
    int ret = nfct_query(h, NFCT_Q_DUMP, &family);
    int saved = errno;
    nfct_close(h);
    if (dump.out_of_memory) {
        free(dump.flows);
        snprintf(error, error_length, "out of memory reading the conntrack table");
        return -1;
    }
    if (ret < 0 && dump.count < dump.max) {
        free(dump.flows);
        snprintf(error, error_length, "reading the conntrack table: %s", strerror(saved));
        return -1;
    }
    *flows = dump.flows;
    return dump.count;
}
