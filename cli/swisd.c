/*  swisd.c: the `swisd` command-line tool: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "swisd_cli.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"demo", swisd_cmd_demo, "start a local swarm (brokers, stages, gateway) and generate through it"},
    {"generate", swisd_cmd_generate, "generate text through a swarm's gateway"},
    {"run", swisd_cmd_run, "generate text in one process (the reference path)"},
    {"convert", swisd_cmd_convert, "llama2.c .bin checkpoint + tokenizer -> GGUF"},
    {"quantize", swisd_cmd_quantize, "re-encode a GGUF model's matrices as q4_K_M, q5_K_M, q8_0, ..."},
    {"imatrix", swisd_cmd_imatrix, "gather activation statistics on a text for importance-weighted quantize"},
    {"draft", swisd_cmd_draft, "make a speculative-decoding draft from a model (early exit and/or quantized)"},
    {"synth", swisd_cmd_synth, "write a random-weight GGUF with the shapes of a real model"},
    {"inspect", swisd_cmd_inspect, "print a GGUF file's metadata and tensors"},
    {"token", swisd_cmd_token, "get an API token of a gateway bound to a node key (contributors' boost)"},
    {"manifest", swisd_cmd_manifest, "publish a model: write its signed manifest of tensor ranges and hashes"},
    {"fetch", swisd_cmd_fetch, "fetch a published model's layers by URL into a verified sparse GGUF"},
    {"volunteer", swisd_cmd_volunteer, "donate this machine's spare compute to a swarm (one command; docs/volunteer.md)"},
    {"keygen", swisd_cmd_keygen, "make a node's keypair (or --show one's public key and node id)"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd COMMAND [ARGS]   (swisd COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        s_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (!strcmp(argv[1], s_commands[i].name))
            return s_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "swisd: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
