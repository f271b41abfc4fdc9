/*
 * GGUF reader: the file is mmapped read-only (or read from memory), every
 * count, length, type and offset is validated before use, and the metadata
 * and tensor infos are indexed so lookups by key or name are cheap.
 */

#ifndef LLMC_GGUF_H
#define LLMC_GGUF_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8,
    GGUF_TYPE_UINT16,
    GGUF_TYPE_INT16,
    GGUF_TYPE_UINT32,
    GGUF_TYPE_INT32,
    GGUF_TYPE_FLOAT32,
    GGUF_TYPE_BOOL,
    GGUF_TYPE_STRING,
    GGUF_TYPE_ARRAY,
    GGUF_TYPE_UINT64,
    GGUF_TYPE_INT64,
    GGUF_TYPE_FLOAT64
} gguf_type_e;

#define GGUF_TYPE_COUNT        13
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS          4
#define GGUF_MAX_NAME          64

typedef struct gguf_ctx gguf_ctx_t;

typedef struct {
    const char  *name;        /* NUL-terminated copy */
    uint32_t     n_dims;
    int64_t      ne[4];       /* ne[0] is contiguous; unused dims are 1 */
    uint32_t     type;        /* ggml type (quant.h GGML_TYPE_*) */
    const void  *data;
    size_t       nbytes;
} gguf_tensor_t;

gguf_ctx_t *gguf_open(const char *path, char *err, size_t errlen);   /* mmap */
gguf_ctx_t *gguf_open_mem(const void *data, size_t size, char *err,
    size_t errlen);
void gguf_close(gguf_ctx_t *ctx);

int gguf_find_key(const gguf_ctx_t *ctx, const char *key);  /* index or -1 */

/* 0 = ok, -1 = missing, -2 = wrong type; integers convert when it fits */
int gguf_get_u32(const gguf_ctx_t *ctx, const char *key, uint32_t *out);
int gguf_get_i32(const gguf_ctx_t *ctx, const char *key, int32_t *out);
int gguf_get_f32(const gguf_ctx_t *ctx, const char *key, float *out);
int gguf_get_bool(const gguf_ctx_t *ctx, const char *key, int *out);
int gguf_get_str(const gguf_ctx_t *ctx, const char *key, const char **s,
    size_t *len);
/* numeric arrays: raw little-endian elements */
int gguf_get_arr(const gguf_ctx_t *ctx, const char *key, gguf_type_e *elem,
    uint64_t *n, const void **data);
int gguf_get_arr_str(const gguf_ctx_t *ctx, const char *key, uint64_t i,
    const char **s, size_t *len);

const gguf_tensor_t *gguf_find_tensor(const gguf_ctx_t *ctx,
    const char *name);

/* enumeration, for tools and tests */
uint32_t gguf_version(const gguf_ctx_t *ctx);
int64_t gguf_n_keys(const gguf_ctx_t *ctx);
const char *gguf_key_name(const gguf_ctx_t *ctx, int64_t i);
gguf_type_e gguf_key_type(const gguf_ctx_t *ctx, int64_t i);
int64_t gguf_n_tensors(const gguf_ctx_t *ctx);
const gguf_tensor_t *gguf_tensor_at(const gguf_ctx_t *ctx, int64_t i);
size_t gguf_alignment(const gguf_ctx_t *ctx);
const char *gguf_type_name(gguf_type_e t);

#endif /* LLMC_GGUF_H */
