/*  sw_data_dir.h: where the programs find the files they ship with (the
 *  default model, the dashboard's built files), whether they run from the
 *  build tree or from an installed package.
 *
 *  The data folder mirrors the repository: a file the source tree holds at
 *  REL (e.g. "models/stories260K.gguf", "web/dist/index.html") is installed
 *  at DATADIR/REL, where DATADIR is meson's `prefix/datadir/swisd`
 *  (/usr/share/swisd in the Debian package; scripts/package-deb).
 *
 *  sw_data_find(REL) tries these roots in order and takes the first where
 *  REL is readable:
 *   1. the installed tree, relocated: when the running program's folder ends
 *      with the compile-time bindir (e.g. ROOT/usr/bin), ROOT + DATADIR (so a
 *      package unpacked with `dpkg-deb -x` into a scratch ROOT, or a tree
 *      copied into a container, finds its own data and never the host's);
 *   2. the source tree beside the build tree: two folders above the program
 *      (SRC/build/cli/swisd -> SRC), which holds for every program meson
 *      builds (build/cli, build/gateway, ...);
 *   3. the source tree the program was compiled from (SWISD_SOURCE_DIR);
 *   4. DATADIR itself, as compiled (when /proc/self/exe cannot be read).
 *  The running program's path comes from /proc/self/exe (proc(5)).
 *
 *  Thread safety: reentrant (reads /proc and the file system, no state).
 */
#ifndef SW_DATA_DIR_H
#define SW_DATA_DIR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  The path of the data file `rel` (relative, no "..": e.g.
 *  "models/stories260K.gguf"), found as described above, into out[outlen]
 *  (a NUL-terminated path, made canonical with realpath(3) when possible).
 *  Returns 0 when found; -1 when rel is NULL, absolute or holds "..", when no
 *  root holds a readable file at rel, or when the path does not fit in
 *  outlen (out is then an empty string). Prints nothing: the caller says
 *  what was missing (see sw_data_dir_describe). */
int sw_data_find(const char *rel, char *out, size_t outlen);

/*  The roots sw_data_find tries, in order, as one line for an error message
 *  ("/usr/share/swisd, /src/swisd, ..."), into out[outlen] (truncated to
 *  fit, always NUL-terminated when outlen > 0). */
void sw_data_dir_describe(char *out, size_t outlen);

#ifdef __cplusplus
}
#endif

#endif
