/*  fuzz_identity.c: fuzz target for identity/'s decoders of outside input:
 *  endpoint strings, bootstrap files, key certificate text, sealed bodies.
 *
 *  Input layout: byte 0 selects the decoder (mod 5), the rest is its input:
 *    0: sw_endpoint_parse (with and without a required key)
 *    1: sw_endpoint_parse_bootstrap
 *    2: public certificate text; 3: secret certificate text. Besides not
 *       crashing, text that passes sw__identity_check_zpl must be accepted by
 *       czmq's zconfig parser (else zconfig would log a line of it): abort()
 *       when it is not.
 *    4: sw_seal_open of the rest under fixed keys; bytes 1..4 vary the
 *       expected context. Must never open (abort() if it does).
 *  Build with libFuzzer (-Dfuzz=true, clang) or with fuzz_main.c (the test
 *  suite runs the latter over tests/fuzz/identity_seeds).
 */
#include <czmq.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_endpoint.h"
#include "sw_identity.h"
#include "sw_identity_internal.h"
#include "sw_seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    char err[512];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *text = malloc(n + 1);
    if (!text)
        return 0;
    memcpy(text, p, n);
    text[n] = '\0';
    switch (data[0] % 5) {
    case 0: {
        sw_endpoint_t ep;
        for (int req = 0; req < 2; req++)
            if (sw_endpoint_parse(text, req, &ep, err, sizeof err) == 0) {
                char back[SW_ENDPOINT_MAX_TEXT + 1];
                if (sw_endpoint_format(&ep, back, sizeof back) != 0 || strcmp(back, text) != 0)
                    abort(); /* what parses formats back to itself */
            }
        break;
    }
    case 1: {
        static sw_endpoint_t eps[SW_ENDPOINT_MAX_ENTRIES];
        int k = sw_endpoint_parse_bootstrap("fuzz", (const char *) p, n, true, eps, SW_ENDPOINT_MAX_ENTRIES, err,
                                            sizeof err);
        if (k > SW_ENDPOINT_MAX_ENTRIES)
            abort();
        break;
    }
    case 2:
    case 3: {
        if (strlen(text) == n && sw__identity_check_zpl("fuzz", text, err, sizeof err) == 0) {
            zconfig_t *root = zconfig_str_load(text);
            if (!root)
                abort(); /* the checker let through what zconfig rejects */
            zconfig_destroy(&root);
        }
        uint8_t pub[32], sec[32];
        sw__identity_parse_text("fuzz", text, data[0] % 5 == 3, pub, sec, err, sizeof err);
        break;
    }
    case 4: {
        static sw_seal_t *seal = NULL;
        if (!seal) {
            uint8_t a[32], b[32];
            for (int i = 0; i < 32; i++)
                a[i] = (uint8_t) (i + 1), b[i] = (uint8_t) (200 - i);
            uint8_t bp[32];
            crypto_scalarmult_base(bp, b);
            seal = sw_seal_new(a, bp);
            if (!seal)
                abort();
        }
        sw_seal_ctx_t ctx = {.dir = (n > 0 && (p[0] & 1)) ? SW_SEAL_TO_GATEWAY : SW_SEAL_TO_STAGE,
                             .session_id = "fuzz", .session_len = 4,
                             .request_id = n > 1 ? p[1] : 0, .pos = n > 2 ? p[2] : 0, .n_rows = n > 3 ? p[3] : 1};
        uint8_t *out = malloc(n + 1);
        size_t olen = 0;
        if (out && sw_seal_open(seal, &ctx, p, n, out, n, &olen) == 0)
            abort(); /* a forgery opened */
        free(out);
        break;
    }
    }
    free(text);
    return 0;
}
