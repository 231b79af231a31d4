/*  test_endpoint.c: sw_endpoint on good and hostile endpoint strings and
 *  bootstrap files (real files in a temporary folder). */
#include <fcntl.h>
#include <zmq.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_endpoint.h"
#include "sw_test.h"

#define KEY "fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}CY"  /* a key made by `swisd keygen` */

static char s_err[512];

static bool s_ok(const char *text, bool require_key)
{
    sw_endpoint_t ep;
    return sw_endpoint_parse(text, require_key, &ep, s_err, sizeof s_err) == 0;
}

static void test_parse(void)
{
    sw_endpoint_t ep;
    CHECK(sw_endpoint_parse("tcp://127.0.0.1:5556#" KEY, true, &ep, s_err, sizeof s_err) == 0);
    CHECK(strcmp(ep.addr, "tcp://127.0.0.1:5556") == 0);
    CHECK(strcmp(ep.host, "127.0.0.1") == 0 && ep.port == 5556 && ep.has_key);
    CHECK(strcmp(ep.server_txt, KEY) == 0);
    uint8_t k[32];
    CHECK(zmq_z85_decode(k, KEY) && memcmp(k, ep.server_key, 32) == 0);
    char back[SW_ENDPOINT_MAX_TEXT + 1];
    CHECK(sw_endpoint_format(&ep, back, sizeof back) == 0 && strcmp(back, "tcp://127.0.0.1:5556#" KEY) == 0);
    CHECK(sw_endpoint_format(&ep, back, 10) == -1);

    CHECK(sw_endpoint_parse("tcp://[::1]:1#" KEY, true, &ep, s_err, sizeof s_err) == 0);
    CHECK(strcmp(ep.host, "[::1]") == 0 && ep.port == 1);
    CHECK(sw_endpoint_parse("tcp://broker-1.lab_x.example:65535", false, &ep, s_err, sizeof s_err) == 0);
    CHECK(!ep.has_key && ep.port == 65535 && ep.server_txt[0] == '\0');
    CHECK(sw_endpoint_parse("tcp://broker:5556", true, &ep, s_err, sizeof s_err) == -1);
    CHECK(strstr(s_err, "no server key") != NULL);
    CHECK(ep.addr[0] == '\0'); /* zeroed on failure */

    static const char *bad[] = {
        "", "tcp://", "tcp://:5556#" KEY, "tcp://host#" KEY, "tcp://host:#" KEY, "tcp://host:0#" KEY,
        "tcp://host:65536#" KEY, "tcp://host:05556#" KEY, "tcp://host:999999#" KEY, "tcp://host:-1#" KEY,
        "tcp://host:+5#" KEY, "udp://host:5556#" KEY, "TCP://host:5556#" KEY, "ipc:///tmp/x#" KEY,
        "tcp://host:5556#", "tcp://host:5556#" KEY "x", "tcp://host:5556 #" KEY, " tcp://host:5556#" KEY,
        "tcp://host:5556#fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}C~",   /* '~' not Z85 */
        "tcp://host:5556#fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}C",    /* 39 */
        "tcp://host:5556######sgyRwa3732Du8@77iI+L@0FpLS^zoz+ele4",   /* > 2^32 group */
        "tcp://host:5556#" KEY "#" KEY, "tcp://ho st:5556#" KEY, "tcp://host:5556/path#" KEY,
        "tcp://[::1:5556#" KEY, "tcp://[]:5556#" KEY, "tcp://[zz]:5556#" KEY, "tcp://host\x1b[31m:5556#" KEY,
        "tcp://h\xc3\xa9:5556#" KEY, "tcp://host:5556\n#" KEY, "tcp://user@host:5556#" KEY,
        "tcp://*:5556#" KEY, "tcp://host:5556:7#" KEY,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(!s_ok(bad[i], true), "accepted bad[%zu]", i);
    CHECK(sw_endpoint_parse(NULL, true, &ep, s_err, sizeof s_err) == -1);
    /* errors never echo the input */
    CHECK(!s_ok("tcp://host\x1b[31m:5556#" KEY, true) && strchr(s_err, '\x1b') == NULL);

    /* long inputs */
    char host[400];
    memset(host, 'a', sizeof host);
    host[253] = '\0';
    char text[800];
    snprintf(text, sizeof text, "tcp://%s:5556", host);
    CHECK(s_ok(text, false));
    host[253] = 'a';
    host[254] = '\0';
    snprintf(text, sizeof text, "tcp://%s:5556", host);
    CHECK(!s_ok(text, false));
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    memcpy(text, "tcp://", 6);
    CHECK(!s_ok(text, false) && strstr(s_err, "longer than"));
    /* random bytes never crash the parser, and whatever passes is well formed */
    srand(11);
    int passed = 0;
    for (int i = 0; i < 20000; i++) {
        char buf[120];
        size_t n = (size_t) (rand() % 100);
        size_t pre = (size_t) (rand() % 3);
        const char *prefix = pre == 0 ? "" : pre == 1 ? "tcp://" : "tcp://h:1#";
        size_t pl = strlen(prefix);
        memcpy(buf, prefix, pl);
        for (size_t j = pl; j < pl + n; j++)
            buf[j] = (char) (rand() % 255 + 1);
        buf[pl + n] = '\0';
        if (s_ok(buf, false)) {
            passed++;
            CHECK(sw_endpoint_parse(buf, false, &ep, s_err, sizeof s_err) == 0 && ep.port >= 1);
        }
    }
    (void) passed;
}

static void test_bootstrap(void)
{
    sw_endpoint_t eps[SW_ENDPOINT_MAX_ENTRIES + 4];
    const char *good = "# the lab's brokers\n"
                       "\n"
                       "   tcp://10.0.0.2:5556#" KEY "  \r\n"
                       "\t# indented comment\n"
                       "tcp://[fd00::3]:5557#" KEY "\n"
                       "   \t  \n"
                       "tcp://b3:5558#" KEY; /* no final newline */
    int n = sw_endpoint_parse_bootstrap("f", good, strlen(good), true, eps, 8, s_err, sizeof s_err);
    CHECK_MSG(n == 3, "%d %s", n, s_err);
    if (n == 3) {
        CHECK(strcmp(eps[0].addr, "tcp://10.0.0.2:5556") == 0);
        CHECK(strcmp(eps[1].host, "[fd00::3]") == 0 && eps[1].port == 5557);
        CHECK(eps[2].port == 5558 && eps[2].has_key);
    }
    /* errors name the line */
    const char *bad_line = "tcp://a:1#" KEY "\n# ok\ntcp://b:2\n";
    CHECK(sw_endpoint_parse_bootstrap("boot.txt", bad_line, strlen(bad_line), true, eps, 8, s_err, sizeof s_err)
          == -1);
    CHECK(strstr(s_err, "boot.txt:3: ") == s_err);
    CHECK(sw_endpoint_parse_bootstrap("boot.txt", bad_line, strlen(bad_line), false, eps, 8, s_err, sizeof s_err)
          == 2);
    /* empty, only comments, NUL bytes, too many entries, long lines, too big */
    CHECK(sw_endpoint_parse_bootstrap("f", "", 0, true, eps, 8, s_err, sizeof s_err) == -1);
    CHECK(sw_endpoint_parse_bootstrap("f", NULL, 0, true, eps, 8, s_err, sizeof s_err) == -1);
    CHECK(sw_endpoint_parse_bootstrap("f", "# x\n\n", 5, true, eps, 8, s_err, sizeof s_err) == -1);
    CHECK(sw_endpoint_parse_bootstrap("f", "tcp://a:1#" KEY "\0x", 52, true, eps, 8, s_err, sizeof s_err) == -1);
    static char many[SW_ENDPOINT_MAX_FILE + 10];
    size_t len = 0;
    for (int i = 0; i < 10; i++)
        len += (size_t) snprintf(many + len, sizeof many - len, "tcp://h%d:%d#%s\n", i, 1000 + i, KEY);
    CHECK(sw_endpoint_parse_bootstrap("f", many, len, true, eps, 9, s_err, sizeof s_err) == -1);
    CHECK(sw_endpoint_parse_bootstrap("f", many, len, true, eps, 10, s_err, sizeof s_err) == 10);
    memset(many, ' ', sizeof many);
    CHECK(sw_endpoint_parse_bootstrap("f", many, SW_ENDPOINT_MAX_LINE + 1, true, eps, 8, s_err, sizeof s_err)
          == -1 && strstr(s_err, "line longer"));
    CHECK(sw_endpoint_parse_bootstrap("f", many, sizeof many, true, eps, 8, s_err, sizeof s_err) == -1);

    /* files */
    char dir[] = "/tmp/swisd-test-endpoint-XXXXXX";
    if (!mkdtemp(dir))
        return;
    char path[128];
    snprintf(path, sizeof path, "%s/bootstrap", dir);
    FILE *f = fopen(path, "w");
    fputs(good, f);
    fclose(f);
    CHECK(sw_endpoint_read_bootstrap(path, true, eps, 8, s_err, sizeof s_err) == 3);
    f = fopen(path, "w");
    for (int i = 0; i < SW_ENDPOINT_MAX_FILE / 8 + 10; i++)
        fputs("#######\n", f);
    fclose(f);
    CHECK(sw_endpoint_read_bootstrap(path, true, eps, 8, s_err, sizeof s_err) == -1 && strstr(s_err, "larger"));
    unlink(path);
    CHECK(sw_endpoint_read_bootstrap(path, true, eps, 8, s_err, sizeof s_err) == -1 && strstr(s_err, "cannot open"));
    CHECK(sw_endpoint_read_bootstrap(dir, true, eps, 8, s_err, sizeof s_err) == -1);
    CHECK(sw_endpoint_read_bootstrap(NULL, true, eps, 8, s_err, sizeof s_err) == -1);
    rmdir(dir);
}

int main(void)
{
    test_parse();
    test_bootstrap();
    return sw_test_report("endpoint");
}
