/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * jansson's parse errors quote the input they stopped at ("invalid token
 * near 'the user's prompt'"), and what the project parses is prompts,
 * answers and stored entries: messages use llmc_json_errmsg(&jerr), which
 * cuts the quote off.  The position says where.
 */

#ifndef LLMC_JSON_H
#define LLMC_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <jansson.h>

static inline const char *
llmc_json_errmsg(json_error_t *e)
{
    char  *q = strstr(e->text, " near '");

    if (q != NULL) {
        *q = '\0';
    }
    return e->text;
}

/*
 * Writing JSON as json_dumps(v, JSON_COMPACT) writes it (llmc_json.c), into
 * a growing buffer that stays NUL-terminated.  Each returns 0, or -1 when
 * out of memory.
 */
typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
} llmc_buf_t;

int llmc_buf_grow_slow(llmc_buf_t *b, size_t n);

/* room for n more bytes and the NUL (inline: the writers put a few bytes
 * at a time) */
static inline int
llmc_buf_grow(llmc_buf_t *b, size_t n)
{
    return b->cap - b->len > n ? 0 : llmc_buf_grow_slow(b, n);
}

static inline int
llmc_buf_put(llmc_buf_t *b, const char *s, size_t n)
{
    if (llmc_buf_grow(b, n) != 0) {
        return -1;
    }
    if (n) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int llmc_buf_putz(llmc_buf_t *b, const char *s);

/* a string, quoted; _in: its inside only */
int llmc_json_put_string(llmc_buf_t *b, const char *s, size_t n);
int llmc_json_put_string_in(llmc_buf_t *b, const char *s, size_t n);
int llmc_json_put_int(llmc_buf_t *b, json_int_t v);
int llmc_json_put_real(llmc_buf_t *b, double d);

/*
 * Reading JSON text, for the readers that skip jansson's lexer (the request
 * reader in llmc_request.c, the stream replay from stored text in
 * llmc_replay.c): whitespace, escapes in strings, code points in UTF-8.
 */

static inline const char *
llmc_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

static inline int
llmc_json_hex4(const char *p, const char *end, uint32_t *out)
{
    int       i;
    char      c;
    uint32_t  v = 0;

    if (end - p < 4) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        c = p[i];
        if (c >= '0' && c <= '9') {
            v = v << 4 | (uint32_t) (c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v = v << 4 | (uint32_t) (c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v = v << 4 | (uint32_t) (c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* *p on a backslash inside a string: the code point the escape stands for
 * (a surrogate pair as one) and *p past it; -1 for an escape JSON does not
 * have or a surrogate without its other half */
static inline int
llmc_json_escape_read(const char **p, const char *end, uint32_t *cp)
{
    const char  *q = *p;
    uint32_t     lo;

    if (end - q < 2) {
        return -1;
    }
    switch (q[1]) {
    case '"':
    case '\\':
    case '/':  *cp = (unsigned char) q[1]; break;
    case 'b':  *cp = '\b'; break;
    case 'f':  *cp = '\f'; break;
    case 'n':  *cp = '\n'; break;
    case 'r':  *cp = '\r'; break;
    case 't':  *cp = '\t'; break;
    case 'u':
        if (llmc_json_hex4(q + 2, end, cp) != 0
            || (*cp >= 0xdc00 && *cp <= 0xdfff))
        {
            return -1;
        }
        q += 6;
        if (*cp >= 0xd800 && *cp <= 0xdbff) {
            if (end - q < 2 || q[0] != '\\' || q[1] != 'u'
                || llmc_json_hex4(q + 2, end, &lo) != 0
                || lo < 0xdc00 || lo > 0xdfff)
            {
                return -1;
            }
            *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
            q += 6;
        }
        *p = q;
        return 0;
    default:
        return -1;
    }
    *p = q + 2;
    return 0;
}

/* a code point (below 0x110000) in UTF-8 at out, which has room for 4
 * bytes; returns the number of bytes */
static inline size_t
llmc_utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xc0 | cp >> 6);
        out[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char) (0xe0 | cp >> 12);
        out[1] = (char) (0x80 | (cp >> 6 & 0x3f));
        out[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char) (0xf0 | cp >> 18);
    out[1] = (char) (0x80 | (cp >> 12 & 0x3f));
    out[2] = (char) (0x80 | (cp >> 6 & 0x3f));
    out[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}

#endif /* LLMC_JSON_H */
