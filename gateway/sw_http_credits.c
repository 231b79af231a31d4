/*  sw_http_credits.c: what the HTTP front shows and grants of credits (see
 *  sw_http.h): GET /api/credits, the contributors' leaderboard
 *  (docs/protocol.md, "Credits JSON"), and API tokens on requests of the
 *  API: a valid token is metered per key with its credit boost, a bad one
 *  is refused.
 */
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sw_api_token.h"
#include "sw_common.h"
#include "sw_http_internal.h"
#include "sw_openai.h"
#include "sw_reputation.h"
#include "sw_state_db.h"

#define S_MAX_ROWS 1000 /* keys the leaderboard lists (the rest are counted) */

/* The boost of a key with granted credit: 1 + F x min(1, granted / full). */
static double s_boost(const sw_http_t *h, double granted)
{
    const double share = granted > 0 ? (granted < h->cfg.credit_full ? granted / h->cfg.credit_full : 1) : 0;
    return 1 + h->cfg.credit_boost * share;
}

/* The value of "Authorization: Bearer VALUE" ("bearer" in any case, spaces
 * after it), or NULL. */
static const char *s_bearer_value(struct MHD_Connection *c)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7))
        return NULL;
    auth += 7;
    while (*auth == ' ')
        auth++;
    return auth;
}

bool sw__http_bearer(sw_http_t *h, struct MHD_Connection *c, sw__http_req_t *rq, enum MHD_Result *res)
{
    const char *token = h->cfg.tokens ? s_bearer_value(c) : NULL;
    if (!token || !sw_api_token_format_ok(token))
        return true; /* anonymous: no token, or an OpenAI SDK's placeholder key */
    char id[SW_API_TOKEN_ID_MAX + 1], err[256] = "";
    const sw_api_token_result_t r = sw_api_token_check(h->cfg.tokens, token, sw_state_db_unix_s(), id, err, sizeof err);
    if (r == SW_API_TOKEN_VALID) {
        sw_reputation_row_t row;
        const double granted = h->cfg.reputation && sw_reputation_row(h->cfg.reputation, id, &row, NULL, 0) == 1
                                   ? row.granted : 0;
        rq->keyed = true;
        snprintf(rq->key_id, sizeof rq->key_id, "%s", id);
        memset(&rq->meter_key, 0, sizeof rq->meter_key); /* the fingerprint's 16 characters are the key */
        memcpy(rq->meter_key.bytes, id, strlen(id) < 16 ? strlen(id) : 16);
        rq->meter_key.len = 16;
        rq->scale = 1 / s_boost(h, granted);
        return true;
    }
    if (r == SW_API_TOKEN_ERROR) {
        sw_log(SW_LOG_WARN, "http: cannot check an API token: %s", err);
        *res = sw__http_error(c, 500, "server_error", "cannot check the API token now", NULL);
        return false;
    }
    /* unknown or expired: charged to the address as one request, so guessing costs what asking does */
    if (!sw__http_admit(h, c, rq, 0, res))
        return false;
    pthread_mutex_lock(&h->mu);
    h->n.api_token_refused++;
    pthread_mutex_unlock(&h->mu);
    *res = sw__http_error_with(c, 401, "authentication_error",
                               r == SW_API_TOKEN_EXPIRED ? "the API token has expired; get a new one with `swisd token`"
                                                         : "the API token is unknown to this gateway",
                               "WWW-Authenticate", "Bearer realm=\"swisd-api\"");
    return false;
}

/* One key's record as JSON. */
static json_t *s_row_json(const sw_reputation_row_t *x)
{
    return json_pack("{s:s, s:s, s:f, s:f, s:f, s:I, s:I, s:I, s:f, s:b, s:f, s:f, s:f}", "node_id", x->id,
                     "display_name", x->display_name, "granted", x->granted, "pending", x->pending, "clawed_back",
                     x->clawed_back, "verified", (json_int_t) x->verified, "failed", (json_int_t) x->failed,
                     "consecutive", (json_int_t) x->consecutive, "audit_rate", x->audit_rate, "trusted", x->trusted,
                     "banned_until", x->banned_until, "first_seen", x->first_seen, "last_seen", x->last_seen);
}

enum MHD_Result sw__http_credits(sw_http_t *h, struct MHD_Connection *c)
{
    sw_reputation_row_t *rows = malloc(S_MAX_ROWS * sizeof *rows);
    if (!rows)
        return sw__http_error(c, 500, "server_error", "out of memory in the HTTP server", NULL);
    char err[512] = "";
    const int n = sw_reputation_list(h->cfg.reputation, rows, S_MAX_ROWS, err, sizeof err);
    if (n < 0) {
        free(rows);
        sw_log(SW_LOG_WARN, "http: /api/credits: %s", err);
        return sw__http_error(c, 500, "server_error", "cannot read the credits now", NULL);
    }
    json_t *a = json_array();
    for (int i = 0; a && i < n && i < S_MAX_ROWS; i++) {
        json_t *r = s_row_json(&rows[i]);
        if (!r) /* a display name jansson refuses (not UTF-8: it is checked printable ASCII, so never) */
            continue;
        if (json_array_append_new(a, r) != 0)
            json_decref(a), a = NULL;
    }
    free(rows);
    const sw_reputation_policy_t p = sw_reputation_policy(h->cfg.reputation);
    json_t *o = a ? json_pack("{s:o, s:i, s:{s:i, s:f, s:f, s:f}, s:{s:f, s:f}, s:f}", "contributors", a, "total", n,
                              "policy", "n_trust", p.n_trust, "rate_floor", p.rate_floor, "ban_s", p.ban_s,
                              "audit_window_s", p.audit_window_s, "boost", "credit_boost", h->cfg.credit_boost,
                              "credit_full", h->cfg.credit_full, "time", sw_state_db_unix_s())
                  : NULL;
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return sw__http_error(c, 500, "server_error", "cannot build the response", NULL);
    return sw__http_send(c, 200, "application/json", text, NULL);
}
