/*
 * Prompt embeddings for the semantic cache.  The builtin embedding hashes
 * character and word n-grams of the normalized prompt into a fixed number
 * of dimensions: no model, no network, the same vector on every machine.
 * The remote side builds the body of an OpenAI-compatible
 * POST /v1/embeddings request and parses its answer; the transport is the
 * caller's (an nginx subrequest, libcurl).  nginx-free and I/O-free.
 */

#ifndef LLMC_EMBED_H
#define LLMC_EMBED_H

#include <stddef.h>
#include <stdint.h>

#define LLMC_EMBED_DIM_DEFAULT  256
#define LLMC_EMBED_DIM_MIN      16
#define LLMC_EMBED_DIM_MAX      8192

/* Cosine similarity at or above which the builtin embedding calls two
 * normalized prompts the same question (bench/semantic/README.md). */
#define LLMC_SEMANTIC_THRESHOLD_DEFAULT  0.92

/* The feature hash (FNV-1a 64 over the bytes, then the splitmix64
 * finalizer); exposed so that tests and other implementations can check
 * the layout of the builtin embedding. */
uint64_t llmc_embed_hash(const void *data, size_t len);

/* Builtin embedding of NORMALIZED text (the output of llmc_normalize):
 * character 2- and 3-grams inside words (code points, so Hangul syllables
 * and CJK characters count as one; Hangul syllables also as their initial
 * and medial jamo), word unigrams, bigrams of adjacent words and of
 * adjacent content words (common words skipped), sublinear tf, a built-in
 * damping of very common tokens, signed feature hashing (a feature with
 * hash h adds to dimension (h >> 32) % dim, negated when h is odd), each
 * group scaled to a fixed share, L2-normalized.  dim is
 * LLMC_EMBED_DIM_MIN..MAX.  Text without any feature (empty) gives a zero
 * vector.  Returns 0, or -1 for a bad dim, invalid UTF-8 or no memory.
 * Changing any of this changes stored vectors: entries written before
 * would no longer be found, so the scope should carry a version. */
#define LLMC_EMBED_BUILTIN_VERSION  1
int llmc_embed_builtin(const char *text, size_t len, float *out, int dim);

/* Dot product; the cosine when both inputs are L2-normalized. */
float llmc_cosine(const float *a, const float *b, int dim);

/* Scales v to unit length; a zero vector stays zero.  Returns the norm
 * it had. */
float llmc_l2_normalize(float *v, int dim);

/* The body of POST /v1/embeddings:
 * {"model":"...","input":"...","encoding_format":"float"}.  model may be
 * NULL (then it is left out).  Returns a malloc()ed NUL-terminated
 * string and its length, or NULL when out of memory or text is not valid
 * UTF-8. */
char *llmc_embed_request(const char *model, const char *text, size_t len,
    size_t *out_len);

/* Parses the answer of /v1/embeddings: {"data":[{"embedding":[...]}]} with
 * a float array or a base64 string of little-endian float32 values;
 * exactly one embedding, 1..LLMC_EMBED_DIM_MAX values, all finite, not all
 * zero.  On success *out is a malloc()ed L2-normalized vector of *dim
 * values and 0 is returned; otherwise -1 with a message in err (an
 * {"error":{"message":...}} answer is reported as such). */
int llmc_embed_parse(const char *json, size_t len, float **out, int *dim,
    char *err, size_t errlen);

#endif /* LLMC_EMBED_H */
