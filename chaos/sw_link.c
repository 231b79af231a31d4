/*  sw_link.c: WAN-emulating TCP proxy. See sw_link.h for the model.
 *
 *  Structure: one epoll loop. Every socket is an endpoint_t registered with
 *  exactly the events it currently wants (none = not registered at all, so a
 *  peer's EPOLLHUP can never make the loop spin). Each loop iteration first
 *  "services" every connection (deliver due chunks, apply drops, recompute
 *  interest and the next deadline), arms one timerfd at the earliest deadline,
 *  then waits. Reads happen in event handlers; writes happen in service.
 */
#include "sw_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define S_NEVER UINT64_MAX
#define S_MAX_CHUNK 65536u          /* largest read, bytes */
#define S_MIN_PACKET 1500u          /* smallest read under a rate cap, bytes */
#define S_MAX_CTL 16                /* control clients at once */
#define S_CTL_LINE 512              /* longest control command, bytes */

/* ---------------------------------------------------------------- helpers */

static uint64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static int s_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/*  levels: 0 error, 1 warn, 2 info, 3 debug */
static void s_log(int threshold, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_log(int threshold, int level, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > threshold)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[swisd-link %s] %s\n", names[level], line);
}

/*  splitmix64 (Steele, Lea, Flood 2014): small, seedable, good enough for
 *  jitter and drop times. */
static uint64_t s_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/*  uniform in [0, 1) */
static double s_rng_unit(uint64_t *state)
{
    return (double) (s_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* ------------------------------------------------------------ conf parsing */

typedef struct {
    const char *suffix;
    double mult;
} s_unit_t;

static const s_unit_t s_rate_units[] = {
    {"", 1}, {"b", 1}, {"bps", 1},
    {"k", 1e3}, {"kb", 1e3}, {"kbps", 1e3}, {"m", 1e6}, {"mb", 1e6}, {"mbps", 1e6},
    {"g", 1e9}, {"gb", 1e9}, {"gbps", 1e9},
    {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0},
    {"bit", 1.0 / 8}, {"kbit", 1e3 / 8}, {"mbit", 1e6 / 8}, {"gbit", 1e9 / 8},
    {NULL, 0}};

static const s_unit_t s_byte_units[] = {
    {"", 1}, {"b", 1}, {"k", 1e3}, {"kb", 1e3}, {"m", 1e6}, {"mb", 1e6}, {"g", 1e9}, {"gb", 1e9},
    {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0},
    {NULL, 0}};

/*  Parses "<number><unit>" with a unit from the table (case-insensitive). */
static int s_parse_units(const char *text, const s_unit_t *units, double *out)
{
    if (!text || !*text)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || !isfinite(v) || v < 0)
        return -1;
    for (const s_unit_t *u = units; u->suffix; u++)
        if (strcasecmp(end, u->suffix) == 0) {
            *out = v * u->mult;
            return 0;
        }
    return -1;
}

static int s_parse_ms(const char *text, double lo, double hi, double *out)
{
    if (!text || !*text)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

void sw_link_conf_defaults(sw_link_conf_t *conf)
{
    memset(conf, 0, sizeof *conf);
    conf->seed = 1;
    conf->buffer_bytes = 16u << 20;
    conf->queue_ms = 10.0;
}

int sw_link_conf_set(sw_link_conf_t *conf, const char *key, const char *value, char *err, size_t errlen)
{
    if (!conf || !key)
        return s_err(err, errlen, "no key");
    if (!value)
        return s_err(err, errlen, "%s: missing value", key);
    const double max_ms = 3600000.0;
    double v = 0;
    int first = 0, last = 1;      /* direction range for delay/jitter/rate */
    const char *k = key;
    if (strncmp(k, "up-", 3) == 0) {
        first = last = SW_LINK_UP;
        k += 3;
    } else if (strncmp(k, "down-", 5) == 0) {
        first = last = SW_LINK_DOWN;
        k += 5;
    }
    if (strcmp(k, "delay") == 0 || strcmp(k, "jitter") == 0) {
        if (s_parse_ms(value, 0, max_ms, &v))
            return s_err(err, errlen, "%s: want milliseconds in [0, %.0f], got '%s'", key, max_ms, value);
        for (int d = first; d <= last; d++) {
            if (k[0] == 'd')
                conf->dir[d].delay_ms = v;
            else
                conf->dir[d].jitter_ms = v;
        }
        return 0;
    }
    if (strcmp(k, "rate") == 0) {
        if (s_parse_units(value, s_rate_units, &v) || v > 1e12 || (v > 0 && v < 100))
            return s_err(err, errlen, "%s: want 0 (unlimited) or a rate in [100 B/s, 1e12 B/s], "
                         "e.g. 125000, 10mbit, 2MiB; got '%s'", key, value);
        for (int d = first; d <= last; d++)
            conf->dir[d].rate_Bps = v;
        return 0;
    }
    if (k != key)
        return s_err(err, errlen, "unknown option '%s'", key);
    if (strcmp(key, "listen") == 0 || strcmp(key, "connect") == 0) {
        char *dst = key[0] == 'l' ? conf->listen : conf->connect;
        size_t n = strlen(value);
        if (n == 0 || n >= sizeof conf->listen || !strrchr(value, ':'))
            return s_err(err, errlen, "%s: want HOST:PORT, got '%s'", key, value);
        memcpy(dst, value, n + 1);
        return 0;
    }
    if (strcmp(key, "control") == 0) {
        size_t n = strlen(value);
        if (n >= sizeof conf->control)
            return s_err(err, errlen, "control: path longer than %zu bytes", sizeof conf->control - 1);
        memcpy(conf->control, value, n + 1);
        return 0;
    }
    if (strcmp(key, "drop-after") == 0) {
        if (s_parse_units(value, s_byte_units, &v) || v > 1e18 || v != floor(v))
            return s_err(err, errlen, "drop-after: want a whole number of bytes (0 = never), got '%s'", value);
        conf->drop_after = (uint64_t) v;
        return 0;
    }
    if (strcmp(key, "buffer") == 0) {
        if (s_parse_units(value, s_byte_units, &v) || v < 4096 || v > 1073741824.0 || v != floor(v))
            return s_err(err, errlen, "buffer: want bytes in [4096, 1GiB], got '%s'", value);
        conf->buffer_bytes = (size_t) v;
        return 0;
    }
    if (strcmp(key, "drop-prob") == 0) {
        if (s_parse_ms(value, 0, 1, &v) || v >= 1)
            return s_err(err, errlen, "drop-prob: want a probability per second in [0, 1), got '%s'", value);
        conf->drop_prob = v;
        return 0;
    }
    if (strcmp(key, "queue") == 0) {
        if (s_parse_ms(value, 0, 60000, &v))
            return s_err(err, errlen, "queue: want milliseconds in [0, 60000], got '%s'", value);
        conf->queue_ms = v;
        return 0;
    }
    if (strcmp(key, "seed") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long s = strtoull(value, &end, 0);
        if (end == value || *end || errno || value[0] == '-')
            return s_err(err, errlen, "seed: want an unsigned 64-bit integer, got '%s'", value);
        conf->seed = s;
        return 0;
    }
    return s_err(err, errlen, "unknown option '%s'", key);
}

/* ------------------------------------------------------------------ types */

enum { EP_LISTEN, EP_TIMER, EP_WAKE, EP_CTL_LISTEN, EP_CTL, EP_CONN };

typedef struct s_chunk_t {
    struct s_chunk_t *next;
    uint64_t deliver_ns;        /* earliest delivery time, CLOCK_MONOTONIC ns */
    uint32_t len;               /* payload bytes */
    uint32_t off;               /* bytes already sent */
    int eof;                    /* 1: a FIN marker, no payload */
    unsigned char data[];
} s_chunk_t;

typedef struct {
    s_chunk_t *head, *tail;     /* FIFO of chunks in delivery order */
    size_t buffered;            /* unsent payload bytes in the FIFO */
    uint64_t ser_end_ns;        /* when the emulated wire is free again */
    uint64_t last_deliver_ns;   /* delivery time of the newest chunk */
    int src_eof;                /* EOF read from the source (marker queued) */
    int dst_shut;               /* shutdown(dst, SHUT_WR) done */
    int blocked;                /* last send hit EAGAIN: wait for EPOLLOUT */
} s_dir_t;

struct s_conn_t;

typedef struct {
    int kind;                   /* EP_* */
    int fd;                     /* -1 when closed */
    uint32_t mask;              /* events registered; 0 = not registered */
    int index;                  /* EP_CONN: 0 client, 1 server */
    struct s_conn_t *conn;      /* EP_CONN: owner */
    struct s_ctl_t *ctl;        /* EP_CTL: owner */
} s_ep_t;

typedef struct s_conn_t {
    struct s_conn_t *next;
    s_ep_t ep[2];               /* [0] client side, [1] server side */
    s_dir_t q[2];               /* [SW_LINK_UP] reads ep[0] writes ep[1]; [DOWN] the reverse */
    int connecting;             /* upstream connect in progress */
    int dead;                   /* closed; freed at the end of the iteration */
    uint64_t id;                /* accept ordinal, from 0 */
    uint64_t rng;               /* per-connection PRNG state */
    uint64_t drop_at_ns;        /* random drop time; S_NEVER = none */
    uint64_t budget;            /* bytes left before a budget drop; S_NEVER = none */
} s_conn_t;

typedef struct s_ctl_t {
    struct s_ctl_t *next;
    s_ep_t ep;
    char line[S_CTL_LINE];      /* partial command */
    size_t len;                 /* bytes in line */
    int dead;
} s_ctl_t;

struct sw_link_t {
    sw_link_conf_t conf;                /* live configuration (control may change it) */
    int epfd;
    s_ep_t lis, timer, wake, ctl_lis;
    struct sockaddr_storage up_addr;    /* resolved --connect */
    socklen_t up_len;
    int port;                           /* bound listen port */
    s_conn_t *conns;
    s_ctl_t *ctls;
    int n_ctls;
    sw_link_stats_t st;
    uint64_t timer_armed_ns;            /* 0 = disarmed */
    uint64_t listen_paused_until;       /* 0 = accepting */
    int loglevel;
    atomic_int req_stop;
    atomic_int req_stats;
    unsigned char scratch[S_MAX_CHUNK];
};

/* -------------------------------------------------------------- addresses */

static int s_resolve(const char *text, int passive, struct sockaddr_storage *out, socklen_t *outlen,
                     char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    if (!colon || !colon[1])
        return s_err(err, errlen, "'%s': want HOST:PORT", text);
    size_t hl = (size_t) (colon - text);
    if (hl >= sizeof host)
        return s_err(err, errlen, "'%s': host too long", text);
    memcpy(host, text, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0 || !res)
        return s_err(err, errlen, "'%s': %s", text, rc ? gai_strerror(rc) : "no address");
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void s_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ------------------------------------------------------------------ epoll */

static int s_ep_set(sw_link_t *self, s_ep_t *ep, uint32_t mask)
{
    if (ep->fd < 0 || ep->mask == mask)
        return 0;
    struct epoll_event ev = {.events = mask, .data.ptr = ep};
    int op = mask == 0 ? EPOLL_CTL_DEL : ep->mask == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(self->epfd, op, ep->fd, &ev) != 0) {
        s_log(self->loglevel, 1, "epoll_ctl(fd %d): %s", ep->fd, strerror(errno));
        return -1;
    }
    ep->mask = mask;
    return 0;
}

static void s_ep_close(sw_link_t *self, s_ep_t *ep, int reset)
{
    if (ep->fd < 0)
        return;
    s_ep_set(self, ep, 0);
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(ep->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(ep->fd);
    ep->fd = -1;
}

/* ------------------------------------------------------------ connections */

/*  Closes both sides; reset=1 sends RST (SO_LINGER 0). counter is bumped. */
static void s_conn_end(sw_link_t *self, s_conn_t *c, int reset, uint64_t *counter, const char *why)
{
    if (c->dead)
        return;
    s_ep_close(self, &c->ep[0], reset);
    s_ep_close(self, &c->ep[1], reset);
    c->dead = 1;
    self->st.active--;
    if (counter)
        (*counter)++;
    s_log(self->loglevel, 3, "conn %llu: %s (%s)", (unsigned long long) c->id, reset ? "reset" : "closed", why);
}

static void s_conn_free(s_conn_t *c)
{
    for (int d = 0; d < 2; d++) {
        s_chunk_t *ch = c->q[d].head;
        while (ch) {
            s_chunk_t *next = ch->next;
            free(ch);
            ch = next;
        }
    }
    free(c);
}

/*  Appends a chunk (payload len bytes from data, or a FIN marker when eof)
 *  read at time now, computing its delivery time from the model. */
static int s_dir_push(sw_link_t *self, s_conn_t *c, int d, const void *data, size_t len, int eof, uint64_t now)
{
    s_dir_t *q = &c->q[d];
    const sw_link_dir_conf_t *dc = &self->conf.dir[d];
    s_chunk_t *ch = malloc(sizeof *ch + len);
    if (!ch)
        return -1;
    ch->next = NULL;
    ch->len = (uint32_t) len;
    ch->off = 0;
    ch->eof = eof;
    if (len)
        memcpy(ch->data, data, len);
    uint64_t start = q->ser_end_ns > now ? q->ser_end_ns : now;
    double ser_ns = dc->rate_Bps > 0 ? (double) len * 1e9 / dc->rate_Bps : 0;
    q->ser_end_ns = start + (uint64_t) ser_ns;
    double lat_ms = dc->delay_ms;
    if (dc->jitter_ms > 0)
        lat_ms += (2.0 * s_rng_unit(&c->rng) - 1.0) * dc->jitter_ms;
    if (lat_ms < 0)
        lat_ms = 0;
    uint64_t t = q->ser_end_ns + (uint64_t) (lat_ms * 1e6);
    if (t < q->last_deliver_ns)
        t = q->last_deliver_ns;
    ch->deliver_ns = q->last_deliver_ns = t;
    if (q->tail)
        q->tail->next = ch;
    else
        q->head = ch;
    q->tail = ch;
    q->buffered += len;
    return 0;
}

/*  Whether direction d may read from its source now; when only the wire
 *  backlog forbids it, *resume_ns gets the time it will be allowed. */
static int s_dir_can_read(const sw_link_t *self, const s_conn_t *c, int d, uint64_t now, uint64_t *resume_ns)
{
    const s_dir_t *q = &c->q[d];
    if (c->dead || q->src_eof || c->ep[d].fd < 0)
        return 0;
    if (d == SW_LINK_DOWN && c->connecting)
        return 0;
    if (q->buffered >= self->conf.buffer_bytes)
        return 0;
    if (self->conf.dir[d].rate_Bps > 0) {
        uint64_t qns = (uint64_t) (self->conf.queue_ms * 1e6);
        if (q->ser_end_ns > now + qns) {
            if (resume_ns)
                *resume_ns = q->ser_end_ns - qns;
            return 0;
        }
    }
    return 1;
}

/*  Reads what the model allows from the source of direction d. */
static void s_dir_read(sw_link_t *self, s_conn_t *c, int d, uint64_t now)
{
    s_dir_t *q = &c->q[d];
    for (int iter = 0; iter < 16 && s_dir_can_read(self, c, d, now, NULL); iter++) {
        size_t room = self->conf.buffer_bytes - q->buffered;
        size_t want = room < S_MAX_CHUNK ? room : S_MAX_CHUNK;
        double rate = self->conf.dir[d].rate_Bps;
        if (rate > 0) {
            double pkt = rate / 1000.0;   /* 1 ms of wire time */
            if (pkt < S_MIN_PACKET)
                pkt = S_MIN_PACKET;
            if ((double) want > pkt)
                want = (size_t) pkt;
        }
        ssize_t n = recv(c->ep[d].fd, self->scratch, want, MSG_DONTWAIT);
        if (n > 0) {
            if (s_dir_push(self, c, d, self->scratch, (size_t) n, 0, now)) {
                s_conn_end(self, c, 1, &self->st.aborted, "out of memory");
                return;
            }
            if ((size_t) n < want)
                return;         /* drained; LT epoll tells us about more */
        } else if (n == 0) {
            q->src_eof = 1;
            if (s_dir_push(self, c, d, NULL, 0, 1, now))
                s_conn_end(self, c, 1, &self->st.aborted, "out of memory");
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            s_conn_end(self, c, 1, &self->st.aborted, d == SW_LINK_UP ? "client error" : "server error");
            return;
        }
    }
}

/*  Sends every chunk of direction d whose delivery time has come. */
static void s_dir_flush(sw_link_t *self, s_conn_t *c, int d, uint64_t now)
{
    s_dir_t *q = &c->q[d];
    s_ep_t *dst = &c->ep[1 - d];
    if (c->dead || q->blocked || (d == SW_LINK_UP && c->connecting))
        return;
    while (q->head && q->head->deliver_ns <= now) {
        s_chunk_t *ch = q->head;
        if (ch->eof) {
            shutdown(dst->fd, SHUT_WR);
            q->dst_shut = 1;
        } else {
            size_t want = ch->len - ch->off;
            if (c->budget != S_NEVER && want > c->budget)
                want = (size_t) c->budget;
            ssize_t n = send(dst->fd, ch->data + ch->off, want, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    q->blocked = 1;
                    return;
                }
                s_conn_end(self, c, 1, &self->st.aborted, d == SW_LINK_UP ? "server gone" : "client gone");
                return;
            }
            ch->off += (uint32_t) n;
            q->buffered -= (size_t) n;
            if (d == SW_LINK_UP)
                self->st.bytes_up += (uint64_t) n;
            else
                self->st.bytes_down += (uint64_t) n;
            if (c->budget != S_NEVER) {
                c->budget -= (uint64_t) n;
                if (c->budget == 0) {
                    s_conn_end(self, c, 1, &self->st.dropped_budget, "drop-after budget spent");
                    return;
                }
            }
            if (ch->off < ch->len)
                continue;
        }
        q->head = ch->next;
        if (!q->head)
            q->tail = NULL;
        free(ch);
    }
}

static uint64_t s_min(uint64_t a, uint64_t b) { return a < b ? a : b; }

/*  Delivers due data, applies drops and completion, recomputes interest.
 *  Returns the connection's next deadline (S_NEVER when only events matter). */
static uint64_t s_conn_service(sw_link_t *self, s_conn_t *c, uint64_t now)
{
    if (c->dead)
        return S_NEVER;
    if (c->drop_at_ns != S_NEVER && now >= c->drop_at_ns) {
        s_conn_end(self, c, 1, &self->st.dropped_random, "random drop");
        return S_NEVER;
    }
    s_dir_flush(self, c, SW_LINK_UP, now);
    s_dir_flush(self, c, SW_LINK_DOWN, now);
    if (c->dead)
        return S_NEVER;
    int done = 1;
    for (int d = 0; d < 2; d++)
        done &= c->q[d].src_eof && !c->q[d].head && c->q[d].dst_shut;
    if (done) {
        s_conn_end(self, c, 0, &self->st.closed, "both directions finished");
        return S_NEVER;
    }
    uint64_t deadline = c->drop_at_ns;
    for (int i = 0; i < 2; i++) {
        uint64_t resume = S_NEVER;
        uint32_t mask = 0;
        if (s_dir_can_read(self, c, i, now, &resume))
            mask |= EPOLLIN;
        deadline = s_min(deadline, resume);
        /* ep[i] is the destination of direction 1 - i */
        if ((i == 1 && c->connecting) || c->q[1 - i].blocked)
            mask |= EPOLLOUT;
        s_ep_set(self, &c->ep[i], mask);
        const s_dir_t *q = &c->q[i];
        if (q->head && !q->blocked && !(i == SW_LINK_UP && c->connecting))
            deadline = s_min(deadline, q->head->deliver_ns);
    }
    return deadline;
}

static void s_conn_event(sw_link_t *self, s_ep_t *ep, uint32_t events, uint64_t now)
{
    s_conn_t *c = ep->conn;
    int i = ep->index;
    if (c->dead)
        return;
    if (events & EPOLLERR) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            if (i == 1 && c->connecting) {
                s_log(self->loglevel, 1, "conn %llu: connect to %s: %s", (unsigned long long) c->id,
                      self->conf.connect, strerror(soerr));
                s_conn_end(self, c, 1, &self->st.failed, "connect failed");
            } else {
                s_conn_end(self, c, 1, &self->st.aborted, strerror(soerr));
            }
            return;
        }
    }
    if (i == 1 && c->connecting && (events & (EPOLLOUT | EPOLLHUP))) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr || (events & EPOLLHUP)) {
            s_log(self->loglevel, 1, "conn %llu: connect to %s: %s", (unsigned long long) c->id,
                  self->conf.connect, soerr ? strerror(soerr) : "hang-up");
            s_conn_end(self, c, 1, &self->st.failed, "connect failed");
            return;
        }
        c->connecting = 0;
        return;
    }
    if (events & (EPOLLOUT | EPOLLHUP))
        c->q[1 - i].blocked = 0;
    if ((events & (EPOLLIN | EPOLLHUP)) && s_dir_can_read(self, c, i, now, NULL))
        s_dir_read(self, c, i, now);
}

static void s_accept(sw_link_t *self, uint64_t now)
{
    for (int k = 0; k < 64; k++) {
        int fd = accept4(self->lis.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            s_log(self->loglevel, 1, "accept: %s; pausing accepts for 100 ms", strerror(errno));
            self->listen_paused_until = now + 100000000ull;
            s_ep_set(self, &self->lis, 0);
            return;
        }
        s_nodelay(fd);
        uint64_t id = self->st.accepted++;
        s_conn_t *c = calloc(1, sizeof *c);
        int sfd = c ? socket(self->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
        if (!c || sfd < 0) {
            s_log(self->loglevel, 1, "conn %llu: %s", (unsigned long long) id,
                  c ? strerror(errno) : "out of memory");
            s_ep_t tmp = {.kind = EP_CONN, .fd = fd};
            s_ep_close(self, &tmp, 1);
            free(c);
            self->st.failed++;
            continue;
        }
        s_nodelay(sfd);
        c->id = id;
        c->rng = self->conf.seed ^ (id * 0xd1342543de82ef95ull);
        s_rng_next(&c->rng);
        c->drop_at_ns = S_NEVER;
        if (self->conf.drop_prob > 0) {
            double lambda = -log1p(-self->conf.drop_prob);     /* drops per second */
            double u = 1.0 - s_rng_unit(&c->rng);               /* (0, 1] */
            double secs = -log(u) / lambda;
            if (secs < 1e9)
                c->drop_at_ns = now + (uint64_t) (secs * 1e9);
        }
        c->budget = self->conf.drop_after ? self->conf.drop_after : S_NEVER;
        for (int i = 0; i < 2; i++) {
            c->ep[i].kind = EP_CONN;
            c->ep[i].index = i;
            c->ep[i].conn = c;
        }
        c->ep[0].fd = fd;
        c->ep[1].fd = sfd;
        c->next = self->conns;
        self->conns = c;
        self->st.active++;
        if (connect(sfd, (struct sockaddr *) &self->up_addr, self->up_len) != 0) {
            if (errno == EINPROGRESS || errno == EINTR) {
                c->connecting = 1;
            } else {
                s_log(self->loglevel, 1, "conn %llu: connect to %s: %s", (unsigned long long) id,
                      self->conf.connect, strerror(errno));
                s_conn_end(self, c, 1, &self->st.failed, "connect failed");
                continue;
            }
        }
        s_log(self->loglevel, 3, "conn %llu: accepted", (unsigned long long) id);
    }
}

/* ---------------------------------------------------------------- control */

static void s_ctl_reply(s_ctl_t *t, const char *text)
{
    size_t n = strlen(text);
    /* replies are short; a client that does not read them loses them */
    if (send(t->ep.fd, text, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        t->dead = 1;
}

static void s_ctl_command(sw_link_t *self, s_ctl_t *t, char *line)
{
    char reply[640];
    char *save = NULL;
    char *key = strtok_r(line, " \t\r", &save);
    char *value = strtok_r(NULL, " \t\r", &save);
    char *extra = strtok_r(NULL, " \t\r", &save);
    if (!key) {
        return;
    } else if (strcmp(key, "stats") == 0 && !value) {
        char buf[512];
        sw_link_stats_format(&self->st, buf, sizeof buf);
        snprintf(reply, sizeof reply, "%s\n", buf);
    } else if (strcmp(key, "get") == 0 && !value) {
        const sw_link_dir_conf_t *u = &self->conf.dir[0], *d = &self->conf.dir[1];
        snprintf(reply, sizeof reply,
                 "up-delay=%g up-jitter=%g up-rate=%.0f down-delay=%g down-jitter=%g down-rate=%.0f "
                 "drop-after=%llu drop-prob=%g\n",
                 u->delay_ms, u->jitter_ms, u->rate_Bps, d->delay_ms, d->jitter_ms, d->rate_Bps,
                 (unsigned long long) self->conf.drop_after, self->conf.drop_prob);
    } else if (strcmp(key, "reset-all") == 0 && !value) {
        unsigned n = 0;
        for (s_conn_t *c = self->conns; c; c = c->next)
            if (!c->dead) {
                s_conn_end(self, c, 1, &self->st.dropped_random, "reset-all");
                n++;
            }
        snprintf(reply, sizeof reply, "ok %u\n", n);
    } else if (extra || !value || strcmp(key, "listen") == 0 || strcmp(key, "connect") == 0 ||
               strcmp(key, "control") == 0) {
        snprintf(reply, sizeof reply, "error: want 'KEY VALUE', 'get', 'stats' or 'reset-all'\n");
    } else {
        char err[256];
        sw_link_conf_t next = self->conf;
        if (sw_link_conf_set(&next, key, value, err, sizeof err) == 0) {
            self->conf = next;
            snprintf(reply, sizeof reply, "ok\n");
            s_log(self->loglevel, 2, "control: %s %s", key, value);
        } else {
            snprintf(reply, sizeof reply, "error: %s\n", err);
        }
    }
    s_ctl_reply(t, reply);
}

static void s_ctl_event(sw_link_t *self, s_ctl_t *t)
{
    if (t->dead)
        return;
    ssize_t n = recv(t->ep.fd, t->line + t->len, sizeof t->line - 1 - t->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        t->dead = 1;
        return;
    }
    t->len += (size_t) n;
    t->line[t->len] = 0;
    char *start = t->line, *nl;
    while (!t->dead && (nl = strchr(start, '\n')) != NULL) {
        *nl = 0;
        s_ctl_command(self, t, start);
        start = nl + 1;
    }
    t->len = strlen(start);
    memmove(t->line, start, t->len + 1);
    if (t->len >= sizeof t->line - 1) {
        s_ctl_reply(t, "error: line too long\n");
        t->dead = 1;
    }
}

static void s_ctl_accept(sw_link_t *self)
{
    int fd = accept4(self->ctl_lis.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    s_ctl_t *t = self->n_ctls < S_MAX_CTL ? calloc(1, sizeof *t) : NULL;
    if (!t) {
        close(fd);
        return;
    }
    t->ep.kind = EP_CTL;
    t->ep.fd = fd;
    t->ep.ctl = t;
    t->next = self->ctls;
    self->ctls = t;
    self->n_ctls++;
    s_ep_set(self, &t->ep, EPOLLIN);
}

/* -------------------------------------------------------------- lifecycle */

sw_link_t *sw_link_new(const sw_link_conf_t *conf, char *err, size_t errlen)
{
    if (!conf || !conf->listen[0] || !conf->connect[0]) {
        s_err(err, errlen, "both --listen and --connect are required");
        return NULL;
    }
    sw_link_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    self->conf = *conf;
    self->epfd = -1;
    self->lis = (s_ep_t) {.kind = EP_LISTEN, .fd = -1};
    self->timer = (s_ep_t) {.kind = EP_TIMER, .fd = -1};
    self->wake = (s_ep_t) {.kind = EP_WAKE, .fd = -1};
    self->ctl_lis = (s_ep_t) {.kind = EP_CTL_LISTEN, .fd = -1};
    self->loglevel = 2;
    const char *lv = getenv("SWISD_LOG");
    if (lv)
        self->loglevel = !strcmp(lv, "error") ? 0 : !strcmp(lv, "warn") ? 1 : !strcmp(lv, "debug") ? 3 : 2;

    struct sockaddr_storage la;
    socklen_t ll = 0;
    if (s_resolve(conf->connect, 0, &self->up_addr, &self->up_len, err, errlen) ||
        s_resolve(conf->listen, 1, &la, &ll, err, errlen))
        goto fail;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    self->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    self->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->lis.fd = socket(la.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->epfd < 0 || self->timer.fd < 0 || self->wake.fd < 0 || self->lis.fd < 0) {
        s_err(err, errlen, "epoll/timerfd/eventfd/socket: %s", strerror(errno));
        goto fail;
    }
    int one = 1;
    setsockopt(self->lis.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(self->lis.fd, (struct sockaddr *) &la, ll) != 0 || listen(self->lis.fd, 512) != 0) {
        s_err(err, errlen, "listen on %s: %s", conf->listen, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    getsockname(self->lis.fd, (struct sockaddr *) &bound, &bl);
    self->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                   : ((struct sockaddr_in *) &bound)->sin_port);
    if (conf->control[0]) {
        struct sockaddr_un ua;
        memset(&ua, 0, sizeof ua);
        ua.sun_family = AF_UNIX;
        memcpy(ua.sun_path, conf->control, strlen(conf->control) + 1);
        struct stat sb;
        if (stat(conf->control, &sb) == 0 && S_ISSOCK(sb.st_mode))
            unlink(conf->control);          /* stale socket from an earlier run */
        self->ctl_lis.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (self->ctl_lis.fd < 0 || bind(self->ctl_lis.fd, (struct sockaddr *) &ua, sizeof ua) != 0 ||
            listen(self->ctl_lis.fd, 16) != 0) {
            s_err(err, errlen, "control socket %s: %s", conf->control, strerror(errno));
            goto fail;
        }
    }
    if (s_ep_set(self, &self->lis, EPOLLIN) || s_ep_set(self, &self->timer, EPOLLIN) ||
        s_ep_set(self, &self->wake, EPOLLIN) || (self->ctl_lis.fd >= 0 && s_ep_set(self, &self->ctl_lis, EPOLLIN))) {
        s_err(err, errlen, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    return self;
fail:
    sw_link_destroy(&self);
    return NULL;
}

void sw_link_destroy(sw_link_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_link_t *self = *self_p;
    while (self->conns) {
        s_conn_t *c = self->conns;
        self->conns = c->next;
        s_conn_end(self, c, 0, NULL, "shutdown");
        s_conn_free(c);
    }
    while (self->ctls) {
        s_ctl_t *t = self->ctls;
        self->ctls = t->next;
        s_ep_close(self, &t->ep, 0);
        free(t);
    }
    s_ep_close(self, &self->lis, 0);
    s_ep_close(self, &self->timer, 0);
    s_ep_close(self, &self->wake, 0);
    if (self->ctl_lis.fd >= 0) {
        s_ep_close(self, &self->ctl_lis, 0);
        unlink(self->conf.control);
    }
    if (self->epfd >= 0)
        close(self->epfd);
    free(self);
    *self_p = NULL;
}

int sw_link_port(const sw_link_t *self)
{
    return self ? self->port : -1;
}

void sw_link_request(sw_link_t *self, int req)
{
    if (!self)
        return;
    if (req == SW_LINK_REQ_STOP)
        atomic_store(&self->req_stop, 1);
    else if (req == SW_LINK_REQ_STATS)
        atomic_store(&self->req_stats, 1);
    uint64_t one = 1;
    ssize_t rc = write(self->wake.fd, &one, sizeof one);
    (void) rc;
}

void sw_link_stats(const sw_link_t *self, sw_link_stats_t *out)
{
    if (self && out)
        *out = self->st;
}

char *sw_link_stats_format(const sw_link_stats_t *st, char *buf, size_t len)
{
    snprintf(buf, len,
             "connections accepted=%llu active=%llu closed=%llu dropped_budget=%llu dropped_random=%llu "
             "failed=%llu aborted=%llu bytes up=%llu down=%llu",
             (unsigned long long) st->accepted, (unsigned long long) st->active,
             (unsigned long long) st->closed, (unsigned long long) st->dropped_budget,
             (unsigned long long) st->dropped_random, (unsigned long long) st->failed,
             (unsigned long long) st->aborted, (unsigned long long) st->bytes_up,
             (unsigned long long) st->bytes_down);
    return buf;
}

static void s_print_stats(const sw_link_t *self)
{
    char buf[512];
    fprintf(stderr, "[swisd-link STATS] %s\n", sw_link_stats_format(&self->st, buf, sizeof buf));
}

/*  Frees dead connections and control clients. */
static void s_reap(sw_link_t *self)
{
    for (s_conn_t **pc = &self->conns; *pc;) {
        s_conn_t *c = *pc;
        if (c->dead) {
            *pc = c->next;
            s_conn_free(c);
        } else {
            pc = &c->next;
        }
    }
    for (s_ctl_t **pt = &self->ctls; *pt;) {
        s_ctl_t *t = *pt;
        if (t->dead) {
            *pt = t->next;
            s_ep_close(self, &t->ep, 0);
            free(t);
            self->n_ctls--;
        } else {
            pt = &t->next;
        }
    }
}

static int s_arm_timer(sw_link_t *self, uint64_t deadline)
{
    uint64_t want = deadline == S_NEVER ? 0 : deadline;
    if (want == self->timer_armed_ns)
        return 0;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t) (want / 1000000000ull);
    its.it_value.tv_nsec = (long) (want % 1000000000ull);
    if (timerfd_settime(self->timer.fd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        return -1;
    self->timer_armed_ns = want;
    return 0;
}

int sw_link_run(sw_link_t *self)
{
    struct epoll_event evs[64];
    while (!atomic_load(&self->req_stop)) {
        uint64_t now = s_now_ns();
        uint64_t deadline = S_NEVER;
        for (s_conn_t *c = self->conns; c; c = c->next)
            deadline = s_min(deadline, s_conn_service(self, c, now));
        s_reap(self);
        if (self->listen_paused_until) {
            if (now >= self->listen_paused_until) {
                self->listen_paused_until = 0;
                s_ep_set(self, &self->lis, EPOLLIN);
            } else {
                deadline = s_min(deadline, self->listen_paused_until);
            }
        }
        if (s_arm_timer(self, deadline) != 0) {
            s_log(self->loglevel, 0, "timerfd_settime: %s", strerror(errno));
            return -1;
        }
        int n = epoll_wait(self->epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s_log(self->loglevel, 0, "epoll_wait: %s", strerror(errno));
            return -1;
        }
        now = s_now_ns();
        for (int k = 0; k < n; k++) {
            s_ep_t *ep = evs[k].data.ptr;
            uint64_t junk;
            switch (ep->kind) {
            case EP_LISTEN:
                s_accept(self, now);
                break;
            case EP_TIMER:
                if (read(ep->fd, &junk, sizeof junk) > 0)
                    self->timer_armed_ns = 0;
                break;
            case EP_WAKE:
                if (read(ep->fd, &junk, sizeof junk) < 0) {
                    /* nothing pending; flags are checked below */
                }
                break;
            case EP_CTL_LISTEN:
                s_ctl_accept(self);
                break;
            case EP_CTL:
                s_ctl_event(self, ep->ctl);
                break;
            case EP_CONN:
                s_conn_event(self, ep, evs[k].events, now);
                break;
            }
        }
        if (atomic_exchange(&self->req_stats, 0))
            s_print_stats(self);
    }
    return 0;
}
