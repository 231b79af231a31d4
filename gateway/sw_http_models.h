/*  sw_http_models.h: the gateway's HTTP front serves the published model
 *  (issue 13; docs/volunteer.md, "Model shards and manifests"), so that
 *  volunteers can fetch layers from it (fetch/sw_shard_fetch.h):
 *    GET/HEAD /models/manifest.json   the manifest file as given
 *    GET/HEAD /models/FILE_NAME       the GGUF named by the manifest's
 *                                     file_name, found beside the manifest
 *  The GGUF answers single byte ranges (RFC 9110 section 14): "Range:
 *  bytes=a-b", "bytes=a-" and "bytes=-n" give 206 with Content-Range; a range
 *  starting past the end (or malformed) gives 416 with "Content-Range: bytes
 *  * /SIZE"; several ranges (a comma) are ignored and the whole file is sent
 *  with 200, as the RFC allows. Bodies are sent from the file descriptor at
 *  the offset (MHD_create_response_from_fd_at_offset64): no read into memory.
 *  These paths are not metered by fair use (a volunteer makes one request per
 *  tensor); the connection caps of the HTTP front apply.
 *
 *  Thread safety: an sw_http_models_t is immutable after construction;
 *  responses may be made from any thread.
 */
#ifndef SW_HTTP_MODELS_H
#define SW_HTTP_MODELS_H

#include <stddef.h>
#include <stdint.h>

struct MHD_Response;

typedef struct sw_http_models_t sw_http_models_t;

#define SW_HTTP_MODELS_MAX_MANIFEST (64u << 20) /* bytes of a manifest file served */

/*  Reads the manifest at manifest_path (at most SW_HTTP_MODELS_MAX_MANIFEST
 *  bytes, JSON with "file_name" (no '/') and "file_size") and checks that
 *  the GGUF beside it has that size. The signature is not checked here (the
 *  volunteers check it). Returns the server part (caller destroys) or NULL
 *  with err. */
sw_http_models_t *sw_http_models_new(const char *manifest_path, char *err, size_t errlen);
void sw_http_models_destroy(sw_http_models_t **self_p);

/*  Parses a Range header value against a file of size bytes: 0 with
 *  [*first, *last] (inclusive) for one satisfiable range; 1 for a value to
 *  ignore (several ranges, or not "bytes="): send the whole file; -1 when
 *  unsatisfiable or malformed (416). Pure function. */
int sw_http_range_parse(const char *value, uint64_t size, uint64_t *first, uint64_t *last);

/*  The response for a GET or HEAD of url (a path under /models/) with the
 *  request's Range header value (NULL: none). Returns a response to queue
 *  with *status (200, 206 or 416) and destroy, or NULL with *status 404 (no
 *  such file) or 500 (cannot open the file, out of memory). */
struct MHD_Response *sw_http_models_response(const sw_http_models_t *self, const char *url, const char *range,
                                             unsigned *status);

#endif
