/*  sw_daemon_keys.c: key options of the daemons (see sw_daemon_keys.h). */
#include "sw_daemon_keys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sw_endpoint.h"

int sw_daemon_keys_option(sw_daemon_keys_t *k, int c, const char *optarg)
{
    switch (c) {
    case SW_DAEMON_OPT_KEY: k->key_path = optarg; return 1;
    case SW_DAEMON_OPT_INSECURE: k->insecure = true; return 1;
    case SW_DAEMON_OPT_BOOTSTRAP: k->bootstrap = optarg; return 1;
    case SW_DAEMON_OPT_NAME: k->name = optarg; return 1;
    default: return 0;
    }
}

sw_identity_t *sw_daemon_keys_load(const sw_daemon_keys_t *k, const char *role, bool *failed)
{
    *failed = false;
    if (k->insecure) {
        if (k->key_path) {
            fprintf(stderr, "%s: --key and --insecure exclude each other\n", program_invocation_short_name);
            *failed = true;
        }
        return NULL;
    }
    char err[SW_IDENTITY_MAX_PATH + 256];
    sw_identity_t *id = sw_identity_load_or_create(role, k->key_path, err, sizeof err);
    if (!id) {
        fprintf(stderr, "%s: %s\n", program_invocation_short_name, err);
        *failed = true;
    }
    return id;
}

const char *sw_daemon_keys_brokers(sw_daemon_keys_t *k, const char *given, bool *failed)
{
    *failed = false;
    if (given || !k->bootstrap)
        return given;
    sw_endpoint_t eps[8];
    char err[600];
    int n = sw_endpoint_read_bootstrap(k->bootstrap, !k->insecure, eps, 8, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", program_invocation_short_name, err);
        *failed = true;
        return NULL;
    }
    k->list[0] = '\0';
    for (int i = 0; i < n; i++) {
        char one[SW_ENDPOINT_MAX_TEXT + 1];
        if (sw_endpoint_format(&eps[i], one, sizeof one) != 0)
            continue;
        size_t used = strlen(k->list);
        snprintf(k->list + used, sizeof k->list - used, "%s%s", used ? "," : "", one);
    }
    return k->list;
}

int sw_daemon_keys_check_id(const sw_daemon_keys_t *k, const char *id)
{
    if (!id || k->insecure)
        return 0;
    fprintf(stderr, "%s: --id is gone: a node's id is its key's fingerprint (--id only with --insecure)\n",
            program_invocation_short_name);
    return -1;
}
