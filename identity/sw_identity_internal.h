/*  sw_identity_internal.h: the certificate text parser of sw_identity.c,
 *  exposed for its fuzz target (tests/fuzz/fuzz_identity.c). Not an API. */
#ifndef SW_IDENTITY_INTERNAL_H
#define SW_IDENTITY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_identity.h"

/*  Checks that text (NUL-terminated) is in the ZPL subset zcert writes, so
 *  that czmq's zconfig parser accepts it without logging a line of it:
 *  lines of at most 512 printable ASCII bytes, LF-terminated; blank; 4*k
 *  spaces then a '#' comment; 4*level spaces then a name of [A-Za-z0-9_-] optionally
 *  followed by ' = "value"' (no '"' inside), level at most one deeper than the
 *  previous name's. path names the file in err. Returns 0, or -1 with err set
 *  to "PATH:LINE: malformed: reason" (never the line itself). */
int sw__identity_check_zpl(const char *path, const char *text, char *err, size_t errlen);

/*  Parses certificate text (sw__identity_check_zpl, then zconfig): writes the
 *  public key and, when secret, the secret key (both required); a public
 *  certificate (secret false) must not hold a secret key. text is borrowed
 *  and not modified. Returns 0 or -1 with err set. */
int sw__identity_parse_text(const char *path, const char *text, bool secret, uint8_t public_out[SW_IDENTITY_KEY_BYTES],
                            uint8_t secret_out[SW_IDENTITY_KEY_BYTES], char *err, size_t errlen);

#endif
