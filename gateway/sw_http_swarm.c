/*  sw_http_swarm.c: the dashboard's swarm JSON (see sw_http_swarm.h). */
#include "sw_http_swarm.h"

#include <jansson.h>
#include <string.h>

/* The replies of node_id that did not open with its key (0 when not among the
 * last counted) */
static uint64_t s_unsealed(const sw_client_swarm_t *w, const char *node_id)
{
    for (int i = 0; i < w->n_unsealed; i++)
        if (w->unsealed_node[i] && !strcmp(w->unsealed_node[i], node_id))
            return w->unsealed_count[i];
    return 0;
}

char *sw_http_swarm_json(const sw_client_swarm_t *w)
{
    json_t *o = json_object(), *stages = json_array(), *sessions = json_array(), *gaps = json_array();
    if (!o || !stages || !sessions || !gaps) {
        json_decref(o), json_decref(stages), json_decref(sessions), json_decref(gaps);
        return NULL;
    }
    for (int i = 0; i < w->n_stages; i++) {
        const sw_client_stage_t *st = &w->stages[i];
        json_array_append_new(
            stages, json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:f, s:I, s:I, s:f, s:{s:I, s:I, s:I, s:f}, "
                              "s:I}",
                              "node_id", st->node_id, "display_name", st->display_name ? st->display_name : "", "region", st->region, "broker_id", st->broker_id, "model_id",
                              st->model_id, "layers", "begin", (json_int_t) st->begin, "end", (json_int_t) st->end,
                              "rtt_ms", (double) st->rtt_ms, "age_ms", (json_int_t) st->age_ms, "threads",
                              (json_int_t) st->threads, "ms_per_layer", (double) st->ms_per_layer, "load",
                              "active_sessions", (json_int_t) st->active_sessions, "queued_requests",
                              (json_int_t) st->queued_requests, "kv_bytes", (json_int_t) st->kv_bytes, "busy",
                              (double) st->busy, "unsealed_replies", (json_int_t) s_unsealed(w, st->node_id)));
        json_t *jst = json_array_get(stages, json_array_size(stages) - 1);
        if (jst && st->audit_stage)
            json_object_set_new(jst, "audit_stage", json_true());
        if (jst && st->has_trust) /* verification: what the gateway's audits say of this stage */
            json_object_set_new(jst, "trust", json_pack("{s:I, s:I, s:f, s:b}", "verified", (json_int_t) st->verified,
                                                        "failed", (json_int_t) st->failed, "audit_rate",
                                                        (double) st->audit_rate, "trusted", st->trusted));
    }
    for (int i = 0; i < w->n_sessions; i++)
        json_array_append_new(sessions, json_pack("{s:s, s:I, s:f, s:f}", "session_id", w->sessions[i].session_id,
                                                  "tokens", (json_int_t) w->sessions[i].tokens, "tokens_per_s",
                                                  (double) w->sessions[i].tokens_per_s, "acceptance_rate",
                                                  (double) w->sessions[i].acceptance_rate));
    for (int i = 0; i < w->n_gaps; i++)
        json_array_append_new(gaps, json_pack("{s:I, s:I}", "begin", (json_int_t) w->gaps[i][0], "end",
                                              (json_int_t) w->gaps[i][1]));
    json_object_set_new(o, "gateway", json_pack("{s:s, s:s}", "id", w->gateway_id, "region", w->region));
    /* the key clients dial the RPC with (tcp://HOST:PORT#KEY); "" when --insecure */
    /* replies rejected because they did not open with the answering stage's key (docs/security.md) */
    json_object_set_new(o, "unsealed_replies_total", json_integer((json_int_t) w->unsealed_replies_total));
    json_object_set_new(o, "gateway_key", json_string(w->gateway_key ? w->gateway_key : ""));
    json_object_set_new(o, "model", json_pack("{s:s, s:I, s:I, s:I, s:s}", "id", w->model_id, "n_layer",
                                              (json_int_t) w->n_layer, "n_embd", (json_int_t) w->n_embd, "n_vocab",
                                              (json_int_t) w->n_vocab, "checksum", w->checksum));
    json_object_set_new(o, "servable", json_boolean(w->n_gaps == 0 && w->n_layer > 0));
    json_t *hist = json_array();
    for (int i = 0; i < w->n_recent; i++) {
        const sw_client_sample_t *x = &w->recent[i];
        json_array_append_new(hist, json_pack("{s:f, s:I, s:I, s:f, s:f, s:f}", "t_ms", x->end_unix_ms,
                                              "prompt_tokens", (json_int_t) x->prompt_tokens, "completion_tokens",
                                              (json_int_t) x->completion_tokens, "tokens_per_s",
                                              (double) x->decode_tokens_per_s, "ttft_ms", (double) x->ttft_ms,
                                              "acceptance_rate", (double) x->acceptance_rate));
    }
    json_object_set_new(o, "history", hist);
    json_object_set_new(o, "gateway_totals", json_pack("{s:I, s:I}", "completions", (json_int_t) w->generations_total,
                                                       "tokens", (json_int_t) w->tokens_generated_total));
    json_object_set_new(o, "gaps", gaps);
    if (w->has_audit) {
        json_t *caught = json_array(), *unverified = json_array();
        for (int i = 0; i < w->n_caught; i++)
            json_array_append_new(caught, json_string(w->caught[i]));
        for (int i = 0; i < w->n_unverified; i++)
            json_array_append_new(unverified, json_pack("{s:I, s:I}", "begin", (json_int_t) w->unverified[i][0],
                                                        "end", (json_int_t) w->unverified[i][1]));
        json_object_set_new(o, "audit",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:o, s:o}", "started",
                                      (json_int_t) w->audits_started, "passed", (json_int_t) w->audits_passed,
                                      "failed", (json_int_t) w->audits_failed, "chain_breaks",
                                      (json_int_t) w->chain_breaks, "unverifiable", (json_int_t) w->unverifiable,
                                      "delivered_differs", (json_int_t) w->delivered_differs,
                                      "max_agreeing_distance", (double) w->max_agreeing_distance, "threshold",
                                      (double) w->audit_threshold, "caught", caught, "unverified", unverified));
    }
    json_object_set_new(o, "stages", stages);
    json_object_set_new(o, "sessions", sessions);
    if (!o || !stages || !sessions || !gaps || !hist) { /* out of memory */
        json_decref(o);
        return NULL;
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}
