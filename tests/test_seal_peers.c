/*  test_seal_peers.c: sw_seal_peers between two real keypairs: an activation
 *  payload and its checksum round trip; another sender key, another request
 *  id (a replay), another position (a reorder), a flipped byte and a
 *  truncated frame do not open; more peers than the set keeps still work. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "sw_seal_peers.h"
#include "sw_test.h"

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    uint8_t gp[32], gs[32], sp[32], ss[32], op[32], os[32];
    crypto_box_keypair(gp, gs);
    crypto_box_keypair(sp, ss);
    crypto_box_keypair(op, os);
    sw_seal_peers_t *gw = sw_seal_peers_new(gs), *st = sw_seal_peers_new(ss), *ot = sw_seal_peers_new(os);
    CHECK(gw && st && ot);
    uint8_t payload[1000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t) (i * 7 + 3);
    const uint64_t sum = 0x1122334455667788ull;
    sw_seal_ctx_t c = {.dir = SW_SEAL_TO_STAGE, .session_id = "s1", .session_len = 2, .request_id = 99, .pos = 5,
                       .n_rows = 1, .hop = 0};
    uint8_t *box = NULL, *out = NULL;
    size_t n = 0, m = 0;
    uint64_t got = 0;
    CHECK(sw_seal_peers_close(gw, sp, &c, payload, sizeof payload, sum, &box, &n) == 0);
    CHECK(n == sizeof payload + 8 + SW_SEAL_MAC_BYTES);
    CHECK(memmem(box, n, payload + 100, 16) == NULL); /* no run of the plaintext in the box */
    CHECK(sw_seal_peers_open(st, gp, &c, box, n, &out, &m, &got) == 0);
    CHECK(m == sizeof payload && out && !memcmp(out, payload, m) && got == sum);
    free(out);
    out = NULL;
    CHECK(sw_seal_peers_open(st, op, &c, box, n, &out, &m, &got) == -1 && !out);  /* another sender's key */
    CHECK(sw_seal_peers_open(ot, gp, &c, box, n, &out, &m, &got) == -1 && !out);  /* sealed for someone else */
    sw_seal_ctx_t r = c;
    r.request_id = 101; /* the same body replayed for a new request */
    CHECK(sw_seal_peers_open(st, gp, &r, box, n, &out, &m, &got) == -1 && !out);
    r = c;
    r.pos = 6; /* reordered: presented as the next position */
    CHECK(sw_seal_peers_open(st, gp, &r, box, n, &out, &m, &got) == -1 && !out);
    r = c;
    r.dir = SW_SEAL_TO_GATEWAY; /* a request presented as a reply */
    CHECK(sw_seal_peers_open(gw, sp, &r, box, n, &out, &m, &got) == -1 && !out);
    box[n / 2] ^= 1;
    CHECK(sw_seal_peers_open(st, gp, &c, box, n, &out, &m, &got) == -1 && !out);
    box[n / 2] ^= 1;
    CHECK(sw_seal_peers_open(st, gp, &c, box, SW_SEAL_MAC_BYTES + 7, &out, &m, &got) == -1 && !out);
    CHECK(sw_seal_peers_open(st, gp, &c, box, n - 1, &out, &m, &got) == -1 && !out);
    free(box);
    box = NULL;
    /* an empty payload still carries its checksum */
    CHECK(sw_seal_peers_close(gw, sp, &c, NULL, 0, 7, &box, &n) == 0 && n == 8 + SW_SEAL_MAC_BYTES);
    CHECK(sw_seal_peers_open(st, gp, &c, box, n, &out, &m, &got) == 0 && m == 0 && got == 7);
    free(out), free(box);
    out = box = NULL;
    /* more peers than are kept: each is made again when needed */
    for (int i = 0; i < SW_SEAL_PEERS_MAX + 3; i++) {
        uint8_t p[32], s[32];
        crypto_box_keypair(p, s);
        CHECK(sw_seal_peers_get(gw, p) != NULL);
    }
    CHECK(sw_seal_peers_close(gw, sp, &c, payload, 10, sum, &box, &n) == 0);
    CHECK(sw_seal_peers_open(st, gp, &c, box, n, &out, &m, &got) == 0 && m == 10);
    free(out), free(box);
    uint8_t zero[32] = {0}; /* a low-order point: refused */
    CHECK(sw_seal_peers_get(gw, zero) == NULL);
    CHECK(sw_seal_peers_close(gw, zero, &c, payload, 10, sum, &box, &n) == -1);
    CHECK(sw_seal_peers_get(gw, NULL) == NULL);
    sw_seal_peers_destroy(&gw);
    sw_seal_peers_destroy(&st);
    sw_seal_peers_destroy(&ot);
    sw_seal_peers_destroy(NULL);
    CHECK(gw == NULL);
    return sw_test_report("seal_peers");
}
