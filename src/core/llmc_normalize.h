/*
 * Prompt normalization (ICU): NFKC, full case folding, whitespace
 * collapsing, punctuation handling and dictionary steps (synonym groups,
 * fillers/modifiers to drop, polite/ending variants).  nginx-free: shared by
 * the module, the tools, the unit tests and the fuzzers.
 */

#ifndef LLMC_NORMALIZE_H
#define LLMC_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#define LLMC_NORM_NFKC      0x01
#define LLMC_NORM_CASEFOLD  0x02
#define LLMC_NORM_SPACE     0x04
#define LLMC_NORM_PUNCT     0x08
#define LLMC_NORM_DICT      0x10
#define LLMC_NORM_ALL       0x1f

typedef struct llmc_dict_s  llmc_dict_t;

/* Parses a step name ("nfkc", "casefold", "space", "punct", "dict", or
 * "all"); returns its LLMC_NORM_* bit(s) or 0 when unknown. */
unsigned llmc_norm_step(const char *name, size_t len);

llmc_dict_t *llmc_dict_new(void);
void llmc_dict_free(llmc_dict_t *d);

/* Closes the calling thread's word iterator and releases ICU's caches (at
 * a process's exit, when no other thread uses ICU). */
void llmc_normalize_cleanup(void);

/* Adds the entries of a dictionary file (format: docs/dictionary.md).
 * Later files add to and override earlier ones.  Returns 0, or -1 with a
 * message "file:line: what" in err; the rules read before the error stay,
 * so treat a failure as fatal.  Not thread-safe; the dictionary is
 * read-only once loaded. */
int llmc_dict_load_file(llmc_dict_t *d, const char *path, char *err,
    size_t errlen);
int llmc_dict_load_buf(llmc_dict_t *d, const char *buf, size_t len,
    const char *name, char *err, size_t errlen);

/* A hash of the loaded rules, as normalized, of ICU's Unicode version and
 * of this normalizer's version (d may be NULL: the versions alone).  Cache keys can carry it with the
 * steps, so that a changed dictionary or a new ICU never serves entries
 * normalized the old way. */
uint64_t llmc_dict_fingerprint(const llmc_dict_t *d);

/* Negation cues of the loaded dictionaries, for the semantic guards.
 * word is one word; it is normalized (nfkc..punct) when not found as is. */
int llmc_dict_is_negation(const llmc_dict_t *d, const char *word,
    size_t len);

/* Normalizes UTF-8 text with the given steps; dict may be NULL (then the
 * dict step does nothing).  *out is malloc()ed and NUL-terminated.
 * Returns 0, or -1 for invalid UTF-8 / ICU failure with a message in err.
 * Thread-safe; each thread keeps one ICU word iterator. */
int llmc_normalize(const char *in, size_t len, unsigned steps,
    const llmc_dict_t *dict, char **out, size_t *outlen, char *err,
    size_t errlen);

/* Strict UTF-8 (RFC 3629): no overlongs, surrogates or code points above
 * U+10FFFF.  Returns the offset of the first bad byte, or len. */
size_t llmc_utf8_check(const unsigned char *p, size_t len);

#endif /* LLMC_NORMALIZE_H */
