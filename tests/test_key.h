/*  test_key.h: a fresh key for the test peers (attacker, swarm_poke,
 *  broker_peer) that dial a secure broker: made in a new folder under
 *  $TMPDIR (or /tmp) with sw_identity_generate, once per process; the files
 *  are removed at once (the key stays in memory).
 *  Header-only (each peer is one file); not thread-safe. */
#ifndef SW_TEST_KEY_H
#define SW_TEST_KEY_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_identity.h"

/*  A new identity when endpoint carries a broker key ('#'), else NULL
 *  (plain TCP). Exits with status 1 when the key cannot be made. The
 *  identity lives until the process exits. */
static inline sw_identity_t *sw_test_key_for(const char *endpoint)
{
    static sw_identity_t *id = NULL;
    if (!endpoint || !strchr(endpoint, '#'))
        return NULL;
    if (id)
        return id;
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/swisd-peer-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    char path[600], err[700];
    snprintf(path, sizeof path, "%s/peer.key", dir);
    if (!(id = sw_identity_generate(path, false, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    /* the key lives on in memory: leave nothing behind */
    char secret[640];
    snprintf(secret, sizeof secret, "%s_secret", path);
    unlink(secret);
    unlink(path);
    rmdir(dir);
    return id;
}

#endif
