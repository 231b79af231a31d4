/*  sw_matmul.h: matrix products of quantized weights with f32 activations.
 *
 *  y[t][o] = sum_i W[o][i] * x[t][i]   for t < n_tok, o < n_out, i < n_in
 *
 *  W is stored as in GGUF: n_out rows of n_in elements of `type`, each row
 *  sw_dtype_row_size(type, n_in) bytes (GGUF dims ne[0] = n_in, ne[1] = n_out).
 *  For quantized W the activations are first quantized to the matching
 *  activation type (Q8_0 for the 32-element types Q8_0, Q4_0, Q4_1, Q5_0,
 *  Q5_1, IQ4_NL; Q8_K for the 256-element Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 *  IQ4_XS), as ggml does, then integer dot products are taken; F32/F16/BF16
 *  weights use f32 arithmetic. Large products (many tokens) may go through OpenBLAS sgemm.
 *  Kernels: AVX2+FMA baseline on x86-64, AVX-512 (VNNI, with BMI2) picked at
 *  run time where the CPU has it (its own kernels for Q8_0/Q4_0/Q4_K/Q5_K
 *  tiles, Q2_K..Q6_K and IQ4_XS, the AVX2 ones otherwise), NEON on Arm, and
 *  a portable scalar path.
 *
 *  Thread safety: a sw_weight_t is read-only after init and may be shared by
 *  threads; sw_matmul uses the pool given and must not be called concurrently
 *  on the same pool.
 */
#ifndef SW_MATMUL_H
#define SW_MATMUL_H

#include <stdint.h>

#include "sw_dtype.h"
#include "sw_pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    sw_dtype_t type;     /* element type of data */
    int64_t n_in;        /* elements per row (GGUF ne[0]) */
    int64_t n_out;       /* rows (GGUF ne[1]) */
    size_t row_bytes;    /* sw_dtype_row_size(type, n_in) */
    const void *data;    /* n_out rows, borrowed (usually the GGUF mapping) */
    void *priv;          /* kernel-owned extra data (e.g. a repacked copy); NULL if none */
} sw_weight_t;

/*  Describes `data` as a weight matrix and lets the kernels prepare it
 *  (possibly a repacked copy, owned by w->priv). data is borrowed and must
 *  outlive w. Returns 0, or -1 for an unsupported type or a bad shape.
 *  On x86-64 with AVX2 or AVX-512, Q8_0, Q4_0 and Q4_K weights (and Q5_K
 *  with AVX-512) are copied once into 16-row interleaved blocks (w->priv,
 *  about the size of data: Q4_K 148 bytes per row and 256 elements against
 *  144, Q5_K 180 against 176; layouts in sw_kernels_impl.h); the fast
 *  kernels then never read data again, so a caller may drop its pages
 *  (madvise MADV_DONTNEED on a file mapping) to save memory. */
int sw_weight_init(sw_weight_t *w, sw_dtype_t type, int64_t n_in, int64_t n_out, const void *data);
/*  Frees what sw_weight_init allocated; the struct may be re-initialised. */
void sw_weight_release(sw_weight_t *w);

/*  y (n_tok, n_out) f32 row-major = x (n_tok, n_in) f32 row-major times W^T.
 *  x and y must not overlap. Returns 0, or -1 on allocation failure. */
int sw_matmul(sw_pool_t *pool, const sw_weight_t *w, const float *x, int64_t n_tok, float *y);

#define SW_MATMUL_MULTI_MAX 8

/*  ys[i] (n_tok, ws[i]->n_out) = x (n_tok, n_in) times ws[i]^T for i < n
 *  (n <= SW_MATMUL_MULTI_MAX): several matrices on the same input, e.g. the
 *  Q, K and V projections. When all are repacked q8_0 or all q4_0 with the
 *  same n_in, x is quantized once and one pool job computes every product
 *  (fewer thread hand-offs per token); otherwise it is sw_matmul in turn.
 *  Returns 0 or -1. */
int sw_matmul_multi(sw_pool_t *pool, const sw_weight_t *const *ws, int n, const float *x, int64_t n_tok,
                    float *const *ys);

/*  Called with the f32 input of every product, on the calling thread, before
 *  it is computed: w the weight (its data pointer identifies the tensor),
 *  x (n_tok, w->n_in) f32. For tools that gather activation statistics
 *  (swisd imatrix). */
typedef void(sw_matmul_observer_fn)(void *ctx, const sw_weight_t *w, const float *x, int64_t n_tok);
/*  Installs fn (NULL removes it) for every later sw_matmul / sw_matmul_multi
 *  in the process. Process-wide like sw_matmul_force_scalar: not
 *  thread-safe; set it before the products it should see, from one thread. */
void sw_matmul_set_observer(sw_matmul_observer_fn *fn, void *ctx);

/*  Name of the kernel set chosen at run time: "avx512vnni", "avx2", "neon",
 *  "scalar". */
const char *sw_matmul_kernel_name(void);
/*  For tests and benchmarks: forces the scalar reference kernels (true) or
 *  the best available (false). Not thread-safe; call before any matmul.
 *  The environment variable SWISD_KERNELS=avx2|scalar, read once at the
 *  first call into this module, caps the kernel choice the same way;
 *  SWISD_KQUANT_TILES=0 (read then too) keeps Q4_K and Q5_K weights in the
 *  GGUF layout, on the rows kernels the tiles replaced (for comparisons). */
void sw_matmul_force_scalar(int on);

#ifdef __cplusplus
}
#endif
#endif
