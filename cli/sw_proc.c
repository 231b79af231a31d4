/*  sw_proc.c: child processes for `swisd demo`. */
#include "sw_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sw_common.h"

static bool s_is_exe(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int sw_proc_find_tool(const char *self_exe, const char *name, char *out, size_t outlen)
{
    char self[4096];
    ssize_t n = self_exe ? (ssize_t) strnlen(self_exe, sizeof self - 1) : -1;
    if (self_exe && strchr(self_exe, '/'))
        memcpy(self, self_exe, (size_t) n), self[n] = 0;
    else if ((n = readlink("/proc/self/exe", self, sizeof self - 1)) > 0)
        self[n] = 0;
    else
        self[0] = 0;
    if (self[0]) {
        char *dir = dirname(self);
        const char *subs[] = {".", "../broker", "../stage", "../gateway", "../chaos"};
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
            snprintf(out, outlen, "%s/%s/%s", dir, subs[i], name);
            if (s_is_exe(out))
                return 0;
        }
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t) (end - path) : strlen(path);
        snprintf(out, outlen, "%.*s/%s", (int) len, path, name);
        if (len > 0 && s_is_exe(out))
            return 0;
        path = end ? end + 1 : NULL;
    }
    return -1;
}

int sw_proc_start(sw_proc_t *p, const char *name, char *const argv[], const char *log_path)
{
    memset(p, 0, sizeof *p);
    p->out_fd = -1;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log_path, sizeof p->log_path, "%s", log_path);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        fprintf(stderr, "swisd: %s: pipe: %s\n", name, strerror(errno));
        return -1;
    }
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
        fprintf(stderr, "swisd: %s: %s: %s\n", name, log_path, strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "swisd: %s: fork: %s\n", name, strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        close(log);
        return -1;
    }
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "swisd: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    close(log);
    p->pid = pid;
    p->out_fd = pipefd[0];
    return 0;
}

int sw_proc_read_value(sw_proc_t *p, const char *prefix, char *out, size_t outlen, int timeout_ms)
{
    char line[1024];
    size_t used = 0;
    const uint64_t deadline = sw_now_ns() + (uint64_t) timeout_ms * 1000000ull;
    while (p->out_fd >= 0) {
        const int64_t left = (int64_t) (deadline - sw_now_ns()) / 1000000;
        if ((int64_t) (deadline - sw_now_ns()) <= 0)
            break;
        struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int) (left > 200 ? 200 : left + 1));
        if (rc < 0 && errno != EINTR)
            break;
        if (rc <= 0) {
            if (!sw_proc_alive(p))
                break;
            continue;
        }
        ssize_t n = read(p->out_fd, line + used, 1);
        if (n <= 0)
            break;
        if (line[used] != '\n' && used + 1 < sizeof line - 1) {
            used++;
            continue;
        }
        line[used] = 0;
        used = 0;
        size_t plen = strlen(prefix);
        if (!strncmp(line, prefix, plen)) {
            const char *v = line + plen;
            while (*v == ' ')
                v++;
            snprintf(out, outlen, "%s", v);
            size_t len = strlen(out);
            while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\r'))
                out[--len] = 0;
            return 0;
        }
    }
    return -1;
}

bool sw_proc_alive(sw_proc_t *p)
{
    if (p->pid <= 0)
        return false;
    int status;
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
        p->pid = 0;
        return false;
    }
    return true;
}

int sw_proc_stop(sw_proc_t *p, int timeout_ms)
{
    int status = -1;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        const uint64_t deadline = sw_now_ns() + (uint64_t) timeout_ms * 1000000ull;
        for (;;) {
            pid_t r = waitpid(p->pid, &status, WNOHANG);
            if (r == p->pid || r < 0)
                break;
            if ((int64_t) (deadline - sw_now_ns()) <= 0) {
                fprintf(stderr, "swisd: %s did not stop within %d ms; killing it\n", p->name, timeout_ms);
                kill(p->pid, SIGKILL);
                waitpid(p->pid, &status, 0);
                break;
            }
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
        }
        p->pid = 0;
    }
    if (p->out_fd >= 0)
        close(p->out_fd);
    p->out_fd = -1;
    return status;
}
