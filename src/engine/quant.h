/*
 * ggml tensor types: block layouts, row sizes, dequantization to float,
 * quantization of activations, and the dot / matrix kernels the forward
 * pass runs on (plain C everywhere, AVX2 / AVX-512 picked at run time).
 */

#ifndef LLMC_QUANT_H
#define LLMC_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GGML_TYPE_F32  = 0,
    GGML_TYPE_F16  = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_I8   = 24,
    GGML_TYPE_I16  = 25,
    GGML_TYPE_I32  = 26,
    GGML_TYPE_I64  = 27,
    GGML_TYPE_F64  = 28,
    GGML_TYPE_BF16 = 30
} ggml_type_e;

#define QK8_0  32
#define QK4_0  32
#define QK_K   256

typedef struct {
    uint16_t  d;                /* fp16 scale */
    int8_t    qs[QK8_0];
} block_q8_0;

typedef struct {
    uint16_t  d;                /* fp16 scale */
    uint8_t   qs[QK4_0 / 2];    /* low nibbles: 0..15, high: 16..31 */
} block_q4_0;

typedef struct {
    uint16_t  d;                /* fp16 scale of the sub-block scales */
    uint16_t  dmin;             /* fp16 scale of the sub-block mins */
    uint8_t   scales[12];       /* 8 x (6-bit scale, 6-bit min) */
    uint8_t   qs[QK_K / 2];
} block_q4_K;

typedef struct {
    uint8_t   ql[QK_K / 2];     /* low 4 bits */
    uint8_t   qh[QK_K / 4];     /* high 2 bits */
    int8_t    scales[QK_K / 16];
    uint16_t  d;
} block_q6_K;

/* activations for K-quant weights: 256 values, one float scale, and the
   sums of each 16 (for the K-quants' sub-block mins and offsets) */
typedef struct {
    float     d;
    int8_t    qs[QK_K];
    int16_t   bsums[QK_K / 16];
} block_q8_K;

/* 1 when the type's layout is known (sizes), 0 otherwise */
int quant_type_known(uint32_t type);
/* 1 when rows of this type can be dequantized / used as weights */
int quant_type_supported(uint32_t type);
const char *quant_type_name(uint32_t type);
int quant_block_size(uint32_t type);          /* elements per block */
size_t quant_block_bytes(uint32_t type);      /* bytes per block */
size_t quant_row_size(uint32_t type, int64_t n);   /* 0 if n not blocked */

float quant_fp16_to_fp32(uint16_t h);
uint16_t quant_fp32_to_fp16(float f);
float quant_bf16_to_fp32(uint16_t h);
uint16_t quant_fp32_to_bf16(float f);

/* n must be a multiple of the type's block size; returns 0 or -1 */
int quant_dequantize_row(uint32_t type, const void *src, float *dst,
    int64_t n);
void quant_quantize_row_q8_0(const float *x, void *dst, int64_t n);
void quant_quantize_row_q4_0(const float *x, void *dst, int64_t n);
void quant_quantize_row_q8_K(const float *x, void *dst, int64_t n);
void quant_quantize_row_f16(const float *x, void *dst, int64_t n);
void quant_quantize_row_bf16(const float *x, void *dst, int64_t n);
/* any type quant_quantize_row can produce: F32 F16 BF16 Q8_0 Q4_0 */
int quant_quantize_row(uint32_t type, const float *x, void *dst, int64_t n);

float quant_dot_f32(const float *a, const float *b, int n);
float quant_dot_f16_f32(const uint16_t *a, const float *b, int n);
float quant_dot_q8_0(const void *a, const void *b, int n);    /* q8_0 x2 */
float quant_dot_q4_0_q8_0(const void *a, const void *b, int n);
float quant_dot_q4_K_q8_K(const void *a, const void *b, int n);
float quant_dot_q6_K_q8_K(const void *a, const void *b, int n);

/* y[i] += a * x[i] */
void quant_axpy(float a, const float *x, float *y, int n);

/*
 * Attention over a head's cache for a block of nq <= 4 queries:
 * scores s[t * lds + k] = dot(q[t * ldq ..], key k) for k < nk, with the
 * keys stored transposed (kt[d * ldk + k], d < hd), and
 * out[t * ldo + d] = sum_k a[t * lda + k] * v[k * ldv + d].
 * Each element is computed the same way whatever nq is.
 */
void quant_attn_scores(const float *q, int ldq, int nq, const float *kt,
    int ldk, int hd, int nk, float *s, int lds);
void quant_attn_values(const float *a, int lda, int nq, const float *v,
    int ldv, int hd, int nk, float *out, int ldo);

/*
 * a[0..n) = softmax(scale * a) in place, then a[n..n_zero) = 0. The SIMD
 * exp is a polynomial within ~2 ulp of expf.
 */
void quant_softmax(float *a, int n, int n_zero, float scale);

/* the quantized activation format a weight type is multiplied with:
   Q8_0 (Q8_0, Q4_0 weights), Q8_K (Q4_K, Q6_K) or F32 (none needed) */
uint32_t quant_vec_type(uint32_t wtype);

/*
 * out[t * ldo + r] = dot(W row r, x row t) for r in [r0, r1), t in [0, n).
 * W: rows of wtype, wstride bytes apart. x: the n activation rows as
 * floats (xf, xfstride bytes apart) and, unless quant_vec_type(wtype) is
 * F32, quantized to it (xq, xqstride). scratch: QUANT_GEMM_ROWS * cols
 * floats (types expanded a few rows at a time). Each weight row is read
 * once per block of tokens.
 */
#define QUANT_GEMM_ROWS  8

void quant_gemm(uint32_t wtype, const void *w, size_t wstride, int cols,
    const float *xf, size_t xfstride, const void *xq, size_t xqstride, int n,
    float *out, int ldo, int r0, int r1, float *scratch);

/* which kernels run here: "avx512", "avx2" or "generic" */
const char *quant_simd_name(void);
/* force the plain C kernels (tests compare them with the SIMD ones) */
void quant_force_generic(int on);
/* use the "generic", "avx2" or "avx512" kernels; -1 if this CPU cannot
   (NULL: back to the best) */
int quant_set_kernels(const char *name);

#endif /* LLMC_QUANT_H */
