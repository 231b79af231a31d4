/*  sw_admin_token.h: the secret that opens the HTTP front's /admin/
 *  endpoints.
 *
 *  The token lives in a file, never on the command line (where ps and
 *  /proc/PID/cmdline show it to every user of the machine). Like ssh with a
 *  private key, the file must be a regular file owned by the gateway's user
 *  and not readable or writable by group or others (mode 0600 or 0400).
 *  When the file does not exist, a token is made (32 random bytes from the
 *  kernel, as 64 hex digits) and written there with mode 0600.
 *
 *  File format: the token on the first line (16 to SW_ADMIN_TOKEN_MAX
 *  printable ASCII characters, no space); trailing white space is ignored.
 *
 *  A request carries it as `Authorization: Bearer <token>`; the comparison
 *  takes the same time whatever the number of matching bytes (both sides
 *  hashed with BLAKE2b, then libsodium's sodium_memcmp), so timing tells an
 *  attacker nothing about a guess.
 *
 *  Thread safety: reentrant (sw_admin_token_check may be called from any
 *  number of threads at once).
 */
#ifndef SW_ADMIN_TOKEN_H
#define SW_ADMIN_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define SW_ADMIN_TOKEN_MIN 16
#define SW_ADMIN_TOKEN_MAX 256

/*  Reads the token from path into token (cap >= SW_ADMIN_TOKEN_MAX + 1,
 *  NUL-terminated), or makes one and writes it there when path does not
 *  exist (*created set). Returns 0, or -1 with a reason in err: a file
 *  others can read or write, not ours, not a regular file (a symlink is
 *  refused), a token too short or long or with spaces, a folder where the
 *  file cannot be made, no randomness. */
int sw_admin_token_load(const char *path, char *token, size_t cap, bool *created, char *err, size_t errlen);

/*  True when authorization (an Authorization header's value, may be NULL)
 *  is "Bearer <token>" ("bearer" in any case, one or more spaces). */
bool sw_admin_token_check(const char *token, const char *authorization);

#endif
