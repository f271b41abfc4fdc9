/*
 * GGUF writer: metadata and tensor infos are serialized into a growing
 * buffer as they are added; the file is header + metadata + infos +
 * padding + tensor data.
 */

#include <errno.h>
#include <math.h>
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

    if (b->oom || n == 0) {
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

/* --- random Llama models ------------------------------------------------- */

void
gguf_random_llama_defaults(gguf_random_llama_t *p)
{
    memset(p, 0, sizeof(*p));
    p->dim = 64;
    p->n_layers = 2;
    p->n_heads = 4;
    p->n_kv_heads = 2;
    p->ffn_dim = 128;
    p->n_vocab = 512;
    p->n_ctx = 256;
    p->wtype = GGML_TYPE_F32;
    p->seed = 1;
    p->name = "random-llama";
}

static uint64_t
rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

static float
rng_uniform(uint64_t *s)
{
    return (float) (rng_next(s) >> 40) / 16777216.0f * 2.0f - 1.0f;
}

static int
add_random_tensor(gguf_writer_t *w, const char *name, int cols, int rows,
    uint32_t type, float scale, float offset, uint64_t *rng, char *err,
    size_t errlen)
{
    int64_t   ne[2] = { cols, rows };
    size_t    rs = quant_row_size(type, cols), i;
    float    *f;
    uint8_t  *q;
    int       r, rc;

    if (rs == 0) {
        snprintf(err, errlen, "%s: %s: %d columns cannot be stored as %s",
                 __func__, name, cols, quant_type_name(type));
        return -1;
    }
    f = malloc((size_t) cols * sizeof(float));
    q = malloc(rs * (size_t) rows);
    if (f == NULL || q == NULL) {
        free(f);
        free(q);
        snprintf(err, errlen, "%s: out of memory", __func__);
        return -1;
    }
    for (r = 0; r < rows; r++) {
        for (i = 0; i < (size_t) cols; i++) {
            f[i] = offset + scale * rng_uniform(rng);
        }
        if (quant_quantize_row(type, f, q + rs * r, cols) != 0) {
            free(f);
            free(q);
            snprintf(err, errlen, "%s: cannot write type %s", __func__,
                     quant_type_name(type));
            return -1;
        }
    }
    rc = gguf_writer_add_tensor(w, name, rows > 1 ? 2 : 1, ne, type, q,
                                rs * rows);
    free(f);
    free(q);
    if (rc != 0) {
        snprintf(err, errlen, "%s: out of memory", __func__);
    }
    return rc;
}

/* "▁", the letters, "▁" + letter, every prefix of a few words with and
   without "▁" (BPE merges need the intermediate pieces), then filler */
static int
random_piece(int k, char *buf, size_t size)
{
    static const char  *words[] = {
        "the", "and", "ing", "hello", "world", "cache", "prompt", "model",
        "token", "pasta", "recipe", "quick", "brown", "fox", "dog", "is",
        "it", "to", "of", "on", "in", "at", "er", "ed"
    };
    const int  nw = sizeof(words) / sizeof(words[0]);
    int        i, l, len, sp;

    if (k == 0) {
        return snprintf(buf, size, "\xe2\x96\x81");
    }
    if ((k -= 1) < 26) {
        return snprintf(buf, size, "%c", 'a' + k);
    }
    if ((k -= 26) < 26) {
        return snprintf(buf, size, "\xe2\x96\x81%c", 'a' + k);
    }
    k -= 26;
    for (i = 0; i < nw; i++) {
        len = (int) strlen(words[i]);
        for (l = 2; l <= len; l++) {
            for (sp = 0; sp < 2; sp++) {
                if (k-- == 0) {
                    return snprintf(buf, size, "%s%.*s",
                                    sp ? "\xe2\x96\x81" : "", l, words[i]);
                }
            }
        }
    }
    /* k >= 0 here: -k - 1 counts down from -1, and C's truncating
       division keeps the three "digits" distinct until -26^3; past that
       they would repeat, so the rest are numbered */
    k = -k - 1;
    if (k > -26 * 26 * 26) {
        return snprintf(buf, size, "%c%c%c", 'A' + k / 676 % 26,
                        'A' + k / 26 % 26, 'A' + k % 26);
    }
    return snprintf(buf, size, "<extra_%d>", -k);
}

static int
random_vocab(gguf_writer_t *w, int n_vocab)
{
    char     **toks;
    float     *scores;
    int32_t   *types;
    char       buf[32];
    int        i, j, dup, rc = -1;

    toks = calloc(n_vocab, sizeof(char *));
    scores = calloc(n_vocab, sizeof(float));
    types = calloc(n_vocab, sizeof(int32_t));
    if (toks == NULL || scores == NULL || types == NULL) {
        goto done;
    }
    for (i = 0, j = 0; i < n_vocab; i++) {
        if (i == 0) {
            snprintf(buf, sizeof(buf), "<unk>");
            types[i] = 2;
        } else if (i == 1) {
            snprintf(buf, sizeof(buf), "<s>");
            types[i] = 3;
        } else if (i == 2) {
            snprintf(buf, sizeof(buf), "</s>");
            types[i] = 3;
        } else if (i < 259) {
            snprintf(buf, sizeof(buf), "<0x%02X>", i - 3);
            types[i] = 6;
        } else {
            /* skip prefixes already present ("in" is a word and a
               prefix of "ing") */
            do {
                random_piece(j++, buf, sizeof(buf));
                /* the filler (upper case, <extra_N>) cannot collide */
                for (dup = 0, rc = 259; rc < i && !dup && j < 600; rc++) {
                    dup = strcmp(toks[rc], buf) == 0;
                }
            } while (dup);
            rc = -1;
            types[i] = 1;
            /* longer pieces score higher so merges prefer them */
            scores[i] = (float) strlen(buf) - (float) i / n_vocab;
        }
        toks[i] = strdup(buf);
        if (toks[i] == NULL) {
            goto done;
        }
    }
    rc = gguf_writer_add_str(w, "tokenizer.ggml.model", "llama")
         | gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens",
                                   (const char *const *) toks, n_vocab)
         | gguf_writer_add_arr(w, "tokenizer.ggml.scores",
                               GGUF_TYPE_FLOAT32, scores, n_vocab)
         | gguf_writer_add_arr(w, "tokenizer.ggml.token_type",
                               GGUF_TYPE_INT32, types, n_vocab)
         | gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0)
         | gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1)
         | gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2)
         | gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 1);

done:
    if (toks) {
        for (i = 0; i < n_vocab; i++) {
            free(toks[i]);
        }
    }
    free(toks);
    free(scores);
    free(types);
    return rc;
}

gguf_writer_t *
gguf_random_llama_writer(const gguf_random_llama_t *p,
    const char *skip_tensor, char *err, size_t errlen)
{
    gguf_writer_t  *w;
    uint64_t        rng = p->seed * 0x9e3779b97f4a7c15ULL + 0x1234567ULL;
    int             l, hd, kvd, rc = 0;
    char            name[64];
    float           sd, sf;

    if (p->dim <= 0 || p->n_heads <= 0 || p->dim % p->n_heads != 0
        || p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads != 0
        || p->n_layers <= 0 || p->ffn_dim <= 0 || p->n_vocab < 262
        || p->n_ctx <= 0)
    {
        snprintf(err, errlen, "%s: bad shape (vocab must be >= 262, heads "
                 "must divide dim, kv heads must divide heads)", __func__);
        return NULL;
    }
    w = gguf_writer_new();
    if (w == NULL) {
        snprintf(err, errlen, "%s: out of memory", __func__);
        return NULL;
    }
    hd = p->dim / p->n_heads;
    kvd = hd * p->n_kv_heads;
    sd = 1.0f / sqrtf((float) p->dim);
    sf = 1.0f / sqrtf((float) p->ffn_dim);

    rc |= gguf_writer_add_str(w, "general.architecture", "llama");
    rc |= gguf_writer_add_str(w, "general.name",
                              p->name ? p->name : "random-llama");
    rc |= gguf_writer_add_u32(w, "llama.context_length", p->n_ctx);
    rc |= gguf_writer_add_u32(w, "llama.embedding_length", p->dim);
    rc |= gguf_writer_add_u32(w, "llama.block_count", p->n_layers);
    rc |= gguf_writer_add_u32(w, "llama.feed_forward_length", p->ffn_dim);
    rc |= gguf_writer_add_u32(w, "llama.attention.head_count", p->n_heads);
    rc |= gguf_writer_add_u32(w, "llama.attention.head_count_kv",
                              p->n_kv_heads);
    rc |= gguf_writer_add_u32(w, "llama.rope.dimension_count", hd);
    rc |= gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon",
                              1e-5f);
    if (p->rope_base > 0.0f) {
        rc |= gguf_writer_add_f32(w, "llama.rope.freq_base", p->rope_base);
    }
    rc |= gguf_writer_add_u32(w, "general.file_type", p->wtype);
    rc |= random_vocab(w, p->n_vocab);
    if (rc != 0) {
        snprintf(err, errlen, "%s: out of memory", __func__);
        goto fail;
    }

#define T(nm, cols, rows, type, scale, off)                                  \
    if ((skip_tensor == NULL || strcmp(skip_tensor, nm) != 0)                \
        && add_random_tensor(w, nm, cols, rows, type, scale, off, &rng, err, \
                             errlen) != 0)                                   \
    {                                                                        \
        goto fail;                                                           \
    }

    T("token_embd.weight", p->dim, p->n_vocab, p->wtype, 1.0f, 0.0f)
    for (l = 0; l < p->n_layers; l++) {
#define N(s) (snprintf(name, sizeof(name), "blk.%d." s, l), name)
        T(N("attn_norm.weight"), p->dim, 1, GGML_TYPE_F32, 0.1f, 1.0f)
        T(N("attn_q.weight"), p->dim, p->dim, p->wtype, sd, 0.0f)
        T(N("attn_k.weight"), p->dim, kvd, p->wtype, sd, 0.0f)
        T(N("attn_v.weight"), p->dim, kvd, p->wtype, sd, 0.0f)
        T(N("attn_output.weight"), p->dim, p->dim, p->wtype, sd, 0.0f)
        T(N("ffn_norm.weight"), p->dim, 1, GGML_TYPE_F32, 0.1f, 1.0f)
        T(N("ffn_gate.weight"), p->dim, p->ffn_dim, p->wtype, sd, 0.0f)
        T(N("ffn_up.weight"), p->dim, p->ffn_dim, p->wtype, sd, 0.0f)
        T(N("ffn_down.weight"), p->ffn_dim, p->dim, p->wtype, sf, 0.0f)
#undef N
    }
    T("output_norm.weight", p->dim, 1, GGML_TYPE_F32, 0.1f, 1.0f)
    if (!p->tied) {
        T("output.weight", p->dim, p->n_vocab, p->wtype, sd * 4.0f, 0.0f)
    }

#undef T

    return w;

fail:
    gguf_writer_free(w);
    return NULL;
}

int
gguf_write_random_llama(const gguf_random_llama_t *p, const char *path,
    char *err, size_t errlen)
{
    gguf_writer_t  *w = gguf_random_llama_writer(p, NULL, err, errlen);
    int             rc;

    if (w == NULL) {
        return -1;
    }
    rc = gguf_writer_write(w, path, err, errlen);
    gguf_writer_free(w);
    return rc;
}

/* --- random Falcon, MPT and BERT models ---------------------------------- */

void
gguf_random_arch_defaults(gguf_random_arch_t *p, const char *arch)
{
    memset(p, 0, sizeof(*p));
    gguf_random_llama_defaults(&p->base);
    p->arch = arch ? arch : "llama";
    if (strcmp(p->arch, "falcon") == 0) {
        p->base.n_kv_heads = 1;
        p->base.name = "random-falcon";
    } else if (strcmp(p->arch, "mpt") == 0) {
        p->base.n_kv_heads = p->base.n_heads;
        p->alibi_bias = 8.0f;
        p->base.name = "random-mpt";
    } else if (strcmp(p->arch, "bert") == 0) {
        p->base.n_kv_heads = p->base.n_heads;
        p->pooling = 1;
        p->base.name = "random-bert";
    }
}

static int
random_arch_keys(gguf_writer_t *w, const gguf_random_arch_t *p)
{
    const gguf_random_llama_t  *b = &p->base;
    const char                 *a = p->arch;
    char                        key[96];
    int                         rc = 0;

#define KEY(s)  (snprintf(key, sizeof(key), "%s." s, a), key)

    rc |= gguf_writer_add_str(w, "general.architecture", a);
    rc |= gguf_writer_add_str(w, "general.name", b->name ? b->name : a);
    rc |= gguf_writer_add_u32(w, KEY("context_length"), b->n_ctx);
    rc |= gguf_writer_add_u32(w, KEY("embedding_length"), b->dim);
    rc |= gguf_writer_add_u32(w, KEY("block_count"), b->n_layers);
    rc |= gguf_writer_add_u32(w, KEY("feed_forward_length"), b->ffn_dim);
    rc |= gguf_writer_add_u32(w, KEY("attention.head_count"), b->n_heads);
    rc |= gguf_writer_add_u32(w, KEY("attention.head_count_kv"),
                              b->n_kv_heads);
    rc |= gguf_writer_add_f32(w, KEY("attention.layer_norm_epsilon"),
                              1e-5f);
    if (strcmp(a, "falcon") == 0 && b->rope_base > 0.0f) {
        rc |= gguf_writer_add_f32(w, KEY("rope.freq_base"), b->rope_base);
    }
    if (strcmp(a, "mpt") == 0) {
        rc |= gguf_writer_add_f32(w, KEY("attention.max_alibi_bias"),
                                  p->alibi_bias);
        if (p->clamp_kqv > 0.0f) {
            rc |= gguf_writer_add_f32(w, KEY("attention.clamp_kqv"),
                                      p->clamp_kqv);
        }
    }
    if (strcmp(a, "bert") == 0) {
        rc |= gguf_writer_add_bool(w, KEY("attention.causal"), p->causal);
        rc |= gguf_writer_add_u32(w, KEY("pooling_type"), p->pooling);
    }
    rc |= gguf_writer_add_u32(w, "general.file_type", b->wtype);

#undef KEY

    return rc;
}

gguf_writer_t *
gguf_random_arch_writer(const gguf_random_arch_t *p,
    const char *skip_tensor, char *err, size_t errlen)
{
    const gguf_random_llama_t  *b = &p->base;
    gguf_writer_t              *w;
    uint64_t                    rng;
    int                         l, hd, kvd, falcon, mpt, bert, bias;
    char                        name[64];
    float                       sd, sf;

    if (p->arch == NULL || strcmp(p->arch, "llama") == 0) {
        return gguf_random_llama_writer(b, skip_tensor, err, errlen);
    }
    falcon = strcmp(p->arch, "falcon") == 0;
    mpt = strcmp(p->arch, "mpt") == 0;
    bert = strcmp(p->arch, "bert") == 0;
    if (!falcon && !mpt && !bert) {
        snprintf(err, errlen, "%s: unknown architecture '%s'", __func__,
                 p->arch);
        return NULL;
    }
    if (b->dim <= 0 || b->n_heads <= 0 || b->dim % b->n_heads != 0
        || b->n_kv_heads <= 0 || b->n_heads % b->n_kv_heads != 0
        || b->n_layers <= 0 || b->ffn_dim <= 0 || b->n_vocab < 262
        || b->n_ctx <= 0)
    {
        snprintf(err, errlen, "%s: bad shape (vocab must be >= 262, heads "
                 "must divide dim, kv heads must divide heads)", __func__);
        return NULL;
    }
    w = gguf_writer_new();
    if (w == NULL) {
        snprintf(err, errlen, "%s: out of memory", __func__);
        return NULL;
    }
    rng = b->seed * 0x9e3779b97f4a7c15ULL + 0x7654321ULL;
    hd = b->dim / b->n_heads;
    kvd = hd * b->n_kv_heads;
    sd = 1.0f / sqrtf((float) b->dim);
    sf = 1.0f / sqrtf((float) b->ffn_dim);
    bias = bert || p->biases;

    if (random_arch_keys(w, p) != 0 || random_vocab(w, b->n_vocab) != 0) {
        snprintf(err, errlen, "%s: out of memory", __func__);
        goto fail;
    }

#define T(nm, cols, rows, type, scale, off)                                  \
    if ((skip_tensor == NULL || strcmp(skip_tensor, nm) != 0)                \
        && add_random_tensor(w, nm, cols, rows, type, scale, off, &rng, err, \
                             errlen) != 0)                                   \
    {                                                                        \
        goto fail;                                                           \
    }
#define N(s) (snprintf(name, sizeof(name), "blk.%d." s, l), name)
/* a LayerNorm: weight around 1, bias around 0 */
#define NORM(s, with_bias)                                                   \
    T(N(s ".weight"), b->dim, 1, GGML_TYPE_F32, 0.1f, 1.0f)                  \
    if (with_bias) {                                                         \
        T(N(s ".bias"), b->dim, 1, GGML_TYPE_F32, 0.1f, 0.0f)                \
    }
#define BIAS(s, n)                                                           \
    if (bias) {                                                              \
        T(N(s ".bias"), n, 1, GGML_TYPE_F32, 0.1f, 0.0f)                     \
    }

    T("token_embd.weight", b->dim, b->n_vocab, b->wtype, 1.0f, 0.0f)
    if (bert) {
        T("token_types.weight", b->dim, 2, GGML_TYPE_F32, 0.1f, 0.0f)
    }
    if (bert || (mpt && p->pos_embd)) {
        T("position_embd.weight", b->dim, b->n_ctx, GGML_TYPE_F32, 0.1f,
          0.0f)
    }
    if (bert) {
        T("token_embd_norm.weight", b->dim, 1, GGML_TYPE_F32, 0.1f, 1.0f)
        T("token_embd_norm.bias", b->dim, 1, GGML_TYPE_F32, 0.1f, 0.0f)
    }
    for (l = 0; l < b->n_layers; l++) {
        if (bert) {
            T(N("attn_q.weight"), b->dim, b->dim, b->wtype, sd, 0.0f)
            BIAS("attn_q", b->dim)
            T(N("attn_k.weight"), b->dim, kvd, b->wtype, sd, 0.0f)
            BIAS("attn_k", kvd)
            T(N("attn_v.weight"), b->dim, kvd, b->wtype, sd, 0.0f)
            BIAS("attn_v", kvd)
        } else {
            NORM("attn_norm", falcon || bias)
            if (falcon && p->norm_2) {
                NORM("attn_norm_2", 1)
            }
            T(N("attn_qkv.weight"), b->dim, b->dim + 2 * kvd, b->wtype, sd,
              0.0f)
            BIAS("attn_qkv", b->dim + 2 * kvd)
        }
        T(N("attn_output.weight"), b->dim, b->dim, b->wtype, sd, 0.0f)
        BIAS("attn_output", b->dim)
        if (bert) {
            NORM("attn_output_norm", 1)
        }
        if (mpt) {
            NORM("ffn_norm", bias)
        }
        T(N("ffn_up.weight"), b->dim, b->ffn_dim, b->wtype, sd, 0.0f)
        BIAS("ffn_up", b->ffn_dim)
        T(N("ffn_down.weight"), b->ffn_dim, b->dim, b->wtype, sf, 0.0f)
        BIAS("ffn_down", b->dim)
        if (bert) {
            NORM("layer_output_norm", 1)
        }
    }
    if (!bert) {
        T("output_norm.weight", b->dim, 1, GGML_TYPE_F32, 0.1f, 1.0f)
        if (falcon || bias) {
            T("output_norm.bias", b->dim, 1, GGML_TYPE_F32, 0.1f, 0.0f)
        }
        if (!b->tied) {
            T("output.weight", b->dim, b->n_vocab, b->wtype, sd * 4.0f,
              0.0f)
        }
    }

#undef BIAS
#undef NORM
#undef N
#undef T

    return w;

fail:
    gguf_writer_free(w);
    return NULL;
}

int
gguf_write_random_arch(const gguf_random_arch_t *p, const char *path,
    char *err, size_t errlen)
{
    gguf_writer_t  *w = gguf_random_arch_writer(p, NULL, err, errlen);
    int             rc;

    if (w == NULL) {
        return -1;
    }
    rc = gguf_writer_write(w, path, err, errlen);
    gguf_writer_free(w);
    return rc;
}
