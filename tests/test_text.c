/*  test_text.c: sw_text_append (core/sw_common.h), the growing byte buffer
 *  that completions are built in: contents against a naive concatenation,
 *  the NUL terminator, and a refused size that leaves the buffer intact. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_test.h"

int main(void)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    /* an empty append still gives a valid empty string */
    CHECK(sw_text_append(&buf, &len, &cap, NULL, 0) == 0);
    CHECK(buf && len == 0 && buf[0] == 0 && cap > 0);

    /* 3000 pieces of varying length (embedded NULs included) against a fixed array */
    static char want[1 << 20];
    size_t want_len = 0;
    uint32_t x = 12345;
    int ok = 1;
    for (int i = 0; i < 3000; i++) {
        char piece[300];
        x = x * 1103515245u + 12345u;
        const size_t n = (x >> 16) % sizeof piece;
        for (size_t k = 0; k < n; k++)
            piece[k] = (char) ((x >> 8) + k * 7);
        memcpy(want + want_len, piece, n);
        want_len += n;
        if (sw_text_append(&buf, &len, &cap, piece, n) != 0)
            ok = 0;
    }
    CHECK(ok);
    CHECK(len == want_len && cap > len);
    CHECK(memcmp(buf, want, want_len) == 0);
    CHECK(buf[len] == 0);

    /* a size that cannot fit is refused and the text is kept as it was */
    char *before = buf;
    CHECK(sw_text_append(&buf, &len, &cap, "x", SIZE_MAX - 8) == -1);
    CHECK(buf == before && len == want_len && memcmp(buf, want, want_len) == 0);
    free(buf);
    return sw_test_report("text");
}
