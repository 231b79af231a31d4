/*  sw_matmul.c: y = x W^T front end: kernel choice, weight repacking,
 *  activation quantization, splitting the work over the pool, OpenBLAS for
 *  f32-family weights with many tokens.
 *
 *  The kernels live in sw_matmul_scalar.c (portable reference, GGUF layout),
 *  sw_matmul_avx2.c and sw_matmul_avx512.c (x86-64; compiled with function
 *  target attributes, so they exist in every x86-64 build and are picked at
 *  run time). See sw_kernels_impl.h for the repacked layout.
 */
#include "sw_matmul.h"

#include <stdatomic.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "sw_common.h"
#include "sw_kernels_impl.h"

/*  Below this many tokens f32-family weights use our own kernels, at and
 *  above it OpenBLAS sgemm on each thread's slice of rows. */
#define SW_BLAS_MIN_TOK 8
/*  Activations of fewer elements are quantized by the calling thread alone. */
#define SW_QUANT_SERIAL_MAX 65536
/*  Largest accepted n_in and n_out (keeps int32 block sums and sizes safe). */
#define SW_MAX_DIM (1ll << 28)

/* ------------------------------------------------------------------------ */
/*  Kernel choice                                                           */

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static const sw__kernels_t *s_best = &sw__kernels_scalar;
static int s_scalar_forced = 0;
static int s_k_tiles_off = 0; /* SWISD_KQUANT_TILES=0: Q4_K / Q5_K through the rows kernels */
static sw_matmul_observer_fn *s_observer = NULL; /* sw_matmul_set_observer */
static void *s_observer_ctx = NULL;

void sw_matmul_set_observer(sw_matmul_observer_fn *fn, void *ctx)
{
    s_observer = fn;
    s_observer_ctx = ctx;
}

static void s_pick(void)
{
    const sw__kernels_t *k = &sw__kernels_scalar;
#if defined(__x86_64__)
    __builtin_cpu_init();
    /* F16C from CPUID leaf 1 (not every compiler knows it as a cpu feature) */
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    int f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    int vnni = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
               __builtin_cpu_supports("bmi2");
    if (vnni)
        k = &sw__kernels_avx512;
    else if (avx2)
        k = &sw__kernels_avx2;
    /* SWISD_KERNELS=avx2|scalar caps the choice (tests and benchmarks) */
    const char *env = getenv("SWISD_KERNELS");
    if (env && strcmp(env, "scalar") == 0)
        k = &sw__kernels_scalar;
    else if (env && strcmp(env, "avx2") == 0 && avx2)
        k = &sw__kernels_avx2;
#else
    const char *env = getenv("SWISD_KERNELS");
    (void) env;
#endif
    /* SWISD_KQUANT_TILES=0 keeps Q4_K / Q5_K in the GGUF layout (rows kernels):
     * the kernels before the repacked ones, for benchmarks and tests */
    const char *kt = getenv("SWISD_KQUANT_TILES");
    s_k_tiles_off = kt && strcmp(kt, "0") == 0;
    s_best = k;
    /* our pool does the threading; OpenBLAS runs single-threaded per caller */
    openblas_set_num_threads(1);
}

static const sw__kernels_t *s_best_kernels(void)
{
    pthread_once(&s_once, s_pick);
    return s_best;
}

static const sw__kernels_t *s_kernels(void)
{
    const sw__kernels_t *k = s_best_kernels();
    return s_scalar_forced ? &sw__kernels_scalar : k;
}

const char *sw_matmul_kernel_name(void)
{
    return s_kernels()->name;
}

void sw_matmul_force_scalar(int on)
{
    s_best_kernels();
    s_scalar_forced = on ? 1 : 0;
}

static int s_slot(sw_dtype_t type)
{
    switch (type) {
    case SW_DTYPE_F32: return SW__K_F32;
    case SW_DTYPE_F16: return SW__K_F16;
    case SW_DTYPE_BF16: return SW__K_BF16;
    case SW_DTYPE_Q8_0: return SW__K_Q8_0;
    case SW_DTYPE_Q4_0: return SW__K_Q4_0;
    case SW_DTYPE_Q4_K: return SW__K_Q4_K;
    case SW_DTYPE_Q6_K: return SW__K_Q6_K;
    case SW_DTYPE_Q4_1: return SW__K_Q4_1;
    case SW_DTYPE_Q5_0: return SW__K_Q5_0;
    case SW_DTYPE_Q5_1: return SW__K_Q5_1;
    case SW_DTYPE_IQ4_NL: return SW__K_IQ4_NL;
    case SW_DTYPE_Q2_K: return SW__K_Q2_K;
    case SW_DTYPE_Q3_K: return SW__K_Q3_K;
    case SW_DTYPE_Q5_K: return SW__K_Q5_K;
    case SW_DTYPE_IQ4_XS: return SW__K_IQ4_XS;
    default: return -1;
    }
}

/* ------------------------------------------------------------------------ */
/*  Weights                                                                 */

/*  Bytes of one r16 record and elements per row it covers. */
static size_t s_rec_bytes(sw_dtype_t type)
{
    switch (type) {
    case SW_DTYPE_Q8_0: return SW__REC_Q8_0;
    case SW_DTYPE_Q4_K: return SW__REC_Q4_K;
    case SW_DTYPE_Q5_K: return SW__REC_Q5_K;
    default: return SW__REC_Q4_0;
    }
}

static int s_is_k_tile(sw_dtype_t type)
{
    return type == SW_DTYPE_Q4_K || type == SW_DTYPE_Q5_K;
}

static int64_t s_rec_elems(sw_dtype_t type)
{
    return s_is_k_tile(type) ? SW_QK_K : 32;
}

/*  One r16 Q4_K / Q5_K record (layout: sw_kernels_impl.h) from the GGUF
 *  blocks b of the group's rows; rows at or past n_out stay zero (d = dmin
 *  = 0). The two block types share d, dmin and scales at the same offsets. */
static void s_repack_k45(sw_dtype_t type, uint8_t *o, const uint8_t *data, size_t row_bytes, int64_t g, int64_t b,
                         int64_t n_out)
{
    const int q5 = type == SW_DTYPE_Q5_K;
    const size_t bb = q5 ? sizeof(sw_block_q5_K) : sizeof(sw_block_q4_K);
    memset(o, 0, q5 ? SW__REC_Q5_K : SW__REC_Q4_K);
    for (int r = 0; r < SW__GROUP; r++) {
        int64_t row = g * SW__GROUP + r;
        if (row >= n_out)
            break;
        const uint8_t *blk = data + (size_t) row * row_bytes + (size_t) b * bb;
        memcpy(o + 2 * r, blk, 2);           /* d */
        memcpy(o + 32 + 2 * r, blk + 2, 2);  /* dmin */
        uint32_t sc[2], mn[2];
        sw__k4_scales(blk + 4, &sc[0], &sc[1], &mn[0], &mn[1]);
        for (int s = 0; s < 8; s++) {
            o[64 + 16 * s + r] = (uint8_t) (sc[s / 4] >> (8 * (s % 4)));
            o[192 + 16 * s + r] = (uint8_t) (mn[s / 4] >> (8 * (s % 4)));
        }
        const uint8_t *qs = blk + (q5 ? 48 : 16);
        uint8_t *oq = o + (q5 ? 832 : 320);
        for (int k = 0; k < 32; k++)
            memcpy(oq + 64 * k + 4 * r, qs + 4 * k, 4);
        if (q5)
            for (int c = 0; c < 8; c++)
                memcpy(o + 320 + 64 * c + 4 * r, blk + 16 + 4 * c, 4); /* qh */
    }
}

/*  Builds the r16 copy of Q8_0 / Q4_0 / Q4_K / Q5_K weights (layout: sw_kernels_impl.h). */
static void *s_repack(sw_dtype_t type, int64_t n_in, int64_t n_out, const uint8_t *data, size_t row_bytes)
{
    const int64_t nb = n_in / s_rec_elems(type);
    const int64_t ng = (n_out + SW__GROUP - 1) / SW__GROUP;
    const size_t rec = s_rec_bytes(type);
    if ((uint64_t) ng * (uint64_t) nb > SIZE_MAX / rec)
        return NULL;
    uint8_t *out = sw_alloc_aligned((size_t) ng * (size_t) nb * rec);
    if (!out)
        return NULL;
    for (int64_t g = 0; g < ng; g++) {
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *o = out + ((size_t) g * (size_t) nb + (size_t) b) * rec;
            if (s_is_k_tile(type)) {
                s_repack_k45(type, o, data, row_bytes, g, b, n_out);
                continue;
            }
            memset(o, 0, rec);
            for (int r = 0; r < SW__GROUP; r++) {
                int64_t row = g * SW__GROUP + r;
                if (row >= n_out) {
                    /* zero weights: u8 128 encodes q = 0 for Q8_0; d = 0 anyway */
                    if (type == SW_DTYPE_Q8_0)
                        for (int k = 0; k < 8; k++)
                            memset(o + 32 + 64 * k + 4 * r, 0x80, 4);
                    continue;
                }
                const uint8_t *src = data + (size_t) row * row_bytes;
                if (type == SW_DTYPE_Q8_0) {
                    const sw_block_q8_0 *blk = (const sw_block_q8_0 *) src + b;
                    memcpy(o + 2 * r, &blk->d, 2);
                    for (int k = 0; k < 8; k++)
                        for (int j = 0; j < 4; j++)
                            o[32 + 64 * k + 4 * r + j] = (uint8_t) blk->qs[4 * k + j] ^ 0x80u;
                } else {
                    const sw_block_q4_0 *blk = (const sw_block_q4_0 *) src + b;
                    memcpy(o + 2 * r, &blk->d, 2);
                    for (int c = 0; c < 4; c++)
                        memcpy(o + 32 + 64 * c + 4 * r, blk->qs + 4 * c, 4);
                }
            }
        }
    }
    return out;
}

/*  The tile kernel of k for weights of this type, NULL if they go through
 *  rows kernels. */
static sw__tile_fn *s_tile_for(const sw__kernels_t *k, sw_dtype_t type)
{
    switch (type) {
    case SW_DTYPE_Q8_0: return k->tile_q8_0;
    case SW_DTYPE_Q4_0: return k->tile_q4_0;
    case SW_DTYPE_Q4_K: return s_k_tiles_off ? NULL : k->tile_q4_K;
    case SW_DTYPE_Q5_K: return s_k_tiles_off ? NULL : k->tile_q5_K;
    default: return NULL;
    }
}

int sw_weight_init(sw_weight_t *w, sw_dtype_t type, int64_t n_in, int64_t n_out, const void *data)
{
    if (!w)
        return -1;
    memset(w, 0, sizeof(*w));
    if (s_slot(type) < 0) {
        sw_log(SW_LOG_ERROR, "%s: unsupported weight type %s (%d)", __func__, sw_dtype_name(type), (int) type);
        return -1;
    }
    size_t rb = sw_dtype_row_size(type, n_in);
    if (!data || n_in <= 0 || n_out <= 0 || n_in > SW_MAX_DIM || n_out > SW_MAX_DIM || rb == 0) {
        sw_log(SW_LOG_ERROR, "%s: bad shape n_in %lld n_out %lld for %s", __func__, (long long) n_in,
               (long long) n_out, sw_dtype_name(type));
        return -1;
    }
    w->type = type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = rb;
    w->data = data;
    const sw__kernels_t *k = s_best_kernels();
    if (s_tile_for(k, type)) {
        w->priv = s_repack(type, n_in, n_out, data, rb);
        if (!w->priv) {
            sw_log(SW_LOG_ERROR, "%s: out of memory repacking %lld x %lld %s", __func__, (long long) n_out,
                   (long long) n_in, sw_dtype_name(type));
            memset(w, 0, sizeof(*w));
            return -1;
        }
    }
    return 0;
}

void sw_weight_release(sw_weight_t *w)
{
    if (!w)
        return;
    sw_free(w->priv);
    w->priv = NULL;
}

/* ------------------------------------------------------------------------ */
/*  Jobs                                                                    */

typedef struct {
    const sw__kernels_t *k;
    const sw_weight_t *w;
    const float *x;          /* f32 activations (n_tok, n_in) */
    int64_t n_tok;
    float *y;                /* (n_tok, n_out) */
    /* tiles */
    sw__tile_fn *tile;
    int8_t *xq;              /* (n_tok, n_in) */
    float *xd;               /* (n_tok, nb) */
    int32_t *xb;             /* (n_tok, nb) */
    int bias_mul;
    /* Q4_K / Q5_K tiles take Q8_K rows (xa, xa_stride) instead of xq / xd / xb */
    /* rows */
    sw__rows_fn *rows;
    const void *xa;          /* activation rows for rows kernels */
    size_t xa_stride;        /* bytes between activation rows */
    sw_dtype_t xa_type;      /* Q8_0 / Q8_K activation type to quantize to, or F32 */
    /* blas */
    float *blas_buf;         /* per-thread dequantized rows, blas_rows * n_in floats each */
    int64_t blas_rows;
    _Atomic int64_t next;    /* tiles: next group index to take */
    /* several weights on one input (sw_matmul_multi) */
    int n_multi;
    const sw_weight_t *const *ws;
    float *const *ys;
    int64_t group_end[SW_MATMUL_MULTI_MAX]; /* cumulative group counts */
} s_job_t;

static void s_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

static void s_quant_tiles(s_job_t *j, int64_t t0, int64_t t1)
{
    const int64_t n_in = j->w->n_in, nb = n_in / 32;
    for (int64_t t = t0; t < t1; t++)
        j->k->quant(j->x + t * n_in, n_in, j->xq + t * n_in, j->xd + t * nb, j->xb + t * nb, j->bias_mul);
}

static void s_quant_rows(s_job_t *j, int64_t t0, int64_t t1)
{
    if (j->xa_type == SW_DTYPE_Q8_K && j->k->quant_q8_K) {
        for (int64_t t = t0; t < t1; t++)
            j->k->quant_q8_K(j->x + t * j->w->n_in, (sw_block_q8_K *) ((char *) j->xa + (size_t) t * j->xa_stride),
                             j->w->n_in);
        return;
    }
    for (int64_t t = t0; t < t1; t++)
        sw_quantize_row(j->xa_type, j->x + t * j->w->n_in, (char *) j->xa + (size_t) t * j->xa_stride, j->w->n_in);
}

static void s_job_quant(void *arg, int ith, int nth)
{
    s_job_t *j = arg;
    int64_t t0, t1;
    s_split(j->n_tok, ith, nth, &t0, &t1);
    if (j->tile && !s_is_k_tile(j->w->type))
        s_quant_tiles(j, t0, t1);
    else
        s_quant_rows(j, t0, t1);
}

/* Tiles of one or several weights sharing one quantized input: groups of
 * SW__GROUP rows (concatenated over the weights) are taken in chunks from a
 * shared counter rather than split evenly up front, since on machines where
 * a core can be preempted (VMs, a busy desktop) an even split leaves the
 * other threads waiting; one pool job serves all the weights. */
static void s_job_tiles_multi(void *arg, int ith, int nth)
{
    s_job_t *j = arg;
    const int64_t total = j->group_end[j->n_multi - 1];
    int64_t chunk = total / ((int64_t) nth * 8);
    chunk = chunk < 1 ? 1 : chunk;
    (void) ith;
    for (;;) {
        const int64_t g0 = atomic_fetch_add_explicit(&j->next, chunk, memory_order_relaxed);
        if (g0 >= total)
            break;
        const int64_t g1 = g0 + chunk < total ? g0 + chunk : total;
        int m = 0;
        for (int64_t gg = g0; gg < g1; gg++) {
            while (gg >= j->group_end[m])
                m++;
            const sw_weight_t *w = j->ws[m];
            const int64_t g = gg - (m ? j->group_end[m - 1] : 0);
            const int64_t nb = w->n_in / s_rec_elems(w->type);
            const size_t rec = s_rec_bytes(w->type);
            const int64_t rows_left = w->n_out - g * SW__GROUP;
            sw__tile_t t = {
                .wg = (const uint8_t *) w->priv + (size_t) g * (size_t) nb * rec,
                .nb = nb,
                .xq = j->xq,
                .xq_stride = w->n_in,
                .xd = j->xd,
                .xb = j->xb,
                .xs_stride = nb,
                .xk = j->xa,
                .xk_stride = (int64_t) (j->xa_stride / sizeof(sw_block_q8_K)),
                .n_tok = j->n_tok,
                .y = j->ys[m] + g * SW__GROUP,
                .ldy = w->n_out,
                .n_rows = rows_left < SW__GROUP ? (int) rows_left : SW__GROUP,
            };
            j->tile(&t);
        }
    }
}

static void s_job_rows(void *arg, int ith, int nth)
{
    s_job_t *j = arg;
    const sw_weight_t *w = j->w;
    /* split in units of 4 rows so that threads do not share cache lines of y */
    int64_t u0, u1;
    s_split((w->n_out + 3) / 4, ith, nth, &u0, &u1);
    int64_t r0 = u0 * 4, r1 = u1 * 4 < w->n_out ? u1 * 4 : w->n_out;
    if (r0 < r1)
        j->rows(w->data, w->row_bytes, w->n_in, r0, r1, j->xa, j->xa_stride, j->n_tok, j->y, w->n_out);
}

static void s_job_blas(void *arg, int ith, int nth)
{
    s_job_t *j = arg;
    const sw_weight_t *w = j->w;
    const int64_t n_in = w->n_in;
    int64_t u0, u1;
    s_split((w->n_out + 15) / 16, ith, nth, &u0, &u1);
    int64_t r0 = u0 * 16, r1 = u1 * 16 < w->n_out ? u1 * 16 : w->n_out;
    if (w->type == SW_DTYPE_F32) {
        if (r0 < r1)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) j->n_tok, (int) (r1 - r0), (int) n_in, 1.0f,
                        j->x, (int) n_in, (const float *) w->data + r0 * n_in, (int) n_in, 0.0f, j->y + r0,
                        (int) w->n_out);
        return;
    }
    float *buf = j->blas_buf + (size_t) ith * (size_t) j->blas_rows * (size_t) n_in;
    for (int64_t c0 = r0; c0 < r1; c0 += j->blas_rows) {
        int64_t c1 = c0 + j->blas_rows < r1 ? c0 + j->blas_rows : r1;
        for (int64_t r = c0; r < c1; r++)
            sw_dequantize_row(w->type, (const uint8_t *) w->data + (size_t) r * w->row_bytes, buf + (r - c0) * n_in,
                              n_in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) j->n_tok, (int) (c1 - c0), (int) n_in, 1.0f, j->x,
                    (int) n_in, buf, (int) n_in, 0.0f, j->y + c0, (int) w->n_out);
    }
}

/* ------------------------------------------------------------------------ */

static size_t s_round64(size_t n)
{
    return (n + 63) & ~(size_t) 63;
}

/*  Scratch bytes for a tile product's quantized input; sets the activation
 *  type of j for Q4_K / Q5_K (Q8_K rows). */
static size_t s_tiles_scratch(s_job_t *j, sw_dtype_t type, int64_t n_tok, int64_t n_in)
{
    if (s_is_k_tile(type)) {
        j->xa_type = SW_DTYPE_Q8_K;
        j->xa_stride = sw_dtype_row_size(SW_DTYPE_Q8_K, n_in);
        return (size_t) n_tok * j->xa_stride;
    }
    const int64_t nb = n_in / 32;
    return s_round64((size_t) n_tok * (size_t) n_in) + 2 * s_round64((size_t) n_tok * (size_t) nb * 4);
}

/*  Carves mem (s_tiles_scratch bytes) and quantizes the input into it, on
 *  the pool when the input is large. */
static void s_tiles_input(s_job_t *j, void *mem, sw_pool_t *pool, int nth)
{
    const int64_t n_tok = j->n_tok, n_in = j->w->n_in, nb = n_in / 32;
    if (s_is_k_tile(j->w->type)) {
        j->xa = mem; /* (n_tok, n_in / 256) Q8_K blocks */
    } else {
        j->xq = mem; /* (n_tok, n_in) int8 */
        j->xd = (float *) ((char *) mem + s_round64((size_t) n_tok * (size_t) n_in)); /* (n_tok, nb) */
        j->xb = (int32_t *) ((char *) j->xd + s_round64((size_t) n_tok * (size_t) nb * 4)); /* (n_tok, nb) */
        j->bias_mul = j->w->type == SW_DTYPE_Q8_0 ? j->k->q8_0_bias : 8;
    }
    if (nth > 1 && n_tok * n_in > SW_QUANT_SERIAL_MAX && n_tok >= nth)
        sw_pool_run(pool, s_job_quant, j);
    else
        s_job_quant(j, 0, 1);
}

/* Below this many multiply-adds a product runs on the calling thread: waking
 * the pool costs more than it saves (measured on stories260K, docs/performance.md). */
#define SW_INLINE_MACS (1 << 17)

int sw_matmul(sw_pool_t *pool, const sw_weight_t *w, const float *x, int64_t n_tok, float *y)
{
    if (!w || !w->data || !x || !y || n_tok < 0 || s_slot(w->type) < 0)
        return -1;
    if (s_observer && n_tok > 0)
        s_observer(s_observer_ctx, w, x, n_tok);
    sw_pool_t *owner = pool; /* its scratch is reused even when the work runs inline */
    if (n_tok * w->n_in * w->n_out < SW_INLINE_MACS)
        pool = NULL;
    if (n_tok == 0)
        return 0;
    const sw__kernels_t *k = s_kernels();
    const int nth = sw_pool_n_threads(pool);
    const int64_t n_in = w->n_in;
    s_job_t j = { .k = k, .w = w, .x = x, .n_tok = n_tok, .y = y };

    sw__tile_fn *tile = w->priv ? s_tile_for(k, w->type) : NULL;
    int is_float = w->type == SW_DTYPE_F32 || w->type == SW_DTYPE_F16 || w->type == SW_DTYPE_BF16;
    int use_blas = is_float && !s_scalar_forced && n_tok >= SW_BLAS_MIN_TOK && n_tok <= INT32_MAX;

    /* scratch sizes */
    size_t need = 0;
    if (tile) {
        need = s_tiles_scratch(&j, w->type, n_tok, n_in);
    } else if (use_blas) {
        j.blas_rows = w->type == SW_DTYPE_F32 ? 0 : 64;
        need = (size_t) nth * (size_t) j.blas_rows * (size_t) n_in * sizeof(float);
    } else if (!is_float) {
        /* activations in blocks of the weight's block size (ggml's pairing) */
        j.xa_type = sw_dtype_block_size(w->type) == SW_QK_K ? SW_DTYPE_Q8_K : SW_DTYPE_Q8_0;
        j.xa_stride = sw_dtype_row_size(j.xa_type, n_in);
        need = (size_t) n_tok * j.xa_stride;
    }
    void *mem = NULL, *owned = NULL;
    if (need) {
        mem = owner ? sw__pool_scratch(owner, need) : (owned = sw_alloc_aligned(need));
        if (!mem) {
            sw_log(SW_LOG_ERROR, "%s: out of memory (%zu bytes of scratch)", __func__, need);
            return -1;
        }
    }

    if (tile) {
        j.tile = tile;
        s_tiles_input(&j, mem, pool, nth);
        const sw_weight_t *one_w[1] = {w};
        float *one_y[1] = {y};
        j.n_multi = 1;
        j.ws = one_w;
        j.ys = one_y;
        j.group_end[0] = (w->n_out + SW__GROUP - 1) / SW__GROUP;
        sw_pool_run(pool, s_job_tiles_multi, &j);
    } else if (use_blas) {
        j.blas_buf = mem;
        sw_pool_run(pool, s_job_blas, &j);
    } else {
        /* rows kernels; tiled types without a repacked copy use the reference */
        j.rows = k->rows[s_slot(w->type)];
        if (!j.rows)
            j.rows = sw__kernels_scalar.rows[s_slot(w->type)];
        if (is_float) {
            j.xa = x;
            j.xa_stride = (size_t) n_in * sizeof(float);
        } else {
            j.xa = mem;
            if (nth > 1 && n_tok * n_in > SW_QUANT_SERIAL_MAX && n_tok >= nth)
                sw_pool_run(pool, s_job_quant, &j);
            else
                s_quant_rows(&j, 0, n_tok);
        }
        sw_pool_run(pool, s_job_rows, &j);
    }
    sw_free(owned);
    return 0;
}

int sw_matmul_multi(sw_pool_t *pool, const sw_weight_t *const *ws, int n, const float *x, int64_t n_tok,
                    float *const *ys)
{
    if (n <= 0 || n > SW_MATMUL_MULTI_MAX || !ws || !ys || !x || n_tok < 0)
        return -1;
    int64_t macs = 0;
    for (int i = 0; i < n; i++)
        macs += n_tok * ws[i]->n_in * ws[i]->n_out;
    sw_pool_t *owner = pool;
    if (macs < SW_INLINE_MACS)
        pool = NULL;
    const sw__kernels_t *k = s_kernels();
    sw__tile_fn *tile = !s_scalar_forced && ws[0]->priv ? s_tile_for(k, ws[0]->type) : NULL;
    bool same = tile != NULL;
    for (int i = 1; i < n && same; i++)
        same = ws[i]->priv && ws[i]->type == ws[0]->type && ws[i]->n_in == ws[0]->n_in;
    if (!same || n_tok == 0) {
        for (int i = 0; i < n; i++)
            if (sw_matmul(pool, ws[i], x, n_tok, ys[i]) != 0)
                return -1;
        return 0;
    }
    if (s_observer)
        for (int i = 0; i < n; i++)
            s_observer(s_observer_ctx, ws[i], x, n_tok);
    const int nth = sw_pool_n_threads(pool);
    const int64_t n_in = ws[0]->n_in;
    s_job_t j = {.k = k, .w = ws[0], .x = x, .n_tok = n_tok, .y = ys[0], .n_multi = n, .ws = ws, .ys = ys};
    int64_t acc = 0;
    for (int i = 0; i < n; i++) {
        acc += (ws[i]->n_out + SW__GROUP - 1) / SW__GROUP;
        j.group_end[i] = acc;
    }
    const size_t need = s_tiles_scratch(&j, ws[0]->type, n_tok, n_in);
    void *owned = NULL;
    void *mem = owner ? sw__pool_scratch(owner, need) : (owned = sw_alloc_aligned(need));
    if (!mem) {
        sw_log(SW_LOG_ERROR, "%s: out of memory (%zu bytes of scratch)", __func__, need);
        return -1;
    }
    j.tile = tile;
    s_tiles_input(&j, mem, pool, nth);
    sw_pool_run(pool, s_job_tiles_multi, &j);
    sw_free(owned);
    return 0;
}
