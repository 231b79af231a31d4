/*  tok_tool: encodes lines of hex-encoded text with a swisd tokenizer, for
 *  comparison against an independent tokenizer by tests/tokenizer_ref.py.
 *
 *  Usage: tok_tool VOCAB   (VOCAB: a .gguf file, or a llama2.c tokenizer .bin)
 *  stdin: one line per text, the text's bytes as lowercase hex ("" = empty).
 *  stdout: one line per input: the ids (no BOS) separated by spaces, a tab,
 *  then the hex of the concatenated decode (first token decoded with prev -1).
 *  Exit status 0, or 1 when the vocabulary cannot be loaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_gguf.h"
#include "sw_llama2c.h"
#include "sw_tokenizer.h"

static int s_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tok_tool VOCAB < hexlines\n");
        return 2;
    }
    char err[256] = "";
    sw_tokenizer_t *tok = NULL;
    sw_gguf_t *g = NULL;
    sw_llama2c_vocab_t v;
    memset(&v, 0, sizeof(v));
    size_t pl = strlen(argv[1]);
    if (pl > 5 && strcmp(argv[1] + pl - 5, ".gguf") == 0) {
        g = sw_gguf_open(argv[1], err, sizeof(err));
        if (g)
            tok = sw_tokenizer_from_gguf(g, err, sizeof(err));
    } else if (sw_llama2c_vocab_load(argv[1], 0, &v, err, sizeof(err)) == 0) {
        sw_vocab_desc_t d;
        sw_llama2c_vocab_desc(&v, &d);
        tok = sw_tokenizer_new(&d, err, sizeof(err));
    }
    if (!tok) {
        fprintf(stderr, "tok_tool: %s\n", err);
        return 1;
    }
    size_t cap = 1 << 16;
    char *line = malloc(cap), *text = malloc(cap);
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    char piece[512];
    while (fgets(line, (int) cap, stdin)) {
        size_t n = strcspn(line, "\r\n"), tl = 0;
        for (size_t i = 0; i + 1 < n; i += 2)
            text[tl++] = (char) (s_hexval(line[i]) * 16 + s_hexval(line[i + 1]));
        int64_t k = sw_tokenizer_encode(tok, text, tl, false, ids, (int64_t) cap);
        if (k < 0 || k > (int64_t) cap) {
            printf("ERROR\t\n");
            continue;
        }
        for (int64_t i = 0; i < k; i++)
            printf(i ? " %d" : "%d", ids[i]);
        putchar('\t');
        for (int64_t i = 0; i < k; i++) {
            int r = sw_tokenizer_decode_token(tok, i ? ids[i - 1] : -1, ids[i], piece, sizeof(piece));
            for (int j = 0; j < r && j < (int) sizeof(piece); j++)
                printf("%02x", (unsigned char) piece[j]);
        }
        putchar('\n');
    }
    free(line);
    free(text);
    free(ids);
    sw_tokenizer_destroy(&tok);
    sw_gguf_destroy(&g);
    sw_llama2c_vocab_free(&v);
    return 0;
}
