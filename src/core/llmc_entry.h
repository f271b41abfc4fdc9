/*
 * The stored entry: one Redis string per cached response.
 *
 *     "LLMC1\n" <metadata JSON, one line> "\n" <body bytes>
 *
 * The metadata holds the Content-Type, creation time, provider/API, model
 * and the body length; decoding checks all of it, so a damaged or foreign
 * value is a MISS, never served.
 */

#ifndef LLMC_ENTRY_H
#define LLMC_ENTRY_H

/* the longest metadata line an entry may start with */
#define LLMC_ENTRY_META_MAX  8192

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char  *content_type;    /* points into the decoded value */
    size_t       content_type_len;
    const char  *body;
    size_t       body_len;
    int64_t      created;
    char         model[128];
    char         api[24];
} llmc_entry_t;

/* Encodes into a malloc()ed buffer; returns NULL on allocation failure or
 * invalid input: a content type that is empty, longer than 255 bytes or not
 * printable ASCII (no CR/LF, no control bytes, no '"' or '\\'), an api of
 * 24 bytes or more, a model of 128 bytes or more, created < 0. */
char *llmc_entry_encode(const char *content_type, size_t ct_len,
    const char *api, const char *model, int64_t created,
    const char *body, size_t body_len, size_t *out_len);

/* Decodes a value in place (entry points into buf).  Returns 0, or -1 with a
 * reason in err: bad magic, no metadata line (within 8 KiB), metadata not a
 * JSON object (duplicate keys refused), a required field missing or of the
 * wrong type, a content type that encode would refuse, body_len not equal
 * to the bytes after the metadata line.  Unknown metadata fields are
 * ignored. */
int llmc_entry_decode(llmc_entry_t *entry, const char *buf, size_t len,
    char *err, size_t errlen);

#endif /* LLMC_ENTRY_H */
