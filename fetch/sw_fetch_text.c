/*  sw_fetch_text.c: a small document from a URL or a file (see sw_fetch_text.h). */
#include "sw_fetch_text.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"

typedef struct {
    char *buf;     /* received bytes, NUL-terminated */
    size_t len;    /* bytes held */
    size_t max;    /* the caller's cap */
    bool over;     /* the cap was passed */
} s_body_t;

static size_t s_append(char *data, size_t size, size_t nmemb, void *arg)
{
    s_body_t *b = arg;
    const size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->over = true;
        return 0; /* aborts the transfer */
    }
    char *grown = realloc(b->buf, b->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, data, n);
    b->buf = grown;
    b->len += n;
    b->buf[b->len] = '\0';
    return n;
}

static int s_url(const char *url, int timeout_s, s_body_t *b, char *err, size_t errlen)
{
    static bool s_ready = false;
    if (!s_ready && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return sw_err(err, errlen, "%s: libcurl could not start", url);
    s_ready = true;
    CURL *c = curl_easy_init();
    if (!c)
        return sw_err(err, errlen, "%s: libcurl could not start", url);
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long) (timeout_s > 0 ? timeout_s : 30));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (b->over)
        return sw_err(err, errlen, "%s: longer than %zu bytes", url, b->max);
    if (rc != CURLE_OK)
        return sw_err(err, errlen, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(rc));
    if (status != 200)
        return sw_err(err, errlen, "%s: HTTP status %ld", url, status);
    return 0;
}

static int s_file(const char *path, s_body_t *b, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sw_err(err, errlen, "%s: %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (s_append(chunk, 1, n, b) != n)
            break;
    const bool bad = ferror(f) || (!feof(f) && !b->over);
    fclose(f);
    if (b->over)
        return sw_err(err, errlen, "%s: longer than %zu bytes", path, b->max);
    if (bad)
        return sw_err(err, errlen, "%s: read error", path);
    return 0;
}

char *sw_fetch_text(const char *source, size_t max_bytes, int timeout_s, size_t *len, char *err, size_t errlen)
{
    if (!source || !source[0]) {
        sw_err(err, errlen, "no source given");
        return NULL;
    }
    s_body_t b = {.max = max_bytes};
    const int rc = !strncmp(source, "http://", 7) || !strncmp(source, "https://", 8)
                       ? s_url(source, timeout_s, &b, err, errlen)
                       : s_file(!strncmp(source, "file://", 7) ? source + 7 : source, &b, err, errlen);
    if (rc == 0 && !b.buf && !(b.buf = calloc(1, 1))) /* an empty document */
        sw_err(err, errlen, "%s: out of memory", source);
    if (rc != 0 || !b.buf) {
        free(b.buf);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.buf;
}
