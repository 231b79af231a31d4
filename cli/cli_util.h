/*  cli_util.h: argument parsing helpers shared by the swisd subcommands.
 *  Each parser accepts the whole string or fails (no trailing garbage), and
 *  on failure prints "PROGRAM: OPTION: reason" to stderr and returns -1.
 *  Shared by the swisd tool and the swisd-broker/-stage/-gateway programs. */
#ifndef SWISD_CLI_UTIL_H
#define SWISD_CLI_UTIL_H

#include <stdint.h>

/*  Parses a decimal integer in [min, max] into *out. */
int cli_parse_i64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out);
/*  Parses a finite float in [min, max] into *out. */
int cli_parse_f32(const char *opt, const char *s, float min, float max, float *out);
/*  Parses an unsigned 64-bit integer (decimal) into *out. */
int cli_parse_u64(const char *opt, const char *s, uint64_t *out);
/*  Number of online CPUs (at least 1). */
int cli_default_threads(void);

#endif

#include "sw_dtype.h"
#include "sw_gguf.h"

/*  The type a tensor gets when a model is quantized to `target`: matrices
 *  (n_dims >= 2) whose rows are a multiple of target's block size get target;
 *  everything else (norm weights, biases, odd-width matrices) stays F32. */
sw_dtype_t cli_quant_type_for(uint32_t n_dims, int64_t ne0, sw_dtype_t target);
/*  The `general.file_type` value (llama.cpp's LLAMA_FTYPE numbering) that
 *  describes a model whose matrices are mostly `type`. */
uint32_t cli_file_type_for(sw_dtype_t type);
/*  Converts n_rows rows of ne0 f32 at src into `type` (sw_dtype_row_size
 *  bytes per row) at dst. Returns 0 or -1. */
int cli_quantize_rows(sw_dtype_t type, const float *src, void *dst, int64_t ne0, int64_t n_rows);
