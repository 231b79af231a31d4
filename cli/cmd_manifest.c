/*  cmd_manifest.c: `swisd manifest MODEL.gguf --url URL [--key PATH]
 *  [--version N] -o MANIFEST.json` publishes a model: writes its signed
 *  manifest (fetch/sw_manifest.h; docs/volunteer.md); `swisd manifest
 *  --show-signer [--key PATH]` prints the Ed25519 signer key to pin. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_identity.h"
#include "sw_manifest.h"
#include "swisd_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd manifest MODEL.gguf --url URL [--key PATH] [--version N] -o MANIFEST.json\n"
                 "       swisd manifest --show-signer [--key PATH]\n"
                 "  Hashes the GGUF's header and each tensor (SHA-256) and writes the manifest\n"
                 "  volunteers fetch layers by, signed with an Ed25519 key derived from the\n"
                 "  operator's node key. Prints the signer key (volunteers pin it with\n"
                 "  --manifest-key).\n"
                 "  --url URL      where the GGUF is served (http:// or https://)\n"
                 "  --key PATH     the operator's node key (default: the gateway's key,\n"
                 "                 ~/.config/swisd/gateway.key, created when missing)\n"
                 "  --version N    release number, >= 0 (default 1); bump it for a new model\n"
                 "  -o PATH        where to write the manifest\n"
                 "  --show-signer  only print the signer key of --key\n");
}

int swisd_cmd_manifest(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"key", required_argument, NULL, 'k'},
        {"version", required_argument, NULL, 'v'},
        {"out", required_argument, NULL, 'o'},
        {"show-signer", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *key = NULL, *out = NULL;
    int64_t version = 1;
    bool show = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "u:k:v:o:sh", opts, NULL)) != -1) {
        switch (c) {
        case 'u': url = optarg; break;
        case 'k': key = optarg; break;
        case 'v': {
            char *end = NULL;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || !*optarg || *end || v < 0) {
                fprintf(stderr, "swisd manifest: --version '%s': want an integer >= 0\n", optarg);
                return 2;
            }
            version = v;
            break;
        }
        case 'o': out = optarg; break;
        case 's': show = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (show ? optind != argc : (optind != argc - 1 || !url || !out)) {
        s_usage(stderr);
        return 2;
    }
    char err[512], signer[SW_MANIFEST_SIGNER_HEX + 1];
    sw_identity_t *id = sw_identity_load_or_create("gateway", key, err, sizeof err);
    if (!id) {
        fprintf(stderr, "swisd manifest: %s\n", err);
        return 1;
    }
    if (show) {
        int rc = sw_manifest_signer_of(sw_identity_secret_key(id), signer);
        sw_identity_destroy(&id);
        if (rc != 0)
            return 1;
        printf("signer: %s\n", signer);
        return 0;
    }
    sw_manifest_t *m = sw_manifest_build(argv[optind], url, version, sw_identity_secret_key(id), err, sizeof err);
    sw_identity_destroy(&id);
    if (!m || sw_manifest_save(m, out, err, sizeof err) != 0) {
        fprintf(stderr, "swisd manifest: %s\n", err);
        sw_manifest_destroy(&m);
        return 1;
    }
    uint64_t layers = 0;
    for (int l = 0; l < sw_manifest_n_layers(m); l++)
        layers += sw_manifest_layer_bytes(m, l);
    printf("manifest: %s\nmodel: %s (checksum %s, version %" PRId64 ")\nlayers: %d (%" PRIu64
           " bytes), header %" PRIu64 " bytes, file %" PRIu64 " bytes\nsigner: %s\n",
           out, sw_manifest_model_id(m), sw_manifest_checksum(m), sw_manifest_version(m), sw_manifest_n_layers(m),
           layers, sw_manifest_header_size(m), sw_manifest_file_size(m), sw_manifest_signer(m));
    sw_manifest_destroy(&m);
    return 0;
}
