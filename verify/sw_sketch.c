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
    const double scale = 1.0 / sqrt((double) n_embd);
    for (int32_t r = 0; r < n_rows; r++) {
        const float *y = rows + (int64_t) r * n_embd;
        for (int j = 0; j < SW_SKETCH_K; j++) {
            uint64_t state = (uint64_t) layer_end * 0x9E3779B97F4A7C15ull + (uint64_t) j + 1;
            double sum = 0;
            uint64_t bits = 0;
            for (int32_t i = 0; i < n_embd; i++) {
                if ((i & 63) == 0)
                    bits = s_splitmix64(&state);
                sum += (bits >> (i & 63)) & 1 ? (double) y[i] : -(double) y[i];
            }
            out[(int64_t) r * SW_SKETCH_K + j] = (float) (sum * scale);
        }
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
