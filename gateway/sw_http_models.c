/*  sw_http_models.c: the published model over HTTP with byte ranges (sw_http_models.h). */
#include "sw_http_models.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_common.h"

struct sw_http_models_t {
    char *manifest;             /* the manifest file's bytes */
    size_t manifest_len;        /* bytes */
    char gguf_path[PATH_MAX];   /* the GGUF beside it */
    char gguf_url[300];         /* "/models/FILE_NAME" */
    uint64_t size;              /* bytes of the GGUF */
};

sw_http_models_t *sw_http_models_new(const char *manifest_path, char *err, size_t errlen)
{
    sw_http_models_t *s = calloc(1, sizeof *s);
    FILE *f = fopen(manifest_path, "rb");
    json_t *j = NULL;
    if (!s || !f) {
        sw_err(err, errlen, "--serve-model %s: %s", manifest_path, f ? "out of memory" : strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || (uint64_t) st.st_size > SW_HTTP_MODELS_MAX_MANIFEST) {
        sw_err(err, errlen, "--serve-model %s: empty, unreadable or larger than %u bytes", manifest_path,
               SW_HTTP_MODELS_MAX_MANIFEST);
        goto fail;
    }
    s->manifest_len = (size_t) st.st_size;
    if (!(s->manifest = malloc(s->manifest_len)) || fread(s->manifest, 1, s->manifest_len, f) != s->manifest_len) {
        sw_err(err, errlen, "--serve-model %s: read error", manifest_path);
        goto fail;
    }
    json_error_t je;
    j = json_loadb(s->manifest, s->manifest_len, 0, &je);
    const char *name = json_string_value(json_object_get(j, "file_name"));
    json_t *fs = json_object_get(j, "file_size");
    if (!name || !name[0] || strchr(name, '/') || name[0] == '.' || strlen(name) > 255 || !json_is_integer(fs) ||
        json_integer_value(fs) < 0) {
        sw_err(err, errlen, "--serve-model %s: not a manifest (want \"file_name\" without '/' and \"file_size\")",
               manifest_path);
        goto fail;
    }
    for (const char *p = name; *p; p++)
        if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f || *p == '?' || *p == '%') {
            sw_err(err, errlen, "--serve-model %s: file_name must be printable ASCII without spaces, ? or %%",
                   manifest_path);
            goto fail;
        }
    const char *slash = strrchr(manifest_path, '/');
    int dirlen = slash ? (int) (slash - manifest_path) : 1;
    if ((size_t) snprintf(s->gguf_path, sizeof s->gguf_path, "%.*s/%s", dirlen, slash ? manifest_path : ".",
                          name) >= sizeof s->gguf_path) {
        sw_err(err, errlen, "--serve-model: path too long");
        goto fail;
    }
    snprintf(s->gguf_url, sizeof s->gguf_url, "/models/%s", name);
    s->size = (uint64_t) json_integer_value(fs);
    if (stat(s->gguf_path, &st) != 0 || (uint64_t) st.st_size != s->size) {
        sw_err(err, errlen, "--serve-model: %s: %s", s->gguf_path,
               errno && stat(s->gguf_path, &st) != 0 ? strerror(errno) : "size differs from the manifest's file_size");
        goto fail;
    }
    json_decref(j);
    fclose(f);
    return s;
fail:
    json_decref(j);
    if (f)
        fclose(f);
    sw_http_models_destroy(&s);
    return NULL;
}

void sw_http_models_destroy(sw_http_models_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->manifest);
    free(*self_p);
    *self_p = NULL;
}

/* A decimal uint64 of 1..19 digits at *p; advances *p. */
static int s_num(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    int n = 0;
    while (*s >= '0' && *s <= '9' && n < 19) {
        v = v * 10 + (uint64_t) (*s - '0');
        s++, n++;
    }
    if (n == 0 || (*s >= '0' && *s <= '9'))
        return -1;
    *p = s, *out = v;
    return 0;
}

int sw_http_range_parse(const char *value, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (strncmp(value, "bytes=", 6))
        return 1;
    if (strchr(value, ','))
        return 1;
    const char *p = value + 6;
    while (*p == ' ')
        p++;
    uint64_t a = 0, b = 0;
    if (*p == '-') { /* the last n bytes */
        p++;
        if (s_num(&p, &b) || *p || b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 0;
    }
    if (s_num(&p, &a) || *p != '-')
        return -1;
    p++;
    bool open_end = !*p;
    if (!open_end && (s_num(&p, &b) || *p || b < a))
        return -1;
    if (a >= size)
        return -1;
    *first = a;
    *last = open_end || b >= size ? size - 1 : b;
    return 0;
}

struct MHD_Response *sw_http_models_response(const sw_http_models_t *self, const char *url, const char *range,
                                             unsigned *status)
{
    struct MHD_Response *r = NULL;
    if (!strcmp(url, "/models/manifest.json")) {
        r = MHD_create_response_from_buffer(self->manifest_len, self->manifest, MHD_RESPMEM_PERSISTENT);
        if (!r) {
            *status = 500;
            return NULL;
        }
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        *status = 200;
        return r;
    }
    if (strcmp(url, self->gguf_url)) {
        *status = 404;
        return NULL;
    }
    uint64_t first = 0, last = self->size ? self->size - 1 : 0;
    int kind = range ? sw_http_range_parse(range, self->size, &first, &last) : 1;
    char cr[96];
    if (kind < 0) {
        r = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        if (!r) {
            *status = 500;
            return NULL;
        }
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, self->size);
        MHD_add_response_header(r, "Content-Range", cr);
        *status = 416;
        return r;
    }
    if (kind == 1)
        first = 0, last = self->size ? self->size - 1 : 0;
    int fd = open(self->gguf_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *status = 500;
        return NULL;
    }
    uint64_t n = self->size ? last - first + 1 : 0;
    r = MHD_create_response_from_fd_at_offset64(n, fd, first); /* closes fd when destroyed */
    if (!r) {
        close(fd);
        *status = 500;
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    if (kind == 0) {
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, self->size);
        MHD_add_response_header(r, "Content-Range", cr);
        *status = 206;
    } else {
        *status = 200;
    }
    return r;
}
