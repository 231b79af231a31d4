/*  test_seal.c: sw_seal end to end between two real keypairs: round trip,
 *  every byte tampered, every nonce field changed (session, request id,
 *  position, rows, hop, direction), another key, a replayed frame for a new
 *  request, short and oversized inputs. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "sw_seal.h"
#include "sw_test.h"

typedef struct {
    uint8_t pub[32], sec[32];
} s_keys_t;

static void s_keypair(s_keys_t *k) { crypto_box_keypair(k->pub, k->sec); }

static sw_seal_ctx_t s_ctx(void)
{
    sw_seal_ctx_t c = {.dir = SW_SEAL_TO_STAGE, .session_id = "sess-42", .session_len = 7,
                       .request_id = 0x0123456789abcdefull, .pos = 17, .n_rows = 3, .hop = 0};
    return c;
}

static bool s_opens(const sw_seal_t *s, const sw_seal_ctx_t *c, const uint8_t *box, size_t n, uint8_t *out,
                    size_t cap)
{
    size_t got = 0;
    return sw_seal_open(s, c, box, n, out, cap, &got) == 0;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    s_keys_t gw, st, other;
    s_keypair(&gw);
    s_keypair(&st);
    s_keypair(&other);
    sw_seal_t *g = sw_seal_new(gw.sec, st.pub);   /* the gateway's view of the stage */
    sw_seal_t *s = sw_seal_new(st.sec, gw.pub);   /* the stage's view of the gateway */
    sw_seal_t *o = sw_seal_new(other.sec, gw.pub);  /* another node, towards the gateway */
    sw_seal_t *go = sw_seal_new(gw.sec, other.pub); /* the gateway's view of the other node */
    CHECK(g && s && o && go);
    if (!g || !s || !o || !go)
        return sw_test_report("seal");

    /* nonce: deterministic, 24 bytes, every field matters */
    sw_seal_ctx_t c = s_ctx();
    uint8_t n1[24], n2[24];
    CHECK(sw_seal_nonce(&c, n1) == 0 && sw_seal_nonce(&c, n2) == 0 && memcmp(n1, n2, 24) == 0);
    sw_seal_ctx_t v[7];
    for (int i = 0; i < 7; i++)
        v[i] = s_ctx();
    v[0].dir = SW_SEAL_TO_GATEWAY;
    v[1].session_id = "sess-43";
    v[2].request_id ^= 1ull << 63;
    v[3].pos++;
    v[4].n_rows++;
    v[5].hop = 1;
    v[6].session_len = 6; /* "sess-4": a prefix of the session id */
    for (int i = 0; i < 7; i++) {
        CHECK(sw_seal_nonce(&v[i], n2) == 0);
        CHECK_MSG(memcmp(n1, n2, 24) != 0, "variant %d", i);
    }
    sw_seal_ctx_t bad = s_ctx();
    bad.dir = (sw_seal_dir_t) 4; /* 1..3 are the directions (3: a stage's commitment) */
    CHECK(sw_seal_nonce(&bad, n2) == -1);
    bad.dir = (sw_seal_dir_t) 0;
    CHECK(sw_seal_nonce(&bad, n2) == -1);
    bad.dir = SW_SEAL_COMMIT; /* its own nonce space */
    CHECK(sw_seal_nonce(&bad, n2) == 0 && memcmp(n1, n2, 24) != 0);
    bad = s_ctx();
    bad.session_len = SW_SEAL_MAX_SESSION + 1;
    CHECK(sw_seal_nonce(&bad, n2) == -1);
    bad.session_id = NULL;
    bad.session_len = 1;
    CHECK(sw_seal_nonce(&bad, n2) == -1);
    bad.session_len = 0; /* an empty session id is a valid input */
    CHECK(sw_seal_nonce(&bad, n2) == 0);
    CHECK(sw_seal_nonce(NULL, n2) == -1);

    /* round trip of an activation-sized body: 3 rows x 64 f32 */
    enum { N = 3 * 64 * 4 };
    uint8_t plain[N], box[N + SW_SEAL_MAC_BYTES], out[N];
    randombytes_buf(plain, sizeof plain);
    size_t blen = 0, olen = 0;
    CHECK(sw_seal_close(g, &c, plain, N, box, sizeof box, &blen) == 0 && blen == N + SW_SEAL_MAC_BYTES);
    CHECK(memcmp(box + SW_SEAL_MAC_BYTES, plain, 16) != 0); /* not the plaintext */
    CHECK(sw_seal_open(s, &c, box, blen, out, sizeof out, &olen) == 0 && olen == N);
    CHECK(memcmp(out, plain, N) == 0);
    /* the sender can open its own frame too (one shared key per pair): the
     * direction is what keeps a reflected frame out */
    sw_seal_ctx_t refl = c;
    refl.dir = SW_SEAL_TO_GATEWAY;
    CHECK(!s_opens(g, &refl, box, blen, out, sizeof out));

    /* every byte tampered, every bit of a few bytes */
    int opened = 0;
    for (size_t i = 0; i < blen; i++) {
        box[i] ^= 0x01;
        opened += s_opens(s, &c, box, blen, out, sizeof out);
        box[i] ^= 0x01;
    }
    CHECK_MSG(opened == 0, "%d tampered frames opened", opened);
    for (int bit = 0; bit < 8; bit++) {
        box[0] ^= (uint8_t) (1u << bit);
        CHECK(!s_opens(s, &c, box, blen, out, sizeof out));
        box[0] ^= (uint8_t) (1u << bit);
        box[blen - 1] ^= (uint8_t) (1u << bit);
        CHECK(!s_opens(s, &c, box, blen, out, sizeof out));
        box[blen - 1] ^= (uint8_t) (1u << bit);
    }
    /* a failed open zeroes what it would have written */
    uint8_t fill[N];
    memset(fill, 0xaa, sizeof fill);
    box[5] ^= 0x80;
    CHECK(!s_opens(s, &c, box, blen, fill, sizeof fill));
    box[5] ^= 0x80;
    bool zero = true;
    for (size_t i = 0; i < N; i++)
        zero = zero && fill[i] == 0;
    CHECK(zero);
    /* truncated or extended frames */
    CHECK(!s_opens(s, &c, box, blen - 1, out, sizeof out));
    CHECK(!s_opens(s, &c, box + 1, blen - 1, out, sizeof out));
    CHECK(!s_opens(s, &c, box, SW_SEAL_MAC_BYTES, out, sizeof out));
    CHECK(!s_opens(s, &c, box, SW_SEAL_MAC_BYTES - 1, out, sizeof out));
    CHECK(!s_opens(s, &c, box, 0, out, sizeof out));
    CHECK(sw_seal_open(s, &c, box, SW_SEAL_MAX_PLAIN + SW_SEAL_MAC_BYTES + 1, out, sizeof out, &olen) == -1);
    CHECK(!s_opens(s, &c, box, blen, out, N - 1)); /* out too small */

    /* wrong session, request id, position, rows, hop, direction */
    for (int i = 0; i < 7; i++)
        CHECK_MSG(!s_opens(s, &v[i], box, blen, out, sizeof out), "variant %d opened", i);
    /* wrong keys: another node's pair cannot open it, nor pass for the stage */
    CHECK(!s_opens(o, &c, box, blen, out, sizeof out));
    uint8_t obox[N + SW_SEAL_MAC_BYTES];
    sw_seal_ctx_t rc = c;
    rc.dir = SW_SEAL_TO_GATEWAY;
    CHECK(sw_seal_close(o, &rc, plain, N, obox, sizeof obox, &blen) == 0);
    CHECK(!s_opens(g, &rc, obox, blen, out, sizeof out));  /* a reply not sealed by the stage asked */
    CHECK(s_opens(go, &rc, obox, blen, out, sizeof out));  /* (it is a valid frame from the other node) */
    /* the stage's genuine reply opens */
    CHECK(sw_seal_close(s, &rc, plain, N, obox, sizeof obox, &blen) == 0);
    CHECK(s_opens(g, &rc, obox, blen, out, sizeof out) && memcmp(out, plain, N) == 0);

    /* replay: the frame of an old request sent again for a new request */
    sw_seal_ctx_t next = c;
    next.request_id = 0x1111111111111111ull;
    next.pos = c.pos + c.n_rows;
    next.n_rows = c.n_rows;
    CHECK(sw_seal_close(g, &c, plain, N, box, sizeof box, &blen) == 0);
    CHECK(!s_opens(s, &next, box, blen, out, sizeof out));
    sw_seal_ctx_t same_pos = next;
    same_pos.pos = c.pos; /* even at the same position */
    CHECK(!s_opens(s, &same_pos, box, blen, out, sizeof out));
    /* reorder: two frames of one session swapped */
    uint8_t box2[N + SW_SEAL_MAC_BYTES];
    size_t blen2 = 0;
    CHECK(sw_seal_close(g, &next, plain, N, box2, sizeof box2, &blen2) == 0);
    CHECK(!s_opens(s, &c, box2, blen2, out, sizeof out));
    CHECK(!s_opens(s, &next, box, blen, out, sizeof out));
    CHECK(s_opens(s, &next, box2, blen2, out, sizeof out));

    /* sealing refuses bad arguments */
    CHECK(sw_seal_close(g, &c, plain, N, box, N + SW_SEAL_MAC_BYTES - 1, &blen) == -1);
    CHECK(sw_seal_close(g, &bad, plain, N, box, sizeof box, &blen) == 0); /* empty session: fine */
    bad.session_len = 65;
    bad.session_id = "x";
    CHECK(sw_seal_close(g, &bad, plain, N, box, sizeof box, &blen) == -1);
    CHECK(sw_seal_close(g, &c, NULL, 5, box, sizeof box, &blen) == -1);
    CHECK(sw_seal_close(g, &c, plain, (size_t) SW_SEAL_MAX_PLAIN + 1, box, (size_t) -1, &blen) == -1);
    /* an empty body round-trips (16 bytes of MAC) */
    CHECK(sw_seal_close(g, &c, NULL, 0, box, sizeof box, &blen) == 0 && blen == SW_SEAL_MAC_BYTES);
    CHECK(sw_seal_open(s, &c, box, blen, out, sizeof out, &olen) == 0 && olen == 0);
    /* a low-order peer key (all zeros) is refused */
    uint8_t zero_key[32] = {0};
    CHECK(sw_seal_new(gw.sec, zero_key) == NULL);
    CHECK(sw_seal_new(NULL, st.pub) == NULL);

    sw_seal_destroy(&g);
    sw_seal_destroy(&s);
    sw_seal_destroy(&o);
    sw_seal_destroy(&go);
    CHECK(g == NULL);
    sw_seal_destroy(&g);
    sw_seal_destroy(NULL);
    return sw_test_report("seal");
}
