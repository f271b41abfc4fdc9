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
#define LSH_SPARSE_PLANES  512      /* the sparse path's sums on the stack */


/* a product is rounded, then added, on every machine and in every variant */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("fp-contract=off")
#endif


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

    /* the same planes by component, for sparse vectors */
    l->planes_t = malloc(n * sizeof(float));
    if (l->planes_t == NULL) {
        free(l->planes);
        l->planes = NULL;
        return -1;
    }

    for (i = 0; i < n; i++) {
        l->planes_t[(i % dim) * (n / dim) + i / dim] = l->planes[i];
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
    free(l->planes_t);
    l->planes = NULL;
    l->planes_t = NULL;
}


/*
 * A projection: eight fixed partial sums over the components, added in a
 * fixed order, so the result, and the signature stored in Redis, is the
 * same bit for bit on every machine and whichever variant below runs (each
 * product is rounded, then added: no fused multiply-add).
 */

static float
lsh_dot_generic(const float *p, const float *v, int dim)
{
    float  acc[8] = { 0 }, dot;
    int    i, j;

    for (i = 0; i + 8 <= dim; i += 8) {
        for (j = 0; j < 8; j++) {
            acc[j] += p[i + j] * v[i + j];
        }
    }

    dot = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
          + ((acc[4] + acc[5]) + (acc[6] + acc[7]));

    for ( /* void */ ; i < dim; i++) {
        dot += p[i] * v[i];
    }

    return dot;
}


#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

/* the same eight sums, as two SSE registers (the x86-64 baseline) */

static float
lsh_dot_sse2(const float *p, const float *v, int dim)
{
    __m128  lo = _mm_setzero_ps(), hi = _mm_setzero_ps();
    float   acc[8], dot;
    int     i;

    for (i = 0; i + 8 <= dim; i += 8) {
        lo = _mm_add_ps(lo, _mm_mul_ps(_mm_loadu_ps(p + i),
                                       _mm_loadu_ps(v + i)));
        hi = _mm_add_ps(hi, _mm_mul_ps(_mm_loadu_ps(p + i + 4),
                                       _mm_loadu_ps(v + i + 4)));
    }

    _mm_storeu_ps(acc, lo);
    _mm_storeu_ps(acc + 4, hi);

    dot = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
          + ((acc[4] + acc[5]) + (acc[6] + acc[7]));

    for ( /* void */ ; i < dim; i++) {
        dot += p[i] * v[i];
    }

    return dot;
}


/*
 * and as one AVX register per plane, four planes at a time: each plane's
 * sums are still added in the same order, but four chains of additions
 * run side by side (one alone waits on the latency of each add);
 * target("avx") has no FMA to contract into
 */

__attribute__((target("avx"))) static void
lsh_dot4_avx(const float *p, const float *v, int dim, float *out)
{
    __m256        a0, a1, a2, a3, x;
    float         acc[8];
    const float  *q[4];
    int           i, k;

    a0 = _mm256_setzero_ps();
    a1 = _mm256_setzero_ps();
    a2 = _mm256_setzero_ps();
    a3 = _mm256_setzero_ps();

    for (i = 0; i + 8 <= dim; i += 8) {
        x = _mm256_loadu_ps(v + i);
        a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(p + i), x));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(p + dim + i),
                                             x));
        a2 = _mm256_add_ps(a2, _mm256_mul_ps(
                                   _mm256_loadu_ps(p + 2 * dim + i), x));
        a3 = _mm256_add_ps(a3, _mm256_mul_ps(
                                   _mm256_loadu_ps(p + 3 * dim + i), x));
    }

    for (k = 0; k < 4; k++) {
        _mm256_storeu_ps(acc, k == 0 ? a0 : k == 1 ? a1 : k == 2 ? a2 : a3);
        out[k] = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
                 + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        q[k] = p + (size_t) k * dim;
    }

    for ( /* void */ ; i < dim; i++) {
        for (k = 0; k < 4; k++) {
            out[k] += q[k][i] * v[i];
        }
    }
}

#endif


/*
 * A vector with few non-zero components (the built-in embedding of a short
 * prompt has a few dozen of 256): every plane at once, component by
 * component, from the transposed planes.  Each plane gets the same eight
 * sums, added in the same order, as the dense variants: a zero component
 * adds +0 to a sum that is never -0, which changes nothing.
 */

/* a[k] += p[k] * x: each product rounded, then added */

static void
lsh_axpy_generic(float *a, const float *p, float x, int n)
{
    int  k;

    for (k = 0; k < n; k++) {
        a[k] += p[k] * x;
    }
}


#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx"))) static void
lsh_axpy_avx(float *a, const float *p, float x, int n)
{
    __m256  xv = _mm256_set1_ps(x);
    int     k;

    for (k = 0; k + 8 <= n; k += 8) {
        _mm256_storeu_ps(a + k,
            _mm256_add_ps(_mm256_loadu_ps(a + k),
                          _mm256_mul_ps(_mm256_loadu_ps(p + k), xv)));
    }

    for ( /* void */ ; k < n; k++) {
        a[k] += p[k] * x;
    }
}


/*
 * AVX-512: dot[] for the components below tail, the same sums as the
 * portable variant, lane by lane (the components i with the same i % 8, in
 * increasing order), 128 planes at a time held in registers across all
 * the components of the lane: eight independent chains of additions, and
 * no sum stored and reloaded per component.  Then the eight lanes are
 * added together as there.  -1: more than a quarter of v is not zero.
 */

__attribute__((target("avx512f"))) static int
lsh_lanes_avx512(const llmc_lsh_t *l, const float *v, int tail,
    float (*acc)[LSH_SPARSE_PLANES], float *dot)
{
    __m512        a[8], x;
    __mmask16     m;
    const float  *row, *pt = l->planes_t;
    float         val[LLMC_EMBED_DIM_MAX / 4];
    uint64_t      nzb[LLMC_EMBED_DIM_MAX / 64], bits;
    int           idx[LLMC_EMBED_DIM_MAX / 4], start[9], fill[8];
    int           np = l->bands * l->bits, c, i, j, t, u, w, nz = 0;

    /* the non-zero components, sixteen at a time */
    memset(nzb, 0, sizeof(nzb));
    for (i = 0; i < l->dim; i += 16) {
        m = l->dim - i >= 16 ? (__mmask16) 0xffff
                             : (__mmask16) ((1u << (l->dim - i)) - 1);
        m = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, v + i),
                                    _mm512_setzero_ps(), _CMP_NEQ_UQ);
        nzb[i / 64] |= (uint64_t) m << (i % 64);
        nz += __builtin_popcount(m);
    }
    if (nz > l->dim / 4) {
        return -1;
    }

    /* those below tail, lane by lane, in increasing order */
    memset(start, 0, sizeof(start));
    for (w = 0; w < (tail + 63) / 64; w++) {
        for (bits = nzb[w]; bits; bits &= bits - 1) {
            i = w * 64 + __builtin_ctzll(bits);
            start[(i & 7) + 1] += i < tail;
        }
    }
    for (j = 0; j < 8; j++) {
        start[j + 1] += start[j];
        fill[j] = start[j];
    }
    for (w = 0; w < (tail + 63) / 64; w++) {
        for (bits = nzb[w]; bits; bits &= bits - 1) {
            i = w * 64 + __builtin_ctzll(bits);
            if (i < tail) {
                idx[fill[i & 7]] = i;
                val[fill[i & 7]++] = v[i];
            }
        }
    }

    /* whole blocks of 128 planes: eight registers, no masks */
    for (c = 0; c + 128 <= np; c += 128) {
        for (j = 0; j < 8; j++) {
#pragma GCC unroll 8
            for (u = 0; u < 8; u++) {
                a[u] = _mm512_setzero_ps();
            }
            for (t = start[j]; t < start[j + 1]; t++) {
                x = _mm512_set1_ps(val[t]);
                row = pt + (size_t) idx[t] * np + c;
#pragma GCC unroll 8
                for (u = 0; u < 8; u++) {
                    a[u] = _mm512_add_ps(a[u], _mm512_mul_ps(
                               _mm512_loadu_ps(row + 16 * u), x));
                }
            }
#pragma GCC unroll 8
            for (u = 0; u < 8; u++) {
                _mm512_storeu_ps(acc[j] + c + 16 * u, a[u]);
            }
        }
    }

    /* the rest, sixteen planes at a time, the last ones masked */
    for ( /* void */ ; c < np; c += 16) {
        m = np - c >= 16 ? (__mmask16) 0xffff
                         : (__mmask16) ((1u << (np - c)) - 1);
        for (j = 0; j < 8; j++) {
            a[0] = _mm512_setzero_ps();
            for (t = start[j]; t < start[j + 1]; t++) {
                a[0] = _mm512_add_ps(a[0], _mm512_mul_ps(
                           _mm512_maskz_loadu_ps(m, pt + (size_t) idx[t] * np
                                                    + c),
                           _mm512_set1_ps(val[t])));
            }
            _mm512_mask_storeu_ps(acc[j] + c, m, a[0]);
        }
    }

    for (c = 0; c < np; c += 16) {
        m = np - c >= 16 ? (__mmask16) 0xffff
                         : (__mmask16) ((1u << (np - c)) - 1);
#pragma GCC unroll 8
        for (j = 0; j < 8; j++) {
            a[j] = _mm512_maskz_loadu_ps(m, acc[j] + c);
        }
        _mm512_mask_storeu_ps(dot + c, m, _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(a[0], a[1]),
                          _mm512_add_ps(a[2], a[3])),
            _mm512_add_ps(_mm512_add_ps(a[4], a[5]),
                          _mm512_add_ps(a[6], a[7]))));
    }

    return 0;
}


static void
lsh_axpy_sse2(float *a, const float *p, float x, int n)
{
    __m128  xv = _mm_set1_ps(x);
    int     k;

    for (k = 0; k + 4 <= n; k += 4) {
        _mm_storeu_ps(a + k, _mm_add_ps(_mm_loadu_ps(a + k),
                                        _mm_mul_ps(_mm_loadu_ps(p + k), xv)));
    }

    for ( /* void */ ; k < n; k++) {
        a[k] += p[k] * x;
    }
}

#endif


static int
lsh_sign_sparse(const llmc_lsh_t *l, const float *v, uint32_t *sig)
{
    void        (*axpy)(float *, const float *, float, int);
    float         acc[8][LSH_SPARSE_PLANES], dot[LSH_SPARSE_PLANES];
    uint32_t      s;
    int           np, i, k, b, j, nz, tail;

    axpy = lsh_axpy_generic;

#if defined(__x86_64__) && defined(__GNUC__)
    axpy = __builtin_cpu_supports("avx") ? lsh_axpy_avx : lsh_axpy_sse2;
#endif

    np = l->bands * l->bits;

    if (np > LSH_SPARSE_PLANES) {
        return -1;
    }

    tail = l->dim - l->dim % 8;

#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) {
        if (lsh_lanes_avx512(l, v, tail, acc, dot) != 0) {
            return -1;
        }
    } else
#endif
    {
        for (i = 0, nz = 0; i < l->dim; i++) {
            nz += v[i] != 0.0f;
        }

        if (nz > l->dim / 4) {
            return -1;
        }

        for (j = 0; j < 8; j++) {
            memset(acc[j], 0, np * sizeof(float));
        }

        for (i = 0; i < tail; i++) {
            if (v[i] != 0.0f) {
                axpy(acc[i & 7], l->planes_t + (size_t) i * np, v[i], np);
            }
        }

        for (k = 0; k < np; k++) {
            dot[k] = ((acc[0][k] + acc[1][k]) + (acc[2][k] + acc[3][k]))
                     + ((acc[4][k] + acc[5][k]) + (acc[6][k] + acc[7][k]));
        }
    }

    for (i = tail; i < l->dim; i++) {
        if (v[i] != 0.0f) {
            axpy(dot, l->planes_t + (size_t) i * np, v[i], np);
        }
    }

    for (b = 0, k = 0; b < l->bands; b++) {
        s = 0;
        for (j = 0; j < l->bits; j++, k++) {
            if (dot[k] > 0.0f) {
                s |= 1u << j;
            }
        }
        sig[b] = s;
    }

    return 0;
}


void
llmc_lsh_sign(const llmc_lsh_t *l, const float *v, uint32_t *sig)
{
    float         d[LLMC_LSH_BITS_MAX + 3];
    const float  *p = l->planes;
    uint32_t      s;
    int           b, k, avx = 0;

    if (lsh_sign_sparse(l, v, sig) == 0) {
        return;
    }

#if defined(__x86_64__) && defined(__GNUC__)
    avx = __builtin_cpu_supports("avx");
#endif

    for (b = 0; b < l->bands; b++) {
        k = 0;

#if defined(__x86_64__) && defined(__GNUC__)
        if (avx) {
            for ( /* void */ ; k + 4 <= l->bits; k += 4) {
                lsh_dot4_avx(p + (size_t) k * l->dim, v, l->dim, d + k);
            }
        }

        for ( /* void */ ; k < l->bits; k++) {
            d[k] = lsh_dot_sse2(p + (size_t) k * l->dim, v, l->dim);
        }
#else
        for ( /* void */ ; k < l->bits; k++) {
            d[k] = lsh_dot_generic(p + (size_t) k * l->dim, v, l->dim);
        }
#endif

        s = 0;
        for (k = 0; k < l->bits; k++) {
            if (d[k] > 0.0f) {
                s |= 1u << k;
            }
        }

        sig[b] = s;
        p += (size_t) l->bits * l->dim;
    }
    (void) avx;
}


/* for tests: the portable variant */

void
llmc_lsh_sign_generic(const llmc_lsh_t *l, const float *v, uint32_t *sig)
{
    const float  *p = l->planes;
    uint32_t      s;
    int           b, k;

    for (b = 0; b < l->bands; b++) {
        s = 0;
        for (k = 0; k < l->bits; k++) {
            if (lsh_dot_generic(p, v, l->dim) > 0.0f) {
                s |= 1u << k;
            }
            p += l->dim;
        }
        sig[b] = s;
    }
}


int
llmc_lsh_bucket(int band, uint32_t sig, char *buf, size_t size)
{
    static const char  hex[] = "0123456789abcdef";
    char               tmp[24];
    size_t             n = 0, k;
    unsigned           b = (unsigned) band;

    /* "%d:%x" without printf: it runs for every band of every lookup */
    if (band < 0) {
        return -1;
    }
    do {
        tmp[n++] = hex[sig & 0xf];
        sig >>= 4;
    } while (sig);
    tmp[n++] = ':';
    do {
        tmp[n++] = (char) ('0' + b % 10);
        b /= 10;
    } while (b);
    if (n >= size) {
        return -1;
    }
    for (k = 0; k < n; k++) {
        buf[k] = tmp[n - 1 - k];
    }
    buf[n] = '\0';
    return (int) n;
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


/* a stored vector's header and length checked: its scale and text */
static int
lsh_vec_check(const char *buf, size_t len, int dim, float *scale,
    const char **text, size_t *text_len)
{
    const unsigned char  *b = (const unsigned char *) buf;
    uint32_t              u, tl;

    if (dim < 1 || dim > 65535 || len < LSH_VEC_HEAD + (size_t) dim + 4
        || b[0] != 'L' || b[1] != 'V' || b[2] != 1 || b[3] != 0
        || (b[4] | b[5] << 8) != dim)
    {
        return -1;
    }

    u = lsh_get32(b + 6);
    memcpy(scale, &u, sizeof(*scale));
    if (!isfinite(*scale) || *scale <= 0.0f) {
        return -1;
    }

    tl = lsh_get32(b + LSH_VEC_HEAD + dim);
    if (len - (LSH_VEC_HEAD + (size_t) dim + 4) != tl) {
        return -1;
    }

    if (text) {
        *text = buf + LSH_VEC_HEAD + dim + 4;
    }
    if (text_len) {
        *text_len = tl;
    }
    return 0;
}


int
llmc_vec_decode(const char *buf, size_t len, float *v, int dim,
    const char **text, size_t *text_len)
{
    const unsigned char  *b = (const unsigned char *) buf + LSH_VEC_HEAD;
    float                 scale;
    int                   i;

    if (lsh_vec_check(buf, len, dim, &scale, text, text_len) != 0) {
        return -1;
    }

    for (i = 0; i < dim; i++) {
        v[i] = (float) (int8_t) b[i] * scale;
    }
    llmc_l2_normalize(v, dim);
    return 0;
}


float
llmc_vec_cosine(const float *q, const char *buf, size_t len, int dim,
    const char **text, size_t *text_len)
{
    const unsigned char  *b = (const unsigned char *) buf + LSH_VEC_HEAD;
    float                 scale, s[8] = { 0 }, t;
    int32_t               x, nn[8] = { 0 }, m;
    int                   i, k;

    if (lsh_vec_check(buf, len, dim, &scale, text, text_len) != 0) {
        return -2.0f;
    }

    /* the scale cancels out: q . v / |v| on the int8 values, the partial
     * sums in a fixed order as llmc_cosine's */
    for (i = 0; i + 8 <= dim; i += 8) {
        for (k = 0; k < 8; k++) {
            x = (int8_t) b[i + k];
            s[k] += q[i + k] * (float) x;
            nn[k] += x * x;
        }
    }
    t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    m = nn[0] + nn[1] + nn[2] + nn[3] + nn[4] + nn[5] + nn[6] + nn[7];
    for (; i < dim; i++) {
        x = (int8_t) b[i];
        t += q[i] * (float) x;
        m += x * x;
    }
    return m ? t / sqrtf((float) m) : 0.0f;
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
    float        cstack[64], *c, best, seen = -2.0f, scale;
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

    c = n <= 64 ? cstack : malloc(n * sizeof(float));
    if (c == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        /* -2, below any cosine: not a vector of this dim, skipped */
        c[i] = bufs[i] ? llmc_vec_cosine(q, bufs[i], lens[i], dim, NULL, NULL)
                       : -2.0f;
        if (c[i] > seen) {
            seen = c[i];
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
        if (guards == 0) {
            found = k;
            break;
        }
        (void) lsh_vec_check(bufs[k], lens[k], dim, &scale, &st, &stl);
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
    if (c != cstack) {
        free(c);
    }
    return found;
}
