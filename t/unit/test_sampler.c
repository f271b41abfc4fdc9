/*
 * Sampler tests: greedy is argmax, top-k 1 is greedy, a seed gives the
 * same ids, and the frequencies of many draws follow the softmax (of the
 * tempered logits, restricted by top-k / top-p) within a bound. The test
 * counts allocations (malloc is wrapped here) to check sampling makes none.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"
#include "tap.h"
#include "testutil.h"

static long  n_allocs;

/* AddressSanitizer owns malloc: the counter stays at 0 there and the
 * allocation check is skipped, as under valgrind */
#ifndef __SANITIZE_ADDRESS__

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);

void *
malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}

void *
calloc(size_t n, size_t m)
{
    n_allocs++;
    return __libc_calloc(n, m);
}

void *
realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}

#endif

/* a fixed pseudo-random sequence for the test's own logits */
static uint64_t  rng = 88172645463325252ULL;

static float
test_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float) (rng >> 40) / 16777216.0f;
}

static sampler_t *
mk(float temp, int top_k, float top_p, uint64_t seed, int n)
{
    sampler_params_t  p;

    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.seed = seed;
    return sampler_new(&p, n);
}

static void
test_greedy(void)
{
    float       logits[1000], copy[1000];
    sampler_t  *g = mk(0.0f, 0, 0.0f, 1, 1000);
    sampler_t  *k1 = mk(1.0f, 1, 0.0f, 7, 1000);
    sampler_t  *k1p = mk(0.8f, 1, 0.9f, 9, 1000);
    int         r, i, bad_g = 0, bad_k = 0;

    for (r = 0; r < 200; r++) {
        for (i = 0; i < 1000; i++) {
            logits[i] = test_rand() * 20.0f - 10.0f;
        }
        memcpy(copy, logits, sizeof(logits));
        bad_g += sampler_sample(g, copy) != test_argmax(logits, 1000);
        memcpy(copy, logits, sizeof(logits));
        bad_k += sampler_sample(k1, copy) != test_argmax(logits, 1000);
        memcpy(copy, logits, sizeof(logits));
        bad_k += sampler_sample(k1p, copy) != test_argmax(logits, 1000);
    }
    is_int(bad_g, 0, "temperature 0 is argmax over 200 rows");
    is_int(bad_k, 0, "top-k 1 is argmax, with or without top-p");

    for (i = 0; i < 1000; i++) {
        logits[i] = 0.0f;
    }
    logits[500] = 3.0f;
    logits[700] = 3.0f;
    is_int(sampler_sample(g, logits), 500, "greedy tie: lowest id");
    logits[3] = NAN;
    is_int(sampler_sample(g, logits), 500, "greedy skips a NaN");

    sampler_free(g);
    sampler_free(k1);
    sampler_free(k1p);
}

static void
test_seed(void)
{
    float       logits[64], copy[64];
    sampler_t  *a = mk(1.0f, 0, 0.0f, 42, 64), *b = mk(1.0f, 0, 0.0f, 42, 64);
    sampler_t  *c = mk(1.0f, 0, 0.0f, 43, 64);
    sampler_t  *z = mk(1.0f, 0, 0.0f, 0, 64);
    int         i, same_ab = 1, same_ac = 1, ia, ib, ic, zs = 0;

    for (i = 0; i < 64; i++) {
        logits[i] = test_rand() * 2.0f;
    }
    for (i = 0; i < 2000; i++) {
        memcpy(copy, logits, sizeof(logits));
        ia = sampler_sample(a, copy);
        memcpy(copy, logits, sizeof(logits));
        ib = sampler_sample(b, copy);
        memcpy(copy, logits, sizeof(logits));
        ic = sampler_sample(c, copy);
        memcpy(copy, logits, sizeof(logits));
        zs += sampler_sample(z, copy) != 0;
        same_ab &= ia == ib;
        same_ac &= ia == ic;
    }
    ok(same_ab, "same seed: the same 2000 ids");
    ok(!same_ac, "another seed: other ids");
    ok(zs > 0, "seed 0 still draws varied ids");
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
    sampler_free(z);
}

/* draws many ids and compares frequencies with the expected probabilities
 * (0 where a token must never come) */
static void
check_freq(sampler_t *s, const float *logits, int n, const double *want,
    const char *what)
{
    float     copy[64];
    long      count[64] = { 0 };
    int       i, draws = 200000, id;
    double    worst = 0.0, d;
    int       forbidden = 0;

    for (i = 0; i < draws; i++) {
        memcpy(copy, logits, sizeof(float) * n);
        id = sampler_sample(s, copy);
        if (id < 0 || id >= n) {
            forbidden++;
            continue;
        }
        count[id]++;
    }
    for (i = 0; i < n; i++) {
        if (want[i] == 0.0 && count[i] > 0) {
            forbidden++;
        }
        d = fabs((double) count[i] / draws - want[i]);
        if (d > worst) {
            worst = d;
        }
    }
    /* 200k draws: the standard error is under 0.0012 */
    ok(worst < 0.006 && forbidden == 0,
       "%s: frequencies within 0.006 of the target (worst %.4f, %d "
       "forbidden)", what, worst, forbidden);
}

static void
softmax(const float *x, int n, float temp, double *p)
{
    double  max = -INFINITY, sum = 0.0;
    int     i;

    for (i = 0; i < n; i++) {
        max = x[i] > max ? x[i] : max;
    }
    for (i = 0; i < n; i++) {
        p[i] = exp((x[i] - max) / temp);
        sum += p[i];
    }
    for (i = 0; i < n; i++) {
        p[i] /= sum;
    }
}

static void
test_distribution(void)
{
    float       logits[5] = { 1.0f, 2.0f, 0.5f, 3.0f, -1.0f };
    float       nuc[4];
    double      want[64], p[64], z;
    sampler_t  *s;
    int         i;

    s = mk(1.0f, 0, 0.0f, 1234, 5);
    softmax(logits, 5, 1.0f, want);
    check_freq(s, logits, 5, want, "temperature 1");
    sampler_free(s);

    s = mk(0.5f, 0, 0.0f, 99, 5);
    softmax(logits, 5, 0.5f, want);
    check_freq(s, logits, 5, want, "temperature 0.5");
    sampler_free(s);

    s = mk(2.0f, 0, 0.0f, 5, 5);
    softmax(logits, 5, 2.0f, want);
    check_freq(s, logits, 5, want, "temperature 2");
    sampler_free(s);

    /* top-k 2: the two best, renormalized */
    s = mk(1.0f, 2, 0.0f, 78, 5);
    memset(want, 0, sizeof(want));
    z = exp(3.0) + exp(2.0);
    want[3] = exp(3.0) / z;
    want[1] = exp(2.0) / z;
    check_freq(s, logits, 5, want, "top-k 2");
    sampler_free(s);

    /* top-p over probabilities 0.5 0.3 0.15 0.05: 0.75 keeps the first two
     * (0.5 < 0.75 <= 0.8), then temperature 1 renormalizes them */
    nuc[0] = logf(0.5f);
    nuc[1] = logf(0.3f);
    nuc[2] = logf(0.15f);
    nuc[3] = logf(0.05f);
    s = mk(1.0f, 0, 0.75f, 2024, 4);
    memset(want, 0, sizeof(want));
    want[0] = 0.5 / 0.8;
    want[1] = 0.3 / 0.8;
    check_freq(s, nuc, 4, want, "top-p 0.75");
    sampler_free(s);

    /* top-p decided on the untempered softmax, temperature applied after */
    s = mk(0.5f, 0, 0.75f, 11, 4);
    memset(want, 0, sizeof(want));
    softmax(nuc, 2, 0.5f, p);
    want[0] = p[0];
    want[1] = p[1];
    check_freq(s, nuc, 4, want, "top-p 0.75 then temperature 0.5");
    sampler_free(s);

    /* top-k 3 then top-p 0.9 of those three (0.5 0.3 0.15 -> 0.526 0.316
     * 0.158): keeps all three */
    s = mk(1.0f, 3, 0.9f, 3, 4);
    memset(want, 0, sizeof(want));
    for (i = 0; i < 3; i++) {
        want[i] = (i == 0 ? 0.5 : i == 1 ? 0.3 : 0.15) / 0.95;
    }
    check_freq(s, nuc, 4, want, "top-k 3, top-p 0.9");
    sampler_free(s);
}

static void
test_large_vocab(void)
{
    static float  logits[32000], copy[32000];
    sampler_t    *s, *p;
    long          before;
    int           i, id, outside = 0, big = 0, counting;

    before = n_allocs;
    s = mk(0.8f, 40, 0.95f, 5, 32000);
    p = mk(1.0f, 0, 0.5f, 6, 32000);
    counting = n_allocs > before;   /* not under valgrind, which owns malloc */
    ok(1, "allocation counter%s", counting ? " sees sampler_new()"
       : " # SKIP malloc is not the test's own (valgrind, ASan)");

    for (i = 0; i < 32000; i++) {
        logits[i] = test_rand() * 4.0f - 10.0f;
    }
    logits[123] = 12.0f;
    logits[31000] = 11.5f;

    before = n_allocs;
    for (i = 0; i < 300; i++) {
        memcpy(copy, logits, sizeof(logits));
        id = sampler_sample(s, copy);
        outside += id < 0 || id >= 32000;
        memcpy(copy, logits, sizeof(logits));
        id = sampler_sample(p, copy);
        /* 123 and 31000 carry nearly all the mass, 123 about 62%: the
         * nucleus of 0.5 is 123 alone */
        big += id == 123;
    }
    if (counting) {
        is_int(n_allocs - before, 0, "600 draws over 32000 logits allocate "
               "nothing");
    } else {
        ok(1, "no allocation # SKIP not counted");
    }
    is_int(outside, 0, "ids in range");
    is_int(big, 300, "top-p 0.5 without top-k keeps only the top token");

    for (i = 0; i < 32000; i++) {
        logits[i] = -INFINITY;
    }
    logits[17] = 0.0f;
    is_int(sampler_sample(s, logits), 17, "one finite logit: that id");

    sampler_free(s);
    sampler_free(p);
    ok(mk(1.0f, 0, 0.0f, 1, 0) == NULL, "n_vocab 0 is refused");
    ok(sampler_new(NULL, 10) == NULL, "no params is refused");
}

int
main(void)
{
    test_greedy();
    test_seed();
    test_distribution();
    test_large_vocab();
    return done_testing();
}
