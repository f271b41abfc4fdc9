/*
 * Token sampling over one row of logits.
 *
 * Order as llama.cpp's default chain: top-k on the logits, top-p on the
 * softmax of what is left, then the temperature, then one draw. Temperature
 * 0 is greedy (argmax, lowest id on ties) and skips the rest. The PRNG is
 * xorshift64* seeded through splitmix64, so a seed gives the same ids on
 * every machine. All buffers are allocated by sampler_new().
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"


typedef struct {
    float    logit;
    float    p;
    int32_t  id;
} sampler_cand_t;

struct sampler {
    sampler_params_t   params;
    int                n_vocab;
    uint64_t           state;
    sampler_cand_t    *cand;     /* n_vocab */
};


static uint64_t
sampler_splitmix64(uint64_t *x)
{
    uint64_t  z;

    z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t
sampler_u32(sampler_t *s)
{
    s->state ^= s->state >> 12;
    s->state ^= s->state << 25;
    s->state ^= s->state >> 27;
    return (uint32_t) ((s->state * 0x2545f4914f6cdd1dULL) >> 32);
}

/* uniform in [0, 1) */
static float
sampler_f32(sampler_t *s)
{
    return (float) (sampler_u32(s) >> 8) / 16777216.0f;
}

sampler_t *
sampler_new(const sampler_params_t *p, int n_vocab)
{
    sampler_t  *s;
    uint64_t    x;

    if (p == NULL || n_vocab <= 0) {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->params = *p;
    s->n_vocab = n_vocab;
    x = p->seed;
    s->state = sampler_splitmix64(&x);
    if (s->state == 0) {
        s->state = 0x2545f4914f6cdd1dULL;   /* xorshift needs a non-zero */
    }
    if (p->temperature > 0.0f) {
        s->cand = malloc((size_t) n_vocab * sizeof(*s->cand));
        if (s->cand == NULL) {
            free(s);
            return NULL;
        }
    }
    return s;
}

void
sampler_free(sampler_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->cand);
    free(s);
}

static int32_t
sampler_argmax(const float *logits, int n)
{
    int32_t  best = 0;
    int      i;

    for (i = 1; i < n; i++) {
        if (logits[i] > logits[best] || isnan(logits[best])) {
            best = i;
        }
    }
    return best;
}

/* higher logit first, lower id on ties: a total order, so the result does
 * not depend on the sort */
static int
sampler_cand_before(const sampler_cand_t *a, const sampler_cand_t *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* c[0..n) as a heap with the worst candidate at the top */
static void
sampler_sift_down(sampler_cand_t *c, int n, int j)
{
    sampler_cand_t  t;
    int             l, r, m;

    for ( ;; ) {
        l = 2 * j + 1;
        r = l + 1;
        m = j;
        if (l < n && sampler_cand_before(&c[m], &c[l])) {
            m = l;
        }
        if (r < n && sampler_cand_before(&c[m], &c[r])) {
            m = r;
        }
        if (m == j) {
            return;
        }
        t = c[m]; c[m] = c[j]; c[j] = t;
        j = m;
    }
}

/* best first; heapsort because glibc's qsort() may allocate */
static void
sampler_sort(sampler_cand_t *c, int n)
{
    sampler_cand_t  t;
    int             i;

    for (i = n / 2 - 1; i >= 0; i--) {
        sampler_sift_down(c, n, i);
    }
    for (i = n - 1; i > 0; i--) {
        t = c[0]; c[0] = c[i]; c[i] = t;
        sampler_sift_down(c, i, 0);
    }
}

/* keeps the k best of c[0..n) in c[0..k), sorted best first: a heap of k
 * with the worst at the top, replaced whenever something better comes */
static void
sampler_top_k(sampler_cand_t *c, int n, int k)
{
    int  i;

    for (i = k / 2 - 1; i >= 0; i--) {
        sampler_sift_down(c, k, i);
    }
    for (i = k; i < n; i++) {
        if (sampler_cand_before(&c[i], &c[0])) {
            c[0] = c[i];
            sampler_sift_down(c, k, 0);
        }
    }
    sampler_sort(c, k);
}

/* softmax of c[0..n).logit / temp into .p */
static void
sampler_softmax(sampler_cand_t *c, int n, float temp)
{
    float   max = -INFINITY;
    double  sum = 0.0;
    int     i;

    for (i = 0; i < n; i++) {
        if (c[i].logit > max) {
            max = c[i].logit;
        }
    }
    for (i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - max) / temp);
        sum += c[i].p;
    }
    for (i = 0; i < n; i++) {
        c[i].p = (float) (c[i].p / sum);
    }
}

int32_t
sampler_sample(sampler_t *s, float *logits)
{
    const sampler_params_t  *p = &s->params;
    sampler_cand_t          *c = s->cand;
    float                    max, cut, r, cum;
    int                      n = s->n_vocab, i, k, sorted = 0;

    if (p->temperature <= 0.0f || c == NULL) {
        return sampler_argmax(logits, n);
    }

    /* NaN or +inf logits make the distribution meaningless */
    max = -INFINITY;
    for (i = 0; i < n; i++) {
        if (isnan(logits[i]) || logits[i] == INFINITY) {
            return sampler_argmax(logits, n);
        }
        if (logits[i] > max) {
            max = logits[i];
        }
    }
    if (max == -INFINITY) {
        return 0;
    }

    k = 0;
    for (i = 0; i < n; i++) {
        c[k].logit = logits[i];
        c[k].id = i;
        k++;
    }

    if (p->top_k > 0 && p->top_k < k) {
        sampler_top_k(c, k, p->top_k);
        k = p->top_k;
        sorted = 1;
    }

    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        sampler_softmax(c, k, 1.0f);
        if (!sorted) {
            /* anything under (1 - top_p) / (k - 1) cannot be in the
             * nucleus: drop it before sorting (llama2.c's trick) */
            int   m = 0;

            cut = (1.0f - p->top_p) / (float) (k - 1);
            for (i = 0; i < k; i++) {
                if (c[i].p >= cut) {
                    c[m++] = c[i];
                }
            }
            k = m > 0 ? m : k;
            sampler_sort(c, k);
        }
        cum = 0.0f;
        for (i = 0; i < k; i++) {
            cum += c[i].p;
            if (cum >= p->top_p) {
                k = i + 1;
                break;
            }
        }
    }

    sampler_softmax(c, k, p->temperature);
    r = sampler_f32(s);
    cum = 0.0f;
    for (i = 0; i < k; i++) {
        cum += c[i].p;
        if (r < cum) {
            return c[i].id;
        }
    }
    return c[k - 1].id;     /* rounding left r above the last sum */
}
