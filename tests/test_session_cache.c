/*  test_session_cache.c: the stage's per-session KV caches: lookup, memory
 *  cap with LRU eviction of unpinned sessions, idle expiry, release. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_session_cache.h"
#include "sw_test.h"

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void)
{
    char path[1024], err[256];
    sw_test_src_path("models/stories260K.gguf", path, sizeof path);
    sw_model_parts_t parts = {.layer_begin = 1, .layer_end = 3};
    sw_model_t *m = sw_model_load(path, &parts, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return sw_test_report("session_cache");
    sw_kv_t *probe = sw_kv_new(m, 1, 3, 64);
    const size_t one = sw_kv_bytes(probe);
    sw_kv_destroy(&probe);
    /* room for exactly three sessions */
    sw_session_cache_t *c = sw_session_cache_new(m, 1, 3, 64, one * 3, 100);
    /* sessions in use are never evicted: a full cache refuses a new one */
    CHECK(sw_session_cache_create(c, "u1") && sw_session_cache_create(c, "u2") && sw_session_cache_create(c, "u3"));
    CHECK(sw_session_cache_create(c, "u4") == NULL && sw_session_cache_count(c) == 3 &&
          sw_session_cache_evictions(c) == 0 && sw_session_cache_find(c, "u1") != NULL);
    sw_session_cache_release(c, "u1");
    sw_session_cache_release(c, "u2");
    sw_session_cache_release(c, "u3");
    /* idle sessions are: below, plain LRU over idle ones (eviction idle time 1 ms) */
    sw_session_cache_set_evict_idle(c, 1);
    sw_session_t *a = sw_session_cache_create(c, "a");
    s_sleep_ms(2);
    sw_session_t *b = sw_session_cache_create(c, "b");
    s_sleep_ms(2);
    sw_session_t *cc = sw_session_cache_create(c, "c");
    CHECK(a && b && cc && sw_session_cache_count(c) == 3 && sw_session_cache_bytes(c) == 3 * one);
    CHECK(sw_session_cache_find(c, "b") == b);
    CHECK(sw_session_cache_find(c, "zz") == NULL);
    s_sleep_ms(2);
    sw_session_cache_find(c, "a"); /* use order now: c (oldest), b (found above), a */
    sw_session_t *d = sw_session_cache_create(c, "d"); /* evicts c, the least recently used */
    CHECK(d != NULL && sw_session_cache_count(c) == 3 && sw_session_cache_evictions(c) == 1);
    CHECK(sw_session_cache_find(c, "c") == NULL && sw_session_cache_find(c, "a") != NULL &&
          sw_session_cache_find(c, "b") != NULL);
    /* pinned sessions are never evicted: with all pinned, creation fails */
    for (const char *id = "a"; id; id = !strcmp(id, "a") ? "b" : !strcmp(id, "b") ? "d" : NULL)
        sw_session_cache_find(c, id)->pinned = true;
    CHECK(sw_session_cache_create(c, "e") == NULL);
    sw_session_cache_unpin_all(c);
    s_sleep_ms(2);
    CHECK(sw_session_cache_create(c, "e") != NULL && sw_session_cache_count(c) == 3);
    /* release and idle expiry */
    /* "e" took the place of "a", the least recently found of a, b, d */
    CHECK(sw_session_cache_find(c, "a") == NULL);
    sw_session_cache_release(c, "e");
    CHECK(sw_session_cache_count(c) == 2 && sw_session_cache_bytes(c) == 2 * one);
    s_sleep_ms(30);
    sw_session_cache_find(c, "d");
    CHECK(sw_session_cache_expire(c, 20) == 1 && sw_session_cache_count(c) == 1);
    CHECK(sw_session_cache_find(c, "d") != NULL && sw_session_cache_find(c, "b") == NULL);
    /* max_sessions cap */
    sw_session_cache_t *c2 = sw_session_cache_new(m, 1, 3, 64, one * 100, 2);
    CHECK(sw_session_cache_create(c2, "x") && sw_session_cache_create(c2, "y"));
    CHECK(sw_session_cache_create(c2, "z") == NULL && sw_session_cache_count(c2) == 2); /* both in use */
    sw_session_cache_set_evict_idle(c2, 0);
    CHECK(sw_session_cache_create(c2, "z") && sw_session_cache_count(c2) == 2 && !sw_session_cache_find(c2, "x"));
    sw_session_cache_destroy(&c2);
    sw_session_cache_destroy(&c);
    CHECK(c == NULL);
    sw_model_destroy(&m);
    return sw_test_report("session_cache");
}
