/*  sw_identity.c: a node's long-term keypair in czmq zcert files, and its
 *  node id (see sw_identity.h for the formats and rules). */
#include "sw_identity.h"
#include "sw_common.h"
#include "sw_identity_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct _sw_identity_t {
    zcert_t *cert;                                 /* czmq certificate (both keys) */
    uint8_t public_key[SW_IDENTITY_KEY_BYTES];     /* raw public key */
    uint8_t secret_key[SW_IDENTITY_KEY_BYTES];     /* raw secret key (wiped on destroy) */
    char public_txt[SW_IDENTITY_Z85_LEN + 1];      /* public key, Z85 */
    char id[SW_IDENTITY_ID_LEN + 1];               /* node id: 16 lowercase hex */
    char path[SW_IDENTITY_MAX_PATH];               /* public certificate file */
};

static const char s_z85_alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

int sw_identity_z85_decode(const char *txt, uint8_t key[SW_IDENTITY_KEY_BYTES])
{
    if (!txt || strnlen(txt, SW_IDENTITY_Z85_LEN + 1) != SW_IDENTITY_Z85_LEN)
        return -1;
    for (size_t i = 0; i < SW_IDENTITY_Z85_LEN; i++)
        if (!strchr(s_z85_alphabet, txt[i]))   /* txt[i] != 0 here: length checked */
            return -1;
    /* libzmq also rejects 5-character groups whose value exceeds 2^32 - 1 */
    if (!zmq_z85_decode(key, txt))
        return -1;
    return 0;
}

void sw_identity_fingerprint(const uint8_t public_key[SW_IDENTITY_KEY_BYTES], char out[SW_IDENTITY_ID_LEN + 1])
{
    uint8_t h[32]; /* BLAKE2b-256 of the raw public key */
    crypto_generichash(h, sizeof h, public_key, SW_IDENTITY_KEY_BYTES, NULL, 0);
    sodium_bin2hex(out, SW_IDENTITY_ID_LEN + 1, h, SW_IDENTITY_ID_LEN / 2);
}

bool sw_identity_id_matches(const char *id, const uint8_t public_key[SW_IDENTITY_KEY_BYTES])
{
    if (!id || !public_key || strnlen(id, SW_IDENTITY_ID_LEN + 1) != SW_IDENTITY_ID_LEN)
        return false;
    char want[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(public_key, want);
    return sodium_memcmp(id, want, SW_IDENTITY_ID_LEN) == 0;
}

/*  Reads a whole certificate file into a NUL-terminated heap string (caller
 *  frees). secret: the file must be private to its owner. Returns NULL with
 *  err set. One open + fstat, so the checks are about the file read. */
static char *s_read_cert_file(const char *path, bool secret, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            sw_err(err, errlen, "%s: no such file (make a key with `swisd keygen --out PATH`)", path);
        else
            sw_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sw_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        sw_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (secret && (st.st_mode & 077)) {
        sw_err(err, errlen, "%s: permissions %04o are too open: a secret key must be accessible only by its "
                           "owner (chmod 600 %s)", path, (unsigned) (st.st_mode & 07777), path);
        close(fd);
        return NULL;
    }
    if (secret && st.st_uid != geteuid()) {
        sw_err(err, errlen, "%s: owned by uid %u, not by this user (uid %u)", path, (unsigned) st.st_uid,
              (unsigned) geteuid());
        close(fd);
        return NULL;
    }
    if (st.st_size <= 0 || st.st_size > SW_IDENTITY_MAX_FILE) {
        sw_err(err, errlen, "%s: %lld bytes: not a key certificate (expected 1..%d bytes)", path,
              (long long) st.st_size, SW_IDENTITY_MAX_FILE);
        close(fd);
        return NULL;
    }
    size_t n = (size_t) st.st_size;
    char *text = malloc(n + 1);
    if (!text) {
        sw_err(err, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, text + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            sw_err(err, errlen, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "file shrank");
            sodium_memzero(text, n + 1);
            free(text);
            close(fd);
            return NULL;
        }
        got += (size_t) r;
    }
    close(fd);
    text[n] = '\0';
    if (strlen(text) != n) {
        sw_err(err, errlen, "%s: contains a NUL byte: not a key certificate", path);
        sodium_memzero(text, n + 1);
        free(text);
        return NULL;
    }
    return text;
}

/*  Checks that text is in the ZPL subset zcert writes, before zconfig sees it:
 *  zconfig logs an invalid line verbatim on stderr, which for a damaged secret
 *  file could print key material (or terminal escapes from a hostile file).
 *  Accepted lines (at most 512 bytes, LF-terminated, printable ASCII):
 *    blank; 4*k spaces then a '#' comment; 4*level spaces then a name of
 *    [A-Za-z0-9_-] optionally followed by ' = "value"' (no '"' inside), where
 *    level is at most one deeper than the previous name's. Returns 0, or -1
 *    with err set to the line number only (never the line). */
int sw__identity_check_zpl(const char *path, const char *text, char *err, size_t errlen)
{
    int last_level = -1;
    size_t line_no = 0;
    const char *p = text;
    while (*p) {
        line_no++;
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t) (e - p) : strlen(p);
        const char *why = NULL;
        if (len > 512)
            why = "line too long";
        for (size_t i = 0; !why && i < len; i++)
            if (p[i] < 0x20 || p[i] > 0x7e)
                why = "a control or non-ASCII byte";
        size_t i = 0;
        while (!why && i < len && p[i] == ' ')
            i++;
        if (why || i == len)
            ;
        else if (i % 4 != 0)
            why = "bad indentation"; /* zconfig counts it on comment lines too */
        else if (p[i] == '#')
            ;
        else if ((int) (i / 4) > last_level + 1)
            why = "bad indentation";
        else {
            last_level = (int) (i / 4);
            size_t n0 = i;
            while (i < len && (isalnum((unsigned char) p[i]) || p[i] == '_' || p[i] == '-'))
                i++;
            if (i == n0)
                why = "expected a name";
            while (!why && i < len && p[i] == ' ')
                i++;
            if (!why && i < len) {
                if (p[i] != '=')
                    why = "expected '='";
                else {
                    i++;
                    while (i < len && p[i] == ' ')
                        i++;
                    if (i >= len || p[i] != '"')
                        why = "expected a quoted value";
                    else {
                        const char *q = memchr(p + i + 1, '"', len - i - 1);
                        if (!q)
                            why = "unterminated value";
                        else
                            for (i = (size_t) (q - p) + 1; !why && i < len; i++)
                                if (p[i] != ' ')
                                    why = "text after the value";
                    }
                }
            }
        }
        if (why) {
            sw_err(err, errlen, "%s:%zu: malformed: %s (not a key certificate)", path, line_no, why);
            return -1;
        }
        p += len + (e ? 1 : 0);
    }
    return 0;
}

int sw__identity_parse_text(const char *path, const char *text, bool secret, uint8_t public_out[SW_IDENTITY_KEY_BYTES],
                            uint8_t secret_out[SW_IDENTITY_KEY_BYTES], char *err, size_t errlen)
{
    if (sw__identity_check_zpl(path, text, err, errlen) != 0)
        return -1;
    zconfig_t *root = zconfig_str_load(text);
    if (!root) {
        sw_err(err, errlen, "%s: malformed: not a ZPL certificate", path);
        return -1;
    }
    int rc = -1;
    char *pub_txt = zconfig_get(root, "curve/public-key", NULL);
    char *sec_txt = zconfig_get(root, "curve/secret-key", NULL);
    if (!pub_txt)
        sw_err(err, errlen, "%s: malformed: no curve/public-key", path);
    else if (sw_identity_z85_decode(pub_txt, public_out) != 0)
        sw_err(err, errlen, "%s: malformed: curve/public-key is not 40 Z85 characters", path);
    else if (!secret && sec_txt)
        sw_err(err, errlen, "%s: a public certificate holds a secret key: the secret key has leaked; "
                           "make a new key", path);
    else if (secret && !sec_txt)
        sw_err(err, errlen, "%s: malformed: no curve/secret-key", path);
    else if (secret && sw_identity_z85_decode(sec_txt, secret_out) != 0)
        sw_err(err, errlen, "%s: malformed: curve/secret-key is not 40 Z85 characters", path);
    else
        rc = 0;
    if (sec_txt)
        sodium_memzero(sec_txt, strlen(sec_txt));
    zconfig_destroy(&root);
    return rc;
}

/*  Parses one certificate file (sw__identity_parse_text on its text, which
 *  is wiped before it is freed). Returns 0 or -1 with err set. */
static int s_parse_cert(const char *path, bool secret, uint8_t public_out[SW_IDENTITY_KEY_BYTES],
                        uint8_t secret_out[SW_IDENTITY_KEY_BYTES], char *err, size_t errlen)
{
    char *text = s_read_cert_file(path, secret, err, errlen);
    if (!text)
        return -1;
    int rc = sw__identity_parse_text(path, text, secret, public_out, secret_out, err, errlen);
    sodium_memzero(text, strlen(text));
    free(text);
    return rc;
}

/*  Builds the identity from checked keys. Returns NULL with err set. */
static sw_identity_t *s_new(const char *path, const uint8_t pub[SW_IDENTITY_KEY_BYTES],
                            const uint8_t sec[SW_IDENTITY_KEY_BYTES], char *err, size_t errlen)
{
    sw_identity_t *self = calloc(1, sizeof *self);
    if (!self) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    self->cert = zcert_new_from(pub, sec);
    if (!self->cert) {
        sw_err(err, errlen, "zcert_new_from failed");
        free(self);
        return NULL;
    }
    memcpy(self->public_key, pub, SW_IDENTITY_KEY_BYTES);
    memcpy(self->secret_key, sec, SW_IDENTITY_KEY_BYTES);
    snprintf(self->public_txt, sizeof self->public_txt, "%s", zcert_public_txt(self->cert));
    sw_identity_fingerprint(pub, self->id);
    snprintf(self->path, sizeof self->path, "%s", path);
    return self;
}

/*  True when path names a secret certificate (ends with "_secret"). */
static bool s_is_secret_name(const char *path)
{
    size_t n = strlen(path);
    return n >= 7 && strcmp(path + n - 7, "_secret") == 0;
}

static int s_check_path(const char *path, char *secret_path, char *err, size_t errlen)
{
    if (!path || !*path) {
        sw_err(err, errlen, "no key file given");
        return -1;
    }
    if (s_is_secret_name(path)) {
        sw_err(err, errlen, "%s: give the public file's path (without _secret); the secret file is found "
                           "next to it", path);
        return -1;
    }
    if (strlen(path) + sizeof "_secret" > SW_IDENTITY_MAX_PATH) {
        sw_err(err, errlen, "key file path too long (max %d bytes)", SW_IDENTITY_MAX_PATH - 8);
        return -1;
    }
    snprintf(secret_path, SW_IDENTITY_MAX_PATH, "%s_secret", path);
    return 0;
}

int sw_identity_read_public(const char *path, uint8_t public_key[SW_IDENTITY_KEY_BYTES], char *err, size_t errlen)
{
    if (!path || !*path) {
        sw_err(err, errlen, "no key file given");
        return -1;
    }
    if (s_is_secret_name(path)) {
        sw_err(err, errlen, "%s: give the public file's path (without _secret)", path);
        return -1;
    }
    return s_parse_cert(path, false, public_key, NULL, err, errlen);
}

sw_identity_t *sw_identity_load(const char *path, char *err, size_t errlen)
{
    char secret_path[SW_IDENTITY_MAX_PATH];
    if (s_check_path(path, secret_path, err, errlen) != 0)
        return NULL;
    if (sodium_init() < 0) {
        sw_err(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    uint8_t pub[SW_IDENTITY_KEY_BYTES], sec_pub[SW_IDENTITY_KEY_BYTES], sec[SW_IDENTITY_KEY_BYTES];
    uint8_t derived[SW_IDENTITY_KEY_BYTES];
    sw_identity_t *self = NULL;
    if (s_parse_cert(path, false, pub, NULL, err, errlen) != 0)
        goto done;
    if (s_parse_cert(secret_path, true, sec_pub, sec, err, errlen) != 0)
        goto done;
    if (crypto_scalarmult_base(derived, sec) != 0 || sodium_memcmp(derived, sec_pub, sizeof derived) != 0) {
        sw_err(err, errlen, "%s: the public key written there is not the one of its secret key", secret_path);
        goto done;
    }
    if (sodium_memcmp(pub, sec_pub, sizeof pub) != 0) {
        sw_err(err, errlen, "%s and %s hold different keys (public/secret mismatch)", path, secret_path);
        goto done;
    }
    self = s_new(path, pub, sec, err, errlen);
done:
    sodium_memzero(sec, sizeof sec);
    return self;
}

static bool s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/*  Writes the secret certificate (zcert's file format: comments, metadata,
 *  curve/public-key, curve/secret-key) to fd and syncs it. The text is wiped
 *  before it is freed. Returns 0 or -1 (errno set). */
static int s_write_secret(zcert_t *cert, int fd)
{
    zconfig_t *root = zconfig_new("root", NULL);
    if (!root)
        return -1;
    zconfig_set_comment(root, "   swisd node key: SECRET certificate (ZeroMQ CURVE, czmq zcert format)");
    zconfig_set_comment(root, "   Keep it mode 0600 and on this machine; share only the public file.");
    zconfig_put(root, "/metadata/created-by", "swisd keygen");
    zconfig_put(root, "/curve/public-key", zcert_public_txt(cert));
    zconfig_put(root, "/curve/secret-key", zcert_secret_txt(cert));
    char *text = zconfig_str_save(root);
    char *v = zconfig_get(root, "/curve/secret-key", NULL);
    if (v)
        sodium_memzero(v, strlen(v));
    zconfig_destroy(&root);
    if (!text)
        return -1;
    size_t n = strlen(text), done = 0;
    int rc = 0;
    while (done < n) {
        ssize_t w = write(fd, text + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = -1;
            break;
        }
        done += (size_t) w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -1;
    int saved = errno;
    sodium_memzero(text, n);
    zstr_free(&text);
    errno = saved;
    return rc;
}

sw_identity_t *sw_identity_generate(const char *path, bool force, char *err, size_t errlen)
{
    char secret_path[SW_IDENTITY_MAX_PATH];
    if (s_check_path(path, secret_path, err, errlen) != 0)
        return NULL;
    if (sodium_init() < 0) {
        sw_err(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    if (!force && (s_exists(path) || s_exists(secret_path))) {
        sw_err(err, errlen, "%s or %s exists already (refusing to overwrite a key; use --force)", path,
              secret_path);
        return NULL;
    }
    if (force) {
        if (unlink(secret_path) != 0 && errno != ENOENT) {
            sw_err(err, errlen, "%s: cannot remove: %s", secret_path, strerror(errno));
            return NULL;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            sw_err(err, errlen, "%s: cannot remove: %s", path, strerror(errno));
            return NULL;
        }
    }
    uint8_t pub[SW_IDENTITY_KEY_BYTES], sec[SW_IDENTITY_KEY_BYTES];
    crypto_box_keypair(pub, sec); /* CURVE25519, the keys ZeroMQ CURVE uses */
    zcert_t *cert = zcert_new_from(pub, sec);
    sodium_memzero(sec, sizeof sec);
    if (!cert) {
        sw_err(err, errlen, "zcert_new_from failed");
        return NULL;
    }
    zcert_set_meta(cert, "created-by", "swisd keygen");
    sw_identity_t *self = NULL;
    /* the secret file exists with mode 0600 before a byte is written to it;
     * written through our own descriptor, not zcert_save_secret, which changes
     * the process umask while it runs */
    int fd = open(secret_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        sw_err(err, errlen, "%s: cannot create: %s", secret_path, strerror(errno));
        goto done;
    }
    int rc = fchmod(fd, 0600); /* whatever the umask */
    if (rc == 0)
        rc = s_write_secret(cert, fd);
    if (close(fd) != 0)
        rc = -1;
    if (rc != 0) {
        sw_err(err, errlen, "%s: cannot write: %s", secret_path, strerror(errno));
        goto fail_files;
    }
    if (zcert_save_public(cert, path) != 0) {
        sw_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        goto fail_files;
    }
    /* read back through the same checks a later load makes */
    self = sw_identity_load(path, err, errlen);
    if (!self)
        goto fail_files;
    goto done;
fail_files:
    unlink(secret_path);
    unlink(path);
done:
    {
        /* czmq's copies of the secret key: its own (non-const) storage, returned const */
        sodium_memzero((void *) zcert_secret_key(cert), SW_IDENTITY_KEY_BYTES);
        char *ct = (char *) zcert_secret_txt(cert);
        sodium_memzero(ct, strlen(ct));
    }
    zcert_destroy(&cert);
    return self;
}

int sw_identity_config_dir(char *out, size_t len, char *err, size_t errlen)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(out, len, "%s/swisd", xdg);
    else {
        const char *home = getenv("HOME");
        if (!home || home[0] != '/') {
            sw_err(err, errlen, "neither XDG_CONFIG_HOME nor HOME is set to an absolute path: "
                               "cannot find the per-user config folder (give --key PATH)");
            return -1;
        }
        n = snprintf(out, len, "%s/.config/swisd", home);
    }
    if (n < 0 || (size_t) n >= len) {
        sw_err(err, errlen, "the per-user config folder path is too long");
        return -1;
    }
    return 0;
}

/*  mkdir -p path with mode for every folder it creates; then checks that the
 *  last one is a folder that group and others cannot write to. */
static int s_make_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
    char tmp[SW_IDENTITY_MAX_PATH];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
                sw_err(err, errlen, "%s: cannot create folder: %s", tmp, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        sw_err(err, errlen, "%s: not a folder", path);
        return -1;
    }
    if (st.st_mode & 022) {
        sw_err(err, errlen, "%s: permissions %04o let others write there: refusing to keep keys in it "
                           "(chmod 700 %s)", path, (unsigned) (st.st_mode & 07777), path);
        return -1;
    }
    return 0;
}

int sw_identity_config_dir_make(char *out, size_t len, char *err, size_t errlen)
{
    return sw_identity_config_dir(out, len, err, errlen) != 0 ? -1 : s_make_dir(out, 0700, err, errlen);
}

sw_identity_t *sw_identity_load_or_create(const char *role, const char *key_path, char *err, size_t errlen)
{
    if (key_path)
        return sw_identity_load(key_path, err, errlen);
    size_t rl = role ? strnlen(role, SW_IDENTITY_MAX_ROLE + 1) : 0;
    if (rl == 0 || rl > SW_IDENTITY_MAX_ROLE || strspn(role, "abcdefghijklmnopqrstuvwxyz0123456789_-") != rl) {
        sw_err(err, errlen, "invalid role name (1..%d characters of a-z, 0-9, _ and -)", SW_IDENTITY_MAX_ROLE);
        return NULL;
    }
    char dir[SW_IDENTITY_MAX_PATH - 64];
    if (sw_identity_config_dir(dir, sizeof dir, err, errlen) != 0)
        return NULL;
    if (s_make_dir(dir, 0700, err, errlen) != 0)
        return NULL;
    char path[SW_IDENTITY_MAX_PATH], secret_path[SW_IDENTITY_MAX_PATH + 8];
    snprintf(path, sizeof path, "%s/%s.key", dir, role); /* fits: dir is 64 bytes shorter */
    snprintf(secret_path, sizeof secret_path, "%s_secret", path);
    sw_identity_t *self = NULL;
    if (!s_exists(path) && !s_exists(secret_path)) {
        if ((self = sw_identity_generate(path, false, err, errlen)) != NULL) {
            fprintf(stderr, "swisd-%s: created a new key at %s (fingerprint %s)\n", role, path, self->id);
            return self;
        }
        if (!s_exists(secret_path))
            return NULL; /* not a race with another first run: the reason is in err */
    }
    /* Another process of this user may be making the pair at this moment (two
     * first runs at once: its O_EXCL on the secret file made ours fail, or we
     * see its secret before its public file): wait up to a second for it. A
     * pair still half there after that is reported by the load (which file
     * is missing). */
    for (int i = 0; i < 20 && !(self = sw_identity_load(path, err, errlen)); i++)
        usleep(50 * 1000);
    return self;
}

void sw_identity_destroy(sw_identity_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_identity_t *self = *self_p;
    if (self->cert) {
        sodium_memzero((void *) zcert_secret_key(self->cert), SW_IDENTITY_KEY_BYTES);
        char *ct = (char *) zcert_secret_txt(self->cert);
        sodium_memzero(ct, strlen(ct));
        zcert_destroy(&self->cert);
    }
    sodium_memzero(self->secret_key, sizeof self->secret_key);
    free(self);
    *self_p = NULL;
}

const uint8_t *sw_identity_public_key(const sw_identity_t *self) { return self->public_key; }
const uint8_t *sw_identity_secret_key(const sw_identity_t *self) { return self->secret_key; }
const char *sw_identity_public_txt(const sw_identity_t *self) { return self->public_txt; }
const char *sw_identity_id(const sw_identity_t *self) { return self->id; }
zcert_t *sw_identity_cert(const sw_identity_t *self) { return self->cert; }
const char *sw_identity_path(const sw_identity_t *self) { return self->path; }
