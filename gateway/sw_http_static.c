/*  sw_http_static.c: the dashboard's files (see sw_http_static.h). */
#include "sw_http_static.h"

#include <fcntl.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_common.h"

static const char *s_mime(const char *path)
{
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
        {".png", "image/png"},                 {".ico", "image/x-icon"},
        {".json", "application/json"},         {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"}, {".map", "application/json"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(dot, map[i][0]))
            return map[i][1];
    return "application/octet-stream";
}

int sw_http_static_check(const char *web_dir, char *err, size_t errlen)
{
    struct stat sb;
    char index[SW_HTTP_STATIC_MAX_DIR + 16];
    if (!web_dir || strlen(web_dir) > SW_HTTP_STATIC_MAX_DIR) {
        sw_err(err, errlen, "--web: the path is empty or too long");
        return -1;
    }
    snprintf(index, sizeof index, "%s/index.html", web_dir);
    if (stat(index, &sb) != 0) {
        sw_err(err, errlen, "--web: %s has no index.html (build the dashboard: cd web && npm ci && npm run build)",
               web_dir);
        return -1;
    }
    return 0;
}

/* The page "/" shows when no dashboard is built. */
static struct MHD_Response *s_placeholder(unsigned *status)
{
    static const char page[] =
        "<!doctype html><title>swisd gateway</title><h1>swisd gateway</h1>"
        "<p>The dashboard is not built: run <code>scripts/dev build</code> on a machine with "
        "npm, or start the gateway with <code>--web web/dist</code>.</p>"
        "<p>API: <a href=\"/v1/models\">/v1/models</a>, POST /v1/completions, "
        "POST /v1/chat/completions, <a href=\"/api/swarm\">/api/swarm</a>, "
        "<a href=\"/metrics\">/metrics</a>.</p>";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof page - 1, (void *) page, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        *status = 500;
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    *status = 200;
    return r;
}

struct MHD_Response *sw_http_static_response(const char *web_dir, const char *url, unsigned *status)
{
    *status = 404;
    if (!url)
        return NULL;
    if (!web_dir || !web_dir[0])
        return strcmp(url, "/") ? NULL : s_placeholder(status);
    const size_t n = strlen(url);
    bool ok = n >= 1 && n < 256 && url[0] == '/' && !strstr(url, "..") && !strstr(url, "//") &&
              strlen(web_dir) <= SW_HTTP_STATIC_MAX_DIR;
    for (size_t i = 0; ok && i < n; i++) {
        const char ch = url[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
             ch == '_' || ch == '-' || ch == '/';
    }
    if (!ok)
        return NULL;
    const char *base = strrchr(url, '/');
    const bool route = !strchr(base, '.'); /* "/", "/chat": the app */
    char path[SW_HTTP_STATIC_MAX_DIR + 300];
    snprintf(path, sizeof path, "%s%s", web_dir, route ? "/index.html" : url);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t) sb.st_size, fd); /* closes fd */
    if (!r) {
        close(fd);
        *status = 500;
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", s_mime(path));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    /* Vite names assets by content hash: they never change */
    MHD_add_response_header(r, "Cache-Control",
                            !strncmp(url, "/assets/", 8) ? "public, max-age=31536000, immutable" : "no-cache");
    *status = 200;
    return r;
}
