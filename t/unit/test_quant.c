/*
 * ggml block types: dequantization against per-element reference formulas
 * on random blocks, quantization round trips, and every dot / matrix
 * kernel (plain C and SIMD) against dequantize-then-dot in double.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "tap.h"

static uint64_t  rng = 88172645463325252ULL;

static uint32_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t) (rng >> 16);
}

static float
rndf(void)
{
    return (float) (rnd() & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void
rnd_bytes(void *p, size_t n)
{
    uint8_t  *b = p;
    size_t    i;

    for (i = 0; i < n; i++) {
        b[i] = (uint8_t) rnd();
    }
}

/* a random finite fp16 scale of moderate size */
static uint16_t
rnd_scale(void)
{
    return quant_fp32_to_fp16(rndf() * 0.05f);
}

static float
h2f(uint16_t h)
{
    return quant_fp16_to_fp32(h);
}

/* --- reference dequantization, one element at a time ---------------------- */

static float
ref_q8_0(const block_q8_0 *b, int e)
{
    return h2f(b[e / 32].d) * b[e / 32].qs[e % 32];
}

static float
ref_q4_0(const block_q4_0 *b, int e)
{
    const block_q4_0  *x = &b[e / 32];
    int                j = e % 32;
    int                q = j < 16 ? x->qs[j] & 15 : x->qs[j - 16] >> 4;

    return h2f(x->d) * (q - 8);
}

static float
ref_q4_K(const block_q4_K *b, int e)
{
    const block_q4_K  *x = &b[e / 256];
    const uint8_t     *s = x->scales;
    int                k = e % 256, grp = k / 64, g = k % 64;
    int                sub = 2 * grp + (g >= 32), sc, m, q;

    /* 8 six-bit scales and mins: the first four in the low 6 bits of
       bytes 0-3 / 4-7, the rest split over bytes 8-11 and the top bits */
    if (sub < 4) {
        sc = s[sub] & 63;
        m = s[sub + 4] & 63;
    } else {
        sc = (s[sub + 4] & 15) | ((s[sub - 4] >> 6) << 4);
        m = (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
    }
    q = x->qs[grp * 32 + g % 32];
    q = g < 32 ? q & 15 : q >> 4;
    return h2f(x->d) * sc * q - h2f(x->dmin) * m;
}

static float
ref_q6_K(const block_q6_K *b, int e)
{
    const block_q6_K  *x = &b[e / 256];
    int                k = e % 256, half = k / 128, r = k % 128;
    int                l = r % 32, quarter = r / 32, lo, hi, q;

    lo = x->ql[half * 64 + l + (quarter & 1) * 32];
    lo = quarter < 2 ? lo & 15 : lo >> 4;
    hi = (x->qh[half * 32 + l] >> (2 * quarter)) & 3;
    q = (lo | (hi << 4)) - 32;
    return h2f(x->d) * x->scales[half * 8 + quarter * 2 + l / 16] * q;
}

static void
test_fp16(void)
{
    uint32_t  h, bad = 0;
    float     f;

    is_int(quant_fp32_to_fp16(1.0f), 0x3c00, "fp16(1)");
    is_int(quant_fp32_to_fp16(-2.0f), 0xc000, "fp16(-2)");
    is_int(quant_fp32_to_fp16(65504.0f), 0x7bff, "fp16 max");
    is_int(quant_fp32_to_fp16(65520.0f), 0x7c00, "65520 rounds to inf");
    is_int(quant_fp32_to_fp16(5.9604645e-8f), 0x0001, "smallest subnormal");
    is_int(quant_fp32_to_fp16(-0.0f), 0x8000, "negative zero");
    is_int(quant_fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00,
           "a tie rounds to even");
    ok(isnan(quant_fp16_to_fp32(quant_fp32_to_fp16(NAN))), "NaN stays NaN");
    ok(quant_fp16_to_fp32(0x3555) > 0.333 && quant_fp16_to_fp32(0x3555)
       < 0.334, "fp16 0x3555 is 1/3");
    for (h = 0; h < 65536; h++) {
        f = quant_fp16_to_fp32((uint16_t) h);
        if (!isnan(f) && quant_fp32_to_fp16(f) != h) {
            bad++;
        }
    }
    is_int(bad, 0, "every non-NaN half survives fp16 -> fp32 -> fp16");
    is_int(quant_fp32_to_bf16(1.0f), 0x3f80, "bf16(1)");
    ok(quant_bf16_to_fp32(quant_fp32_to_bf16(3.140625f)) == 3.140625f,
       "bf16 exact value round trip");
}

static void
test_dequant(void)
{
    enum { NB = 8 };
    block_q8_0  q8[NB * 8];
    block_q4_0  q4[NB * 8];
    block_q4_K  k4[NB];
    block_q6_K  k6[NB];
    uint16_t    h[256];
    float       y[NB * 256];
    int         i, bad;

    rnd_bytes(q8, sizeof(q8));
    rnd_bytes(q4, sizeof(q4));
    rnd_bytes(k4, sizeof(k4));
    rnd_bytes(k6, sizeof(k6));
    for (i = 0; i < NB * 8; i++) {
        q8[i].d = rnd_scale();
        q4[i].d = rnd_scale();
    }
    for (i = 0; i < NB; i++) {
        k4[i].d = rnd_scale();
        k4[i].dmin = rnd_scale();
        k6[i].d = rnd_scale();
    }

#define CHECK(TYPE, SRC, REF, N, NAME)                                       \
    bad = quant_dequantize_row(TYPE, SRC, y, N);                             \
    for (i = 0; i < (N) && bad == 0; i++) {                                  \
        if (fabsf(y[i] - REF(SRC, i)) > 1e-6f * (1.0f + fabsf(y[i]))) {      \
            printf("# %s element %d: %g vs %g\n", NAME, i, y[i],             \
                   REF(SRC, i));                                             \
            bad = 1;                                                         \
        }                                                                    \
    }                                                                        \
    is_int(bad, 0, "%s: %s dequantization matches the reference",         \
           quant_simd_name(), NAME);

    CHECK(GGML_TYPE_Q8_0, q8, ref_q8_0, NB * 256, "q8_0")
    CHECK(GGML_TYPE_Q4_0, q4, ref_q4_0, NB * 256, "q4_0")
    CHECK(GGML_TYPE_Q4_K, k4, ref_q4_K, NB * 256, "q4_K")
    CHECK(GGML_TYPE_Q6_K, k6, ref_q6_K, NB * 256, "q6_K")

#undef CHECK

    for (i = 0; i < 256; i++) {
        h[i] = quant_fp32_to_fp16(rndf() * 100.0f);
    }
    quant_dequantize_row(GGML_TYPE_F16, h, y, 256);
    for (i = 0, bad = 0; i < 256; i++) {
        bad += y[i] != h2f(h[i]);
    }
    is_int(bad, 0, "f16 rows dequantize element-wise");
    for (i = 0; i < 256; i++) {
        h[i] = quant_fp32_to_bf16(rndf());
    }
    quant_dequantize_row(GGML_TYPE_BF16, h, y, 256);
    for (i = 0, bad = 0; i < 256; i++) {
        bad += y[i] != quant_bf16_to_fp32(h[i]);
    }
    is_int(bad, 0, "bf16 rows dequantize element-wise");
    is_int(quant_dequantize_row(GGML_TYPE_Q8_0, q8, y, 33), -1,
           "a length that is not whole blocks is refused");
    is_int(quant_dequantize_row(GGML_TYPE_Q5_K, k4, y, 256), -1,
           "an unsupported type is refused");
    is_int(quant_row_size(GGML_TYPE_Q6_K, 512), 420, "q6_K row size");
    is_int(quant_row_size(GGML_TYPE_Q4_0, 64), 36, "q4_0 row size");
    ok(quant_type_known(GGML_TYPE_Q5_K) && !quant_type_supported(
       GGML_TYPE_Q5_K), "q5_K is known but not supported");
    ok(!quant_type_known(4), "type 4 (removed from ggml) is unknown");
}

static void
test_quantize(void)
{
    enum { N = 1024 };
    static float  x[N], y[N];
    block_q8_0    q8[N / 32];
    block_q4_0    q4[N / 32];
    float         amax, e8 = 0, e4 = 0, lim8 = 0, lim4 = 0, d;
    int           i, b, bad = 0;

    for (i = 0; i < N; i++) {
        x[i] = rndf() * (1 + i % 7);
    }
    x[5] = 0;
    quant_quantize_row_q8_0(x, q8, N);
    quant_dequantize_row(GGML_TYPE_Q8_0, q8, y, N);
    for (b = 0; b < N / 32; b++) {
        amax = 0;
        for (i = b * 32; i < b * 32 + 32; i++) {
            amax = fmaxf(amax, fabsf(x[i]));
        }
        d = amax / 127;
        for (i = b * 32; i < b * 32 + 32; i++) {
            /* half a step, plus the fp16 rounding of the scale */
            if (fabsf(x[i] - y[i]) > d * 0.5f + amax * 1e-3f) {
                bad++;
            }
            e8 = fmaxf(e8, fabsf(x[i] - y[i]));
        }
        lim8 = fmaxf(lim8, d);
        for (i = b * 32; i < b * 32 + 32; i++) {
            if (q8[b].qs[i - b * 32] < -127) {
                bad++;
            }
        }
    }
    is_int(bad, 0, "q8_0 round trip within half a step (max err %g, step "
           "%g)", e8, lim8);
    {
        block_q8_0  g[N / 32];

        quant_quantize_row(GGML_TYPE_Q8_0, x, g, N);
        ok(memcmp(g, q8, sizeof(g)) == 0, "%s q8_0 quantizer agrees with "
           "the plain C one", quant_simd_name());
    }

    quant_quantize_row_q4_0(x, q4, N);
    quant_dequantize_row(GGML_TYPE_Q4_0, q4, y, N);
    bad = 0;
    for (b = 0; b < N / 32; b++) {
        amax = 0;
        for (i = b * 32; i < b * 32 + 32; i++) {
            amax = fmaxf(amax, fabsf(x[i]));
        }
        d = amax / 8;
        for (i = b * 32; i < b * 32 + 32; i++) {
            /* the range is [-8d, 7d]: the side opposite the largest
               magnitude clips at 7d, a full step away */
            if (fabsf(x[i] - y[i]) > d * (fabsf(x[i]) > 7.4f * d ? 1.0f
                                                                 : 0.5f)
                                     + amax * 1e-3f)
            {
                bad++;
            }
            e4 = fmaxf(e4, fabsf(x[i] - y[i]));
        }
        lim4 = fmaxf(lim4, d);
    }
    is_int(bad, 0, "q4_0 round trip within half a step, a step at the clip "
           "(max err %g, step "
           "%g)", e4, lim4);
    ok(fabsf(y[5]) < lim4, "zero stays near zero");
}

static double
ref_dot(const float *a, const float *b, int n)
{
    double  s = 0;
    int     i;

    for (i = 0; i < n; i++) {
        s += (double) a[i] * b[i];
    }
    return s;
}

static int
close_to(double got, double want, double tol)
{
    return fabs(got - want) <= tol * (1.0 + fabs(want));
}

static void
test_dots(void)
{
    enum { N = 4096 + 64 };
    static float     a[N], b[N], da[N], db[N];
    static uint16_t  h[N];
    static block_q8_0  qa[N / 32], qb[N / 32];
    static block_q4_0  q4[N / 32];
    const char      *k;
    int              i, n, bad;
    static const int sizes[] = { 1, 7, 8, 31, 32, 64, 100, 172, 768, N };

    k = quant_simd_name();
    for (i = 0; i < N; i++) {
        a[i] = rndf();
        b[i] = rndf();
        h[i] = quant_fp32_to_fp16(a[i]);
    }
    bad = 0;
    for (i = 0; i < (int) (sizeof(sizes) / sizeof(sizes[0])); i++) {
        n = sizes[i];
        bad += !close_to(quant_dot_f32(a, b, n), ref_dot(a, b, n), 1e-5);
        quant_dequantize_row(GGML_TYPE_F16, h, da, n);
        bad += !close_to(quant_dot_f16_f32(h, b, n), ref_dot(da, b, n), 1e-5);
    }
    is_int(bad, 0, "%s: f32 and f16 dots match at lengths 1..%d", k, N);

    bad = 0;
    for (n = 32; n <= N; n += n < 256 ? 32 : 1024) {
        quant_quantize_row_q8_0(a, qa, n);
        quant_quantize_row_q8_0(b, qb, n);
        quant_quantize_row_q4_0(a, q4, n);
        quant_dequantize_row(GGML_TYPE_Q8_0, qa, da, n);
        quant_dequantize_row(GGML_TYPE_Q8_0, qb, db, n);
        bad += !close_to(quant_dot_q8_0(qa, qb, n), ref_dot(da, db, n), 1e-4);
        quant_dequantize_row(GGML_TYPE_Q4_0, q4, da, n);
        bad += !close_to(quant_dot_q4_0_q8_0(q4, qb, n), ref_dot(da, db, n),
                         1e-4);
    }
    is_int(bad, 0, "%s: q8_0 x q8_0 and q4_0 x q8_0 match dequantized dots",
           k);

    /* extreme int8 values: the sign trick must not lose them */
    memset(qa, 0, sizeof(qa));
    memset(qb, 0, sizeof(qb));
    for (i = 0; i < 64; i++) {
        qa[i / 32].qs[i % 32] = i % 2 ? -127 : 127;
        qb[i / 32].qs[i % 32] = i % 3 ? 127 : -127;
    }
    qa[0].d = qa[1].d = qb[0].d = qb[1].d = quant_fp32_to_fp16(1.0f);
    quant_dequantize_row(GGML_TYPE_Q8_0, qa, da, 64);
    quant_dequantize_row(GGML_TYPE_Q8_0, qb, db, 64);
    ok(close_to(quant_dot_q8_0(qa, qb, 64), ref_dot(da, db, 64), 1e-6),
       "%s: q8_0 dot at +-127", k);
}

/* every weight type through quant_gemm against dequantize-then-dot */
static void
test_gemm(void)
{
    enum { ROWS = 37, MAXN = 19 };
    static const uint32_t  types[] = {
        GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
        GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K
    };
    static const int       ns[] = { 1, 2, 3, 4, 5, 8, 9, MAXN };
    int                    ti, ni, r, t, cols, n, bad, r0, r1;
    uint32_t               type, vt;
    size_t                 rs, xs;
    uint8_t               *w, *xq;
    float                 *x, *xd, *xk, *wd, *out, *scratch;
    double                 want;

    for (ti = 0; ti < (int) (sizeof(types) / sizeof(types[0])); ti++) {
        type = types[ti];
        cols = type == GGML_TYPE_F32 ? 172
               : quant_block_size(type) == 256 ? 512 : 96;
        rs = quant_row_size(type, cols);
        w = malloc(rs * ROWS);
        wd = malloc(sizeof(float) * cols * ROWS);
        x = malloc(sizeof(float) * cols * MAXN);
        xd = malloc(sizeof(float) * cols * MAXN);
        xk = malloc(sizeof(float) * cols * MAXN);
        xq = malloc(quant_row_size(GGML_TYPE_Q8_K, 512) * MAXN + 64);
        out = malloc(sizeof(float) * ROWS * MAXN);
        scratch = malloc(sizeof(float) * cols * QUANT_GEMM_ROWS);
        vt = quant_vec_type(type);

        for (r = 0; r < ROWS; r++) {
            float  *row = wd + (size_t) r * cols;

            for (t = 0; t < cols; t++) {
                row[t] = rndf();
            }
            if (type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q6_K) {
                /* no quantizer for these: random blocks, sane scales */
                rnd_bytes(w + rs * r, rs);
                for (t = 0; t < cols / 256; t++) {
                    if (type == GGML_TYPE_Q4_K) {
                        ((block_q4_K *) (w + rs * r))[t].d = rnd_scale();
                        ((block_q4_K *) (w + rs * r))[t].dmin = rnd_scale();
                    } else {
                        ((block_q6_K *) (w + rs * r))[t].d = rnd_scale();
                    }
                }
            } else {
                quant_quantize_row(type, row, w + rs * r, cols);
            }
            quant_dequantize_row(type, w + rs * r, row, cols);
        }
        xs = vt == GGML_TYPE_F32 ? 0 : quant_row_size(vt, cols);
        for (t = 0; t < MAXN * cols; t++) {
            x[t] = rndf();
        }
        for (t = 0; t < MAXN; t++) {
            if (vt == GGML_TYPE_Q8_0) {
                quant_quantize_row_q8_0(x + t * cols, xq + t * xs, cols);
                quant_dequantize_row(GGML_TYPE_Q8_0, xq + t * xs,
                                     xd + t * cols, cols);
            } else if (vt == GGML_TYPE_Q8_K) {
                quant_quantize_row_q8_K(x + t * cols, xq + t * xs, cols);
                memcpy(xd + t * cols, x + t * cols, cols * sizeof(float));
                for (r = 0; r < cols; r++) {
                    const block_q8_K  *kb = (const block_q8_K *)
                                            (xq + t * xs) + r / QK_K;

                    xk[t * cols + r] = kb->d * kb->qs[r % QK_K];
                }
            } else {
                memcpy(xd + t * cols, x + t * cols, cols * sizeof(float));
            }
        }
        bad = 0;
        for (ni = 0; ni < (int) (sizeof(ns) / sizeof(ns[0])); ni++) {
            n = ns[ni];
            /* a sub-range of rows, as one thread of several would get */
            r0 = ni % 2 ? 4 : 0;
            r1 = ni % 3 ? ROWS : 33;
            for (t = 0; t < ROWS * n; t++) {
                out[t] = -12345.0f;
            }
            quant_gemm(type, w, rs, cols, x, cols * sizeof(float), xq, xs,
                       n, out, ROWS, r0, r1, scratch);
            for (t = 0; t < n; t++) {
                for (r = 0; r < ROWS; r++) {
                    if (r < r0 || r >= r1) {
                        bad += out[t * ROWS + r] != -12345.0f;
                        continue;
                    }
                    /* K-quants with one or two tokens go against the
                       Q8_K activations, with more against the floats */
                    want = ref_dot(wd + (size_t) r * cols,
                                   (vt == GGML_TYPE_Q8_K && n <= 2 ? xk : xd)
                                   + t * cols, cols);
                    if (!close_to(out[t * ROWS + r], want, 1e-4)) {
                        if (bad < 3) {
                            printf("# %s n=%d r=%d t=%d: %g vs %g\n",
                                   quant_type_name(type), n, r, t,
                                   out[t * ROWS + r], want);
                        }
                        bad++;
                    }
                }
            }
        }
        is_int(bad, 0, "%s: gemm of %s weights (%d cols) matches, rows "
               "outside the range untouched", quant_simd_name(),
               quant_type_name(type), cols);
        free(w);
        free(wd);
        free(x);
        free(xd);
        free(xk);
        free(xq);
        free(out);
        free(scratch);
    }
}

static void
test_axpy(void)
{
    float  x[37], y[37], z[37];
    int    i, bad = 0, g;

    for (g = 0; g < 2; g++) {
        quant_force_generic(g);
        for (i = 0; i < 37; i++) {
            x[i] = rndf();
            y[i] = z[i] = rndf();
        }
        quant_axpy(0.5f, x, y, 37);
        for (i = 0; i < 37; i++) {
            bad += fabsf(y[i] - (z[i] + 0.5f * x[i])) > 1e-6f;
        }
    }
    quant_force_generic(0);
    is_int(bad, 0, "axpy");
}

/* attention kernels and softmax, SIMD against plain C */
static void
test_attention(void)
{
    enum { HD = 64, NK = 37, LD = 40 };
    static float  q[4 * HD], kt[HD * LD], v[NK * HD], s1[4 * LD], s2[4 * LD];
    static float  o1[4 * HD], o2[4 * HD], a[4 * LD];
    int           i, nq, bad = 0, bad_sm = 0;
    double        sum;
    const char   *name = quant_simd_name();

    for (i = 0; i < 4 * HD; i++) {
        q[i] = rndf();
    }
    for (i = 0; i < HD * LD; i++) {
        kt[i] = rndf();
    }
    for (i = 0; i < NK * HD; i++) {
        v[i] = rndf();
    }
    for (i = 0; i < 4 * LD; i++) {
        a[i] = rndf();
    }
    for (nq = 1; nq <= 4; nq++) {
        quant_set_kernels("generic");
        quant_attn_scores(q, HD, nq, kt, LD, HD, NK, s1, LD);
        quant_attn_values(a, LD, nq, v, HD, HD, NK, o1, HD);
        quant_set_kernels(name);
        quant_attn_scores(q, HD, nq, kt, LD, HD, NK, s2, LD);
        quant_attn_values(a, LD, nq, v, HD, HD, NK, o2, HD);
        for (i = 0; i < nq * LD; i++) {
            if (i % LD < NK) {
                bad += !close_to(s1[i], s2[i], 1e-5);
            }
        }
        for (i = 0; i < nq * HD; i++) {
            bad += !close_to(o1[i], o2[i], 1e-5);
        }
    }
    is_int(bad, 0, "%s: attention scores and values match plain C",
           quant_simd_name());

    for (i = 0; i < LD; i++) {
        s1[i] = s2[i] = rndf() * 30.0f;
    }
    s1[3] = s2[3] = -1e30f;
    quant_set_kernels("generic");
    quant_softmax(s1, NK, LD, 0.7f);
    quant_set_kernels(name);
    quant_softmax(s2, NK, LD, 0.7f);
    sum = 0;
    for (i = 0; i < LD; i++) {
        bad_sm += !close_to(s1[i], s2[i], 1e-6);
        sum += s2[i];
        bad_sm += i >= NK && s2[i] != 0.0f;
    }
    is_int(bad_sm, 0, "%s: softmax matches plain C, tail zeroed",
           quant_simd_name());
    ok(fabs(sum - 1.0) < 1e-5 && s2[3] == 0.0f, "softmax sums to 1");
}

int
main(void)
{
    static const char  *sets[] = { "generic", "avx2", "avx512" };
    size_t              i;

    printf("# best kernels here: %s\n", quant_simd_name());
    test_fp16();
    test_quantize();
    test_axpy();
    /* every kernel set this CPU can run, against the references */
    for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        if (quant_set_kernels(sets[i]) != 0) {
            ok(1, "# SKIP %s kernels: not supported by this CPU", sets[i]);
            continue;
        }
        test_dequant();
        test_dots();
        test_gemm();
        test_attention();
    }
    quant_set_kernels(NULL);
    return done_testing();
}
