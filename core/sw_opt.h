/*  sw_opt.h: values of command-line options, shared by the `swisd` tool and
 *  the swisd-broker, -stage and -gateway daemons. Options themselves are
 *  parsed with getopt_long(3); these helpers turn one option's text (optarg)
 *  into a checked number.
 *
 *  Each parser accepts the whole string or fails (no sign where none is
 *  allowed, no trailing garbage, no overflow, nothing outside the bounds).
 *  On failure it prints "PROGRAM: OPTION: reason" to stderr (PROGRAM is
 *  program_invocation_short_name), leaves *out unchanged and returns -1; on
 *  success it writes *out and returns 0. None exits: a main collects the
 *  failures (`bad |= sw_opt_int(...)`) and exits with status 2 after
 *  getopt_long's loop.
 *
 *  `opt` is the option's name as the user typed it ("--threads"), used only
 *  in the message; `s` is the option's text and may be NULL (an error).
 *
 *  Thread safety: reentrant (errno is thread-local).
 */
#ifndef SW_OPT_H
#define SW_OPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  A decimal integer in [min, max] into *out (int64). */
int sw_opt_i64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out);

/*  A decimal integer in [min, max] into *out (int): sw_opt_i64 for the many
 *  options whose field is an int. */
int sw_opt_int(const char *opt, const char *s, int min, int max, int *out);

/*  A non-negative decimal integer (uint64, the whole range; e.g. a seed)
 *  into *out. A leading '-' is refused (strtoull would wrap it). */
int sw_opt_u64(const char *opt, const char *s, uint64_t *out);

/*  A finite number in [min, max] into *out (float; strtof syntax: 0.5,
 *  1e-3). NaN and infinities are refused. */
int sw_opt_f32(const char *opt, const char *s, float min, float max, float *out);

/*  A comma-separated list of decimal integers, each in [min, max] ("1,2,3";
 *  no spaces, no empty items), into a new array *out of *n_out int32
 *  (caller frees it with free()). At most max_n items; the count is checked
 *  before anything is allocated. On failure *out is left unchanged. */
int sw_opt_i32_list(const char *opt, const char *s, int32_t min, int32_t max, int64_t max_n, int32_t **out,
                    int64_t *n_out);

/*  A memory size into *out, in bytes: a positive decimal integer of MiB, or
 *  with a suffix K, M or G (either case) of KiB, MiB or GiB ("512", "400K",
 *  "2G"). At most 1 TiB. */
int sw_opt_size(const char *opt, const char *s, size_t *out);

/*  The default thread count: the number of online CPUs, clamped to [1, 256]
 *  (256 is the largest --threads any program accepts). */
int sw_opt_default_threads(void);

#ifdef __cplusplus
}
#endif
#endif
