/*
 * semantic_eval: how often the semantic cache's lookup code hits on pairs
 * that should share an answer and wrongly hits on pairs that must not, per
 * data set and threshold, with the guards on and off, and how well the
 * LSH bands find the nearest stored prompt.  It runs what the module runs:
 * llmc_normalize with the shipped dictionaries, llmc_embed_builtin,
 * llmc_cosine, llmc_guard_check.
 *
 *   build/bench/semantic_eval [-t THRESHOLD] [-d DIM] [-b BANDS] [-k BITS]
 *                             [-e FILE [-n N]]
 *
 * -e writes a sample of the pairs with this tool's verdict (N of each kind
 * per data set, every wrong hit included) for bench/semantic/e2e, which
 * asks nginx and Redis the same questions.
 *
 * Data: $LLMCACHE_SHARED/datasets (default ../shared from the repository
 * root, found from the binary's path when not run there); dictionaries:
 * examples/dict/{ko,en}.dict.  Pairs:
 *   ko-parakqc   every pair inside a set of 10 paraphrases should hit;
 *                each sentence against its most similar sentence of
 *                another set must miss (the hardest stored neighbour)
 *   ko-pawsx     label 1 should hit, label 0 must miss
 *   ko-korsts,   score >= 4 should hit, score <= 2 must miss
 *   en-stsb
 *   en-banking77 each utterance against a same-intent one (picked by a
 *                fixed generator) should hit; against its most similar
 *                utterance of another intent must miss
 *   en-sick      CONTRADICTION must miss
 */

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "llmc_embed.h"
#include "llmc_guard.h"
#include "llmc_lsh.h"
#include "llmc_normalize.h"


#define EVAL_SHOULD   1
#define EVAL_MUST     0
#define EVAL_NCONF    5

static const float  eval_thresholds[] = {
    0.70f, 0.75f, 0.80f, 0.85f, 0.88f, 0.90f, 0.92f, 0.94f, 0.96f, 0.98f
};
#define EVAL_NT  (int) (sizeof(eval_thresholds) / sizeof(float))

/* guard configurations reported */
static const struct { const char *name; unsigned g; }  eval_conf[] = {
    { "none", 0 }, { "negation", LLMC_GUARD_NEGATION },
    { "numbers", LLMC_GUARD_NUMBERS }, { "entities", LLMC_GUARD_ENTITIES },
    { "all", LLMC_GUARD_ALL },
};


typedef struct {
    char    *norm;
    size_t   len;
    int      group;         /* paraphrase set or intent, -1 none */
} eval_text_t;

typedef struct {
    int      a, b;
    int      kind;          /* EVAL_SHOULD or EVAL_MUST */
    float    cos;
    unsigned blocked;       /* guard bits that block the pair */
} eval_pair_t;

typedef struct {
    const char   *name;
    eval_text_t  *t;
    size_t        nt, capt;
    eval_pair_t  *p;
    size_t        np, capp;
    float        *vec;      /* [nt][dim] */
    size_t        same[2];  /* pairs left out: identical normalized */
    eval_pair_t  *look;     /* [nt] each text and its nearest other text */
    size_t        picked[2];    /* LSH lookups: correct, wrong */
    int           retrieval;    /* recall of LSH measured on it */
} eval_set_t;


static llmc_dict_t  *dict;
static int           dim = LLMC_EMBED_DIM_DEFAULT;
static int           bands = LLMC_LSH_BANDS_DEFAULT;
static int           bits = LLMC_LSH_BITS_DEFAULT;
static float         threshold = LLMC_SEMANTIC_THRESHOLD_DEFAULT;
static size_t        n_bad;
static FILE         *sample;
static size_t        sample_n = 100;


static double
eval_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void *
eval_grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return p;
    }
    *cap = *cap ? *cap * 2 : 1024;
    p = realloc(p, *cap * size);
    if (p == NULL) {
        fprintf(stderr, "semantic_eval: out of memory\n");
        exit(1);
    }
    return p;
}


/* Adds a text; returns its index or -1 when it cannot be normalized. */
static int
eval_text(eval_set_t *s, const char *text, size_t len, int group)
{
    char    err[256], *out;
    size_t  olen;

    if (llmc_normalize(text, len, LLMC_NORM_ALL, dict, &out, &olen, err,
                       sizeof(err)) != 0)
    {
        n_bad++;
        return -1;
    }
    s->t = eval_grow(s->t, &s->capt, s->nt, sizeof(eval_text_t));
    s->t[s->nt].norm = out;
    s->t[s->nt].len = olen;
    s->t[s->nt].group = group;
    return (int) s->nt++;
}


static size_t  n_same[2];


static void
eval_pair(eval_set_t *s, int a, int b, int kind)
{
    if (a < 0 || b < 0) {
        return;
    }

    /* the exact cache answers texts that normalize alike; a must-miss
     * pair of that kind is label noise or a duplicate in the data (the
     * same utterance under two intents), nothing the semantic layer
     * decides: counted apart */
    if (s->t[a].len == s->t[b].len
        && memcmp(s->t[a].norm, s->t[b].norm, s->t[a].len) == 0)
    {
        n_same[kind]++;
        s->same[kind]++;
        return;
    }
    s->p = eval_grow(s->p, &s->capp, s->np, sizeof(eval_pair_t));
    s->p[s->np].a = a;
    s->p[s->np].b = b;
    s->p[s->np].kind = kind;
    s->np++;
}


static char *
eval_read(const char *dir, const char *file, size_t *len)
{
    char    path[PATH_MAX], *buf;
    FILE   *f;
    long    n;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "semantic_eval: %s: %s (skipped)\n", path,
                strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t) n + 1);
    if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n) {
        fprintf(stderr, "semantic_eval: %s: read error\n", path);
        exit(1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t) n;
    return buf;
}


/* Splits a line at tabs in place; strips a CR.  Returns the field count. */
static int
eval_fields(char *line, char **f, int max)
{
    int    n = 0;
    char  *p = line, *t;
    size_t l = strlen(line);

    if (l && line[l - 1] == '\r') {
        line[l - 1] = '\0';
    }
    while (n < max) {
        f[n++] = p;
        t = strchr(p, '\t');
        if (t == NULL) {
            break;
        }
        *t = '\0';
        p = t + 1;
    }
    return n;
}


/* The next line of buf (modified in place), or NULL. */
static char *
eval_line(char **cur)
{
    char  *l = *cur, *nl;

    if (l == NULL || *l == '\0') {
        return NULL;
    }
    nl = strchr(l, '\n');
    if (nl) {
        *nl = '\0';
        *cur = nl + 1;
    } else {
        *cur = l + strlen(l);
    }
    return l;
}


/* sentence pairs with a score: STS-B, KorSTS */
static void
eval_load_sts(eval_set_t *s, const char *dir, const char *file, int header)
{
    char   *buf, *cur, *line, *f[12];
    size_t  len;
    double  score;
    int     a, b;

    buf = eval_read(dir, file, &len);
    if (buf == NULL) {
        return;
    }
    cur = buf;
    if (header) {
        eval_line(&cur);
    }
    while ((line = eval_line(&cur)) != NULL) {
        if (eval_fields(line, f, 12) < 7) {
            continue;
        }
        score = atof(f[4]);
        if (score > 2.0 && score < 4.0) {
            continue;
        }
        a = eval_text(s, f[5], strlen(f[5]), -1);
        b = eval_text(s, f[6], strlen(f[6]), -1);
        eval_pair(s, a, b, score >= 4.0 ? EVAL_SHOULD : EVAL_MUST);
    }
    free(buf);
}


static void
eval_load_pawsx(eval_set_t *s, const char *dir)
{
    char   *buf, *cur, *line, *f[8];
    size_t  len;
    int     a, b;

    buf = eval_read(dir, "ko-pawsx/dev_2k.tsv", &len);
    if (buf == NULL) {
        return;
    }
    cur = buf;
    eval_line(&cur);
    while ((line = eval_line(&cur)) != NULL) {
        if (eval_fields(line, f, 8) < 4) {
            continue;
        }
        a = eval_text(s, f[1], strlen(f[1]), -1);
        b = eval_text(s, f[2], strlen(f[2]), -1);
        eval_pair(s, a, b, atoi(f[3]) == 1 ? EVAL_SHOULD : EVAL_MUST);
    }
    free(buf);
}


static void
eval_load_sick(eval_set_t *s, const char *dir)
{
    char   *buf, *cur, *line, *f[8];
    size_t  len;
    int     a, b;

    buf = eval_read(dir, "en-sick/SICK_train.txt", &len);
    if (buf == NULL) {
        return;
    }
    cur = buf;
    eval_line(&cur);
    while ((line = eval_line(&cur)) != NULL) {
        if (eval_fields(line, f, 8) < 5 || strcmp(f[4], "CONTRADICTION")) {
            continue;
        }
        a = eval_text(s, f[1], strlen(f[1]), -1);
        b = eval_text(s, f[2], strlen(f[2]), -1);
        eval_pair(s, a, b, EVAL_MUST);
    }
    free(buf);
}


static void
eval_load_parakqc(eval_set_t *s, const char *dir)
{
    char   *buf, *cur, *line, *f[4];
    size_t  len, i;
    int     n = 0;

    buf = eval_read(dir, "ko-parakqc/paraKQC_sets_0000-0699.txt", &len);
    if (buf == NULL) {
        return;
    }
    cur = buf;
    while ((line = eval_line(&cur)) != NULL) {
        if (eval_fields(line, f, 4) < 3) {
            continue;
        }
        /* 10 consecutive lines per set; keep the numbering when a line
         * fails to normalize */
        if (eval_text(s, f[2], strlen(f[2]), n / 10) < 0) {
            fprintf(stderr, "semantic_eval: paraKQC line %d dropped\n", n);
        }
        n++;
    }
    free(buf);
    for (i = 0; i < s->nt; i++) {
        size_t  j;

        for (j = i + 1; j < s->nt && s->t[j].group == s->t[i].group; j++) {
            eval_pair(s, (int) i, (int) j, EVAL_SHOULD);
        }
    }
}


/* BANKING77's CSV: text,category with "..." quoting */
static void
eval_load_banking(eval_set_t *s, const char *dir)
{
    char       *buf, *cur, *line, *p, *q, *comma, text[2048], *names[128];
    size_t      len, tl;
    int         nnames = 0, g, k;

    buf = eval_read(dir, "en-banking77/train.csv", &len);
    if (buf == NULL) {
        return;
    }
    cur = buf;
    eval_line(&cur);
    while ((line = eval_line(&cur)) != NULL) {
        tl = strlen(line);
        if (tl && line[tl - 1] == '\r') {
            line[--tl] = '\0';
        }
        p = line;
        tl = 0;
        if (*p == '"') {
            for (q = p + 1; *q; q++) {
                if (*q == '"' && q[1] == '"') {
                    q++;
                } else if (*q == '"') {
                    break;
                }
                if (tl < sizeof(text) - 1) {
                    text[tl++] = *q;
                }
            }
            if (*q != '"' || q[1] != ',') {
                continue;
            }
            comma = q + 1;
        } else {
            comma = strrchr(p, ',');
            if (comma == NULL) {
                continue;
            }
            tl = (size_t) (comma - p);
            if (tl >= sizeof(text)) {
                continue;
            }
            memcpy(text, p, tl);
        }
        text[tl] = '\0';

        for (g = 0; g < nnames; g++) {
            if (strcmp(names[g], comma + 1) == 0) {
                break;
            }
        }
        if (g == nnames) {
            if (nnames == 128) {
                continue;
            }
            names[nnames++] = strdup(comma + 1);
        }
        eval_text(s, text, tl, g);
    }
    free(buf);

    /* a same-intent partner per utterance from a fixed generator */
    {
        uint64_t  r = 0x2545f4914f6cdd1dULL;
        size_t    i, j, tries;

        for (i = 0; i < s->nt; i++) {
            for (tries = 0; tries < 1000; tries++) {
                r ^= r << 13; r ^= r >> 7; r ^= r << 17;
                j = (size_t) (r % s->nt);
                if (j != i && s->t[j].group == s->t[i].group) {
                    eval_pair(s, (int) i, (int) j, EVAL_SHOULD);
                    break;
                }
            }
        }
    }
    for (k = 0; k < nnames; k++) {
        free(names[k]);
    }
}


static void
eval_embed(eval_set_t *s)
{
    size_t  i;

    s->vec = malloc(s->nt * (size_t) dim * sizeof(float));
    if (s->vec == NULL) {
        fprintf(stderr, "semantic_eval: out of memory\n");
        exit(1);
    }
    for (i = 0; i < s->nt; i++) {
        if (llmc_embed_builtin(s->t[i].norm, s->t[i].len,
                               s->vec + i * dim, dim) != 0)
        {
            fprintf(stderr, "semantic_eval: embedding failed\n");
            exit(1);
        }
    }
}


/*
 * Grouped sets: for every text, its nearest text of another group is a
 * must-miss pair; the LSH candidate recall is measured on the nearest text
 * of all (what a lookup must find when the text is stored already).
 */
static void
eval_retrieval(eval_set_t *s, const llmc_lsh_t *lsh, double *recall,
    double *cand, size_t *nq)
{
    uint32_t     *sig;
    size_t        i, j, found = 0, asked = 0, ncand = 0, nc, *encl, *cl;
    float         c, best_other, best_all;
    int           bo, ba, b, share, k, *ci;
    char        **enc;
    const char  **cb;

    sig = malloc(s->nt * (size_t) bands * sizeof(uint32_t));
    s->look = malloc(s->nt * sizeof(eval_pair_t));
    if (sig == NULL || s->look == NULL) {
        exit(1);
    }
    enc = malloc(s->nt * sizeof(char *));
    encl = malloc(s->nt * sizeof(size_t));
    cb = malloc(s->nt * sizeof(char *));
    cl = malloc(s->nt * sizeof(size_t));
    ci = malloc(s->nt * sizeof(int));
    if (enc == NULL || encl == NULL || cb == NULL || cl == NULL
        || ci == NULL)
    {
        exit(1);
    }
    for (i = 0; i < s->nt; i++) {
        llmc_lsh_sign(lsh, s->vec + i * dim, sig + i * bands);
        enc[i] = llmc_vec_encode(s->vec + i * dim, dim, s->t[i].norm,
                                 s->t[i].len, &encl[i]);
        if (enc[i] == NULL) {
            exit(1);
        }
    }
    nc = 0;

    for (i = 0; i < s->nt; i++) {
        best_other = -2.0f;
        best_all = -2.0f;
        bo = -1;
        ba = -1;
        for (j = 0; j < s->nt; j++) {
            if (j == i) {
                continue;
            }
            c = llmc_cosine(s->vec + i * dim, s->vec + j * dim, dim);
            if (s->t[j].group != s->t[i].group && c > best_other) {
                best_other = c;
                bo = (int) j;
            }
            if (c > best_all && (s->t[i].len != s->t[j].len
                                 || memcmp(s->t[i].norm, s->t[j].norm,
                                           s->t[i].len) != 0))
            {
                best_all = c;
                ba = (int) j;
            }
            for (b = 0; b < bands; b++) {
                if (sig[i * bands + b] == sig[j * bands + b]) {
                    ncand++;
                    if (s->t[i].len != s->t[j].len
                        || memcmp(s->t[i].norm, s->t[j].norm, s->t[i].len))
                    {
                        cb[nc] = enc[j];
                        cl[nc] = encl[j];
                        ci[nc++] = (int) j;
                    }
                    break;
                }
            }
        }

        /* the module's path: LSH candidates, stored (int8) vectors,
         * re-ranked and guarded by llmc_semantic_pick */
        k = llmc_semantic_pick(s->vec + i * dim, dim, s->t[i].norm,
                               s->t[i].len, cb, cl, nc, threshold, dict,
                               NULL, LLMC_GUARD_ALL, &c, NULL);
        if (k >= 0) {
            s->picked[s->t[ci[k]].group == s->t[i].group ? 0 : 1]++;
        }
        nc = 0;
        if (bo >= 0) {
            eval_pair(s, (int) i, bo, EVAL_MUST);
        }
        s->look[i].a = (int) i;
        s->look[i].b = ba;
        s->look[i].cos = best_all;
        s->look[i].kind = ba >= 0 && s->t[ba].group == s->t[i].group;
        s->look[i].blocked = 0;
        if (ba >= 0 && best_all >= eval_thresholds[0]) {
            for (b = 0; b < 3; b++) {
                if (llmc_guard_check(s->t[i].norm, s->t[i].len,
                                     s->t[ba].norm, s->t[ba].len, dict,
                                     1u << b, NULL))
                {
                    s->look[i].blocked |= 1u << b;
                }
            }
        }
        if (ba >= 0 && best_all >= threshold) {
            asked++;
            share = 0;
            for (b = 0; b < bands; b++) {
                if (sig[i * bands + b] == sig[ba * bands + b]) {
                    share = 1;
                    break;
                }
            }
            found += share;
        }
    }
    free(sig);
    for (i = 0; i < s->nt; i++) {
        free(enc[i]);
    }
    free(enc);
    free(encl);
    free(cb);
    free(cl);
    free(ci);

    *nq = asked;
    *recall = asked ? (double) found / asked : 0.0;
    *cand = s->nt ? (double) ncand / s->nt : 0.0;
}


static void
eval_score(eval_set_t *s)
{
    eval_pair_t  *p;
    size_t        i;
    int           c;
    const char   *why;

    for (i = 0; i < s->np; i++) {
        p = &s->p[i];
        p->cos = llmc_cosine(s->vec + (size_t) p->a * dim,
                             s->vec + (size_t) p->b * dim, dim);
        p->blocked = 0;
        if (p->cos < eval_thresholds[0] && p->cos < threshold) {
            continue;       /* a miss whatever the guards say */
        }
        for (c = 0; c < 3; c++) {
            unsigned  g = 1u << c;

            if (llmc_guard_check(s->t[p->a].norm, s->t[p->a].len,
                                 s->t[p->b].norm, s->t[p->b].len, dict, g,
                                 &why))
            {
                p->blocked |= g;
            }
        }
    }
}


/* hit rates of both kinds at t with guards g; -1 when no pair */
static void
eval_rates(const eval_set_t *s, float t, unsigned g, double *hit,
    double *wrong, size_t *ns, size_t *nm)
{
    size_t  i, h[2] = { 0, 0 }, n[2] = { 0, 0 };

    for (i = 0; i < s->np; i++) {
        const eval_pair_t  *p = &s->p[i];

        n[p->kind]++;
        if (p->cos >= t && (p->blocked & g) == 0) {
            h[p->kind]++;
        }
    }
    *hit = n[EVAL_SHOULD] ? 100.0 * h[EVAL_SHOULD] / n[EVAL_SHOULD] : -1;
    *wrong = n[EVAL_MUST] ? 100.0 * h[EVAL_MUST] / n[EVAL_MUST] : -1;
    *ns = n[EVAL_SHOULD];
    *nm = n[EVAL_MUST];
}


/* -e: a sample of the pairs and their verdict at the threshold, one a
   line: set, kind, picked (1: in the even sample; 0: a wrong hit added),
   verdict, cosine, text a, text b (tabs and newlines in the texts become
   spaces) */
static void
eval_sample_text(const char *t)
{
    for ( /* void */ ; *t; t++) {
        fputc(*t == '\t' || *t == '\n' || *t == '\r' ? ' ' : *t, sample);
    }
}


static void
eval_sample(const eval_set_t *s)
{
    size_t  i, n[2] = { 0, 0 }, stride[2], seen[2] = { 0, 0 };
    int     hit, picked;

    for (i = 0; i < s->np; i++) {
        n[s->p[i].kind]++;
    }
    stride[0] = n[0] > sample_n ? n[0] / sample_n : 1;
    stride[1] = n[1] > sample_n ? n[1] / sample_n : 1;

    for (i = 0; i < s->np; i++) {
        const eval_pair_t  *p = &s->p[i];

        hit = p->cos >= threshold && (p->blocked & LLMC_GUARD_ALL) == 0;
        picked = seen[p->kind]++ % stride[p->kind] == 0;
        if (!picked && !(hit && p->kind == EVAL_MUST)) {
            continue;
        }
        fprintf(sample, "%s\t%s\t%d\t%d\t%.4f\t", s->name,
                p->kind == EVAL_SHOULD ? "should" : "must", picked, hit,
                p->cos);
        eval_sample_text(s->t[p->a].norm);
        fputc('\t', sample);
        eval_sample_text(s->t[p->b].norm);
        fputc('\n', sample);
    }
}


/* -v: the must-miss pairs that hit at the threshold */
static void
eval_dump(const eval_set_t *s)
{
    size_t  i;

    for (i = 0; i < s->np; i++) {
        const eval_pair_t  *p = &s->p[i];

        if (p->kind == EVAL_MUST && p->cos >= threshold
            && (p->blocked & LLMC_GUARD_ALL) == 0)
        {
            printf("  wrong %.3f  %s  |  %s\n", p->cos, s->t[p->a].norm,
                   s->t[p->b].norm);
        }
    }
}


static void
eval_pct(double v)
{
    if (v < 0) {
        printf(" %7s", "-");
    } else {
        printf(" %6.2f%%", v);
    }
}


/* r: correct and wrong lookups with all guards, then without guards */
static void
eval_lookup(const eval_set_t *s, float t, double *r)
{
    size_t  i, n[4] = { 0, 0, 0, 0 };

    for (i = 0; i < s->nt; i++) {
        const eval_pair_t  *p = &s->look[i];

        if (p->b < 0 || p->cos < t) {
            continue;
        }
        n[p->kind ? 2 : 3]++;
        if ((p->blocked & LLMC_GUARD_ALL) == 0) {
            n[p->kind ? 0 : 1]++;
        }
    }
    for (i = 0; i < 4; i++) {
        r[i] = s->nt ? 100.0 * n[i] / s->nt : 0.0;
    }
}


static void
eval_report(const eval_set_t *s)
{
    double  hit, wrong, h0, w0;
    size_t  ns, nm;
    int     i, c;

    eval_rates(s, threshold, LLMC_GUARD_ALL, &hit, &wrong, &ns, &nm);
    printf("\n## %s: %zu should-hit pairs, %zu must-miss pairs (left out, "
           "identical after normalization: %zu should-hit, %zu must-miss)"
           "\n\n", s->name, ns, nm, s->same[EVAL_SHOULD],
           s->same[EVAL_MUST]);
    printf("| threshold | hit (guards) | wrong (guards) | hit (no guards) "
           "| wrong (no guards) |\n|---|---|---|---|---|\n");
    for (i = 0; i < EVAL_NT; i++) {
        eval_rates(s, eval_thresholds[i], LLMC_GUARD_ALL, &hit, &wrong,
                   &ns, &nm);
        eval_rates(s, eval_thresholds[i], 0, &h0, &w0, &ns, &nm);
        printf("| %.2f%s |", eval_thresholds[i],
               eval_thresholds[i] == threshold ? " *" : "");
        eval_pct(hit);
        printf(" |");
        eval_pct(wrong);
        printf(" |");
        eval_pct(h0);
        printf(" |");
        eval_pct(w0);
        printf(" |\n");
    }

    if (s->look) {
        printf("\nAs a cache holding all the other texts (texts that "
               "normalize alike left out: the exact cache serves them), "
               "each text looked up once; correct = the nearest is of its "
               "group:\n\n| threshold | correct hit | wrong hit | correct "
               "(no guards) | wrong (no guards) |\n|---|---|---|---|---|\n");
        for (i = 0; i < EVAL_NT; i++) {
            double  r[4];

            eval_lookup(s, eval_thresholds[i], r);
            printf("| %.2f%s |", eval_thresholds[i],
                   eval_thresholds[i] == threshold ? " *" : "");
            for (c = 0; c < 4; c++) {
                eval_pct(r[c]);
                printf(" |");
            }
            printf("\n");
        }
    }

    printf("\nguards at %.2f:", threshold);
    for (c = 0; c < EVAL_NCONF; c++) {
        eval_rates(s, threshold, eval_conf[c].g, &hit, &wrong, &ns, &nm);
        printf("  %s", eval_conf[c].name);
        eval_pct(hit);
        printf(" /");
        eval_pct(wrong);
    }
    printf("   (hit / wrong)\n");
}


/* -p A B: one pair through the lookup path, for a look at single cases */
static int
eval_probe(const char *a, const char *b)
{
    char        err[256], *na, *nb;
    size_t      la, lb;
    float      *va, *vb;
    const char *why;
    int         blocked;

    if (llmc_normalize(a, strlen(a), LLMC_NORM_ALL, dict, &na, &la, err,
                       sizeof(err)) != 0
        || llmc_normalize(b, strlen(b), LLMC_NORM_ALL, dict, &nb, &lb, err,
                          sizeof(err)) != 0)
    {
        fprintf(stderr, "semantic_eval: %s\n", err);
        return 1;
    }
    va = malloc(2 * (size_t) dim * sizeof(float));
    if (va == NULL) {
        return 1;
    }
    vb = va + dim;
    llmc_embed_builtin(na, la, va, dim);
    llmc_embed_builtin(nb, lb, vb, dim);
    blocked = llmc_guard_check(na, la, nb, lb, dict, LLMC_GUARD_ALL, &why);
    printf("a: \"%s\"\nb: \"%s\"\ncosine %.4f, guards: %s -> %s\n", na,
           nb, llmc_cosine(va, vb, dim), blocked ? why : "pass",
           !blocked && llmc_cosine(va, vb, dim) >= threshold ? "HIT"
                                                             : "MISS");
    free(va);
    free(na);
    free(nb);
    return 0;
}


/* the lowest threshold (0.01 steps) keeping every set's wrong-hit rate
 * at or under 1% with all guards, and the hit rates there */
static void
eval_suggest(const eval_set_t *sets, size_t nsets)
{
    double  hit, wrong, worst;
    size_t  i, ns, nm;
    int     k;
    float   t;

    for (k = 50; k <= 100; k++) {
        t = (float) k / 100.0f;
        worst = 0.0;
        for (i = 0; i < nsets; i++) {
            if (sets[i].np == 0) {
                continue;
            }
            eval_rates(&sets[i], t, LLMC_GUARD_ALL, &hit, &wrong, &ns, &nm);
            if (wrong > worst) {
                worst = wrong;
            }
        }
        if (worst <= 1.0) {
            break;
        }
    }
    printf("lowest threshold with every wrong-hit rate <= 1%%: %.2f;", t);
    for (i = 0; i < nsets; i++) {
        if (sets[i].np) {
            eval_rates(&sets[i], t, LLMC_GUARD_ALL, &hit, &wrong, &ns, &nm);
            printf(" %s", sets[i].name);
            eval_pct(hit);
            printf(" /");
            eval_pct(wrong);
        }
    }
    printf("\n");
}


static int
eval_isdir(const char *p)
{
    struct stat  st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}


int
main(int argc, char **argv)
{
    static eval_set_t  sets[] = {
        { "ko-parakqc", NULL, 0, 0, NULL, 0, 0, NULL, {0, 0}, NULL, {0, 0}, 1 },
        { "ko-pawsx", NULL, 0, 0, NULL, 0, 0, NULL, {0, 0}, NULL, {0, 0}, 0 },
        { "ko-korsts", NULL, 0, 0, NULL, 0, 0, NULL, {0, 0}, NULL, {0, 0}, 0 },
        { "en-stsb", NULL, 0, 0, NULL, 0, 0, NULL, {0, 0}, NULL, {0, 0}, 0 },
        { "en-banking77", NULL, 0, 0, NULL, 0, 0, NULL, {0, 0}, NULL, {0, 0}, 1 },
        { "en-sick", NULL, 0, 0, NULL, 0, 0, NULL, {0, 0}, NULL, {0, 0}, 0 },
    };
    const size_t  nsets = sizeof(sets) / sizeof(sets[0]);
    char          shared[PATH_MAX], data[PATH_MAX + 16], err[512];
    const char   *env;
    llmc_lsh_t    lsh;
    double        t0, recall = 0, cand = 0, hit, wrong, worst;
    size_t        i, nq = 0, ns, nm;
    int           opt, probe = 0, verbose = 0;

    while ((opt = getopt(argc, argv, "t:d:b:k:e:n:pv")) != -1) {
        switch (opt) {
        case 'e':
            sample = fopen(optarg, "w");
            if (sample == NULL) {
                fprintf(stderr, "semantic_eval: %s: %s\n", optarg,
                        strerror(errno));
                return 1;
            }
            break;
        case 'n': sample_n = (size_t) atol(optarg); break;
        case 'p': probe = 1; break;
        case 'v': verbose = 1; break;
        case 't': threshold = (float) atof(optarg); break;
        case 'd': dim = atoi(optarg); break;
        case 'b': bands = atoi(optarg); break;
        case 'k': bits = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: semantic_eval [-t THRESHOLD] [-d DIM] "
                    "[-b BANDS] [-k BITS] [-v] [-e FILE [-n N]] "
                    "[-p TEXT TEXT]\n");
            return 2;
        }
    }

    /* paths are relative to the repository root: from elsewhere, find
     * it from build/bench/semantic_eval */
    if (access("examples/dict/ko.dict", R_OK) != 0) {
        char  root[PATH_MAX], *slash;

        snprintf(root, sizeof(root), "%s", argv[0]);
        slash = strrchr(root, '/');
        if (slash) {
            snprintf(slash, sizeof(root) - (size_t) (slash - root),
                     "/../..");
            if (chdir(root) != 0) {
                fprintf(stderr, "semantic_eval: %s: %s\n", root,
                        strerror(errno));
            }
        }
    }

    if (probe) {
        if (optind + 2 != argc) {
            fprintf(stderr, "semantic_eval: -p takes two texts\n");
            return 2;
        }
        dict = llmc_dict_new();
        if (dict == NULL
            || llmc_dict_load_file(dict, "examples/dict/ko.dict", err,
                                   sizeof(err)) != 0
            || llmc_dict_load_file(dict, "examples/dict/en.dict", err,
                                   sizeof(err)) != 0)
        {
            fprintf(stderr, "semantic_eval: %s\n", err);
            return 1;
        }
        opt = eval_probe(argv[optind], argv[optind + 1]);
        llmc_dict_free(dict);
        return opt;
    }

    env = getenv("LLMCACHE_SHARED");
    snprintf(shared, sizeof(shared), "%s", env && *env ? env : "../shared");
    snprintf(data, sizeof(data), "%s/datasets", shared);
    if (!eval_isdir(data)) {
        printf("semantic_eval: %s not found (set LLMCACHE_SHARED); "
               "skipped\n", data);
        return 0;
    }

    dict = llmc_dict_new();
    if (dict == NULL
        || llmc_dict_load_file(dict, "examples/dict/ko.dict", err,
                               sizeof(err)) != 0
        || llmc_dict_load_file(dict, "examples/dict/en.dict", err,
                               sizeof(err)) != 0)
    {
        fprintf(stderr, "semantic_eval: %s (run from the repository "
                "root)\n", err);
        return 1;
    }
    if (llmc_lsh_init(&lsh, dim, bands, bits, LLMC_LSH_SEED_DEFAULT) != 0) {
        fprintf(stderr, "semantic_eval: bad LSH shape\n");
        return 2;
    }

    t0 = eval_now();
    eval_load_parakqc(&sets[0], data);
    eval_load_pawsx(&sets[1], data);
    eval_load_sts(&sets[2], data, "ko-korsts/sts-train.tsv", 1);
    eval_load_sts(&sets[2], data, "ko-korsts/sts-dev.tsv", 1);
    eval_load_sts(&sets[3], data, "en-stsb/sts-train.csv", 0);
    eval_load_sts(&sets[3], data, "en-stsb/sts-dev.csv", 0);
    eval_load_banking(&sets[4], data);
    eval_load_sick(&sets[5], data);

    printf("# semantic_eval: dim %d, threshold %.2f, LSH %d bands x %d "
           "bits\n", dim, threshold, bands, bits);
    printf("texts normalized in %.1f s (%zu could not be)\n",
           eval_now() - t0, n_bad);

    worst = 0.0;
    for (i = 0; i < nsets; i++) {
        eval_set_t  *s = &sets[i];

        if (s->nt == 0) {
            printf("\n## %s: no data, skipped\n", s->name);
            continue;
        }
        t0 = eval_now();
        eval_embed(s);
        if (s->retrieval) {
            eval_retrieval(s, &lsh, &recall, &cand, &nq);
        }
        eval_score(s);
        eval_report(s);
        if (verbose) {
            eval_dump(s);
        }
        if (sample) {
            eval_sample(s);
        }
        if (s->retrieval) {
            printf("LSH: the nearest stored text (cosine >= %.2f, %zu "
                   "queries) is a candidate for %.2f%% of them; %.1f "
                   "candidates of %zu per lookup\n", threshold, nq,
                   100.0 * recall, cand, s->nt - 1);
            printf("Lookups through LSH candidates, stored int8 vectors "
                   "and llmc_semantic_pick at %.2f: %.2f%% correct hits, "
                   "%.2f%% wrong hits\n", threshold,
                   100.0 * s->picked[0] / s->nt,
                   100.0 * s->picked[1] / s->nt);
        }
        eval_rates(s, threshold, LLMC_GUARD_ALL, &hit, &wrong, &ns, &nm);
        if (wrong > worst) {
            worst = wrong;
        }
        printf("(%.1f s)\n", eval_now() - t0);
    }

    printf("\nworst wrong-hit rate at %.2f with all guards: %.2f%%\n",
           threshold, worst);
    eval_suggest(sets, nsets);

    for (i = 0; i < nsets; i++) {
        size_t  k;

        for (k = 0; k < sets[i].nt; k++) {
            free(sets[i].t[k].norm);
        }
        free(sets[i].t);
        free(sets[i].p);
        free(sets[i].vec);
        free(sets[i].look);
    }
    llmc_lsh_free(&lsh);
    llmc_dict_free(dict);
    if (sample && fclose(sample) != 0) {
        fprintf(stderr, "semantic_eval: writing the sample failed\n");
        return 1;
    }
    return 0;
}
