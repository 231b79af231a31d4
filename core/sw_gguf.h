/*  sw_gguf.h: read and write GGUF model files (versions 2 and 3).
 *
 *  Format source: the GGUF specification in the ggml repository
 *  (docs/gguf.md). All integers little-endian. Byte layout of a file:
 *
 *    1. magic      4 bytes  "GGUF" (0x47 0x47 0x55 0x46)
 *    2. version    uint32   2 or 3 (version 1 used 32-bit counts; refused)
 *    3. n_tensors  uint64
 *    4. n_kv       uint64
 *    5. n_kv metadata pairs: key (gguf string), value type (uint32), value
 *         gguf string = uint64 length + that many bytes (UTF-8, no NUL)
 *         value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool,
 *                      8 string, 9 array, 10 u64, 11 i64, 12 f64
 *         array = uint32 element type + uint64 count + elements
 *    6. n_tensors tensor infos: name (gguf string), n_dims (uint32, 1..4),
 *         ne[n_dims] (uint64 each, innermost first), type (uint32, ggml type
 *         id), offset (uint64, relative to the data section, aligned)
 *    7. padding to `general.alignment` (default 32, a power of two)
 *    8. tensor data
 *
 *  Thread safety: a sw_gguf_t is immutable after open; concurrent readers are
 *  safe. A writer belongs to one thread.
 */
#ifndef SW_GGUF_H
#define SW_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SW_GGUF_U8 = 0, SW_GGUF_I8 = 1, SW_GGUF_U16 = 2, SW_GGUF_I16 = 3,
    SW_GGUF_U32 = 4, SW_GGUF_I32 = 5, SW_GGUF_F32 = 6, SW_GGUF_BOOL = 7,
    SW_GGUF_STRING = 8, SW_GGUF_ARRAY = 9, SW_GGUF_U64 = 10, SW_GGUF_I64 = 11,
    SW_GGUF_F64 = 12,
} sw_gguf_vtype_t;

/*  One tensor as described by the file. Pointers are borrowed from the
 *  sw_gguf_t and valid until it is destroyed. */
typedef struct {
    const char *name;   /* NUL-terminated copy of the tensor name */
    sw_dtype_t type;    /* element type (ggml type id) */
    uint32_t n_dims;    /* 1..4 */
    int64_t ne[4];      /* elements per dimension, innermost first; unused dims = 1 */
    uint64_t offset;    /* byte offset from the start of the data section */
    size_t nbytes;      /* bytes of data: sw_dtype_row_size(type, ne[0]) * ne[1]*ne[2]*ne[3] */
    const void *data;   /* start of the data inside the read-only mapping */
} sw_gguf_tensor_t;

typedef struct sw_gguf_t sw_gguf_t;

/*  Opens and validates a GGUF file by mmap (read-only, MAP_PRIVATE).
 *  Pages are only read when a tensor's data is touched, so a caller that uses
 *  only some tensors (a stage with layers [a, b)) pays memory for those only.
 *  Validation covers: magic, version, counts against the file size (and hard
 *  limits of 2^20 keys and 2^20 tensors), string lengths, array lengths and
 *  element types (arrays of arrays are refused), bool values 0/1, keys and
 *  tensor names non-empty, <= 65535 bytes and free of NUL bytes, duplicate
 *  keys, dims (1..4, positive, no overflow of the element count or byte
 *  size), known tensor types, row length a multiple of the block size,
 *  `general.alignment` a u32 power of two, offsets aligned, data section and
 *  offset+size within the file, duplicate tensor names. Memory allocated is
 *  bounded by a small multiple of the header size; tensor data is not read.
 *  Returns NULL on failure with the reason in err (one line naming the key or
 *  tensor at fault, e.g. "tensor 'x': data [offset 64, 136 bytes] runs past
 *  end of file (size 100, data section at 64)"; the path is not included,
 *  callers prefix it). Caller destroys result.
 *  The file must not be truncated while open (that would raise SIGBUS on
 *  access to the missing pages, as with any mmap). */
sw_gguf_t *sw_gguf_open(const char *path, char *err, size_t errlen);

/*  Same as sw_gguf_open over a caller-owned buffer (used by the fuzz target
 *  and tests). `data` is borrowed and must outlive the result. */
sw_gguf_t *sw_gguf_open_memory(const void *data, size_t size, char *err, size_t errlen);

/*  Unmaps and frees; accepts NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_gguf_destroy(sw_gguf_t **self_p);

uint32_t sw_gguf_version(const sw_gguf_t *self);
uint32_t sw_gguf_alignment(const sw_gguf_t *self);
size_t sw_gguf_file_size(const sw_gguf_t *self);
/*  Bytes from the file's start to the data section (header, metadata, tensor
 *  infos and padding); the file size when there are no tensors. */
size_t sw_gguf_data_offset(const sw_gguf_t *self);
/*  XXH3-64 (xxHash, Collet) of everything before the data section: header,
 *  metadata and tensor infos. Two files with the same value have the same
 *  metadata, tensor names, types, shapes and offsets; the swarm uses it as the
 *  model checksum (cheap: no tensor data is read). Weights that differ only
 *  in value are not told apart. */
uint64_t sw_gguf_identity_hash(const sw_gguf_t *self);

/* ---- metadata ---------------------------------------------------------- */

/*  Number of key/value pairs, and the index of `key` (exact match) or -1. */
int64_t sw_gguf_n_kv(const sw_gguf_t *self);
int64_t sw_gguf_find_key(const sw_gguf_t *self, const char *key);
/*  Key name (NUL-terminated, borrowed) and value type of pair i; NULL and
 *  (sw_gguf_vtype_t) -1 when i is out of range. */
const char *sw_gguf_key(const sw_gguf_t *self, int64_t i);
sw_gguf_vtype_t sw_gguf_kv_type(const sw_gguf_t *self, int64_t i);

/*  Typed scalar getters by key. Integer getters accept any integer value type
 *  (and bool) whose value fits the requested type; float getters accept f32 and
 *  f64. Return 0 and write *out on success; -1 when the key is missing or the
 *  type/range does not fit (out untouched). */
int sw_gguf_get_u32(const sw_gguf_t *self, const char *key, uint32_t *out);
int sw_gguf_get_i64(const sw_gguf_t *self, const char *key, int64_t *out);
int sw_gguf_get_f32(const sw_gguf_t *self, const char *key, float *out);
int sw_gguf_get_bool(const sw_gguf_t *self, const char *key, bool *out);
/*  String value: pointer to the bytes inside the mapping (NOT NUL-terminated)
 *  and its length. Returns 0, or -1 if missing or not a string. */
int sw_gguf_get_str(const sw_gguf_t *self, const char *key, const char **s, size_t *len);
/*  Convenience: copies a string value into buf as a NUL-terminated string
 *  (truncated to buflen-1). Returns 0 or -1. */
int sw_gguf_get_str_buf(const sw_gguf_t *self, const char *key, char *buf, size_t buflen);

/*  Array value by key: element type and count. Returns 0 or -1. */
int sw_gguf_get_arr_info(const sw_gguf_t *self, const char *key, sw_gguf_vtype_t *elem_type, uint64_t *n);
/*  Raw pointer to the elements of a numeric array (not for string arrays);
 *  elements are packed little-endian of the element type's size and may be
 *  unaligned (copy with memcpy). Returns NULL if missing or not numeric. */
const void *sw_gguf_get_arr_data(const sw_gguf_t *self, const char *key);
/*  Element i of a string array: bytes inside the mapping (not NUL-terminated)
 *  and length. O(1) (offsets are indexed at open). Returns 0 or -1. */
int sw_gguf_get_arr_str(const sw_gguf_t *self, const char *key, uint64_t i, const char **s, size_t *len);

/* ---- tensors ----------------------------------------------------------- */

/*  The name the GGUF format gives tensor type id `type` ("F32", "Q4_K",
 *  "IQ4_XS", ...: the ggml_type enumeration the GGUF specification refers
 *  to), whether or not this library can compute with it; "unknown" for ids
 *  the format does not define. Static string; thread-safe. Used to name a
 *  type in errors ("unsupported tensor type 13 (Q5_K)"). */
const char *sw_gguf_type_name(uint32_t type);

int64_t sw_gguf_n_tensors(const sw_gguf_t *self);
/*  Tensor i (0-based), borrowed; NULL if out of range. */
const sw_gguf_tensor_t *sw_gguf_tensor(const sw_gguf_t *self, int64_t i);
/*  Tensor by exact name (hash lookup), borrowed; NULL if absent. */
const sw_gguf_tensor_t *sw_gguf_find_tensor(const sw_gguf_t *self, const char *name);

/* ---- writer ------------------------------------------------------------ */

/*  Builds a GGUF v3 file: add metadata and tensors in any order, then write.
 *  Tensor data is copied at add time (the writer owns it). Keys and tensor
 *  names are copied. Output alignment is 32 unless `general.alignment` is set
 *  with sw_gguf_writer_set_u32 before writing. */
typedef struct sw_gguf_writer_t sw_gguf_writer_t;

sw_gguf_writer_t *sw_gguf_writer_new(void);
void sw_gguf_writer_destroy(sw_gguf_writer_t **self_p);

/*  Metadata setters. Setting an existing key replaces its value. Return 0/-1
 *  (-1 only on allocation failure or invalid arguments). */
int sw_gguf_writer_set_u32(sw_gguf_writer_t *self, const char *key, uint32_t v);
int sw_gguf_writer_set_i32(sw_gguf_writer_t *self, const char *key, int32_t v);
int sw_gguf_writer_set_u64(sw_gguf_writer_t *self, const char *key, uint64_t v);
int sw_gguf_writer_set_f32(sw_gguf_writer_t *self, const char *key, float v);
int sw_gguf_writer_set_bool(sw_gguf_writer_t *self, const char *key, bool v);
int sw_gguf_writer_set_str(sw_gguf_writer_t *self, const char *key, const char *s, size_t len);
/*  Numeric array: `n` elements of `elem_type` packed in `data` (copied). */
int sw_gguf_writer_set_arr(sw_gguf_writer_t *self, const char *key, sw_gguf_vtype_t elem_type,
                           const void *data, uint64_t n);
/*  String array: strs[i] with lens[i] bytes (copied). */
int sw_gguf_writer_set_arr_str(sw_gguf_writer_t *self, const char *key, const char *const *strs,
                               const size_t *lens, uint64_t n);
/*  Copies every metadata pair of `src` whose key starts with `prefix`
 *  ("" = all; NULL = all) into the writer, byte for byte and with its type
 *  (also the types without a setter: u8, i8, u16, i16, i64, f64). Existing
 *  keys are replaced. Returns 0/-1. */
int sw_gguf_writer_copy_kv(sw_gguf_writer_t *self, const sw_gguf_t *src, const char *prefix);

/*  Adds a tensor with dims ne[0..n_dims) (innermost first) of `type`; `data`
 *  holds sw_dtype_row_size(type, ne[0]) * rows bytes and is copied.
 *  Returns 0, or -1 on a duplicate name, bad shape or allocation failure. */
int sw_gguf_writer_add_tensor(sw_gguf_writer_t *self, const char *name, sw_dtype_t type,
                              uint32_t n_dims, const int64_t *ne, const void *data);

/*  Writes the file atomically (to path.tmp, then rename). Returns 0 or -1. */
int sw_gguf_writer_write(sw_gguf_writer_t *self, const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
