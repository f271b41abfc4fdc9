/*
 * Prompt Cache store (see pcache.h).
 */

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "errf.h"
#include "pcache.h"

#define PCACHE_MAGIC    "LLMCPC01"
#define PCACHE_VERSION  1
#define PCACHE_FNV0     0xcbf29ce484222325ULL
#define PCACHE_FNVP     0x100000001b3ULL

typedef struct {
    kv_cache_t  *kv;            /* (n_tokens entries); NULL: not resident */
    uint64_t     used;          /* LRU tick */
    int          pin;
} pc_mod_t;

typedef struct {
    char          *name;
    char          *text;
    size_t         text_len;
    pml_layout_t   lay;         /* our own copy, freed by pc_lay_free */
    pc_mod_t      *mods;        /* (lay.n_mods) */
    double         encode_ms;
    int            loaded;
    uint64_t       id;          /* new on every put and load */
} pc_schema_t;

struct pcache {
    model_t       *m;
    size_t         budget;
    size_t         entry_bytes;
    size_t         used;
    char          *dir;
    uint64_t       model_hash;
    pc_schema_t  **schemas;
    int            n_schemas, cap_schemas;
    uint64_t       tick;
    uint64_t       next_id;
    pcache_stats_t st;
};

/* one entry of a pass or a gather: module k's token i at pos */
typedef struct {
    int32_t  pos;
    int32_t  k;
    int32_t  i;
    int32_t  ord;               /* insertion order: a stable sort */
    int32_t  tok;
} pc_ent_t;

static uint64_t
pc_fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char  *p = data;
    size_t                i;

    for (i = 0; i < n; i++) {
        h = (h ^ p[i]) * PCACHE_FNVP;
    }
    return h;
}

static double
pc_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec * 1e-6;
}

static char *
pc_strndup(const char *s, size_t n)
{
    char  *d = malloc(n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void *
pc_dup(const void *p, size_t n)
{
    void  *d;

    if (n == 0) {
        return NULL;
    }
    d = malloc(n);
    if (d != NULL) {
        memcpy(d, p, n);
    }
    return d;
}

/* --- layouts we own ------------------------------------------------------ */

static void
pc_lay_free(pml_layout_t *l)
{
    int  k, p;

    for (k = 0; k < l->n_mods; k++) {
        free(l->mods[k].name);
        free(l->mods[k].tokens);
        free(l->mods[k].pos);
        for (p = 0; p < l->mods[k].n_params; p++) {
            free(l->mods[k].params[p].name);
            free(l->mods[k].params[p].scaffold);
        }
        free(l->mods[k].params);
    }
    free(l->mods);
    memset(l, 0, sizeof(*l));
}

static int
pc_lay_copy(pml_layout_t *d, const pml_layout_t *s)
{
    const pml_module_t  *sm;
    pml_module_t        *dm;
    int                  k, p;

    memset(d, 0, sizeof(*d));
    d->mode = s->mode;
    d->n_pos = s->n_pos;
    d->mods = calloc((size_t) (s->n_mods > 0 ? s->n_mods : 1),
                     sizeof(pml_module_t));
    if (d->mods == NULL) {
        return -1;
    }
    d->n_mods = s->n_mods;
    for (k = 0; k < s->n_mods; k++) {
        sm = &s->mods[k];
        dm = &d->mods[k];
        *dm = *sm;
        dm->name = pc_strndup(sm->name ? sm->name : "",
                              sm->name ? strlen(sm->name) : 0);
        dm->tokens = pc_dup(sm->tokens, (size_t) sm->n_tokens
                                        * sizeof(int32_t));
        dm->pos = pc_dup(sm->pos, (size_t) sm->n_tokens * sizeof(int32_t));
        dm->params = NULL;
        dm->n_params = 0;
        if (dm->name == NULL || (sm->n_tokens > 0
                                 && (dm->tokens == NULL || dm->pos == NULL)))
        {
            d->n_mods = k + 1;
            pc_lay_free(d);
            return -1;
        }
        if (sm->n_params > 0) {
            dm->params = calloc((size_t) sm->n_params, sizeof(pml_param_t));
            if (dm->params == NULL) {
                d->n_mods = k + 1;
                pc_lay_free(d);
                return -1;
            }
            dm->n_params = sm->n_params;
            for (p = 0; p < sm->n_params; p++) {
                dm->params[p] = sm->params[p];
                dm->params[p].name = pc_strndup(sm->params[p].name,
                                                strlen(sm->params[p].name));
                dm->params[p].scaffold = pc_dup(sm->params[p].scaffold,
                    (size_t) sm->params[p].n_scaffold * sizeof(int32_t));
                if (sm->params[p].n_scaffold == 0) {
                    dm->params[p].scaffold = NULL;
                }
            }
        }
    }
    return 0;
}

/* --- schemas ------------------------------------------------------------- */

static void
pc_schema_free(pcache_t *pc, pc_schema_t *sc)
{
    int  k;

    if (sc == NULL) {
        return;
    }
    for (k = 0; k < sc->lay.n_mods; k++) {
        if (sc->mods && sc->mods[k].kv != NULL) {
            pc->used -= (size_t) sc->lay.mods[k].n_tokens * pc->entry_bytes;
            kv_cache_free(sc->mods[k].kv);
        }
    }
    free(sc->mods);
    pc_lay_free(&sc->lay);
    free(sc->name);
    free(sc->text);
    free(sc);
}

static int
pc_find(const pcache_t *pc, const char *name)
{
    int  i;

    for (i = 0; i < pc->n_schemas; i++) {
        if (strcmp(pc->schemas[i]->name, name) == 0) {
            return i;
        }
    }
    return -1;
}

static void
pc_remove(pcache_t *pc, int i)
{
    pc_schema_free(pc, pc->schemas[i]);
    memmove(pc->schemas + i, pc->schemas + i + 1,
            (size_t) (pc->n_schemas - i - 1) * sizeof(pc_schema_t *));
    pc->n_schemas--;
}

static int
pc_add(pcache_t *pc, pc_schema_t *sc)
{
    pc_schema_t  **a;
    int            cap;

    if (pc->n_schemas == pc->cap_schemas) {
        cap = pc->cap_schemas ? pc->cap_schemas * 2 : 8;
        a = realloc(pc->schemas, (size_t) cap * sizeof(*a));
        if (a == NULL) {
            return -1;
        }
        pc->schemas = a;
        pc->cap_schemas = cap;
    }
    pc->schemas[pc->n_schemas++] = sc;
    sc->id = ++pc->next_id;
    return 0;
}

static size_t
pc_mod_bytes(const pcache_t *pc, const pc_schema_t *sc, int k)
{
    return (size_t) sc->lay.mods[k].n_tokens * pc->entry_bytes;
}

static void
pc_evict(pcache_t *pc, pc_schema_t *sc, int k)
{
    kv_cache_free(sc->mods[k].kv);
    sc->mods[k].kv = NULL;
    pc->used -= pc_mod_bytes(pc, sc, k);
    pc->st.evictions++;
}

/* evicts least recently used modules no request holds until need more
 * bytes fit; 0 or -1 */
static int
pc_make_room(pcache_t *pc, size_t need)
{
    pc_schema_t  *sc, *best_sc;
    int           i, k, best_k;
    uint64_t      best;

    if (pc->budget == 0) {
        return 0;
    }
    while (pc->used + need > pc->budget) {
        best_sc = NULL;
        best_k = -1;
        best = UINT64_MAX;
        for (i = 0; i < pc->n_schemas; i++) {
            sc = pc->schemas[i];
            for (k = 0; k < sc->lay.n_mods; k++) {
                if (sc->mods[k].kv != NULL && sc->mods[k].pin == 0
                    && sc->mods[k].used < best)
                {
                    best = sc->mods[k].used;
                    best_sc = sc;
                    best_k = k;
                }
            }
        }
        if (best_sc == NULL) {
            return -1;
        }
        pc_evict(pc, best_sc, best_k);
    }
    return 0;
}

static int
pc_needs(const pc_schema_t *sc, int k)
{
    return sc->lay.mods[k].n_tokens > 0 && sc->mods[k].kv == NULL;
}

/* whether module k is in the pass where union u holds member choice[u] */
static int
pc_active(const pml_layout_t *l, const int *choice, int k)
{
    for ( ; k >= 0; k = l->mods[k].parent) {
        if (l->mods[k].union_id >= 0
            && choice[l->mods[k].union_id] != k)
        {
            return 0;
        }
    }
    return 1;
}

static int
pc_ent_cmp(const void *a, const void *b)
{
    const pc_ent_t  *x = a, *y = b;

    if (x->pos != y->pos) {
        return x->pos < y->pos ? -1 : 1;
    }
    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* appends to dst the entries of src at ents[] positions whose module is
 * k (all when k < 0), in runs of consecutive entries */
static int
pc_append_runs(kv_cache_t *dst, const kv_cache_t *src, const pc_ent_t *e,
    int n, int k)
{
    int  a, b;

    for (a = 0; a < n; a = b) {
        if (k >= 0 && e[a].k != k) {
            b = a + 1;
            continue;
        }
        for (b = a + 1; b < n && (k < 0 || e[b].k == k); b++) {
            /* void */
        }
        if (kv_cache_append(dst, src, a, b - a) != 0) {
            return -1;
        }
    }
    return 0;
}

/* a new cache holding module k's entries, cut from a pass */
static kv_cache_t *
pc_cut(pcache_t *pc, pc_schema_t *sc, kv_cache_t *pass, const pc_ent_t *e,
    int n, int k)
{
    kv_cache_t  *kv = kv_cache_new(pc->m, sc->lay.mods[k].n_tokens);

    if (kv == NULL) {
        return NULL;
    }
    if (pc_append_runs(kv, pass, e, n, k) != 0
        || kv_cache_len(kv) != sc->lay.mods[k].n_tokens)
    {
        kv_cache_free(kv);
        return NULL;
    }
    return kv;
}

/* one scaffold pass with the union choice; stores the wanted modules of
 * the pass that are not resident */
static int
pc_pass(pcache_t *pc, pc_schema_t *sc, const int *choice, const char *want,
    char *err, size_t errlen)
{
    const pml_layout_t  *l = &sc->lay;
    const pml_module_t  *md;
    pc_ent_t            *e = NULL;
    int32_t             *tok = NULL, *pos = NULL;
    kv_cache_t          *pass = NULL;
    size_t               need = 0;
    int                  k, i, p, n = 0, cap = 0, rc = -1;

    for (k = 0; k < l->n_mods; k++) {
        if (!pc_active(l, choice, k)) {
            continue;
        }
        cap += l->mods[k].n_tokens;
        for (p = 0; p < l->mods[k].n_params; p++) {
            cap += l->mods[k].params[p].n_scaffold;
        }
        if (want[k] && pc_needs(sc, k)) {
            need += pc_mod_bytes(pc, sc, k);
        }
    }
    if (cap == 0) {
        return 0;
    }
    if (pc_make_room(pc, need) != 0) {
        errf(err, errlen, __func__, "schema \"%s\": %zu bytes of K/V do "
               "not fit in the budget of %zu", sc->name, need, pc->budget);
        return -2;
    }
    e = malloc((size_t) cap * sizeof(*e));
    tok = malloc((size_t) cap * sizeof(int32_t));
    pos = malloc((size_t) cap * sizeof(int32_t));
    if (e == NULL || tok == NULL || pos == NULL) {
        errf(err, errlen, __func__, "out of memory");
        goto done;
    }
    for (k = 0; k < l->n_mods; k++) {
        if (!pc_active(l, choice, k)) {
            continue;
        }
        md = &l->mods[k];
        for (i = 0; i < md->n_tokens; i++) {
            e[n] = (pc_ent_t) { md->pos[i], k, i, n, md->tokens[i] };
            n++;
        }
        /* placeholders condition what follows, but are not stored: a
         * prompt's argument takes their place */
        for (p = 0; p < md->n_params; p++) {
            for (i = 0; i < md->params[p].n_scaffold
                        && i < md->params[p].length; i++)
            {
                e[n] = (pc_ent_t) { md->params[p].start + i, -1, i, n,
                                    md->params[p].scaffold[i] };
                n++;
            }
        }
    }
    qsort(e, (size_t) n, sizeof(*e), pc_ent_cmp);
    for (i = 0; i < n; i++) {
        tok[i] = e[i].tok;
        pos[i] = e[i].pos;
    }
    pass = kv_cache_new(pc->m, n);
    if (pass == NULL) {
        errf(err, errlen, __func__, "cannot allocate %d entries", n);
        goto done;
    }
    if (model_eval(pc->m, pass, tok, pos, n, NULL, 0, err, errlen) != 0) {
        goto done;
    }
    pc->st.encode_passes++;
    for (k = 0; k < l->n_mods; k++) {
        if (!want[k] || !pc_needs(sc, k) || !pc_active(l, choice, k)) {
            continue;
        }
        sc->mods[k].kv = pc_cut(pc, sc, pass, e, n, k);
        if (sc->mods[k].kv == NULL) {
            errf(err, errlen, __func__, "cannot store module \"%s\"",
                   l->mods[k].name);
            goto done;
        }
        sc->mods[k].used = ++pc->tick;
        pc->used += pc_mod_bytes(pc, sc, k);
    }
    rc = 0;

done:
    kv_cache_free(pass);
    free(e);
    free(tok);
    free(pos);
    return rc;
}

static int
pc_encode_independent(pcache_t *pc, pc_schema_t *sc, int k, char *err,
    size_t errlen)
{
    const pml_module_t  *md = &sc->lay.mods[k];
    int32_t             *seg;
    kv_cache_t          *kv;
    int                  i;

    if (pc_make_room(pc, pc_mod_bytes(pc, sc, k)) != 0) {
        errf(err, errlen, __func__, "module \"%s\": %zu bytes of K/V do "
               "not fit in the budget of %zu", md->name,
               pc_mod_bytes(pc, sc, k), pc->budget);
        return -2;
    }
    seg = malloc((size_t) md->n_tokens * sizeof(int32_t));
    kv = kv_cache_new(pc->m, md->n_tokens);
    if (seg == NULL || kv == NULL) {
        free(seg);
        kv_cache_free(kv);
        return errf(err, errlen, __func__, "out of memory");
    }
    for (i = 0; i < md->n_tokens; i++) {
        seg[i] = k + 1;
    }
    if (model_eval_seg(pc->m, kv, md->tokens, md->pos, seg, md->n_tokens,
                       NULL, 0, err, errlen) != 0)
    {
        free(seg);
        kv_cache_free(kv);
        return -1;
    }
    free(seg);
    pc->st.encode_passes++;
    sc->mods[k].kv = kv;
    sc->mods[k].used = ++pc->tick;
    pc->used += pc_mod_bytes(pc, sc, k);
    return 0;
}

/* encodes the wanted modules that are not resident (the caller pins
 * them); 0, -1 or -2 (budget) */
static int
pc_encode(pcache_t *pc, pc_schema_t *sc, const char *want, char *err,
    size_t errlen)
{
    const pml_layout_t  *l = &sc->lay;
    int                 *choice, *dflt;
    int                  k, a, u, n_unions = 0, rc = 0;

    if (l->mode == PML_MODE_INDEPENDENT) {
        for (k = 0; k < l->n_mods && rc == 0; k++) {
            if (want[k] && pc_needs(sc, k)) {
                rc = pc_encode_independent(pc, sc, k, err, errlen);
            }
        }
        return rc;
    }

    for (k = 0; k < l->n_mods; k++) {
        if (l->mods[k].union_id >= n_unions) {
            n_unions = l->mods[k].union_id + 1;
        }
    }
    choice = malloc((size_t) (n_unions + 1) * sizeof(int));
    dflt = malloc((size_t) (n_unions + 1) * sizeof(int));
    if (choice == NULL || dflt == NULL) {
        free(choice);
        free(dflt);
        return errf(err, errlen, __func__, "out of memory");
    }
    for (u = 0; u < n_unions; u++) {
        dflt[u] = -1;
    }
    /* the default member: the one in the scaffold, else the first */
    for (k = 0; k < l->n_mods; k++) {
        u = l->mods[k].union_id;
        if (u >= 0 && (dflt[u] < 0 || (l->mods[k].in_scaffold
                                       && !l->mods[dflt[u]].in_scaffold)))
        {
            dflt[u] = k;
        }
    }
    for (k = 0; k < l->n_mods; k++) {
        if (!want[k] || !pc_needs(sc, k)) {
            continue;
        }
        /* the pass holding k: every union on its way up picks it */
        memcpy(choice, dflt, (size_t) n_unions * sizeof(int));
        for (a = k; a >= 0; a = l->mods[a].parent) {
            if (l->mods[a].union_id >= 0) {
                choice[l->mods[a].union_id] = a;
            }
        }
        rc = pc_pass(pc, sc, choice, want, err, errlen);
        if (rc != 0) {
            break;
        }
        if (pc_needs(sc, k)) {
            rc = errf(err, errlen, __func__, "module \"%s\" was not in "
                        "its pass", l->mods[k].name);
            break;
        }
    }
    free(choice);
    free(dflt);
    return rc;
}

static int
pc_check_layout(const pml_layout_t *l, char *err, size_t errlen)
{
    const pml_module_t  *md;
    int                  k, i, p;

    if (l->n_mods <= 0) {
        return errf(err, errlen, "pcache_schema_put", "no modules");
    }
    for (k = 0; k < l->n_mods; k++) {
        md = &l->mods[k];
        if (md->parent >= k || (k > 0 && md->parent < 0)
            || md->n_tokens < 0 || (md->n_tokens > 0 && (md->tokens == NULL
                                                         || md->pos == NULL)))
        {
            return errf(err, errlen, "pcache_schema_put", "module %d: "
                          "bad layout", k);
        }
        for (i = 0; i < md->n_tokens; i++) {
            if (md->pos[i] < 0) {
                return errf(err, errlen, "pcache_schema_put", "module %d: "
                              "negative position", k);
            }
        }
        for (p = 0; p < md->n_params; p++) {
            if (md->params[p].n_scaffold < 0
                || (md->params[p].n_scaffold > 0
                    && md->params[p].scaffold == NULL))
            {
                return errf(err, errlen, "pcache_schema_put", "module %d: "
                              "bad parameter", k);
            }
        }
    }
    return 0;
}

/* --- persistence --------------------------------------------------------- */

typedef struct {
    FILE      *f;
    uint64_t   h;
    int        failed;
} pc_out_t;

static void
pc_put(pc_out_t *o, const void *p, size_t n)
{
    if (n > 0 && fwrite(p, 1, n, o->f) != n) {
        o->failed = 1;
    }
    o->h = pc_fnv(o->h, p, n);
}

static void
pc_put_u32(pc_out_t *o, uint32_t v)
{
    pc_put(o, &v, 4);
}

static void
pc_put_str(pc_out_t *o, const char *s, size_t n)
{
    pc_put_u32(o, (uint32_t) n);
    pc_put(o, s, n);
}

static void
pc_put_header(pcache_t *pc, pc_out_t *o, uint32_t mode)
{
    const model_hparams_t  *hp = model_hparams(pc->m);
    uint64_t                eb = pc->entry_bytes;

    pc_put(o, PCACHE_MAGIC, 8);
    pc_put_u32(o, PCACHE_VERSION);
    pc_put_u32(o, mode);
    pc_put_u32(o, (uint32_t) hp->n_layers);
    pc_put_u32(o, (uint32_t) hp->dim);
    pc_put_u32(o, (uint32_t) hp->n_vocab);
    pc_put_u32(o, (uint32_t) hp->n_kv_heads);
    pc_put_u32(o, (uint32_t) hp->head_dim);
    pc_put(o, &eb, 8);
    pc_put(o, &pc->model_hash, 8);
}

static int
pc_save(pcache_t *pc, const pc_schema_t *sc, char *err, size_t errlen)
{
    const pml_layout_t  *l = &sc->lay;
    const pml_module_t  *md;
    char                 path[4096], tmp[4200];
    pc_out_t             o;
    void                *buf = NULL;
    size_t               nb;
    uint64_t             h;
    int                  k, p;

    snprintf(path, sizeof(path), "%s/%s.pcache", pc->dir, sc->name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.pcache.tmp", pc->dir, sc->name);
    o.f = fopen(tmp, "wb");
    if (o.f == NULL) {
        return errf(err, errlen, __func__, "%s: %s", tmp,
                      strerror(errno));
    }
    o.h = PCACHE_FNV0;
    o.failed = 0;
    pc_put_header(pc, &o, (uint32_t) l->mode);
    pc_put_str(&o, sc->text, sc->text_len);
    pc_put_str(&o, sc->name, strlen(sc->name));
    pc_put_u32(&o, (uint32_t) l->n_mods);
    pc_put_u32(&o, (uint32_t) l->n_pos);
    for (k = 0; k < l->n_mods; k++) {
        md = &l->mods[k];
        pc_put_str(&o, md->name, strlen(md->name));
        pc_put(&o, &md->parent, 4);
        pc_put(&o, &md->union_id, 4);
        pc_put(&o, &md->in_scaffold, 4);
        pc_put(&o, &md->start, 4);
        pc_put(&o, &md->end, 4);
        pc_put(&o, &md->n_tokens, 4);
        pc_put(&o, md->tokens, (size_t) md->n_tokens * 4);
        pc_put(&o, md->pos, (size_t) md->n_tokens * 4);
        pc_put(&o, &md->n_params, 4);
        for (p = 0; p < md->n_params; p++) {
            pc_put_str(&o, md->params[p].name, strlen(md->params[p].name));
            pc_put(&o, &md->params[p].start, 4);
            pc_put(&o, &md->params[p].length, 4);
            pc_put(&o, &md->params[p].n_scaffold, 4);
            pc_put(&o, md->params[p].scaffold,
                   (size_t) md->params[p].n_scaffold * 4);
        }
    }
    for (k = 0; k < l->n_mods && !o.failed; k++) {
        if (l->mods[k].n_tokens == 0) {
            continue;
        }
        nb = pc_mod_bytes(pc, sc, k);
        buf = malloc(nb);
        if (buf == NULL || sc->mods[k].kv == NULL
            || kv_cache_export(sc->mods[k].kv, 0, l->mods[k].n_tokens, buf)
               != 0)
        {
            free(buf);
            fclose(o.f);
            unlink(tmp);
            return errf(err, errlen, __func__, "module \"%s\" is not "
                          "resident", l->mods[k].name);
        }
        pc_put(&o, buf, nb);
        free(buf);
    }
    h = o.h;
    if (fwrite(&h, 1, 8, o.f) != 8) {
        o.failed = 1;
    }
    if (fclose(o.f) != 0 || o.failed) {
        unlink(tmp);
        return errf(err, errlen, __func__, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return errf(err, errlen, __func__, "rename %s: %s", path,
                      strerror(errno));
    }
    return 0;
}

typedef struct {
    const unsigned char  *p;
    size_t                n, o;
    int                   bad;
} pc_in_t;

static const void *
pc_get(pc_in_t *in, size_t n)
{
    const void  *r;

    if (in->bad || n > in->n - in->o) {
        in->bad = 1;
        return NULL;
    }
    r = in->p + in->o;
    in->o += n;
    return r;
}

static int32_t
pc_get_i32(pc_in_t *in)
{
    const void  *p = pc_get(in, 4);
    int32_t      v = 0;

    if (p != NULL) {
        memcpy(&v, p, 4);
    }
    return v;
}

static char *
pc_get_str(pc_in_t *in, size_t *len)
{
    uint32_t     n = (uint32_t) pc_get_i32(in);
    const void  *p = pc_get(in, n);

    if (p == NULL) {
        return NULL;
    }
    if (len != NULL) {
        *len = n;
    }
    return pc_strndup(p, n);
}

/* an int32 array of n (0 <= n <= cap) elements */
static int32_t *
pc_get_arr(pc_in_t *in, int n)
{
    const void  *p;

    if (n < 0 || (size_t) n > (in->n - in->o) / 4) {
        in->bad = 1;
        return NULL;
    }
    p = pc_get(in, (size_t) n * 4);
    return p ? pc_dup(p, (size_t) n * 4) : NULL;
}

/* parses a file's bytes into a new schema with resident modules */
static pc_schema_t *
pc_parse_file(pcache_t *pc, const unsigned char *data, size_t size,
    char *err, size_t errlen)
{
    pc_in_t        in = { data, size, 0, 0 };
    pc_out_t       hdr;
    pc_schema_t   *sc = NULL;
    pml_module_t  *md;
    char           expect[128];
    FILE          *mem;
    uint64_t       h;
    int            k, p, n;
    const void    *q;
    void          *aligned;

    if (size < 8 + 8 || memcmp(data, PCACHE_MAGIC, 8) != 0) {
        errf(err, errlen, __func__, "not a prompt-cache file");
        return NULL;
    }
    memcpy(&h, data + size - 8, 8);
    if (pc_fnv(PCACHE_FNV0, data, size - 8) != h) {
        errf(err, errlen, __func__, "checksum mismatch");
        return NULL;
    }
    in.n = size - 8;

    /* the header we would write, byte for byte, mode aside */
    mem = fmemopen(expect, sizeof(expect), "wb");
    if (mem == NULL) {
        errf(err, errlen, __func__, "fmemopen failed");
        return NULL;
    }
    hdr.f = mem;
    hdr.h = PCACHE_FNV0;
    hdr.failed = 0;
    memcpy(&k, data + 12, 4);
    pc_put_header(pc, &hdr, (uint32_t) k);
    fflush(mem);
    n = (int) ftell(mem);
    fclose(mem);
    q = pc_get(&in, (size_t) n);
    if (q == NULL || memcmp(q, expect, (size_t) n) != 0) {
        errf(err, errlen, __func__, "written for another model or "
               "format version");
        return NULL;
    }

    sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        errf(err, errlen, __func__, "out of memory");
        return NULL;
    }
    sc->lay.mode = k == PML_MODE_INDEPENDENT ? PML_MODE_INDEPENDENT
                                             : PML_MODE_SCAFFOLD;
    sc->text = pc_get_str(&in, &sc->text_len);
    sc->name = pc_get_str(&in, NULL);
    n = pc_get_i32(&in);
    sc->lay.n_pos = pc_get_i32(&in);
    if (in.bad || sc->text == NULL || sc->name == NULL || n <= 0
        || (size_t) n > in.n / 32)
    {
        goto bad;
    }
    sc->lay.mods = calloc((size_t) n, sizeof(pml_module_t));
    sc->mods = calloc((size_t) n, sizeof(pc_mod_t));
    if (sc->lay.mods == NULL || sc->mods == NULL) {
        goto bad;
    }
    sc->lay.n_mods = n;
    for (k = 0; k < n && !in.bad; k++) {
        md = &sc->lay.mods[k];
        md->name = pc_get_str(&in, NULL);
        md->parent = pc_get_i32(&in);
        md->union_id = pc_get_i32(&in);
        md->in_scaffold = pc_get_i32(&in);
        md->start = pc_get_i32(&in);
        md->end = pc_get_i32(&in);
        md->n_tokens = pc_get_i32(&in);
        md->tokens = pc_get_arr(&in, md->n_tokens);
        md->pos = pc_get_arr(&in, md->n_tokens);
        md->n_params = pc_get_i32(&in);
        if (in.bad || md->name == NULL || md->n_params < 0
            || (size_t) md->n_params > in.n / 16)
        {
            md->n_params = 0;
            goto bad;
        }
        if (md->n_params > 0) {
            md->params = calloc((size_t) md->n_params, sizeof(pml_param_t));
            if (md->params == NULL) {
                md->n_params = 0;
                goto bad;
            }
        }
        for (p = 0; p < md->n_params && !in.bad; p++) {
            md->params[p].name = pc_get_str(&in, NULL);
            md->params[p].start = pc_get_i32(&in);
            md->params[p].length = pc_get_i32(&in);
            md->params[p].n_scaffold = pc_get_i32(&in);
            md->params[p].scaffold = pc_get_arr(&in,
                                                md->params[p].n_scaffold);
            if (md->params[p].name == NULL) {
                in.bad = 1;
            }
        }
    }
    if (in.bad || pc_check_layout(&sc->lay, err, errlen) != 0) {
        goto bad;
    }
    for (k = 0; k < n; k++) {
        for (p = 0; p < sc->lay.mods[k].n_tokens; p++) {
            if (sc->lay.mods[k].tokens[p] < 0
                || sc->lay.mods[k].tokens[p]
                   >= model_hparams(pc->m)->n_vocab)
            {
                goto bad;
            }
        }
    }
    for (k = 0; k < n; k++) {
        md = &sc->lay.mods[k];
        if (md->n_tokens == 0) {
            continue;
        }
        q = pc_get(&in, pc_mod_bytes(pc, sc, k));
        if (q == NULL) {
            goto bad;
        }
        /* the entries sit at any offset of the file: aligned for import */
        aligned = pc_dup(q, pc_mod_bytes(pc, sc, k));
        sc->mods[k].kv = kv_cache_new(pc->m, md->n_tokens);
        if (aligned == NULL || sc->mods[k].kv == NULL
            || kv_cache_import(sc->mods[k].kv, aligned, md->n_tokens) != 0)
        {
            free(aligned);
            goto bad;
        }
        free(aligned);
        pc->used += pc_mod_bytes(pc, sc, k);
    }
    if (in.o != in.n) {
        goto bad;
    }
    sc->loaded = 1;
    return sc;

bad:
    errf(err, errlen, __func__, "truncated or malformed file");
    pc_schema_free(pc, sc);
    return NULL;
}

/* --- public -------------------------------------------------------------- */

pcache_t *
pcache_new(model_t *m, const pcache_config_t *cfg, char *err, size_t errlen)
{
    pcache_t               *pc;
    const model_hparams_t  *hp = model_hparams(m);
    struct stat             st;
    uint64_t                size = 0;

    pc = calloc(1, sizeof(*pc));
    if (pc == NULL) {
        errf(err, errlen, __func__, "out of memory");
        return NULL;
    }
    pc->m = m;
    pc->budget = cfg ? cfg->budget : 0;
    pc->entry_bytes = kv_cache_entry_bytes(m);
    if (cfg != NULL && cfg->model_path != NULL
        && stat(cfg->model_path, &st) == 0)
    {
        size = (uint64_t) st.st_size;
    }
    pc->model_hash = pc_fnv(pc_fnv(PCACHE_FNV0, &size, 8), hp->name,
                            strlen(hp->name));
    if (cfg != NULL && cfg->dir != NULL) {
        pc->dir = pc_strndup(cfg->dir, strlen(cfg->dir));
        if (pc->dir == NULL) {
            free(pc);
            errf(err, errlen, __func__, "out of memory");
            return NULL;
        }
        if (mkdir(pc->dir, 0700) != 0 && errno != EEXIST) {
            errf(err, errlen, __func__, "mkdir %s: %s", pc->dir,
                   strerror(errno));
            free(pc->dir);
            free(pc);
            return NULL;
        }
    }
    return pc;
}

void
pcache_free(pcache_t *pc)
{
    if (pc == NULL) {
        return;
    }
    while (pc->n_schemas > 0) {
        pc_remove(pc, pc->n_schemas - 1);
    }
    free(pc->schemas);
    free(pc->dir);
    free(pc);
}

size_t
pcache_entry_bytes(const pcache_t *pc)
{
    return pc->entry_bytes;
}

int
pcache_schema_put(pcache_t *pc, const char *name, const char *text,
    size_t text_len, const pml_layout_t *l, char *err, size_t errlen)
{
    pc_schema_t  *sc;
    char         *want;
    size_t        total = 0;
    double        t0;
    int           k, i, rc;

    if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL
        || name[0] == '.')
    {
        return errf(err, errlen, __func__, "bad schema name");
    }
    if (pc_check_layout(l, err, errlen) != 0) {
        return -1;
    }
    for (k = 0; k < l->n_mods; k++) {
        total += (size_t) l->mods[k].n_tokens * pc->entry_bytes;
    }
    if (pc->budget > 0 && total > pc->budget) {
        errf(err, errlen, __func__, "schema \"%s\" needs %zu bytes of "
               "K/V, more than the budget of %zu", name, total, pc->budget);
        return -2;
    }
    i = pc_find(pc, name);
    if (i >= 0) {
        pc_remove(pc, i);
    }

    sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        return errf(err, errlen, __func__, "out of memory");
    }
    sc->name = pc_strndup(name, strlen(name));
    sc->text = pc_strndup(text ? text : "", text ? text_len : 0);
    sc->text_len = text ? text_len : 0;
    want = malloc((size_t) l->n_mods);
    if (sc->name == NULL || sc->text == NULL || want == NULL
        || pc_lay_copy(&sc->lay, l) != 0
        || (sc->mods = calloc((size_t) l->n_mods, sizeof(pc_mod_t))) == NULL)
    {
        free(want);
        pc_schema_free(pc, sc);
        return errf(err, errlen, __func__, "out of memory");
    }
    for (k = 0; k < l->n_mods; k++) {
        want[k] = 1;
        sc->mods[k].pin = 1;
    }
    t0 = pc_now_ms();
    rc = pc_encode(pc, sc, want, err, errlen);
    sc->encode_ms = pc_now_ms() - t0;
    free(want);
    for (k = 0; k < l->n_mods; k++) {
        sc->mods[k].pin = 0;
    }
    if (rc == 0 && pc->dir != NULL) {
        rc = pc_save(pc, sc, err, errlen);
    }
    if (rc != 0 || pc_add(pc, sc) != 0) {
        pc_schema_free(pc, sc);
        return rc != 0 ? rc : errf(err, errlen, __func__, "out of memory");
    }
    return 0;
}

int
pcache_schema_del(pcache_t *pc, const char *name)
{
    char  path[4096];
    int   i = pc_find(pc, name);

    if (i < 0) {
        return -1;
    }
    if (pc->dir != NULL) {
        snprintf(path, sizeof(path), "%s/%s.pcache", pc->dir, name);
        unlink(path);
    }
    pc_remove(pc, i);
    return 0;
}

const pml_layout_t *
pcache_schema_layout(const pcache_t *pc, const char *name)
{
    int  i = pc_find(pc, name);

    return i < 0 ? NULL : &pc->schemas[i]->lay;
}

int
pcache_n_schemas(const pcache_t *pc)
{
    return pc->n_schemas;
}

int
pcache_schema_info(const pcache_t *pc, int i, const char *name,
    pcache_schema_info_t *out)
{
    const pc_schema_t  *sc;
    int                 k;

    if (i < 0) {
        i = name ? pc_find(pc, name) : -1;
    }
    if (i < 0 || i >= pc->n_schemas) {
        return -1;
    }
    sc = pc->schemas[i];
    memset(out, 0, sizeof(*out));
    out->name = sc->name;
    out->mode = sc->lay.mode;
    out->n_mods = sc->lay.n_mods;
    out->n_pos = sc->lay.n_pos;
    for (k = 0; k < sc->lay.n_mods; k++) {
        out->n_tokens += sc->lay.mods[k].n_tokens;
    }
    out->bytes = (size_t) out->n_tokens * pc->entry_bytes;
    out->encode_ms = sc->encode_ms;
    out->loaded = sc->loaded;
    return 0;
}

int
pcache_module_info(const pcache_t *pc, int i, const char *name, int k,
    pcache_mod_info_t *out)
{
    const pc_schema_t  *sc;

    if (i < 0) {
        i = name ? pc_find(pc, name) : -1;
    }
    if (i < 0 || i >= pc->n_schemas) {
        return -1;
    }
    sc = pc->schemas[i];
    if (k < 0 || k >= sc->lay.n_mods) {
        return -1;
    }
    out->name = sc->lay.mods[k].name;
    out->n_tokens = sc->lay.mods[k].n_tokens;
    out->start = sc->lay.mods[k].start;
    out->end = sc->lay.mods[k].end;
    out->bytes = pc_mod_bytes(pc, sc, k);
    out->resident = sc->lay.mods[k].n_tokens == 0 || sc->mods[k].kv != NULL;
    return 0;
}

void
pcache_stats(const pcache_t *pc, pcache_stats_t *out)
{
    const pc_schema_t  *sc;
    int                 i, k;

    *out = pc->st;
    out->schemas = (uint64_t) pc->n_schemas;
    out->modules = out->resident_modules = 0;
    for (i = 0; i < pc->n_schemas; i++) {
        sc = pc->schemas[i];
        out->modules += (uint64_t) sc->lay.n_mods;
        for (k = 0; k < sc->lay.n_mods; k++) {
            out->resident_modules += sc->mods[k].kv != NULL
                                     || sc->lay.mods[k].n_tokens == 0;
        }
    }
    out->bytes = pc->used;
    out->budget = pc->budget;
}

/* the plan's entries in position order; NULL + err */
static pc_ent_t *
pc_plan_ents(const pcache_t *pc, const char *name, const int *mods, int n,
    pc_schema_t **scp, int *n_out, char *err, size_t errlen)
{
    pc_schema_t  *sc;
    pc_ent_t     *e;
    int           i, j, k, cnt = 0, si = pc_find(pc, name);

    if (si < 0) {
        errf(err, errlen, "pcache_gather", "unknown schema \"%s\"", name);
        return NULL;
    }
    sc = pc->schemas[si];
    for (i = 0; i < n; i++) {
        if (mods[i] < 0 || mods[i] >= sc->lay.n_mods) {
            errf(err, errlen, "pcache_gather", "module %d out of range",
                   mods[i]);
            return NULL;
        }
        cnt += sc->lay.mods[mods[i]].n_tokens;
    }
    e = malloc((size_t) (cnt > 0 ? cnt : 1) * sizeof(*e));
    if (e == NULL) {
        errf(err, errlen, "pcache_gather", "out of memory");
        return NULL;
    }
    cnt = 0;
    for (i = 0; i < n; i++) {
        k = mods[i];
        for (j = 0; j < sc->lay.mods[k].n_tokens; j++) {
            e[cnt] = (pc_ent_t) { sc->lay.mods[k].pos[j], k, j, cnt,
                                  sc->lay.mods[k].tokens[j] };
            cnt++;
        }
    }
    qsort(e, (size_t) cnt, sizeof(*e), pc_ent_cmp);
    *scp = sc;
    *n_out = cnt;
    return e;
}

void
pcache_held_init(pcache_held_t *h)
{
    memset(h, 0, sizeof(*h));
}

void
pcache_held_reset(pcache_held_t *h)
{
    h->n = 0;
    h->schema_id = 0;
}

void
pcache_held_free(pcache_held_t *h)
{
    free(h->ent);
    memset(h, 0, sizeof(*h));
}

int
pcache_gather(pcache_t *pc, const char *name, const int *mods, int n,
    kv_cache_t *kv, int *n_cached, char *err, size_t errlen)
{
    int  reused;

    return pcache_gather_held(pc, name, mods, n, kv, NULL, n_cached,
                              &reused, err, errlen);
}

int
pcache_gather_held(pcache_t *pc, const char *name, const int *mods, int n,
    kv_cache_t *kv, pcache_held_t *held, int *n_cached, int *n_reused,
    char *err, size_t errlen)
{
    pc_schema_t  *sc;
    pc_ent_t     *e;
    char         *want;
    uint64_t     *ent;
    int           i, a, b, cnt, rc = -1, base, keep = 0;

    e = pc_plan_ents(pc, name, mods, n, &sc, &cnt, err, errlen);
    if (e == NULL) {
        return -1;
    }
    if (held != NULL) {
        if (held->cap < cnt) {
            ent = realloc(held->ent, (size_t) cnt * sizeof(uint64_t));
            if (ent == NULL) {
                free(e);
                return errf(err, errlen, __func__, "out of memory");
            }
            held->ent = ent;
            held->cap = cnt;
        }
        if (held->schema_id == sc->id) {
            for (keep = 0; keep < held->n && keep < cnt
                           && keep < kv_cache_len(kv)
                           && held->ent[keep]
                              == ((uint64_t) e[keep].k << 32
                                  | (uint32_t) e[keep].i); keep++)
            {
                /* void */
            }
        }
        kv_cache_truncate(kv, keep);
        /* from here on the cache no longer matches the old list */
        held->n = keep;
    }
    base = kv_cache_len(kv);
    if (cnt - keep > kv_cache_n_ctx(kv) - base) {
        free(e);
        return errf(err, errlen, __func__, "%d stored entries do not fit "
                      "in the context", cnt);
    }
    want = calloc((size_t) sc->lay.n_mods, 1);
    if (want == NULL) {
        free(e);
        return errf(err, errlen, __func__, "out of memory");
    }
    for (i = 0; i < n; i++) {
        if (!want[mods[i]]) {
            want[mods[i]] = 1;
            sc->mods[mods[i]].pin++;
            if (pc_needs(sc, mods[i])) {
                pc->st.misses++;
            } else if (sc->lay.mods[mods[i]].n_tokens > 0) {
                pc->st.hits++;
            }
        }
    }
    rc = pc_encode(pc, sc, want, err, errlen);
    for (a = keep; rc == 0 && a < cnt; a = b) {
        /* a run: the same module's consecutive entries */
        for (b = a + 1; b < cnt && e[b].k == e[a].k
                        && e[b].i == e[b - 1].i + 1; b++)
        {
            /* void */
        }
        if (kv_cache_append(kv, sc->mods[e[a].k].kv, e[a].i, b - a) != 0) {
            rc = errf(err, errlen, __func__, "cannot append module "
                        "\"%s\"", sc->lay.mods[e[a].k].name);
        }
    }
    for (i = 0; i < sc->lay.n_mods; i++) {
        if (want[i]) {
            sc->mods[i].pin--;
            sc->mods[i].used = ++pc->tick;
        }
    }
    free(want);
    if (rc != 0) {
        kv_cache_truncate(kv, base);
        free(e);
        return rc;
    }
    if (held != NULL) {
        for (i = 0; i < cnt; i++) {
            held->ent[i] = (uint64_t) e[i].k << 32 | (uint32_t) e[i].i;
        }
        held->n = cnt;
        held->schema_id = sc->id;
    }
    free(e);
    pc->st.cached_tokens += (uint64_t) cnt;
    pc->st.reused_tokens += (uint64_t) keep;
    *n_cached = cnt;
    *n_reused = keep;
    return 0;
}

int
pcache_plan_ref(const pcache_t *pc, const char *name, const int *mods,
    int n, int32_t **tokens, int32_t **pos, int32_t **seg, int *n_out,
    char *err, size_t errlen)
{
    pc_schema_t  *sc;
    pc_ent_t     *e;
    int           i, cnt;

    e = pc_plan_ents(pc, name, mods, n, &sc, &cnt, err, errlen);
    if (e == NULL) {
        return -1;
    }
    *tokens = malloc((size_t) (cnt > 0 ? cnt : 1) * sizeof(int32_t));
    *pos = malloc((size_t) (cnt > 0 ? cnt : 1) * sizeof(int32_t));
    *seg = malloc((size_t) (cnt > 0 ? cnt : 1) * sizeof(int32_t));
    if (*tokens == NULL || *pos == NULL || *seg == NULL) {
        free(*tokens);
        free(*pos);
        free(*seg);
        free(e);
        return errf(err, errlen, __func__, "out of memory");
    }
    for (i = 0; i < cnt; i++) {
        (*tokens)[i] = sc->lay.mods[e[i].k].tokens[e[i].i];
        (*pos)[i] = e[i].pos;
        (*seg)[i] = sc->lay.mode == PML_MODE_INDEPENDENT ? e[i].k + 1 : 0;
    }
    free(e);
    *n_out = cnt;
    return 0;
}

int
pcache_load_dir(pcache_t *pc, int *skipped, char *err, size_t errlen)
{
    DIR            *d;
    struct dirent  *de;
    pc_schema_t    *sc;
    unsigned char  *data;
    char            path[4096];
    size_t          nl, bytes;
    long            size;
    FILE           *f;
    int             loaded = 0, i, k;

    *skipped = 0;
    if (pc->dir == NULL) {
        return 0;
    }
    d = opendir(pc->dir);
    if (d == NULL) {
        return errf(err, errlen, __func__, "%s: %s", pc->dir,
                      strerror(errno));
    }
    while ((de = readdir(d)) != NULL) {
        nl = strlen(de->d_name);
        if (de->d_name[0] == '.' || nl <= 7
            || strcmp(de->d_name + nl - 7, ".pcache") != 0)
        {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", pc->dir, de->d_name);
        f = fopen(path, "rb");
        data = NULL;
        size = -1;
        if (f != NULL && fseek(f, 0, SEEK_END) == 0) {
            size = ftell(f);
            rewind(f);
        }
        if (size > 0) {
            data = malloc((size_t) size);
        }
        if (data == NULL || fread(data, 1, (size_t) size, f)
                            != (size_t) size)
        {
            if (f != NULL) {
                fclose(f);
            }
            free(data);
            errf(err, errlen, __func__, "%s: cannot read", path);
            (*skipped)++;
            continue;
        }
        fclose(f);
        sc = pc_parse_file(pc, data, (size_t) size, err, errlen);
        free(data);
        if (sc == NULL) {
            (*skipped)++;
            continue;
        }
        /* its bytes were counted; the others make room, and if that is
         * not enough it is dropped */
        bytes = 0;
        for (k = 0; k < sc->lay.n_mods; k++) {
            bytes += sc->mods[k].kv ? pc_mod_bytes(pc, sc, k) : 0;
            sc->mods[k].pin = 1;
            sc->mods[k].used = ++pc->tick;
        }
        pc->used -= bytes;
        i = pc_find(pc, sc->name);
        if (i >= 0) {
            pc_remove(pc, i);
        }
        if (pc_make_room(pc, bytes) != 0 || pc_add(pc, sc) != 0) {
            pc->used += bytes;
            pc_schema_free(pc, sc);
            errf(err, errlen, __func__, "%s does not fit in the budget",
                   path);
            (*skipped)++;
            continue;
        }
        pc->used += bytes;
        for (k = 0; k < sc->lay.n_mods; k++) {
            sc->mods[k].pin = 0;
        }
        loaded++;
    }
    closedir(d);
    return loaded;
}

int
pcache_common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
    int  i, n = na < nb ? na : nb;

    for (i = 0; i < n && a[i] == b[i]; i++) {
        /* void */
    }
    return i;
}
