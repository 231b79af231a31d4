/*  sw_recent.c: ring of finished generations (see sw_recent.h). */
#include "sw_recent.h"

#include <stdlib.h>

struct sw_recent_t {
    sw_recent_sample_t *ring;      /* (cap) samples; the oldest at next when full */
    size_t cap, next, n;           /* capacity, slot written next, samples held */
    uint64_t generations, tokens;  /* totals ever added */
};

sw_recent_t *sw_recent_new(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    sw_recent_t *self = calloc(1, sizeof *self);
    if (!self || !(self->ring = calloc(capacity, sizeof *self->ring))) {
        free(self);
        return NULL;
    }
    self->cap = capacity;
    return self;
}

void sw_recent_destroy(sw_recent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->ring);
    free(*self_p);
    *self_p = NULL;
}

void sw_recent_add(sw_recent_t *self, const sw_recent_sample_t *sample)
{
    self->ring[self->next] = *sample;
    self->next = (self->next + 1) % self->cap;
    if (self->n < self->cap)
        self->n++;
    self->generations++;
    self->tokens += sample->completion_tokens;
}

size_t sw_recent_count(const sw_recent_t *self)
{
    return self->n;
}

const sw_recent_sample_t *sw_recent_get(const sw_recent_t *self, size_t i)
{
    if (i >= self->n)
        return NULL;
    return &self->ring[(self->next + self->cap - self->n + i) % self->cap];
}

uint64_t sw_recent_generations_total(const sw_recent_t *self)
{
    return self->generations;
}

uint64_t sw_recent_tokens_total(const sw_recent_t *self)
{
    return self->tokens;
}
