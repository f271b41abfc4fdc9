/*
 * Random-hyperplane LSH signatures and the stored form of vectors.
 *
 * Hyperplane components follow an Irwin-Hall distribution (the sum of four
 * uniform 16-bit integers, centred), close enough to a Gaussian for the
 * hyperplanes' directions to be spread evenly, and computed in integers
 * only: no libm, so no platform can disagree about a plane.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmc_embed.h"
#include "llmc_guard.h"
#include "llmc_lsh.h"


#define LSH_VEC_HEAD  10            /* magic, version, pad, dim, scale */


static uint64_t
lsh_next(uint64_t *s)
{
    uint64_t  z;

    *s += 0x9e3779b97f4a7c15ULL;
    z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


int
llmc_lsh_init(llmc_lsh_t *l, int dim, int bands, int bits, uint64_t seed)
{
    uint64_t  s, r;
    size_t    i, n;
    int32_t   x;

    memset(l, 0, sizeof(*l));
    if (dim < 1 || dim > LLMC_EMBED_DIM_MAX || bands < 1
        || bands > LLMC_LSH_BANDS_MAX || bits < 1 || bits > LLMC_LSH_BITS_MAX)
    {
        return -1;
    }

    n = (size_t) bands * bits * dim;
    l->planes = malloc(n * sizeof(float));
    if (l->planes == NULL) {
        return -1;
    }

    s = seed;
    for (i = 0; i < n; i++) {
        r = lsh_next(&s);
        x = (int32_t) (r & 0xffff) + (int32_t) ((r >> 16) & 0xffff)
            + (int32_t) ((r >> 32) & 0xffff) + (int32_t) (r >> 48)
            - 131070;
        l->planes[i] = (float) x / 65536.0f;
    }

    l->dim = dim;
    l->bands = bands;
    l->bits = bits;
    l->seed = seed;
    return 0;
}


void
llmc_lsh_free(llmc_lsh_t *l)
{
    free(l->planes);
    l->planes = NULL;
}


void
llmc_lsh_sign(const llmc_lsh_t *l, const float *v, uint32_t *sig)
{
    const float  *p = l->planes;
    uint32_t      s;
    float         dot;
    int           b, k, i;

    for (b = 0; b < l->bands; b++) {
        s = 0;
        for (k = 0; k < l->bits; k++) {
            /* eight fixed partial sums: the compiler vectorizes them, and
             * the order of the additions, so the result, is the same on
             * every machine */
            float  acc[8] = { 0 };

            for (i = 0; i + 8 <= l->dim; i += 8) {
                int  j;

                for (j = 0; j < 8; j++) {
                    acc[j] += p[i + j] * v[i + j];
                }
            }

            dot = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
                  + ((acc[4] + acc[5]) + (acc[6] + acc[7]));

            for ( /* void */ ; i < l->dim; i++) {
                dot += p[i] * v[i];
            }

            p += l->dim;
            if (dot > 0.0f) {
                s |= 1u << k;
            }
        }
        sig[b] = s;
    }
}


int
llmc_lsh_bucket(int band, uint32_t sig, char *buf, size_t size)
{
    int  n;

    n = snprintf(buf, size, "%d:%x", band, (unsigned) sig);
    return n < 0 || (size_t) n >= size ? -1 : n;
}


static void
lsh_put32(unsigned char *p, uint32_t u)
{
    p[0] = (unsigned char) u;
    p[1] = (unsigned char) (u >> 8);
    p[2] = (unsigned char) (u >> 16);
    p[3] = (unsigned char) (u >> 24);
}


static uint32_t
lsh_get32(const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}


char *
llmc_vec_encode(const float *v, int dim, const char *text, size_t text_len,
    size_t *out_len)
{
    unsigned char  *b;
    uint32_t        u;
    float           m, scale, x;
    size_t          n;
    int             i;

    if (dim < 1 || dim > 65535 || text_len > UINT32_MAX
        || (text == NULL && text_len))
    {
        return NULL;
    }

    m = 0.0f;
    for (i = 0; i < dim; i++) {
        if (!isfinite(v[i])) {
            return NULL;
        }
        if (fabsf(v[i]) > m) {
            m = fabsf(v[i]);
        }
    }
    scale = m > 0.0f ? m / 127.0f : 1.0f;

    n = LSH_VEC_HEAD + (size_t) dim + 4 + text_len;
    b = malloc(n);
    if (b == NULL) {
        return NULL;
    }

    b[0] = 'L';
    b[1] = 'V';
    b[2] = 1;
    b[3] = 0;
    b[4] = (unsigned char) dim;
    b[5] = (unsigned char) (dim >> 8);
    memcpy(&u, &scale, sizeof(u));
    lsh_put32(b + 6, u);

    for (i = 0; i < dim; i++) {
        x = roundf(v[i] / scale);
        x = x > 127.0f ? 127.0f : (x < -127.0f ? -127.0f : x);
        b[LSH_VEC_HEAD + i] = (unsigned char) (int8_t) x;
    }

    lsh_put32(b + LSH_VEC_HEAD + dim, (uint32_t) text_len);
    if (text_len) {
        memcpy(b + LSH_VEC_HEAD + dim + 4, text, text_len);
    }

    *out_len = n;
    return (char *) b;
}


int
llmc_vec_decode(const char *buf, size_t len, float *v, int dim,
    const char **text, size_t *text_len)
{
    const unsigned char  *b = (const unsigned char *) buf;
    uint32_t              u, tl;
    float                 scale;
    int                   i;

    if (dim < 1 || dim > 65535 || len < LSH_VEC_HEAD + (size_t) dim + 4
        || b[0] != 'L' || b[1] != 'V' || b[2] != 1 || b[3] != 0
        || (b[4] | b[5] << 8) != dim)
    {
        return -1;
    }

    u = lsh_get32(b + 6);
    memcpy(&scale, &u, sizeof(scale));
    if (!isfinite(scale) || scale <= 0.0f) {
        return -1;
    }

    tl = lsh_get32(b + LSH_VEC_HEAD + dim);
    if (len - (LSH_VEC_HEAD + (size_t) dim + 4) != tl) {
        return -1;
    }

    for (i = 0; i < dim; i++) {
        v[i] = (float) (int8_t) b[LSH_VEC_HEAD + i] * scale;
    }
    llmc_l2_normalize(v, dim);

    if (text) {
        *text = buf + LSH_VEC_HEAD + dim + 4;
    }
    if (text_len) {
        *text_len = tl;
    }
    return 0;
}


int
llmc_semantic_pick(const float *q, int dim, const char *text,
    size_t text_len, const char *const *bufs, const size_t *lens, size_t n,
    float threshold, const struct llmc_dict_s *dict,
    const struct llmc_entities_s *ents, unsigned guards, float *cos,
    const char **why)
{
    const char  *st, *w, *first_why = NULL;
    size_t       i, stl;
    float       *v, *c, best, seen = -2.0f;
    int          k, found = -1, tried = 0;

    if (why) {
        *why = NULL;
    }
    if (cos) {
        *cos = 0.0f;
    }
    if (n == 0 || dim < 1) {
        return -1;
    }

    v = malloc(((size_t) dim + n) * sizeof(float));
    if (v == NULL) {
        return -1;
    }
    c = v + dim;

    for (i = 0; i < n; i++) {
        c[i] = -2.0f;       /* below any cosine: skipped */
        if (bufs[i] && llmc_vec_decode(bufs[i], lens[i], v, dim, NULL,
                                       NULL) == 0)
        {
            c[i] = llmc_cosine(q, v, dim);
            if (c[i] > seen) {
                seen = c[i];
            }
        }
    }

    /* best first; a blocked candidate is marked and the next one tried */
    for ( ;; ) {
        best = threshold;
        k = -1;
        for (i = 0; i < n; i++) {
            if (c[i] >= best && c[i] > -2.0f) {
                best = c[i];
                k = (int) i;
            }
        }
        if (k < 0) {
            break;
        }
        llmc_vec_decode(bufs[k], lens[k], v, dim, &st, &stl);
        if (!llmc_guard_check_ex(text, text_len, st, stl, dict, ents,
                                 guards, &w))
        {
            found = k;
            break;
        }
        if (!tried++) {
            first_why = w;
        }
        c[k] = -2.0f;
    }

    if (cos) {
        *cos = found >= 0 ? best : (seen > -2.0f ? seen : 0.0f);
    }
    if (why && found < 0) {
        *why = first_why;
    }
    free(v);
    return found;
}
