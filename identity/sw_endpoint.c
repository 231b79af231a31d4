/*  sw_endpoint.c: "tcp://HOST:PORT#KEY" endpoints and bootstrap files
 *  (syntax in sw_endpoint.h). Errors never echo the input's bytes: it may be
 *  hostile (terminal escapes); they say where and why. */
#include "sw_endpoint.h"
#include "sw_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "sw_identity.h"

static bool s_in(char c, const char *set) { return c != '\0' && strchr(set, c) != NULL; }

#define S_ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

int sw_endpoint_parse(const char *text, bool require_key, sw_endpoint_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!text) {
        sw_err(err, errlen, "no endpoint given");
        return -1;
    }
    size_t len = strnlen(text, SW_ENDPOINT_MAX_TEXT + 1);
    if (len > SW_ENDPOINT_MAX_TEXT) {
        sw_err(err, errlen, "endpoint longer than %d bytes", SW_ENDPOINT_MAX_TEXT);
        return -1;
    }
    if (strncmp(text, "tcp://", 6) != 0) {
        sw_err(err, errlen, "endpoint must start with tcp:// (tcp://HOST:PORT#KEY)");
        return -1;
    }
    const char *p = text + 6;
    /* HOST */
    const char *host = p;
    if (*p == '[') {
        p++;
        while (s_in(*p, "0123456789abcdefABCDEF:.%"))
            p++;
        if (*p != ']' || p == host + 1) {
            sw_err(err, errlen, "endpoint: bad IPv6 address (expected [hex:digits] before the port)");
            return -1;
        }
        p++;
    } else {
        while (s_in(*p, S_ALNUM ".-_"))
            p++;
        if (p == host) {
            sw_err(err, errlen, "endpoint: no host after tcp:// (a name, an IPv4 address or [IPv6])");
            return -1;
        }
    }
    size_t host_len = (size_t) (p - host);
    if (host_len > SW_ENDPOINT_MAX_HOST) {
        sw_err(err, errlen, "endpoint: host longer than %d characters", SW_ENDPOINT_MAX_HOST);
        return -1;
    }
    if (*p != ':') {
        sw_err(err, errlen, "endpoint: expected ':PORT' after the host (at byte %zu)", (size_t) (p - text));
        return -1;
    }
    p++;
    /* PORT */
    const char *port_s = p;
    unsigned long port = 0;
    while (*p >= '0' && *p <= '9' && p - port_s < 6) {
        port = port * 10 + (unsigned long) (*p - '0');
        p++;
    }
    if (p == port_s || (*port_s == '0') || p - port_s > 5 || port < 1 || port > 65535) {
        sw_err(err, errlen, "endpoint: the port must be a decimal number in 1..65535");
        return -1;
    }
    size_t addr_len = (size_t) (p - text);
    /* #KEY */
    if (*p == '\0') {
        if (require_key) {
            sw_err(err, errlen, "endpoint has no server key: write it as tcp://HOST:PORT#KEY with the broker's "
                               "40-character Z85 public key (swisd keygen --show)");
            return -1;
        }
    } else if (*p == '#') {
        p++;
        uint8_t key[32];
        if (sw_identity_z85_decode(p, key) != 0) {
            sw_err(err, errlen, "endpoint: the server key after '#' is not a 40-character Z85 public key");
            return -1;
        }
        out->has_key = true;
        memcpy(out->server_key, key, sizeof key);
        memcpy(out->server_txt, p, 40);
        out->server_txt[40] = '\0';
    } else {
        sw_err(err, errlen, "endpoint: unexpected character after the port (at byte %zu; expected '#KEY' or the end)",
              addr_len);
        memset(out, 0, sizeof *out);
        return -1;
    }
    memcpy(out->addr, text, addr_len);
    out->addr[addr_len] = '\0';
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t) port;
    return 0;
}

int sw_endpoint_parse_bootstrap(const char *name, const char *text, size_t len, bool require_key,
                                sw_endpoint_t *out, size_t max, char *err, size_t errlen)
{
    if (!name)
        name = "bootstrap";
    if (max > SW_ENDPOINT_MAX_ENTRIES)
        max = SW_ENDPOINT_MAX_ENTRIES;
    if (len > SW_ENDPOINT_MAX_FILE) {
        sw_err(err, errlen, "%s: larger than %d bytes", name, SW_ENDPOINT_MAX_FILE);
        return -1;
    }
    if (text == NULL && len > 0) {
        sw_err(err, errlen, "%s: no text", name);
        return -1;
    }
    if (len > 0 && memchr(text, '\0', len)) {
        sw_err(err, errlen, "%s: contains a NUL byte: not a text file", name);
        return -1;
    }
    int n = 0;
    size_t line_no = 0;
    size_t i = 0;
    while (i < len) {
        line_no++;
        const char *line = text + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t ll = nl ? (size_t) (nl - line) : len - i;
        i += ll + (nl ? 1 : 0);
        if (ll > SW_ENDPOINT_MAX_LINE) {
            sw_err(err, errlen, "%s:%zu: line longer than %d bytes", name, line_no, SW_ENDPOINT_MAX_LINE);
            return -1;
        }
        size_t a = 0, b = ll;
        while (a < b && (line[a] == ' ' || line[a] == '\t'))
            a++;
        while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t' || line[b - 1] == '\r'))
            b--;
        if (a == b || line[a] == '#')
            continue;
        if ((size_t) n >= max) {
            sw_err(err, errlen, "%s:%zu: more than %zu endpoints", name, line_no, max);
            return -1;
        }
        char buf[SW_ENDPOINT_MAX_LINE + 1];
        memcpy(buf, line + a, b - a);
        buf[b - a] = '\0';
        char why[256];
        if (sw_endpoint_parse(buf, require_key, &out[n], why, sizeof why) != 0) {
            sw_err(err, errlen, "%s:%zu: %s", name, line_no, why);
            return -1;
        }
        n++;
    }
    if (n == 0) {
        sw_err(err, errlen, "%s: no endpoint (one tcp://HOST:PORT#KEY per line)", name);
        return -1;
    }
    return n;
}

int sw_endpoint_read_bootstrap(const char *path, bool require_key, sw_endpoint_t *out, size_t max,
                               char *err, size_t errlen)
{
    if (!path) {
        sw_err(err, errlen, "no bootstrap file given");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        sw_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        sw_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size > SW_ENDPOINT_MAX_FILE) {
        sw_err(err, errlen, "%s: larger than %d bytes", path, SW_ENDPOINT_MAX_FILE);
        close(fd);
        return -1;
    }
    size_t n = (size_t) st.st_size, got = 0;
    char *text = malloc(n + 1);
    if (!text) {
        sw_err(err, errlen, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    while (got < n) {
        ssize_t r = read(fd, text + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t) r;
    }
    close(fd);
    int rc = sw_endpoint_parse_bootstrap(path, text, got, require_key, out, max, err, errlen);
    free(text);
    return rc;
}

int sw_endpoint_format(const sw_endpoint_t *ep, char *out, size_t len)
{
    int n = ep->has_key ? snprintf(out, len, "%s#%s", ep->addr, ep->server_txt)
                        : snprintf(out, len, "%s", ep->addr);
    return (n < 0 || (size_t) n >= len) ? -1 : 0;
}

int sw_endpoint_connect(void *sock, const char *text, const sw_identity_t *identity, char *err, size_t errlen)
{
    sw_endpoint_t ep;
    if (sw_endpoint_parse(text, false, &ep, err, errlen) != 0)
        return -1;
    zsock_t *s = sock;
    if (ep.has_key) {
        if (identity) {
            zcert_apply(sw_identity_cert(identity), s);
        } else {
            zcert_t *anon = zcert_new();
            if (!anon) {
                snprintf(err, errlen, "cannot make a key");
                return -1;
            }
            zcert_apply(anon, s);
            zcert_destroy(&anon);
        }
        zsock_set_curve_serverkey_bin(s, ep.server_key);
    }
    if (zsock_connect(s, "%s", ep.addr) != 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", ep.addr, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}
