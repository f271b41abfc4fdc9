/*
 * The Llama forward pass: greedy decodes against reference engines' golden
 * outputs (when ../shared is there), batched against token-by-token
 * evaluation on generated models (always), positions, truncation,
 * embeddings, and bad model files.
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

static char  err[512];
static char  shared[PATH_MAX + 16];
static char  tmpdir[] = "/tmp/test_model_XXXXXX";

/*
 * llama2.c's loop: positions 0 .. steps-1, the prompt forced, the rest
 * greedy, stop when BOS comes out. Returns the ids after the first.
 */
static int
greedy(model_t *m, const int32_t *prompt, int n_prompt, int steps,
    int32_t *out, int max_out)
{
    const model_hparams_t  *hp = model_hparams(m);
    kv_cache_t             *kv = kv_cache_new(m, steps + 1);
    float                  *logits = malloc(hp->n_vocab * sizeof(float));
    int32_t                 tok;
    int                     n = 0, pos;

    /* the whole prompt in one batched pass, then one token at a time */
    if (model_eval(m, kv, prompt, NULL, n_prompt, logits, 0, err,
                   sizeof(err)) != 0)
    {
        n = -1;
        goto done;
    }
    for (pos = 1; pos < n_prompt && n < max_out; pos++) {
        out[n++] = prompt[pos];
    }
    for (pos = n_prompt; pos <= steps - 1 + 1 && n < max_out; pos++) {
        tok = test_argmax(logits, hp->n_vocab);
        if (tok == 1) {
            break;
        }
        out[n++] = tok;
        if (pos == steps) {
            break;
        }
        if (model_eval(m, kv, &tok, NULL, 1, logits, 0, err, sizeof(err))) {
            n = -1;
            break;
        }
    }

done:
    free(logits);
    kv_cache_free(kv);
    return n;
}

static int
parse_ids(const char *s, int32_t *ids, int max)
{
    int    n = 0;
    char  *end;
    long   v;

    while (n < max) {
        v = strtol(s, &end, 10);
        if (end == s) {
            break;
        }
        ids[n++] = (int32_t) v;
        s = end;
    }
    return n;
}

static void
test_aidreams(int llama2c)
{
    char        path[PATH_MAX + 64], tpath[PATH_MAX + 64], line[4096];
    char        prompt[256];
    FILE       *f;
    model_t    *m;
    int32_t     want[256], got[256], enc[256];
    int         n_want, n_got, n_enc, i, same, cases = 0;
    const tokenizer_t  *tok;

    if (llama2c) {
        snprintf(path, sizeof(path), "%s/models/aidreams260K.bin", shared);
        snprintf(tpath, sizeof(tpath), "%s/models/tok512.bin", shared);
        m = model_load_llama2c(path, tpath, 2, err, sizeof(err));
    } else {
        snprintf(path, sizeof(path), "%s/models/aidreams260K.gguf", shared);
        m = model_load(path, 2, err, sizeof(err));
    }
    if (!ok(m != NULL, "aidreams260K (%s, %s kernels) loads",
            llama2c ? "llama2.c" : "gguf", quant_simd_name())) {
        printf("# %s\n", err);
        return;
    }
    tok = model_tokenizer(m);
    ok(tok != NULL, "it has a tokenizer");
    snprintf(path, sizeof(path), "%s/golden/aidreams260K.md", shared);
    f = fopen(path, "r");
    if (!ok(f != NULL, "golden file opens")) {
        model_free(m);
        return;
    }
    prompt[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "## prompt: \"%255[^\"]\"", prompt) == 1) {
            continue;
        }
        if (strncmp(line, "ids:", 4) != 0 || prompt[0] == '\0' || !tok) {
            continue;
        }
        n_want = parse_ids(line + 4, want, 256);
        n_enc = tokenizer_encode(tok, prompt, strlen(prompt), 1, enc, 256,
                                 err, sizeof(err));
        if (!ok(n_enc > 1 && enc[0] == 1, "'%s' encodes with BOS",
                prompt)) {
            continue;
        }
        same = n_enc - 1 <= n_want;
        for (i = 1; i < n_enc && same; i++) {
            same = enc[i] == want[i - 1];
        }
        ok(same, "'%s': %d prompt tokens match the golden ids", prompt,
           n_enc - 1);
        n_got = greedy(m, enc, n_enc, 100, got, 256);
        for (i = 0; i < n_got && i < n_want && got[i] == want[i]; i++) {
            /* count the common prefix */
        }
        if (!ok(n_got == n_want && i == n_want, "'%s': greedy ids match "
                "token for token (%d of %d)", prompt, i, n_want)) {
            printf("# first difference at %d: got %d want %d (%s)\n", i,
                   i < n_got ? got[i] : -1, i < n_want ? want[i] : -1,
                   n_got < 0 ? err : "");
        }
        cases++;
        prompt[0] = '\0';
    }
    fclose(f);
    ok(cases >= 2, "%d golden prompts checked", cases);
    model_free(m);
}

static void
test_rand_llama(void)
{
    char           path[PATH_MAX + 64];
    json_t        *j;
    json_error_t   je;
    FILE          *f;
    model_t       *m;
    kv_cache_t    *kv;
    char           line[65536];
    int32_t        prompt[256], want[64], tok;
    float         *logits;
    int            np, nw, i, k, cases = 0, n_vocab;

    snprintf(path, sizeof(path), "%s/models/random/rand-llama.gguf", shared);
    if (access(path, R_OK) != 0) {
        ok(1, "# SKIP %s absent", path);
        return;
    }
    m = model_load(path, 2, err, sizeof(err));
    if (!ok(m != NULL, "rand-llama.gguf loads (%s)", m ? "" : err)) {
        return;
    }
    ok(model_hparams(m)->n_kv_heads == 1 && model_hparams(m)->n_heads == 4,
       "GQA: 4 heads sharing 1 KV head");
    n_vocab = model_hparams(m)->n_vocab;
    logits = malloc(n_vocab * sizeof(float));
    snprintf(path, sizeof(path), "%s/golden/random-archs.jsonl", shared);
    f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        j = json_loads(line, 0, &je);
        if (j == NULL || strcmp(json_string_value(json_object_get(j,
                                "model")) ?: "", "rand-llama.gguf") != 0)
        {
            json_decref(j);
            continue;
        }
        np = json_array_size(json_object_get(j, "prompt_ids"));
        nw = json_array_size(json_object_get(j, "ids"));
        for (i = 0; i < np && i < 256; i++) {
            prompt[i] = json_integer_value(json_array_get(
                            json_object_get(j, "prompt_ids"), i));
        }
        for (i = 0; i < nw && i < 64; i++) {
            want[i] = json_integer_value(json_array_get(
                          json_object_get(j, "ids"), i));
        }
        kv = kv_cache_new(m, 512);
        model_eval(m, kv, prompt, NULL, np, logits, 0, err, sizeof(err));
        for (k = 0; k < nw; k++) {
            tok = test_argmax(logits, n_vocab);
            if (tok != want[k]) {
                break;
            }
            model_eval(m, kv, &tok, NULL, 1, logits, 0, err, sizeof(err));
        }
        ok(k == nw, "rand-llama '%s': %d of %d greedy ids match",
           json_string_value(json_object_get(j, "prompt")), k, nw);
        kv_cache_free(kv);
        json_decref(j);
        cases++;
    }
    if (f) {
        fclose(f);
    }
    ok(cases == 3, "three rand-llama golden lines checked");
    free(logits);
    model_free(m);
}

static void
make_model(const char *name, uint32_t type, int tied, char *path,
    size_t len)
{
    gguf_random_llama_t  p;

    gguf_random_llama_defaults(&p);
    p.wtype = type;
    p.tied = tied;
    p.seed = 7 + type;
    p.n_ctx = 512;
    snprintf(path, len, "%s/%s", tmpdir, name);
    if (gguf_write_random_llama(&p, path, err, sizeof(err)) != 0) {
        printf("# %s\n", err);
    }
}

/* logits of every token, all at once and one at a time, several thread
   counts; batches longer than the internal block go in chunks */
static void
test_batched(uint32_t type, int tied)
{
    char        path[PATH_MAX];
    model_t    *m;
    kv_cache_t *kv;
    int         n = 300, nv, t, th, i;
    int32_t    *toks = malloc(n * sizeof(int32_t));
    float      *a, *b, *ref = NULL;
    double      d, dt;

    make_model(tied ? "tied.gguf" : "m.gguf", type, tied, path,
               sizeof(path));
    for (th = 1; th <= 3; th++) {
        m = model_load(path, th, err, sizeof(err));
        if (!ok(m != NULL, "%s model loads with %d threads",
                quant_type_name(type), th)) {
            printf("# %s\n", err);
            break;
        }
        nv = model_hparams(m)->n_vocab;
        for (i = 0; i < n; i++) {
            toks[i] = 3 + (i * 37 + 11) % (nv - 3);
        }
        a = malloc((size_t) n * nv * sizeof(float));
        b = malloc((size_t) n * nv * sizeof(float));
        kv = kv_cache_new(m, n);
        ok(model_eval(m, kv, toks, NULL, n, a, 1, err, sizeof(err)) == 0
           && kv_cache_len(kv) == n, "%d tokens in one call", n);
        kv_cache_truncate(kv, 0);
        for (t = 0; t < n; t++) {
            model_eval(m, kv, toks + t, NULL, 1, b + (size_t) t * nv, 0,
                       err, sizeof(err));
        }
        d = test_max_rel_diff(a, b, (size_t) n * nv);
        ok(d <= 1e-4, "%s%s, %d threads, %s kernels: batched and "
           "token-by-token logits agree (max rel diff %.2g)",
           quant_type_name(type), tied ? " tied" : "", th,
           quant_simd_name(), d);
        if (ref == NULL) {
            ref = a;
        } else {
            dt = test_max_rel_diff(a, ref, (size_t) n * nv);
            ok(dt <= 1e-4, "%s, %d threads agree with 1 thread (%.2g)",
               quant_type_name(type), th, dt);
            free(a);
        }
        free(b);
        kv_cache_free(kv);
        model_free(m);
    }
    free(ref);
    free(toks);
    unlink(path);
}

static void
test_positions_and_cache(void)
{
    char         path[PATH_MAX];
    model_t     *m;
    kv_cache_t  *kv;
    int32_t      toks[12] = { 1, 300, 301, 302, 303, 304, 305, 306, 307,
                              308, 309, 310 };
    int32_t      pos[12], pos2[3] = { 40, 41, 42 };
    float       *a, *b, *c;
    int          nv, i;
    float        emb[64], emb2[64], emb3[64];
    double       norm = 0, dot = 0;

    make_model("pos.gguf", GGML_TYPE_F32, 0, path, sizeof(path));
    m = model_load(path, 2, err, sizeof(err));
    if (!ok(m != NULL, "model for positions loads")) {
        return;
    }
    nv = model_hparams(m)->n_vocab;
    a = malloc(12 * nv * sizeof(float));
    b = malloc(12 * nv * sizeof(float));
    c = malloc(12 * nv * sizeof(float));
    kv = kv_cache_new(m, 64);
    for (i = 0; i < 12; i++) {
        pos[i] = i;
    }
    model_eval(m, kv, toks, NULL, 12, a, 1, err, sizeof(err));
    kv_cache_truncate(kv, 0);
    model_eval(m, kv, toks, pos, 12, b, 1, err, sizeof(err));
    ok(memcmp(a, b, 12 * nv * sizeof(float)) == 0,
       "pos NULL is the same as explicit 0..n-1");

    kv_cache_truncate(kv, 5);
    is_int(kv_cache_len(kv), 5, "truncate to 5");
    model_eval(m, kv, toks + 5, NULL, 7, c, 1, err, sizeof(err));
    ok(test_max_rel_diff(c, a + 5 * nv, 7 * nv) <= 1e-5,
       "re-evaluating after truncation reproduces the logits");
    kv_cache_truncate(kv, 50);
    is_int(kv_cache_len(kv), 12, "truncate never grows the cache");

    /* the same three tokens at other absolute positions: other logits */
    kv_cache_truncate(kv, 9);
    model_eval(m, kv, toks + 9, pos2, 3, c, 1, err, sizeof(err));
    ok(test_max_rel_diff(c, a + 9 * nv, 3 * nv) > 1e-3,
       "explicit positions change the result");

    ok(model_eval(m, kv, toks, NULL, 60, a, 0, err, sizeof(err)) == -1
       && strstr(err, "context full") != NULL, "context full is an error");
    toks[3] = nv;
    ok(model_eval(m, kv, toks, NULL, 4, a, 0, err, sizeof(err)) == -1
       && strstr(err, "out of range") != NULL, "a bad token id is an error");
    toks[3] = 303;
    pos[1] = -1;
    ok(model_eval(m, kv, toks, pos, 4, a, 0, err, sizeof(err)) == -1
       && strstr(err, "negative position") != NULL,
       "a negative position is an error");

    ok(model_embed(m, toks, 12, emb, err, sizeof(err)) == 0, "embed");
    for (i = 0; i < 64; i++) {
        norm += (double) emb[i] * emb[i];
    }
    ok(fabs(norm - 1.0) < 1e-5, "the embedding is L2-normalized");
    model_embed(m, toks, 12, emb2, err, sizeof(err));
    ok(memcmp(emb, emb2, sizeof(emb)) == 0, "embedding is deterministic");
    model_embed(m, toks + 2, 6, emb3, err, sizeof(err));
    for (i = 0; i < 64; i++) {
        dot += (double) emb[i] * emb3[i];
    }
    ok(dot < 0.9999, "other tokens, other embedding (cos %.4f)", dot);
    ok(model_gguf(m) != NULL && model_tokenizer(m) != NULL,
       "the gguf context and the tokenizer are exposed");

    free(a);
    free(b);
    free(c);
    kv_cache_free(kv);
    model_free(m);
    unlink(path);
}

/* stored K/V appended to another cache behave as if evaluated there */
static void
test_kv_append(void)
{
    char         path[PATH_MAX];
    model_t     *m;
    kv_cache_t  *a, *b, *c, *d;
    int32_t      toks[10] = { 1, 300, 301, 302, 303, 310, 311, 312, 313, 319 };
    int32_t      pos_b[4] = { 5, 6, 7, 8 };
    float       *l1, *l2, *l3;
    int          nv;

    make_model("kv.gguf", GGML_TYPE_F32, 0, path, sizeof(path));
    m = model_load(path, 2, err, sizeof(err));
    if (!ok(m != NULL, "model for kv_cache_append loads")) {
        return;
    }
    nv = model_hparams(m)->n_vocab;
    l1 = malloc(nv * sizeof(float));
    l2 = malloc(nv * sizeof(float));
    l3 = malloc(nv * sizeof(float));
    a = kv_cache_new(m, 16);
    b = kv_cache_new(m, 16);
    c = kv_cache_new(m, 16);
    d = kv_cache_new(m, 16);

    /* reference: the 10 tokens in one cache */
    ok(model_eval(m, a, toks, NULL, 10, l1, 0, err, sizeof(err)) == 0,
       "reference eval");
    /* the first 5 elsewhere, appended, then the rest */
    model_eval(m, b, toks, NULL, 5, NULL, 0, err, sizeof(err));
    ok(kv_cache_append(c, b, 0, 5) == 0 && kv_cache_len(c) == 5,
       "append 5 entries");
    ok(model_eval(m, c, toks + 5, NULL, 5, l2, 0, err, sizeof(err)) == 0,
       "eval after the appended entries");
    ok(test_max_rel_diff(l2, l1, nv) <= 1e-6,
       "a prefix appended from another cache gives the same logits");

    /* a module evaluated alone at positions 5..8, then appended after the
       prefix: the cache holds 9 entries and the next token sees both */
    kv_cache_truncate(b, 0);
    model_eval(m, b, toks + 5, pos_b, 4, NULL, 0, err, sizeof(err));
    kv_cache_truncate(c, 5);
    ok(kv_cache_append(c, b, 0, 4) == 0 && kv_cache_len(c) == 9,
       "append a module of 4 entries");
    ok(model_eval(m, c, toks + 9, (int32_t[]) { 9 }, 1, l3, 0, err,
                  sizeof(err)) == 0, "eval after the module");
    ok(test_max_rel_diff(l3, l1, nv) > 1e-6,
       "a module that did not attend to the prefix changes the result");
    ok(kv_cache_append(d, b, 2, 3) == -1, "a range past the source end "
       "is refused");
    ok(kv_cache_append(c, a, 0, 10) == -1, "overflowing the destination "
       "is refused");
    is_int(kv_cache_n_ctx(c), 16, "n_ctx");

    kv_cache_free(a);
    kv_cache_free(b);
    kv_cache_free(c);
    kv_cache_free(d);
    free(l1);
    free(l2);
    free(l3);
    model_free(m);
    unlink(path);
}

/*
 * Segments: modules evaluated alone at their positions and appended equal
 * one pass with the block-diagonal mask (each module sees itself, the new
 * tokens see everything), across batch boundaries and with gaps.
 */
static void
test_segments(void)
{
    char         path[PATH_MAX];
    model_t     *m;
    kv_cache_t  *a, *b, *c;
    int32_t      toks[12] = { 1, 300, 301, 302, 303, 310, 311, 312, 313,
                              319, 320, 321 };
    /* module 1: 0..3, module 2: 6..9 (a gap of 2), new tokens: 12.. */
    int32_t      pos[12] = { 0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15 };
    int32_t      seg[12] = { 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0 };
    float       *l1, *l2, *l3;
    int          nv;

    make_model("seg.gguf", GGML_TYPE_F32, 0, path, sizeof(path));
    m = model_load(path, 2, err, sizeof(err));
    if (!ok(m != NULL, "model for segments loads")) {
        return;
    }
    nv = model_hparams(m)->n_vocab;
    l1 = malloc((size_t) 4 * nv * sizeof(float));
    l2 = malloc((size_t) 12 * nv * sizeof(float));
    l3 = malloc((size_t) 12 * nv * sizeof(float));
    a = kv_cache_new(m, 16);
    b = kv_cache_new(m, 16);
    c = kv_cache_new(m, 16);

    /* reference: one masked pass; logits of the 4 new tokens */
    ok(model_eval_seg(m, a, toks, pos, seg, 8, NULL, 0, err, sizeof(err))
       == 0 && model_eval_seg(m, a, toks + 8, pos + 8, seg + 8, 4, l1, 1,
                              err, sizeof(err)) == 0, "masked pass");

    /* modules alone, appended, then the new tokens */
    model_eval(m, b, toks, pos, 4, NULL, 0, err, sizeof(err));
    kv_cache_append(c, b, 0, 4);
    kv_cache_truncate(b, 0);
    model_eval(m, b, toks + 4, pos + 4, 4, NULL, 0, err, sizeof(err));
    kv_cache_append(c, b, 0, 4);
    ok(model_eval(m, c, toks + 8, pos + 8, 4, l2, 1, err, sizeof(err)) == 0,
       "new tokens after two modules evaluated alone");
    ok(test_max_rel_diff(l2, l1, 4 * nv) <= 1e-4,
       "modules alone == one pass with the block-diagonal mask");

    /* without the mask the second module sees the first: different */
    kv_cache_truncate(a, 0);
    model_eval(m, a, toks, pos, 12, l3, 1, err, sizeof(err));
    ok(test_max_rel_diff(l3 + (size_t) 8 * nv, l1, 4 * nv) > 1e-4,
       "the mask changes the result");

    /* exported and imported entries behave as the original ones */
    {
        void  *buf = malloc(8 * kv_cache_entry_bytes(m));

        kv_cache_truncate(b, 0);
        ok(kv_cache_export(c, 0, 8, buf) == 0
           && kv_cache_import(b, buf, 8) == 0 && kv_cache_len(b) == 8,
           "export 8 entries, import them into another cache");
        model_eval(m, b, toks + 8, pos + 8, 4, l3, 1, err, sizeof(err));
        ok(test_max_rel_diff(l3, l1, 4 * nv) <= 1e-6,
           "imported entries give the same logits (segments kept)");
        ok(kv_cache_export(c, 10, 4, buf) == -1, "export past the end "
           "is refused");
        ok(kv_cache_import(c, buf, 8) == -1, "import past n_ctx is "
           "refused");
        free(buf);
    }

    /* truncating to 0 clears the segments: plain evaluation again */
    kv_cache_truncate(a, 0);
    model_eval_seg(m, a, toks, pos, seg, 12, l2, 1, err, sizeof(err));
    kv_cache_truncate(a, 0);
    model_eval(m, a, toks, pos, 12, l2, 1, err, sizeof(err));
    ok(test_max_rel_diff(l2 + (size_t) 8 * nv, l3 + (size_t) 8 * nv, 4 * nv)
       <= 1e-6, "segments do not outlive a reset");

    kv_cache_free(a);
    kv_cache_free(b);
    kv_cache_free(c);
    free(l1);
    free(l2);
    free(l3);
    model_free(m);
    unlink(path);
}

/* generated models: same seed, same bytes; the vocab works end to end */
static void
test_generated(void)
{
    gguf_random_llama_t  p;
    gguf_writer_t       *w1, *w2;
    void                *b1, *b2;
    size_t               n1 = 0, n2 = 0;
    char                 path[PATH_MAX], text[256];
    model_t             *m;
    const tokenizer_t   *tok;
    int32_t              ids[64];
    int                  n, i, len = 0, l;

    gguf_random_llama_defaults(&p);
    p.wtype = GGML_TYPE_Q8_0;
    w1 = gguf_random_llama_writer(&p, NULL, err, sizeof(err));
    w2 = gguf_random_llama_writer(&p, NULL, err, sizeof(err));
    b1 = gguf_writer_to_mem(w1, &n1);
    b2 = gguf_writer_to_mem(w2, &n2);
    ok(n1 > 0 && n1 == n2 && memcmp(b1, b2, n1) == 0,
       "the same seed writes the same %zu bytes", n1);
    free(b2);
    gguf_writer_free(w2);
    p.seed = 2;
    w2 = gguf_random_llama_writer(&p, NULL, err, sizeof(err));
    b2 = gguf_writer_to_mem(w2, &n2);
    ok(n1 == n2 && memcmp(b1, b2, n1) != 0, "another seed, other weights");
    free(b1);
    free(b2);
    gguf_writer_free(w1);
    gguf_writer_free(w2);

    p.n_vocab = 261;
    ok(gguf_random_llama_writer(&p, NULL, err, sizeof(err)) == NULL
       && strstr(err, "vocab"), "a vocab too small for the byte tokens is "
       "refused");
    p.n_vocab = 400;
    p.dim = 48;
    p.wtype = GGML_TYPE_Q8_0;
    ok(gguf_random_llama_writer(&p, NULL, err, sizeof(err)) == NULL
       && strstr(err, "48 columns cannot be stored as q8_0"),
       "a width that is not whole Q8_0 blocks is refused");

    make_model("vocab.gguf", GGML_TYPE_F32, 0, path, sizeof(path));
    m = model_load(path, 1, err, sizeof(err));
    tok = m ? model_tokenizer(m) : NULL;
    if (!ok(tok != NULL, "generated model has a tokenizer (%s)",
            tok ? "" : err)) {
        model_free(m);
        return;
    }
    n = tokenizer_encode(tok, "hello world", 11, 1, ids, 64, err,
                         sizeof(err));
    ok(n >= 2 && n <= 4 && ids[0] == 1, "'hello world' merges into word "
       "pieces: %d ids with BOS", n);
    for (i = 1; i < n && len < 200; i++) {
        l = tokenizer_decode(tok, ids[i - 1], ids[i], text + len,
                             sizeof(text) - len);
        len += l > 0 ? l : 0;
    }
    text[len] = '\0';
    ok(strstr(text, "hello world") != NULL, "and decodes back ('%s')",
       text);
    n = tokenizer_encode(tok, "\xed\x8c\x8c", 3, 0, ids, 64, err,
                         sizeof(err));
    ok(n == 3 || n == 4, "text outside the pieces falls back to byte "
       "tokens (%d ids)", n);
    model_free(m);
    unlink(path);
}

static void
expect_load_error(gguf_writer_t *w, const char *want, const char *what)
{
    char      path[PATH_MAX];
    model_t  *m;

    snprintf(path, sizeof(path), "%s/bad.gguf", tmpdir);
    gguf_writer_write(w, path, err, sizeof(err));
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

static void
test_bad_models(void)
{
    gguf_random_llama_t  p;
    gguf_writer_t       *w;
    int64_t              ne[2] = { 64, 31 };
    static float         f[64 * 32];
    uint8_t              k5[176 * 1];
    char                 path[PATH_MAX];
    FILE                *fp;
    int32_t              hdr[7] = { 64, 128, 2, 4, 4, 320, 32 };

    gguf_random_llama_defaults(&p);

    w = gguf_random_llama_writer(&p, "blk.1.ffn_up.weight", err,
                                 sizeof(err));
    expect_load_error(w, "missing tensor 'blk.1.ffn_up.weight'",
                      "a missing tensor");

    w = gguf_random_llama_writer(&p, "blk.0.attn_k.weight", err,
                                 sizeof(err));
    gguf_writer_add_tensor(w, "blk.0.attn_k.weight", 2, ne, GGML_TYPE_F32,
                           f, 64 * 31 * sizeof(float));
    expect_load_error(w, "tensor 'blk.0.attn_k.weight' has shape",
                      "a tensor of the wrong shape");

    w = gguf_random_llama_writer(&p, "output_norm.weight", err,
                                 sizeof(err));
    ne[0] = 256;
    ne[1] = 1;
    memset(k5, 0, sizeof(k5));
    gguf_writer_add_tensor(w, "output_norm.weight", 1, ne, GGML_TYPE_Q5_K,
                           k5, 176);
    expect_load_error(w, "has shape", "a norm of the wrong length");

    w = gguf_random_llama_writer(&p, "blk.0.ffn_gate.weight", err,
                                 sizeof(err));
    ne[0] = 64;
    ne[1] = 128;
    {
        size_t   sz = quant_row_size(GGML_TYPE_Q5_K, 256) * 32;
        uint8_t *z = calloc(1, sz);

        ne[0] = 256;
        ne[1] = 32;
        gguf_writer_add_tensor(w, "blk.0.ffn_gate.weight", 2, ne,
                               GGML_TYPE_Q5_K, z, sz);
        free(z);
    }
    expect_load_error(w, "has shape", "a wrong shape in another type");

    /* 512 tokens in the vocab, 300 embedding rows (tied output) */
    p.tied = 1;
    w = gguf_random_llama_writer(&p, "token_embd.weight", err, sizeof(err));
    {
        float   *e = calloc(64 * 300, sizeof(float));
        int64_t  ne2[2] = { 64, 300 };

        gguf_writer_add_tensor(w, "token_embd.weight", 2, ne2,
                               GGML_TYPE_F32, e, 64 * 300 * sizeof(float));
        free(e);
    }
    expect_load_error(w, "the tokenizer has 512 tokens, token_embd.weight "
                      "only 300 rows", "a vocab larger than the embedding");
    p.tied = 0;

    w = gguf_writer_new();
    gguf_writer_add_str(w, "general.architecture", "gptj");
    expect_load_error(w, "unsupported architecture 'gptj'",
                      "an unsupported architecture");

    w = gguf_writer_new();
    gguf_writer_add_u32(w, "llama.block_count", 2);
    expect_load_error(w, "general.architecture is missing",
                      "a file without an architecture");

    w = gguf_writer_new();
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_u32(w, "llama.embedding_length", 64);
    expect_load_error(w, "llama.block_count is missing",
                      "a missing hyperparameter");

    w = gguf_writer_new();
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_str(w, "llama.embedding_length", "64");
    expect_load_error(w, "llama.embedding_length has a bad type",
                      "a hyperparameter of the wrong type");

    w = gguf_writer_new();
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_u32(w, "llama.embedding_length", 64);
    gguf_writer_add_u32(w, "llama.block_count", 1);
    gguf_writer_add_u32(w, "llama.feed_forward_length", 64);
    gguf_writer_add_u32(w, "llama.attention.head_count", 4);
    gguf_writer_add_u32(w, "llama.attention.head_count_kv", 3);
    expect_load_error(w, "token_embd.weight", "a file without tensors");

    ok(model_load("/nonexistent.gguf", 1, err, sizeof(err)) == NULL
       && strstr(err, "/nonexistent.gguf"), "a missing file is an error");

    /* llama2.c checkpoints: a header promising more than the file has */
    snprintf(path, sizeof(path), "%s/bad.bin", tmpdir);
    fp = fopen(path, "wb");
    fwrite(hdr, sizeof(hdr), 1, fp);
    fwrite(f, sizeof(f), 1, fp);
    fclose(fp);
    ok(model_load_llama2c(path, NULL, 1, err, sizeof(err)) == NULL
       && strstr(err, "truncated"), "a truncated checkpoint is refused");
    hdr[3] = 5;
    fp = fopen(path, "wb");
    fwrite(hdr, sizeof(hdr), 1, fp);
    fclose(fp);
    ok(model_load_llama2c(path, NULL, 1, err, sizeof(err)) == NULL
       && strstr(err, "bad header"), "heads not dividing dim is refused");
    unlink(path);
}

int
main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        skip_all("cannot create a temporary directory");
    }
    if (test_find_shared(shared, sizeof(shared))) {
        test_aidreams(0);
        test_aidreams(1);
        test_rand_llama();
    } else {
        ok(1, "# SKIP ../shared is absent (set LLMCACHE_SHARED): no "
           "golden checks");
    }
    test_batched(GGML_TYPE_F32, 0);
    test_batched(GGML_TYPE_F32, 1);
    test_batched(GGML_TYPE_Q8_0, 0);
    test_batched(GGML_TYPE_Q4_0, 0);
    test_batched(GGML_TYPE_F16, 0);
    /* the same with the other kernel sets this CPU can run */
    if (quant_set_kernels("avx2") == 0
        && strcmp(quant_simd_name(), "avx2") == 0)
    {
        if (test_find_shared(shared, sizeof(shared))) {
            test_aidreams(0);
        }
        test_batched(GGML_TYPE_Q8_0, 0);
        test_batched(GGML_TYPE_F32, 0);
    }
    quant_set_kernels("generic");
    test_batched(GGML_TYPE_Q4_0, 0);
    quant_set_kernels(NULL);
    test_positions_and_cache();
    test_kv_append();
    test_segments();
    test_generated();
    test_bad_models();
    rmdir(tmpdir);
    return done_testing();
}
