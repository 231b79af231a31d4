/*  fuzz_gguf.c: libFuzzer target for the GGUF reader (and the writer's
 *  copy paths). Opens the input with sw_gguf_open_memory and, when it is
 *  accepted, reads every key/value pair and every tensor through the public
 *  API, including the first and last byte of each tensor's data, reads the
 *  model hyperparameters from it (sw_hparams_from_gguf: every family's
 *  metadata, refused with a reason or within the documented bounds), then
 *  copies the metadata and tensors into a writer (in memory, never written).
 *
 *  Build with -Dfuzz=true and CC=clang (see meson.build here), or link with
 *  fuzz_main.c for a plain driver that runs without libFuzzer.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sw_gguf.h"
#include "sw_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t s_sink;

static uint64_t s_touch(const sw_gguf_t *g)
{
    uint64_t acc = sw_gguf_version(g) + sw_gguf_alignment(g) + sw_gguf_file_size(g);
    for (int64_t i = 0; i < sw_gguf_n_kv(g); i++) {
        const char *key = sw_gguf_key(g, i);
        acc += strlen(key) + (uint64_t) sw_gguf_kv_type(g, i);
        if (sw_gguf_find_key(g, key) != i)
            __builtin_trap(); /* index must find what it enumerates */
        uint32_t u;
        int64_t v;
        float f;
        bool b;
        const char *s;
        size_t len;
        char buf[8];
        if (!sw_gguf_get_u32(g, key, &u)) acc += u;
        if (!sw_gguf_get_i64(g, key, &v)) acc += (uint64_t) v;
        if (!sw_gguf_get_f32(g, key, &f)) acc += (uint64_t) (f == f);
        if (!sw_gguf_get_bool(g, key, &b)) acc += b;
        if (!sw_gguf_get_str(g, key, &s, &len) && len) acc += (uint8_t) s[0] + (uint8_t) s[len - 1];
        if (!sw_gguf_get_str_buf(g, key, buf, sizeof buf)) acc += strlen(buf);
        sw_gguf_vtype_t et;
        uint64_t n;
        if (!sw_gguf_get_arr_info(g, key, &et, &n)) {
            const uint8_t *d = sw_gguf_get_arr_data(g, key);
            if (d && n)
                acc += d[0];
            for (uint64_t j = 0; j < n; j++)
                if (!sw_gguf_get_arr_str(g, key, j, &s, &len) && len)
                    acc += (uint8_t) s[0] + (uint8_t) s[len - 1];
            if (!sw_gguf_get_arr_str(g, key, n, &s, &len))
                __builtin_trap(); /* out of range must fail */
        }
    }
    for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
        if (sw_gguf_find_tensor(g, t->name) != t || t->n_dims < 1 || t->n_dims > 4 || t->nbytes == 0)
            __builtin_trap();
        const uint8_t *d = t->data;
        acc += d[0] + d[t->nbytes - 1];
    }
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    sw_gguf_t *g = sw_gguf_open_memory(data, size, err, sizeof err);
    if (!g) {
        if (err[0] == 0 || strnlen(err, sizeof err) >= sizeof err)
            __builtin_trap(); /* a failure must say why */
        return 0;
    }
    s_sink = s_touch(g);
    sw_hparams_t hp;
    char herr[256] = "";
    if (sw_hparams_from_gguf(g, &hp, herr, sizeof herr) != 0) {
        if (herr[0] == 0)
            __builtin_trap(); /* a refusal must say why */
    } else if (hp.n_embd <= 0 || hp.n_layer <= 0 || hp.n_head <= 0 || hp.n_head_kv <= 0 ||
               hp.n_head % hp.n_head_kv != 0 || hp.head_dim <= 0 || hp.head_dim % 2 || hp.n_rot > hp.head_dim ||
               hp.n_vocab <= 0 || hp.n_expert_used > hp.n_expert || hp.n_swa < 0 || !(hp.rms_eps > 0) ||
               (hp.n_expert > 0 && (hp.n_expert_used <= 0 || hp.n_ff_exp <= 0))) {
        __builtin_trap(); /* accepted values must be within the bounds the model code relies on */
    }
    sw_gguf_writer_t *w = sw_gguf_writer_new();
    if (w) {
        if (sw_gguf_writer_copy_kv(w, g, "") != 0)
            __builtin_trap();
        for (int64_t i = 0; i < sw_gguf_n_tensors(g) && i < 8; i++) {
            const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
            if (sw_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) != 0)
                __builtin_trap(); /* anything the reader accepts the writer accepts */
        }
        sw_gguf_writer_destroy(&w);
    }
    sw_gguf_destroy(&g);
    return 0;
}
