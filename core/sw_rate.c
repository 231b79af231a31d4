/*  sw_rate.c: token bucket (see sw_rate.h). */
#include "sw_rate.h"

static void s_refill(sw_rate_t *r, uint64_t now_ns)
{
    if (now_ns > r->last_ns) {
        r->tokens += r->rate_Bps * (double) (now_ns - r->last_ns) / 1e9;
        if (r->tokens > r->burst_bytes)
            r->tokens = r->burst_bytes;
        r->last_ns = now_ns;
    }
}

void sw_rate_init(sw_rate_t *r, uint32_t kbps, uint64_t now_ns)
{
    r->rate_Bps = (double) kbps * 125.0;
    r->burst_bytes = r->rate_Bps / 8.0 > 1500.0 ? r->rate_Bps / 8.0 : 1500.0;
    r->tokens = r->burst_bytes;
    r->last_ns = now_ns;
}

bool sw_rate_enabled(const sw_rate_t *r) { return r->rate_Bps > 0; }

void sw_rate_spend(sw_rate_t *r, size_t bytes, uint64_t now_ns)
{
    if (!sw_rate_enabled(r))
        return;
    s_refill(r, now_ns);
    r->tokens -= (double) bytes;
}

uint64_t sw_rate_wait_ns(sw_rate_t *r, uint64_t now_ns)
{
    if (!sw_rate_enabled(r))
        return 0;
    s_refill(r, now_ns);
    if (r->tokens >= 0)
        return 0;
    return (uint64_t) (-r->tokens / r->rate_Bps * 1e9) + 1;
}
