/*
 * Prompt normalization (ICU): NFKC, full case folding, whitespace
 * collapsing, punctuation handling and dictionary steps (synonym groups,
 * fillers/modifiers to drop, polite/ending variants).  nginx-free: shared by
 * the module, the tools, the unit tests and the fuzzers.
 */

#ifndef LLMC_NORMALIZE_H
#define LLMC_NORMALIZE_H

#include <stddef.h>

#define LLMC_NORM_NFKC      0x01
#define LLMC_NORM_CASEFOLD  0x02
#define LLMC_NORM_SPACE     0x04
#define LLMC_NORM_PUNCT     0x08
#define LLMC_NORM_DICT      0x10
#define LLMC_NORM_ALL       0x1f

typedef struct llmc_dict_s  llmc_dict_t;

/* Parses a step name ("nfkc", "casefold", "space", "punct", "dict");
 * returns its LLMC_NORM_* bit or 0 when unknown. */
unsigned llmc_norm_step(const char *name, size_t len);

llmc_dict_t *llmc_dict_new(void);
void llmc_dict_free(llmc_dict_t *d);

/* Adds the entries of a dictionary file (format: README, "Dictionaries").
 * Later files add to and override earlier ones.  Returns 0, or -1 with a
 * message "file:line: what" in err. */
int llmc_dict_load_file(llmc_dict_t *d, const char *path, char *err,
    size_t errlen);
int llmc_dict_load_buf(llmc_dict_t *d, const char *buf, size_t len,
    const char *name, char *err, size_t errlen);

/* Negation cues of the loaded dictionaries, for the semantic guards. */
int llmc_dict_is_negation(const llmc_dict_t *d, const char *word,
    size_t len);

/* Normalizes UTF-8 text with the given steps; dict may be NULL (then the
 * dict step does nothing).  *out is malloc()ed and NUL-terminated.
 * Returns 0, or -1 for invalid UTF-8 / ICU failure with a message in err. */
int llmc_normalize(const char *in, size_t len, unsigned steps,
    const llmc_dict_t *dict, char **out, size_t *outlen, char *err,
    size_t errlen);

#endif /* LLMC_NORMALIZE_H */
