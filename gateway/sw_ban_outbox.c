/*  sw_ban_outbox.c: bans a gateway decided, on their way to its broker (see sw_ban_outbox.h). */
#include "sw_ban_outbox.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_common.h"

struct sw_ban_outbox_t {
    pthread_mutex_t mu;
    sw_ban_notice_t q[SW_BAN_OUTBOX_MAX]; /* ring of waiting notices */
    size_t head, n;                       /* oldest slot, count */
};

sw_ban_outbox_t *sw_ban_outbox_new(void)
{
    sw_ban_outbox_t *self = calloc(1, sizeof *self);
    if (self)
        pthread_mutex_init(&self->mu, NULL);
    return self;
}

void sw_ban_outbox_destroy(sw_ban_outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pthread_mutex_destroy(&(*self_p)->mu);
    free(*self_p);
    *self_p = NULL;
}

int sw_ban_outbox_ban(sw_ban_outbox_t *self, struct sw_bans_t *bans, const char *id, bool on, uint64_t duration_s,
                      const char *reason, char *err, size_t errlen)
{
    if (!id || !id[0] || strlen(id) > SW_BANS_ID_MAX)
        return sw_err(err, errlen, "a node id of 1..%d bytes is needed", SW_BANS_ID_MAX);
    if (on && (duration_s == 0 || duration_s > SW_BAN_MAX_S))
        return sw_err(err, errlen, "a ban lasts 1 s to %u days", SW_BAN_MAX_S / 86400u);
    pthread_mutex_lock(&self->mu);
    const bool full = self->n >= SW_BAN_OUTBOX_MAX;
    pthread_mutex_unlock(&self->mu);
    if (full)
        return sw_err(err, errlen, "%d ban notices wait for the broker already", SW_BAN_OUTBOX_MAX);
    const int rc = bans ? sw_bans_set(bans, id, true, on, reason, err, errlen) : 1;
    if (rc < 0)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sw_ban_notice_t b = {.until_unix_s = on ? (uint64_t) ts.tv_sec + duration_s : 0,
                         .issued_unix_ms = (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u};
    snprintf(b.id, sizeof b.id, "%s", id);
    snprintf(b.reason, sizeof b.reason, "%s", reason ? reason : "");
    pthread_mutex_lock(&self->mu);
    if (self->n < SW_BAN_OUTBOX_MAX) /* else another thread filled it meanwhile: the local ban holds */
        self->q[(self->head + self->n++) % SW_BAN_OUTBOX_MAX] = b;
    pthread_mutex_unlock(&self->mu);
    return rc;
}

bool sw_ban_outbox_front(sw_ban_outbox_t *self, sw_ban_notice_t *out)
{
    pthread_mutex_lock(&self->mu);
    const bool any = self->n > 0;
    if (any)
        *out = self->q[self->head];
    pthread_mutex_unlock(&self->mu);
    return any;
}

void sw_ban_outbox_pop(sw_ban_outbox_t *self)
{
    pthread_mutex_lock(&self->mu);
    if (self->n) {
        self->head = (self->head + 1) % SW_BAN_OUTBOX_MAX;
        self->n--;
    }
    pthread_mutex_unlock(&self->mu);
}

size_t sw_ban_outbox_size(sw_ban_outbox_t *self)
{
    pthread_mutex_lock(&self->mu);
    const size_t n = self->n;
    pthread_mutex_unlock(&self->mu);
    return n;
}
