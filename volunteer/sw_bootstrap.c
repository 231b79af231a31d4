/*  sw_bootstrap.c: brokers and models to start from (see sw_bootstrap.h). */
#include "sw_bootstrap.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_broker_client.h"
#include "sw_common.h"
#include "sw_endpoint.h"
#include "sw_fetch_text.h"

struct sw_bootstrap_t {
    sw_bootstrap_broker_t brokers[SW_BOOTSTRAP_MAX_BROKERS];
    size_t n_brokers;
    sw_bootstrap_model_t models[SW_BOOTSTRAP_MAX_MODELS];
    size_t n_models;
};

/* Copies the string member `key` of o into out (outlen bytes with the NUL);
 * absent: "" when optional, else an error. Returns 0 or -1 (reason in err). */
static int s_str(const char *name, const json_t *o, const char *key, bool optional, char *out, size_t outlen,
                 char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    out[0] = 0;
    if (!v)
        return optional ? 0 : sw_err(err, errlen, "%s: an entry has no \"%s\"", name, key);
    if (!json_is_string(v))
        return sw_err(err, errlen, "%s: \"%s\" is not a string", name, key);
    if (json_string_length(v) >= outlen || strlen(json_string_value(v)) != json_string_length(v))
        return sw_err(err, errlen, "%s: \"%s\" is longer than %zu bytes (or holds a NUL)", name, key, outlen - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* The daemons' bootstrap file (daemon/sw_daemon_keys.h, packaging/etc/bootstrap.txt): one endpoint per
 * line, '#' comments and blank lines skipped; no models. */
static sw_bootstrap_t *s_parse_lines(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    sw_bootstrap_t *self = calloc(1, sizeof *self);
    if (!self) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    size_t at = 0;
    for (int line = 1; at < len; line++) {
        size_t end = at;
        while (end < len && text[end] != '\n')
            end++;
        size_t a = at, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r'))
            b--;
        at = end + 1;
        if (a == b || text[a] == '#')
            continue;
        if (self->n_brokers == SW_BOOTSTRAP_MAX_BROKERS) {
            sw_err(err, errlen, "%s: more than %d brokers", name, SW_BOOTSTRAP_MAX_BROKERS);
            goto fail;
        }
        sw_bootstrap_broker_t *o = &self->brokers[self->n_brokers];
        if (b - a >= sizeof o->endpoint || memchr(text + a, 0, b - a)) {
            sw_err(err, errlen, "%s: line %d: not an endpoint (too long or a NUL byte)", name, line);
            goto fail;
        }
        memcpy(o->endpoint, text + a, b - a);
        o->endpoint[b - a] = 0;
        sw_endpoint_t ep;
        char why[256];
        if (sw_endpoint_parse(o->endpoint, false, &ep, why, sizeof why) != 0) {
            sw_err(err, errlen, "%s: line %d: %s", name, line, why);
            goto fail;
        }
        o->rtt_ms = -1;
        self->n_brokers++;
    }
    if (self->n_brokers == 0) {
        sw_err(err, errlen, "%s: no broker line (tcp://HOST:PORT#KEY)", name);
        goto fail;
    }
    return self;
fail:
    free(self);
    return NULL;
}

sw_bootstrap_t *sw_bootstrap_parse(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    if (len > SW_BOOTSTRAP_MAX_BYTES) {
        sw_err(err, errlen, "%s: %zu bytes, more than the %u allowed", name, len, SW_BOOTSTRAP_MAX_BYTES);
        return NULL;
    }
    size_t lead = 0;
    while (lead < len && (text[lead] == ' ' || text[lead] == '\t' || text[lead] == '\r' || text[lead] == '\n'))
        lead++;
    if (lead < len && text[lead] != '{')
        return s_parse_lines(name, text, len, err, errlen);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        sw_err(err, errlen, "%s: not JSON (line %d: %s)", name, je.line, je.text);
        return NULL;
    }
    sw_bootstrap_t *self = calloc(1, sizeof *self);
    if (!self) {
        sw_err(err, errlen, "out of memory");
        json_decref(root);
        return NULL;
    }
    const json_t *brokers = json_object_get(root, "brokers"), *models = json_object_get(root, "models");
    if (!json_is_object(root) || !json_is_array(brokers) || json_array_size(brokers) == 0 ||
        json_array_size(brokers) > SW_BOOTSTRAP_MAX_BROKERS) {
        sw_err(err, errlen, "%s: expected an object with \"brokers\": an array of 1..%d entries", name,
               SW_BOOTSTRAP_MAX_BROKERS);
        goto fail;
    }
    if (models && (!json_is_array(models) || json_array_size(models) > SW_BOOTSTRAP_MAX_MODELS)) {
        sw_err(err, errlen, "%s: \"models\" must be an array of at most %d entries", name, SW_BOOTSTRAP_MAX_MODELS);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(brokers); i++) {
        const json_t *b = json_array_get(brokers, i);
        sw_bootstrap_broker_t *o = &self->brokers[self->n_brokers];
        if (!json_is_object(b)) {
            sw_err(err, errlen, "%s: brokers[%zu] is not an object", name, i);
            goto fail;
        }
        if (s_str(name, b, "endpoint", false, o->endpoint, sizeof o->endpoint, err, errlen) != 0 ||
            s_str(name, b, "region", true, o->region, sizeof o->region, err, errlen) != 0)
            goto fail;
        sw_endpoint_t ep;
        char why[256];
        if (sw_endpoint_parse(o->endpoint, false, &ep, why, sizeof why) != 0) {
            sw_err(err, errlen, "%s: brokers[%zu]: %s", name, i, why);
            goto fail;
        }
        o->rtt_ms = -1;
        self->n_brokers++;
    }
    for (size_t i = 0; i < json_array_size(models); i++) {
        const json_t *m = json_array_get(models, i);
        sw_bootstrap_model_t *o = &self->models[self->n_models];
        if (!json_is_object(m)) {
            sw_err(err, errlen, "%s: models[%zu] is not an object", name, i);
            goto fail;
        }
        if (s_str(name, m, "id", false, o->id, sizeof o->id, err, errlen) != 0 ||
            s_str(name, m, "manifest", true, o->manifest, sizeof o->manifest, err, errlen) != 0 ||
            s_str(name, m, "signer", true, o->signer, sizeof o->signer, err, errlen) != 0)
            goto fail;
        self->n_models++;
    }
    json_decref(root);
    return self;
fail:
    json_decref(root);
    free(self);
    return NULL;
}

sw_bootstrap_t *sw_bootstrap_load(const char *source, int timeout_s, char *err, size_t errlen)
{
    if (!source || !source[0]) {
        sw_err(err, errlen, "no bootstrap source");
        return NULL;
    }
    size_t len = 0;
    char *text = sw_fetch_text(source, SW_BOOTSTRAP_MAX_BYTES, timeout_s > 0 ? timeout_s : 10, &len, err, errlen);
    if (!text)
        return NULL;
    sw_bootstrap_t *self = sw_bootstrap_parse(source, text, len, err, errlen);
    free(text);
    return self;
}

void sw_bootstrap_destroy(sw_bootstrap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

size_t sw_bootstrap_n_brokers(const sw_bootstrap_t *self) { return self->n_brokers; }

const sw_bootstrap_broker_t *sw_bootstrap_broker(const sw_bootstrap_t *self, size_t i)
{
    return i < self->n_brokers ? &self->brokers[i] : NULL;
}

size_t sw_bootstrap_n_models(const sw_bootstrap_t *self) { return self->n_models; }

const sw_bootstrap_model_t *sw_bootstrap_model(const sw_bootstrap_t *self, size_t i)
{
    return i < self->n_models ? &self->models[i] : NULL;
}

int sw_bootstrap_pick(sw_bootstrap_t *self, const sw_identity_t *identity, int timeout_ms, char *err, size_t errlen)
{
    sw_broker_client_t *bc[SW_BOOTSTRAP_MAX_BROKERS] = {0};
    zpoller_t *poller = zpoller_new(NULL);
    if (!poller)
        return sw_err(err, errlen, "out of memory");
    const uint64_t t0 = sw_now_ns();
    size_t waiting = 0;
    char why[256] = "";
    for (size_t i = 0; i < self->n_brokers; i++) {
        self->brokers[i].rtt_ms = -1;
        sw_broker_client_config_t c = {.endpoint = self->brokers[i].endpoint, .role = SWISD__V1__ROLE__ROLE_CLIENT,
                                       .identity = identity};
        if (!(bc[i] = sw_broker_client_new(&c, why, sizeof why))) {
            sw_log(SW_LOG_WARN, "volunteer: broker %s: %s", self->brokers[i].endpoint, why);
            continue;
        }
        zpoller_add(poller, sw_broker_client_sock(bc[i]));
        waiting++;
    }
    const uint64_t deadline = t0 + (uint64_t) timeout_ms * 1000000ull;
    while (waiting && sw_now_ns() < deadline && !zsys_interrupted) {
        zpoller_wait(poller, 20);
        for (size_t i = 0; i < self->n_brokers; i++) {
            if (!bc[i] || self->brokers[i].rtt_ms >= 0)
                continue;
            sw_wire_msg_t m;
            while (zsock_events(sw_broker_client_sock(bc[i])) & ZMQ_POLLIN)
                if (sw_broker_client_recv(bc[i], &m) == 1)
                    sw_wire_msg_free(&m);
            sw_broker_client_tick(bc[i]);
            if (sw_broker_client_registered(bc[i])) {
                self->brokers[i].rtt_ms = (double) (sw_now_ns() - t0) / 1e6;
                waiting--;
            }
        }
    }
    int best = -1;
    for (size_t i = 0; i < self->n_brokers; i++) {
        sw_broker_client_destroy(&bc[i]);
        if (self->brokers[i].rtt_ms >= 0 && (best < 0 || self->brokers[i].rtt_ms < self->brokers[best].rtt_ms))
            best = (int) i;
    }
    zpoller_destroy(&poller);
    if (best < 0)
        return sw_err(err, errlen, "none of the %zu brokers answered within %d ms", self->n_brokers, timeout_ms);
    return best;
}
