/*  sw_admin_token.c: the admin token's file and its check (see sw_admin_token.h). */
#include "sw_admin_token.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_common.h"

/* Makes a token and writes it to a new file at path, mode 0600. */
static int s_create(const char *path, char *token, size_t cap, char *err, size_t errlen)
{
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t) sizeof raw)
        return sw_err(err, errlen, "--admin-token-file: no randomness from the kernel: %s", strerror(errno));
    if (cap < 2 * sizeof raw + 1)
        return sw_err(err, errlen, "--admin-token-file: no room for the token");
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    sodium_memzero(raw, sizeof raw);
    const int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sw_err(err, errlen, "--admin-token-file %s: cannot create it: %s", path, strerror(errno));
    char line[2 * 32 + 2];
    const int n = snprintf(line, sizeof line, "%s\n", token);
    const bool ok = fchmod(fd, 0600) == 0 && write(fd, line, (size_t) n) == n && fsync(fd) == 0;
    sodium_memzero(line, sizeof line);
    if (close(fd) != 0 || !ok) {
        unlink(path);
        return sw_err(err, errlen, "--admin-token-file %s: cannot write it", path);
    }
    return 0;
}

int sw_admin_token_load(const char *path, char *token, size_t cap, bool *created, char *err, size_t errlen)
{
    *created = false;
    if (sodium_init() < 0)
        return sw_err(err, errlen, "libsodium cannot start");
    if (!path || !path[0] || cap < SW_ADMIN_TOKEN_MAX + 1)
        return sw_err(err, errlen, "--admin-token-file: no path");
    const int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (s_create(path, token, cap, err, errlen) != 0)
            return -1;
        *created = true;
        return 0;
    }
    if (fd < 0)
        return sw_err(err, errlen, "--admin-token-file %s: %s%s", path, strerror(errno),
                      errno == ELOOP ? " (a symbolic link is refused)" : "");
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sw_err(err, errlen, "--admin-token-file %s: not a regular file", path);
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077)) {
        close(fd);
        return sw_err(err, errlen,
                      "--admin-token-file %s: %s (mode %03o); it must be ours and private: chmod 600 %s", path,
                      st.st_uid != geteuid() ? "owned by another user" : "group or others may read or write it",
                      (unsigned) (st.st_mode & 0777), path);
    }
    char buf[SW_ADMIN_TOKEN_MAX + 64];
    const ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return sw_err(err, errlen, "--admin-token-file %s: %s", path, strerror(errno));
    size_t len = (size_t) n;
    buf[len] = 0;
    char *nl = memchr(buf, '\n', len);
    if (nl)
        len = (size_t) (nl - buf);
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    bool printable = true;
    for (size_t i = 0; i < len; i++)
        printable &= buf[i] > ' ' && buf[i] < 0x7f;
    if (len < SW_ADMIN_TOKEN_MIN || len > SW_ADMIN_TOKEN_MAX || !printable) {
        sodium_memzero(buf, sizeof buf);
        return sw_err(err, errlen,
                      "--admin-token-file %s: the first line must hold %d to %d printable characters, no spaces",
                      path, SW_ADMIN_TOKEN_MIN, SW_ADMIN_TOKEN_MAX);
    }
    memcpy(token, buf, len);
    token[len] = 0;
    sodium_memzero(buf, sizeof buf);
    return 0;
}

bool sw_admin_token_check(const char *token, const char *authorization)
{
    if (!token || !token[0] || !authorization || strncasecmp(authorization, "Bearer ", 7))
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    /* equal-length digests compared in constant time: neither the length nor a common prefix shows in timing */
    unsigned char a[32], b[32];
    crypto_generichash(a, sizeof a, (const unsigned char *) token, strlen(token), NULL, 0);
    crypto_generichash(b, sizeof b, (const unsigned char *) given, strlen(given), NULL, 0);
    const bool ok = sodium_memcmp(a, b, sizeof a) == 0;
    sodium_memzero(a, sizeof a);
    sodium_memzero(b, sizeof b);
    return ok;
}
