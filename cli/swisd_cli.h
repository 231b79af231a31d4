/*  swisd_cli.h: the subcommands of the `swisd` tool. Each takes the
 *  arguments after the subcommand name (argv[0] is the subcommand) and
 *  returns the process exit code: 0 success, 1 runtime error, 2 usage error.
 *  Results go to stdout; logs, timings and errors to stderr.
 */
#ifndef SWISD_CLI_H
#define SWISD_CLI_H

int swisd_cmd_run(int argc, char **argv);
int swisd_cmd_convert(int argc, char **argv);
int swisd_cmd_quantize(int argc, char **argv);
int swisd_cmd_imatrix(int argc, char **argv);
int swisd_cmd_synth(int argc, char **argv);
int swisd_cmd_inspect(int argc, char **argv);
int swisd_cmd_demo(int argc, char **argv);
int swisd_cmd_generate(int argc, char **argv);
int swisd_cmd_draft(int argc, char **argv);
int swisd_cmd_keygen(int argc, char **argv);
int swisd_cmd_token(int argc, char **argv);
int swisd_cmd_manifest(int argc, char **argv);
int swisd_cmd_fetch(int argc, char **argv);
int swisd_cmd_volunteer(int argc, char **argv);

#endif
