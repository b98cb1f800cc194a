#include "geogate_nftables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

int gg_nft_run(const char *script, char *error, size_t error_length) {
    return gg_nft_run_output(script, NULL, error, error_length);
}

int gg_nft_run_output(const char *script, char **output, char *error, size_t error_length) {
    if (output) *output = NULL;
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx) {
        snprintf(error, error_length, "cannot start a libnftables context");
        return -1;
    }
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    int ret = nft_run_cmd_from_buffer(ctx, script);
    if (ret == 0 && output) {
        const char *printed = nft_ctx_get_output_buffer(ctx);
        *output = strdup(printed ? printed : "");
    }
    if (ret != 0) {
        const char *message = nft_ctx_get_error_buffer(ctx);
        snprintf(error, error_length, "%s", (message && *message) ? message : "nft refused the script");
        size_t len = strlen(error);
        while (len > 0 && (error[len - 1] == '\n' || error[len - 1] == ' ')) error[--len] = '\0';
    }
    nft_ctx_free(ctx);
    return ret == 0 ? 0 : -1;
}
