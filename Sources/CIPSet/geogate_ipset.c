#include "geogate_ipset.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libipset/data.h>
#include <libipset/nfproto.h>
#include <libipset/session.h>
#include <libipset/types.h>

struct gg_ipset {
    struct ipset_session *session;
    char error[1024];
    char *output;
    size_t output_length, output_capacity;
    /* The type of the set the last add went to: adds reuse it. */
    char add_set[IPSET_MAXNAMELEN];
    const struct ipset_type *add_type;
};

/* The session's print callback (C-variadic): appends to the output buffer. */
static int gg_collect(struct ipset_session *session, void *p, const char *fmt, ...) {
    (void)session;
    gg_ipset *ctx = p;
    va_list args;
    va_start(args, fmt);
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (n < 0) { va_end(again); return -1; }
    size_t need = ctx->output_length + (size_t)n + 1;
    if (need > ctx->output_capacity) {
        size_t capacity = ctx->output_capacity ? ctx->output_capacity : 65536;
        while (capacity < need) capacity *= 2;
        char *grown = realloc(ctx->output, capacity);
        if (!grown) { va_end(again); return -1; }
        ctx->output = grown;
        ctx->output_capacity = capacity;
    }
    vsnprintf(ctx->output + ctx->output_length, (size_t)n + 1, fmt, again);
    va_end(again);
    ctx->output_length += (size_t)n;
    return n;
}

/* Takes the session's report as our error (or a fallback), and clears it. */
static int gg_fail(gg_ipset *ctx, const char *fallback) {
    const char *msg = ipset_session_report_msg(ctx->session);
    snprintf(ctx->error, sizeof ctx->error, "%s", (msg && *msg) ? msg : fallback);
    size_t len = strlen(ctx->error);
    while (len > 0 && (ctx->error[len - 1] == '\n' || ctx->error[len - 1] == ' ')) ctx->error[--len] = '\0';
    ipset_session_report_reset(ctx->session);
    ipset_data_reset(ipset_session_data(ctx->session));
    return -1;
}

static int gg_done(gg_ipset *ctx, int ret, const char *fallback) {
    if (ret < 0) return gg_fail(ctx, fallback);
    ipset_session_report_reset(ctx->session); /* warnings only */
    return 0;
}

gg_ipset *gg_ipset_open(void) {
    static int types_loaded = 0;
    if (!types_loaded) { ipset_load_types(); types_loaded = 1; }
    gg_ipset *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->session = ipset_session_init(gg_collect, ctx);
    if (!ctx->session) { free(ctx); return NULL; }
    return ctx;
}

void gg_ipset_close(gg_ipset *ctx) {
    if (!ctx) return;
    ipset_session_fini(ctx->session);
    free(ctx->output);
    free(ctx);
}

const char *gg_ipset_error(const gg_ipset *ctx) { return ctx->error; }

const char *gg_ipset_output(const gg_ipset *ctx, size_t *length) {
    *length = ctx->output_length;
    return ctx->output ? ctx->output : "";
}

void gg_ipset_output_reset(gg_ipset *ctx) { ctx->output_length = 0; }

static uint8_t gg_nfproto(int family) { return family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4; }

static int gg_set_name(gg_ipset *ctx, enum ipset_opt opt, const char *name) {
    if (strlen(name) >= IPSET_MAXNAMELEN) {
        snprintf(ctx->error, sizeof ctx->error, "set name \"%s\" is longer than %d characters", name, IPSET_MAXNAMELEN - 1);
        return -1;
    }
    if (ipset_session_data_set(ctx->session, opt, name) < 0) return gg_fail(ctx, "bad set name");
    return 0;
}

int gg_ipset_exists(gg_ipset *ctx, const char *name) {
    if (gg_ipset_commit(ctx) < 0) return -1;
    if (gg_set_name(ctx, IPSET_SETNAME, name) < 0) return -1;
    int ret = ipset_cmd(ctx->session, IPSET_CMD_HEADER, 0);
    if (ret >= 0) { ipset_data_reset(ipset_session_data(ctx->session)); ipset_session_report_reset(ctx->session); return 1; }
    const char *msg = ipset_session_report_msg(ctx->session);
    if (msg && strstr(msg, "does not exist")) {
        ipset_session_report_reset(ctx->session);
        ipset_data_reset(ipset_session_data(ctx->session));
        return 0;
    }
    return gg_fail(ctx, "cannot read the set header");
}

int gg_ipset_header(gg_ipset *ctx, const char *name, char type[32], int *family) {
    if (gg_ipset_commit(ctx) < 0) return -1;
    if (gg_set_name(ctx, IPSET_SETNAME, name) < 0) return -1;
    int ret = ipset_cmd(ctx->session, IPSET_CMD_HEADER, 0);
    struct ipset_data *data = ipset_session_data(ctx->session);
    if (ret >= 0) {
        const char *typename = ipset_data_get(data, IPSET_OPT_TYPENAME);
        snprintf(type, 32, "%s", typename ? typename : "?");
        uint8_t proto = ipset_data_family(data);
        *family = proto == NFPROTO_IPV6 ? 6 : proto == NFPROTO_IPV4 ? 4 : 0;
        ipset_data_reset(data);
        ipset_session_report_reset(ctx->session);
        return 1;
    }
    const char *msg = ipset_session_report_msg(ctx->session);
    if (msg && strstr(msg, "does not exist")) {
        ipset_session_report_reset(ctx->session);
        ipset_data_reset(data);
        return 0;
    }
    return gg_fail(ctx, "cannot read the set header");
}

int gg_ipset_create_hash_net(gg_ipset *ctx, const char *name, int family, uint32_t hashsize, uint32_t maxelem, int with_timeout) {
    if (gg_ipset_commit(ctx) < 0) return -1;
    uint8_t proto = gg_nfproto(family);
    if (gg_set_name(ctx, IPSET_SETNAME, name) < 0) return -1;
    if (ipset_session_data_set(ctx->session, IPSET_OPT_TYPENAME, "hash:net") < 0 ||
        ipset_session_data_set(ctx->session, IPSET_OPT_FAMILY, &proto) < 0)
        return gg_fail(ctx, "bad create parameters");
    /* Finds the type and asks the kernel whether it supports it (no ip_set: fails here). */
    if (ipset_type_get(ctx->session, IPSET_CMD_CREATE) == NULL)
        return gg_fail(ctx, "the kernel does not support hash:net sets (is the ip_set module available?)");
    if (ipset_session_data_set(ctx->session, IPSET_OPT_HASHSIZE, &hashsize) < 0 ||
        ipset_session_data_set(ctx->session, IPSET_OPT_MAXELEM, &maxelem) < 0)
        return gg_fail(ctx, "bad create parameters");
    uint32_t no_default_timeout = 0;
    if (with_timeout && ipset_session_data_set(ctx->session, IPSET_OPT_TIMEOUT, &no_default_timeout) < 0)
        return gg_fail(ctx, "bad create parameters");
    return gg_done(ctx, ipset_cmd(ctx->session, IPSET_CMD_CREATE, 0), "create failed");
}

int gg_ipset_add_net(gg_ipset *ctx, const char *name, int family, const uint8_t address[16], uint8_t prefix, uint32_t sequence,
                     int64_t timeout) {
    struct ipset_session *s = ctx->session;
    uint8_t proto = gg_nfproto(family);
    union nf_inet_addr ip;
    memset(&ip, 0, sizeof ip);
    memcpy(&ip, address, family == 6 ? 16 : 4);
    if (gg_set_name(ctx, IPSET_SETNAME, name) < 0) return -1;
    if (ctx->add_type == NULL || strcmp(ctx->add_set, name) != 0) {
        const struct ipset_type *type = ipset_type_get(s, IPSET_CMD_ADD);
        if (type == NULL) return gg_fail(ctx, "cannot find the set");
        ctx->add_type = type;
        snprintf(ctx->add_set, sizeof ctx->add_set, "%s", name);
    } else if (ipset_session_data_set(s, IPSET_OPT_TYPE, ctx->add_type) < 0) {
        return gg_fail(ctx, "bad set type");
    }
    if (ipset_session_data_set(s, IPSET_OPT_FAMILY, &proto) < 0 ||
        ipset_session_data_set(s, IPSET_OPT_IP, &ip) < 0 ||
        ipset_session_data_set(s, IPSET_OPT_CIDR, &prefix) < 0)
        return gg_fail(ctx, "bad entry");
    if (timeout >= 0) {
        uint32_t seconds = (uint32_t)timeout;
        if (ipset_session_data_set(s, IPSET_OPT_TIMEOUT, &seconds) < 0) return gg_fail(ctx, "bad entry timeout");
    }
    /* A non-zero line number puts the session in restore mode: adds to the same
       set are aggregated into one netlink message until the buffer is full. */
    return gg_done(ctx, ipset_cmd(s, IPSET_CMD_ADD, sequence), "add failed");
}

int gg_ipset_change_net(gg_ipset *ctx, const char *name, int family, const uint8_t address[16], uint8_t prefix, int add,
                        int64_t timeout) {
    if (gg_ipset_commit(ctx) < 0) return -1;
    struct ipset_session *s = ctx->session;
    enum ipset_cmd cmd = add ? IPSET_CMD_ADD : IPSET_CMD_DEL;
    uint8_t proto = gg_nfproto(family);
    union nf_inet_addr ip;
    memset(&ip, 0, sizeof ip);
    memcpy(&ip, address, family == 6 ? 16 : 4);
    if (gg_set_name(ctx, IPSET_SETNAME, name) < 0) return -1;
    if (ipset_type_get(s, cmd) == NULL) return gg_fail(ctx, "cannot find the set");
    ctx->add_type = NULL; /* the batched adds look their set up again */
    if (ipset_session_data_set(s, IPSET_OPT_FAMILY, &proto) < 0 ||
        ipset_session_data_set(s, IPSET_OPT_IP, &ip) < 0 ||
        ipset_session_data_set(s, IPSET_OPT_CIDR, &prefix) < 0)
        return gg_fail(ctx, "bad entry");
    if (add && timeout >= 0) {
        uint32_t seconds = (uint32_t)timeout;
        if (ipset_session_data_set(s, IPSET_OPT_TIMEOUT, &seconds) < 0) return gg_fail(ctx, "bad entry timeout");
    }
    ipset_envopt_set(s, IPSET_ENV_EXIST);
    int ret = ipset_cmd(s, cmd, 0);
    ipset_envopt_unset(s, IPSET_ENV_EXIST);
    return gg_done(ctx, ret, add ? "add failed" : "del failed");
}

int gg_ipset_commit(gg_ipset *ctx) {
    return gg_done(ctx, ipset_commit(ctx->session), "sending the queued adds failed");
}

static int gg_two_names(gg_ipset *ctx, enum ipset_cmd cmd, const char *from, const char *to, const char *what) {
    if (gg_ipset_commit(ctx) < 0) return -1;
    if (gg_set_name(ctx, IPSET_SETNAME, from) < 0 || gg_set_name(ctx, IPSET_OPT_SETNAME2, to) < 0) return -1;
    return gg_done(ctx, ipset_cmd(ctx->session, cmd, 0), what);
}

int gg_ipset_swap(gg_ipset *ctx, const char *from, const char *to) {
    return gg_two_names(ctx, IPSET_CMD_SWAP, from, to, "swap failed");
}

int gg_ipset_rename(gg_ipset *ctx, const char *from, const char *to) {
    return gg_two_names(ctx, IPSET_CMD_RENAME, from, to, "rename failed");
}

int gg_ipset_destroy(gg_ipset *ctx, const char *name) {
    if (gg_ipset_commit(ctx) < 0) return -1;
    if (gg_set_name(ctx, IPSET_SETNAME, name) < 0) return -1;
    if (strcmp(ctx->add_set, name) == 0) ctx->add_type = NULL;
    return gg_done(ctx, ipset_cmd(ctx->session, IPSET_CMD_DESTROY, 0), "destroy failed");
}

/* `ipset list -terse NAME`: the kernel's entry count ("Number of entries", Linux
   4.18 and later), without listing the members. -1 when the kernel does not say. */
int64_t gg_ipset_count(gg_ipset *ctx, const char *name) {
    if (gg_ipset_commit(ctx) < 0) return -2;
    if (gg_set_name(ctx, IPSET_SETNAME, name) < 0) return -2;
    if (ipset_session_output(ctx->session, IPSET_LIST_PLAIN) < 0) { gg_fail(ctx, "bad output mode"); return -2; }
    ctx->output_length = 0;
    ipset_envopt_set(ctx->session, IPSET_ENV_LIST_HEADER);
    int ret = ipset_cmd(ctx->session, IPSET_CMD_LIST, 0);
    ipset_envopt_unset(ctx->session, IPSET_ENV_LIST_HEADER);
    if (gg_done(ctx, ret, "reading the set header failed") < 0) return -2;
    int64_t count = -1;
    static const char key[] = "Number of entries: ";
    for (size_t i = 0; ctx->output && i + sizeof key - 1 < ctx->output_length; i++) {
        if ((i == 0 || ctx->output[i - 1] == '\n') && strncmp(ctx->output + i, key, sizeof key - 1) == 0) {
            count = strtoll(ctx->output + i + sizeof key - 1, NULL, 10);
            break;
        }
    }
    ctx->output_length = 0;
    return count;
}

int gg_ipset_save(gg_ipset *ctx, const char *name) {
    if (gg_ipset_commit(ctx) < 0) return -1;
    if (gg_set_name(ctx, IPSET_SETNAME, name) < 0) return -1;
    if (ipset_session_output(ctx->session, IPSET_LIST_SAVE) < 0) return gg_fail(ctx, "bad output mode");
    return gg_done(ctx, ipset_cmd(ctx->session, IPSET_CMD_SAVE, 0), "listing the set failed");
}
