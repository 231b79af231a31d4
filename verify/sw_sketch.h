/*  sw_sketch.h: a short, noise-tolerant fingerprint of activation rows, for
 *  comparing what two hosts computed for the same layers (audits,
 *  docs/security.md "Verification").
 *
 *  A sketch of one row y (n_embd f32, the hidden state leaving layer L) is
 *  SW_SKETCH_K numbers:
 *      s_j = (1 / sqrt(n_embd)) * sum_i r_j(i) * y_i,      j = 0..K-1
 *  with r_j(i) in {-1, +1}: bit (i mod 64) of the splitmix64 output number
 *  (i / 64) of the stream seeded with  L * 0x9E3779B97F4A7C15 + j + 1  (the
 *  splitmix64 generator of Steele, Lea and Flood, "Fast splittable
 *  pseudorandom number generators", OOPSLA 2014). Sums are taken in double,
 *  in index order, so the sketch of one row is the same on every machine.
 *  This is a Johnson-Lindenstrauss random projection: for a row difference
 *  d = y - y', E[||S d||^2] = ||d||^2 / n_embd * K, so the relative distance
 *  of two sketches estimates the relative distance of the rows (with K = 8,
 *  to within a factor of about 2 with high probability). A host that skips
 *  its layers, returns noise or computes with other weights changes the rows
 *  by a large fraction of their norm; honest differences (activation codecs,
 *  thread counts, instruction sets) change them by far less (the measured
 *  figures and the threshold are in docs/security.md).
 *  The directions are public: they do not need to be secret, because a
 *  sketch is only ever compared with a sketch computed independently from
 *  honest inputs, and producing the honest sketch needs the honest rows.
 *
 *  Thread safety: pure functions.
 */
#ifndef SW_SKETCH_H
#define SW_SKETCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_SKETCH_K 8 /* numbers per row */

/*  Sketches rows: (n_rows, n_embd) f32 row-major, the output of layer
 *  layer_end - 1 (layer_end = the end of the half-open range computed), into
 *  out: (n_rows, SW_SKETCH_K) f32. n_rows >= 0, n_embd >= 1. */
void sw_sketch_rows(const float *rows, int32_t n_rows, int32_t n_embd, uint32_t layer_end, float *out);

/*  Relative distance of two sketches of one row: ||a - b|| / max(||b||,
 *  1e-20) (b is the reference: the auditor's). a, b: SW_SKETCH_K f32.
 *  Returns +inf when either holds a NaN or an infinity. */
double sw_sketch_distance(const float *a, const float *b);

#ifdef __cplusplus
}
#endif
#endif
