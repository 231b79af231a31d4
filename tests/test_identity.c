/*  test_identity.c: sw_identity on real files in a temporary folder: generate,
 *  load, file modes, public/secret mismatch, corrupt and hostile files, the
 *  per-user config folder (XDG_CONFIG_HOME and HOME pointed at the temp
 *  folder), and the node id against values computed independently. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sw_identity.h"
#include "sw_test.h"
#include "sw_wire.h"

_Static_assert(SW_IDENTITY_ID_LEN <= SW_WIRE_MAX_ID, "a node id must fit the wire's id limit");

static char s_dir[256];
static char s_err[512];

static const char *s_path(const char *name)
{
    return sw_test_path(s_dir, name);
}

static void s_write(const char *path, const void *data, size_t len, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, data, len) != (ssize_t) len) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fchmod(fd, mode);
    close(fd);
}

static void s_copy(const char *from, const char *to, mode_t mode)
{
    char buf[SW_IDENTITY_MAX_FILE];
    FILE *f = fopen(from, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    s_write(to, buf, n, mode);
}

static mode_t s_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (st.st_mode & 07777) : (mode_t) -1;
}

/*  Writes a certificate with the given key texts (NULL: line left out). */
static void s_write_cert(const char *path, const char *pub, const char *sec, mode_t mode)
{
    char text[1024];
    int n = snprintf(text, sizeof text, "curve\n%s%s%s%s%s%s", pub ? "    public-key = \"" : "", pub ? pub : "",
                     pub ? "\"\n" : "", sec ? "    secret-key = \"" : "", sec ? sec : "", sec ? "\"\n" : "");
    s_write(path, text, (size_t) n, mode);
}

/*  Expects sw_identity_load(path) to fail with `want` in the message. */
static void s_load_fails(const char *path, const char *want, int line)
{
    sw_identity_t *id = sw_identity_load(path, s_err, sizeof s_err);
    CHECK_MSG(id == NULL && strstr(s_err, want), "line %d: expected failure with '%s', got %s '%s'", line, want,
              id ? "success" : "failure", s_err);
    sw_identity_destroy(&id);
}
#define LOAD_FAILS(path, want) s_load_fails(path, want, __LINE__)

static void test_fingerprint(void)
{
    /* python3 -c "import hashlib; print(hashlib.blake2b(bytes(range(32)), digest_size=32).digest()[:8].hex())" */
    uint8_t k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t) i;
    char id[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(k, id);
    CHECK(strcmp(id, "cb2f5160fc1f7e05") == 0);
    CHECK(sw_identity_id_matches("cb2f5160fc1f7e05", k));
    CHECK(!sw_identity_id_matches("CB2F5160FC1F7E05", k));
    CHECK(!sw_identity_id_matches("cb2f5160fc1f7e0", k));
    CHECK(!sw_identity_id_matches("cb2f5160fc1f7e055", k));
    CHECK(!sw_identity_id_matches("cb2f5160fc1f7e06", k));
    CHECK(!sw_identity_id_matches("", k));
    CHECK(!sw_identity_id_matches(NULL, k));
    /* hashlib.blake2b(bytes(32), digest_size=32).digest()[:8].hex() */
    uint8_t z[32] = {0};
    sw_identity_fingerprint(z, id);
    CHECK(strcmp(id, "89eb0d6a8a691dae") == 0);
    CHECK(!sw_identity_id_matches("cb2f5160fc1f7e05", z));
}

static void test_z85(void)
{
    uint8_t k[32];
    /* a key made by `swisd keygen`; checked with a Python Z85 decoder */
    CHECK(sw_identity_z85_decode("fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}CY", k) == 0);
    char id[17];
    sw_identity_fingerprint(k, id);
    CHECK(strcmp(id, "545d38c6664d3996") == 0);
    CHECK(sw_identity_z85_decode("fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}C", k) != 0);    /* 39 */
    CHECK(sw_identity_z85_decode("fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}CYY", k) != 0);  /* 41 */
    CHECK(sw_identity_z85_decode("fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}C~", k) != 0);   /* '~' */
    CHECK(sw_identity_z85_decode("fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}C\"", k) != 0);
    CHECK(sw_identity_z85_decode("#####sgyRwa3732Du8@77iI+L@0FpLS^zoz+ele4", k) != 0);   /* > 2^32 - 1 */
    CHECK(sw_identity_z85_decode("", k) != 0);
    CHECK(sw_identity_z85_decode(NULL, k) != 0);
}

static void test_generate_load(void)
{
    const char *p = s_path("node.key"), *ps = s_path("node.key_secret");
    sw_identity_t *a = sw_identity_generate(p, false, s_err, sizeof s_err);
    CHECK_MSG(a != NULL, "%s", s_err);
    if (!a)
        return;
    CHECK(s_mode(ps) == 0600);
    CHECK(s_mode(p) != (mode_t) -1);
    CHECK(strlen(sw_identity_public_txt(a)) == 40);
    CHECK(strlen(sw_identity_id(a)) == 16);
    CHECK(sw_identity_id_matches(sw_identity_id(a), sw_identity_public_key(a)));
    CHECK(strcmp(sw_identity_path(a), p) == 0);
    CHECK(sw_identity_cert(a) != NULL);
    CHECK(strcmp(zcert_public_txt(sw_identity_cert(a)), sw_identity_public_txt(a)) == 0);
    /* the secret key belongs to the public key (X25519 base point multiplication) */
    uint8_t derived[32];
    crypto_scalarmult_base(derived, sw_identity_secret_key(a));
    CHECK(memcmp(derived, sw_identity_public_key(a), 32) == 0);

    sw_identity_t *b = sw_identity_load(p, s_err, sizeof s_err);
    CHECK_MSG(b != NULL, "%s", s_err);
    if (b) {
        CHECK(memcmp(sw_identity_public_key(a), sw_identity_public_key(b), 32) == 0);
        CHECK(memcmp(sw_identity_secret_key(a), sw_identity_secret_key(b), 32) == 0);
        CHECK(strcmp(sw_identity_id(a), sw_identity_id(b)) == 0);
    }
    /* czmq's own loader reads the pair (zcert_load prefers PATH_secret) */
    zcert_t *z = zcert_load(p);
    CHECK(z != NULL);
    if (z) {
        CHECK(memcmp(zcert_public_key(z), sw_identity_public_key(a), 32) == 0);
        CHECK(memcmp(zcert_secret_key(z), sw_identity_secret_key(a), 32) == 0);
        const char *meta = zcert_meta(z, "created-by");
        CHECK(meta && strcmp(meta, "swisd keygen") == 0);
        zcert_destroy(&z);
    }
    uint8_t pub[32];
    CHECK(sw_identity_read_public(p, pub, s_err, sizeof s_err) == 0);
    CHECK(memcmp(pub, sw_identity_public_key(a), 32) == 0);
    CHECK(sw_identity_read_public(ps, pub, s_err, sizeof s_err) != 0 && strstr(s_err, "without _secret"));
    LOAD_FAILS(ps, "without _secret");  /* the secret file given for the pair */
    CHECK(sw_identity_generate(s_path("x.key_secret"), false, s_err, sizeof s_err) == NULL);
    s_copy(ps, s_path("wrong.key"), 0644); /* a secret certificate in a public file's place */
    CHECK(sw_identity_read_public(s_path("wrong.key"), pub, s_err, sizeof s_err) != 0
          && strstr(s_err, "holds a secret key"));

    /* no overwrite without force; force makes a new key */
    sw_identity_t *c = sw_identity_generate(p, false, s_err, sizeof s_err);
    CHECK(c == NULL && strstr(s_err, "exists already"));
    sw_identity_destroy(&c);
    unlink(p); /* half a pair is not overwritten either */
    c = sw_identity_generate(p, false, s_err, sizeof s_err);
    CHECK(c == NULL && strstr(s_err, "exists already"));
    sw_identity_destroy(&c);
    c = sw_identity_generate(p, true, s_err, sizeof s_err);
    CHECK_MSG(c != NULL, "%s", s_err);
    if (c)
        CHECK(memcmp(sw_identity_public_key(a), sw_identity_public_key(c), 32) != 0);
    CHECK(s_mode(ps) == 0600);

    /* a umask that would leave the secret readable does not */
    mode_t old = umask(0);
    sw_identity_t *d = sw_identity_generate(s_path("umask.key"), false, s_err, sizeof s_err);
    umask(old);
    CHECK_MSG(d != NULL, "%s", s_err);
    CHECK(s_mode(s_path("umask.key_secret")) == 0600);
    sw_identity_destroy(&d);

    sw_identity_destroy(&a);
    sw_identity_destroy(&b);
    sw_identity_destroy(&c);
    CHECK(a == NULL && c == NULL);
    sw_identity_destroy(NULL);
    sw_identity_destroy(&a);
    /* a folder that does not exist */
    CHECK(sw_identity_generate(s_path("nope/x.key"), false, s_err, sizeof s_err) == NULL);
    CHECK(sw_identity_generate(NULL, false, s_err, sizeof s_err) == NULL);
    CHECK(sw_identity_generate("", false, s_err, sizeof s_err) == NULL);
}

static void test_modes(void)
{
    const char *p = s_path("m.key"), *ps = s_path("m.key_secret");
    sw_identity_t *a = sw_identity_generate(p, false, s_err, sizeof s_err);
    CHECK_MSG(a != NULL, "%s", s_err);
    sw_identity_destroy(&a);
    static const mode_t bad[] = {0640, 0604, 0660, 0644, 0666, 0610, 0601, 0602};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        chmod(ps, bad[i]);
        LOAD_FAILS(p, "too open");
    }
    chmod(ps, 0400);
    a = sw_identity_load(p, s_err, sizeof s_err);
    CHECK_MSG(a != NULL, "mode 0400: %s", s_err);
    sw_identity_destroy(&a);
    chmod(ps, 0600);
    /* a folder in place of the secret file */
    const char *q = s_path("dir.key"), *qs = s_path("dir.key_secret");
    s_copy(p, q, 0644);
    mkdir(qs, 0700);
    LOAD_FAILS(q, "not a regular file");
    rmdir(qs);
}

static void test_missing_mismatch(void)
{
    const char *a = s_path("a.key"), *as = s_path("a.key_secret");
    const char *b = s_path("b.key"), *bs = s_path("b.key_secret");
    sw_identity_t *ia = sw_identity_generate(a, false, s_err, sizeof s_err);
    sw_identity_t *ib = sw_identity_generate(b, false, s_err, sizeof s_err);
    CHECK(ia && ib);
    LOAD_FAILS(s_path("none.key"), "no such file");
    /* a public file alone */
    s_copy(a, s_path("pubonly.key"), 0644);
    LOAD_FAILS(s_path("pubonly.key"), "pubonly.key_secret: no such file");
    /* b's public file next to a's secret */
    s_copy(b, s_path("mix.key"), 0644);
    s_copy(as, s_path("mix.key_secret"), 0600);
    LOAD_FAILS(s_path("mix.key"), "mismatch");
    /* a secret file whose public-key line is not its secret key's */
    s_write_cert(s_path("lie.key"), sw_identity_public_txt(ib), NULL, 0644);
    s_write_cert(s_path("lie.key_secret"), sw_identity_public_txt(ib), zcert_secret_txt(sw_identity_cert(ia)), 0600);
    LOAD_FAILS(s_path("lie.key"), "not the one of its secret key");
    /* a hand-written pair in the same format loads */
    s_write_cert(s_path("hand.key"), sw_identity_public_txt(ia), NULL, 0644);
    s_write_cert(s_path("hand.key_secret"), sw_identity_public_txt(ia), zcert_secret_txt(sw_identity_cert(ia)),
                 0600);
    sw_identity_t *h = sw_identity_load(s_path("hand.key"), s_err, sizeof s_err);
    CHECK_MSG(h && strcmp(sw_identity_id(h), sw_identity_id(ia)) == 0, "%s", s_err);
    sw_identity_destroy(&h);
    (void) bs;
    sw_identity_destroy(&ia);
    sw_identity_destroy(&ib);
}

static void test_corrupt(void)
{
    const char *good = s_path("good.key");
    sw_identity_t *g = sw_identity_generate(good, false, s_err, sizeof s_err);
    CHECK(g != NULL);
    if (!g)
        return;
    const char *pub = sw_identity_public_txt(g);
    const char *sec = zcert_secret_txt(sw_identity_cert(g));
    const char *p = s_path("c.key"), *ps = s_path("c.key_secret");
    s_write_cert(ps, pub, sec, 0600);

    s_write(p, "", 0, 0644);
    LOAD_FAILS(p, "not a key certificate");
    s_write(p, "\x7f" "ELF\x01\x02\x00\x00garbage", 14, 0644);
    LOAD_FAILS(p, "NUL byte");
    s_write(p, "\xff\xfe\xfd{{{{ curve [[[[\n\t\t\x01", 22, 0644);
    LOAD_FAILS(p, "c.key:1: malformed");
    s_write(p, "curve\n    publik-key = \"x\"\n", 27, 0644);
    LOAD_FAILS(p, "no curve/public-key");
    static char big[SW_IDENTITY_MAX_FILE + 100];
    memset(big, '#', sizeof big);
    s_write(p, big, sizeof big, 0644);
    LOAD_FAILS(p, "not a key certificate");
    s_write_cert(p, "fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}C", NULL, 0644); /* 39 */
    LOAD_FAILS(p, "not 40 Z85");
    s_write_cert(p, "fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}C~", NULL, 0644);
    LOAD_FAILS(p, "not 40 Z85");
    s_write_cert(p, "#####sgyRwa3732Du8@77iI+L@0FpLS^zoz+ele4", NULL, 0644);
    LOAD_FAILS(p, "not 40 Z85");
    s_write_cert(p, pub, sec, 0644); /* the secret in the public file */
    LOAD_FAILS(p, "leaked");
    /* a good public file, corrupt secret files */
    s_write_cert(p, pub, NULL, 0644);
    s_write_cert(ps, pub, NULL, 0600);
    LOAD_FAILS(p, "no curve/secret-key");
    s_write_cert(ps, pub, "short", 0600);
    LOAD_FAILS(p, "secret-key is not 40 Z85");
    s_write(ps, "curve\n    public-key = \"", 24, 0600);
    LOAD_FAILS(p, "c.key_secret:2: malformed: unterminated");
    /* a damaged secret line: the error names the line, never shows it */
    char dmg[256];
    int dn = snprintf(dmg, sizeof dmg, "curve\n    secret-key = \"%s\n", sec);
    s_write(ps, dmg, (size_t) dn, 0600);
    LOAD_FAILS(p, "c.key_secret:2: malformed");
    CHECK(strstr(s_err, sec) == NULL);
    const char *deep = "curve\n        public-key = \"x\"\n";
    s_write(ps, deep, strlen(deep), 0600);
    LOAD_FAILS(p, "bad indentation");
    const char *comment3 = "   # three spaces (zconfig counts indentation on comments too)\n";
    s_write(ps, comment3, strlen(comment3), 0600);
    LOAD_FAILS(p, "c.key_secret:1: malformed: bad indentation");
    s_write_cert(ps, pub, sec, 0600);
    sw_identity_t *ok = sw_identity_load(p, s_err, sizeof s_err);
    CHECK_MSG(ok != NULL, "%s", s_err);
    sw_identity_destroy(&ok);
    /* random bytes never crash the loader */
    srand(7);
    for (int i = 0; i < 200; i++) {
        char junk[600];
        size_t n = 1 + (size_t) (rand() % (int) sizeof junk);
        for (size_t j = 0; j < n; j++)
            junk[j] = (char) (i % 2 ? (rand() % 95 + 32) : (rand() % 255 + 1));
        s_write(ps, junk, n, 0600);
        sw_identity_t *x = sw_identity_load(p, s_err, sizeof s_err);
        CHECK(x == NULL);
        sw_identity_destroy(&x);
    }
    sw_identity_destroy(&g);
}

static void test_config_dir(void)
{
    char xdg[400], want[512], err[512];
    snprintf(xdg, sizeof xdg, "%s/xdg/deeper", s_dir);
    setenv("XDG_CONFIG_HOME", xdg, 1);
    char dir[512];
    CHECK(sw_identity_config_dir(dir, sizeof dir, err, sizeof err) == 0);
    snprintf(want, sizeof want, "%s/swisd", xdg);
    CHECK(strcmp(dir, want) == 0);

    sw_identity_t *a = sw_identity_load_or_create("stage", NULL, err, sizeof err);
    CHECK_MSG(a != NULL, "%s", err);
    CHECK(s_mode(want) == 0700);
    char kp[600], ks[600];
    snprintf(kp, sizeof kp, "%s/stage.key", want);
    snprintf(ks, sizeof ks, "%s/stage.key_secret", want);
    CHECK(s_mode(ks) == 0600);
    sw_identity_t *b = sw_identity_load_or_create("stage", NULL, err, sizeof err);
    CHECK_MSG(b != NULL, "%s", err);
    if (a && b) {
        CHECK(strcmp(sw_identity_id(a), sw_identity_id(b)) == 0);
        CHECK(strcmp(sw_identity_path(b), kp) == 0);
    }
    sw_identity_t *c = sw_identity_load_or_create("broker", NULL, err, sizeof err);
    CHECK(c != NULL);
    if (a && c)
        CHECK(strcmp(sw_identity_id(a), sw_identity_id(c)) != 0);
    /* an explicit path is loaded, never created */
    sw_identity_t *d = sw_identity_load_or_create("stage", s_path("absent.key"), err, sizeof err);
    CHECK(d == NULL && strstr(err, "no such file"));
    CHECK(access(s_path("absent.key"), F_OK) != 0);
    d = sw_identity_load_or_create("stage", kp, err, sizeof err);
    CHECK(d != NULL);
    /* half a pair in the config folder is an error, not a silent new key */
    unlink(ks);
    sw_identity_t *e = sw_identity_load_or_create("stage", NULL, err, sizeof err);
    CHECK(e == NULL && strstr(err, "no such file"));
    /* roles are names, not paths */
    CHECK(sw_identity_load_or_create("../etc", NULL, err, sizeof err) == NULL);
    CHECK(sw_identity_load_or_create("", NULL, err, sizeof err) == NULL);
    CHECK(sw_identity_load_or_create(NULL, NULL, err, sizeof err) == NULL);
    CHECK(sw_identity_load_or_create("Stage", NULL, err, sizeof err) == NULL);
    CHECK(sw_identity_load_or_create("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, err, sizeof err) == NULL);
    /* a config folder others may write to is refused */
    chmod(want, 0777);
    CHECK(sw_identity_load_or_create("gateway", NULL, err, sizeof err) == NULL && strstr(err, "others write"));
    chmod(want, 0700);
    /* HOME when XDG_CONFIG_HOME is unset, empty or relative */
    char home[400];
    snprintf(home, sizeof home, "%s/home", s_dir);
    mkdir(home, 0755);
    setenv("HOME", home, 1);
    setenv("XDG_CONFIG_HOME", "", 1);
    CHECK(sw_identity_config_dir(dir, sizeof dir, err, sizeof err) == 0);
    snprintf(want, sizeof want, "%s/.config/swisd", home);
    CHECK(strcmp(dir, want) == 0);
    setenv("XDG_CONFIG_HOME", "relative/path", 1);
    CHECK(sw_identity_config_dir(dir, sizeof dir, err, sizeof err) == 0 && strcmp(dir, want) == 0);
    unsetenv("XDG_CONFIG_HOME");
    sw_identity_t *f = sw_identity_load_or_create("client", NULL, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    char cf[600];
    snprintf(cf, sizeof cf, "%s/client.key_secret", want);
    CHECK(s_mode(cf) == 0600);
    CHECK(s_mode(want) == 0700);
    unsetenv("HOME");
    CHECK(sw_identity_config_dir(dir, sizeof dir, err, sizeof err) == -1);
    CHECK(sw_identity_load_or_create("client", NULL, err, sizeof err) == NULL);
    sw_identity_destroy(&a);
    sw_identity_destroy(&b);
    sw_identity_destroy(&c);
    sw_identity_destroy(&d);
    sw_identity_destroy(&f);
}

/* Several processes making the same per-user key at once (two daemons' first
 * runs): every one must end with the same key, none with an error. */
static void test_first_run_race(void)
{
    char xdg[400], err[512];
    snprintf(xdg, sizeof xdg, "%s/xdg-race", s_dir);
    setenv("XDG_CONFIG_HOME", xdg, 1);
    enum { N = 8 };
    int fds[N][2];
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        if (pipe(fds[i]) != 0 || (pids[i] = fork()) < 0) {
            perror("pipe/fork");
            exit(1);
        }
        if (pids[i] == 0) {
            sw_identity_t *id = sw_identity_load_or_create("racer", NULL, err, sizeof err);
            const char *out = id ? sw_identity_id(id) : "FAILED";
            if (!id)
                fprintf(stderr, "racer %d: %s\n", i, err);
            ssize_t w = write(fds[i][1], out, strlen(out));
            _exit(w > 0 && id ? 0 : 1);
        }
        close(fds[i][1]);
    }
    char first[64] = "";
    int same = 0;
    for (int i = 0; i < N; i++) {
        char got[64] = "";
        ssize_t n = read(fds[i][0], got, sizeof got - 1);
        close(fds[i][0]);
        int status = 0;
        waitpid(pids[i], &status, 0);
        CHECK_MSG(n == SW_IDENTITY_ID_LEN && WIFEXITED(status) && WEXITSTATUS(status) == 0, "racer %d: %s", i, got);
        if (i == 0)
            snprintf(first, sizeof first, "%s", got);
        same += !strcmp(first, got);
    }
    CHECK_MSG(same == N, "%d of %d racers ended with the same key", same, N);
    unsetenv("XDG_CONFIG_HOME");
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "%s/swisd-test-identity-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (sodium_init() < 0)
        return 1;
    test_fingerprint();
    test_z85();
    test_generate_load();
    test_modes();
    test_missing_mismatch();
    test_corrupt();
    test_config_dir();
    test_first_run_race();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s_dir);
    return sw_test_report("identity");
}
