/*  sw_daemon_keys.h: the key options every swisd daemon and `swisd generate`
 *  / `swisd demo` share, and loading the process's key.
 *
 *  Options (add SW_DAEMON_KEY_OPTIONS to the getopt_long table and hand every
 *  option code to sw_daemon_keys_option first):
 *    --key PATH        the node's public certificate file (sw_identity.h); its
 *                      secret is PATH_secret. Without it: ROLE.key in the
 *                      per-user config folder, created on first run (a line
 *                      on stderr says where).
 *    --insecure        no key, plain TCP, no authentication (for comparisons
 *                      only; the other end must be --insecure too)
 *    --bootstrap FILE  brokers to dial, one "tcp://HOST:PORT#KEY" per line
 *                      (sw_endpoint.h), used when --broker / --parent is not given
 *    --name NAME       display name sent in Hello (checked by the broker
 *                      client: <= 32 bytes of printable ASCII)
 *
 *  Thread safety: none needed (mains only).
 */
#ifndef SW_DAEMON_KEYS_H
#define SW_DAEMON_KEYS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "sw_identity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* option codes: above any character a main uses */
#define SW_DAEMON_OPT_KEY 0x1001
#define SW_DAEMON_OPT_INSECURE 0x1002
#define SW_DAEMON_OPT_BOOTSTRAP 0x1003
#define SW_DAEMON_OPT_NAME 0x1004

#define SW_DAEMON_KEY_OPTIONS                                                                                          \
    {"key", required_argument, 0, SW_DAEMON_OPT_KEY}, {"insecure", no_argument, 0, SW_DAEMON_OPT_INSECURE},            \
        {"bootstrap", required_argument, 0, SW_DAEMON_OPT_BOOTSTRAP}, {"name", required_argument, 0, SW_DAEMON_OPT_NAME}

#define SW_DAEMON_KEY_USAGE                                                                                            \
    "  --key PATH          this node's key (public certificate; PATH_secret holds the secret); default:\n"          \
    "                      ROLE.key in ~/.config/swisd (or $XDG_CONFIG_HOME/swisd), created on first run\n"         \
    "  --insecure          plain TCP without keys (for comparisons; the other end must say it too)\n"             \
    "  --bootstrap FILE    brokers to dial, one tcp://HOST:PORT#KEY per line (when no endpoint is given)\n"       \
    "  --name NAME         a display name shown beside this node's id (up to 32 printable ASCII characters;\n"   \
    "                      not unique and not checked: the id, from the key, is what identifies the node)\n"

typedef struct {
    const char *key_path;   /* --key, or NULL */
    bool insecure;          /* --insecure */
    const char *bootstrap;  /* --bootstrap, or NULL */
    const char *name;       /* --name, or NULL */
    char list[8 * 330];     /* endpoints read from the bootstrap file, comma-separated */
} sw_daemon_keys_t;

/*  Takes option c (with optarg) when it is one of the key options: returns
 *  1 when taken, 0 when it is not one of them. */
int sw_daemon_keys_option(sw_daemon_keys_t *k, int c, const char *optarg);

/*  The process's identity for `role` (sw_identity_load_or_create), or NULL
 *  with *failed false under --insecure. On failure prints
 *  "PROGRAM: reason" on stderr and returns NULL with *failed true. Also
 *  refuses --key together with --insecure. Caller destroys. */
sw_identity_t *sw_daemon_keys_load(const sw_daemon_keys_t *k, const char *role, bool *failed);

/*  The rule for a chosen node id: `id` (the main's --id, or NULL) is
 *  accepted only under --insecure; with a key the id is the key's
 *  fingerprint. Returns 0, or -1 after printing "PROGRAM: --id ..." on
 *  stderr. */
int sw_daemon_keys_check_id(const sw_daemon_keys_t *k, const char *id);

/*  The broker list to dial: `given` when not NULL, else the endpoints of
 *  --bootstrap joined with commas (kept in k), else NULL. On a bad bootstrap
 *  file prints "PROGRAM: reason" on stderr and returns NULL with *failed true. */
const char *sw_daemon_keys_brokers(sw_daemon_keys_t *k, const char *given, bool *failed);

#ifdef __cplusplus
}
#endif
#endif
