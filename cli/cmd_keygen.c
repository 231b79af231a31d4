/*  cmd_keygen.c: `swisd keygen --out PATH [--force]` makes a node's long-term
 *  keypair (PATH public, PATH_secret secret with mode 0600);
 *  `swisd keygen --show PATH` prints the public key and node id of a key.
 *  Formats: identity/sw_identity.h; docs/security.md. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sw_identity.h"
#include "swisd_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd keygen --out PATH [--force]\n"
                 "       swisd keygen --show PATH\n"
                 "  Makes a node's long-term CURVE keypair: PATH (public certificate) and\n"
                 "  PATH_secret (secret certificate, mode 0600), and prints the public key\n"
                 "  (Z85) and the node id derived from it.\n"
                 "  --out PATH   where to write the pair (refuses to overwrite)\n"
                 "  --force      replace an existing pair at PATH\n"
                 "  --show PATH  print the public key and node id of an existing key (reads\n"
                 "               PATH; also checks PATH_secret when it is there)\n");
}

static void s_print(const char *path, const uint8_t pub[SW_IDENTITY_KEY_BYTES], bool has_secret)
{
    char txt[SW_IDENTITY_Z85_LEN + 1], id[SW_IDENTITY_ID_LEN + 1];
    zmq_z85_encode(txt, pub, SW_IDENTITY_KEY_BYTES);
    sw_identity_fingerprint(pub, id);
    printf("public-key: %s\nnode-id: %s\npublic-file: %s\n", txt, id, path);
    if (has_secret)
        printf("secret-file: %s_secret\n", path);
}

int swisd_cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"show", required_argument, NULL, 's'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *show = NULL;
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:s:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 's': show = optarg; break;
        case 'f': force = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc || (!out == !show) || (force && !out)) {
        fprintf(stderr, "swisd keygen: give exactly one of --out PATH or --show PATH (--force only with --out)\n");
        s_usage(stderr);
        return 2;
    }
    char err[512];
    if (out) {
        sw_identity_t *id = sw_identity_generate(out, force, err, sizeof err);
        if (!id) {
            fprintf(stderr, "swisd keygen: %s\n", err);
            return 1;
        }
        s_print(out, sw_identity_public_key(id), true);
        sw_identity_destroy(&id);
        return 0;
    }
    uint8_t pub[SW_IDENTITY_KEY_BYTES];
    if (sw_identity_read_public(show, pub, err, sizeof err) != 0) {
        fprintf(stderr, "swisd keygen: %s\n", err);
        return 1;
    }
    char secret_path[SW_IDENTITY_MAX_PATH];
    struct stat st;
    bool has_secret = snprintf(secret_path, sizeof secret_path, "%s_secret", show) < (int) sizeof secret_path
                   && stat(secret_path, &st) == 0;
    if (has_secret) {
        sw_identity_t *id = sw_identity_load(show, err, sizeof err);
        if (!id) {
            fprintf(stderr, "swisd keygen: %s\n", err);
            return 1;
        }
        sw_identity_destroy(&id);
    }
    s_print(show, pub, has_secret);
    return 0;
}
