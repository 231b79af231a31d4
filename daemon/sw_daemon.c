/*  sw_daemon.c: process set-up shared by the daemons (see sw_daemon.h). */
#include "sw_daemon.h"

#include <czmq.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <string.h>

#include "sw_common.h"

/* The stop flag a signal sets: a signal handler can reach nothing else. */
static volatile int *s_stop = NULL;
/* sw_daemon_setup_drain: the first signal only asks for a drain (process-wide, set once in main) */
static volatile sig_atomic_t s_drain_first = 0;

/* CLOCK_MONOTONIC ns of the first stop signal (0: none yet); written only here */
static volatile uint64_t s_first_ns = 0;

static void s_on_stop_signal(int sig)
{
    (void) sig;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe (POSIX) */
    const uint64_t now = (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
    /* a second signal within 1 s is the same request delivered twice (a supervisor and systemd, or a
       terminal's Ctrl-C reaching the whole process group), not an "exit now" */
    const bool again = s_first_ns && now - s_first_ns >= 1000000000ull;
    if (!s_first_ns)
        s_first_ns = now ? now : 1;
    if (s_stop)
        *s_stop = 1;
    if (!s_drain_first || again)
        zsys_interrupted = 1;
}

int sw_daemon_setup_drain(const char *role, volatile int *stop)
{
    s_drain_first = 1;
    return sw_daemon_setup(role, stop);
}

int sw_daemon_setup(const char *role, volatile int *stop)
{
    sw_log_set_role(role);
    s_first_ns = 0;
    s_stop = stop;
    if (stop)
        *stop = 0;
    /* before zsys_init (the first socket), or czmq would install its own handlers over ours */
    zsys_handler_set(NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: a blocking poll or recv returns EINTR, and its loop sees the flag */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        return -1;
    return 0;
}
