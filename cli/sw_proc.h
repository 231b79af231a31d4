/*  sw_proc.h: start and stop the swarm's processes (used by `swisd demo`).
 *
 *  A child's stdout is a pipe the parent reads lines from (the swisd daemons
 *  print their bound endpoint there); its stderr goes to a log file.
 *
 *  Thread safety: one thread.
 */
#ifndef SW_PROC_H
#define SW_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;           /* child process id; 0 when not running */
    int out_fd;          /* read end of the child's stdout; -1 when closed */
    char name[64];       /* label for messages */
    char log_path[512];  /* where the child's stderr goes */
} sw_proc_t;

/*  Finds the executable `name` of the swisd build: next to self_exe, in
 *  ../broker, ../stage, ../gateway relative to its folder, then on PATH.
 *  Writes the path to out. Returns 0 or -1. */
int sw_proc_find_tool(const char *self_exe, const char *name, char *out, size_t outlen);

/*  Starts argv[0] with argv (NULL-terminated), stderr appended to log_path.
 *  Returns 0 or -1 (reason on stderr). */
int sw_proc_start(sw_proc_t *p, const char *name, char *const argv[], const char *log_path);

/*  Reads stdout lines of the child until one starts with `prefix`, and copies
 *  the rest of that line (trimmed) to out. Gives up after timeout_ms or when
 *  the child exits. Returns 0 or -1. */
int sw_proc_read_value(sw_proc_t *p, const char *prefix, char *out, size_t outlen, int timeout_ms);

/*  True while the child runs (reaps it when it has exited). */
bool sw_proc_alive(sw_proc_t *p);

/*  Sends SIGTERM, waits up to timeout_ms, then SIGKILL. Returns the exit
 *  status as from waitpid, or -1. */
int sw_proc_stop(sw_proc_t *p, int timeout_ms);

#endif
