/*
 * Writing JSON as jansson's json_dumps() writes it (compact; strings
 * escaped as without JSON_ENSURE_ASCII and JSON_ESCAPE_SLASH; reals as
 * "%.17g" with jansson's touches), straight into a growing buffer: the
 * request's canonical scope (llmc_request.c) and the stream replay
 * (llmc_replay.c) write their values with these.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmc_json.h"

int
llmc_buf_grow_slow(llmc_buf_t *b, size_t n)
{
    char    *p;
    size_t   cap;

    cap = b->cap ? b->cap : 64;
    while (cap - b->len <= n) {
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (p == NULL) {
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int
llmc_buf_putz(llmc_buf_t *b, const char *s)
{
    return llmc_buf_put(b, s, strlen(s));
}

/* the input is valid UTF-8 (its readers checked it), so only '"', '\\'
 * and control bytes are escaped and other bytes are copied */
int
llmc_json_put_string_in(llmc_buf_t *b, const char *s, size_t n)
{
    size_t                i, run;
    unsigned char         c;
    static const char     hex[] = "0123456789ABCDEF";
    static const char     short_esc[32] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'
    };

    /* worst case: every byte a 6-byte \u escape */
    if (llmc_buf_grow(b, n * 6) != 0) {
        return -1;
    }

    for (i = 0; i < n; i = run) {
        for (run = i; run < n; run++) {
            c = (unsigned char) s[run];
            if (c < 0x20 || c == '"' || c == '\\') {
                break;
            }
        }
        memcpy(b->p + b->len, s + i, run - i);
        b->len += run - i;
        if (run == n) {
            break;
        }
        c = (unsigned char) s[run++];
        b->p[b->len++] = '\\';
        if (c == '"' || c == '\\') {
            b->p[b->len++] = c;
        } else if (short_esc[c]) {
            b->p[b->len++] = short_esc[c];
        } else {
            b->p[b->len++] = 'u';
            b->p[b->len++] = '0';
            b->p[b->len++] = '0';
            b->p[b->len++] = hex[c >> 4];
            b->p[b->len++] = hex[c & 0x0f];
        }
    }
    b->p[b->len] = '\0';
    return 0;
}

int
llmc_json_put_string(llmc_buf_t *b, const char *s, size_t n)
{
    return llmc_buf_put(b, "\"", 1) == 0
           && llmc_json_put_string_in(b, s, n) == 0
           && llmc_buf_put(b, "\"", 1) == 0 ? 0 : -1;
}

int
llmc_json_put_int(llmc_buf_t *b, json_int_t v)
{
    char                 tmp[24], *q = tmp + sizeof(tmp);
    unsigned long long   u;

    u = v < 0 ? 0ULL - (unsigned long long) v : (unsigned long long) v;
    do {
        *--q = (char) ('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        *--q = '-';
    }
    return llmc_buf_put(b, q, tmp + sizeof(tmp) - q);
}

/* jansson's real format: "%.17g", the locale's decimal point made '.',
 * ".0" appended when neither a point nor an exponent shows, the
 * exponent's '+' and leading zeros dropped */
/* the last reals written, per thread: snprintf() is most of a real's cost,
 * and a few values (temperature, top_p) come back in most requests */
#define LLMC_JSON_REALS  4

typedef struct {
    uint64_t  bits;
    int       len;             /* 0: empty */
    char      s[32];
} llmc_json_real_t;

static __thread llmc_json_real_t  llmc_json_reals[LLMC_JSON_REALS];
static __thread unsigned          llmc_json_reals_next;

int
llmc_json_put_real(llmc_buf_t *b, double d)
{
    int               n;
    char              buf[64], *e, *from, *to;
    size_t            i;
    uint64_t          bits;
    llmc_json_real_t  *r;

    memcpy(&bits, &d, sizeof(bits));
    for (i = 0; i < LLMC_JSON_REALS; i++) {
        r = &llmc_json_reals[i];
        if (r->len && r->bits == bits) {
            return llmc_buf_put(b, r->s, r->len);
        }
    }

    n = snprintf(buf, sizeof(buf), "%.17g", d);
    if (n < 0 || (size_t) n >= sizeof(buf) - 3) {
        return -1;
    }
    for (i = 0; i < (size_t) n; i++) {
        if ((buf[i] < '0' || buf[i] > '9') && buf[i] != '-'
            && buf[i] != '+' && buf[i] != 'e')
        {
            buf[i] = '.';
        }
    }
    if (memchr(buf, '.', n) == NULL && memchr(buf, 'e', n) == NULL) {
        buf[n++] = '.';
        buf[n++] = '0';
        buf[n] = '\0';
    }
    e = memchr(buf, 'e', n);
    if (e) {
        to = e + 1;
        from = e + 2;
        if (*to == '-') {
            to++;
        }
        while (*from == '0') {
            from++;
        }
        if (from != to) {
            memmove(to, from, buf + n + 1 - from);
            n -= from - to;
        }
    }

    if ((size_t) n < sizeof(r->s)) {
        r = &llmc_json_reals[llmc_json_reals_next++ % LLMC_JSON_REALS];
        r->bits = bits;
        r->len = n;
        memcpy(r->s, buf, n);
    }
    return llmc_buf_put(b, buf, n);
}
