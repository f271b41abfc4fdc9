/*
 * The Prompt Cache store on a generated model: gathered modules against a
 * full prefill of the same tokens at the same positions (scaffold mode),
 * against the block-diagonal mask (independent mode), eviction and
 * encoding again, persistence, and bad files.
 */

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
#include "pcache.h"
#include "tap.h"
#include "testutil.h"

static char     err[512];
static char     tmpdir[] = "/tmp/test_pcache_XXXXXX";
static model_t *model;
static int      nv;

/* --- layouts built by hand (what pml_layout would give) ------------------ */

#define MAXP  64

typedef struct {
    pml_module_t  mods[8];
    int32_t       tok[8][MAXP], pos[8][MAXP];
    pml_param_t   params[8][2];
    int32_t       ph[8][8];
    pml_layout_t  lay;
} fixture_t;

static int32_t
tok_at(int pos, int salt)
{
    return 3 + (pos * 37 + salt * 101 + 11) % (nv - 3);
}

/* module k: tokens at the positions of the ranges [a, b) (pairs, ends with
 * -1) */
static void
fx_mod(fixture_t *f, int k, const char *name, int parent, int union_id,
    int in_scaffold, int start, int end, const int *ranges)
{
    pml_module_t  *m = &f->mods[k];
    int            r, p, n = 0;

    memset(m, 0, sizeof(*m));
    m->name = (char *) name;
    m->parent = parent;
    m->union_id = union_id;
    m->in_scaffold = in_scaffold;
    m->start = start;
    m->end = end;
    for (r = 0; ranges[r] >= 0; r += 2) {
        for (p = ranges[r]; p < ranges[r + 1]; p++) {
            f->pos[k][n] = p;
            f->tok[k][n] = p == 0 ? 1 : tok_at(p, k);
            n++;
        }
    }
    m->tokens = f->tok[k];
    m->pos = f->pos[k];
    m->n_tokens = n;
    m->params = f->params[k];
}

static void
fx_param(fixture_t *f, int k, const char *name, int start, int length,
    int n_scaffold)
{
    pml_module_t  *m = &f->mods[k];
    pml_param_t   *p = &f->params[k][m->n_params++];
    int            i;

    p->name = (char *) name;
    p->start = start;
    p->length = length;
    p->n_scaffold = n_scaffold;
    p->scaffold = n_scaffold ? f->ph[k] : NULL;
    for (i = 0; i < n_scaffold; i++) {
        f->ph[k][i] = tok_at(start + i, 50);
    }
}

/*
 * root [0,4) + [26,29); A [4,12); union {B [12,18) default, C [12,20)};
 * D [20,26) with a slot [22,24) (placeholder of n_ph tokens)
 */
static void
fx_docqa(fixture_t *f, pml_mode_e mode, int n_ph)
{
    static const int  r0[] = { 0, 4, 26, 29, -1 }, ra[] = { 4, 12, -1 },
                      rb[] = { 12, 18, -1 }, rc[] = { 12, 20, -1 },
                      rd[] = { 20, 22, 24, 26, -1 };

    memset(f, 0, sizeof(*f));
    fx_mod(f, 0, "", -1, -1, 1, 0, 29, r0);
    fx_mod(f, 1, "A", 0, -1, 1, 4, 12, ra);
    fx_mod(f, 2, "B", 0, 0, 1, 12, 18, rb);
    fx_mod(f, 3, "C", 0, 0, 0, 12, 20, rc);
    fx_mod(f, 4, "D", 0, -1, 1, 20, 26, rd);
    fx_param(f, 4, "city", 22, 2, n_ph);
    f->lay.mode = mode;
    f->lay.mods = f->mods;
    f->lay.n_mods = 5;
    f->lay.n_pos = 29;
}

/* --- helpers ------------------------------------------------------------- */

/* greedy tokens after logits, positions from pos on */
static void
greedy(kv_cache_t *kv, float *logits, int32_t pos, int32_t *out, int n)
{
    int  t;

    for (t = 0; t < n; t++) {
        out[t] = test_argmax(logits, nv);
        if (model_eval(model, kv, &out[t], &pos, 1, logits, 0, err,
                       sizeof(err)) != 0)
        {
            printf("# %s\n", err);
            return;
        }
        pos++;
    }
}

/* cached: gather + new tokens; uncached: the reference tokens + new ones
 * in one pass (segments in independent mode) */
static int
serve(pcache_t *pc, const char *name, const int *mods, int n_mods,
    const int32_t *nt, const int32_t *np, int n_new, int cached,
    kv_cache_t *kv, float *logits, int *n_cached)
{
    int32_t  *rt, *rp, *rs, *t, *p, *s;
    int       n, i, rc;

    kv_cache_truncate(kv, 0);
    if (cached) {
        if (pcache_gather(pc, name, mods, n_mods, kv, n_cached, err,
                          sizeof(err)) != 0)
        {
            return -1;
        }
        return model_eval(model, kv, nt, np, n_new, logits, 0, err,
                          sizeof(err));
    }
    if (pcache_plan_ref(pc, name, mods, n_mods, &rt, &rp, &rs, &n, err,
                        sizeof(err)) != 0)
    {
        return -1;
    }
    t = malloc((size_t) (n + n_new) * sizeof(int32_t));
    p = malloc((size_t) (n + n_new) * sizeof(int32_t));
    s = malloc((size_t) (n + n_new) * sizeof(int32_t));
    memcpy(t, rt, (size_t) n * sizeof(int32_t));
    memcpy(p, rp, (size_t) n * sizeof(int32_t));
    memcpy(s, rs, (size_t) n * sizeof(int32_t));
    for (i = 0; i < n_new; i++) {
        t[n + i] = nt[i];
        p[n + i] = np[i];
        s[n + i] = 0;
    }
    rc = model_eval_seg(model, kv, t, p, s, n + n_new, logits, 0, err,
                        sizeof(err));
    *n_cached = n;
    free(rt);
    free(rp);
    free(rs);
    free(t);
    free(p);
    free(s);
    return rc;
}

/* --- tests --------------------------------------------------------------- */

static void
test_scaffold(void)
{
    fixture_t    f;
    pcache_t    *pc;
    kv_cache_t  *kv = kv_cache_new(model, 128);
    float       *a = malloc(nv * sizeof(float)),
                *b = malloc(nv * sizeof(float));
    int32_t      nt[5], np[5], ga[8], gb[8];
    int          mods[] = { 0, 1, 2, 4 }, other[] = { 0, 1, 3, 4 };
    int          i, nc = 0, nc2 = 0;
    pcache_schema_info_t  si;
    pcache_mod_info_t     mi;
    pcache_stats_t        st;

    fx_docqa(&f, PML_MODE_SCAFFOLD, 0);
    pc = pcache_new(model, NULL, err, sizeof(err));
    ok(pcache_schema_put(pc, "qa", "<schema/>", 9, &f.lay, err, sizeof(err))
       == 0, "scaffold schema encodes: %s", err);
    pcache_stats(pc, &st);
    is_int(st.encode_passes, 2, "one pass for the scaffold, one for the "
           "other union member");
    memset(&si, 0, sizeof(si));
    i = pcache_schema_info(pc, -1, "qa", &si);
    ok(i == 0 && si.n_mods == 5 && si.n_tokens == 7 + 8 + 6 + 8 + 4,
       "schema info: %d tokens", si.n_tokens);
    ok(si.bytes == (size_t) si.n_tokens * kv_cache_entry_bytes(model),
       "bytes = tokens x entry bytes");
    ok(pcache_module_info(pc, -1, "qa", 3, &mi) == 0
       && strcmp(mi.name, "C") == 0 && mi.n_tokens == 8 && mi.resident,
       "the non-default member is stored");

    for (i = 0; i < 5; i++) {
        nt[i] = tok_at(29 + i, 9);
        np[i] = 29 + i;
    }
    ok(serve(pc, "qa", mods, 4, nt, np, 5, 1, kv, a, &nc) == 0,
       "default scaffold gathered: %s", err);
    is_int(nc, 7 + 8 + 6 + 4, "cached entries");
    greedy(kv, a, 34, ga, 8);
    ok(serve(pc, "qa", mods, 4, nt, np, 5, 0, kv, b, &nc2) == 0,
       "full prefill of the same tokens");
    is_int(nc2, nc, "same number of tokens");
    /* the logits were consumed by greedy(): evaluate again */
    serve(pc, "qa", mods, 4, nt, np, 5, 1, kv, a, &nc);
    ok(test_max_rel_diff(a, b, (size_t) nv) <= 1e-4, "cached == full prefill "
       "(max rel diff %.2g)", test_max_rel_diff(a, b, (size_t) nv));
    serve(pc, "qa", mods, 4, nt, np, 5, 0, kv, b, &nc2);
    greedy(kv, b, 34, gb, 8);
    ok(memcmp(ga, gb, sizeof(ga)) == 0, "same greedy output");

    /* the other member: conditioned on its own pass, not the default's */
    ok(serve(pc, "qa", other, 4, nt, np, 5, 1, kv, a, &nc) == 0
       && nc == 7 + 8 + 8 + 4, "the other member gathers (%d)", nc);
    serve(pc, "qa", mods, 4, nt, np, 5, 1, kv, b, &nc);
    ok(test_max_rel_diff(a, b, (size_t) nv) > 1e-3, "and gives other logits");

    /* bad input */
    ok(pcache_gather(pc, "nope", mods, 4, kv, &nc, err, sizeof(err)) != 0
       && strstr(err, "unknown schema") != NULL, "unknown schema: %s", err);
    i = 9;
    ok(pcache_gather(pc, "qa", &i, 1, kv, &nc, err, sizeof(err)) != 0,
       "module out of range: %s", err);
    f.mods[2].parent = 3;
    ok(pcache_schema_put(pc, "bad", "", 0, &f.lay, err, sizeof(err)) == -1,
       "a module whose parent comes after it is refused: %s", err);
    ok(pcache_schema_put(pc, "../x", "", 0, &f.lay, err, sizeof(err)) == -1,
       "a name with a slash is refused");
    ok(pcache_schema_del(pc, "qa") == 0 && pcache_schema_del(pc, "qa") == -1
       && pcache_n_schemas(pc) == 0, "delete, then unknown");
    pcache_stats(pc, &st);
    is_int(st.bytes, 0, "no bytes left after delete");

    pcache_free(pc);
    kv_cache_free(kv);
    free(a);
    free(b);
}

/* a placeholder conditions the text after it */
static void
test_placeholder(void)
{
    fixture_t    f, g;
    pcache_t    *pc = pcache_new(model, NULL, err, sizeof(err));
    kv_cache_t  *kv = kv_cache_new(model, 128);
    float       *a = malloc(nv * sizeof(float)),
                *b = malloc(nv * sizeof(float));
    int32_t      nt[2] = { 7, 8 }, np[2] = { 29, 30 };
    int          mods[] = { 0, 1, 2, 4 }, nc = 0, rc;

    fx_docqa(&f, PML_MODE_SCAFFOLD, 2);
    fx_docqa(&g, PML_MODE_SCAFFOLD, 0);
    pcache_schema_put(pc, "ph", "", 0, &f.lay, err, sizeof(err));
    pcache_schema_put(pc, "noph", "", 0, &g.lay, err, sizeof(err));
    rc = serve(pc, "ph", mods, 4, nt, np, 2, 1, kv, a, &nc);
    ok(rc == 0 && nc == 25, "placeholder entries are not stored (%d)", nc);
    serve(pc, "noph", mods, 4, nt, np, 2, 1, kv, b, &nc);
    ok(test_max_rel_diff(a, b, (size_t) nv) > 1e-4, "but the module after it "
       "saw them");
    pcache_free(pc);
    kv_cache_free(kv);
    free(a);
    free(b);
}

static void
test_independent(void)
{
    fixture_t    f;
    pcache_t    *pc = pcache_new(model, NULL, err, sizeof(err));
    kv_cache_t  *kv = kv_cache_new(model, 128);
    float       *a = malloc(nv * sizeof(float)),
                *b = malloc(nv * sizeof(float));
    /* an argument in D's slot, then the question after a gap */
    int32_t      nt[] = { 40, 41, 42, 43, 44 }, np[] = { 22, 23, 33, 34, 35 };
    int          mods[] = { 0, 1, 3, 4 }, nc, nc2;
    double       d;

    fx_docqa(&f, PML_MODE_INDEPENDENT, 2);
    ok(pcache_schema_put(pc, "ind", "", 0, &f.lay, err, sizeof(err)) == 0,
       "independent schema encodes");
    ok(serve(pc, "ind", mods, 4, nt, np, 5, 1, kv, a, &nc) == 0,
       "gathered with a union member, an argument and gaps: %s", err);
    ok(serve(pc, "ind", mods, 4, nt, np, 5, 0, kv, b, &nc2) == 0,
       "block-diagonal reference: %s", err);
    d = test_max_rel_diff(a, b, (size_t) nv);
    ok(d <= 1e-4 && nc == nc2, "cached == segments (max rel diff %.2g)", d);
    /* without segments the reference differs: the mask matters */
    kv_cache_truncate(kv, 0);
    {
        int32_t  *rt, *rp, *rs, n;

        pcache_plan_ref(pc, "ind", mods, 4, &rt, &rp, &rs, &n, err,
                        sizeof(err));
        model_eval(model, kv, rt, rp, n, NULL, 0, err, sizeof(err));
        model_eval(model, kv, nt, np, 5, b, 0, err, sizeof(err));
        free(rt);
        free(rp);
        free(rs);
    }
    ok(test_max_rel_diff(a, b, (size_t) nv) > 1e-3, "a causal pass differs");
    pcache_free(pc);
    kv_cache_free(kv);
    free(a);
    free(b);
}

/* a request's cache keeps what the next prompt shares with it */
static void
test_held(void)
{
    fixture_t      f;
    pcache_t      *pc = pcache_new(model, NULL, err, sizeof(err));
    kv_cache_t    *kv = kv_cache_new(model, 128), *ref = kv_cache_new(model,
                                                                      128);
    float         *a = malloc(nv * sizeof(float)),
                  *b = malloc(nv * sizeof(float));
    int32_t        nt[3] = { 7, 8, 9 }, np[3] = { 29, 30, 31 };
    int            m1[] = { 0, 1, 2, 4 }, m2[] = { 0, 1, 3, 4 };
    int            nc, nr, rc, nc2;
    pcache_held_t  h;

    fx_docqa(&f, PML_MODE_SCAFFOLD, 0);
    pcache_schema_put(pc, "qa", "", 0, &f.lay, err, sizeof(err));
    pcache_held_init(&h);

    rc = pcache_gather_held(pc, "qa", m1, 4, kv, &h, &nc, &nr, err,
                            sizeof(err));
    ok(rc == 0 && nc == 25 && nr == 0 && h.n == 25, "first gather: %d "
       "entries, %d reused", nc, nr);
    model_eval(model, kv, nt, np, 3, a, 0, err, sizeof(err));

    nt[0] = 20;                 /* a new question, the same documents */
    rc = pcache_gather_held(pc, "qa", m1, 4, kv, &h, &nc, &nr, err,
                            sizeof(err));
    ok(rc == 0 && nr == 25 && kv_cache_len(kv) == 25,
       "same modules: all %d entries kept, none copied", nr);
    model_eval(model, kv, nt, np, 3, a, 0, err, sizeof(err));
    serve(pc, "qa", m1, 4, nt, np, 3, 1, ref, b, &nc2);
    ok(test_max_rel_diff(a, b, (size_t) nv) <= 1e-6, "same logits as a fresh "
       "gather");

    rc = pcache_gather_held(pc, "qa", m2, 4, kv, &h, &nc, &nr, err,
                            sizeof(err));
    is_int(nr, 4 + 8, "the other member: the root's head and A kept");
    ok(rc == 0 && nc == 27 && kv_cache_len(kv) == 27, "the rest appended");
    model_eval(model, kv, nt, np, 3, a, 0, err, sizeof(err));
    serve(pc, "qa", m2, 4, nt, np, 3, 1, ref, b, &nc2);
    ok(test_max_rel_diff(a, b, (size_t) nv) <= 1e-6, "same logits as a fresh "
       "gather (%.2g)", test_max_rel_diff(a, b, (size_t) nv));

    pcache_schema_put(pc, "qa", "", 0, &f.lay, err, sizeof(err));
    rc = pcache_gather_held(pc, "qa", m2, 4, kv, &h, &nc, &nr, err,
                            sizeof(err));
    ok(rc == 0 && nr == 0, "a replaced schema shares nothing");
    pcache_held_reset(&h);
    rc = pcache_gather_held(pc, "qa", m2, 4, kv, &h, &nc, &nr, err,
                            sizeof(err));
    ok(rc == 0 && nr == 0, "nor after a reset");
    ok(pcache_gather_held(pc, "nope", m2, 4, kv, &h, &nc, &nr, err,
                          sizeof(err)) != 0, "unknown schema");

    pcache_held_free(&h);
    pcache_free(pc);
    kv_cache_free(kv);
    kv_cache_free(ref);
    free(a);
    free(b);
}

static void
test_eviction(void)
{
    fixture_t        f, g;
    pcache_config_t  cfg = { 0, NULL, NULL };
    pcache_t        *pc;
    kv_cache_t      *kv = kv_cache_new(model, 128);
    float           *a = malloc(nv * sizeof(float)),
                    *b = malloc(nv * sizeof(float));
    int32_t          nt[2] = { 7, 8 }, np[2] = { 29, 30 };
    int              mods[] = { 0, 1, 2, 4 }, nc;
    size_t           eb = kv_cache_entry_bytes(model);
    pcache_stats_t   st0, st;

    fx_docqa(&f, PML_MODE_SCAFFOLD, 0);
    fx_docqa(&g, PML_MODE_INDEPENDENT, 0);
    cfg.budget = 40 * eb;       /* one schema (33 entries), not two */
    pc = pcache_new(model, &cfg, err, sizeof(err));
    ok(pcache_schema_put(pc, "s1", "", 0, &f.lay, err, sizeof(err)) == 0,
       "first schema fits");
    serve(pc, "s1", mods, 4, nt, np, 2, 1, kv, a, &nc);
    ok(pcache_schema_put(pc, "s2", "", 0, &g.lay, err, sizeof(err)) == 0,
       "second schema evicts: %s", err);
    pcache_stats(pc, &st0);
    ok(st0.evictions > 0 && st0.bytes <= cfg.budget, "%llu evictions, %llu "
       "of %zu bytes", (unsigned long long) st0.evictions,
       (unsigned long long) st0.bytes, cfg.budget);
    ok(serve(pc, "s1", mods, 4, nt, np, 2, 1, kv, b, &nc) == 0,
       "an evicted schema is served: %s", err);
    pcache_stats(pc, &st);
    ok(st.misses > st0.misses && st.encode_passes > st0.encode_passes,
       "by encoding again (%llu misses)", (unsigned long long) st.misses);
    ok(test_max_rel_diff(a, b, (size_t) nv) <= 1e-6, "same logits as before");
    ok(st.bytes <= cfg.budget, "still within the budget");

    cfg.budget = 10 * eb;
    pcache_free(pc);
    pc = pcache_new(model, &cfg, err, sizeof(err));
    ok(pcache_schema_put(pc, "big", "", 0, &f.lay, err, sizeof(err)) == -2,
       "a schema larger than the budget: %s", err);
    pcache_free(pc);
    kv_cache_free(kv);
    free(a);
    free(b);
}

static void
test_persist(const char *model_path)
{
    fixture_t        f;
    pcache_config_t  cfg = { 0, NULL, model_path };
    pcache_t        *pc;
    kv_cache_t      *kv = kv_cache_new(model, 128);
    float           *a = malloc(nv * sizeof(float)),
                    *b = malloc(nv * sizeof(float));
    int32_t          nt[2] = { 7, 8 }, np[2] = { 29, 30 };
    int              mods[] = { 0, 1, 3, 4 }, nc, skipped, n;
    char             dir[PATH_MAX], file[PATH_MAX + 32], cmd[PATH_MAX * 3];
    pcache_stats_t   st;
    pcache_schema_info_t  si;
    FILE            *fp;
    unsigned char    byte;

    snprintf(dir, sizeof(dir), "%s/kv", tmpdir);
    cfg.dir = dir;
    fx_docqa(&f, PML_MODE_SCAFFOLD, 1);
    pc = pcache_new(model, &cfg, err, sizeof(err));
    ok(pc != NULL && pcache_schema_put(pc, "keep", "<schema name=\"keep\"/>",
                                       21, &f.lay, err, sizeof(err)) == 0,
       "schema stored with a directory: %s", err);
    serve(pc, "keep", mods, 4, nt, np, 2, 1, kv, a, &nc);
    pcache_free(pc);

    pc = pcache_new(model, &cfg, err, sizeof(err));
    n = pcache_load_dir(pc, &skipped, err, sizeof(err));
    ok(n == 1 && skipped == 0, "reloaded: %d, skipped %d", n, skipped);
    memset(&si, 0, sizeof(si));
    n = pcache_schema_info(pc, -1, "keep", &si);
    ok(n == 0 && si.loaded && si.n_tokens == 33,
       "the schema is back (%d tokens)", si.n_tokens);
    ok(serve(pc, "keep", mods, 4, nt, np, 2, 1, kv, b, &nc) == 0,
       "served after reload");
    pcache_stats(pc, &st);
    is_int(st.encode_passes, 0, "without encoding");
    ok(memcmp(a, b, (size_t) nv * sizeof(float)) == 0, "the same logits");
    pcache_free(pc);

    /* a different model file: another fingerprint */
    cfg.model_path = "/dev/null";
    pc = pcache_new(model, &cfg, err, sizeof(err));
    n = pcache_load_dir(pc, &skipped, err, sizeof(err));
    ok(n == 0 && skipped == 1 && strstr(err, "another model") != NULL,
       "another model's file is skipped: %s", err);
    pcache_free(pc);
    cfg.model_path = model_path;

    /* a flipped byte, then a truncated file */
    snprintf(file, sizeof(file), "%s/keep.pcache", dir);
    fp = fopen(file, "r+b");
    fseek(fp, 200, SEEK_SET);
    byte = (unsigned char) fgetc(fp);
    fseek(fp, 200, SEEK_SET);
    fputc(byte ^ 0x40, fp);
    fclose(fp);
    pc = pcache_new(model, &cfg, err, sizeof(err));
    n = pcache_load_dir(pc, &skipped, err, sizeof(err));
    ok(n == 0 && skipped == 1 && strstr(err, "checksum") != NULL,
       "a corrupted file is skipped: %s", err);
    pcache_free(pc);
    ok(truncate(file, 40) == 0, "truncate");
    pc = pcache_new(model, &cfg, err, sizeof(err));
    n = pcache_load_dir(pc, &skipped, err, sizeof(err));
    ok(n == 0 && skipped == 1, "a truncated file is skipped: %s", err);
    ok(pcache_schema_del(pc, "keep") == -1, "nothing loaded");
    pcache_free(pc);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("# cleanup failed\n");
    }
    kv_cache_free(kv);
    free(a);
    free(b);
}

static void
test_prefix(void)
{
    int32_t  a[] = { 1, 5, 6, 7, 8 }, b[] = { 1, 5, 6, 9 };

    is_int(pcache_common_prefix(a, 5, b, 4), 3, "common prefix");
    is_int(pcache_common_prefix(a, 5, a, 5), 5, "identical");
    is_int(pcache_common_prefix(a, 0, b, 4), 0, "empty");
    is_int(pcache_common_prefix(a + 1, 4, b, 4), 0, "none");
}

int
main(void)
{
    gguf_random_llama_t  p;
    char                 path[PATH_MAX];

    if (mkdtemp(tmpdir) == NULL) {
        skip_all("mkdtemp failed");
    }
    gguf_random_llama_defaults(&p);
    p.seed = 11;
    p.n_ctx = 512;
    snprintf(path, sizeof(path), "%s/m.gguf", tmpdir);
    if (gguf_write_random_llama(&p, path, err, sizeof(err)) != 0) {
        printf("# %s\n", err);
        return 1;
    }
    model = model_load(path, 1, err, sizeof(err));
    if (!ok(model != NULL, "model loads")) {
        printf("# %s\n", err);
        return done_testing();
    }
    nv = model_hparams(model)->n_vocab;

    test_prefix();
    test_scaffold();
    test_placeholder();
    test_independent();
    test_held();
    test_eviction();
    test_persist(path);

    model_free(model);
    unlink(path);
    rmdir(tmpdir);
    return done_testing();
}
