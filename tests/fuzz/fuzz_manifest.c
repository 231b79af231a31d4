/*  fuzz_manifest.c: fuzz target for issue 13's decoders of outside input:
 *  the model manifest (fetch/sw_manifest_parse) and the HTTP Range header
 *  (gateway/sw_http_range_parse).
 *
 *  Input layout: byte 0 selects the decoder (mod 2), the rest is its input:
 *    0: sw_manifest_parse pinned to the signer of the fixed node secret key
 *       32 x 0x07 (the seed generator signs with it, so mutations reach the
 *       signature check). A manifest that parses must hold its invariants:
 *       tensors in file order, not overlapping, after the header, inside the
 *       file, layers in range, layer bytes summing to its layer tensors'
 *       sizes; abort() otherwise.
 *    1: sw_http_range_parse against sizes 0, 1 and 1054336; a satisfiable
 *       range must lie in the file (abort() otherwise).
 *  Built with the plain driver (fuzz_main.c) over the seeds of
 *  gen_manifest_seeds (a signed manifest of models/stories260K.gguf and
 *  Range values), run by the test suite.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_http_models.h"
#include "sw_manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char pinned[SW_MANIFEST_SIGNER_HEX + 1];
    if (!pinned[0]) {
        uint8_t key[32];
        memset(key, 7, sizeof key);
        if (sw_manifest_signer_of(key, pinned) != 0)
            abort();
    }
    if (size < 1 || size > (8u << 20))
        return 0;
    char err[512];
    if (data[0] % 2 == 0) {
        sw_manifest_t *m = sw_manifest_parse((const char *) data + 1, size - 1, pinned, err, sizeof err);
        if (m) {
            uint64_t end = sw_manifest_header_size(m), fsize = sw_manifest_file_size(m);
            uint64_t *lb = calloc((size_t) sw_manifest_n_layers(m), sizeof *lb);
            if (!lb)
                abort();
            for (int64_t i = 0; i < sw_manifest_n_tensors(m); i++) {
                const sw_manifest_tensor_t *t = sw_manifest_tensor(m, i);
                if (t->offset < end || t->size > fsize || t->offset > fsize - t->size)
                    abort();
                end = t->offset + t->size;
                if (t->part == SW_MANIFEST_LAYER) {
                    if (t->layer < 0 || t->layer >= sw_manifest_n_layers(m))
                        abort();
                    lb[t->layer] += t->size;
                } else if (t->layer != -1) {
                    abort();
                }
            }
            for (int l = 0; l < sw_manifest_n_layers(m); l++)
                if (lb[l] != sw_manifest_layer_bytes(m, l))
                    abort();
            free(lb);
            sw_manifest_destroy(&m);
        }
    } else {
        char *text = malloc(size);
        if (!text)
            return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;
        const uint64_t sizes[] = {0, 1, 1054336};
        for (int k = 0; k < 3; k++) {
            uint64_t a = 0, b = 0;
            if (sw_http_range_parse(text, sizes[k], &a, &b) == 0 && (a > b || b >= sizes[k]))
                abort();
        }
        free(text);
    }
    return 0;
}
