/*
 * GGUF writer: metadata and tensor infos are serialized into a growing
 * buffer as they are added; the file is header + metadata + infos +
 * padding + tensor data.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_write.h"
#include "quant.h"

typedef struct {
    uint8_t  *p;
    size_t    len, cap;
    int       oom;
} gbuf_t;

typedef struct {
    char      *name;
    uint32_t   n_dims;
    int64_t    ne[4];
    uint32_t   type;
    uint8_t   *data;
    size_t     nbytes;
} gw_tensor_t;

struct gguf_writer {
    uint32_t      version, alignment;
    uint64_t      n_kv;
    gbuf_t        kv;
    gw_tensor_t  *tensors;
    size_t        n_tensors, cap_tensors;
};

static void
gbuf_put(gbuf_t *b, const void *p, size_t n)
{
    size_t   cap;
    uint8_t *np;

    if (b->oom) {
        return;
    }
    if (b->len + n > b->cap) {
        cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            cap *= 2;
        }
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void
gbuf_u32(gbuf_t *b, uint32_t v)
{
    gbuf_put(b, &v, 4);
}

static void
gbuf_u64(gbuf_t *b, uint64_t v)
{
    gbuf_put(b, &v, 8);
}

static void
gbuf_str(gbuf_t *b, const char *s)
{
    gbuf_u64(b, strlen(s));
    gbuf_put(b, s, strlen(s));
}

gguf_writer_t *
gguf_writer_new(void)
{
    gguf_writer_t  *w = calloc(1, sizeof(*w));

    if (w) {
        w->version = 3;
        w->alignment = GGUF_DEFAULT_ALIGNMENT;
    }
    return w;
}

void
gguf_writer_free(gguf_writer_t *w)
{
    size_t  i;

    if (w == NULL) {
        return;
    }
    for (i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->tensors);
    free(w->kv.p);
    free(w);
}

void
gguf_writer_set_version(gguf_writer_t *w, uint32_t version)
{
    w->version = version;
}

void
gguf_writer_set_alignment(gguf_writer_t *w, uint32_t alignment)
{
    w->alignment = alignment;
    if (alignment != GGUF_DEFAULT_ALIGNMENT) {
        gguf_writer_add_u32(w, "general.alignment", alignment);
    }
}

static const size_t  gw_type_size[GGUF_TYPE_COUNT] = {
    1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8
};

int
gguf_writer_add(gguf_writer_t *w, const char *key, gguf_type_e type,
    const void *val)
{
    if ((unsigned) type >= GGUF_TYPE_COUNT || type == GGUF_TYPE_ARRAY) {
        return -1;
    }
    gbuf_str(&w->kv, key);
    gbuf_u32(&w->kv, type);
    if (type == GGUF_TYPE_STRING) {
        gbuf_str(&w->kv, val);
    } else {
        gbuf_put(&w->kv, val, gw_type_size[type]);
    }
    w->n_kv++;
    return w->kv.oom ? -1 : 0;
}

int
gguf_writer_add_u32(gguf_writer_t *w, const char *key, uint32_t v)
{
    return gguf_writer_add(w, key, GGUF_TYPE_UINT32, &v);
}

int
gguf_writer_add_i32(gguf_writer_t *w, const char *key, int32_t v)
{
    return gguf_writer_add(w, key, GGUF_TYPE_INT32, &v);
}

int
gguf_writer_add_f32(gguf_writer_t *w, const char *key, float v)
{
    return gguf_writer_add(w, key, GGUF_TYPE_FLOAT32, &v);
}

int
gguf_writer_add_bool(gguf_writer_t *w, const char *key, int v)
{
    uint8_t  b = v != 0;

    return gguf_writer_add(w, key, GGUF_TYPE_BOOL, &b);
}

int
gguf_writer_add_str(gguf_writer_t *w, const char *key, const char *s)
{
    return gguf_writer_add(w, key, GGUF_TYPE_STRING, s);
}

int
gguf_writer_add_arr(gguf_writer_t *w, const char *key, gguf_type_e elem,
    const void *data, uint64_t n)
{
    if ((unsigned) elem >= GGUF_TYPE_COUNT || elem == GGUF_TYPE_ARRAY
        || elem == GGUF_TYPE_STRING)
    {
        return -1;
    }
    gbuf_str(&w->kv, key);
    gbuf_u32(&w->kv, GGUF_TYPE_ARRAY);
    gbuf_u32(&w->kv, elem);
    gbuf_u64(&w->kv, n);
    gbuf_put(&w->kv, data, n * gw_type_size[elem]);
    w->n_kv++;
    return w->kv.oom ? -1 : 0;
}

int
gguf_writer_add_arr_str(gguf_writer_t *w, const char *key,
    const char *const *strs, uint64_t n)
{
    uint64_t  i;

    gbuf_str(&w->kv, key);
    gbuf_u32(&w->kv, GGUF_TYPE_ARRAY);
    gbuf_u32(&w->kv, GGUF_TYPE_STRING);
    gbuf_u64(&w->kv, n);
    for (i = 0; i < n; i++) {
        gbuf_str(&w->kv, strs[i]);
    }
    w->n_kv++;
    return w->kv.oom ? -1 : 0;
}

int
gguf_writer_add_tensor(gguf_writer_t *w, const char *name, uint32_t n_dims,
    const int64_t *ne, uint32_t type, const void *data, size_t nbytes)
{
    gw_tensor_t  *t, *nt;
    size_t        cap;
    uint32_t      d;

    if (n_dims > 4) {
        return -1;
    }
    if (w->n_tensors == w->cap_tensors) {
        cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        nt = realloc(w->tensors, cap * sizeof(*nt));
        if (nt == NULL) {
            return -1;
        }
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    t->data = malloc(nbytes ? nbytes : 1);
    if (t->name == NULL || t->data == NULL) {
        free(t->name);
        free(t->data);
        return -1;
    }
    t->n_dims = n_dims;
    for (d = 0; d < 4; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
    }
    t->type = type;
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
    w->n_tensors++;
    return 0;
}

static size_t
gw_pad(size_t off, uint32_t align)
{
    if (align == 0 || off % align == 0) {
        return off;
    }
    return off + align - off % align;
}

void *
gguf_writer_to_mem(gguf_writer_t *w, size_t *size)
{
    gbuf_t    b = { 0 };
    size_t    i, off = 0, data_start;
    uint32_t  d;
    static const uint8_t  zeros[64];

    gbuf_put(&b, "GGUF", 4);
    gbuf_u32(&b, w->version);
    gbuf_u64(&b, w->n_tensors);
    gbuf_u64(&b, w->n_kv);
    gbuf_put(&b, w->kv.p, w->kv.len);
    for (i = 0; i < w->n_tensors; i++) {
        gbuf_str(&b, w->tensors[i].name);
        gbuf_u32(&b, w->tensors[i].n_dims);
        for (d = 0; d < w->tensors[i].n_dims; d++) {
            gbuf_u64(&b, (uint64_t) w->tensors[i].ne[d]);
        }
        gbuf_u32(&b, w->tensors[i].type);
        gbuf_u64(&b, off);
        off = gw_pad(off + w->tensors[i].nbytes, w->alignment);
    }
    data_start = gw_pad(b.len, w->alignment);
    while (b.len < data_start) {
        gbuf_put(&b, zeros, data_start - b.len < sizeof(zeros)
                            ? data_start - b.len : sizeof(zeros));
    }
    for (i = 0; i < w->n_tensors; i++) {
        gbuf_put(&b, w->tensors[i].data, w->tensors[i].nbytes);
        while ((b.len - data_start) % (w->alignment ? w->alignment : 1)
               && i + 1 < w->n_tensors)
        {
            gbuf_put(&b, zeros, 1);
        }
        if (b.oom) {
            break;
        }
    }
    if (b.oom || w->kv.oom) {
        free(b.p);
        return NULL;
    }
    *size = b.len;
    return b.p;
}

int
gguf_writer_write(gguf_writer_t *w, const char *path, char *err,
    size_t errlen)
{
    void   *p;
    size_t  size = 0;
    FILE   *f;
    int     rc = 0;

    p = gguf_writer_to_mem(w, &size);
    if (p == NULL) {
        snprintf(err, errlen, "%s: out of memory", __func__);
        return -1;
    }
    f = fopen(path, "wb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s: %s", __func__, path, strerror(errno));
        free(p);
        return -1;
    }
    if (fwrite(p, 1, size, f) != size) {
        snprintf(err, errlen, "%s: %s: short write", __func__, path);
        rc = -1;
    }
    if (fclose(f) != 0 && rc == 0) {
        snprintf(err, errlen, "%s: %s: %s", __func__, path, strerror(errno));
        rc = -1;
    }
    free(p);
    return rc;
}
