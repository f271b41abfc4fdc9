/*
 * Random-hyperplane LSH for the semantic index kept in Redis, and the
 * stored form of a vector.  A signature has one value per band: bits sign
 * bits of the vector's projections on that band's hyperplanes.  Two
 * vectors at angle theta agree on a band with probability
 * (1 - theta/pi)^bits; a lookup reads the buckets of all bands.
 * The hyperplanes come from integer arithmetic on the seed only, so every
 * worker and machine computes the same ones.  nginx-free and I/O-free.
 */

#ifndef LLMC_LSH_H
#define LLMC_LSH_H

#include <stddef.h>
#include <stdint.h>

#define LLMC_LSH_BANDS_DEFAULT  20
#define LLMC_LSH_BITS_DEFAULT   14
#define LLMC_LSH_SEED_DEFAULT   0x6c6c6d6361636865ULL   /* "llmcache" */
#define LLMC_LSH_BANDS_MAX      64
#define LLMC_LSH_BITS_MAX       32

typedef struct {
    int        dim, bands, bits;
    uint64_t   seed;
    float     *planes;          /* [bands * bits][dim] */
    float     *planes_t;        /* [dim][bands * bits] */
} llmc_lsh_t;

/* Returns 0, or -1 for a bad shape (dim 1..8192, bands 1..64, bits 1..32)
 * or no memory. */
int llmc_lsh_init(llmc_lsh_t *l, int dim, int bands, int bits,
    uint64_t seed);
void llmc_lsh_free(llmc_lsh_t *l);

/* sig[bands]: one value per band, bits low bits used.  SIMD where the CPU
 * has it, with the same result bit for bit as the portable variant. */
void llmc_lsh_sign(const llmc_lsh_t *l, const float *v, uint32_t *sig);
void llmc_lsh_sign_generic(const llmc_lsh_t *l, const float *v,
    uint32_t *sig);

/* The bucket name of one band, "<band>:<sig in hex>" (e.g. "3:a1"), to
 * append to the scope's key prefix.  Returns its length, or -1 when buf
 * is too small (24 bytes always suffice). */
int llmc_lsh_bucket(int band, uint32_t sig, char *buf, size_t size);

/* Stored vector: "LV", version 1, int8 values with a float32 scale, and
 * the normalized prompt text after it (the guards need it):
 *   'L' 'V' 0x01 0x00  dim:u16le  scale:f32le  q[dim]:i8
 *   text_len:u32le  text[text_len]
 * Returns a malloc()ed buffer and its length, or NULL (bad dim, no
 * memory). */
char *llmc_vec_encode(const float *v, int dim, const char *text,
    size_t text_len, size_t *out_len);

/* Decodes into v[dim] (L2-normalized again) and points *text into buf.
 * Returns 0, or -1 when buf is not a version 1 vector of this dim or is
 * truncated or has trailing bytes. */
int llmc_vec_decode(const char *buf, size_t len, float *v, int dim,
    const char **text, size_t *text_len);

/* The cosine of the unit vector q[dim] and a stored vector, without
 * decoding it (the int8 values' own norm; the scale cancels out), and its
 * text as llmc_vec_decode() gives it.  Returns -2 when buf is not a
 * version 1 vector of this dim, 0 for a stored zero vector. */
float llmc_vec_cosine(const float *q, const char *buf, size_t len, int dim,
    const char **text, size_t *text_len);

/* Re-ranks the candidates of a lookup: the cosine of q with each stored
 * vector in bufs[i] / lens[i] (llmc_vec_cosine; NULL, or a buffer that is
 * not a vector of this dim, is skipped), and returns the index of the
 * most similar one at or above threshold whose stored prompt the guards
 * let through (the next one when a guard blocks the best), or -1.  *cos
 * gets the similarity of the returned candidate (or of the best one seen);
 * *why names the guard that blocked the best candidate when none passed,
 * NULL otherwise.  text is the query's normalized prompt; dict and ents
 * may be NULL. */
struct llmc_dict_s;
struct llmc_entities_s;

int llmc_semantic_pick(const float *q, int dim, const char *text,
    size_t text_len, const char *const *bufs, const size_t *lens, size_t n,
    float threshold, const struct llmc_dict_s *dict,
    const struct llmc_entities_s *ents, unsigned guards, float *cos,
    const char **why);

#endif /* LLMC_LSH_H */
