/*  test_opt.c: option value parsers selftest (core/sw_opt.h).
 *
 *  Each parser takes the whole text or nothing: in-range values are written;
 *  out-of-range values, trailing garbage, empty or NULL text, signs where
 *  none is allowed and overflow return -1 and leave *out as it was. Sizes
 *  read MiB by default and K, M, G suffixes. The error messages go to stderr
 *  (seen in the test log, not checked).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_opt.h"
#include "sw_test.h"

int main(void)
{
    int64_t i = 7;
    CHECK(sw_opt_i64("--n", "42", 0, 100, &i) == 0 && i == 42);
    CHECK(sw_opt_i64("--n", "-5", -10, 10, &i) == 0 && i == -5);
    CHECK(sw_opt_i64("--n", "101", 0, 100, &i) == -1 && i == -5);
    CHECK(sw_opt_i64("--n", "-1", 0, 100, &i) == -1);
    CHECK(sw_opt_i64("--n", "12x", 0, 100, &i) == -1);
    CHECK(sw_opt_i64("--n", "", 0, 100, &i) == -1);
    CHECK(sw_opt_i64("--n", NULL, 0, 100, &i) == -1);
    CHECK(sw_opt_i64("--n", "99999999999999999999", INT64_MIN, INT64_MAX, &i) == -1);
    CHECK(i == -5);

    int n = 3;
    CHECK(sw_opt_int("--threads", "256", 1, 256, &n) == 0 && n == 256);
    CHECK(sw_opt_int("--threads", "257", 1, 256, &n) == -1 && n == 256);
    CHECK(sw_opt_int("--threads", "0", 1, 256, &n) == -1 && n == 256);

    uint64_t u = 1;
    CHECK(sw_opt_u64("--seed", "18446744073709551615", &u) == 0 && u == UINT64_MAX);
    CHECK(sw_opt_u64("--seed", "-1", &u) == -1 && u == UINT64_MAX);
    CHECK(sw_opt_u64("--seed", "18446744073709551616", &u) == -1);
    CHECK(sw_opt_u64("--seed", "1 ", &u) == -1);

    int32_t *ids = NULL;
    int64_t n_ids = 0;
    CHECK(sw_opt_i32_list("--tokens", "1,403,0", 0, 511, 8, &ids, &n_ids) == 0 && n_ids == 3);
    CHECK(ids && ids[0] == 1 && ids[1] == 403 && ids[2] == 0);
    free(ids);
    ids = NULL;
    CHECK(sw_opt_i32_list("--tokens", "7", 0, 511, 1, &ids, &n_ids) == 0 && n_ids == 1 && ids[0] == 7);
    free(ids);
    ids = NULL;
    const char *bad_lists[] = {"", "1,", ",1", "1,,2", "1 ,2", "512", "-1", "1,2x", "+1", "1,2,3"};
    for (size_t k = 0; k < sizeof bad_lists / sizeof bad_lists[0]; k++)
        CHECK(sw_opt_i32_list("--tokens", bad_lists[k], 0, 511, 2, &ids, &n_ids) == -1 && ids == NULL);
    CHECK(sw_opt_i32_list("--tokens", NULL, 0, 511, 2, &ids, &n_ids) == -1 && ids == NULL);

    float f = 0.25f;
    CHECK(sw_opt_f32("--temp", "0.5", 0, 2, &f) == 0 && f == 0.5f);
    CHECK(sw_opt_f32("--temp", "1e-1", 0, 2, &f) == 0 && f > 0.0999f && f < 0.1001f);
    CHECK(sw_opt_f32("--temp", "nan", 0, 2, &f) == -1);
    CHECK(sw_opt_f32("--temp", "inf", 0, 1e30f, &f) == -1);
    CHECK(sw_opt_f32("--temp", "2.5", 0, 2, &f) == -1);
    CHECK(sw_opt_f32("--temp", "0.5.", 0, 2, &f) == -1);

    size_t s = 1;
    CHECK(sw_opt_size("--mem", "512", &s) == 0 && s == 512ull << 20);
    CHECK(sw_opt_size("--mem", "400K", &s) == 0 && s == 400ull << 10);
    CHECK(sw_opt_size("--mem", "400k", &s) == 0 && s == 400ull << 10);
    CHECK(sw_opt_size("--mem", "2G", &s) == 0 && s == 2ull << 30);
    CHECK(sw_opt_size("--mem", "3m", &s) == 0 && s == 3ull << 20);
    CHECK(sw_opt_size("--mem", "1024G", &s) == 0 && s == 1ull << 40);
    CHECK(sw_opt_size("--mem", "1025G", &s) == -1 && s == 1ull << 40);
    CHECK(sw_opt_size("--mem", "0", &s) == -1);
    CHECK(sw_opt_size("--mem", "-2G", &s) == -1);
    CHECK(sw_opt_size("--mem", "G", &s) == -1);
    CHECK(sw_opt_size("--mem", "2T", &s) == -1);
    CHECK(sw_opt_size("--mem", "2GB", &s) == -1);
    CHECK(sw_opt_size("--mem", "", &s) == -1);
    CHECK(sw_opt_size("--mem", NULL, &s) == -1);
    CHECK(sw_opt_size("--mem", "99999999999999999999999", &s) == -1);
    CHECK(s == 1ull << 40);

    const int t = sw_opt_default_threads();
    CHECK(t >= 1 && t <= 256);
    return sw_test_report("opt");
}
