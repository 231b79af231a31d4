/*  sw_sketch.c: random-projection sketches of activation rows (see sw_sketch.h). */
#include "sw_sketch.h"

#include <math.h>

/* splitmix64 (Steele, Lea and Flood 2014): state += golden gamma, then mix */
static uint64_t s_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sw_sketch_rows(const float *rows, int32_t n_rows, int32_t n_embd, uint32_t layer_end, float *out)
{
    /* The K sums run side by side over one pass of the row: K independent
     * accumulators (no chain of dependent additions per sum) and a sign
     * taken by arithmetic instead of a branch on a random bit (which the
     * CPU mispredicts half the time). Each sum still adds its terms in
     * index order, and y * (+-1) is exact, so the result is the same, bit
     * for bit, as the formula's one-sum-at-a-time loop. */
    const double scale = 1.0 / sqrt((double) n_embd);
    for (int32_t r = 0; r < n_rows; r++) {
        const float *y = rows + (int64_t) r * n_embd;
        uint64_t state[SW_SKETCH_K], bits[SW_SKETCH_K];
        double sum[SW_SKETCH_K];
        for (int j = 0; j < SW_SKETCH_K; j++) {
            state[j] = (uint64_t) layer_end * 0x9E3779B97F4A7C15ull + (uint64_t) j + 1;
            sum[j] = 0;
        }
        for (int32_t i0 = 0; i0 < n_embd; i0 += 64) {
            for (int j = 0; j < SW_SKETCH_K; j++)
                bits[j] = s_splitmix64(&state[j]);
            const int32_t n = n_embd - i0 < 64 ? n_embd - i0 : 64;
            for (int32_t k = 0; k < n; k++) {
                const double v = (double) y[i0 + k];
                for (int j = 0; j < SW_SKETCH_K; j++)
                    sum[j] += v * (double) ((int64_t) ((bits[j] >> k) & 1) * 2 - 1);
            }
        }
        for (int j = 0; j < SW_SKETCH_K; j++)
            out[(int64_t) r * SW_SKETCH_K + j] = (float) (sum[j] * scale);
    }
}

double sw_sketch_distance(const float *a, const float *b)
{
    double d = 0, n = 0;
    for (int j = 0; j < SW_SKETCH_K; j++) {
        const double x = (double) a[j] - (double) b[j];
        d += x * x;
        n += (double) b[j] * (double) b[j];
    }
    if (!isfinite(d))
        return INFINITY;
    return sqrt(d) / fmax(sqrt(n), 1e-20);
}
