/*
 * GGUF reader and writer: a round trip of every metadata type, then one
 * crafted bad file per reader check.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "tap.h"

static char  err[512];

/* --- a raw byte builder for files the writer cannot produce -------------- */

typedef struct {
    uint8_t  p[4096];
    size_t   n;
} raw_t;

static void
raw_put(raw_t *r, const void *p, size_t n)
{
    memcpy(r->p + r->n, p, n);
    r->n += n;
}

static void
raw_u32(raw_t *r, uint32_t v)
{
    raw_put(r, &v, 4);
}

static void
raw_u64(raw_t *r, uint64_t v)
{
    raw_put(r, &v, 8);
}

static void
raw_str(raw_t *r, const char *s)
{
    raw_u64(r, strlen(s));
    raw_put(r, s, strlen(s));
}

static void
raw_header(raw_t *r, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    r->n = 0;
    raw_put(r, "GGUF", 4);
    raw_u32(r, version);
    raw_u64(r, n_tensors);
    raw_u64(r, n_kv);
}

static void
raw_pad(raw_t *r, size_t align)
{
    while (r->n % align) {
        r->p[r->n++] = 0;
    }
}

/* expects gguf_open_mem to fail with a message containing want */
static void
refuses(const void *p, size_t n, const char *want, const char *what)
{
    gguf_ctx_t  *g;

    err[0] = '\0';
    g = gguf_open_mem(p, n, err, sizeof(err));
    if (!ok(g == NULL && strstr(err, want) != NULL, "refuses %s", what)) {
        printf("#   error: '%s' (want '%s')\n", err, want);
    }
    gguf_close(g);
}

static void *
writer_mem(gguf_writer_t *w, size_t *n)
{
    void  *p = gguf_writer_to_mem(w, n);

    gguf_writer_free(w);
    return p;
}

/* a small valid file: one key, one F32 tensor */
static void *
small_file(size_t *n)
{
    gguf_writer_t  *w = gguf_writer_new();
    float           f[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    int64_t         ne[2] = { 4, 2 };

    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_tensor(w, "t", 2, ne, GGML_TYPE_F32, f, sizeof(f));
    return writer_mem(w, n);
}

static void
test_roundtrip(uint32_t version)
{
    gguf_writer_t        *w = gguf_writer_new();
    gguf_ctx_t           *g;
    const gguf_tensor_t  *t;
    uint8_t               u8 = 200, b = 1;
    int8_t                i8 = -5;
    uint16_t              u16 = 60000;
    int16_t               i16 = -30000;
    uint64_t              u64 = 5000000000ULL, n;
    int64_t               i64 = -7, ne[2] = { 32, 3 };
    double                f64 = 2.5;
    int32_t               arr[3] = { 7, -8, 9 }, i32v;
    uint32_t              u32v;
    float                 f32v, data[96];
    const char           *strs[3] = { "a", "", "\xe2\x96\x81hello" };
    const char           *s;
    const void           *d;
    size_t                len, sz;
    void                 *mem;
    gguf_type_e           elem;
    int                   bv, i;
    char                  path[] = "/tmp/test_gguf_XXXXXX";

    for (i = 0; i < 96; i++) {
        data[i] = (float) i * 0.5f;
    }
    gguf_writer_set_version(w, version);
    gguf_writer_set_alignment(w, 64);
    gguf_writer_add(w, "k.u8", GGUF_TYPE_UINT8, &u8);
    gguf_writer_add(w, "k.i8", GGUF_TYPE_INT8, &i8);
    gguf_writer_add(w, "k.u16", GGUF_TYPE_UINT16, &u16);
    gguf_writer_add(w, "k.i16", GGUF_TYPE_INT16, &i16);
    gguf_writer_add_u32(w, "k.u32", 4000000000U);
    gguf_writer_add_i32(w, "k.i32", -12);
    gguf_writer_add_f32(w, "k.f32", 0.25f);
    gguf_writer_add(w, "k.bool", GGUF_TYPE_BOOL, &b);
    gguf_writer_add_str(w, "k.str", "h\xc3\xa9llo");
    gguf_writer_add(w, "k.u64", GGUF_TYPE_UINT64, &u64);
    gguf_writer_add(w, "k.i64", GGUF_TYPE_INT64, &i64);
    gguf_writer_add(w, "k.f64", GGUF_TYPE_FLOAT64, &f64);
    gguf_writer_add_arr(w, "k.arr", GGUF_TYPE_INT32, arr, 3);
    gguf_writer_add_arr_str(w, "k.strs", strs, 3);
    gguf_writer_add_tensor(w, "w.f32", 2, ne, GGML_TYPE_F32, data,
                           sizeof(data));
    ne[1] = 1;
    gguf_writer_add_tensor(w, "w.vec", 1, ne, GGML_TYPE_F32, data,
                           32 * sizeof(float));
    mem = writer_mem(w, &sz);

    g = gguf_open_mem(mem, sz, err, sizeof(err));
    ok(g != NULL, "v%u: round trip opens (%s)", version, g ? "" : err);
    if (g == NULL) {
        free(mem);
        return;
    }
    is_int(gguf_version(g), version, "v%u: version", version);
    is_int(gguf_alignment(g), 64, "v%u: alignment from general.alignment",
           version);
    is_int(gguf_n_keys(g), 15, "v%u: 15 keys", version);
    is_int(gguf_get_u32(g, "k.u8", &u32v), 0, "u8 reads as u32");
    is_int(u32v, 200, "u8 value");
    is_int(gguf_get_i32(g, "k.i8", &i32v), 0, "i8 reads as i32");
    is_int(i32v, -5, "i8 value");
    is_int(gguf_get_u32(g, "k.i8", &u32v), -2, "negative i8 is not a u32");
    is_int(gguf_get_u32(g, "k.u16", &u32v), 0, "u16 reads");
    is_int(u32v, 60000, "u16 value");
    is_int(gguf_get_i32(g, "k.i16", &i32v), 0, "i16 reads");
    is_int(i32v, -30000, "i16 value");
    is_int(gguf_get_u32(g, "k.u32", &u32v), 0, "u32 reads");
    is_int(u32v, 4000000000U, "u32 value");
    is_int(gguf_get_i32(g, "k.u32", &i32v), -2, "u32 > INT32_MAX is no i32");
    is_int(gguf_get_i32(g, "k.i32", &i32v), 0, "i32 reads");
    is_int(i32v, -12, "i32 value");
    is_int(gguf_get_f32(g, "k.f32", &f32v), 0, "f32 reads");
    ok(f32v == 0.25f, "f32 value");
    is_int(gguf_get_f32(g, "k.f64", &f32v), 0, "f64 reads as f32");
    ok(f32v == 2.5f, "f64 value");
    is_int(gguf_get_bool(g, "k.bool", &bv), 0, "bool reads");
    is_int(bv, 1, "bool value");
    is_int(gguf_get_bool(g, "k.u8", &bv), -2, "u8 is not a bool");
    is_int(gguf_get_str(g, "k.str", &s, &len), 0, "string reads");
    ok(len == 6 && memcmp(s, "h\xc3\xa9llo", 6) == 0, "string value");
    is_int(gguf_get_u32(g, "k.u64", &u32v), -2, "u64 > UINT32_MAX is no u32");
    is_int(gguf_get_i32(g, "k.i64", &i32v), 0, "i64 that fits reads as i32");
    is_int(i32v, -7, "i64 value");
    is_int(gguf_get_u32(g, "k.str", &u32v), -2, "string is not a u32");
    is_int(gguf_get_str(g, "k.u32", &s, &len), -2, "u32 is not a string");
    is_int(gguf_get_u32(g, "k.nope", &u32v), -1, "missing key is -1");
    is_int(gguf_find_key(g, "k.nope"), -1, "find_key of a missing key");
    ok(gguf_find_key(g, "k.f32") >= 0, "find_key of a present key");
    is_int(gguf_get_arr(g, "k.arr", &elem, &n, &d), 0, "array reads");
    ok(elem == GGUF_TYPE_INT32 && n == 3
       && memcmp(d, arr, sizeof(arr)) == 0, "array elements");
    is_int(gguf_get_arr(g, "k.str", &elem, &n, &d), -2,
           "string is not an array");
    is_int(gguf_get_arr_str(g, "k.strs", 2, &s, &len), 0,
           "string array element reads");
    ok(len == 8 && memcmp(s, "\xe2\x96\x81hello", 8) == 0,
       "string array element value");
    is_int(gguf_get_arr_str(g, "k.strs", 1, &s, &len), 0, "empty element");
    is_int(len, 0, "empty element length");
    is_int(gguf_get_arr_str(g, "k.strs", 3, &s, &len), -2,
           "string array index past the end");
    is_int(gguf_get_arr_str(g, "k.arr", 0, &s, &len), -2,
           "numeric array is not a string array");

    is_int(gguf_n_tensors(g), 2, "two tensors");
    t = gguf_find_tensor(g, "w.f32");
    ok(t != NULL && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 3
       && t->ne[2] == 1 && t->type == GGML_TYPE_F32
       && t->nbytes == sizeof(data), "tensor info");
    ok(t && memcmp(t->data, data, sizeof(data)) == 0, "tensor data");
    ok(t && ((const uint8_t *) t->data - (const uint8_t *) mem) % 64 == 0,
       "tensor data aligned to 64");
    t = gguf_find_tensor(g, "w.vec");
    ok(t && ((const uint8_t *) t->data - (const uint8_t *) mem) % 64 == 0
       && memcmp(t->data, data, 32 * sizeof(float)) == 0,
       "second tensor aligned and intact");
    ok(gguf_find_tensor(g, "w.none") == NULL, "missing tensor is NULL");
    gguf_close(g);

    /* the same through a file (mmap) */
    i = mkstemp(path);
    ok(i >= 0 && write(i, mem, sz) == (ssize_t) sz, "temp file written");
    close(i);
    g = gguf_open(path, err, sizeof(err));
    ok(g && gguf_find_tensor(g, "w.f32")
       && memcmp(gguf_find_tensor(g, "w.f32")->data, data, sizeof(data))
          == 0, "file opens through mmap");
    gguf_close(g);
    unlink(path);
    free(mem);
}

static void
test_truncated(void)
{
    size_t   n, cut;
    void    *p = small_file(&n);
    int      bad = 0;
    gguf_ctx_t  *g;

    /* every proper prefix must be refused without reading past it */
    for (cut = 0; cut < n; cut++) {
        void  *q = malloc(cut ? cut : 1);

        memcpy(q, p, cut);
        g = gguf_open_mem(q, cut, err, sizeof(err));
        if (g != NULL || (strstr(err, "truncated") == NULL
                          && strstr(err, "past the end") == NULL
                          && strstr(err, "cannot fit") == NULL))
        {
            bad++;
            printf("# prefix %zu: %s\n", cut, g ? "accepted" : err);
        }
        gguf_close(g);
        free(q);
    }
    is_int(bad, 0, "all %zu prefixes refused as truncated", n);
    g = gguf_open_mem(p, n, err, sizeof(err));
    ok(g != NULL, "the whole file opens");
    gguf_close(g);
    refuses(p, 0, "truncated", "an empty buffer");
    free(p);
}

static void
test_bad_headers(void)
{
    raw_t           r;
    gguf_writer_t  *w;
    size_t          n;
    uint8_t        *p;
    int64_t         ne[2] = { 4, 1 };
    float           f[4] = { 0 };

    p = small_file(&n);
    memcpy(p, "GGUG", 4);
    refuses(p, n, "bad magic", "a wrong magic");
    free(p);

    w = gguf_writer_new();
    gguf_writer_set_version(w, 1);
    p = writer_mem(w, &n);
    refuses(p, n, "unsupported version 1", "version 1");
    free(p);

    w = gguf_writer_new();
    gguf_writer_set_version(w, 4);
    p = writer_mem(w, &n);
    refuses(p, n, "unsupported version 4", "version 4");
    free(p);

    w = gguf_writer_new();
    gguf_writer_set_version(w, 0x03000000);
    p = writer_mem(w, &n);
    refuses(p, n, "big-endian", "a big-endian header");
    free(p);

    raw_header(&r, 3, 0, UINT64_MAX / 2);
    refuses(r.p, r.n, "metadata count", "an overflowing metadata count");
    raw_header(&r, 3, UINT64_MAX, 0);
    refuses(r.p, r.n, "tensor count", "an overflowing tensor count");

    raw_header(&r, 3, 0, 1);
    raw_str(&r, "k");
    raw_u32(&r, 13);
    raw_u32(&r, 0);
    refuses(r.p, r.n, "unknown value type 13", "an unknown value type");

    raw_header(&r, 3, 0, 1);
    raw_str(&r, "k");
    raw_u32(&r, GGUF_TYPE_ARRAY);
    raw_u32(&r, GGUF_TYPE_ARRAY);
    raw_u64(&r, 0);
    refuses(r.p, r.n, "nested", "a nested array");

    raw_header(&r, 3, 0, 1);
    raw_str(&r, "k");
    raw_u32(&r, GGUF_TYPE_ARRAY);
    raw_u32(&r, 42);
    raw_u64(&r, 0);
    refuses(r.p, r.n, "unknown array element type", "an unknown array type");

    raw_header(&r, 3, 0, 1);
    raw_str(&r, "k");
    raw_u32(&r, GGUF_TYPE_ARRAY);
    raw_u32(&r, GGUF_TYPE_UINT64);
    raw_u64(&r, UINT64_MAX / 4);
    refuses(r.p, r.n, "runs past the end", "an overflowing array count");

    raw_header(&r, 3, 0, 1);
    raw_str(&r, "k");
    raw_u32(&r, GGUF_TYPE_ARRAY);
    raw_u32(&r, GGUF_TYPE_STRING);
    raw_u64(&r, 1000);
    raw_str(&r, "x");
    refuses(r.p, r.n, "runs past the end", "too many strings");

    raw_header(&r, 3, 0, 1);
    raw_str(&r, "k");
    raw_u32(&r, GGUF_TYPE_STRING);
    raw_u64(&r, UINT64_MAX - 3);
    refuses(r.p, r.n, "truncated", "an overflowing string length");

    raw_header(&r, 3, 0, 1);
    raw_u64(&r, 0);
    raw_u32(&r, GGUF_TYPE_UINT8);
    raw_u32(&r, 0);
    refuses(r.p, r.n, "empty metadata key", "an empty key");

    raw_header(&r, 3, 0, 1);
    raw_u64(&r, 3);
    raw_put(&r, "a\0b", 3);
    raw_u32(&r, GGUF_TYPE_UINT8);
    raw_u32(&r, 0);
    refuses(r.p, r.n, "NUL", "a key with a NUL byte");

    w = gguf_writer_new();
    gguf_writer_add_u32(w, "dup", 1);
    gguf_writer_add_u32(w, "other", 1);
    gguf_writer_add_str(w, "dup", "x");
    p = writer_mem(w, &n);
    refuses(p, n, "duplicate key 'dup'", "a duplicate key");
    free(p);

    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", 1, ne, GGML_TYPE_F32, f, sizeof(f));
    gguf_writer_add_tensor(w, "t", 1, ne, GGML_TYPE_F32, f, sizeof(f));
    p = writer_mem(w, &n);
    refuses(p, n, "duplicate tensor 't'", "a duplicate tensor");
    free(p);

    w = gguf_writer_new();
    gguf_writer_set_alignment(w, 48);
    p = writer_mem(w, &n);
    refuses(p, n, "not a power of two", "alignment 48");
    free(p);

    w = gguf_writer_new();
    gguf_writer_add_u32(w, "general.alignment", 0);
    p = writer_mem(w, &n);
    refuses(p, n, "not a power of two", "alignment 0");
    free(p);

    w = gguf_writer_new();
    gguf_writer_add_str(w, "general.alignment", "32");
    p = writer_mem(w, &n);
    refuses(p, n, "general.alignment has type", "a string alignment");
    free(p);
}

/* a file with one tensor info written raw, data of data_len bytes */
static void
raw_tensor(raw_t *r, const char *name, uint32_t n_dims, const uint64_t *ne,
    uint32_t type, uint64_t offset, size_t data_len)
{
    uint32_t  d;

    raw_header(r, 3, 1, 0);
    raw_str(r, name);
    raw_u32(r, n_dims);
    for (d = 0; d < n_dims; d++) {
        raw_u64(r, ne[d]);
    }
    raw_u32(r, type);
    raw_u64(r, offset);
    raw_pad(r, 32);
    memset(r->p + r->n, 0, data_len);
    r->n += data_len;
}

static void
test_bad_tensors(void)
{
    raw_t           r;
    gguf_writer_t  *w;
    uint8_t        *p;
    size_t          n;
    int64_t         ne4[4] = { 32, 1, 1, 1 };
    uint64_t        ne[5] = { 32, 1, 1, 1, 1 };
    uint8_t         q[34] = { 0 };
    char            longname[80];
    gguf_ctx_t     *g;

    raw_tensor(&r, "t", 1, ne, GGML_TYPE_F32, 0, 128);
    g = gguf_open_mem(r.p, r.n, err, sizeof(err));
    ok(g != NULL, "the raw tensor file is valid (%s)", g ? "" : err);
    gguf_close(g);

    raw_tensor(&r, "t", 5, ne, GGML_TYPE_F32, 0, 128);
    refuses(r.p, r.n, "n_dims 5 > 4", "n_dims 5");

    raw_tensor(&r, "t", 1, ne, 99, 0, 128);
    refuses(r.p, r.n, "unknown type 99", "an unknown tensor type");

    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", 1, ne4, 4, q, 32);
    p = writer_mem(w, &n);
    refuses(p, n, "unknown type 4", "a removed ggml type (4)");
    free(p);

    raw_tensor(&r, "t", 1, ne, GGML_TYPE_F32, 16, 256);
    refuses(r.p, r.n, "not a multiple of the alignment",
            "a misaligned tensor offset");

    raw_tensor(&r, "t", 1, ne, GGML_TYPE_F32, 0, 64);
    refuses(r.p, r.n, "runs past the end", "tensor data past the end");

    raw_tensor(&r, "t", 1, ne, GGML_TYPE_F32, UINT64_MAX - 31, 128);
    refuses(r.p, r.n, "runs past the end", "a huge tensor offset");

    ne[0] = 1ULL << 40;
    ne[1] = 1ULL << 40;
    raw_tensor(&r, "t", 2, ne, GGML_TYPE_F32, 0, 128);
    refuses(r.p, r.n, "overflows", "an element count overflowing int64");

    ne[0] = 1ULL << 62;
    ne[1] = 1;
    raw_tensor(&r, "t", 1, ne, GGML_TYPE_F32, 0, 128);
    refuses(r.p, r.n, "size overflows", "a byte size overflowing");

    ne[0] = 48;
    raw_tensor(&r, "t", 1, ne, GGML_TYPE_Q8_0, 0, 128);
    refuses(r.p, r.n, "not a multiple of the q8_0 block size",
            "a row not made of whole blocks");

    ne[0] = 32;
    memset(longname, 'x', 70);
    longname[70] = '\0';
    raw_tensor(&r, longname, 1, ne, GGML_TYPE_F32, 0, 128);
    refuses(r.p, r.n, "tensor name of 70 bytes", "a tensor name too long");

    raw_tensor(&r, "", 1, ne, GGML_TYPE_F32, 0, 128);
    refuses(r.p, r.n, "tensor name of 0 bytes", "an empty tensor name");
}

static void
test_open_errors(void)
{
    gguf_ctx_t  *g;

    g = gguf_open("/nonexistent/model.gguf", err, sizeof(err));
    ok(g == NULL && strstr(err, "/nonexistent/model.gguf") != NULL,
       "a missing file names the path");
    g = gguf_open("/tmp", err, sizeof(err));
    ok(g == NULL && strstr(err, "not a regular file") != NULL,
       "a directory is refused");
}

int
main(void)
{
    test_roundtrip(3);
    test_roundtrip(2);
    test_truncated();
    test_bad_headers();
    test_bad_tensors();
    test_open_errors();
    return done_testing();
}
