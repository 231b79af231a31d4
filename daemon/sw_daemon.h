/*  sw_daemon.h: process set-up shared by the swisd daemons (swisd-broker,
 *  swisd-stage, swisd-gateway), done once at the top of main, the same way
 *  in every one of them:
 *
 *  - log identity: the role goes into every log line (sw_common.h, sw_log:
 *    "TIME PROGRAM[PID] ROLE NODE LEVEL: message"); the main adds the node id
 *    with sw_log_set_node once the node's object knows it;
 *  - SIGINT and SIGTERM set the caller's stop flag (which the main hands to
 *    sw_broker_run, sw_stage_run or sw_gateway_run) and czmq's
 *    zsys_interrupted (which the libraries' bounded waits also watch: a
 *    registration wait, a client call), so either ends the process cleanly;
 *    czmq's own handlers are disabled (the first socket would otherwise
 *    install them over these; tests/test_daemon.c checks it);
 *  - SIGPIPE is ignored: a peer that vanishes (an HTTP client mid-stream, a
 *    TCP link) makes a write fail with EPIPE instead of killing the daemon.
 *
 *  Option values are parsed with getopt_long and sw_opt.h (core), shared
 *  with the `swisd` tool. Libraries never call this: only a main does.
 */
#ifndef SW_DAEMON_H
#define SW_DAEMON_H

#ifdef __cplusplus
extern "C" {
#endif

/*  Sets up the calling process as a daemon of `role` (a short word:
 *  "broker", "stage", "gateway"; copied) whose stop flag is *stop (set to 0
 *  here, to 1 by SIGINT or SIGTERM; borrowed for the life of the process:
 *  give a static). Call once from main before any thread or ZeroMQ socket is
 *  created. Returns 0, or -1 when a handler could not be installed (errno
 *  set; nothing is logged). Not thread-safe (process-wide state). */
int sw_daemon_setup(const char *role, volatile int *stop);

/*  As sw_daemon_setup, for a daemon that drains before it stops (swisd-stage:
 *  sw_stage_run): the first SIGINT or SIGTERM sets only *stop (the daemon
 *  finishes its work and then exits; czmq's waits go on), a later one, 1 s
 *  or more after the first, also sets zsys_interrupted (stop now). Signals
 *  within that second count as one: the same request can arrive twice (from
 *  `swisd volunteer` and from systemd stopping the whole unit, or a
 *  terminal's Ctrl-C reaching the process group). Same return and thread
 *  rules. */
int sw_daemon_setup_drain(const char *role, volatile int *stop);

#ifdef __cplusplus
}
#endif
#endif
