/*
 * LSH signatures (shape checks, determinism, the collision behaviour the
 * index relies on) and the stored vector form, damaged buffers included.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "llmc_embed.h"
#include "llmc_guard.h"
#include "llmc_lsh.h"

#define DIM     LLMC_EMBED_DIM_DEFAULT
#define S_TEXT  "파스타 레시피 알려 줘"


static uint64_t  rng = 0x1234567887654321ULL;


/* a roughly Gaussian value from a fixed generator */
static float
gauss(void)
{
    float  s = 0.0f;
    int    i;

    for (i = 0; i < 12; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        s += (float) (rng >> 40) / (float) (1 << 24);
    }
    return s - 6.0f;
}


static void
random_unit(float *v, int dim)
{
    int  i;

    for (i = 0; i < dim; i++) {
        v[i] = gauss();
    }
    llmc_l2_normalize(v, dim);
}


/* w: unit vector at cosine c with v */
static void
at_cosine(const float *v, float c, float *w, int dim)
{
    float  r[DIM], d;
    int    i;

    random_unit(r, dim);
    d = llmc_cosine(r, v, dim);
    for (i = 0; i < dim; i++) {
        r[i] -= d * v[i];
    }
    llmc_l2_normalize(r, dim);
    for (i = 0; i < dim; i++) {
        w[i] = c * v[i] + sqrtf(1.0f - c * c) * r[i];
    }
}


static int
share_band(const uint32_t *a, const uint32_t *b, int bands)
{
    int  i;

    for (i = 0; i < bands; i++) {
        if (a[i] == b[i]) {
            return 1;
        }
    }
    return 0;
}


static void
test_init(void)
{
    llmc_lsh_t  a, b, c;

    is_int(llmc_lsh_init(&a, 0, 16, 8, 1), -1, "dim 0 refused");
    is_int(llmc_lsh_init(&a, DIM, 0, 8, 1), -1, "0 bands refused");
    is_int(llmc_lsh_init(&a, DIM, 65, 8, 1), -1, "65 bands refused");
    is_int(llmc_lsh_init(&a, DIM, 16, 0, 1), -1, "0 bits refused");
    is_int(llmc_lsh_init(&a, DIM, 16, 33, 1), -1, "33 bits refused");
    ok(a.planes == NULL, "no planes after a refusal");

    is_int(llmc_lsh_init(&a, DIM, 16, 8, LLMC_LSH_SEED_DEFAULT), 0, "init");
    is_int(llmc_lsh_init(&b, DIM, 16, 8, LLMC_LSH_SEED_DEFAULT), 0,
           "init again");
    is_int(llmc_lsh_init(&c, DIM, 16, 8, 42), 0, "init with another seed");
    ok(memcmp(a.planes, b.planes, 16 * 8 * DIM * sizeof(float)) == 0,
       "the same seed gives the same planes");
    ok(memcmp(a.planes, c.planes, 16 * 8 * DIM * sizeof(float)) != 0,
       "another seed other planes");

    /* pinned: stored signatures depend on these exact values (splitmix64
     * from the seed, four 16-bit parts summed, centred) */
    ok(a.planes[0] == -14428.0f / 65536.0f
       && a.planes[1] == -23170.0f / 65536.0f
       && a.planes[2] == 6602.0f / 65536.0f,
       "the first plane components are the documented ones");
    {
        double  mean = 0.0, var = 0.0;
        size_t  i, n = 16 * 8 * DIM;

        for (i = 0; i < n; i++) {
            mean += a.planes[i];
        }
        mean /= n;
        for (i = 0; i < n; i++) {
            var += (a.planes[i] - mean) * (a.planes[i] - mean);
        }
        var /= n;
        /* four uniforms of variance 65536^2/12 each, scaled by 65536 */
        ok(fabs(mean) < 0.02 && fabs(var - 4.0 / 12.0) < 0.02,
           "components centred with the Irwin-Hall variance "
           "(mean %.4f, var %.4f)", mean, var);
    }
    llmc_lsh_free(&a);
    llmc_lsh_free(&b);
    llmc_lsh_free(&c);
    ok(a.planes == NULL, "free clears the planes");
}


static void
test_sign(void)
{
    llmc_lsh_t  l;
    float       v[DIM], w[DIM], neg[DIM];
    uint32_t    s1[16], s2[16], s3[16];
    int         i, t, near = 0, far = 0, agree = 0, bits = 0;

    llmc_lsh_init(&l, DIM, 16, 8, LLMC_LSH_SEED_DEFAULT);

    random_unit(v, DIM);
    llmc_lsh_sign(&l, v, s1);
    llmc_lsh_sign(&l, v, s2);
    ok(memcmp(s1, s2, sizeof(s1)) == 0, "signing is deterministic");
    for (i = 0; i < 16; i++) {
        bits |= s1[i] > 0xff;
    }
    ok(!bits, "8 bits per band used");

    for (i = 0; i < DIM; i++) {
        neg[i] = -v[i];
    }
    llmc_lsh_sign(&l, neg, s3);
    for (i = 0; i < 16; i++) {
        agree += s3[i] == (~s1[i] & 0xff);
    }
    is_int(agree, 16, "the opposite vector flips every bit");

    /* near duplicates (cosine 0.95) share a band almost always, unrelated
     * vectors rarely */
    for (t = 0; t < 200; t++) {
        random_unit(v, DIM);
        llmc_lsh_sign(&l, v, s1);
        at_cosine(v, 0.95f, w, DIM);
        llmc_lsh_sign(&l, w, s2);
        near += share_band(s1, s2, 16);
        random_unit(w, DIM);
        llmc_lsh_sign(&l, w, s3);
        far += share_band(s1, s3, 16);
    }
    ok(near >= 196, "cosine 0.95 pairs share a band: %d of 200", near);
    ok(far <= 30, "random pairs rarely do: %d of 200", far);

    llmc_lsh_free(&l);

    /* the SIMD variant signs exactly as the portable one, also with a
       dimension that leaves a tail */
    for (i = 0; i < 2; i++) {
        int  dim = i ? 100 : DIM, same = 0;

        llmc_lsh_init(&l, dim, 16, 14, LLMC_LSH_SEED_DEFAULT);
        for (t = 0; t < 300; t++) {
            random_unit(v, dim);
            llmc_lsh_sign(&l, v, s1);
            llmc_lsh_sign_generic(&l, v, s2);
            same += memcmp(s1, s2, sizeof(s1)) == 0;
        }
        is_int(same, 300, "dim %d: SIMD and portable signatures agree", dim);

        /* sparse vectors (a few non-zero components, some in the tail)
           take the transposed path */
        same = 0;
        for (t = 0; t < 300; t++) {
            int  k;

            random_unit(w, dim);
            memset(v, 0, sizeof(v));
            for (k = 0; k < 20; k++) {
                v[(k * 37 + t * 11) % dim] = w[k];
            }
            v[dim - 1] = w[20];
            llmc_lsh_sign(&l, v, s1);
            llmc_lsh_sign_generic(&l, v, s2);
            same += memcmp(s1, s2, sizeof(s1)) == 0;
        }
        is_int(same, 300, "dim %d: sparse and portable signatures agree",
               dim);
        llmc_lsh_free(&l);
    }
}


static void
test_bucket(void)
{
    char  buf[24];

    is_int(llmc_lsh_bucket(3, 0xa1, buf, sizeof(buf)), 4, "bucket length");
    is_str(buf, "3:a1", "bucket name");
    is_int(llmc_lsh_bucket(63, 0xffffffffu, buf, sizeof(buf)), 11,
           "widest bucket fits");
    is_str(buf, "63:ffffffff", "widest bucket name");
    is_int(llmc_lsh_bucket(3, 0xa1, buf, 4), -1, "too small a buffer");
    is_int(llmc_lsh_bucket(3, 0xa1, buf, 5), 4, "an exact fit");
    is_str(buf, "3:a1", "an exact fit's name");
    is_int(llmc_lsh_bucket(0, 0, buf, sizeof(buf)), 3, "zeros");
    is_str(buf, "0:0", "zeros' name");
    is_int(llmc_lsh_bucket(-1, 0, buf, sizeof(buf)), -1, "a negative band");
    {
        char      want[32];
        int       i, same = 0;
        uint32_t  sig;

        for (i = 0; i < 1000; i++) {
            sig = (uint32_t) i * 2654435761u;
            snprintf(want, sizeof(want), "%d:%x", i % 64, sig);
            same += llmc_lsh_bucket(i % 64, sig, buf, sizeof(buf))
                    == (int) strlen(want) && strcmp(buf, want) == 0;
        }
        is_int(same, 1000, "the names printf would write");
    }
}


static void
test_vec(void)
{
    float        v[DIM], d[DIM], z[DIM];
    char        *b, *c;
    const char  *text;
    size_t       n, tl;

    random_unit(v, DIM);
    b = llmc_vec_encode(v, DIM, S_TEXT, sizeof(S_TEXT) - 1, &n);
    ok(b != NULL, "encode");
    is_int(n, 4 + 2 + 4 + DIM + 4 + sizeof(S_TEXT) - 1, "encoded size");
    ok(b && memcmp(b, "LV\x01\x00", 4) == 0, "magic and version");

    is_int(llmc_vec_decode(b, n, d, DIM, &text, &tl), 0, "decode");
    ok(llmc_cosine(v, d, DIM) > 0.999f, "int8 keeps the direction (%.5f)",
       llmc_cosine(v, d, DIM));
    is_int(tl, sizeof(S_TEXT) - 1, "text length");
    ok(tl == sizeof(S_TEXT) - 1 && memcmp(text, S_TEXT, tl) == 0,
       "text beside the vector");

    {
        /* the cosine without decoding: as decode + llmc_cosine */
        float        q[DIM], direct, decoded;
        const char  *t2 = NULL;
        size_t       tl2 = 0;

        random_unit(q, DIM);
        direct = llmc_vec_cosine(q, b, n, DIM, &t2, &tl2);
        decoded = llmc_cosine(q, d, DIM);
        ok(fabsf(direct - decoded) < 1e-5f,
           "llmc_vec_cosine %.6f = decoded cosine %.6f", direct, decoded);
        ok(t2 == text && tl2 == tl, "llmc_vec_cosine points at the text");
        ok(llmc_vec_cosine(q, b, n, DIM / 2, NULL, NULL) == -2.0f
           && llmc_vec_cosine(q, b, n - 1, DIM, NULL, NULL) == -2.0f
           && llmc_vec_cosine(q, b, 0, DIM, NULL, NULL) == -2.0f,
           "llmc_vec_cosine refuses another dim and a truncated vector");
    }

    is_int(llmc_vec_decode(b, n, d, DIM / 2, &text, &tl), -1,
           "another dim refused");
    is_int(llmc_vec_decode(b, n - 1, d, DIM, &text, &tl), -1,
           "truncated text refused");
    is_int(llmc_vec_decode(b, 12, d, DIM, &text, &tl), -1,
           "truncated values refused");
    is_int(llmc_vec_decode(b, 0, d, DIM, &text, &tl), -1, "empty refused");

    c = malloc(n + 1);
    memcpy(c, b, n);
    c[n] = 'x';
    is_int(llmc_vec_decode(c, n + 1, d, DIM, &text, &tl), -1,
           "trailing bytes refused");
    c[0] = 'X';
    is_int(llmc_vec_decode(c, n, d, DIM, &text, &tl), -1, "bad magic");
    memcpy(c, b, n);
    c[2] = 2;
    is_int(llmc_vec_decode(c, n, d, DIM, &text, &tl), -1,
           "unknown version refused");
    memcpy(c, b, n);
    memset(c + 6, 0, 4);
    is_int(llmc_vec_decode(c, n, d, DIM, &text, &tl), -1,
           "zero scale refused");
    memcpy(c, b, n);
    memcpy(c + 6, "\x00\x00\xc0\x7f", 4);
    is_int(llmc_vec_decode(c, n, d, DIM, &text, &tl), -1,
           "NaN scale refused");
    {
        /* a subnormal scale: the norm is subnormal too, and its
           reciprocal would overflow a float */
        double  nn = 0;
        int     i, finite = 1;

        memcpy(c, b, n);
        memcpy(c + 6, "\x21\x00\x00\x00", 4);
        is_int(llmc_vec_decode(c, n, d, DIM, &text, &tl), 0,
               "a subnormal scale decodes");
        for (i = 0; i < DIM; i++) {
            finite &= isfinite(d[i]) != 0;
            nn += (double) d[i] * d[i];
        }
        ok(finite && fabs(sqrt(nn) - 1) < 1e-3,
           "to a finite unit vector (norm %.4f)", sqrt(nn));
    }
    memcpy(c, b, n);
    c[4 + 2 + 4 + DIM] = (char) 0xff;
    is_int(llmc_vec_decode(c, n, d, DIM, &text, &tl), -1,
           "text length beyond the buffer refused");
    free(c);
    free(b);

    memset(z, 0, sizeof(z));
    b = llmc_vec_encode(z, DIM, NULL, 0, &n);
    ok(b != NULL, "a zero vector without text encodes");
    is_int(llmc_vec_decode(b, n, d, DIM, &text, &tl), 0, "and decodes");
    is_int(tl, 0, "with an empty text");
    free(b);

    ok(llmc_vec_encode(v, 0, NULL, 0, &n) == NULL, "dim 0 refused");
    z[3] = NAN;
    ok(llmc_vec_encode(z, DIM, NULL, 0, &n) == NULL, "NaN refused");
}


static void
test_pick(void)
{
    static const char  *texts[] = {
        "how do i not enable 2fa on my phone",
        "how do i enable 2fa on my phone now",
        "what is the capital of france",
    };
    const char   *bufs[4], *why;
    size_t        lens[4], i;
    float         q[DIM], v[DIM], c[3], got;
    const char   *qt = "how do i enable 2fa on my phone";
    int           k;

    llmc_embed_builtin(qt, strlen(qt), q, DIM);
    bufs[0] = "garbage";
    lens[0] = 7;
    for (i = 0; i < 3; i++) {
        llmc_embed_builtin(texts[i], strlen(texts[i]), v, DIM);
        c[i] = llmc_cosine(q, v, DIM);
        bufs[i + 1] = llmc_vec_encode(v, DIM, texts[i], strlen(texts[i]),
                                      &lens[i + 1]);
    }
    ok(c[0] > 0.5f && c[1] > 0.5f && c[2] < 0.5f,
       "candidates: %.3f %.3f %.3f", c[0], c[1], c[2]);

    k = llmc_semantic_pick(q, DIM, qt, strlen(qt), bufs, lens, 4, 0.5f,
                           NULL, NULL, 0, &got, &why);
    is_int(k, c[0] > c[1] ? 1 : 2, "no guards: the most similar wins");
    ok(fabsf(got - (c[0] > c[1] ? c[0] : c[1])) < 0.01f,
       "with its similarity (%.3f)", got);
    ok(why == NULL, "nothing blocked");

    k = llmc_semantic_pick(q, DIM, qt, strlen(qt), bufs, lens, 4, 0.5f,
                           NULL, NULL, LLMC_GUARD_ALL, &got, &why);
    is_int(k, 2, "guards: the negated candidate is passed over");
    ok(fabsf(got - c[1]) < 0.01f, "the pick's similarity (%.3f)", got);

    k = llmc_semantic_pick(q, DIM, qt, strlen(qt), bufs, lens, 2, 0.5f,
                           NULL, NULL, LLMC_GUARD_ALL, &got, &why);
    is_int(k, -1, "only the negated candidate: no pick");
    is_str(why, "negation", "and the guard is named");

    k = llmc_semantic_pick(q, DIM, qt, strlen(qt), bufs, lens, 4, 0.999f,
                           NULL, NULL, LLMC_GUARD_ALL, &got, &why);
    is_int(k, -1, "nothing above the threshold: no pick");
    ok(why == NULL, "no guard named");
    ok(fabsf(got - (c[0] > c[1] ? c[0] : c[1])) < 0.01f,
       "the best similarity seen is reported (%.3f)", got);

    k = llmc_semantic_pick(q, DIM, qt, strlen(qt), bufs, lens, 1, 0.0f,
                           NULL, NULL, LLMC_GUARD_ALL, &got, &why);
    is_int(k, -1, "undecodable candidates are skipped");
    is_int(llmc_semantic_pick(q, DIM / 2, qt, strlen(qt), bufs, lens, 4,
                              0.0f, NULL, NULL, 0, &got, &why), -1,
           "vectors of another dim are skipped");

    for (i = 1; i < 4; i++) {
        free((char *) bufs[i]);
    }
}


int
main(void)
{
    test_init();
    test_sign();
    test_bucket();
    test_vec();
    test_pick();
    return done_testing();
}
