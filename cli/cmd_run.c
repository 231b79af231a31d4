/*  cmd_run.c: `swisd run`, single-process generation (the reference path).
 *
 *  stdout receives exactly the prompt followed by the generated text, as
 *  decoded; logs and timings go to stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_model.h"
#include "sw_opt.h"
#include "sw_sampler.h"
#include "sw_tokenizer.h"
#include "swisd_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: swisd run -m MODEL.gguf -p PROMPT [-n N] [options]\n"
            "  -m, --model FILE        GGUF model\n"
            "  -p, --prompt TEXT       prompt (stdout starts with it)\n"
            "  -n, --n-predict N       tokens to generate (default 128)\n"
            "  -t, --threads N         threads (default: online CPUs)\n"
            "      --temp T            temperature, 0 = greedy (default 0.8)\n"
            "      --top-k K           (default 40, 0 = off)\n"
            "      --top-p P           (default 0.95, 1 = off)\n"
            "      --min-p P           (default 0.05, 0 = off)\n"
            "      --repeat-penalty R  (default 1.0 = off)\n"
            "      --seed S            RNG seed (default 0)\n"
            "      --ctx N             context size (default: prompt + n, at most the model's)\n"
            "      --ignore-eos        keep generating past end-of-sequence\n"
            "      --no-bos            do not prepend BOS\n");
}

/* Writes the bytes a token decodes to onto stdout. */
static void s_emit(const sw_tokenizer_t *tok, int32_t prev, int32_t token)
{
    char buf[256];
    int n = sw_tokenizer_decode_token(tok, prev, token, buf, sizeof buf);
    if (n > 0) {
        if ((size_t) n > sizeof buf) {
            char *big = malloc((size_t) n);
            if (big && sw_tokenizer_decode_token(tok, prev, token, big, (size_t) n) == n)
                fwrite(big, 1, (size_t) n, stdout);
            free(big);
        } else {
            fwrite(buf, 1, (size_t) n, stdout);
        }
        fflush(stdout);
    }
}

int swisd_cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL;
    int64_t n_predict = 128, n_threads = sw_opt_default_threads(), n_ctx_opt = 0;
    bool ignore_eos = false, no_bos = false;
    sw_sampler_params_t sp = sw_sampler_default_params();
    enum { O_TEMP = 256, O_TOPK, O_TOPP, O_MINP, O_REP, O_SEED, O_CTX, O_IGNORE_EOS, O_NO_BOS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"n-predict", required_argument, 0, 'n'}, {"threads", required_argument, 0, 't'},
        {"temp", required_argument, 0, O_TEMP}, {"top-k", required_argument, 0, O_TOPK},
        {"top-p", required_argument, 0, O_TOPP}, {"min-p", required_argument, 0, O_MINP},
        {"repeat-penalty", required_argument, 0, O_REP}, {"seed", required_argument, 0, O_SEED},
        {"ctx", required_argument, 0, O_CTX}, {"ignore-eos", no_argument, 0, O_IGNORE_EOS},
        {"no-bos", no_argument, 0, O_NO_BOS}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    int64_t iv;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': if (sw_opt_i64("-n", optarg, 0, 1 << 24, &n_predict)) return 2; break;
        case 't': if (sw_opt_i64("-t", optarg, 1, 256, &n_threads)) return 2; break;
        case O_TEMP: if (sw_opt_f32("--temp", optarg, 0.0f, 100.0f, &sp.temperature)) return 2; break;
        case O_TOPK: if (sw_opt_i64("--top-k", optarg, 0, 1 << 24, &iv)) return 2; sp.top_k = (int32_t) iv; break;
        case O_TOPP: if (sw_opt_f32("--top-p", optarg, 0.0f, 1.0f, &sp.top_p)) return 2; break;
        case O_MINP: if (sw_opt_f32("--min-p", optarg, 0.0f, 1.0f, &sp.min_p)) return 2; break;
        case O_REP: if (sw_opt_f32("--repeat-penalty", optarg, 0.01f, 100.0f, &sp.repeat_penalty)) return 2; break;
        case O_SEED: if (sw_opt_u64("--seed", optarg, &sp.seed)) return 2; break;
        case O_CTX: if (sw_opt_i64("--ctx", optarg, 1, 1 << 22, &n_ctx_opt)) return 2; break;
        case O_IGNORE_EOS: ignore_eos = true; break;
        case O_NO_BOS: no_bos = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!model_path || !prompt || optind != argc) {
        s_usage(stderr);
        return 2;
    }

    int rc = 1;
    char err[512] = "";
    sw_model_t *model = NULL;
    sw_tokenizer_t *tok = NULL;
    sw_sampler_t *sampler = NULL;
    sw_exec_t *ex = NULL;
    sw_kv_t *kv = NULL;
    int32_t *tokens = NULL;
    float *hidden = NULL, *logits = NULL;

    uint64_t t_load = sw_now_ns();
    sw_model_parts_t parts = sw_model_parts_all();
    if (!(model = sw_model_load(model_path, &parts, err, sizeof err))) {
        fprintf(stderr, "swisd run: %s: %s\n", model_path, err);
        goto done;
    }
    const sw_hparams_t *hp = sw_model_hparams(model);
    if (!(tok = sw_tokenizer_from_gguf(sw_model_gguf(model), err, sizeof err))) {
        fprintf(stderr, "swisd run: %s: tokenizer: %s\n", model_path, err);
        goto done;
    }
    if (sw_tokenizer_n_vocab(tok) != hp->n_vocab) {
        fprintf(stderr, "swisd run: tokenizer has %d tokens but the model's embedding has %d rows\n",
                (int) sw_tokenizer_n_vocab(tok), (int) hp->n_vocab);
        goto done;
    }
    size_t plen = strlen(prompt);
    bool add_bos = !no_bos && sw_tokenizer_add_bos(tok);
    int64_t n_prompt = sw_tokenizer_encode(tok, prompt, plen, add_bos, NULL, 0);
    if (n_prompt < 0 || !(tokens = malloc(sizeof(int32_t) * (size_t) (n_prompt + n_predict + 1)))) {
        fprintf(stderr, "swisd run: cannot tokenize the prompt (out of memory)\n");
        goto done;
    }
    sw_tokenizer_encode(tok, prompt, plen, add_bos, tokens, n_prompt);
    if (n_prompt == 0) {
        fprintf(stderr, "swisd run: the prompt is empty and the model adds no BOS token; nothing to condition on\n");
        goto done;
    }
    int64_t n_ctx = n_ctx_opt > 0 ? n_ctx_opt : n_prompt + n_predict;
    if (n_ctx < n_prompt + n_predict) {
        fprintf(stderr, "swisd run: --ctx %lld is smaller than prompt (%lld) + n (%lld)\n", (long long) n_ctx,
                (long long) n_prompt, (long long) n_predict);
        goto done;
    }
    if (n_ctx > hp->n_ctx_train)
        sw_log(SW_LOG_WARN, "context %lld exceeds the model's training context %d", (long long) n_ctx, hp->n_ctx_train);
    sp.repeat_last_n = sp.repeat_last_n > 0 ? sp.repeat_last_n : 64;
    if (!(sampler = sw_sampler_new(&sp, hp->n_vocab)) || !(ex = sw_exec_new((int) n_threads)) ||
        !(kv = sw_kv_new(model, 0, hp->n_layer, (int32_t) n_ctx)) ||
        !(hidden = malloc(sizeof(float) * (size_t) (n_prompt * hp->n_embd))) ||
        !(logits = malloc(sizeof(float) * (size_t) hp->n_vocab))) {
        fprintf(stderr, "swisd run: out of memory (context %lld)\n", (long long) n_ctx);
        goto done;
    }
    t_load = sw_now_ns() - t_load;

    fwrite(prompt, 1, plen, stdout);
    fflush(stdout);

    /* prefill: all prompt tokens in one pass; logits of the last one only */
    uint64_t t0 = sw_now_ns();
    sw_seq_t seq = {.kv = kv, .pos = 0, .n_tok = (int32_t) n_prompt, .hidden = hidden};
    if (sw_model_embed(model, tokens, n_prompt, hidden, err, sizeof err) ||
        sw_model_forward(ex, model, 0, hp->n_layer, &seq, 1, err, sizeof err) ||
        sw_model_head(ex, model, hidden + (n_prompt - 1) * hp->n_embd, 1, logits, err, sizeof err)) {
        fprintf(stderr, "\nswisd run: prefill failed: %s\n", err);
        goto done;
    }
    uint64_t t_prefill = sw_now_ns() - t0;

    int64_t n_tokens = n_prompt, n_gen = 0, n_decoded = 0; /* n_decoded: single-token forward passes */
    uint64_t t1 = sw_now_ns();
    while (n_gen < n_predict) {
        int32_t next = sw_sampler_sample(sampler, logits, tokens, n_tokens);
        if (next < 0) {
            fprintf(stderr, "\nswisd run: the logits hold no finite value\n");
            goto done;
        }
        if (!ignore_eos && sw_tokenizer_is_eog(tok, next))
            break;
        s_emit(tok, tokens[n_tokens - 1], next);
        tokens[n_tokens++] = next;
        n_gen++;
        if (n_gen == n_predict)
            break;
        seq = (sw_seq_t){.kv = kv, .pos = (int32_t) (n_tokens - 1), .n_tok = 1, .hidden = hidden};
        if (sw_model_embed(model, &next, 1, hidden, err, sizeof err) ||
            sw_model_forward(ex, model, 0, hp->n_layer, &seq, 1, err, sizeof err) ||
            sw_model_head(ex, model, hidden, 1, logits, err, sizeof err)) {
            fprintf(stderr, "\nswisd run: decode failed: %s\n", err);
            goto done;
        }
        n_decoded++;
    }
    uint64_t t_decode = sw_now_ns() - t1;
    sw_log(SW_LOG_INFO, "load %.1f ms | prefill %lld tokens in %.1f ms (%.2f tokens/s) | %lld tokens generated, decode %lld "
                        "forward passes in %.1f ms (%.2f tokens/s) | %lld threads, kernels %s",
           t_load / 1e6, (long long) n_prompt, t_prefill / 1e6, n_prompt / (t_prefill / 1e9), (long long) n_gen,
           (long long) n_decoded, t_decode / 1e6, n_decoded > 0 ? n_decoded / (t_decode / 1e9) : 0.0, (long long) n_threads, sw_matmul_kernel_name());
    rc = 0;
done:
    free(tokens);
    free(hidden);
    free(logits);
    sw_kv_destroy(&kv);
    sw_exec_destroy(&ex);
    sw_sampler_destroy(&sampler);
    sw_tokenizer_destroy(&tok);
    sw_model_destroy(&model);
    return rc;
}
