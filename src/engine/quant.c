/*
 * ggml block formats (layouts as in ggml-common.h) and the kernels the
 * forward pass spends its time in. Every kernel has a plain C version; on
 * x86-64 AVX2 and AVX-512 versions are compiled with function-level target
 * attributes and picked at run time, so the binary runs on any x86-64.
 */

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QUANT_X86 1
#include <immintrin.h>
#endif

_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 layout");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K layout");

typedef struct {
    uint32_t     type;
    const char  *name;
    int          blck;
    size_t       bytes;
    int          supported;
} quant_traits_t;

static const quant_traits_t quant_traits[] = {
    { GGML_TYPE_F32,  "f32",  1,   4,   1 },
    { GGML_TYPE_F16,  "f16",  1,   2,   1 },
    { GGML_TYPE_Q4_0, "q4_0", 32,  18,  1 },
    { GGML_TYPE_Q4_1, "q4_1", 32,  20,  0 },
    { GGML_TYPE_Q5_0, "q5_0", 32,  22,  0 },
    { GGML_TYPE_Q5_1, "q5_1", 32,  24,  0 },
    { GGML_TYPE_Q8_0, "q8_0", 32,  34,  1 },
    { GGML_TYPE_Q8_1, "q8_1", 32,  36,  0 },
    { GGML_TYPE_Q2_K, "q2_K", 256, 84,  0 },
    { GGML_TYPE_Q3_K, "q3_K", 256, 110, 0 },
    { GGML_TYPE_Q4_K, "q4_K", 256, 144, 1 },
    { GGML_TYPE_Q5_K, "q5_K", 256, 176, 0 },
    { GGML_TYPE_Q6_K, "q6_K", 256, 210, 1 },
    { GGML_TYPE_Q8_K, "q8_K", 256, 292, 0 },
    { GGML_TYPE_I8,   "i8",   1,   1,   0 },
    { GGML_TYPE_I16,  "i16",  1,   2,   0 },
    { GGML_TYPE_I32,  "i32",  1,   4,   0 },
    { GGML_TYPE_I64,  "i64",  1,   8,   0 },
    { GGML_TYPE_F64,  "f64",  1,   8,   0 },
    { GGML_TYPE_BF16, "bf16", 1,   2,   1 },
};

#define QUANT_NTRAITS (sizeof(quant_traits) / sizeof(quant_traits[0]))

static const quant_traits_t *
quant_traits_get(uint32_t type)
{
    size_t  i;

    for (i = 0; i < QUANT_NTRAITS; i++) {
        if (quant_traits[i].type == type) {
            return &quant_traits[i];
        }
    }
    return NULL;
}

int
quant_type_known(uint32_t type)
{
    return quant_traits_get(type) != NULL;
}

int
quant_type_supported(uint32_t type)
{
    const quant_traits_t  *t = quant_traits_get(type);

    return t != NULL && t->supported;
}

const char *
quant_type_name(uint32_t type)
{
    const quant_traits_t  *t = quant_traits_get(type);

    return t ? t->name : "unknown";
}

int
quant_block_size(uint32_t type)
{
    const quant_traits_t  *t = quant_traits_get(type);

    return t ? t->blck : 0;
}

size_t
quant_block_bytes(uint32_t type)
{
    const quant_traits_t  *t = quant_traits_get(type);

    return t ? t->bytes : 0;
}

size_t
quant_row_size(uint32_t type, int64_t n)
{
    const quant_traits_t  *t = quant_traits_get(type);

    if (t == NULL || n < 0 || n % t->blck != 0) {
        return 0;
    }
    return (size_t) (n / t->blck) * t->bytes;
}

/* --- scalar conversions -------------------------------------------------- */

static inline float
f32_from_bits(uint32_t u)
{
    float  f;

    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t
f32_to_bits(float f)
{
    uint32_t  u;

    memcpy(&u, &f, 4);
    return u;
}

float
quant_fp16_to_fp32(uint16_t h)
{
    uint32_t  sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t  exp = (h >> 10) & 0x1f;
    uint32_t  mant = h & 0x3ff;
    float     f;

    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 */
        f = (float) mant * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31) {
        return f32_from_bits(sign | 0x7f800000 | (mant << 13));
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t
quant_fp32_to_fp16(float f)
{
    uint32_t  x = f32_to_bits(f);
    uint32_t  sign = (x >> 16) & 0x8000;
    uint32_t  ax = x & 0x7fffffff;
    uint32_t  e, h;

    if (ax > 0x7f800000) {
        return (uint16_t) (sign | 0x7e00);
    }
    if (ax < 0x38800000) {
        /* below the smallest normal half: round to a multiple of 2^-24 */
        h = (uint32_t) nearbyintf(f32_from_bits(ax) * 16777216.0f);
        return (uint16_t) (sign | h);
    }
    e = ax - 0x38000000;
    h = (e + 0xfff + ((e >> 13) & 1)) >> 13;
    if (h >= 0x7c00) {
        h = 0x7c00;
    }
    return (uint16_t) (sign | h);
}

float
quant_bf16_to_fp32(uint16_t h)
{
    return f32_from_bits((uint32_t) h << 16);
}

uint16_t
quant_fp32_to_bf16(float f)
{
    uint32_t  x = f32_to_bits(f);

    if ((x & 0x7fffffff) > 0x7f800000) {
        return (uint16_t) ((x >> 16) | 0x40);
    }
    return (uint16_t) ((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* the kernels of one instruction set, picked once at run time */
typedef struct quant_kernels_s  quant_kernels_t;

struct quant_kernels_s {
    const char  *name;
    float      (*dot_f32)(const float *, const float *, int);
    float      (*dot_f16_f32)(const uint16_t *, const float *, int);
    void       (*axpy)(float, const float *, float *, int);
    float      (*dot_q8_0)(const void *, const void *, int);
    float      (*dot_q4_0_q8_0)(const void *, const void *, int);
    void       (*gemm_f32)(const float *, size_t, int, const float *, size_t,
                           int, float *, int, int, int);
    void       (*gemm_q8_0)(const block_q8_0 *, size_t, int,
                            const block_q8_0 *, size_t, int, float *, int,
                            int, int);
    void       (*attn_scores)(const float *, int, int, const float *, int,
                              int, int, float *, int);
    void       (*attn_values)(const float *, int, int, const float *, int,
                              int, int, float *, int);
    void       (*softmax)(float *, int, int, float);
    void       (*quantize_q8_0)(const float *, void *, int64_t);
    void       (*dequant_f16)(const uint16_t *, float *, int64_t);
    void       (*dequant_q4_K)(const block_q4_K *, float *, int64_t);
    void       (*dequant_q6_K)(const block_q6_K *, float *, int64_t);
    float      (*dot_q4_K_q8_K)(const void *, const void *, int);
    float      (*dot_q6_K_q8_K)(const void *, const void *, int);
};

static inline const quant_kernels_t *kernels(void);

/* --- dequantization ------------------------------------------------------ */

static void
dequantize_row_q8_0(const block_q8_0 *x, float *y, int64_t n)
{
    int64_t  i;
    int      j;
    float    d;

    for (i = 0; i < n / QK8_0; i++) {
        d = quant_fp16_to_fp32(x[i].d);
        for (j = 0; j < QK8_0; j++) {
            y[i * QK8_0 + j] = d * x[i].qs[j];
        }
    }
}

static void
dequantize_row_q4_0(const block_q4_0 *x, float *y, int64_t n)
{
    int64_t  i;
    int      j;
    float    d;

    for (i = 0; i < n / QK4_0; i++) {
        d = quant_fp16_to_fp32(x[i].d);
        for (j = 0; j < QK4_0 / 2; j++) {
            y[i * QK4_0 + j] = d * ((x[i].qs[j] & 0x0f) - 8);
            y[i * QK4_0 + j + 16] = d * ((x[i].qs[j] >> 4) - 8);
        }
    }
}

/* the j-th 6-bit (scale, min) pair of a Q4_K super-block */
static inline void
q4_K_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void
dequantize_row_f16(const uint16_t *h, float *y, int64_t n)
{
    int64_t  i;

    for (i = 0; i < n; i++) {
        y[i] = quant_fp16_to_fp32(h[i]);
    }
}

static void
dequantize_row_q4_K(const block_q4_K *x, float *y, int64_t n)
{
    int64_t         i;
    int             j, l, is;
    float           d, dmin, d1, m1, d2, m2;
    uint8_t         sc, m;
    const uint8_t  *q;

    for (i = 0; i < n / QK_K; i++) {
        d = quant_fp16_to_fp32(x[i].d);
        dmin = quant_fp16_to_fp32(x[i].dmin);
        q = x[i].qs;
        is = 0;
        /* 64 values per step: 32 low nibbles, then 32 high nibbles */
        for (j = 0; j < QK_K; j += 64) {
            q4_K_scale_min(is, x[i].scales, &sc, &m);
            d1 = d * sc;
            m1 = dmin * m;
            q4_K_scale_min(is + 1, x[i].scales, &sc, &m);
            d2 = d * sc;
            m2 = dmin * m;
            for (l = 0; l < 32; l++) {
                *y++ = d1 * (q[l] & 0x0f) - m1;
            }
            for (l = 0; l < 32; l++) {
                *y++ = d2 * (q[l] >> 4) - m2;
            }
            q += 32;
            is += 2;
        }
    }
}

static void
dequantize_row_q6_K(const block_q6_K *x, float *y, int64_t n)
{
    int64_t         i;
    int             h, l, is;
    float           d;
    const uint8_t  *ql, *qh;
    const int8_t   *sc;

    for (i = 0; i < n / QK_K; i++) {
        d = quant_fp16_to_fp32(x[i].d);
        ql = x[i].ql;
        qh = x[i].qh;
        sc = x[i].scales;
        /* two halves of 128: 64 ql bytes, 32 qh bytes, 8 scales each */
        for (h = 0; h < 2; h++) {
            for (l = 0; l < 32; l++) {
                is = l / 16;
                y[l] = d * sc[is] * (((ql[l] & 0x0f)
                                      | (((qh[l] >> 0) & 3) << 4)) - 32);
                y[l + 32] = d * sc[is + 2] * (((ql[l + 32] & 0x0f)
                                      | (((qh[l] >> 2) & 3) << 4)) - 32);
                y[l + 64] = d * sc[is + 4] * (((ql[l] >> 4)
                                      | (((qh[l] >> 4) & 3) << 4)) - 32);
                y[l + 96] = d * sc[is + 6] * (((ql[l + 32] >> 4)
                                      | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

int
quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    const uint16_t  *h = src;
    int64_t          i;

    if (quant_row_size(type, n) == 0 && n != 0) {
        return -1;
    }
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t) n * sizeof(float));
        return 0;
    case GGML_TYPE_F16:
        kernels()->dequant_f16(h, dst, n);
        return 0;
    case GGML_TYPE_BF16:
        for (i = 0; i < n; i++) {
            dst[i] = quant_bf16_to_fp32(h[i]);
        }
        return 0;
    case GGML_TYPE_Q8_0:
        dequantize_row_q8_0(src, dst, n);
        return 0;
    case GGML_TYPE_Q4_0:
        dequantize_row_q4_0(src, dst, n);
        return 0;
    case GGML_TYPE_Q4_K:
        kernels()->dequant_q4_K(src, dst, n);
        return 0;
    case GGML_TYPE_Q6_K:
        kernels()->dequant_q6_K(src, dst, n);
        return 0;
    default:
        return -1;
    }
}

/* --- quantization -------------------------------------------------------- */

static void
quantize_row_q8_0_generic(const float *x, void *dst, int64_t n)
{
    block_q8_0  *y = dst;
    int64_t      i;
    int          j;
    float        amax, d, id, v;

    for (i = 0; i < n / QK8_0; i++) {
        amax = 0.0f;
        for (j = 0; j < QK8_0; j++) {
            v = fabsf(x[i * QK8_0 + j]);
            amax = v > amax ? v : amax;
        }
        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = quant_fp32_to_fp16(d);
        for (j = 0; j < QK8_0; j++) {
            y[i].qs[j] = (int8_t) roundf(x[i * QK8_0 + j] * id);
        }
    }
}

void
quant_quantize_row_q8_K(const float *x, void *dst, int64_t n)
{
    block_q8_K  *y = dst;
    int64_t      i;
    int          j, g, q, sum;
    float        amax, v, id;

    for (i = 0; i < n / QK_K; i++) {
        amax = 0.0f;
        for (j = 0; j < QK_K; j++) {
            v = fabsf(x[i * QK_K + j]);
            amax = v > amax ? v : amax;
        }
        y[i].d = amax / 127.0f;
        id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (g = 0; g < QK_K / 16; g++) {
            sum = 0;
            for (j = g * 16; j < g * 16 + 16; j++) {
                q = (int) nearbyintf(x[i * QK_K + j] * id);
                q = q < -127 ? -127 : q > 127 ? 127 : q;
                y[i].qs[j] = (int8_t) q;
                sum += q;
            }
            y[i].bsums[g] = (int16_t) sum;
        }
    }
}

void
quant_quantize_row_q4_0(const float *x, void *dst, int64_t n)
{
    block_q4_0  *y = dst;
    int64_t      i;
    int          j, q0, q1;
    float        amax, max, d, id, v;

    for (i = 0; i < n / QK4_0; i++) {
        /* the signed value of largest magnitude maps to -8 */
        amax = 0.0f;
        max = 0.0f;
        for (j = 0; j < QK4_0; j++) {
            v = x[i * QK4_0 + j];
            if (fabsf(v) > amax) {
                amax = fabsf(v);
                max = v;
            }
        }
        d = max / -8.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = quant_fp32_to_fp16(d);
        for (j = 0; j < QK4_0 / 2; j++) {
            q0 = (int) (x[i * QK4_0 + j] * id + 8.5f);
            q1 = (int) (x[i * QK4_0 + j + 16] * id + 8.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            y[i].qs[j] = (uint8_t) (q0 | (q1 << 4));
        }
    }
}

void
quant_quantize_row_f16(const float *x, void *dst, int64_t n)
{
    uint16_t  *y = dst;
    int64_t    i;

    for (i = 0; i < n; i++) {
        y[i] = quant_fp32_to_fp16(x[i]);
    }
}

void
quant_quantize_row_bf16(const float *x, void *dst, int64_t n)
{
    uint16_t  *y = dst;
    int64_t    i;

    for (i = 0; i < n; i++) {
        y[i] = quant_fp32_to_bf16(x[i]);
    }
}

int
quant_quantize_row(uint32_t type, const float *x, void *dst, int64_t n)
{
    if (quant_row_size(type, n) == 0 && n != 0) {
        return -1;
    }
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(dst, x, (size_t) n * sizeof(float));
        return 0;
    case GGML_TYPE_F16:
        quant_quantize_row_f16(x, dst, n);
        return 0;
    case GGML_TYPE_BF16:
        quant_quantize_row_bf16(x, dst, n);
        return 0;
    case GGML_TYPE_Q8_0:
        /* the plain C rounding: files come out the same on every CPU */
        quantize_row_q8_0_generic(x, dst, n);
        return 0;
    case GGML_TYPE_Q4_0:
        quant_quantize_row_q4_0(x, dst, n);
        return 0;
    default:
        return -1;
    }
}

/* --- plain C kernels ----------------------------------------------------- */

static float
dot_f32_generic(const float *a, const float *b, int n)
{
    float  s[8] = { 0 };
    int    i, j;

    /* eight partial sums: the compiler may vectorize them */
    for (i = 0; i + 8 <= n; i += 8) {
        for (j = 0; j < 8; j++) {
            s[j] += a[i + j] * b[i + j];
        }
    }
    for (; i < n; i++) {
        s[0] += a[i] * b[i];
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void
axpy_generic(float a, const float *x, float *y, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        y[i] += a * x[i];
    }
}

static float
dot_f16_f32_generic(const uint16_t *a, const float *b, int n)
{
    float  s = 0.0f;
    int    i;

    for (i = 0; i < n; i++) {
        s += quant_fp16_to_fp32(a[i]) * b[i];
    }
    return s;
}

static float
dot_q8_0_generic(const void *va, const void *vb, int n)
{
    const block_q8_0  *a = va, *b = vb;
    float              s = 0.0f;
    int                i, j, sum;

    for (i = 0; i < n / QK8_0; i++) {
        sum = 0;
        for (j = 0; j < QK8_0; j++) {
            sum += a[i].qs[j] * b[i].qs[j];
        }
        s += (float) sum * quant_fp16_to_fp32(a[i].d)
             * quant_fp16_to_fp32(b[i].d);
    }
    return s;
}

static float
dot_q4_0_q8_0_generic(const void *va, const void *vb, int n)
{
    const block_q4_0  *a = va;
    const block_q8_0  *b = vb;
    float              s = 0.0f;
    int                i, j, sum;

    for (i = 0; i < n / QK4_0; i++) {
        sum = 0;
        for (j = 0; j < QK4_0 / 2; j++) {
            sum += ((a[i].qs[j] & 0x0f) - 8) * b[i].qs[j];
            sum += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
        }
        s += (float) sum * quant_fp16_to_fp32(a[i].d)
             * quant_fp16_to_fp32(b[i].d);
    }
    return s;
}

static void
attn_scores_generic(const float *q, int ldq, int nq, const float *kt,
    int ldk, int hd, int nk, float *s, int lds)
{
    int  t, d, k;

    for (t = 0; t < nq; t++) {
        for (k = 0; k < nk; k++) {
            s[(size_t) t * lds + k] = 0.0f;
        }
        for (d = 0; d < hd; d++) {
            for (k = 0; k < nk; k++) {
                s[(size_t) t * lds + k] += q[(size_t) t * ldq + d]
                                           * kt[(size_t) d * ldk + k];
            }
        }
    }
}

static void
attn_values_generic(const float *a, int lda, int nq, const float *v,
    int ldv, int hd, int nk, float *out, int ldo)
{
    int  t, d, k;

    for (t = 0; t < nq; t++) {
        for (d = 0; d < hd; d++) {
            out[(size_t) t * ldo + d] = 0.0f;
        }
        for (k = 0; k < nk; k++) {
            for (d = 0; d < hd; d++) {
                out[(size_t) t * ldo + d] += a[(size_t) t * lda + k]
                                             * v[(size_t) k * ldv + d];
            }
        }
    }
}

static void
softmax_generic(float *a, int n, int n_zero, float scale)
{
    float  mx = -INFINITY, sum = 0.0f;
    int    k;

    for (k = 0; k < n; k++) {
        a[k] *= scale;
        mx = a[k] > mx ? a[k] : mx;
    }
    for (k = 0; k < n; k++) {
        a[k] = expf(a[k] - mx);
        sum += a[k];
    }
    sum = 1.0f / sum;
    for (k = 0; k < n; k++) {
        a[k] *= sum;
    }
    for (; k < n_zero; k++) {
        a[k] = 0.0f;
    }
}

/*
 * K-quants against Q8_K: integer sums per sub-block, scaled by the 6-bit
 * (Q4_K) or 8-bit (Q6_K) sub-block scales; Q4_K's mins and Q6_K's offset
 * of 32 come out through the activations' 16-value sums.
 */
static float
dot_q4_K_q8_K_generic(const void *va, const void *vb, int n)
{
    const block_q4_K  *a = va;
    const block_q8_K  *b = vb;
    float              s = 0.0f;
    int                i, j, l, sumi, summ, dot;
    uint8_t            sc, m;
    const uint8_t     *q;
    const int8_t      *y;

    for (i = 0; i < n / QK_K; i++) {
        sumi = 0;
        summ = 0;
        q = a[i].qs;
        y = b[i].qs;
        for (j = 0; j < 8; j++) {
            q4_K_scale_min(j, a[i].scales, &sc, &m);
            dot = 0;
            for (l = 0; l < 32; l++) {
                dot += (j % 2 ? q[l] >> 4 : q[l] & 0x0f) * y[l];
            }
            sumi += sc * dot;
            summ += m * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
            y += 32;
            if (j % 2) {
                q += 32;
            }
        }
        s += b[i].d * (quant_fp16_to_fp32(a[i].d) * sumi
                       - quant_fp16_to_fp32(a[i].dmin) * summ);
    }
    return s;
}

/* the 6-bit value of element e (0..255) of a Q6_K block, offset by 32 */
static inline int
q6_K_u(const block_q6_K *x, int e)
{
    int  h = e / 128, r = e % 128, l = r % 32, qt = r / 32, lo, hi;

    lo = x->ql[h * 64 + l + (qt & 1) * 32];
    lo = qt < 2 ? lo & 0x0f : lo >> 4;
    hi = (x->qh[h * 32 + l] >> (2 * qt)) & 3;
    return lo | (hi << 4);
}

static float
dot_q6_K_q8_K_generic(const void *va, const void *vb, int n)
{
    const block_q6_K  *a = va;
    const block_q8_K  *b = vb;
    float              s = 0.0f;
    int                i, g, e, sumi, off, dot;

    for (i = 0; i < n / QK_K; i++) {
        sumi = 0;
        off = 0;
        /* 16 groups of 16 elements, group g has scale g (see dequant) */
        for (g = 0; g < 16; g++) {
            dot = 0;
            for (e = g * 16; e < g * 16 + 16; e++) {
                dot += q6_K_u(&a[i], e) * b[i].qs[e];
            }
            sumi += a[i].scales[g] * dot;
            off += a[i].scales[g] * b[i].bsums[g];
        }
        s += b[i].d * quant_fp16_to_fp32(a[i].d) * (sumi - 32 * off);
    }
    return s;
}

/* --- x86 kernels --------------------------------------------------------- */

#ifdef QUANT_X86

#define TARGET_AVX2    __attribute__((target("avx2,fma,f16c")))
#define TARGET_AVX512  __attribute__((target( \
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

TARGET_AVX2 static inline float
hsum256(__m256 v)
{
    __m128  s = _mm_add_ps(_mm256_castps256_ps128(v),
                           _mm256_extractf128_ps(v, 1));

    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET_AVX2 static inline float
fp16_avx2(uint16_t h)
{
    return _cvtsh_ss(h);
}

TARGET_AVX2 static float
dot_f32_avx2(const float *a, const float *b, int n)
{
    __m256  s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    float   s;
    int     i = 0;

    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i),
                             s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                             _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16),
                             _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24),
                             _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i),
                             s0);
    }
    s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) {
        s += a[i] * b[i];
    }
    return s;
}

TARGET_AVX2 static void
axpy_avx2(float a, const float *x, float *y, int n)
{
    __m256  av = _mm256_set1_ps(a);
    int     i = 0;

    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i),
                                                _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) {
        y[i] += a * x[i];
    }
}

TARGET_AVX2 static float
dot_f16_f32_avx2(const uint16_t *a, const float *b, int n)
{
    __m256  s0 = _mm256_setzero_ps(), s1 = s0;
    float   s;
    int     i = 0;

    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(
                 _mm_loadu_si128((const __m128i *) (a + i))),
                 _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(
                 _mm_loadu_si128((const __m128i *) (a + i + 8))),
                 _mm256_loadu_ps(b + i + 8), s1);
    }
    s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) {
        s += fp16_avx2(a[i]) * b[i];
    }
    return s;
}

/* signed x signed int8 dot of 32 lanes into 8 int32 (the |a|, sign(b, a)
   trick: maddubs wants one unsigned operand) */
TARGET_AVX2 static inline __m256i
mul_i8_avx2(__m256i a, __m256i b)
{
    __m256i  p = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a),
                                      _mm256_sign_epi8(b, a));

    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

TARGET_AVX512 static inline __m256i
mul_i8_vnni(__m256i a, __m256i b)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                               _mm256_sign_epi8(a, a),
                               _mm256_sign_epi8(b, a));
}

TARGET_AVX2 static inline __m256i
q4_0_unpack_avx2(const uint8_t *qs)
{
    __m128i  b = _mm_loadu_si128((const __m128i *) qs);
    __m128i  m = _mm_set1_epi8(0x0f);
    __m256i  v = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m),
                                  _mm_and_si128(b, m));

    return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

#define DOT_Q8_BODY(MUL)                                                     \
    const block_q8_0  *a = va, *b = vb;                                      \
    __m256             acc = _mm256_setzero_ps();                            \
    int                i;                                                    \
    for (i = 0; i < n / QK8_0; i++) {                                        \
        __m256i  p = MUL(_mm256_loadu_si256((const __m256i *) a[i].qs),      \
                         _mm256_loadu_si256((const __m256i *) b[i].qs));     \
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16_avx2(a[i].d)               \
                                             * fp16_avx2(b[i].d)),           \
                              _mm256_cvtepi32_ps(p), acc);                   \
    }                                                                        \
    return hsum256(acc);

#define DOT_Q4_BODY(MUL)                                                     \
    const block_q4_0  *a = va;                                               \
    const block_q8_0  *b = vb;                                               \
    __m256             acc = _mm256_setzero_ps();                            \
    int                i;                                                    \
    for (i = 0; i < n / QK4_0; i++) {                                        \
        __m256i  p = MUL(q4_0_unpack_avx2(a[i].qs),                          \
                         _mm256_loadu_si256((const __m256i *) b[i].qs));     \
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16_avx2(a[i].d)               \
                                             * fp16_avx2(b[i].d)),           \
                              _mm256_cvtepi32_ps(p), acc);                   \
    }                                                                        \
    return hsum256(acc);

TARGET_AVX2 static float
dot_q8_0_avx2(const void *va, const void *vb, int n)
{
    DOT_Q8_BODY(mul_i8_avx2)
}

TARGET_AVX512 static float
dot_q8_0_avx512(const void *va, const void *vb, int n)
{
    DOT_Q8_BODY(mul_i8_vnni)
}

TARGET_AVX2 static float
dot_q4_0_q8_0_avx2(const void *va, const void *vb, int n)
{
    DOT_Q4_BODY(mul_i8_avx2)
}

TARGET_AVX512 static float
dot_q4_0_q8_0_avx512(const void *va, const void *vb, int n)
{
    DOT_Q4_BODY(mul_i8_vnni)
}

/* --- AVX2 K-quant dots against Q8_K activations ------------------------- */

TARGET_AVX2 static inline int
hsum_epi32_avx2(__m256i v)
{
    __m128i  s = _mm_add_epi32(_mm256_castsi256_si128(v),
                               _mm256_extracti128_si256(v, 1));

    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

TARGET_AVX2 static float
dot_q4_K_q8_K_avx2(const void *va, const void *vb, int n)
{
    const block_q4_K  *a = va;
    const block_q8_K  *b = vb;
    float              s = 0.0f;
    int                i, g, j, summ;
    uint8_t            sc[8], m[8];
    __m256i            acc, q, lo, hi, mask = _mm256_set1_epi8(0x0f);

    for (i = 0; i < n / QK_K; i++) {
        summ = 0;
        for (j = 0; j < 8; j++) {
            q4_K_scale_min(j, a[i].scales, &sc[j], &m[j]);
            summ += m[j] * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
        }
        acc = _mm256_setzero_si256();
        for (g = 0; g < 4; g++) {
            q = _mm256_loadu_si256((const __m256i *) (a[i].qs + 32 * g));
            lo = _mm256_and_si256(q, mask);
            hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
            /* nibbles are unsigned, the activations signed: maddubs */
            lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(
                     (const __m256i *) (b[i].qs + 64 * g)));
            hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(
                     (const __m256i *) (b[i].qs + 64 * g + 32)));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(lo,
                      _mm256_set1_epi16(sc[2 * g])));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(hi,
                      _mm256_set1_epi16(sc[2 * g + 1])));
        }
        s += b[i].d * (_cvtsh_ss(a[i].d) * hsum_epi32_avx2(acc)
                       - _cvtsh_ss(a[i].dmin) * summ);
    }
    return s;
}

TARGET_AVX2 static float
dot_q6_K_q8_K_avx2(const void *va, const void *vb, int n)
{
    const block_q6_K  *a = va;
    const block_q8_K  *b = vb;
    float              s = 0.0f;
    int                i, h, t, g, off;
    const int8_t      *sc;
    __m256i            acc, l0, l1, qh, q[4], p, m4 = _mm256_set1_epi8(0x0f);
    __m256i            m2 = _mm256_set1_epi8(3);

    for (i = 0; i < n / QK_K; i++) {
        off = 0;
        for (g = 0; g < 16; g++) {
            off += a[i].scales[g] * b[i].bsums[g];
        }
        acc = _mm256_setzero_si256();
        for (h = 0; h < 2; h++) {
            l0 = _mm256_loadu_si256((const __m256i *) (a[i].ql + 64 * h));
            l1 = _mm256_loadu_si256((const __m256i *) (a[i].ql + 64 * h
                                                       + 32));
            qh = _mm256_loadu_si256((const __m256i *) (a[i].qh + 32 * h));
            /* the four quarters as unsigned 6-bit values (q + 32) */
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                       _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                       _mm256_slli_epi16(_mm256_and_si256(
                           _mm256_srli_epi16(qh, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(
                       _mm256_srli_epi16(l0, 4), m4),
                       _mm256_slli_epi16(_mm256_and_si256(
                           _mm256_srli_epi16(qh, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(
                       _mm256_srli_epi16(l1, 4), m4),
                       _mm256_slli_epi16(_mm256_and_si256(
                           _mm256_srli_epi16(qh, 6), m2), 4));
            sc = a[i].scales + 8 * h;
            for (t = 0; t < 4; t++) {
                p = _mm256_maddubs_epi16(q[t], _mm256_loadu_si256(
                        (const __m256i *) (b[i].qs + 128 * h + 32 * t)));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p,
                          _mm256_set_m128i(_mm_set1_epi16(sc[2 * t + 1]),
                                           _mm_set1_epi16(sc[2 * t]))));
            }
        }
        s += b[i].d * _cvtsh_ss(a[i].d)
             * (float) (hsum_epi32_avx2(acc) - 32 * off);
    }
    return s;
}

/* --- AVX2 dequantization (the per-row path of F16, Q4_K, Q6_K weights) */

TARGET_AVX2 static void
dequantize_row_f16_avx2(const uint16_t *h, float *y, int64_t n)
{
    int64_t  i = 0;

    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(
            _mm_loadu_si128((const __m128i *) (h + i))));
    }
    for (; i < n; i++) {
        y[i] = _cvtsh_ss(h[i]);
    }
}

/* 8 bytes of v (from byte offset off) as 8 floats */
TARGET_AVX2 static inline __m256
u8x8_to_ps(__m128i v)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
}

TARGET_AVX2 static void
dequantize_row_q4_K_avx2(const block_q4_K *x, float *y, int64_t n)
{
    int64_t         i;
    int             j, k, is;
    uint8_t         sc, m;
    float           d, dmin;
    __m256i         q, lo, hi, mask = _mm256_set1_epi8(0x0f);
    __m128i         part[4];
    __m256          d1, m1, d2, m2;
    const uint8_t  *qs;

    for (i = 0; i < n / QK_K; i++) {
        d = _cvtsh_ss(x[i].d);
        dmin = _cvtsh_ss(x[i].dmin);
        qs = x[i].qs;
        is = 0;
        for (j = 0; j < QK_K; j += 64) {
            q4_K_scale_min(is, x[i].scales, &sc, &m);
            d1 = _mm256_set1_ps(d * sc);
            m1 = _mm256_set1_ps(dmin * m);
            q4_K_scale_min(is + 1, x[i].scales, &sc, &m);
            d2 = _mm256_set1_ps(d * sc);
            m2 = _mm256_set1_ps(dmin * m);
            q = _mm256_loadu_si256((const __m256i *) qs);
            lo = _mm256_and_si256(q, mask);
            hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
            /* 32 low nibbles with (d1, m1), then 32 high with (d2, m2) */
            part[0] = _mm256_castsi256_si128(lo);
            part[1] = _mm_srli_si128(part[0], 8);
            part[2] = _mm256_extracti128_si256(lo, 1);
            part[3] = _mm_srli_si128(part[2], 8);
            for (k = 0; k < 4; k++) {
                _mm256_storeu_ps(y + 8 * k, _mm256_fmsub_ps(d1,
                                 u8x8_to_ps(part[k]), m1));
            }
            part[0] = _mm256_castsi256_si128(hi);
            part[1] = _mm_srli_si128(part[0], 8);
            part[2] = _mm256_extracti128_si256(hi, 1);
            part[3] = _mm_srli_si128(part[2], 8);
            for (k = 0; k < 4; k++) {
                _mm256_storeu_ps(y + 32 + 8 * k, _mm256_fmsub_ps(d2,
                                 u8x8_to_ps(part[k]), m2));
            }
            y += 64;
            qs += 32;
            is += 2;
        }
    }
}

TARGET_AVX2 static void
dequantize_row_q6_K_avx2(const block_q6_K *x, float *y, int64_t n)
{
    int64_t         i;
    int             h, l, is;
    float           d;
    const uint8_t  *ql, *qh;
    const int8_t   *sc;
    __m256i         a, b, c, e, t, f = _mm256_set1_epi32(0x0f);
    __m256i         three = _mm256_set1_epi32(3), off = _mm256_set1_epi32(32);

    for (i = 0; i < n / QK_K; i++) {
        d = _cvtsh_ss(x[i].d);
        ql = x[i].ql;
        qh = x[i].qh;
        sc = x[i].scales;
        for (h = 0; h < 2; h++) {
            for (l = 0; l < 32; l += 8) {
                is = l / 16;
                a = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                        (const __m128i *) (ql + l)));
                b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                        (const __m128i *) (ql + l + 32)));
                t = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                        (const __m128i *) (qh + l)));
                /* the four quarters: low / high nibble of ql[l] and
                   ql[l + 32], each with two bits of qh[l] */
                c = _mm256_sub_epi32(_mm256_or_si256(_mm256_and_si256(a, f),
                        _mm256_slli_epi32(_mm256_and_si256(t, three), 4)),
                        off);
                e = _mm256_sub_epi32(_mm256_or_si256(_mm256_and_si256(b, f),
                        _mm256_slli_epi32(_mm256_and_si256(
                            _mm256_srli_epi32(t, 2), three), 4)), off);
                _mm256_storeu_ps(y + l, _mm256_mul_ps(
                    _mm256_set1_ps(d * sc[is]), _mm256_cvtepi32_ps(c)));
                _mm256_storeu_ps(y + l + 32, _mm256_mul_ps(
                    _mm256_set1_ps(d * sc[is + 2]), _mm256_cvtepi32_ps(e)));
                c = _mm256_sub_epi32(_mm256_or_si256(_mm256_srli_epi32(a, 4),
                        _mm256_slli_epi32(_mm256_and_si256(
                            _mm256_srli_epi32(t, 4), three), 4)), off);
                e = _mm256_sub_epi32(_mm256_or_si256(_mm256_srli_epi32(b, 4),
                        _mm256_slli_epi32(_mm256_and_si256(
                            _mm256_srli_epi32(t, 6), three), 4)), off);
                _mm256_storeu_ps(y + l + 64, _mm256_mul_ps(
                    _mm256_set1_ps(d * sc[is + 4]), _mm256_cvtepi32_ps(c)));
                _mm256_storeu_ps(y + l + 96, _mm256_mul_ps(
                    _mm256_set1_ps(d * sc[is + 6]), _mm256_cvtepi32_ps(e)));
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

/* --- AVX2 attention: as the AVX-512 kernels, 8 lanes, fmaf() tails -------- */

TARGET_AVX2 static void
attn_scores_avx2(const float *q, int ldq, int nq, const float *kt,
    int ldk, int hd, int nk, float *s, int lds)
{
    __m256  acc[4], kv;
    float   a;
    int     k, d, t;

    if (nq > 4) {
        attn_scores_generic(q, ldq, nq, kt, ldk, hd, nk, s, lds);
        return;
    }
    for (k = 0; k + 8 <= nk; k += 8) {
        for (t = 0; t < 4; t++) {
            acc[t] = _mm256_setzero_ps();
        }
        for (d = 0; d < hd; d++) {
            kv = _mm256_loadu_ps(kt + (size_t) d * ldk + k);
#pragma GCC unroll 4
            for (t = 0; t < 4; t++) {
                if (t < nq) {
                    acc[t] = _mm256_fmadd_ps(
                        _mm256_set1_ps(q[(size_t) t * ldq + d]), kv, acc[t]);
                }
            }
        }
        for (t = 0; t < nq; t++) {
            _mm256_storeu_ps(s + (size_t) t * lds + k, acc[t]);
        }
    }
    /* the same fused chain per key, so a key's score does not depend on
       whether it fell in a full group of 8 */
    for (; k < nk; k++) {
        for (t = 0; t < nq; t++) {
            a = 0.0f;
            for (d = 0; d < hd; d++) {
                a = fmaf(q[(size_t) t * ldq + d], kt[(size_t) d * ldk + k], a);
            }
            s[(size_t) t * lds + k] = a;
        }
    }
}

TARGET_AVX2 static void
attn_values_avx2(const float *a, int lda, int nq, const float *v, int ldv,
    int hd, int nk, float *out, int ldo)
{
    __m256  acc[4][4], vv[4], ab;
    int     dc, nd, k, j, t;

    if (nq > 4 || hd % 8 != 0) {
        attn_values_generic(a, lda, nq, v, ldv, hd, nk, out, ldo);
        return;
    }
    for (dc = 0; dc < hd; dc += 32) {
        nd = (hd - dc < 32 ? hd - dc : 32) / 8;
        for (t = 0; t < 4; t++) {
            vv[t] = _mm256_setzero_ps();
            for (j = 0; j < 4; j++) {
                acc[t][j] = _mm256_setzero_ps();
            }
        }
        for (k = 0; k < nk; k++) {
#pragma GCC unroll 4
            for (j = 0; j < 4; j++) {
                if (j < nd) {
                    vv[j] = _mm256_loadu_ps(v + (size_t) k * ldv + dc
                                            + 8 * j);
                }
            }
#pragma GCC unroll 4
            for (t = 0; t < 4; t++) {
                if (t < nq) {
                    ab = _mm256_set1_ps(a[(size_t) t * lda + k]);
#pragma GCC unroll 4
                    for (j = 0; j < 4; j++) {
                        if (j < nd) {
                            acc[t][j] = _mm256_fmadd_ps(ab, vv[j],
                                                        acc[t][j]);
                        }
                    }
                }
            }
        }
        for (t = 0; t < nq; t++) {
            for (j = 0; j < nd; j++) {
                _mm256_storeu_ps(out + (size_t) t * ldo + dc + 8 * j,
                                 acc[t][j]);
            }
        }
    }
}

/* exp(x) for x <= 0: 2^n * p(r) with the power of two built in the
   exponent bits */
TARGET_AVX2 static inline __m256
exp_avx2(__m256 x)
{
    __m256   n, r, p, live;
    __m256i  e;

    /* below -87 the result is under FLT_MIN: 0, as expf flushes it */
    live = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                           _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), live);
}

TARGET_AVX2 static void
softmax_avx2(float *a, int n, int n_zero, float scale)
{
    float   mx = -INFINITY, sum = 0.0f, buf[8];
    __m256  mv, v, sv = _mm256_setzero_ps();
    int     k, i;

    for (k = 0; k < n; k++) {
        a[k] *= scale;
        mx = a[k] > mx ? a[k] : mx;
    }
    mv = _mm256_set1_ps(mx);
    for (k = 0; k + 8 <= n; k += 8) {
        v = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(a + k), mv));
        _mm256_storeu_ps(a + k, v);
        sv = _mm256_add_ps(sv, v);
    }
    if (k < n) {
        /* the tail through the same polynomial, padded */
        for (i = 0; i < 8; i++) {
            buf[i] = k + i < n ? a[k + i] : mx;
        }
        v = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(buf), mv));
        _mm256_storeu_ps(buf, v);
        for (i = 0; k + i < n; i++) {
            a[k + i] = buf[i];
            sum += buf[i];
        }
    }
    sum += hsum256(sv);
    sum = 1.0f / sum;
    for (k = 0; k < n; k++) {
        a[k] *= sum;
    }
    for (; k < n_zero; k++) {
        a[k] = 0.0f;
    }
}

/*
 * Keys go across the 16 lanes: no horizontal sums; the tail is masked so
 * every key sees the same sequence of FMAs. The bodies below are written
 * for a constant number of queries (inlined with 4 or 1), so that their
 * accumulators stay in registers: with a run-time count GCC keeps them on
 * the stack, and every FMA then waits on a store and a load.
 */
TARGET_AVX512 static inline __attribute__((always_inline)) void
attn_scores_avx512_n(const int NQ, const float *q, int ldq, const float *kt,
    int ldk, int hd, int nk, float *s, int lds)
{
    __m512     acc[4], kv;
    __mmask16  m;
    int        k, d, t;

    for (k = 0; k < nk; k += 16) {
        m = nk - k >= 16 ? 0xffff : (__mmask16) ((1u << (nk - k)) - 1);
#pragma GCC unroll 4
        for (t = 0; t < NQ; t++) {
            acc[t] = _mm512_setzero_ps();
        }
        for (d = 0; d < hd; d++) {
            kv = _mm512_maskz_loadu_ps(m, kt + (size_t) d * ldk + k);
    #pragma GCC unroll 4
        for (t = 0; t < NQ; t++) {
                acc[t] = _mm512_fmadd_ps(
                    _mm512_set1_ps(q[(size_t) t * ldq + d]), kv, acc[t]);
            }
        }
#pragma GCC unroll 4
        for (t = 0; t < NQ; t++) {
            _mm512_mask_storeu_ps(s + (size_t) t * lds + k, m, acc[t]);
        }
    }
}

TARGET_AVX512 static void
attn_scores_avx512(const float *q, int ldq, int nq, const float *kt,
    int ldk, int hd, int nk, float *s, int lds)
{
    int  t;

    if (nq > 4) {
        attn_scores_generic(q, ldq, nq, kt, ldk, hd, nk, s, lds);
        return;
    }
    if (nq == 4) {
        attn_scores_avx512_n(4, q, ldq, kt, ldk, hd, nk, s, lds);
        return;
    }
    for (t = 0; t < nq; t++) {
        attn_scores_avx512_n(1, q + (size_t) t * ldq, ldq, kt, ldk, hd, nk,
                             s + (size_t) t * lds, lds);
    }
}

/* 16 dims a register, ND registers (64 dims at most) a pass over V */
TARGET_AVX512 static inline __attribute__((always_inline)) void
attn_values_avx512_n(const int NQ, const int ND, const float *a, int lda,
    const float *v, int ldv, int nk, float *out, int ldo)
{
    __m512  acc[4][4], vv[4], ab;
    int     k, j, t;

#pragma GCC unroll 4
    for (t = 0; t < NQ; t++) {
#pragma GCC unroll 4
        for (j = 0; j < ND; j++) {
            acc[t][j] = _mm512_setzero_ps();
        }
    }
    for (k = 0; k < nk; k++) {
#pragma GCC unroll 4
        for (j = 0; j < ND; j++) {
            vv[j] = _mm512_loadu_ps(v + (size_t) k * ldv + 16 * j);
        }
#pragma GCC unroll 4
        for (t = 0; t < NQ; t++) {
            ab = _mm512_set1_ps(a[(size_t) t * lda + k]);
#pragma GCC unroll 4
            for (j = 0; j < ND; j++) {
                acc[t][j] = _mm512_fmadd_ps(ab, vv[j], acc[t][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (t = 0; t < NQ; t++) {
#pragma GCC unroll 4
        for (j = 0; j < ND; j++) {
            _mm512_storeu_ps(out + (size_t) t * ldo + 16 * j, acc[t][j]);
        }
    }
}

TARGET_AVX512 static void
attn_values_avx512(const float *a, int lda, int nq, const float *v,
    int ldv, int hd, int nk, float *out, int ldo)
{
    int  dc, t;

    if (nq > 4 || hd % 16 != 0) {
        attn_values_generic(a, lda, nq, v, ldv, hd, nk, out, ldo);
        return;
    }
    for (dc = 0; dc < hd; dc += 64) {
        if (hd - dc >= 64 && nq == 4) {
            attn_values_avx512_n(4, 4, a, lda, v + dc, ldv, nk, out + dc,
                                 ldo);
            continue;
        }
        for (t = 0; t < nq; t++) {
            switch ((hd - dc < 64 ? hd - dc : 64) / 16) {
            case 1:
                attn_values_avx512_n(1, 1, a + (size_t) t * lda, lda,
                                     v + dc, ldv, nk,
                                     out + (size_t) t * ldo + dc, ldo);
                break;
            case 2:
                attn_values_avx512_n(1, 2, a + (size_t) t * lda, lda,
                                     v + dc, ldv, nk,
                                     out + (size_t) t * ldo + dc, ldo);
                break;
            case 3:
                attn_values_avx512_n(1, 3, a + (size_t) t * lda, lda,
                                     v + dc, ldv, nk,
                                     out + (size_t) t * ldo + dc, ldo);
                break;
            default:
                attn_values_avx512_n(1, 4, a + (size_t) t * lda, lda,
                                     v + dc, ldv, nk,
                                     out + (size_t) t * ldo + dc, ldo);
                break;
            }
        }
    }
}

/* exp(x) for x <= 0 (softmax arguments): 2^n * p(r), |r| <= ln2 / 2,
   p the degree-6 Taylor polynomial */
TARGET_AVX512 static inline __m512
exp_avx512(__m512 x)
{
    __m512  n, r, p;

    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

TARGET_AVX512 static void
softmax_avx512(float *a, int n, int n_zero, float scale)
{
    __m512     mx = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
    __m512     sc = _mm512_set1_ps(scale), v, mv;
    __mmask16  m;
    float      inv;
    int        k;

    for (k = 0; k < n; k += 16) {
        m = n - k >= 16 ? 0xffff : (__mmask16) ((1u << (n - k)) - 1);
        v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a + k), sc);
        _mm512_mask_storeu_ps(a + k, m, v);
        mx = _mm512_mask_max_ps(mx, m, mx, v);
    }
    mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    for (k = 0; k < n; k += 16) {
        m = n - k >= 16 ? 0xffff : (__mmask16) ((1u << (n - k)) - 1);
        v = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + k), mv));
        _mm512_mask_storeu_ps(a + k, m, v);
        sum = _mm512_mask_add_ps(sum, m, sum, v);
    }
    inv = 1.0f / _mm512_reduce_add_ps(sum);
    for (k = 0; k < n; k += 16) {
        m = n - k >= 16 ? 0xffff : (__mmask16) ((1u << (n - k)) - 1);
        _mm512_mask_storeu_ps(a + k, m, _mm512_mul_ps(
            _mm512_maskz_loadu_ps(m, a + k), _mm512_set1_ps(inv)));
    }
    for (k = n; k < n_zero; k++) {
        a[k] = 0.0f;
    }
}

/* activations to Q8_0 (ties round to even here, away from zero in C) */
TARGET_AVX512 static void
quantize_row_q8_0_avx512(const float *x, void *dst, int64_t n)
{
    block_q8_0  *y = dst;
    __m512       v0, v1, idv;
    int64_t      i;
    float        amax, d, id;

    for (i = 0; i < n / QK8_0; i++) {
        v0 = _mm512_loadu_ps(x + i * QK8_0);
        v1 = _mm512_loadu_ps(x + i * QK8_0 + 16);
        amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0),
                                                  _mm512_abs_ps(v1)));
        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = quant_fp32_to_fp16(d);
        idv = _mm512_set1_ps(id);
        _mm_storeu_si128((__m128i *) y[i].qs, _mm512_cvtsepi32_epi8(
            _mm512_cvtps_epi32(_mm512_mul_ps(v0, idv))));
        _mm_storeu_si128((__m128i *) (y[i].qs + 16), _mm512_cvtsepi32_epi8(
            _mm512_cvtps_epi32(_mm512_mul_ps(v1, idv))));
    }
}

#endif /* QUANT_X86 */

/* --- dispatch ------------------------------------------------------------ */


static void gemm_f32_generic(const float *w, size_t ws, int cols,
    const float *x, size_t xs, int n, float *out, int ldo, int r0, int r1);
static void gemm_q8_0_generic(const block_q8_0 *w, size_t ws, int cols,
    const block_q8_0 *x, size_t xs, int n, float *out, int ldo, int r0,
    int r1);
#ifdef QUANT_X86
static void gemm_f32_avx512(const float *w, size_t ws, int cols,
    const float *x, size_t xs, int n, float *out, int ldo, int r0, int r1);
static void gemm_f32_avx2(const float *w, size_t ws, int cols,
    const float *x, size_t xs, int n, float *out, int ldo, int r0, int r1);
static void gemm_q8_0_avx512(const block_q8_0 *w, size_t ws, int cols,
    const block_q8_0 *x, size_t xs, int n, float *out, int ldo, int r0,
    int r1);
static void gemm_q8_0_avx2(const block_q8_0 *w, size_t ws, int cols,
    const block_q8_0 *x, size_t xs, int n, float *out, int ldo, int r0,
    int r1);
#endif

static const quant_kernels_t  kernels_generic = {
    "generic", dot_f32_generic, dot_f16_f32_generic, axpy_generic,
    dot_q8_0_generic, dot_q4_0_q8_0_generic, gemm_f32_generic,
    gemm_q8_0_generic, attn_scores_generic, attn_values_generic,
    softmax_generic, quantize_row_q8_0_generic, dequantize_row_f16,
    dequantize_row_q4_K, dequantize_row_q6_K, dot_q4_K_q8_K_generic,
    dot_q6_K_q8_K_generic
};

#ifdef QUANT_X86
static const quant_kernels_t  kernels_avx2 = {
    "avx2", dot_f32_avx2, dot_f16_f32_avx2, axpy_avx2, dot_q8_0_avx2,
    dot_q4_0_q8_0_avx2, gemm_f32_avx2, gemm_q8_0_avx2,
    attn_scores_avx2, attn_values_avx2, softmax_avx2,
    quantize_row_q8_0_generic, dequantize_row_f16_avx2,
    dequantize_row_q4_K_avx2, dequantize_row_q6_K_avx2, dot_q4_K_q8_K_avx2,
    dot_q6_K_q8_K_avx2
};

static const quant_kernels_t  kernels_avx512 = {
    "avx512", dot_f32_avx2, dot_f16_f32_avx2, axpy_avx2,
    dot_q8_0_avx512, dot_q4_0_q8_0_avx512, gemm_f32_avx512,
    gemm_q8_0_avx512, attn_scores_avx512, attn_values_avx512,
    softmax_avx512, quantize_row_q8_0_avx512, dequantize_row_f16_avx2,
    dequantize_row_q4_K_avx2, dequantize_row_q6_K_avx2, dot_q4_K_q8_K_avx2,
    dot_q6_K_q8_K_avx2
};
#endif

static const quant_kernels_t  *kern = &kernels_generic;
static const quant_kernels_t  *kern_best = &kernels_generic;
static pthread_once_t          kern_once = PTHREAD_ONCE_INIT;

static void
quant_kernels_init(void)
{
#ifdef QUANT_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vnni")
        && __builtin_cpu_supports("fma"))
    {
        kern_best = &kernels_avx512;
    } else if (__builtin_cpu_supports("avx2")
               && __builtin_cpu_supports("fma"))
    {
        kern_best = &kernels_avx2;
    }
#endif
    kern = kern_best;
}

static inline const quant_kernels_t *
kernels(void)
{
    pthread_once(&kern_once, quant_kernels_init);
    return kern;
}

const char *
quant_simd_name(void)
{
    return kernels()->name;
}

void
quant_force_generic(int on)
{
    kernels();
    kern = on ? &kernels_generic : kern_best;
}

int
quant_set_kernels(const char *name)
{
    kernels();
    if (name == NULL) {
        kern = kern_best;
        return 0;
    }
    if (strcmp(name, "generic") == 0) {
        kern = &kernels_generic;
        return 0;
    }
#ifdef QUANT_X86
    if (strcmp(name, "avx2") == 0 && kern_best != &kernels_generic) {
        kern = &kernels_avx2;
        return 0;
    }
    if (strcmp(name, "avx512") == 0 && kern_best == &kernels_avx512) {
        kern = &kernels_avx512;
        return 0;
    }
#endif
    return -1;
}

float
quant_dot_f32(const float *a, const float *b, int n)
{
    return kernels()->dot_f32(a, b, n);
}

float
quant_dot_f16_f32(const uint16_t *a, const float *b, int n)
{
    return kernels()->dot_f16_f32(a, b, n);
}

float
quant_dot_q8_0(const void *a, const void *b, int n)
{
    return kernels()->dot_q8_0(a, b, n);
}

float
quant_dot_q4_0_q8_0(const void *a, const void *b, int n)
{
    return kernels()->dot_q4_0_q8_0(a, b, n);
}

void
quant_axpy(float a, const float *x, float *y, int n)
{
    kernels()->axpy(a, x, y, n);
}

void
quant_attn_scores(const float *q, int ldq, int nq, const float *kt, int ldk,
    int hd, int nk, float *s, int lds)
{
    kernels()->attn_scores(q, ldq, nq, kt, ldk, hd, nk, s, lds);
}

void
quant_attn_values(const float *a, int lda, int nq, const float *v, int ldv,
    int hd, int nk, float *out, int ldo)
{
    kernels()->attn_values(a, lda, nq, v, ldv, hd, nk, out, ldo);
}

void
quant_quantize_row_q8_0(const float *x, void *dst, int64_t n)
{
    kernels()->quantize_q8_0(x, dst, n);
}

void
quant_softmax(float *a, int n, int n_zero, float scale)
{
    kernels()->softmax(a, n, n_zero, scale);
}

float
quant_dot_q4_K_q8_K(const void *a, const void *b, int n)
{
    return kernels()->dot_q4_K_q8_K(a, b, n);
}

float
quant_dot_q6_K_q8_K(const void *a, const void *b, int n)
{
    return kernels()->dot_q6_K_q8_K(a, b, n);
}

uint32_t
quant_vec_type(uint32_t wtype)
{
    switch (wtype) {
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        return GGML_TYPE_Q8_0;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K:
        return GGML_TYPE_Q8_K;
    default:
        return GGML_TYPE_F32;
    }
}

/* --- matrix kernels ------------------------------------------------------ */

/*
 * Tokens are taken in chunks whose activations fit in L2, and for each chunk
 * every weight row of the range is streamed once; inside, tiles of rows x
 * tokens keep their partial sums in registers.
 */
#define GEMM_L2_BYTES  (384 * 1024)

static int
gemm_chunk(size_t xrow_bytes)
{
    size_t  c = GEMM_L2_BYTES / (xrow_bytes ? xrow_bytes : 1);

    return c < 8 ? 8 : c > 512 ? 512 : (int) c;
}

static void
gemm_f32_generic(const float *w, size_t ws, int cols, const float *x,
    size_t xs, int n, float *out, int ldo, int r0, int r1)
{
    int  t0, t1, r, t;

    for (t0 = 0; t0 < n; t0 += gemm_chunk(xs)) {
        t1 = t0 + gemm_chunk(xs) < n ? t0 + gemm_chunk(xs) : n;
        for (r = r0; r < r1; r++) {
            const float  *wr = (const float *) ((const char *) w + r * ws);

            for (t = t0; t < t1; t++) {
                out[(size_t) t * ldo + r] = dot_f32_generic(wr,
                    (const float *) ((const char *) x + t * xs), cols);
            }
        }
    }
}

static void
gemm_q8_0_generic(const block_q8_0 *w, size_t ws, int cols,
    const block_q8_0 *x, size_t xs, int n, float *out, int ldo, int r0,
    int r1)
{
    int  t0, t1, r, t;

    for (t0 = 0; t0 < n; t0 += gemm_chunk(xs)) {
        t1 = t0 + gemm_chunk(xs) < n ? t0 + gemm_chunk(xs) : n;
        for (r = r0; r < r1; r++) {
            const void  *wr = (const char *) w + r * ws;

            for (t = t0; t < t1; t++) {
                out[(size_t) t * ldo + r] = dot_q8_0_generic(wr,
                    (const char *) x + t * xs, cols);
            }
        }
    }
}

#ifdef QUANT_X86

#define ROWP(base, stride, i)  ((const void *) ((const char *) (base)        \
                                               + (size_t) (i) * (stride)))

/* F32_RT rows x F32_TT tokens of f32, 16-wide: 24 accumulators, 10
   loads per 24 FMAs */
#define F32_RT  6
#define F32_TT  4

TARGET_AVX512 static void
tile_f32_avx512(const float *const *wr, const float *const *xr, int cols,
    float *out, int ldo, int nr, int nt)
{
    __m512  acc[F32_RT][F32_TT];
    __m512  wv[F32_RT], xv;
    int     i, r, t, k;
    float   s;

    for (r = 0; r < F32_RT; r++) {
        for (t = 0; t < F32_TT; t++) {
            acc[r][t] = _mm512_setzero_ps();
        }
    }
    for (k = 0; k + 16 <= cols; k += 16) {
#pragma GCC unroll 8
        for (r = 0; r < F32_RT; r++) {
            wv[r] = _mm512_loadu_ps(wr[r] + k);
        }
#pragma GCC unroll 8
        for (t = 0; t < F32_TT; t++) {
            xv = _mm512_loadu_ps(xr[t] + k);
#pragma GCC unroll 8
            for (r = 0; r < F32_RT; r++) {
                acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
    }
    for (r = 0; r < nr; r++) {
        for (t = 0; t < nt; t++) {
            s = _mm512_reduce_add_ps(acc[r][t]);
            for (i = k; i < cols; i++) {
                s += wr[r][i] * xr[t][i];
            }
            out[(size_t) t * ldo + r] = s;
        }
    }
}

/* 2 rows x 4 tokens of f32, 8-wide (16 ymm registers) */
TARGET_AVX2 static void
tile_f32_avx2(const float *const *wr, const float *const *xr, int cols,
    float *out, int ldo, int nr, int nt)
{
    __m256  acc[2][4];
    __m256  wv[2], xv;
    int     i, r, t, k;
    float   s;

    for (r = 0; r < 2; r++) {
        for (t = 0; t < 4; t++) {
            acc[r][t] = _mm256_setzero_ps();
        }
    }
    for (k = 0; k + 8 <= cols; k += 8) {
#pragma GCC unroll 2
        for (r = 0; r < 2; r++) {
            wv[r] = _mm256_loadu_ps(wr[r] + k);
        }
#pragma GCC unroll 4
        for (t = 0; t < 4; t++) {
            xv = _mm256_loadu_ps(xr[t] + k);
#pragma GCC unroll 2
            for (r = 0; r < 2; r++) {
                acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
    }
    for (r = 0; r < nr; r++) {
        for (t = 0; t < nt; t++) {
            s = hsum256(acc[r][t]);
            for (i = k; i < cols; i++) {
                s += wr[r][i] * xr[t][i];
            }
            out[(size_t) t * ldo + r] = s;
        }
    }
}

/*
 * The tile drivers: rows and tokens past the end repeat the last valid one
 * so the tile code stays branch-free; only valid results are stored.
 */
#define GEMM_DRIVER(NAME, TILE, RT, TT, WT, XT, ROWDOT)                      \
static void                                                                  \
NAME(const WT *w, size_t ws, int cols, const XT *x, size_t xs, int n,        \
    float *out, int ldo, int r0, int r1)                                     \
{                                                                            \
    const WT  *wr[RT];                                                       \
    const XT  *xr[TT];                                                       \
    int        t0, t1, r, t, i, nr, nt, ch = gemm_chunk(xs);                 \
                                                                             \
    if (n == 1) {                                                            \
        for (r = r0; r < r1; r++) {                                          \
            out[r] = ROWDOT(ROWP(w, ws, r), x, cols);                        \
        }                                                                    \
        return;                                                              \
    }                                                                        \
    for (t0 = 0; t0 < n; t0 += ch) {                                         \
        t1 = t0 + ch < n ? t0 + ch : n;                                      \
        for (r = r0; r < r1; r += RT) {                                      \
            nr = r1 - r < RT ? r1 - r : RT;                                  \
            for (i = 0; i < RT; i++) {                                       \
                wr[i] = ROWP(w, ws, r + (i < nr ? i : nr - 1));              \
            }                                                                \
            for (t = t0; t < t1; t += TT) {                                  \
                nt = t1 - t < TT ? t1 - t : TT;                              \
                for (i = 0; i < TT; i++) {                                   \
                    xr[i] = ROWP(x, xs, t + (i < nt ? i : nt - 1));          \
                }                                                            \
                TILE(wr, xr, cols, out + (size_t) t * ldo + r, ldo, nr, nt); \
            }                                                                \
        }                                                                    \
    }                                                                        \
}

GEMM_DRIVER(gemm_f32_avx512_tiles, tile_f32_avx512, F32_RT, F32_TT, float,
            float, dot_f32_avx2)

/*
 * One token (decode): four rows at a time, so four streams of weights are
 * in flight at once; a row alone leaves the memory system idle between
 * its misses.
 */
TARGET_AVX512 static void
gemm_f32_avx512(const float *w, size_t ws, int cols, const float *x,
    size_t xs, int n, float *out, int ldo, int r0, int r1)
{
    __m512        a[4][2], xv;
    const float  *wr[4];
    int           r, i, k;

    if (n != 1 || cols % 32 != 0) {
        gemm_f32_avx512_tiles(w, ws, cols, x, xs, n, out, ldo, r0, r1);
        return;
    }
    for (r = r0; r + 4 <= r1; r += 4) {
#pragma GCC unroll 4
        for (k = 0; k < 4; k++) {
            wr[k] = ROWP(w, ws, r + k);
            a[k][0] = _mm512_setzero_ps();
            a[k][1] = _mm512_setzero_ps();
        }
        for (i = 0; i < cols; i += 32) {
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                xv = _mm512_loadu_ps(x + i + 16 * h);
#pragma GCC unroll 4
                for (k = 0; k < 4; k++) {
                    a[k][h] = _mm512_fmadd_ps(
                        _mm512_loadu_ps(wr[k] + i + 16 * h), xv, a[k][h]);
                }
            }
        }
#pragma GCC unroll 4
        for (k = 0; k < 4; k++) {
            out[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(a[k][0],
                                                            a[k][1]));
        }
    }
    for ( /* void */ ; r < r1; r++) {
        out[r] = dot_f32_avx2(ROWP(w, ws, r), x, cols);
    }
}
GEMM_DRIVER(gemm_f32_avx2, tile_f32_avx2, 2, 4, float, float, dot_f32_avx2)

/*
 * Q8_0 x Q8_0, AVX-512 VNNI, 4 rows x 8 tokens. Two tokens share one
 * 512-bit register (one block each) against a weight block broadcast to
 * both halves. dpbusd multiplies unsigned by signed bytes, so the
 * activations are offset to x + 128 (a sign-bit flip) and the accumulator
 * starts at -128 * (sum of the weights), computed once per weight block:
 * the integer lanes come out exactly as sum(x * w). The fp16 scales are
 * applied per block in float.
 */
TARGET_AVX512 static void
tile_q8_0_avx512(const block_q8_0 *const *wr, const block_q8_0 *const *xr,
    int cols, float *out, int ldo, int nr, int nt)
{
    __m512   acc[4][4];
    __m512i  xu[4], w, corr, p;
    __m512   dx[4], dw;
    __m512i  flip = _mm512_set1_epi8((char) 0x80);
    __m512i  c128 = _mm512_set1_epi8((char) 0x80);
    float    res[16];
    int      b, r, t, nb = cols / QK8_0;

    for (r = 0; r < 4; r++) {
        for (t = 0; t < 4; t++) {
            acc[r][t] = _mm512_setzero_ps();
        }
    }
    for (b = 0; b < nb; b++) {
#pragma GCC unroll 4
        for (t = 0; t < 4; t++) {
            xu[t] = _mm512_xor_si512(_mm512_inserti64x4(
                        _mm512_castsi256_si512(_mm256_loadu_si256(
                            (const __m256i *) xr[2 * t][b].qs)),
                        _mm256_loadu_si256(
                            (const __m256i *) xr[2 * t + 1][b].qs), 1),
                        flip);
            dx[t] = _mm512_insertf32x8(_mm512_castps256_ps512(
                        _mm256_set1_ps(_cvtsh_ss(xr[2 * t][b].d))),
                        _mm256_set1_ps(_cvtsh_ss(xr[2 * t + 1][b].d)), 1);
        }
#pragma GCC unroll 4
        for (r = 0; r < 4; r++) {
            w = _mm512_broadcast_i64x4(
                    _mm256_loadu_si256((const __m256i *) wr[r][b].qs));
            corr = _mm512_sub_epi32(_mm512_setzero_si512(),
                       _mm512_dpbusd_epi32(_mm512_setzero_si512(), c128, w));
            dw = _mm512_set1_ps(_cvtsh_ss(wr[r][b].d));
#pragma GCC unroll 4
            for (t = 0; t < 4; t++) {
                p = _mm512_dpbusd_epi32(corr, xu[t], w);
                acc[r][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx[t]),
                                            _mm512_cvtepi32_ps(p), acc[r][t]);
            }
        }
    }
    for (r = 0; r < nr; r++) {
        for (t = 0; t < 4; t++) {
            _mm512_storeu_ps(res, acc[r][t]);
            /* the order of hsum256, so one token alone (the dot
               kernel) gives bit-identical results */
            if (2 * t < nt) {
                out[(size_t) (2 * t) * ldo + r] =
                    ((res[0] + res[4]) + (res[2] + res[6]))
                    + ((res[1] + res[5]) + (res[3] + res[7]));
            }
            if (2 * t + 1 < nt) {
                out[(size_t) (2 * t + 1) * ldo + r] =
                    ((res[8] + res[12]) + (res[10] + res[14]))
                    + ((res[9] + res[13]) + (res[11] + res[15]));
            }
        }
    }
}

TARGET_AVX2 static void
tile_q8_0_avx2(const block_q8_0 *const *wr, const block_q8_0 *const *xr,
    int cols, float *out, int ldo, int nr, int nt)
{
    __m256   acc[2][4];
    __m256i  xv, p;
    int      b, r, t, nb = cols / QK8_0;

    for (r = 0; r < 2; r++) {
        for (t = 0; t < 4; t++) {
            acc[r][t] = _mm256_setzero_ps();
        }
    }
    for (b = 0; b < nb; b++) {
#pragma GCC unroll 4
        for (t = 0; t < 4; t++) {
            xv = _mm256_loadu_si256((const __m256i *) xr[t][b].qs);
#pragma GCC unroll 2
            for (r = 0; r < 2; r++) {
                p = mul_i8_avx2(
                        _mm256_loadu_si256((const __m256i *) wr[r][b].qs), xv);
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(
                                _cvtsh_ss(wr[r][b].d) * _cvtsh_ss(xr[t][b].d)),
                                _mm256_cvtepi32_ps(p), acc[r][t]);
            }
        }
    }
    for (r = 0; r < nr; r++) {
        for (t = 0; t < nt; t++) {
            out[(size_t) t * ldo + r] = hsum256(acc[r][t]);
        }
    }
}

GEMM_DRIVER(gemm_q8_0_avx512, tile_q8_0_avx512, 4, 8, block_q8_0,
            block_q8_0, dot_q8_0_avx512)
GEMM_DRIVER(gemm_q8_0_avx2, tile_q8_0_avx2, 2, 4, block_q8_0, block_q8_0,
            dot_q8_0_avx2)

#endif /* QUANT_X86 */

/* Q4_0 blocks as Q8_0 blocks: same scale, nibble - 8 (exact) */
static void
q4_0_to_q8_0(const block_q4_0 *x, block_q8_0 *y, int n)
{
    int  i, j;

    for (i = 0; i < n / QK4_0; i++) {
        y[i].d = x[i].d;
        for (j = 0; j < QK4_0 / 2; j++) {
            y[i].qs[j] = (int8_t) ((x[i].qs[j] & 0x0f) - 8);
            y[i].qs[j + 16] = (int8_t) ((x[i].qs[j] >> 4) - 8);
        }
    }
}

void
quant_gemm(uint32_t wtype, const void *w, size_t wstride, int cols,
    const float *xf, size_t xfstride, const void *xq, size_t xqstride, int n,
    float *out, int ldo, int r0, int r1, float *scratch)
{
    const quant_kernels_t  *k = kernels();
    int                     t0, t1, r, t, ch, nr, i, direct;
    const char             *wr, *xr;
    block_q8_0             *q8;
    size_t                  qrow;

    switch (wtype) {
    case GGML_TYPE_F32:
        k->gemm_f32(w, wstride, cols, xf, xfstride, n, out, ldo, r0, r1);
        return;
    case GGML_TYPE_Q8_0:
        k->gemm_q8_0(w, wstride, cols, xq, xqstride, n, out, ldo, r0, r1);
        return;
    default:
        break;
    }

    /*
     * Other types: with one or two tokens a direct dot where there is one
     * (Q4_0 and the K-quants against quantized activations, F16 against
     * floats); otherwise a few rows at a time are expanded once per chunk
     * of tokens into scratch (Q4_0 exactly into Q8_0 blocks, the rest into
     * floats) and go through the Q8_0 / F32 tiles.
     */
    direct = wtype == GGML_TYPE_Q4_0 || wtype == GGML_TYPE_F16
             || wtype == GGML_TYPE_Q4_K || wtype == GGML_TYPE_Q6_K;
    ch = gemm_chunk(wtype == GGML_TYPE_Q4_0 ? xqstride : xfstride);
    for (t0 = 0; t0 < n; t0 += ch) {
        t1 = t0 + ch < n ? t0 + ch : n;
        for (r = r0; r < r1; r += nr) {
            nr = r1 - r < QUANT_GEMM_ROWS ? r1 - r : QUANT_GEMM_ROWS;
            wr = (const char *) w + (size_t) r * wstride;
            if (t1 - t0 <= 2 && direct) {
                for (i = 0; i < nr; i++, wr += wstride) {
                    for (t = t0; t < t1; t++) {
                        if (wtype == GGML_TYPE_F16) {
                            xr = (const char *) xf + (size_t) t * xfstride;
                            out[(size_t) t * ldo + r + i] = k->dot_f16_f32(
                                (const uint16_t *) wr, (const float *) xr,
                                cols);
                            continue;
                        }
                        xr = (const char *) xq + (size_t) t * xqstride;
                        out[(size_t) t * ldo + r + i] =
                            wtype == GGML_TYPE_Q4_0
                            ? k->dot_q4_0_q8_0(wr, xr, cols)
                            : wtype == GGML_TYPE_Q4_K
                            ? k->dot_q4_K_q8_K(wr, xr, cols)
                            : k->dot_q6_K_q8_K(wr, xr, cols);
                    }
                }
                continue;
            }
            if (wtype == GGML_TYPE_Q4_0) {
                q8 = (block_q8_0 *) scratch;
                qrow = quant_row_size(GGML_TYPE_Q8_0, cols);
                for (i = 0; i < nr; i++) {
                    q4_0_to_q8_0((const block_q4_0 *) (wr + i * wstride),
                                 (block_q8_0 *) ((char *) q8 + i * qrow),
                                 cols);
                }
                k->gemm_q8_0(q8, qrow, cols, (const block_q8_0 *)
                             ((const char *) xq + (size_t) t0 * xqstride),
                             xqstride, t1 - t0, out + (size_t) t0 * ldo + r,
                             ldo, 0, nr);
                continue;
            }
            for (i = 0; i < nr; i++) {
                quant_dequantize_row(wtype, wr + i * wstride,
                                     scratch + (size_t) i * cols, cols);
            }
            k->gemm_f32(scratch, (size_t) cols * sizeof(float), cols,
                        (const float *) ((const char *) xf
                                         + (size_t) t0 * xfstride),
                        xfstride, t1 - t0, out + (size_t) t0 * ldo + r, ldo,
                        0, nr);
        }
    }
}
