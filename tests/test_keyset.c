/*  test_keyset.c: sw_keyset on real files in a temporary folder: a folder of
 *  public key files (secret files, dot files, sub-folders and corrupt files
 *  skipped), a list file (Z85 keys, node ids, comments, garbage lines,
 *  missing file = empty set), changes picked up by refresh and on a miss,
 *  a failed re-read keeping the previous set, and bad paths refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_identity.h"
#include "sw_keyset.h"
#include "sw_test.h"

static char s_dir[256];
static char s_err[512];

static const char *s_path(const char *name)
{
    return sw_test_path(s_dir, name);
}

/* A fresh key pair in `folder`/`name` (+ _secret); returns it (caller destroys). */
static sw_identity_t *s_key(const char *folder, const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", folder, name);
    sw_identity_t *id = sw_identity_generate(p, false, s_err, sizeof s_err);
    if (!id) {
        fprintf(stderr, "generate %s: %s\n", p, s_err);
        exit(1);
    }
    return id;
}

static void test_folder(void)
{
    const char *dir = s_path("keys");
    mkdir(dir, 0700);
    const char *other_dir = s_path("others");
    mkdir(other_dir, 0700);
    sw_identity_t *a = s_key(dir, "alice.key"), *b = s_key(dir, "bob.key"), *c = s_key(other_dir, "carol.key");
    /* things that are not public keys: skipped, not fatal */
    sw_test_write(s_path("keys/garbage.key"), "this is not a certificate\n");
    sw_test_write(s_path("keys/.hidden"), "x");
    mkdir(s_path("keys/sub"), 0700);
    sw_keyset_t *ks = sw_keyset_new(dir, true, "test", s_err, sizeof s_err);
    CHECK_MSG(ks != NULL, "%s", s_err);
    if (!ks)
        return;
    CHECK(sw_keyset_size(ks) == 2); /* alice and bob: their _secret files are not counted twice */
    CHECK(sw_keyset_contains(ks, sw_identity_id(a)));
    CHECK(sw_keyset_contains_key(ks, sw_identity_public_key(b)));
    CHECK(!sw_keyset_contains(ks, sw_identity_id(c)));
    CHECK(!sw_keyset_contains(ks, "0000000000000000"));
    CHECK(!sw_keyset_contains(ks, NULL));
    CHECK(!strcmp(sw_keyset_path(ks), dir));
    /* a key added later is found on a miss once the folder changed (rescan at most once a second) */
    sw_identity_t *d = s_key(dir, "dave.key");
    usleep((SW_KEYSET_RESCAN_MS + 100) * 1000);
    CHECK(sw_keyset_contains(ks, sw_identity_id(d)));
    CHECK(sw_keyset_size(ks) == 3);
    /* a removed key is gone after a forced refresh */
    char p[600];
    snprintf(p, sizeof p, "%s/alice.key", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/alice.key_secret", dir);
    unlink(p);
    CHECK(sw_keyset_refresh(ks, true));
    CHECK(!sw_keyset_contains(ks, sw_identity_id(a)));
    CHECK(sw_keyset_size(ks) == 2);
    /* the folder vanishes: the previous set stays */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    CHECK(!sw_keyset_refresh(ks, true));
    CHECK(sw_keyset_contains(ks, sw_identity_id(b)));
    sw_keyset_destroy(&ks);
    CHECK(ks == NULL);
    sw_keyset_destroy(&ks); /* NULL is fine */
    /* a folder that does not exist is refused at the start, naming it */
    CHECK(sw_keyset_new(dir, true, "test", s_err, sizeof s_err) == NULL);
    CHECK(strstr(s_err, "keys") != NULL);
    CHECK(sw_keyset_new("", true, "test", s_err, sizeof s_err) == NULL);
    CHECK(sw_keyset_new(NULL, false, "test", s_err, sizeof s_err) == NULL);
    sw_identity_destroy(&a), sw_identity_destroy(&b), sw_identity_destroy(&c), sw_identity_destroy(&d);
}

static void test_list(void)
{
    const char *list = s_path("deny.txt");
    sw_keyset_t *ks = sw_keyset_new(list, false, "test", s_err, sizeof s_err);
    CHECK_MSG(ks != NULL, "%s", s_err); /* a missing list is an empty set */
    if (!ks)
        return;
    CHECK(sw_keyset_size(ks) == 0);
    sw_identity_t *a = s_key(s_dir, "a.key"), *b = s_key(s_dir, "b.key");
    char text[1024];
    snprintf(text, sizeof text,
             "# banned by the operator\n"
             "  %s\n"            /* a Z85 key, indented */
             "%s\ttrailing words\n" /* a node id, with a comment after white space */
             "0123456789ABCDEF\n"   /* upper case: not a node id, not a key: ignored */
             "not-a-key\n"
             "\n",
             sw_identity_public_txt(a), sw_identity_id(b));
    sw_test_write(list, text);
    CHECK(sw_keyset_refresh(ks, true));
    CHECK(sw_keyset_size(ks) == 2);
    CHECK(sw_keyset_contains(ks, sw_identity_id(a)));
    CHECK(sw_keyset_contains_key(ks, sw_identity_public_key(b)));
    CHECK(sw_keyset_refresh(ks, true) && sw_keyset_size(ks) == 2); /* forced: re-read, the same set */
    /* an unchanged file is not re-read without force */
    usleep((SW_KEYSET_RESCAN_MS + 100) * 1000);
    CHECK(!sw_keyset_refresh(ks, false));
    /* a changed file is, after the rescan interval */
    sw_test_write(list, "# nobody\n");
    usleep((SW_KEYSET_RESCAN_MS + 100) * 1000);
    CHECK(sw_keyset_refresh(ks, false));
    CHECK(sw_keyset_size(ks) == 0);
    /* an unreadable list (a folder where the file was) keeps the previous set */
    snprintf(text, sizeof text, "%s\n", sw_identity_id(a));
    sw_test_write(list, text);
    CHECK(sw_keyset_refresh(ks, true) && sw_keyset_size(ks) == 1);
    unlink(list);
    mkdir(list, 0700);
    CHECK(!sw_keyset_refresh(ks, true));
    CHECK(sw_keyset_contains(ks, sw_identity_id(a)));
    rmdir(list);
    sw_keyset_destroy(&ks);
    sw_identity_destroy(&a), sw_identity_destroy(&b);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "%s/swisd-test-keyset-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_folder();
    test_list();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s_dir);
    return sw_test_report("keyset");
}
