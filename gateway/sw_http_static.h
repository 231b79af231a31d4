/*  sw_http_static.h: the dashboard's static files for the HTTP front
 *  (gateway/sw_http): GET of any path that is not an API endpoint is a file
 *  of web_dir (the dashboard and chat page built from web/ by Vite).
 *
 *  Paths are checked character by character (letters, digits, '.', '_',
 *  '-', '/'; no "..", no "//"; under 256 bytes), so no request can leave the
 *  folder; "/" and paths whose last segment has no '.' (client-side routes:
 *  "/chat") give index.html. Files under /assets/ (named by content hash)
 *  are cacheable for a year, the rest "no-cache"; every file carries
 *  X-Content-Type-Options: nosniff and a Content-Type from its extension.
 *
 *  Thread safety: reentrant.
 */
#ifndef SW_HTTP_STATIC_H
#define SW_HTTP_STATIC_H

#include <stddef.h>

struct MHD_Response;

#define SW_HTTP_STATIC_MAX_DIR 1023 /* bytes of web_dir */

/*  Checks that web_dir holds index.html. Returns 0, or -1 with a reason
 *  in err. */
int sw_http_static_check(const char *web_dir, char *err, size_t errlen);

/*  The response for GET url (the request's path, NUL-terminated, from the
 *  client) out of web_dir ("" or NULL: no dashboard built; "/" then gets a
 *  short page saying so). Returns a libmicrohttpd response the caller queues
 *  with status 200 and destroys, or NULL with *status 404 (no such file, or
 *  a path refused) or 500 (out of memory, no descriptor). */
struct MHD_Response *sw_http_static_response(const char *web_dir, const char *url, unsigned *status);

#endif
