/*
 * Falcon, MPT and BERT forward passes. With ../shared: the random-weight
 * models' prompts tokenized and greedy-decoded token for token as
 * llama.cpp did (BERT: the sentence embedding). Always: generated tiny
 * models of each architecture, batched against token-by-token prefill,
 * modules at absolute positions appended from other caches, the
 * block-diagonal mask, encoder behaviour, and bad model files.
 */

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_write.h"
#include "model.h"
#include "quant.h"
#include "tap.h"
#include "testutil.h"
#include "tokenizer.h"

#define NV_MAX  64

static char  err[512];
static char  shared[PATH_MAX + 16];
static char  tmpdir[] = "/tmp/test_archs_XXXXXX";

/* an int array of a JSON object; the count, -1 when absent */
static int
json_ids(json_t *j, const char *key, int32_t *out, int max)
{
    json_t  *a = json_object_get(j, key);
    size_t   i;

    if (!json_is_array(a) || json_array_size(a) > (size_t) max) {
        return -1;
    }
    for (i = 0; i < json_array_size(a); i++) {
        out[i] = (int32_t) json_integer_value(json_array_get(a, i));
    }
    return (int) json_array_size(a);
}

/* --- golden outputs of llama.cpp on ../shared's random models ------------ */

static void
golden_decoder(model_t *m, json_t *j, const char *model)
{
    const tokenizer_t  *tok = model_tokenizer(m);
    const char         *prompt = json_string_value(json_object_get(j,
                                                                   "prompt"));
    int32_t             want_p[256], got_p[256], want[NV_MAX], tokens[NV_MAX];
    int32_t             got[NV_MAX], *ref;
    int                 np, ng, nw, nt, nref, k, i, g;
    int                 n_vocab = model_hparams(m)->n_vocab;
    float              *logits;
    kv_cache_t         *kv;

    np = json_ids(j, "prompt_ids", want_p, 256);
    nw = json_ids(j, "ids", want, NV_MAX);
    nt = json_ids(j, "tokens", tokens, NV_MAX);
    if (!ok(prompt && np > 0 && nw > 0, "%s: a golden line with a prompt, "
            "prompt_ids and ids", model)) {
        return;
    }
    ng = tokenizer_encode(tok, prompt, strlen(prompt), 1, got_p, 256, err,
                          sizeof(err));
    ok(ng == np && memcmp(got_p, want_p, np * sizeof(int32_t)) == 0,
       "%s '%s': %d prompt ids as llama.cpp's", model, prompt, ng);

    /*
     * The reference is "ids". A line may also list "tokens"; where the two
     * differ, "ids" has left ids out (the decoded text shows a broken
     * character there): then the full "tokens" list is the reference and
     * "ids" must be what remains of it.
     */
    ref = want;
    nref = nw;
    if (nt > 0 && (nt != nw || memcmp(tokens, want, nw * sizeof(int32_t))))
    {
        ref = tokens;
        nref = nt;
        printf("# %s '%s': \"ids\" (%d) and \"tokens\" (%d) differ; "
               "decoding against \"tokens\"\n", model, prompt, nw, nt);
    }
    logits = malloc(n_vocab * sizeof(float));
    kv = kv_cache_new(m, 512);
    model_eval(m, kv, want_p, NULL, np, logits, 0, err, sizeof(err));
    for (k = 0; k < nref; k++) {
        got[k] = test_argmax(logits, n_vocab);
        if (got[k] != ref[k]) {
            printf("#   step %d: got %d, want %d\n", k, got[k], ref[k]);
            break;
        }
        model_eval(m, kv, &got[k], NULL, 1, logits, 0, err, sizeof(err));
    }
    ok(k == nref, "%s '%s': %d of %d greedy ids match", model, prompt, k,
       nref);
    if (ref == tokens) {
        for (i = 0, g = 0; i < nw && g < k; g++) {
            i += got[g] == want[i];
        }
        ok(i == nw, "%s '%s': \"ids\" is the decode with %d id(s) left "
           "out", model, prompt, nref - nw);
    }
    kv_cache_free(kv);
    free(logits);
}

static void
golden_bert(model_t *m, json_t *j)
{
    const tokenizer_t  *tok = model_tokenizer(m);
    const char         *prompt = json_string_value(json_object_get(j,
                                                                   "prompt"));
    json_t             *e = json_object_get(j, "embedding");
    int32_t             want_p[256], got_p[256];
    int                 np, ng, dim = model_hparams(m)->dim, i;
    float              *v;
    double              dot = 0, n1 = 0, n2 = 0, g, c;

    np = json_ids(j, "prompt_ids", want_p, 256);
    if (!ok(prompt && np > 0 && json_array_size(e) == (size_t) dim,
            "rand-bert: a golden line with a prompt and a %d-d embedding",
            dim)) {
        return;
    }
    ng = tokenizer_encode(tok, prompt, strlen(prompt), 1, got_p, 256, err,
                          sizeof(err));
    ok(ng == np && memcmp(got_p, want_p, np * sizeof(int32_t)) == 0,
       "rand-bert '%s': %d prompt ids as llama.cpp's", prompt, ng);
    v = malloc(dim * sizeof(float));
    if (!ok(model_embed(m, want_p, np, v, err, sizeof(err)) == 0,
            "rand-bert '%s': embeds (%s)", prompt, err)) {
        free(v);
        return;
    }
    for (i = 0; i < dim; i++) {
        g = json_number_value(json_array_get(e, i));
        dot += g * v[i];
        n1 += g * g;
        n2 += (double) v[i] * v[i];
    }
    c = dot / sqrt(n1 * n2);
    ok(c >= 0.9999, "rand-bert '%s': cosine with llama.cpp's embedding "
       "%.9f", prompt, c);
    free(v);
}

static void
test_golden(void)
{
    static const char  *models[] = {
        "rand-llama.gguf", "rand-falcon.gguf", "rand-mpt.gguf",
        "rand-bert.gguf"
    };
    char          path[PATH_MAX + 64], line[65536];
    model_t      *m;
    json_t       *j;
    json_error_t  je;
    FILE         *f;
    size_t        i;
    int           cases;

    for (i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        snprintf(path, sizeof(path), "%s/models/random/%s", shared,
                 models[i]);
        if (access(path, R_OK) != 0) {
            ok(1, "# SKIP %s absent", path);
            continue;
        }
        m = model_load(path, 2, err, sizeof(err));
        if (!ok(m != NULL, "%s loads (%s)", models[i], m ? "" : err)) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/golden/random-archs.jsonl",
                 shared);
        f = fopen(path, "r");
        cases = 0;
        while (f && fgets(line, sizeof(line), f)) {
            j = json_loads(line, 0, &je);
            if (j == NULL || strcmp(json_string_value(json_object_get(j,
                                    "model")) ?: "", models[i]) != 0)
            {
                json_decref(j);
                continue;
            }
            if (model_is_encoder(m)) {
                golden_bert(m, j);
            } else {
                golden_decoder(m, j, models[i]);
            }
            json_decref(j);
            cases++;
        }
        if (f) {
            fclose(f);
        }
        ok(cases == 3, "%s: three golden lines checked", models[i]);
        model_free(m);
    }
}

/* --- generated models ---------------------------------------------------- */

typedef struct {
    const char  *arch;
    const char  *what;
    int          biases, norm_2, pos_embd, tied, kv_heads;
    float        clamp;
    uint32_t     wtype;
} variant_t;

static const variant_t  variants[] = {
    { "falcon", "falcon (MQA)", 0, 0, 0, 0, 1, 0.0f, GGML_TYPE_F32 },
    { "falcon", "falcon 40B layout, biases, tied, Q8_0", 1, 1, 0, 1, 2,
      0.0f, GGML_TYPE_Q8_0 },
    { "mpt", "mpt", 0, 0, 0, 0, 4, 0.0f, GGML_TYPE_F32 },
    { "mpt", "mpt with biases, clamp_kqv, learned positions, tied, F16", 1,
      0, 1, 1, 2, 0.5f, GGML_TYPE_F16 },
    { "llama", "llama", 0, 0, 0, 0, 2, 0.0f, GGML_TYPE_F32 },
};

static model_t *
make_variant(const variant_t *v, int n_threads, char *path, size_t len)
{
    gguf_random_arch_t  p;
    model_t            *m;

    gguf_random_arch_defaults(&p, v->arch);
    p.biases = v->biases;
    p.norm_2 = v->norm_2;
    p.pos_embd = v->pos_embd;
    p.clamp_kqv = v->clamp;
    p.base.tied = v->tied;
    p.base.n_kv_heads = v->kv_heads;
    p.base.wtype = v->wtype;
    p.base.n_ctx = 512;
    p.base.seed = 11;
    snprintf(path, len, "%s/%s.gguf", tmpdir, v->arch);
    if (gguf_write_random_arch(&p, path, err, sizeof(err)) != 0) {
        printf("# %s\n", err);
        return NULL;
    }
    m = model_load(path, n_threads, err, sizeof(err));
    if (m == NULL) {
        printf("# %s\n", err);
    }
    return m;
}

/* logits of every token, all at once and one at a time; 1 and 2 threads;
   300 tokens cross the internal batch of 256 */
static void
test_batched(const variant_t *v)
{
    char        path[PATH_MAX];
    model_t    *m;
    kv_cache_t *kv;
    int         n = 300, nv, t, th, i;
    int32_t     toks[300];
    float      *a, *b, *ref = NULL;
    double      d;

    for (th = 1; th <= 2; th++) {
        m = make_variant(v, th, path, sizeof(path));
        if (!ok(m != NULL, "%s loads with %d threads", v->what, th)) {
            break;
        }
        nv = model_hparams(m)->n_vocab;
        for (i = 0; i < n; i++) {
            toks[i] = 3 + (i * 37 + 11) % (nv - 3);
        }
        a = malloc((size_t) n * nv * sizeof(float));
        b = malloc((size_t) n * nv * sizeof(float));
        kv = kv_cache_new(m, n);
        ok(model_eval(m, kv, toks, NULL, n, a, 1, err, sizeof(err)) == 0,
           "%s: %d tokens in one call", v->what, n);
        kv_cache_truncate(kv, 0);
        for (t = 0; t < n; t++) {
            model_eval(m, kv, toks + t, NULL, 1, b + (size_t) t * nv, 0,
                       err, sizeof(err));
        }
        d = test_max_rel_diff(a, b, (size_t) n * nv);
        ok(d <= 1e-4, "%s, %d threads: batched and token-by-token logits "
           "agree (max rel diff %.2g)", v->what, th, d);
        if (ref == NULL) {
            ref = a;
        } else {
            d = test_max_rel_diff(a, ref, (size_t) n * nv);
            ok(d <= 1e-4, "%s: 2 threads agree with 1 (%.2g)", v->what, d);
            free(a);
        }
        free(b);
        kv_cache_free(kv);
        model_free(m);
    }
    free(ref);
    unlink(path);
}

/*
 * Prompt modules: a prefix evaluated in another cache and appended gives
 * the logits of one pass; modules evaluated alone at their absolute
 * positions and appended equal one pass with the block-diagonal mask; the
 * stored positions travel through export and import.
 */
static void
test_modules(const variant_t *v)
{
    char         path[PATH_MAX];
    model_t     *m;
    kv_cache_t  *a, *b, *c;
    int32_t      toks[12] = { 1, 300, 301, 302, 303, 310, 311, 312, 313,
                              319, 320, 321 };
    /* module 1: 0..3, module 2: 6..9 (a gap of 2), new tokens: 12.. */
    int32_t      pos[12] = { 0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15 };
    int32_t      seg[12] = { 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0 };
    int32_t      far[4] = { 40, 41, 42, 43 };
    float       *l1, *l2, *l3;
    void        *buf;
    int          nv;

    m = make_variant(v, 2, path, sizeof(path));
    if (!ok(m != NULL, "%s: model for modules loads", v->what)) {
        return;
    }
    nv = model_hparams(m)->n_vocab;
    l1 = malloc((size_t) 12 * nv * sizeof(float));
    l2 = malloc((size_t) 12 * nv * sizeof(float));
    l3 = malloc((size_t) 12 * nv * sizeof(float));
    buf = malloc(8 * kv_cache_entry_bytes(m));
    a = kv_cache_new(m, 64);
    b = kv_cache_new(m, 64);
    c = kv_cache_new(m, 64);

    /* one pass of 10 tokens; then the first 5 elsewhere, appended */
    model_eval(m, a, toks, NULL, 10, l1, 0, err, sizeof(err));
    model_eval(m, b, toks, NULL, 5, NULL, 0, err, sizeof(err));
    ok(kv_cache_append(c, b, 0, 5) == 0
       && model_eval(m, c, toks + 5, NULL, 5, l2, 0, err, sizeof(err)) == 0,
       "%s: a prefix evaluated elsewhere, appended, then 5 tokens",
       v->what);
    ok(test_max_rel_diff(l2, l1, nv) <= 1e-5, "%s: the same logits as one pass "
       "(%.2g)", v->what, test_max_rel_diff(l2, l1, nv));

    /* a prefix at positions 0..3, appended, then tokens at 12..15 with a
       gap: the same as one pass with those positions */
    kv_cache_truncate(a, 0);
    kv_cache_truncate(b, 0);
    kv_cache_truncate(c, 0);
    model_eval(m, a, toks, pos, 4, NULL, 0, err, sizeof(err));
    model_eval(m, a, toks + 8, pos + 8, 4, l1, 1, err, sizeof(err));
    model_eval(m, b, toks, pos, 4, NULL, 0, err, sizeof(err));
    kv_cache_append(c, b, 0, 4);
    model_eval(m, c, toks + 8, pos + 8, 4, l2, 1, err, sizeof(err));
    ok(test_max_rel_diff(l2, l1, 4 * nv) <= 1e-5, "%s: positions with a gap "
       "compose too (%.2g)", v->what, test_max_rel_diff(l2, l1, 4 * nv));

    /* the block-diagonal mask against modules evaluated alone */
    kv_cache_truncate(a, 0);
    kv_cache_truncate(b, 0);
    kv_cache_truncate(c, 0);
    ok(model_eval_seg(m, a, toks, pos, seg, 8, NULL, 0, err, sizeof(err))
       == 0 && model_eval_seg(m, a, toks + 8, pos + 8, seg + 8, 4, l1, 1,
                              err, sizeof(err)) == 0,
       "%s: a masked pass", v->what);
    model_eval(m, b, toks, pos, 4, NULL, 0, err, sizeof(err));
    kv_cache_append(c, b, 0, 4);
    kv_cache_truncate(b, 0);
    model_eval(m, b, toks + 4, pos + 4, 4, NULL, 0, err, sizeof(err));
    kv_cache_append(c, b, 0, 4);
    model_eval(m, c, toks + 8, pos + 8, 4, l2, 1, err, sizeof(err));
    ok(test_max_rel_diff(l2, l1, 4 * nv) <= 1e-4, "%s: modules alone == one "
       "pass with the block-diagonal mask (%.2g)", v->what,
       test_max_rel_diff(l2, l1, 4 * nv));
    kv_cache_truncate(a, 0);
    model_eval(m, a, toks, pos, 12, l3, 1, err, sizeof(err));
    ok(test_max_rel_diff(l3 + (size_t) 8 * nv, l1, 4 * nv) > 1e-4,
       "%s: without the mask the result differs", v->what);

    /* export and import keep segments and positions */
    kv_cache_truncate(b, 0);
    ok(kv_cache_export(c, 0, 8, buf) == 0 && kv_cache_import(b, buf, 8) == 0
       && model_eval(m, b, toks + 8, pos + 8, 4, l3, 1, err, sizeof(err))
          == 0, "%s: 8 entries exported and imported", v->what);
    ok(test_max_rel_diff(l3, l1, 4 * nv) <= 1e-6, "%s: imported entries give "
       "the same logits", v->what);

    /* a module stored far away: what the next token sees depends on the
       positions the entries were stored at, not on their cache index */
    kv_cache_truncate(b, 0);
    kv_cache_truncate(c, 0);
    model_eval(m, b, toks, far, 4, NULL, 0, err, sizeof(err));
    kv_cache_append(c, b, 0, 4);
    model_eval(m, c, toks + 8, (int32_t[]) { 44 }, 1, l2, 0, err,
               sizeof(err));
    kv_cache_truncate(b, 0);
    model_eval(m, b, toks, pos, 4, NULL, 0, err, sizeof(err));
    model_eval(m, b, toks + 8, (int32_t[]) { 44 }, 1, l3, 0, err,
               sizeof(err));
    ok(test_max_rel_diff(l2, l3, nv) > 1e-4, "%s: a module at 40..43 is not "
       "one at 0..3 for a token at 44", v->what);

    kv_cache_free(a);
    kv_cache_free(b);
    kv_cache_free(c);
    free(buf);
    free(l1);
    free(l2);
    free(l3);
    model_free(m);
    unlink(path);
}

static model_t *
make_bert(int pooling, char *path, size_t len)
{
    gguf_random_arch_t  p;
    model_t            *m;

    gguf_random_arch_defaults(&p, "bert");
    p.pooling = pooling;
    p.base.n_ctx = 64;
    p.base.seed = 5;
    snprintf(path, len, "%s/bert%d.gguf", tmpdir, pooling);
    if (gguf_write_random_arch(&p, path, err, sizeof(err)) != 0) {
        printf("# %s\n", err);
        return NULL;
    }
    m = model_load(path, 2, err, sizeof(err));
    if (m == NULL) {
        printf("# %s\n", err);
    }
    return m;
}

static double
dot(const float *a, const float *b, int n)
{
    double  s = 0;
    int     i;

    for (i = 0; i < n; i++) {
        s += (double) a[i] * b[i];
    }
    return s;
}

static void
test_bert(void)
{
    char         path[PATH_MAX];
    model_t     *m, *mc;
    kv_cache_t  *kv;
    int32_t      toks[8] = { 1, 300, 301, 302, 303, 310, 311, 2 };
    int32_t      other[8] = { 1, 300, 301, 302, 303, 310, 320, 2 };
    int32_t      perm[8] = { 1, 301, 300, 302, 303, 310, 311, 2 };
    int32_t      many[80];
    float        e1[64], e2[64], e3[64], logits[512];
    int          dim, i;

    m = make_bert(1, path, sizeof(path));
    if (!ok(m != NULL, "a generated BERT loads")) {
        return;
    }
    dim = model_hparams(m)->dim;
    ok(model_is_encoder(m) && model_hparams(m)->pooling == 1,
       "it is an encoder with mean pooling");
    kv = kv_cache_new(m, 16);
    err[0] = '\0';
    ok(model_eval(m, kv, toks, NULL, 8, logits, 0, err, sizeof(err)) == -1
       && strstr(err, "is an encoder (bert)") != NULL,
       "model_eval on an encoder is an error ('%s')", err);
    kv_cache_free(kv);

    ok(model_embed(m, toks, 8, e1, err, sizeof(err)) == 0
       && fabs(dot(e1, e1, dim) - 1.0) < 1e-5, "an L2-normalized embedding");
    model_embed(m, toks, 8, e2, err, sizeof(err));
    ok(memcmp(e1, e2, dim * sizeof(float)) == 0, "the same tokens, the same "
       "bytes");
    model_embed(m, perm, 8, e2, err, sizeof(err));
    ok(dot(e1, e2, dim) < 0.99999, "swapping two tokens changes the mean "
       "embedding: learned positions (cos %.6f)", dot(e1, e2, dim));
    for (i = 0; i < 80; i++) {
        many[i] = 3 + i;
    }
    ok(model_embed(m, many, 64, e3, err, sizeof(err)) == 0,
       "64 tokens: the trained context");
    ok(model_embed(m, many, 65, e3, err, sizeof(err)) == -1
       && strstr(err, "at most 64") != NULL, "65 tokens are refused ('%s')",
       err);

    /* [CLS] pooling: the first token's state; with causal attention it
       could not see the last token, bidirectional it does */
    mc = make_bert(2, path, sizeof(path));
    if (ok(mc != NULL, "a BERT with [CLS] pooling loads")) {
        model_embed(mc, toks, 8, e2, err, sizeof(err));
        model_embed(mc, other, 8, e3, err, sizeof(err));
        ok(dot(e2, e3, dim) < 0.99999, "[CLS] pooling sees a later token "
           "change: attention is bidirectional (cos %.6f)",
           dot(e2, e3, dim));
        ok(dot(e1, e2, dim) < 0.99999, "[CLS] and mean pooling differ");
        model_free(mc);
    }
    model_free(m);
    unlink(path);
}

/* --- bad model files ----------------------------------------------------- */

static void
expect_load_error(gguf_writer_t *w, const char *want, const char *what)
{
    char      path[PATH_MAX];
    model_t  *m;

    snprintf(path, sizeof(path), "%s/bad.gguf", tmpdir);
    if (w == NULL || gguf_writer_write(w, path, err, sizeof(err)) != 0) {
        ok(0, "%s: the file could not be written", what);
        gguf_writer_free(w);
        return;
    }
    gguf_writer_free(w);
    err[0] = '\0';
    m = model_load(path, 1, err, sizeof(err));
    if (!ok(m == NULL && strstr(err, want) != NULL, "%s is refused",
            what)) {
        printf("#   error: '%s' (want '%s')\n", err, want);
    }
    model_free(m);
    unlink(path);
}

/* p's model with tensor `name` replaced by zeros of shape [cols, rows] */
static gguf_writer_t *
with_tensor(const gguf_random_arch_t *p, const char *name, int cols,
    int rows)
{
    gguf_writer_t  *w = gguf_random_arch_writer(p, name, err, sizeof(err));
    float          *z = calloc((size_t) cols * rows, sizeof(float));
    int64_t         ne[2] = { cols, rows };

    if (w) {
        gguf_writer_add_tensor(w, name, rows > 1 ? 2 : 1, ne, GGML_TYPE_F32,
                               z, (size_t) cols * rows * sizeof(float));
    }
    free(z);
    return w;
}

static void
test_bad_models(void)
{
    gguf_random_arch_t  p;
    gguf_writer_t      *w;
    char                path[PATH_MAX];
    model_t            *m;
    kv_cache_t         *kv;
    int32_t             t = 300;

    w = gguf_writer_new();
    gguf_writer_add_str(w, "general.architecture", "gptj");
    expect_load_error(w, "unsupported architecture 'gptj'",
                      "an unknown architecture");

    gguf_random_arch_defaults(&p, "falcon");
    expect_load_error(gguf_random_arch_writer(&p, "blk.1.attn_qkv.weight",
                                              err, sizeof(err)),
                      "missing tensor 'blk.1.attn_qkv.weight' (want "
                      "[64, 96])", "falcon: a missing fused QKV");
    expect_load_error(gguf_random_arch_writer(&p, "output_norm.bias", err,
                                              sizeof(err)),
                      "missing tensor 'output_norm.bias' (want [64])",
                      "falcon: a missing output norm bias");
    expect_load_error(with_tensor(&p, "blk.0.attn_qkv.weight", 64, 192),
                      "tensor 'blk.0.attn_qkv.weight' has shape [64, 192], "
                      "want [64, 96]", "falcon: a QKV for 4 KV heads, not 1");

    gguf_random_arch_defaults(&p, "mpt");
    expect_load_error(with_tensor(&p, "blk.1.ffn_norm.weight", 32, 1),
                      "tensor 'blk.1.ffn_norm.weight' has shape [32], want "
                      "[64]", "mpt: a norm of the wrong length");
    expect_load_error(gguf_random_arch_writer(&p, "blk.0.ffn_down.weight",
                                              err, sizeof(err)),
                      "missing tensor 'blk.0.ffn_down.weight' (want "
                      "[128, 64])", "mpt: a missing ffn_down");
    p.biases = 1;
    expect_load_error(with_tensor(&p, "blk.0.attn_qkv.bias", 64, 1),
                      "tensor 'blk.0.attn_qkv.bias' has shape [64], want "
                      "[192]", "mpt: an optional bias of the wrong length");

    gguf_random_arch_defaults(&p, "bert");
    expect_load_error(gguf_random_arch_writer(&p, "token_types.weight", err,
                                              sizeof(err)),
                      "missing tensor 'token_types.weight' (want [64, N])",
                      "bert: missing token types");
    expect_load_error(gguf_random_arch_writer(&p, "blk.1.attn_v.bias", err,
                                              sizeof(err)),
                      "missing tensor 'blk.1.attn_v.bias' (want [64])",
                      "bert: a missing bias");
    expect_load_error(with_tensor(&p, "blk.0.attn_q.weight", 64, 32),
                      "tensor 'blk.0.attn_q.weight' has shape [64, 32], "
                      "want [64, 64]", "bert: a wrong Q shape");
    p.pooling = 7;
    expect_load_error(gguf_random_arch_writer(&p, NULL, err, sizeof(err)),
                      "pooling type 7 is not supported",
                      "bert: an unknown pooling type");
    p.pooling = 1;
    p.causal = 1;
    expect_load_error(gguf_random_arch_writer(&p, NULL, err, sizeof(err)),
                      "bert.attention.causal must be false",
                      "bert: a causal encoder");

    /* learned positions end at the trained context */
    gguf_random_arch_defaults(&p, "mpt");
    p.pos_embd = 1;
    p.base.n_ctx = 32;
    snprintf(path, sizeof(path), "%s/mptpos.gguf", tmpdir);
    gguf_write_random_arch(&p, path, err, sizeof(err));
    m = model_load(path, 1, err, sizeof(err));
    if (ok(m != NULL, "mpt with 32 learned positions loads")) {
        kv = kv_cache_new(m, 8);
        ok(model_eval(m, kv, &t, (int32_t[]) { 32 }, 1, NULL, 0, err,
                      sizeof(err)) == -1
           && strstr(err, "position 32 past the 32 learned positions"),
           "position 32 is refused ('%s')", err);
        ok(model_eval(m, kv, &t, (int32_t[]) { 31 }, 1, NULL, 0, err,
                      sizeof(err)) == 0, "position 31 is fine");
        kv_cache_free(kv);
        model_free(m);
    }
    unlink(path);
}

/* --- an MPT forward pass written out plainly, as a second opinion ------- */

static const float *
ref_t(const gguf_ctx_t *g, const char *fmt, int l)
{
    char                  name[64];
    const gguf_tensor_t  *t;

    snprintf(name, sizeof(name), fmt, l);
    t = gguf_find_tensor(g, name);
    return t && t->type == GGML_TYPE_F32 ? t->data : NULL;
}

static void
ref_ln(float *x, const float *w, int n)
{
    double  mean = 0, var = 0;
    int     i;

    for (i = 0; i < n; i++) {
        mean += x[i];
    }
    mean /= n;
    for (i = 0; i < n; i++) {
        var += (x[i] - mean) * (x[i] - mean);
    }
    var /= n;
    for (i = 0; i < n; i++) {
        x[i] = (float) ((x[i] - mean) / sqrt(var + 1e-5)) * w[i];
    }
}

/* y (rows) = W (rows x cols) x */
static void
ref_mv(float *y, const float *w, const float *x, int rows, int cols)
{
    int     r, c;
    double  s;

    for (r = 0; r < rows; r++) {
        for (s = 0, c = 0; c < cols; c++) {
            s += (double) w[(size_t) r * cols + c] * x[c];
        }
        y[r] = (float) s;
    }
}

/*
 * Logits of the last of n tokens at positions 0..n-1 of an F32 MPT without
 * biases (dim 96, 6 heads, 2 layers), ALiBi slopes from the formula in
 * llama.cpp's ggml_soft_max: with 6 heads, 4 take m0 powers and 2 the odd
 * powers of m1.
 */
static int
ref_mpt(const gguf_ctx_t *g, const int32_t *tok, int n, float *logits,
    int n_vocab, float max_bias)
{
    enum { D = 96, H = 6, HD = 16, F = 384, L = 2, NMAX = 16 };
    static float  x[NMAX][D], k[L][NMAX][D], v[L][NMAX][D];
    float         h[D], qkv[3 * D], att[NMAX], o[D], f[F], y[D], slope[H];
    float         m0, m1, u, mx, sum;
    const float  *emb = ref_t(g, "token_embd.weight", 0);
    int           t, l, hh, j, i, nh2 = 4;

    m0 = powf(2.0f, -max_bias / nh2);
    m1 = powf(2.0f, -max_bias / 2.0f / nh2);
    for (hh = 0; hh < H; hh++) {
        slope[hh] = hh < nh2 ? powf(m0, hh + 1)
                             : powf(m1, 2 * (hh - nh2) + 1);
    }
    if (emb == NULL || n > NMAX) {
        return -1;
    }
    for (t = 0; t < n; t++) {
        memcpy(x[t], emb + (size_t) tok[t] * D, sizeof(x[t]));
        for (l = 0; l < L; l++) {
            memcpy(h, x[t], sizeof(h));
            ref_ln(h, ref_t(g, "blk.%d.attn_norm.weight", l), D);
            ref_mv(qkv, ref_t(g, "blk.%d.attn_qkv.weight", l), h, 3 * D, D);
            memcpy(k[l][t], qkv + D, sizeof(k[l][t]));
            memcpy(v[l][t], qkv + 2 * D, sizeof(v[l][t]));
            for (hh = 0; hh < H; hh++) {
                for (mx = -INFINITY, j = 0; j <= t; j++) {
                    for (u = 0, i = 0; i < HD; i++) {
                        u += qkv[hh * HD + i] * k[l][j][hh * HD + i];
                    }
                    att[j] = u / sqrtf((float) HD) + slope[hh] * (j - t);
                    mx = fmaxf(mx, att[j]);
                }
                for (sum = 0, j = 0; j <= t; j++) {
                    att[j] = expf(att[j] - mx);
                    sum += att[j];
                }
                for (i = 0; i < HD; i++) {
                    for (u = 0, j = 0; j <= t; j++) {
                        u += att[j] / sum * v[l][j][hh * HD + i];
                    }
                    o[hh * HD + i] = u;
                }
            }
            ref_mv(y, ref_t(g, "blk.%d.attn_output.weight", l), o, D, D);
            for (i = 0; i < D; i++) {
                x[t][i] += y[i];
            }
            memcpy(h, x[t], sizeof(h));
            ref_ln(h, ref_t(g, "blk.%d.ffn_norm.weight", l), D);
            ref_mv(f, ref_t(g, "blk.%d.ffn_up.weight", l), h, F, D);
            for (i = 0; i < F; i++) {
                f[i] = 0.5f * f[i] * (1.0f + tanhf(0.7978845608f * f[i]
                                      * (1.0f + 0.044715f * f[i] * f[i])));
            }
            ref_mv(y, ref_t(g, "blk.%d.ffn_down.weight", l), f, D, F);
            for (i = 0; i < D; i++) {
                x[t][i] += y[i];
            }
        }
    }
    memcpy(h, x[n - 1], sizeof(h));
    ref_ln(h, ref_t(g, "output_norm.weight", 0), D);
    ref_mv(logits, ref_t(g, "output.weight", 0), h, n_vocab, D);
    return 0;
}

static void
test_mpt_reference(void)
{
    gguf_random_arch_t  p;
    char                path[PATH_MAX];
    model_t            *m;
    kv_cache_t         *kv;
    int32_t             toks[12] = { 1, 300, 301, 302, 303, 310, 311, 312,
                                     313, 319, 320, 321 };
    float              *a, *b;
    double              d;
    int                 nv;

    gguf_random_arch_defaults(&p, "mpt");
    p.base.dim = 96;
    p.base.n_heads = 6;
    p.base.n_kv_heads = 6;
    p.base.ffn_dim = 384;
    p.base.seed = 3;
    snprintf(path, sizeof(path), "%s/mpt6.gguf", tmpdir);
    gguf_write_random_arch(&p, path, err, sizeof(err));
    m = model_load(path, 1, err, sizeof(err));
    if (!ok(m != NULL, "an MPT with 6 heads loads (%s)", m ? "" : err)) {
        return;
    }
    nv = model_hparams(m)->n_vocab;
    a = malloc(nv * sizeof(float));
    b = malloc(nv * sizeof(float));
    kv = kv_cache_new(m, 16);
    model_eval(m, kv, toks, NULL, 12, a, 0, err, sizeof(err));
    ok(ref_mpt(model_gguf(m), toks, 12, b, nv, 8.0f) == 0,
       "the plain reference runs");
    d = test_max_rel_diff(a, b, nv);
    ok(d <= 5e-3, "6 heads, ALiBi max bias 8: logits as the plain reference "
       "(max rel diff %.2g; GELU goes through fp16 here)", d);
    ref_mpt(model_gguf(m), toks, 12, b, nv, 4.0f);
    d = test_max_rel_diff(a, b, nv);
    ok(d > 5e-2, "and the reference with other slopes differs (%.2g)", d);
    kv_cache_free(kv);
    free(a);
    free(b);
    model_free(m);
    unlink(path);
}

/* large generated vocabularies (the benchmarks' 32000) stay distinct */
static void
test_big_vocab(void)
{
    gguf_random_arch_t  p;
    char                path[PATH_MAX];
    model_t            *m;

    gguf_random_arch_defaults(&p, "mpt");
    p.base.dim = 32;
    p.base.n_layers = 1;
    p.base.n_vocab = 32000;
    snprintf(path, sizeof(path), "%s/vocab.gguf", tmpdir);
    ok(gguf_write_random_arch(&p, path, err, sizeof(err)) == 0,
       "a model with a generated vocab of 32000 is written");
    m = model_load(path, 1, err, sizeof(err));
    ok(m != NULL && tokenizer_n_vocab(model_tokenizer(m)) == 32000,
       "and loads: no duplicate pieces (%s)", m ? "" : err);
    model_free(m);
    unlink(path);
}

int
main(void)
{
    size_t  i;

    if (mkdtemp(tmpdir) == NULL) {
        skip_all("cannot create a temporary directory");
    }
    if (test_find_shared(shared, sizeof(shared))) {
        test_golden();
    } else {
        ok(1, "# SKIP ../shared is absent (set LLMCACHE_SHARED): no "
           "golden checks");
    }
    for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        test_batched(&variants[i]);
        test_modules(&variants[i]);
    }
    test_bert();
    test_bad_models();
    test_mpt_reference();
    test_big_vocab();
    rmdir(tmpdir);
    return done_testing();
}
