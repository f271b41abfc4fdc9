/*
 * The forward passes: Llama, Falcon, MPT (decoders) and BERT (encoder).
 * Organised like llama2.c's run.c: hparams (Config), weights pointing into
 * the read-only mapping (Weights), scratch buffers allocated once at load
 * (RunState), build_ / free_ pairs. The
 * differences: a batch of tokens goes through each layer together (each
 * weight row is loaded once per block of tokens), weights stay in their
 * file type (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K), positions are
 * explicit, and matrix rows are split across a persistent thread pool.
 * The architectures share the layer loop; they differ in the norm
 * (RMSNorm or LayerNorm with bias), fused or separate Q/K/V, the position
 * scheme (RoPE, NEOX RoPE, ALiBi, learned), the MLP (SwiGLU or GELU) and
 * where the residual adds and norms go (pre-norm, Falcon's parallel block,
 * BERT's post-norm).
 */

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errf.h"
#include "model.h"
#include "quant.h"
#include "threadpool.h"
#include "tokenizer.h"

/* tokens per pass through the layers; longer prompts go in chunks */
#define MODEL_BATCH  256
/* queries per attention work item (they share each key and value load) */
#define ATT_Q  4
/* multiply-adds below which a job runs on the calling thread alone */
#define MODEL_MIN_PARALLEL  65536.0

typedef struct {
    uint32_t     type;
    const void  *data;
    int          rows;          /* ne[1]: output features */
    int          cols;          /* ne[0]: input features */
    size_t       stride;        /* bytes per row */
} mat_t;

/* NULL vectors and matrices with NULL data are absent (optional) */
typedef struct {
    const float  *attn_norm;    /* (dim) pre-attention norm (Falcon: the
                                   MLP's too) */
    const float  *attn_norm_b;  /* (dim) LayerNorm bias */
    const float  *attn_norm_2;  /* (dim) Falcon-40B: the attention's norm */
    const float  *attn_norm_2_b;
    mat_t         wqkv;         /* (q_dim + 2 * kv_dim, dim) fused Q, K, V */
    const float  *bqkv;         /* (q_dim + 2 * kv_dim) */
    mat_t         wq;           /* (n_heads * head_dim, dim) */
    mat_t         wk;           /* (n_kv_heads * head_dim, dim) */
    mat_t         wv;           /* (n_kv_heads * head_dim, dim) */
    const float  *bq, *bk, *bv; /* (q_dim), (kv_dim), (kv_dim) */
    mat_t         wo;           /* (dim, n_heads * head_dim) */
    const float  *bo;           /* (dim) */
    const float  *attn_out_norm;   /* (dim) BERT: after attention + x */
    const float  *attn_out_norm_b;
    const float  *ffn_norm;     /* (dim) */
    const float  *ffn_norm_b;
    mat_t         w1;           /* gate (ffn_dim, dim), SwiGLU only */
    mat_t         w3;           /* up (ffn_dim, dim) */
    const float  *b3;           /* (ffn_dim) */
    mat_t         w2;           /* down (dim, ffn_dim) */
    const float  *b2;           /* (dim) */
    const float  *out_norm;     /* (dim) BERT: after the MLP + x */
    const float  *out_norm_b;
} layer_t;

typedef struct {
    mat_t         tok_embd;     /* (n_vocab, dim) */
    mat_t         pos_embd;     /* (n_pos, dim) learned positions */
    const float  *type_embd;    /* (dim) BERT: token type 0 */
    const float  *tok_norm;     /* (dim) BERT: norm of the embeddings */
    const float  *tok_norm_b;
    layer_t      *layers;       /* (n_layers) */
    const float  *out_norm;     /* (dim), NULL for BERT */
    const float  *out_norm_b;   /* (dim) */
    mat_t         output;       /* (n_vocab, dim), the embedding if tied */
} weights_t;

/* scratch for one batch of up to n_batch tokens */
typedef struct {
    int      n_batch;
    float   *x;                 /* (n_batch, dim) residual stream */
    float   *xb;                /* (n_batch, max(dim, q_dim)) */
    float   *xb2;               /* (n_batch, dim) */
    float   *q;                 /* (n_batch, q_dim) */
    float   *k;                 /* (n_batch, kv_dim) */
    float   *v;                 /* (n_batch, kv_dim) */
    float   *hb;                /* (n_batch, ffn_dim) */
    float   *hb2;               /* (n_batch, ffn_dim) */
    float   *qkv;               /* (n_batch, q_dim + 2 * kv_dim) fused */
    float   *alibi;             /* (n_heads) ALiBi slopes */
    float   *gelu;              /* (65536) GELU MLPs: GELU of each fp16 */
    float   *rope_cos;          /* (n_batch, rope_dim / 2) */
    float   *rope_sin;          /* (n_batch, rope_dim / 2) */
    void    *xq;                /* (n_batch, max_cols / 32) block_q8_0 */
    size_t   xq_stride;         /* bytes per quantized row */
    void    *xk;                /* (n_batch, max_cols / 256) block_q8_K */
    size_t   xk_stride;
    float   *rows;              /* (n_threads, QUANT_GEMM_ROWS, max_cols) */
    float   *inv_freq;          /* (rope_dim / 2) */
    int32_t *pos;               /* (n_batch) */
} runstate_t;

struct model {
    model_hparams_t   hp;
    gguf_ctx_t       *gguf;
    tokenizer_t      *tok;
    weights_t         w;
    runstate_t        s;
    threadpool_t     *pool;
    int               n_threads;
    int               max_cols;
    float           **owned;    /* vectors converted to f32 at load */
    int               n_owned;
    void            (*release)(void *);
    void             *release_ud;
};

struct kv_cache {
    const model_t  *m;
    int             n_ctx;
    int             len;
    /* keys transposed, so a query's scores against many keys are plain
       vector multiply-adds across the keys */
    float          *k;          /* (n_layers, n_kv_heads, head_dim, n_ctx) */
    float          *v;          /* (n_layers, n_kv_heads, n_ctx, head_dim):
                                   a head's values in one block, which
                                   the cache keeps (rows kv_dim apart
                                   would crowd a few of its sets) */
    float          *att;        /* (n_threads, ATT_Q, n_ctx) scores */
    int32_t        *seg;        /* (n_ctx) segment of each entry, 0: none */
    int32_t        *pos;        /* (n_ctx) position of each entry */
    int             has_seg;    /* some entry may have a segment */
};

/* the values of head h of layer l at cache index i */
static inline float *
kv_v(const kv_cache_t *kv, size_t l, size_t h, size_t i)
{
    return kv->v + ((l * kv->m->hp.n_kv_heads + h) * kv->n_ctx + i)
                   * kv->m->hp.head_dim;
}

/* --- building ------------------------------------------------------------ */

typedef struct {
    model_t         *m;
    model_tensor_fn  find;
    void            *ud;
    char            *err;
    size_t           errlen;
} build_ctx_t;

/* "[a, b]": the dims a tensor has (at least one) */
static const char *
shape_str(const gguf_tensor_t *t, char *buf, size_t size)
{
    uint32_t  d, nd = t->n_dims < 1 ? 1 : t->n_dims;
    size_t    len = 0;

    for (d = 0; d < nd && d < 4 && len < size; d++) {
        len += snprintf(buf + len, size - len, "%s%lld", d ? ", " : "[",
                        (long long) t->ne[d]);
    }
    if (len < size) {
        snprintf(buf + len, size - len, "]");
    }
    return buf;
}

/*
 * A tensor of ne[0] = cols and ne[1] = rows (rows 0: any number, reported
 * in *rows_out). 0, 1 (absent and optional) or -1 (err names the tensor
 * and both shapes).
 */
static int
build_find(build_ctx_t *b, const char *name, int cols, int rows,
    int optional, const gguf_tensor_t **out)
{
    const gguf_tensor_t  *t = b->find(b->ud, name);
    char                  want[48], have[96];

    if (rows > 1) {
        snprintf(want, sizeof(want), "[%d, %d]", cols, rows);
    } else if (rows == 1) {
        snprintf(want, sizeof(want), "[%d]", cols);
    } else {
        snprintf(want, sizeof(want), "[%d, N]", cols);
    }
    if (t == NULL) {
        if (optional) {
            return 1;
        }
        errf(b->err, b->errlen, "model_load", "missing tensor '%s' "
                  "(want %s)", name, want);
        return -1;
    }
    if (t->ne[0] != cols || (rows > 0 && t->ne[1] != rows) || t->ne[1] < 1
        || t->ne[1] > INT32_MAX || t->ne[2] != 1 || t->ne[3] != 1)
    {
        errf(b->err, b->errlen, "model_load", "tensor '%s' has shape "
                  "%s, want %s", name, shape_str(t, have, sizeof(have)),
                  want);
        return -1;
    }
    if (!quant_type_supported(t->type)) {
        errf(b->err, b->errlen, "model_load", "tensor '%s': type %s "
                  "is not supported", name, quant_type_name(t->type));
        return -1;
    }
    *out = t;
    return 0;
}

static int
build_mat(build_ctx_t *b, const char *name, int cols, int rows, mat_t *out,
    int optional)
{
    const gguf_tensor_t  *t;
    int                   rc;

    memset(out, 0, sizeof(*out));
    rc = build_find(b, name, cols, rows, optional, &t);
    if (rc != 0) {
        return rc;
    }
    out->type = t->type;
    out->data = t->data;
    out->rows = (int) t->ne[1];
    out->cols = cols;
    out->stride = quant_row_size(t->type, cols);
    return 0;
}

/*
 * Row `row` of a tensor of n columns as floats: in place when F32 (rows
 * 1, row 0), converted otherwise. 0, 1 (absent, optional) or -1.
 */
static int
build_vec_row(build_ctx_t *b, const char *name, int n, int rows, int row,
    int optional, const float **out)
{
    const gguf_tensor_t  *t;
    model_t              *m = b->m;
    float                *f, **o;
    int                   rc;

    *out = NULL;
    rc = build_find(b, name, n, rows, optional, &t);
    if (rc != 0) {
        return rc;
    }
    if (row >= t->ne[1]) {
        errf(b->err, b->errlen, "model_load", "tensor '%s' has no row "
                  "%d", name, row);
        return -1;
    }
    if (row == 0 && t->type == GGML_TYPE_F32
        && ((uintptr_t) t->data & 3) == 0)
    {
        *out = t->data;
        return 0;
    }
    f = malloc((size_t) n * sizeof(float));
    o = realloc(m->owned, (m->n_owned + 1) * sizeof(float *));
    if (f == NULL || o == NULL) {
        free(f);
        if (o) {
            m->owned = o;
        }
        errf(b->err, b->errlen, "model_load", "out of memory");
        return -1;
    }
    m->owned = o;
    m->owned[m->n_owned++] = f;
    quant_dequantize_row(t->type, (const char *) t->data
                         + (size_t) row * quant_row_size(t->type, n), f, n);
    *out = f;
    return 0;
}

/* a vector of n floats; NULL on error */
static const float *
build_vec(build_ctx_t *b, const char *name, int n)
{
    const float  *v;

    return build_vec_row(b, name, n, 1, 0, 0, &v) == 0 ? v : NULL;
}

/* an optional vector: 0 (*out NULL when absent) or -1 */
static int
build_vec_opt(build_ctx_t *b, const char *name, int n, const float **out)
{
    return build_vec_row(b, name, n, 1, 0, 1, out) < 0 ? -1 : 0;
}

static int
build_layer_llama(build_ctx_t *b, layer_t *L, int l)
{
    model_hparams_t  *hp = &b->m->hp;
    char              name[96];
    int               q_dim, kv_dim;

    q_dim = hp->n_heads * hp->head_dim;
    kv_dim = hp->n_kv_heads * hp->head_dim;

#define BLK(s)  (snprintf(name, sizeof(name), "blk.%d." s, l), name)

    if ((L->attn_norm = build_vec(b, BLK("attn_norm.weight"), hp->dim))
            == NULL
        || (L->ffn_norm = build_vec(b, BLK("ffn_norm.weight"), hp->dim))
            == NULL
        || build_mat(b, BLK("attn_q.weight"), hp->dim, q_dim, &L->wq, 0)
        || build_mat(b, BLK("attn_k.weight"), hp->dim, kv_dim, &L->wk, 0)
        || build_mat(b, BLK("attn_v.weight"), hp->dim, kv_dim, &L->wv, 0)
        || build_mat(b, BLK("attn_output.weight"), q_dim, hp->dim, &L->wo,
                     0)
        || build_mat(b, BLK("ffn_gate.weight"), hp->dim, hp->ffn_dim,
                     &L->w1, 0)
        || build_mat(b, BLK("ffn_up.weight"), hp->dim, hp->ffn_dim, &L->w3,
                     0)
        || build_mat(b, BLK("ffn_down.weight"), hp->ffn_dim, hp->dim,
                     &L->w2, 0))
    {
        return -1;
    }
    return 0;
}

/*
 * Falcon and MPT: fused QKV, LayerNorm, GELU MLP; biases optional (the
 * 7B checkpoints have none). Falcon has no ffn_norm (the parallel block
 * reuses attn_norm) and may have attn_norm_2 (40B).
 */
static int
build_layer_fused(build_ctx_t *b, layer_t *L, int l)
{
    model_hparams_t  *hp = &b->m->hp;
    char              name[96];
    int               q_dim, qkv_dim, falcon;

    q_dim = hp->n_heads * hp->head_dim;
    qkv_dim = q_dim + 2 * hp->n_kv_heads * hp->head_dim;
    falcon = hp->arch == MODEL_ARCH_FALCON;

    if ((L->attn_norm = build_vec(b, BLK("attn_norm.weight"), hp->dim))
            == NULL
        || build_vec_opt(b, BLK("attn_norm.bias"), hp->dim, &L->attn_norm_b)
        || build_mat(b, BLK("attn_qkv.weight"), hp->dim, qkv_dim, &L->wqkv,
                     0)
        || build_vec_opt(b, BLK("attn_qkv.bias"), qkv_dim, &L->bqkv)
        || build_mat(b, BLK("attn_output.weight"), q_dim, hp->dim, &L->wo,
                     0)
        || build_vec_opt(b, BLK("attn_output.bias"), hp->dim, &L->bo)
        || build_mat(b, BLK("ffn_up.weight"), hp->dim, hp->ffn_dim, &L->w3,
                     0)
        || build_vec_opt(b, BLK("ffn_up.bias"), hp->ffn_dim, &L->b3)
        || build_mat(b, BLK("ffn_down.weight"), hp->ffn_dim, hp->dim,
                     &L->w2, 0)
        || build_vec_opt(b, BLK("ffn_down.bias"), hp->dim, &L->b2))
    {
        return -1;
    }
    if (falcon) {
        if (build_vec_opt(b, BLK("attn_norm_2.weight"), hp->dim,
                          &L->attn_norm_2)
            || build_vec_opt(b, BLK("attn_norm_2.bias"), hp->dim,
                             &L->attn_norm_2_b))
        {
            return -1;
        }
        return 0;
    }
    if ((L->ffn_norm = build_vec(b, BLK("ffn_norm.weight"), hp->dim)) == NULL
        || build_vec_opt(b, BLK("ffn_norm.bias"), hp->dim, &L->ffn_norm_b))
    {
        return -1;
    }
    return 0;
}

/* BERT: separate Q/K/V, biases and norms with biases everywhere */
static int
build_layer_bert(build_ctx_t *b, layer_t *L, int l)
{
    model_hparams_t  *hp = &b->m->hp;
    char              name[96];
    int               q_dim, kv_dim;

    q_dim = hp->n_heads * hp->head_dim;
    kv_dim = hp->n_kv_heads * hp->head_dim;

    if (build_mat(b, BLK("attn_q.weight"), hp->dim, q_dim, &L->wq, 0)
        || (L->bq = build_vec(b, BLK("attn_q.bias"), q_dim)) == NULL
        || build_mat(b, BLK("attn_k.weight"), hp->dim, kv_dim, &L->wk, 0)
        || (L->bk = build_vec(b, BLK("attn_k.bias"), kv_dim)) == NULL
        || build_mat(b, BLK("attn_v.weight"), hp->dim, kv_dim, &L->wv, 0)
        || (L->bv = build_vec(b, BLK("attn_v.bias"), kv_dim)) == NULL
        || build_mat(b, BLK("attn_output.weight"), q_dim, hp->dim, &L->wo,
                     0)
        || (L->bo = build_vec(b, BLK("attn_output.bias"), hp->dim)) == NULL
        || (L->attn_out_norm = build_vec(b, BLK("attn_output_norm.weight"),
                                         hp->dim)) == NULL
        || (L->attn_out_norm_b = build_vec(b, BLK("attn_output_norm.bias"),
                                           hp->dim)) == NULL
        || build_mat(b, BLK("ffn_up.weight"), hp->dim, hp->ffn_dim, &L->w3,
                     0)
        || (L->b3 = build_vec(b, BLK("ffn_up.bias"), hp->ffn_dim)) == NULL
        || build_mat(b, BLK("ffn_down.weight"), hp->ffn_dim, hp->dim,
                     &L->w2, 0)
        || (L->b2 = build_vec(b, BLK("ffn_down.bias"), hp->dim)) == NULL
        || (L->out_norm = build_vec(b, BLK("layer_output_norm.weight"),
                                    hp->dim)) == NULL
        || (L->out_norm_b = build_vec(b, BLK("layer_output_norm.bias"),
                                      hp->dim)) == NULL)
    {
        return -1;
    }
    return 0;
}

#undef BLK

static int
build_weights(build_ctx_t *b)
{
    model_t          *m = b->m;
    model_hparams_t  *hp = &m->hp;
    weights_t        *w = &m->w;
    int               l, rc;

    if (build_mat(b, "token_embd.weight", hp->dim, hp->n_vocab,
                  &w->tok_embd, 0) != 0)
    {
        return -1;
    }
    if (hp->arch == MODEL_ARCH_BERT) {
        /* learned positions: one row per trained position */
        if (build_mat(b, "position_embd.weight", hp->dim, 0, &w->pos_embd,
                      0)
            || build_vec_row(b, "token_types.weight", hp->dim, 0, 0, 0,
                             &w->type_embd)
            || (w->tok_norm = build_vec(b, "token_embd_norm.weight",
                                        hp->dim)) == NULL
            || (w->tok_norm_b = build_vec(b, "token_embd_norm.bias",
                                          hp->dim)) == NULL)
        {
            return -1;
        }
    } else {
        if (hp->arch == MODEL_ARCH_MPT
            && build_mat(b, "position_embd.weight", hp->dim, 0,
                         &w->pos_embd, 1) < 0)
        {
            return -1;
        }
        w->out_norm = build_vec(b, "output_norm.weight", hp->dim);
        if (w->out_norm == NULL) {
            return -1;
        }
        if (hp->arch == MODEL_ARCH_FALCON) {
            w->out_norm_b = build_vec(b, "output_norm.bias", hp->dim);
            if (w->out_norm_b == NULL) {
                return -1;
            }
        } else if (hp->arch == MODEL_ARCH_MPT
                   && build_vec_opt(b, "output_norm.bias", hp->dim,
                                    &w->out_norm_b) != 0)
        {
            return -1;
        }
        rc = build_mat(b, "output.weight", hp->dim, hp->n_vocab, &w->output,
                       1);
        if (rc < 0) {
            return -1;
        }
        if (rc == 1) {
            w->output = w->tok_embd;        /* tied */
        }
    }
    w->layers = calloc(hp->n_layers, sizeof(layer_t));
    if (w->layers == NULL) {
        errf(b->err, b->errlen, "model_load", "out of memory");
        return -1;
    }
    for (l = 0; l < hp->n_layers; l++) {
        switch (hp->arch) {
        case MODEL_ARCH_FALCON:
        case MODEL_ARCH_MPT:
            rc = build_layer_fused(b, &w->layers[l], l);
            break;
        case MODEL_ARCH_BERT:
            rc = build_layer_bert(b, &w->layers[l], l);
            break;
        default:
            rc = build_layer_llama(b, &w->layers[l], l);
        }
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

static void
free_runstate(runstate_t *s)
{
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->hb);
    free(s->hb2);
    free(s->qkv);
    free(s->alibi);
    free(s->gelu);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->xq);
    free(s->xk);
    free(s->rows);
    free(s->inv_freq);
    free(s->pos);
    memset(s, 0, sizeof(*s));
}

static float gelu(float x);

static int
build_runstate(model_t *m)
{
    model_hparams_t  *hp = &m->hp;
    runstate_t       *s = &m->s;
    size_t            B = MODEL_BATCH, q_dim, kv_dim, xbw, half;
    int               i, nh2;
    float             m0, m1;

    q_dim = (size_t) hp->n_heads * hp->head_dim;
    kv_dim = (size_t) hp->n_kv_heads * hp->head_dim;
    xbw = q_dim > (size_t) hp->dim ? q_dim : (size_t) hp->dim;
    half = hp->rope_dim / 2 ? hp->rope_dim / 2 : 1;
    m->max_cols = hp->ffn_dim > (int) xbw ? hp->ffn_dim : (int) xbw;
    /* an encoder sees the whole input at once: one batch holds it */
    if (hp->non_causal) {
        B = hp->n_ctx_train < 8 ? 8 : hp->n_ctx_train > 8192
            ? 8192 : (size_t) hp->n_ctx_train;
    }

    s->n_batch = (int) B;
    s->x = malloc(B * hp->dim * sizeof(float));
    s->xb = malloc(B * xbw * sizeof(float));
    s->xb2 = malloc(B * hp->dim * sizeof(float));
    s->q = malloc(B * q_dim * sizeof(float));
    s->k = malloc(B * kv_dim * sizeof(float));
    s->v = malloc(B * kv_dim * sizeof(float));
    s->hb = malloc(B * hp->ffn_dim * sizeof(float));
    s->hb2 = malloc(B * hp->ffn_dim * sizeof(float));
    if (hp->arch == MODEL_ARCH_FALCON || hp->arch == MODEL_ARCH_MPT) {
        s->qkv = malloc(B * (q_dim + 2 * kv_dim) * sizeof(float));
        if (s->qkv == NULL) {
            return -1;
        }
    }
    /*
     * GELU as llama.cpp's CPU backend computes it: the input rounded to
     * fp16 indexes a table of the tanh formula rounded to fp16. tanhf per
     * element took a third of a small encoder's time.
     */
    if (hp->arch != MODEL_ARCH_LLAMA) {
        s->gelu = malloc(65536 * sizeof(float));
        if (s->gelu == NULL) {
            return -1;
        }
        for (i = 0; i < 65536; i++) {
            s->gelu[i] = quant_fp16_to_fp32(quant_fp32_to_fp16(
                             gelu(quant_fp16_to_fp32((uint16_t) i))));
        }
    }
    s->alibi = malloc(hp->n_heads * sizeof(float));
    s->rope_cos = malloc(B * half * sizeof(float));
    s->rope_sin = malloc(B * half * sizeof(float));
    s->xq_stride = (m->max_cols + QK8_0 - 1) / QK8_0 * sizeof(block_q8_0);
    s->xq = malloc(B * s->xq_stride);
    s->xk_stride = (m->max_cols + QK_K - 1) / QK_K * sizeof(block_q8_K);
    s->xk = malloc(B * s->xk_stride);
    s->rows = malloc((size_t) m->n_threads * QUANT_GEMM_ROWS * m->max_cols
                     * sizeof(float));
    s->inv_freq = malloc(half * sizeof(float));
    s->pos = malloc(B * sizeof(int32_t));
    if (!s->x || !s->xb || !s->xb2 || !s->q || !s->k || !s->v || !s->hb
        || !s->hb2 || !s->alibi || !s->rope_cos || !s->rope_sin || !s->xq
        || !s->xk || !s->rows || !s->inv_freq || !s->pos)
    {
        return -1;
    }
    for (i = 0; i < hp->rope_dim / 2; i++) {
        s->inv_freq[i] = (float) pow(hp->rope_base,
                                     -2.0 * i / (double) hp->rope_dim);
    }
    /*
     * ALiBi slopes as llama.cpp computes them for a head count that need
     * not be a power of two: the first 2^floor(log2(n)) heads get
     * m0^(h+1), the others the odd powers of m1 in between.
     */
    for (nh2 = 1; nh2 * 2 <= hp->n_heads; nh2 *= 2) {
        /* void */
    }
    m0 = powf(2.0f, -hp->alibi_bias / nh2);
    m1 = powf(2.0f, -hp->alibi_bias / 2.0f / nh2);
    for (i = 0; i < hp->n_heads; i++) {
        if (hp->alibi_bias <= 0.0f) {
            s->alibi[i] = 1.0f;
        } else if (i < nh2) {
            s->alibi[i] = powf(m0, (float) (i + 1));
        } else {
            s->alibi[i] = powf(m1, (float) (2 * (i - nh2) + 1));
        }
    }
    return 0;
}

static int
check_hparams(const model_hparams_t *hp, char *err, size_t errlen)
{
    if (hp->n_vocab <= 0 || hp->dim <= 0 || hp->n_layers <= 0
        || hp->n_heads <= 0 || hp->n_kv_heads <= 0 || hp->ffn_dim <= 0
        || hp->head_dim <= 0)
    {
        errf(err, errlen, "model_load", "bad hyperparameters: vocab %d "
                  "dim %d layers %d heads %d kv_heads %d ffn %d",
                  hp->n_vocab, hp->dim, hp->n_layers, hp->n_heads,
                  hp->n_kv_heads, hp->ffn_dim);
        return -1;
    }
    if (hp->n_heads % hp->n_kv_heads != 0) {
        errf(err, errlen, "model_load", "head_count %d is not a "
                  "multiple of head_count_kv %d", hp->n_heads,
                  hp->n_kv_heads);
        return -1;
    }
    if (hp->rope_dim < 0 || hp->rope_dim > hp->head_dim
        || hp->rope_dim % 2 != 0)
    {
        errf(err, errlen, "model_load", "rope dimension %d does not "
                  "fit head size %d", hp->rope_dim, hp->head_dim);
        return -1;
    }
    if (hp->non_causal && hp->pooling != MODEL_POOLING_MEAN
        && hp->pooling != MODEL_POOLING_CLS
        && hp->pooling != MODEL_POOLING_LAST)
    {
        errf(err, errlen, "model_load", "pooling type %d is not "
                  "supported (1 mean, 2 cls, 3 last)", hp->pooling);
        return -1;
    }
    if (hp->alibi_bias < 0.0f || hp->clamp_kqv < 0.0f) {
        errf(err, errlen, "model_load", "negative max_alibi_bias or "
                  "clamp_kqv");
        return -1;
    }
    if (hp->dim > (1 << 20) || hp->ffn_dim > (1 << 22)
        || hp->n_layers > 4096 || hp->n_heads > 4096
        || hp->n_vocab > (1 << 24))
    {
        errf(err, errlen, "model_load", "hyperparameters out of range");
        return -1;
    }
    return 0;
}

model_t *
model_build(const model_hparams_t *hp, model_tensor_fn find, void *ud,
    void (*release)(void *ud), tokenizer_t *tok, int n_threads, char *err,
    size_t errlen)
{
    model_t      *m;
    build_ctx_t   b;

    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        errf(err, errlen, __func__, "out of memory");
        if (release) {
            release(ud);
        }
        tokenizer_free(tok);
        return NULL;
    }
    m->hp = *hp;
    m->tok = tok;
    m->release = release;
    m->release_ud = ud;
    m->n_threads = n_threads < 1 ? 1 : n_threads > 256 ? 256 : n_threads;

    if (check_hparams(hp, err, errlen) != 0) {
        goto fail;
    }
    b.m = m;
    b.find = find;
    b.ud = ud;
    b.err = err;
    b.errlen = errlen;
    if (build_weights(&b) != 0) {
        goto fail;
    }
    if (build_runstate(m) != 0) {
        errf(err, errlen, "model_load", "out of memory for scratch "
                  "buffers");
        goto fail;
    }
    m->pool = threadpool_new(m->n_threads, err, errlen);
    if (m->pool == NULL) {
        goto fail;
    }
    return m;

fail:
    model_free(m);
    return NULL;
}

/* indexed by model_arch_e */
static const char  *model_archs[] = { "llama", "falcon", "mpt", "bert" };

const char *
model_arch_name(model_arch_e arch)
{
    return (unsigned) arch < sizeof(model_archs) / sizeof(model_archs[0])
           ? model_archs[arch] : "unknown";
}

int
model_is_encoder(const model_t *m)
{
    return m->hp.non_causal;
}

static const gguf_tensor_t *
gguf_find_cb(void *ud, const char *name)
{
    return gguf_find_tensor(ud, name);
}

static void
gguf_release_cb(void *ud)
{
    gguf_close(ud);
}

/* an integer hparam "<arch>.<key>"; def < 0: required */
static int
hp_int(const gguf_ctx_t *g, const char *arch, const char *key, int def,
    int *out, char *err, size_t errlen)
{
    char      name[128];
    uint32_t  v;
    int       rc;

    snprintf(name, sizeof(name), "%s.%s", arch, key);
    rc = gguf_get_u32(g, name, &v);
    if (rc == -1 && def >= 0) {
        *out = def;
        return 0;
    }
    if (rc != 0 || v > INT32_MAX) {
        errf(err, errlen, "model_load", "%s %s", name,
                  rc == -1 ? "is missing" : "has a bad type or value");
        return -1;
    }
    *out = (int) v;
    return 0;
}

static int
hp_float(const gguf_ctx_t *g, const char *arch, const char *key, float def,
    float *out, char *err, size_t errlen)
{
    char  name[128];
    int   rc;

    snprintf(name, sizeof(name), "%s.%s", arch, key);
    rc = gguf_get_f32(g, name, out);
    if (rc == -1) {
        *out = def;
        return 0;
    }
    if (rc != 0 || !isfinite(*out)) {
        errf(err, errlen, "model_load", "%s has a bad type or value",
                  name);
        return -1;
    }
    return 0;
}

model_t *
model_load(const char *path, int n_threads, char *err, size_t errlen)
{
    gguf_ctx_t           *g;
    model_hparams_t       hp;
    const gguf_tensor_t  *emb;
    tokenizer_t          *tok = NULL;
    const char           *s;
    size_t                len;
    char                  arch[32], key[96];
    size_t                i;
    int                   causal;

    g = gguf_open(path, err, errlen);
    if (g == NULL) {
        return NULL;
    }
    memset(&hp, 0, sizeof(hp));
    if (gguf_get_str(g, "general.architecture", &s, &len) != 0) {
        errf(err, errlen, __func__, "%s: general.architecture is "
                  "missing", path);
        goto fail;
    }
    for (i = 0; i < sizeof(model_archs) / sizeof(model_archs[0]); i++) {
        if (len == strlen(model_archs[i])
            && memcmp(s, model_archs[i], len) == 0)
        {
            break;
        }
    }
    if (i == sizeof(model_archs) / sizeof(model_archs[0])) {
        errf(err, errlen, __func__, "%s: unsupported architecture "
                  "'%.*s' (supported: llama, falcon, mpt, bert)", path,
                  (int) (len > 32 ? 32 : len), s);
        goto fail;
    }
    snprintf(arch, sizeof(arch), "%.*s", (int) len, s);
    hp.arch = (model_arch_e) i;
    hp.rope_neox = hp.arch == MODEL_ARCH_FALCON;
    if (gguf_get_str(g, "general.name", &s, &len) == 0) {
        snprintf(hp.name, sizeof(hp.name), "%.*s",
                 (int) (len < sizeof(hp.name) ? len : sizeof(hp.name) - 1),
                 s);
    }
    if (hp_int(g, arch, "embedding_length", -1, &hp.dim, err, errlen)
        || hp_int(g, arch, "block_count", -1, &hp.n_layers, err, errlen)
        || hp_int(g, arch, "feed_forward_length", -1, &hp.ffn_dim, err,
                  errlen)
        || hp_int(g, arch, "attention.head_count", -1, &hp.n_heads, err,
                  errlen)
        || hp_int(g, arch, "context_length", 2048, &hp.n_ctx_train, err,
                  errlen))
    {
        goto fail;
    }
    if (hp.n_heads <= 0 || hp.dim % hp.n_heads != 0) {
        errf(err, errlen, __func__, "%s: embedding_length %d is not a "
                  "multiple of head_count %d", path, hp.dim, hp.n_heads);
        goto fail;
    }
    hp.head_dim = hp.dim / hp.n_heads;
    if (hp_int(g, arch, "attention.head_count_kv", hp.n_heads,
               &hp.n_kv_heads, err, errlen)
        || hp_int(g, arch, "attention.key_length", hp.head_dim,
                  &hp.head_dim, err, errlen)
        || hp_int(g, arch, "rope.dimension_count", hp.head_dim,
                  &hp.rope_dim, err, errlen)
        || hp_float(g, arch, "rope.freq_base", 10000.0f, &hp.rope_base,
                    err, errlen)
        || hp_float(g, arch, hp.arch == MODEL_ARCH_LLAMA
                             ? "attention.layer_norm_rms_epsilon"
                             : "attention.layer_norm_epsilon", 1e-5f,
                    &hp.norm_eps, err, errlen))
    {
        goto fail;
    }
    if (hp.arch == MODEL_ARCH_MPT || hp.arch == MODEL_ARCH_BERT) {
        hp.rope_dim = 0;                    /* ALiBi or learned */
    }
    if (hp.arch == MODEL_ARCH_MPT) {
        hp.alibi = 1;
        if (hp_float(g, arch, "attention.max_alibi_bias", 0.0f,
                     &hp.alibi_bias, err, errlen)
            || hp_float(g, arch, "attention.clamp_kqv", 0.0f, &hp.clamp_kqv,
                        err, errlen))
        {
            goto fail;
        }
    }
    if (hp.arch == MODEL_ARCH_BERT) {
        snprintf(key, sizeof(key), "%s.attention.causal", arch);
        causal = 0;
        if (gguf_get_bool(g, key, &causal) == -2 || causal) {
            errf(err, errlen, __func__, "%s: %s must be false for an "
                      "encoder", path, key);
            goto fail;
        }
        hp.non_causal = 1;
        if (hp_int(g, arch, "pooling_type", MODEL_POOLING_MEAN, &hp.pooling,
                   err, errlen))
        {
            goto fail;
        }
    }
    emb = gguf_find_tensor(g, "token_embd.weight");
    if (emb == NULL) {
        errf(err, errlen, "model_load", "missing tensor "
                  "'token_embd.weight'");
        goto fail;
    }
    hp.n_vocab = emb->ne[1] > INT32_MAX ? -1 : (int) emb->ne[1];

    if (gguf_find_key(g, "tokenizer.ggml.tokens") >= 0) {
        tok = tokenizer_from_gguf(g, err, errlen);
        if (tok == NULL) {
            goto fail;
        }
        /* ids the tokenizer can produce must have embedding rows (more
           rows than tokens is fine: padded vocabularies) */
        if (tokenizer_n_vocab(tok) > hp.n_vocab) {
            errf(err, errlen, __func__, "%s: the tokenizer has %d "
                      "tokens, token_embd.weight only %d rows", path,
                      tokenizer_n_vocab(tok), hp.n_vocab);
            tokenizer_free(tok);
            goto fail;
        }
    }
    return model_build(&hp, gguf_find_cb, g, gguf_release_cb, tok,
                       n_threads, err, errlen);

fail:
    gguf_close(g);
    return NULL;
}

void
model_free(model_t *m)
{
    int  i;

    if (m == NULL) {
        return;
    }
    threadpool_free(m->pool);
    free_runstate(&m->s);
    free(m->w.layers);
    for (i = 0; i < m->n_owned; i++) {
        free(m->owned[i]);
    }
    free(m->owned);
    tokenizer_free(m->tok);
    if (m->release) {
        m->release(m->release_ud);
    }
    free(m);
}

const model_hparams_t *
model_hparams(const model_t *m)
{
    return &m->hp;
}

const tokenizer_t *
model_tokenizer(const model_t *m)
{
    return m->tok;
}

const gguf_ctx_t *
model_gguf(const model_t *m)
{
    return m->release == gguf_release_cb ? m->release_ud : NULL;
}

int
model_n_threads(const model_t *m)
{
    return m->n_threads;
}

/* --- KV cache ------------------------------------------------------------ */

kv_cache_t *
kv_cache_new(const model_t *m, int n_ctx)
{
    kv_cache_t  *kv;
    size_t       n;

    if (n_ctx <= 0) {
        return NULL;
    }
    kv = calloc(1, sizeof(*kv));
    if (kv == NULL) {
        return NULL;
    }
    n = (size_t) m->hp.n_layers * n_ctx * m->hp.n_kv_heads * m->hp.head_dim;
    kv->m = m;
    kv->n_ctx = n_ctx;
    kv->k = malloc(n * sizeof(float));
    kv->v = malloc(n * sizeof(float));
    kv->att = malloc((size_t) m->n_threads * ATT_Q * n_ctx * sizeof(float));
    kv->seg = calloc(n_ctx, sizeof(int32_t));
    kv->pos = calloc(n_ctx, sizeof(int32_t));
    if (kv->k == NULL || kv->v == NULL || kv->att == NULL || kv->seg == NULL
        || kv->pos == NULL)
    {
        kv_cache_free(kv);
        return NULL;
    }
    return kv;
}

void
kv_cache_free(kv_cache_t *kv)
{
    if (kv == NULL) {
        return;
    }
    free(kv->k);
    free(kv->v);
    free(kv->att);
    free(kv->seg);
    free(kv->pos);
    free(kv);
}

int
kv_cache_len(const kv_cache_t *kv)
{
    return kv->len;
}

void
kv_cache_truncate(kv_cache_t *kv, int n)
{
    if (n >= 0 && n < kv->len) {
        kv->len = n;
    }
    if (kv->len == 0) {
        kv->has_seg = 0;
    }
}

int
kv_cache_n_ctx(const kv_cache_t *kv)
{
    return kv->n_ctx;
}

int
kv_cache_append(kv_cache_t *dst, const kv_cache_t *src, int from, int n)
{
    const model_hparams_t  *hp = &dst->m->hp;
    size_t                  kv_dim, l, i, h;

    if (src->m != dst->m || from < 0 || n < 0 || from > src->len - n
        || n > dst->n_ctx - dst->len)
    {
        return -1;
    }
    kv_dim = (size_t) hp->n_kv_heads * hp->head_dim;
    for (l = 0; l < (size_t) hp->n_layers; l++) {
        for (i = 0; i < kv_dim; i++) {
            memcpy(dst->k + (l * kv_dim + i) * dst->n_ctx + dst->len,
                   src->k + (l * kv_dim + i) * src->n_ctx + from,
                   (size_t) n * sizeof(float));
        }
        for (h = 0; h < (size_t) hp->n_kv_heads; h++) {
            memcpy(kv_v(dst, l, h, dst->len), kv_v(src, l, h, from),
                   (size_t) n * hp->head_dim * sizeof(float));
        }
    }
    memcpy(dst->seg + dst->len, src->seg + from, (size_t) n * sizeof(int32_t));
    memcpy(dst->pos + dst->len, src->pos + from, (size_t) n * sizeof(int32_t));
    dst->has_seg |= src->has_seg;
    dst->len += n;
    return 0;
}

size_t
kv_cache_entry_bytes(const model_t *m)
{
    return (size_t) 2 * m->hp.n_layers * m->hp.n_kv_heads * m->hp.head_dim
           * sizeof(float) + 2 * sizeof(int32_t);
}

/* buf: per layer K then V (n * kv_dim floats each, token-major), then the
   n segments, then the n positions */
int
kv_cache_export(const kv_cache_t *kv, int from, int n, void *buf)
{
    const model_hparams_t  *hp = &kv->m->hp;
    size_t                  kv_dim, l, i, t, h;
    float                  *o = buf;

    if (from < 0 || n < 0 || from > kv->len - n) {
        return -1;
    }
    kv_dim = (size_t) hp->n_kv_heads * hp->head_dim;
    for (l = 0; l < (size_t) hp->n_layers; l++) {
        for (t = 0; t < (size_t) n; t++) {
            for (i = 0; i < kv_dim; i++) {
                *o++ = kv->k[(l * kv_dim + i) * kv->n_ctx + from + t];
            }
        }
        for (t = 0; t < (size_t) n; t++) {
            for (h = 0; h < (size_t) hp->n_kv_heads; h++) {
                memcpy(o, kv_v(kv, l, h, from + t),
                       hp->head_dim * sizeof(float));
                o += hp->head_dim;
            }
        }
    }
    memcpy(o, kv->seg + from, (size_t) n * sizeof(int32_t));
    memcpy((int32_t *) o + n, kv->pos + from, (size_t) n * sizeof(int32_t));
    return 0;
}

int
kv_cache_import(kv_cache_t *kv, const void *buf, int n)
{
    const model_hparams_t  *hp = &kv->m->hp;
    size_t                  kv_dim, l, i, t, h;
    const float            *p = buf;
    const int32_t          *seg;

    if (n < 0 || n > kv->n_ctx - kv->len) {
        return -1;
    }
    kv_dim = (size_t) hp->n_kv_heads * hp->head_dim;
    for (l = 0; l < (size_t) hp->n_layers; l++) {
        for (t = 0; t < (size_t) n; t++) {
            for (i = 0; i < kv_dim; i++) {
                kv->k[(l * kv_dim + i) * kv->n_ctx + kv->len + t] = *p++;
            }
        }
        for (t = 0; t < (size_t) n; t++) {
            for (h = 0; h < (size_t) hp->n_kv_heads; h++) {
                memcpy(kv_v(kv, l, h, kv->len + t), p,
                       hp->head_dim * sizeof(float));
                p += hp->head_dim;
            }
        }
    }
    seg = (const int32_t *) p;
    for (t = 0; t < (size_t) n; t++) {
        kv->seg[kv->len + t] = seg[t];
        kv->has_seg |= seg[t] != 0;
    }
    memcpy(kv->pos + kv->len, seg + n, (size_t) n * sizeof(int32_t));
    kv->len += n;
    return 0;
}

/* --- the forward pass ---------------------------------------------------- */

static void
rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
    float  ss = 0.0f;
    int    i;

    for (i = 0; i < n; i++) {
        ss += x[i] * x[i];
    }
    ss = 1.0f / sqrtf(ss / n + eps);
    for (i = 0; i < n; i++) {
        o[i] = w[i] * (ss * x[i]);
    }
}

/* o may be x */
static void
layernorm(float *o, const float *x, const float *w, const float *b, int n,
    float eps)
{
    double  sum = 0.0, var = 0.0, d;
    float   mean, scale;
    int     i;

    for (i = 0; i < n; i++) {
        sum += x[i];
    }
    mean = (float) (sum / n);
    for (i = 0; i < n; i++) {
        d = x[i] - mean;
        var += d * d;
    }
    scale = (float) (1.0 / sqrt(var / n + eps));
    for (i = 0; i < n; i++) {
        o[i] = (x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0f);
    }
}

/* n rows of dim: the model's norm (RMSNorm for Llama, else LayerNorm) */
static void
norm_rows(const model_t *m, float *o, const float *x, const float *w,
    const float *b, int n)
{
    int  t, dim = m->hp.dim;

    for (t = 0; t < n; t++) {
        if (m->hp.arch == MODEL_ARCH_LLAMA) {
            rmsnorm(o + (size_t) t * dim, x + (size_t) t * dim, w, dim,
                    m->hp.norm_eps);
        } else {
            layernorm(o + (size_t) t * dim, x + (size_t) t * dim, w, b, dim,
                      m->hp.norm_eps);
        }
    }
}

static void
add_bias(float *x, const float *b, int n, int d)
{
    int  t, i;

    if (b == NULL) {
        return;
    }
    for (t = 0; t < n; t++) {
        for (i = 0; i < d; i++) {
            x[(size_t) t * d + i] += b[i];
        }
    }
}

/* the tanh approximation, as ggml and GPT-2 use */
static float
gelu(float x)
{
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * x
                                    * (1.0f + 0.044715f * x * x)));
}

/*
 * Up to three matrices sharing one input. Rows are handed out in chunks
 * from a shared counter rather than split statically, so a thread the
 * scheduler delays holds up at most one chunk.
 */
typedef struct {
    model_t       *m;
    const mat_t   *w[3];
    float         *out[3];
    int            nw;
    const float   *x;           /* (n, cols) */
    int            n;
    int            chunk[3];    /* rows per chunk */
    int            n_chunks[3];
    atomic_int     next;
} matmul_job_t;

static void
matmul_worker(void *arg, int ith, int nth)
{
    matmul_job_t  *j = arg;
    model_t       *m = j->m;
    const mat_t   *w;
    const void    *x;
    size_t         xs;
    int            c, i, r0, r1;

    (void) nth;
    for ( ;; ) {
        c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        for (i = 0; i < j->nw && c >= j->n_chunks[i]; i++) {
            c -= j->n_chunks[i];
        }
        if (i == j->nw) {
            return;
        }
        w = j->w[i];
        r0 = c * j->chunk[i];
        r1 = r0 + j->chunk[i] < w->rows ? r0 + j->chunk[i] : w->rows;
        if (quant_vec_type(w->type) == GGML_TYPE_Q8_K) {
            x = m->s.xk;
            xs = m->s.xk_stride;
        } else {
            x = m->s.xq;
            xs = m->s.xq_stride;
        }
        quant_gemm(w->type, w->data, w->stride, w->cols, j->x,
                   (size_t) w->cols * sizeof(float), x, xs, j->n,
                   j->out[i], w->rows, r0, r1,
                   m->s.rows + (size_t) ith * QUANT_GEMM_ROWS
                               * m->max_cols);
    }
}

typedef struct {
    runstate_t   *s;
    const float  *x;
    int           cols;
    int           n;
    int           q8_0, q8_K;   /* which formats to produce */
} quantize_job_t;

static void
quantize_worker(void *arg, int ith, int nth)
{
    quantize_job_t  *j = arg;
    int              t;

    for (t = ith; t < j->n; t += nth) {
        if (j->q8_0) {
            quant_quantize_row_q8_0(j->x + (size_t) t * j->cols,
                                    (char *) j->s->xq + t * j->s->xq_stride,
                                    j->cols);
        }
        if (j->q8_K) {
            quant_quantize_row_q8_K(j->x + (size_t) t * j->cols,
                                    (char *) j->s->xk + t * j->s->xk_stride,
                                    j->cols);
        }
    }
}

/* out_i = x W_i^T for n tokens; x is (n, cols), out_i is (n, rows_i) */
static void
matmul(model_t *m, const float *x, int n, int nw, const mat_t *w0,
    float *o0, const mat_t *w1, float *o1, const mat_t *w2, float *o2)
{
    matmul_job_t    j;
    quantize_job_t  q;
    int             i, need_q = 0;
    double          work;

    j.m = m;
    j.x = x;
    j.n = n;
    j.nw = nw;
    j.w[0] = w0;
    j.w[1] = w1;
    j.w[2] = w2;
    j.out[0] = o0;
    j.out[1] = o1;
    j.out[2] = o2;
    atomic_init(&j.next, 0);
    q.q8_0 = 0;
    q.q8_K = 0;
    for (i = 0; i < nw; i++) {
        q.q8_0 |= quant_vec_type(j.w[i]->type) == GGML_TYPE_Q8_0;
        q.q8_K |= quant_vec_type(j.w[i]->type) == GGML_TYPE_Q8_K;
        need_q = q.q8_0 || q.q8_K;
        /* about six chunks per thread, in multiples of 12 rows (the SIMD
           tiles are 4 or 6 rows) */
        j.chunk[i] = (j.w[i]->rows / (m->n_threads * 6) + 11) / 12 * 12;
        j.chunk[i] = j.chunk[i] < 12 ? 12 : j.chunk[i];
        j.n_chunks[i] = (j.w[i]->rows + j.chunk[i] - 1) / j.chunk[i];
    }
    /* tiny products are not worth waking the pool for */
    work = 0;
    for (i = 0; i < nw; i++) {
        work += (double) j.w[i]->rows * j.w[i]->cols * n;
    }
    if (need_q) {
        q.s = &m->s;
        q.x = x;
        q.cols = w0->cols;
        q.n = n;
        if (n >= 16) {
            threadpool_run(m->pool, quantize_worker, &q);
        } else {
            quantize_worker(&q, 0, 1);
        }
    }
    if (work < MODEL_MIN_PARALLEL) {
        matmul_worker(&j, 0, 1);
    } else {
        threadpool_run(m->pool, matmul_worker, &j);
    }
}

static void
rope(float *x, int n_heads, int head_dim, int rope_dim, int neox,
    const float *c, const float *s)
{
    float  *h, x0, x1;
    int     hd, i, half = rope_dim / 2;

    for (hd = 0; hd < n_heads; hd++) {
        h = x + (size_t) hd * head_dim;
        for (i = 0; i < half; i++) {
            if (neox) {
                x0 = h[i];
                x1 = h[i + half];
                h[i] = x0 * c[i] - x1 * s[i];
                h[i + half] = x0 * s[i] + x1 * c[i];
            } else {
                x0 = h[2 * i];
                x1 = h[2 * i + 1];
                h[2 * i] = x0 * c[i] - x1 * s[i];
                h[2 * i + 1] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

typedef struct {
    model_t     *m;
    kv_cache_t  *kv;
    int          layer;
    int          n;             /* tokens in the batch */
    int          base;          /* cache index of the first of them */
    int          masked;        /* some entry or query has a segment */
    atomic_int   next;          /* next (head, query block) item */
} attn_job_t;

/*
 * Segments: a query of segment s != 0 sees only the entries of segment s
 * (a stored prompt module evaluated on its own); segment 0 sees all.
 */
static void
attn_mask(const kv_cache_t *kv, float *att, int q0, int nq)
{
    int      t, k;
    int32_t  s;
    float   *row;

    for (t = 0; t < nq; t++) {
        s = kv->seg[q0 + t];
        if (s == 0) {
            continue;
        }
        row = att + (size_t) t * kv->n_ctx;
        for (k = 0; k <= q0 + t; k++) {
            if (kv->seg[k] != s) {
                row[k] = -INFINITY;
            }
        }
    }
}

/*
 * ALiBi: scale the scores here and add slope * (pos_k - pos_q), from the
 * positions the entries were evaluated at, so stored modules at absolute
 * positions compose as RoPE's do. Far keys get biases in the hundreds:
 * scores more than 80 below the row's best become -inf, as their weights
 * (< e^-80) are nothing next to 1, and would otherwise come out of the exp
 * as denormals that slow every multiply-add they meet.
 */
static void
attn_alibi(const kv_cache_t *kv, float *att, int q0, int nq, float slope,
    float scale)
{
    int      t, k;
    int32_t  pq;
    float   *row, v, mx;

    for (t = 0; t < nq; t++) {
        pq = kv->pos[q0 + t];
        row = att + (size_t) t * kv->n_ctx;
        mx = -INFINITY;
        for (k = 0; k <= q0 + t; k++) {
            v = row[k] * scale + slope * (float) (kv->pos[k] - pq);
            row[k] = v;
            mx = v > mx ? v : mx;
        }
        mx -= 80.0f;
        for (k = 0; k <= q0 + t; k++) {
            row[k] = row[k] < mx ? -INFINITY : row[k];
        }
    }
}

static void
attn_worker(void *arg, int ith, int nth)
{
    attn_job_t       *j = arg;
    model_t          *m = j->m;
    model_hparams_t  *hp = &m->hp;
    kv_cache_t       *kv = j->kv;
    int               hd = hp->head_dim, q_dim, group, total;
    int               nqb, it, h, t0, nq, t, nk, kvh, per, ipb, b;
    const float      *q, *kt, *vl;
    float            *att, *out, scale;

    q_dim = hp->n_heads * hd;
    group = hp->n_heads / hp->n_kv_heads;
    scale = 1.0f / sqrtf((float) hd);
    att = kv->att + (size_t) ith * ATT_Q * kv->n_ctx;

    /*
     * Items are (head, run of blocks of ATT_Q queries), head-major, taken
     * from a shared counter. With heads enough for every thread, an item
     * is a whole head: its blocks run one after the other on one thread,
     * so the head's K and V (a long context's are far larger than L1)
     * come from memory once, not once per block.
     */
    nqb = (j->n + ATT_Q - 1) / ATT_Q;
    per = hp->n_heads >= 2 * nth ? nqb : 1;
    ipb = (nqb + per - 1) / per;
    total = hp->n_heads * ipb;
    for (it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
         it < total;
         it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed))
    {
    for (b = it % ipb * per; b < nqb && b < (it % ipb + 1) * per; b++) {
        h = it / ipb;
        t0 = b * ATT_Q;
        nq = j->n - t0 < ATT_Q ? j->n - t0 : ATT_Q;
        kvh = h / group;
        q = m->s.q + (size_t) t0 * q_dim + (size_t) h * hd;
        kt = kv->k + ((size_t) j->layer * hp->n_kv_heads + kvh) * hd
                     * kv->n_ctx;
        vl = kv_v(kv, j->layer, kvh, 0);
        /* causal over cache order: everything before, and itself; an
           encoder sees the whole batch */
        nk = hp->non_causal ? j->base + j->n : j->base + t0 + nq;
        quant_attn_scores(q, q_dim, nq, kt, kv->n_ctx, hd, nk, att,
                          kv->n_ctx);
        if (hp->alibi) {
            attn_alibi(kv, att, j->base + t0, nq, m->s.alibi[h], scale);
        }
        if (j->masked) {
            attn_mask(kv, att, j->base + t0, nq);
        }
        for (t = 0; t < nq; t++) {
            quant_softmax(att + (size_t) t * kv->n_ctx,
                          hp->non_causal ? nk : j->base + t0 + t + 1, nk,
                          hp->alibi ? 1.0f : scale);
        }
        out = m->s.xb + (size_t) t0 * q_dim + (size_t) h * hd;
        quant_attn_values(att, kv->n_ctx, nq, vl, hd, hd, nk, out,
                          q_dim);
    }
    }
}

/* s->q, s->k, s->v (n tokens) from in: fused or separate, with biases */
static void
layer_qkv(model_t *m, const layer_t *L, const float *in, int n)
{
    model_hparams_t  *hp = &m->hp;
    runstate_t       *s = &m->s;
    size_t            q_dim, kv_dim, qkv_dim, t, i;
    float             c = hp->clamp_kqv, *r;

    q_dim = (size_t) hp->n_heads * hp->head_dim;
    kv_dim = (size_t) hp->n_kv_heads * hp->head_dim;
    qkv_dim = q_dim + 2 * kv_dim;
    if (L->wqkv.data == NULL) {
        matmul(m, in, n, 3, &L->wq, s->q, &L->wk, s->k, &L->wv, s->v);
        add_bias(s->q, L->bq, n, q_dim);
        add_bias(s->k, L->bk, n, kv_dim);
        add_bias(s->v, L->bv, n, kv_dim);
        return;
    }
    matmul(m, in, n, 1, &L->wqkv, s->qkv, NULL, NULL, NULL, NULL);
    add_bias(s->qkv, L->bqkv, n, qkv_dim);
    for (t = 0; t < (size_t) n; t++) {
        r = s->qkv + t * qkv_dim;
        if (c > 0.0f) {
            for (i = 0; i < qkv_dim; i++) {
                r[i] = r[i] < -c ? -c : r[i] > c ? c : r[i];
            }
        }
        memcpy(s->q + t * q_dim, r, q_dim * sizeof(float));
        memcpy(s->k + t * kv_dim, r + q_dim, kv_dim * sizeof(float));
        memcpy(s->v + t * kv_dim, r + q_dim + kv_dim,
               kv_dim * sizeof(float));
    }
}

/* RoPE (when the model has it), then K and V of the batch into the cache */
static void
layer_kv_store(model_t *m, kv_cache_t *kv, int l, int base, int n)
{
    model_hparams_t  *hp = &m->hp;
    runstate_t       *s = &m->s;
    int               hd = hp->head_dim, half = hp->rope_dim / 2, t, i;
    int               q_dim, kv_dim;
    float            *kt;

    q_dim = hp->n_heads * hd;
    kv_dim = hp->n_kv_heads * hd;
    for (t = 0; t < n && half > 0; t++) {
        rope(s->q + (size_t) t * q_dim, hp->n_heads, hd, hp->rope_dim,
             hp->rope_neox, s->rope_cos + t * half, s->rope_sin + t * half);
        rope(s->k + (size_t) t * kv_dim, hp->n_kv_heads, hd, hp->rope_dim,
             hp->rope_neox, s->rope_cos + t * half, s->rope_sin + t * half);
    }
    kt = kv->k + (size_t) l * kv_dim * kv->n_ctx + base;
    for (t = 0; t < n; t++) {
        for (i = 0; i < kv_dim; i++) {
            kt[(size_t) i * kv->n_ctx + t] = s->k[(size_t) t * kv_dim + i];
        }
    }
    for (t = 0; t < n; t++) {
        for (i = 0; i < hp->n_kv_heads; i++) {
            memcpy(kv_v(kv, l, i, base + t),
                   s->v + (size_t) t * kv_dim + (size_t) i * hd,
                   (size_t) hd * sizeof(float));
        }
    }
}

/* attention of the batch's queries over the cache, into s->xb */
static void
layer_attention(model_t *m, kv_cache_t *kv, int l, int base, int n)
{
    model_hparams_t  *hp = &m->hp;
    attn_job_t        aj;
    int               nk = base + n;

    aj.m = m;
    aj.kv = kv;
    aj.layer = l;
    aj.n = n;
    aj.base = base;
    aj.masked = kv->has_seg;
    atomic_init(&aj.next, 0);
    if ((double) n * hp->n_heads * nk * hp->head_dim < MODEL_MIN_PARALLEL) {
        attn_worker(&aj, 0, 1);
    } else {
        threadpool_run(m->pool, attn_worker, &aj);
    }
}

/* s->xb2 = MLP(in): SwiGLU when there is a gate, else GELU */
static void
layer_mlp(model_t *m, const layer_t *L, const float *in, int n)
{
    runstate_t  *s = &m->s;
    size_t       i, nf = (size_t) n * m->hp.ffn_dim;
    float        g;

    if (L->w1.data != NULL) {
        matmul(m, in, n, 2, &L->w1, s->hb, &L->w3, s->hb2, NULL, NULL);
        for (i = 0; i < nf; i++) {
            g = s->hb[i];
            s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
        }
    } else {
        matmul(m, in, n, 1, &L->w3, s->hb, NULL, NULL, NULL, NULL);
        add_bias(s->hb, L->b3, n, m->hp.ffn_dim);
        for (i = 0; i < nf; i++) {
            g = s->hb[i];
            s->hb[i] = g <= -10.0f ? 0.0f : g >= 10.0f ? g
                       : s->gelu[quant_fp32_to_fp16(g)];
        }
    }
    matmul(m, s->hb, n, 1, &L->w2, s->xb2, NULL, NULL, NULL, NULL);
    add_bias(s->xb2, L->b2, n, m->hp.dim);
}

/* s->xb2 = attention output projection of s->xb */
static void
layer_out_proj(model_t *m, const layer_t *L, int n)
{
    matmul(m, m->s.xb, n, 1, &L->wo, m->s.xb2, NULL, NULL, NULL, NULL);
    add_bias(m->s.xb2, L->bo, n, m->hp.dim);
}

static void
residual_add(float *x, const float *y, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        x[i] += y[i];
    }
}

/* token (+ learned position, + token type 0, normed) embeddings into s->x */
static void
forward_embed(model_t *m, const int32_t *tokens, int n)
{
    runstate_t  *s = &m->s;
    weights_t   *w = &m->w;
    int          dim = m->hp.dim, t;
    float       *x, *pe = s->xb;

    for (t = 0; t < n; t++) {
        x = s->x + (size_t) t * dim;
        quant_dequantize_row(w->tok_embd.type,
            (const char *) w->tok_embd.data
                + (size_t) tokens[t] * w->tok_embd.stride, x, dim);
        if (w->pos_embd.data != NULL) {
            quant_dequantize_row(w->pos_embd.type,
                (const char *) w->pos_embd.data
                    + (size_t) s->pos[t] * w->pos_embd.stride, pe, dim);
            residual_add(x, pe, dim);
        }
        if (w->type_embd != NULL) {
            residual_add(x, w->type_embd, dim);
        }
        if (w->tok_norm != NULL) {
            layernorm(x, x, w->tok_norm, w->tok_norm_b, dim,
                      m->hp.norm_eps);
        }
    }
}

/* the final norm of n hidden states (BERT: none, the blocks end normed) */
static void
forward_final_norm(model_t *m, float *o, const float *x, int n)
{
    if (m->w.out_norm == NULL) {
        memcpy(o, x, (size_t) n * m->hp.dim * sizeof(float));
        return;
    }
    norm_rows(m, o, x, m->w.out_norm, m->w.out_norm_b, n);
}

/*
 * One batch of n <= n_batch tokens appended to kv. out (may be NULL)
 * receives logits (want 1: last token, 2: all) or, for want 3, the final
 * hidden states of all tokens (after the final norm, when there is one).
 */
static void
forward_batch(model_t *m, kv_cache_t *kv, const int32_t *tokens,
    const int32_t *pos, const int32_t *seg, int n, float *out, int want)
{
    model_hparams_t  *hp = &m->hp;
    runstate_t       *s = &m->s;
    weights_t        *w = &m->w;
    layer_t          *L;
    int               dim = hp->dim, half, t, l, i, base = kv->len;
    size_t            nd = (size_t) n * dim;
    float             a;

    half = hp->rope_dim / 2;

    for (t = 0; t < n; t++) {
        s->pos[t] = pos ? pos[t] : base + t;
        kv->pos[base + t] = s->pos[t];
        kv->seg[base + t] = seg ? seg[t] : 0;
        kv->has_seg |= kv->seg[base + t] != 0;
        for (i = 0; i < half; i++) {
            a = (float) s->pos[t] * s->inv_freq[i];
            s->rope_cos[t * half + i] = cosf(a);
            s->rope_sin[t * half + i] = sinf(a);
        }
    }
    forward_embed(m, tokens, n);

    for (l = 0; l < hp->n_layers; l++) {
        L = &w->layers[l];

        switch (hp->arch) {

        case MODEL_ARCH_FALCON:
            /* parallel: x += attn(LN(x)) + mlp(LN(x)); with attn_norm_2
               (40B) the attention has a norm of its own */
            if (L->attn_norm_2 != NULL) {
                norm_rows(m, s->xb, s->x, L->attn_norm_2, L->attn_norm_2_b,
                          n);
                layer_qkv(m, L, s->xb, n);
                norm_rows(m, s->xb, s->x, L->attn_norm, L->attn_norm_b, n);
            } else {
                norm_rows(m, s->xb, s->x, L->attn_norm, L->attn_norm_b, n);
                layer_qkv(m, L, s->xb, n);
            }
            layer_kv_store(m, kv, l, base, n);
            /* the MLP reads s->xb before the attention overwrites it */
            layer_mlp(m, L, s->xb, n);
            residual_add(s->x, s->xb2, nd);
            layer_attention(m, kv, l, base, n);
            layer_out_proj(m, L, n);
            residual_add(s->x, s->xb2, nd);
            break;

        case MODEL_ARCH_BERT:
            /* post-norm: x = LN(x + attn(x)); x = LN(x + mlp(x)) */
            layer_qkv(m, L, s->x, n);
            layer_kv_store(m, kv, l, base, n);
            layer_attention(m, kv, l, base, n);
            layer_out_proj(m, L, n);
            residual_add(s->x, s->xb2, nd);
            norm_rows(m, s->x, s->x, L->attn_out_norm, L->attn_out_norm_b,
                      n);
            layer_mlp(m, L, s->x, n);
            residual_add(s->x, s->xb2, nd);
            norm_rows(m, s->x, s->x, L->out_norm, L->out_norm_b, n);
            break;

        default:
            /* Llama and MPT: pre-norm, sequential */
            norm_rows(m, s->xb, s->x, L->attn_norm, L->attn_norm_b, n);
            layer_qkv(m, L, s->xb, n);
            layer_kv_store(m, kv, l, base, n);
            layer_attention(m, kv, l, base, n);
            layer_out_proj(m, L, n);
            residual_add(s->x, s->xb2, nd);
            norm_rows(m, s->xb, s->x, L->ffn_norm, L->ffn_norm_b, n);
            layer_mlp(m, L, s->xb, n);
            residual_add(s->x, s->xb2, nd);
        }
    }
    kv->len = base + n;

    if (out == NULL) {
        return;
    }
    if (want == 1) {
        forward_final_norm(m, s->xb, s->x + (size_t) (n - 1) * dim, 1);
        matmul(m, s->xb, 1, 1, &w->output, out, NULL, NULL, NULL, NULL);
        return;
    }
    forward_final_norm(m, want == 3 ? out : s->xb, s->x, n);
    if (want == 2) {
        matmul(m, s->xb, n, 1, &w->output, out, NULL, NULL, NULL, NULL);
    }
}

static int
eval_check(model_t *m, kv_cache_t *kv, const int32_t *tokens,
    const int32_t *pos, int n, char *err, size_t errlen)
{
    int      i;
    int32_t  p;

    if (kv == NULL || kv->m != m || tokens == NULL || n <= 0) {
        errf(err, errlen, "model_eval", "bad arguments");
        return -1;
    }
    if (n > kv->n_ctx - kv->len) {
        errf(err, errlen, "model_eval", "context full: %d + %d tokens "
                  "> %d", kv->len, n, kv->n_ctx);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab) {
            errf(err, errlen, "model_eval", "token id %d out of range "
                      "[0, %d)", tokens[i], m->hp.n_vocab);
            return -1;
        }
        p = pos ? pos[i] : kv->len + i;
        if (p < 0) {
            errf(err, errlen, "model_eval", "negative position %d", p);
            return -1;
        }
        /* learned position embeddings end at the trained context */
        if (m->w.pos_embd.data != NULL && p >= m->w.pos_embd.rows) {
            errf(err, errlen, "model_eval", "position %d past the %d "
                      "learned positions", p, m->w.pos_embd.rows);
            return -1;
        }
    }
    return 0;
}

int
model_eval(model_t *m, kv_cache_t *kv, const int32_t *tokens,
    const int32_t *pos, int n, float *logits, int logits_all, char *err,
    size_t errlen)
{
    return model_eval_seg(m, kv, tokens, pos, NULL, n, logits, logits_all,
                          err, errlen);
}

int
model_eval_seg(model_t *m, kv_cache_t *kv, const int32_t *tokens,
    const int32_t *pos, const int32_t *seg, int n, float *logits,
    int logits_all, char *err, size_t errlen)
{
    int  c0, nb, B = m->s.n_batch;

    if (m->hp.non_causal) {
        errf(err, errlen, "model_eval", "%s is an encoder (%s): it has "
                  "no logits; use model_embed", m->hp.name[0] ? m->hp.name
                  : "the model", model_arch_name(m->hp.arch));
        return -1;
    }
    if (eval_check(m, kv, tokens, pos, n, err, errlen) != 0) {
        return -1;
    }
    for (c0 = 0; c0 < n; c0 += nb) {
        nb = n - c0 < B ? n - c0 : B;
        if (logits && logits_all) {
            forward_batch(m, kv, tokens + c0, pos ? pos + c0 : NULL,
                          seg ? seg + c0 : NULL, nb,
                          logits + (size_t) c0 * m->hp.n_vocab, 2);
        } else {
            forward_batch(m, kv, tokens + c0, pos ? pos + c0 : NULL,
                          seg ? seg + c0 : NULL, nb,
                          c0 + nb == n ? logits : NULL, 1);
        }
    }
    return 0;
}

int
model_embed(model_t *m, const int32_t *tokens, int n, float *out,
    char *err, size_t errlen)
{
    kv_cache_t  *kv;
    float       *h;
    double       norm = 0.0;
    int          c0, nb, t, i, dim = m->hp.dim, B = m->s.n_batch, enc;

    if (n <= 0 || out == NULL) {
        errf(err, errlen, __func__, "no tokens");
        return -1;
    }
    enc = m->hp.non_causal;
    if (enc && n > B) {
        errf(err, errlen, __func__, "%d tokens: an encoder takes at "
                  "most %d", n, B);
        return -1;
    }
    kv = kv_cache_new(m, n);
    h = malloc((size_t) (enc ? n : B) * dim * sizeof(float));
    if (kv == NULL || h == NULL) {
        kv_cache_free(kv);
        free(h);
        errf(err, errlen, __func__, "out of memory for %d tokens", n);
        return -1;
    }
    if (eval_check(m, kv, tokens, NULL, n, err, errlen) != 0) {
        kv_cache_free(kv);
        free(h);
        return -1;
    }
    memset(out, 0, dim * sizeof(float));
    if (enc) {
        forward_batch(m, kv, tokens, NULL, NULL, n, h, 3);
        if (m->hp.pooling == MODEL_POOLING_MEAN) {
            for (t = 0; t < n; t++) {
                residual_add(out, h + (size_t) t * dim, dim);
            }
            for (i = 0; i < dim; i++) {
                out[i] /= n;
            }
        } else {
            t = m->hp.pooling == MODEL_POOLING_CLS ? 0 : n - 1;
            memcpy(out, h + (size_t) t * dim, dim * sizeof(float));
        }
    } else {
        for (c0 = 0; c0 < n; c0 += nb) {
            nb = n - c0 < B ? n - c0 : B;
            forward_batch(m, kv, tokens + c0, NULL, NULL, nb, h, 3);
            for (t = 0; t < nb; t++) {
                for (i = 0; i < dim; i++) {
                    out[i] += h[(size_t) t * dim + i];
                }
            }
        }
        for (i = 0; i < dim; i++) {
            out[i] /= n;
        }
    }
    for (i = 0; i < dim; i++) {
        norm += (double) out[i] * out[i];
    }
    norm = sqrt(norm);
    for (i = 0; i < dim && norm > 0.0; i++) {
        out[i] = (float) (out[i] / norm);
    }
    kv_cache_free(kv);
    free(h);
    return 0;
}
