/*  test_daemon.c: sw_daemon_setup selftest (daemon/sw_daemon.h).
 *
 *  After set-up: the stop flag is cleared; SIGTERM and SIGINT (raised in this
 *  process) set it and czmq's zsys_interrupted, and the process lives on;
 *  SIGPIPE is ignored (raised, the process lives on; its disposition is
 *  SIG_IGN); a ZeroMQ socket created afterwards does not put czmq's handlers
 *  back over ours; the role is in the next log line. In drain mode
 *  (sw_daemon_setup_drain) the first signal sets only the stop flag, a
 *  repeat within 1 s changes nothing, one after 1 s sets zsys_interrupted.
 */
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_daemon.h"
#include "sw_test.h"

static volatile int s_stop = 7;

static void s_check_stops_on(int sig, const char *name)
{
    s_stop = 0;
    zsys_interrupted = 0;
    CHECK(raise(sig) == 0);
    CHECK_MSG(s_stop == 1 && zsys_interrupted == 1, "%s: stop %d, zsys_interrupted %d", name, s_stop,
              zsys_interrupted);
}

int main(void)
{
    setenv("SWISD_LOG", "info", 1);
    CHECK(sw_daemon_setup("stage", &s_stop) == 0);
    CHECK(s_stop == 0);
    s_check_stops_on(SIGTERM, "SIGTERM");
    s_check_stops_on(SIGINT, "SIGINT");

    CHECK(raise(SIGPIPE) == 0); /* would end the process unless ignored */
    struct sigaction cur;
    CHECK(sigaction(SIGPIPE, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN);

    /* the first socket runs zsys_init, which installs czmq's handlers unless told not to */
    zsock_t *s = zsock_new(ZMQ_PAIR);
    CHECK(s != NULL);
    zsock_destroy(&s);
    s_check_stops_on(SIGTERM, "SIGTERM after the first socket");

    /* the role names the writer of the next line */
    fflush(stderr);
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL);
    if (tmp) {
        int saved = dup(2);
        dup2(fileno(tmp), 2);
        sw_log(SW_LOG_INFO, "after set-up");
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        char line[512] = "";
        rewind(tmp);
        if (!fgets(line, sizeof line, tmp))
            line[0] = '\0';
        fclose(tmp);
        char want[128];
        snprintf(want, sizeof want, "[%ld] stage - INFO: after set-up\n", (long) getpid());
        CHECK_MSG(strstr(line, want) != NULL, "'%s' lacks '%s'", line, want);
    }
    /* drain mode: the first signal asks for a drain (stop only), a repeat within 1 s is the same
       request, one a second later means "stop now" */
    CHECK(sw_daemon_setup_drain("stage", &s_stop) == 0);
    zsys_interrupted = 0;
    CHECK(s_stop == 0);
    CHECK(raise(SIGTERM) == 0);
    CHECK_MSG(s_stop == 1 && zsys_interrupted == 0, "drain: stop %d, zsys_interrupted %d", s_stop, zsys_interrupted);
    CHECK(raise(SIGINT) == 0);
    CHECK_MSG(zsys_interrupted == 0, "drain: a repeat within 1 s stopped at once");
    usleep(1100000);
    CHECK(raise(SIGTERM) == 0);
    CHECK_MSG(s_stop == 1 && zsys_interrupted == 1, "drain: a second signal 1.1 s later did not stop at once");
    return sw_test_report("daemon");
}
