/*  sw_fetch_text.h: a small document (a manifest, a bootstrap list) read
 *  whole from an http or https URL (libcurl) or from a local file.
 *
 *  Hostile input: the size is capped by the caller (the transfer is
 *  aborted past it, nothing larger is ever held), redirects are followed
 *  only to http/https and at most 5 times, the whole transfer has a time-out,
 *  and a status other than 200 is an error.
 *
 *  Thread safety: callable from any thread once libcurl is initialised;
 *  the first call initialises it (curl_global_init, which is not
 *  thread-safe: make the first call before starting threads that call it).
 */
#ifndef SW_FETCH_TEXT_H
#define SW_FETCH_TEXT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  Reads `source`: a URL when it starts with http:// or https://, a file
 *  path otherwise ("file://PATH" is read as PATH). At most max_bytes bytes;
 *  timeout_s (<= 0: 30) bounds a URL's whole transfer. Returns the bytes
 *  with a NUL after them (caller frees; *len = their count, NULs inside are
 *  possible), or NULL with err naming the source and the cause (cannot
 *  open, read error, HTTP status, libcurl's message, "longer than N bytes"). */
char *sw_fetch_text(const char *source, size_t max_bytes, int timeout_s, size_t *len, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
