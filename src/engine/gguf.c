/*
 * GGUF reader (ggml docs/gguf.md). The whole file is mapped read-only; the
 * parser walks it with a bounds-checked cursor and validates every count,
 * length, type and offset before anything points into the mapping.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"

typedef struct {
    const char    *name;        /* NUL-terminated copy */
    gguf_type_e    type;
    /* scalars: raw bytes; strings: ptr + len; arrays: elem, n, data */
    union {
        uint64_t   u64;
        int64_t    i64;
        double     f64;
    } v;
    const char    *str;
    uint64_t       len;
    gguf_type_e    elem;
    uint64_t       n;
    const void    *data;        /* array elements in the mapping */
    uint64_t      *str_off;     /* string arrays: offset of element i */
} gguf_kv_t;

struct gguf_ctx {
    const uint8_t  *base;
    size_t          size;
    int             mapped;
    uint32_t        version;
    int64_t         n_kv;
    gguf_kv_t      *kv;
    int64_t        *kv_sorted;      /* indices sorted by key */
    int64_t         n_tensors;
    gguf_tensor_t  *tensors;
    int64_t        *t_sorted;       /* indices sorted by name */
    size_t          alignment;
    size_t          data_off;
};

typedef struct {
    const uint8_t  *p;
    size_t          size, off;
    char           *err;
    size_t          errlen;
} gguf_cur_t;

static const size_t  gguf_type_size[GGUF_TYPE_COUNT] = {
    1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8
};

static const char  *gguf_type_names[GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string",
    "array", "u64", "i64", "f64"
};

const char *
gguf_type_name(gguf_type_e t)
{
    return (unsigned) t < GGUF_TYPE_COUNT ? gguf_type_names[t] : "unknown";
}

static void
gguf_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (err == NULL || errlen == 0) {
        return;
    }
    n = snprintf(err, errlen, "gguf: ");
    if (n < 0 || (size_t) n >= errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
}

static int
cur_need(gguf_cur_t *c, uint64_t n, const char *what)
{
    if (n > c->size - c->off) {
        gguf_err(c->err, c->errlen,
                 "truncated file: %s needs %llu bytes at offset %zu, "
                 "%zu left", what, (unsigned long long) n, c->off,
                 c->size - c->off);
        return -1;
    }
    return 0;
}

static int
cur_read(gguf_cur_t *c, void *out, size_t n, const char *what)
{
    if (cur_need(c, n, what) != 0) {
        return -1;
    }
    memcpy(out, c->p + c->off, n);
    c->off += n;
    return 0;
}

static int
cur_u32(gguf_cur_t *c, uint32_t *v, const char *what)
{
    return cur_read(c, v, 4, what);
}

static int
cur_u64(gguf_cur_t *c, uint64_t *v, const char *what)
{
    return cur_read(c, v, 8, what);
}

/* a string in place: uint64 length + bytes */
static int
cur_str(gguf_cur_t *c, const char **s, uint64_t *len, const char *what)
{
    if (cur_u64(c, len, what) != 0 || cur_need(c, *len, what) != 0) {
        return -1;
    }
    *s = (const char *) c->p + c->off;
    c->off += *len;
    return 0;
}

static int
kv_cmp_ctx(const void *a, const void *b, void *arg)
{
    const gguf_ctx_t  *ctx = arg;

    return strcmp(ctx->kv[*(const int64_t *) a].name,
                  ctx->kv[*(const int64_t *) b].name);
}

static int
t_cmp_ctx(const void *a, const void *b, void *arg)
{
    const gguf_ctx_t  *ctx = arg;

    return strcmp(ctx->tensors[*(const int64_t *) a].name,
                  ctx->tensors[*(const int64_t *) b].name);
}

void
gguf_close(gguf_ctx_t *ctx)
{
    int64_t  i;

    if (ctx == NULL) {
        return;
    }
    if (ctx->kv) {
        for (i = 0; i < ctx->n_kv; i++) {
            free(ctx->kv[i].str_off);
            free((char *) ctx->kv[i].name);
        }
    }
    if (ctx->tensors) {
        for (i = 0; i < ctx->n_tensors; i++) {
            free((char *) ctx->tensors[i].name);
        }
    }
    free(ctx->kv);
    free(ctx->kv_sorted);
    free(ctx->tensors);
    free(ctx->t_sorted);
    if (ctx->mapped && ctx->base) {
        munmap((void *) ctx->base, ctx->size);
    }
    free(ctx);
}

/* a NUL-terminated copy of a name, refusing embedded NULs */
static const char *
name_dup(const char *s, uint64_t len)
{
    char  *p;

    if (memchr(s, '\0', len) != NULL) {
        return NULL;
    }
    p = malloc(len + 1);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static int
gguf_read_kv(gguf_cur_t *c, gguf_kv_t *kv)
{
    const char  *key, *s;
    uint64_t     klen, i, n, len;
    uint32_t     type, elem;
    size_t       esz;

    if (cur_str(c, &key, &klen, "metadata key") != 0) {
        return -1;
    }
    if (klen == 0) {
        gguf_err(c->err, c->errlen, "empty metadata key at offset %zu",
                 c->off);
        return -1;
    }
    kv->name = name_dup(key, klen);
    if (kv->name == NULL) {
        gguf_err(c->err, c->errlen,
                 "metadata key with a NUL byte (or out of memory)");
        return -1;
    }
    if (cur_u32(c, &type, "metadata type") != 0) {
        return -1;
    }
    if (type >= GGUF_TYPE_COUNT) {
        gguf_err(c->err, c->errlen, "key '%s': unknown value type %u",
                 kv->name, type);
        return -1;
    }
    kv->type = type;

    if (type == GGUF_TYPE_STRING) {
        return cur_str(c, &kv->str, &kv->len, kv->name);
    }
    if (type != GGUF_TYPE_ARRAY) {
        esz = gguf_type_size[type];
        if (cur_read(c, &kv->v, esz, kv->name) != 0) {
            return -1;
        }
        return 0;
    }

    if (cur_u32(c, &elem, "array type") != 0
        || cur_u64(c, &n, "array length") != 0)
    {
        return -1;
    }
    if (elem >= GGUF_TYPE_COUNT || elem == GGUF_TYPE_ARRAY) {
        gguf_err(c->err, c->errlen, "key '%s': %s array element type %u",
                 kv->name, elem == GGUF_TYPE_ARRAY ? "nested" : "unknown",
                 elem);
        return -1;
    }
    kv->elem = elem;
    kv->n = n;
    kv->data = c->p + c->off;

    if (elem != GGUF_TYPE_STRING) {
        esz = gguf_type_size[elem];
        if (n > (c->size - c->off) / esz) {
            gguf_err(c->err, c->errlen,
                     "key '%s': array of %llu elements runs past the end",
                     kv->name, (unsigned long long) n);
            return -1;
        }
        c->off += n * esz;
        return 0;
    }

    /* each string takes at least its 8-byte length */
    if (n > (c->size - c->off) / 8) {
        gguf_err(c->err, c->errlen,
                 "key '%s': array of %llu strings runs past the end",
                 kv->name, (unsigned long long) n);
        return -1;
    }
    kv->str_off = malloc((n ? n : 1) * sizeof(uint64_t));
    if (kv->str_off == NULL) {
        gguf_err(c->err, c->errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        kv->str_off[i] = c->off;
        if (cur_str(c, &s, &len, kv->name) != 0) {
            return -1;
        }
    }
    return 0;
}

static int
gguf_read_tensor(gguf_cur_t *c, gguf_tensor_t *t, uint64_t *offset)
{
    const char  *name;
    uint64_t     len, ne, nel;
    uint32_t     n_dims, type, d;
    int          blck;

    if (cur_str(c, &name, &len, "tensor name") != 0) {
        return -1;
    }
    if (len == 0 || len >= GGUF_MAX_NAME) {
        gguf_err(c->err, c->errlen, "tensor name of %llu bytes "
                 "(1..%d allowed)", (unsigned long long) len,
                 GGUF_MAX_NAME - 1);
        return -1;
    }
    t->name = name_dup(name, len);
    if (t->name == NULL) {
        gguf_err(c->err, c->errlen,
                 "tensor name with a NUL byte (or out of memory)");
        return -1;
    }
    if (cur_u32(c, &n_dims, "tensor n_dims") != 0) {
        return -1;
    }
    if (n_dims > GGUF_MAX_DIMS) {
        gguf_err(c->err, c->errlen, "tensor '%s': n_dims %u > %d",
                 t->name, n_dims, GGUF_MAX_DIMS);
        return -1;
    }
    t->n_dims = n_dims;
    nel = 1;
    for (d = 0; d < 4; d++) {
        t->ne[d] = 1;
    }
    for (d = 0; d < n_dims; d++) {
        if (cur_u64(c, &ne, "tensor shape") != 0) {
            return -1;
        }
        if (ne > INT64_MAX || (ne != 0 && nel > (uint64_t) INT64_MAX / ne)) {
            gguf_err(c->err, c->errlen, "tensor '%s': element count "
                     "overflows", t->name);
            return -1;
        }
        t->ne[d] = (int64_t) ne;
        nel *= ne;
    }
    if (cur_u32(c, &type, "tensor type") != 0
        || cur_u64(c, offset, "tensor offset") != 0)
    {
        return -1;
    }
    if (!quant_type_known(type)) {
        gguf_err(c->err, c->errlen, "tensor '%s': unknown type %u",
                 t->name, type);
        return -1;
    }
    t->type = type;
    blck = quant_block_size(type);
    if (t->ne[0] % blck != 0) {
        gguf_err(c->err, c->errlen, "tensor '%s': ne[0] = %lld is not a "
                 "multiple of the %s block size %d", t->name,
                 (long long) t->ne[0], quant_type_name(type), blck);
        return -1;
    }
    /* bytes = nel / blck * block_bytes, checked against overflow */
    if (nel / blck > SIZE_MAX / quant_block_bytes(type)) {
        gguf_err(c->err, c->errlen, "tensor '%s': size overflows", t->name);
        return -1;
    }
    t->nbytes = (size_t) (nel / blck) * quant_block_bytes(type);
    return 0;
}

static gguf_ctx_t *
gguf_parse(const uint8_t *base, size_t size, int mapped, char *err,
    size_t errlen)
{
    gguf_ctx_t  *ctx;
    gguf_cur_t   c = { base, size, 0, err, errlen };
    uint32_t     magic, version;
    uint64_t     n_tensors, n_kv, off, end, *offsets = NULL;
    size_t       align, data_off;
    int64_t      i, k;

    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        gguf_err(err, errlen, "out of memory");
        if (mapped) {
            munmap((void *) base, size);
        }
        return NULL;
    }
    ctx->base = base;
    ctx->size = size;
    ctx->mapped = mapped;

    if (cur_u32(&c, &magic, "magic") != 0) {
        goto fail;
    }
    if (memcmp(&magic, "GGUF", 4) != 0) {
        gguf_err(err, errlen, "bad magic 0x%08x (not a GGUF file)", magic);
        goto fail;
    }
    if (cur_u32(&c, &version, "version") != 0) {
        goto fail;
    }
    if (version != 2 && version != 3) {
        gguf_err(err, errlen, "unsupported version %u%s", version,
                 (version & 0xffff) == 0 ? " (big-endian file?)"
                 : version == 1 ? " (GGUF v1 is obsolete)" : "");
        goto fail;
    }
    ctx->version = version;
    if (cur_u64(&c, &n_tensors, "tensor count") != 0
        || cur_u64(&c, &n_kv, "metadata count") != 0)
    {
        goto fail;
    }
    /* a metadata pair takes at least 8 + 1 + 4 + 1 bytes, a tensor info
       at least 8 + 1 + 4 + 4 + 8 */
    if (n_kv > (size - c.off) / 14) {
        gguf_err(err, errlen, "metadata count %llu cannot fit in the file",
                 (unsigned long long) n_kv);
        goto fail;
    }
    if (n_tensors > (size - c.off) / 25) {
        gguf_err(err, errlen, "tensor count %llu cannot fit in the file",
                 (unsigned long long) n_tensors);
        goto fail;
    }
    ctx->n_kv = (int64_t) n_kv;
    ctx->n_tensors = (int64_t) n_tensors;

    ctx->kv = calloc(n_kv ? n_kv : 1, sizeof(gguf_kv_t));
    ctx->kv_sorted = malloc((n_kv ? n_kv : 1) * sizeof(int64_t));
    ctx->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(gguf_tensor_t));
    ctx->t_sorted = malloc((n_tensors ? n_tensors : 1) * sizeof(int64_t));
    offsets = malloc((n_tensors ? n_tensors : 1) * sizeof(uint64_t));
    if (!ctx->kv || !ctx->kv_sorted || !ctx->tensors
        || !ctx->t_sorted || !offsets)
    {
        gguf_err(err, errlen, "out of memory");
        goto fail;
    }

    for (i = 0; i < ctx->n_kv; i++) {
        if (gguf_read_kv(&c, &ctx->kv[i]) != 0) {
            goto fail;
        }
        ctx->kv_sorted[i] = i;
    }
    qsort_r(ctx->kv_sorted, ctx->n_kv, sizeof(int64_t), kv_cmp_ctx, ctx);
    for (i = 1; i < ctx->n_kv; i++) {
        if (strcmp(ctx->kv[ctx->kv_sorted[i]].name,
                   ctx->kv[ctx->kv_sorted[i - 1]].name) == 0)
        {
            gguf_err(err, errlen, "duplicate key '%s'",
                     ctx->kv[ctx->kv_sorted[i]].name);
            goto fail;
        }
    }

    align = GGUF_DEFAULT_ALIGNMENT;
    k = gguf_find_key(ctx, "general.alignment");
    if (k >= 0) {
        if (ctx->kv[k].type != GGUF_TYPE_UINT32) {
            gguf_err(err, errlen, "general.alignment has type %s, want u32",
                     gguf_type_name(ctx->kv[k].type));
            goto fail;
        }
        align = (uint32_t) ctx->kv[k].v.u64;
        if (align == 0 || (align & (align - 1)) != 0) {
            gguf_err(err, errlen, "general.alignment %zu is not a power "
                     "of two", align);
            goto fail;
        }
    }
    ctx->alignment = align;

    for (i = 0; i < ctx->n_tensors; i++) {
        if (gguf_read_tensor(&c, &ctx->tensors[i], &offsets[i]) != 0)
        {
            goto fail;
        }
        ctx->t_sorted[i] = i;
    }
    qsort_r(ctx->t_sorted, ctx->n_tensors, sizeof(int64_t), t_cmp_ctx, ctx);
    for (i = 1; i < ctx->n_tensors; i++) {
        if (strcmp(ctx->tensors[ctx->t_sorted[i]].name,
                   ctx->tensors[ctx->t_sorted[i - 1]].name) == 0)
        {
            gguf_err(err, errlen, "duplicate tensor '%s'",
                     ctx->tensors[ctx->t_sorted[i]].name);
            goto fail;
        }
    }

    /* the data section starts at the next multiple of the alignment */
    data_off = c.off;
    if (data_off % align != 0) {
        data_off += align - data_off % align;
    }
    if (ctx->n_tensors > 0 && data_off > size) {
        gguf_err(err, errlen, "truncated file: data section at %zu, file "
                 "is %zu bytes", data_off, size);
        goto fail;
    }
    ctx->data_off = data_off;
    for (i = 0; i < ctx->n_tensors; i++) {
        gguf_tensor_t  *t = &ctx->tensors[i];

        off = offsets[i];
        if (off % align != 0) {
            gguf_err(err, errlen, "tensor '%s': offset %llu is not a "
                     "multiple of the alignment %zu", t->name,
                     (unsigned long long) off, align);
            goto fail;
        }
        if (off > size - data_off || t->nbytes > size - data_off - off) {
            end = off + t->nbytes;
            gguf_err(err, errlen, "tensor '%s': data [%llu, %llu) runs past "
                     "the end of the file (%zu data bytes)", t->name,
                     (unsigned long long) off, (unsigned long long) end,
                     size - data_off);
            goto fail;
        }
        t->data = base + data_off + off;
    }
    free(offsets);
    return ctx;

fail:
    free(offsets);
    gguf_close(ctx);
    return NULL;
}

gguf_ctx_t *
gguf_open_mem(const void *data, size_t size, char *err, size_t errlen)
{
    if (data == NULL && size != 0) {
        gguf_err(err, errlen, "no data");
        return NULL;
    }
    return gguf_parse(data, size, 0, err, errlen);
}

gguf_ctx_t *
gguf_open(const char *path, char *err, size_t errlen)
{
    struct stat  st;
    void        *p;
    int          fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        gguf_err(err, errlen, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        gguf_err(err, errlen, "stat %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        gguf_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size < 8) {
        gguf_err(err, errlen, "truncated file: %s has %lld bytes", path,
                 (long long) st.st_size);
        close(fd);
        return NULL;
    }
    p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        gguf_err(err, errlen, "mmap %s: %s", path, strerror(errno));
        return NULL;
    }
    return gguf_parse(p, st.st_size, 1, err, errlen);
}

/* --- lookups ------------------------------------------------------------- */

int
gguf_find_key(const gguf_ctx_t *ctx, const char *key)
{
    int64_t  lo = 0, hi, mid;
    int      c;

    if (ctx == NULL || key == NULL) {
        return -1;
    }
    hi = ctx->n_kv - 1;
    while (lo <= hi) {
        mid = lo + (hi - lo) / 2;
        c = strcmp(key, ctx->kv[ctx->kv_sorted[mid]].name);
        if (c == 0) {
            return (int) ctx->kv_sorted[mid];
        }
        if (c < 0) {
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    return -1;
}

const gguf_tensor_t *
gguf_find_tensor(const gguf_ctx_t *ctx, const char *name)
{
    int64_t  lo = 0, hi, mid;
    int      c;

    if (ctx == NULL || name == NULL) {
        return NULL;
    }
    hi = ctx->n_tensors - 1;
    while (lo <= hi) {
        mid = lo + (hi - lo) / 2;
        c = strcmp(name, ctx->tensors[ctx->t_sorted[mid]].name);
        if (c == 0) {
            return &ctx->tensors[ctx->t_sorted[mid]];
        }
        if (c < 0) {
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

static const gguf_kv_t *
gguf_kv(const gguf_ctx_t *ctx, const char *key)
{
    int  i = gguf_find_key(ctx, key);

    return i < 0 ? NULL : &ctx->kv[i];
}

/* an integer-typed value as a signed 128-bit-safe pair */
static int
kv_int(const gguf_kv_t *kv, int64_t *s, uint64_t *u, int *is_unsigned)
{
    *is_unsigned = 0;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:  *s = (uint8_t) kv->v.u64;  break;
    case GGUF_TYPE_INT8:   *s = (int8_t) kv->v.u64;   break;
    case GGUF_TYPE_UINT16: *s = (uint16_t) kv->v.u64; break;
    case GGUF_TYPE_INT16:  *s = (int16_t) kv->v.u64;  break;
    case GGUF_TYPE_UINT32: *s = (uint32_t) kv->v.u64; break;
    case GGUF_TYPE_INT32:  *s = (int32_t) kv->v.u64;  break;
    case GGUF_TYPE_INT64:  *s = kv->v.i64;            break;
    case GGUF_TYPE_UINT64:
        *u = kv->v.u64;
        *is_unsigned = 1;
        return 0;
    default:
        return -1;
    }
    return 0;
}

int
gguf_get_u32(const gguf_ctx_t *ctx, const char *key, uint32_t *out)
{
    const gguf_kv_t  *kv = gguf_kv(ctx, key);
    int64_t           s = 0;
    uint64_t          u = 0;
    int               uns;

    if (kv == NULL) {
        return -1;
    }
    if (kv_int(kv, &s, &u, &uns) != 0) {
        return -2;
    }
    if (uns) {
        if (u > UINT32_MAX) {
            return -2;
        }
        *out = (uint32_t) u;
        return 0;
    }
    if (s < 0 || s > UINT32_MAX) {
        return -2;
    }
    *out = (uint32_t) s;
    return 0;
}

int
gguf_get_i32(const gguf_ctx_t *ctx, const char *key, int32_t *out)
{
    const gguf_kv_t  *kv = gguf_kv(ctx, key);
    int64_t           s = 0;
    uint64_t          u = 0;
    int               uns;

    if (kv == NULL) {
        return -1;
    }
    if (kv_int(kv, &s, &u, &uns) != 0) {
        return -2;
    }
    if (uns) {
        if (u > INT32_MAX) {
            return -2;
        }
        *out = (int32_t) u;
        return 0;
    }
    if (s < INT32_MIN || s > INT32_MAX) {
        return -2;
    }
    *out = (int32_t) s;
    return 0;
}

int
gguf_get_f32(const gguf_ctx_t *ctx, const char *key, float *out)
{
    const gguf_kv_t  *kv = gguf_kv(ctx, key);
    float             f;

    if (kv == NULL) {
        return -1;
    }
    if (kv->type == GGUF_TYPE_FLOAT32) {
        memcpy(&f, &kv->v, 4);
        *out = f;
        return 0;
    }
    if (kv->type == GGUF_TYPE_FLOAT64) {
        *out = (float) kv->v.f64;
        return 0;
    }
    return -2;
}

int
gguf_get_bool(const gguf_ctx_t *ctx, const char *key, int *out)
{
    const gguf_kv_t  *kv = gguf_kv(ctx, key);

    if (kv == NULL) {
        return -1;
    }
    if (kv->type != GGUF_TYPE_BOOL) {
        return -2;
    }
    *out = (uint8_t) kv->v.u64 != 0;
    return 0;
}

int
gguf_get_str(const gguf_ctx_t *ctx, const char *key, const char **s,
    size_t *len)
{
    const gguf_kv_t  *kv = gguf_kv(ctx, key);

    if (kv == NULL) {
        return -1;
    }
    if (kv->type != GGUF_TYPE_STRING) {
        return -2;
    }
    *s = kv->str;
    *len = kv->len;
    return 0;
}

int
gguf_get_arr(const gguf_ctx_t *ctx, const char *key, gguf_type_e *elem,
    uint64_t *n, const void **data)
{
    const gguf_kv_t  *kv = gguf_kv(ctx, key);

    if (kv == NULL) {
        return -1;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        return -2;
    }
    *elem = kv->elem;
    *n = kv->n;
    *data = kv->data;
    return 0;
}

int
gguf_get_arr_str(const gguf_ctx_t *ctx, const char *key, uint64_t i,
    const char **s, size_t *len)
{
    const gguf_kv_t  *kv = gguf_kv(ctx, key);
    uint64_t          l;

    if (kv == NULL) {
        return -1;
    }
    if (kv->type != GGUF_TYPE_ARRAY || kv->elem != GGUF_TYPE_STRING
        || i >= kv->n)
    {
        return -2;
    }
    memcpy(&l, ctx->base + kv->str_off[i], 8);
    *s = (const char *) ctx->base + kv->str_off[i] + 8;
    *len = l;
    return 0;
}

uint32_t
gguf_version(const gguf_ctx_t *ctx)
{
    return ctx->version;
}

int64_t
gguf_n_keys(const gguf_ctx_t *ctx)
{
    return ctx->n_kv;
}

const char *
gguf_key_name(const gguf_ctx_t *ctx, int64_t i)
{
    return i >= 0 && i < ctx->n_kv ? ctx->kv[i].name : NULL;
}

gguf_type_e
gguf_key_type(const gguf_ctx_t *ctx, int64_t i)
{
    return i >= 0 && i < ctx->n_kv ? ctx->kv[i].type : GGUF_TYPE_COUNT;
}

int64_t
gguf_n_tensors(const gguf_ctx_t *ctx)
{
    return ctx->n_tensors;
}

const gguf_tensor_t *
gguf_tensor_at(const gguf_ctx_t *ctx, int64_t i)
{
    return i >= 0 && i < ctx->n_tensors ? &ctx->tensors[i] : NULL;
}

size_t
gguf_alignment(const gguf_ctx_t *ctx)
{
    return ctx->alignment;
}
