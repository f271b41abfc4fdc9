/*
 * Incremental HTTP/1.1 request parser (see http.h). The fed bytes live in
 * one growing input buffer; a complete head is copied into a fixed buffer
 * and split in place, and the body (plain or de-chunked) is copied into a
 * body buffer, so the request handed out does not move when more bytes
 * are fed for the next pipelined request.
 */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

typedef enum {
    HTTP_ST_HEAD = 0,
    HTTP_ST_BODY,           /* Content-Length */
    HTTP_ST_CHUNK_SIZE,
    HTTP_ST_CHUNK_DATA,
    HTTP_ST_CHUNK_CRLF,
    HTTP_ST_TRAILER,
    HTTP_ST_DONE,           /* a request was handed out */
    HTTP_ST_ERROR
} http_state_e;

/* a chunk-size line with extensions longer than this is refused */
#define HTTP_MAX_CHUNK_LINE  1024

struct http_parser {
    char            *in;        /* fed bytes; [0, in_len) */
    size_t           in_len, in_cap;
    size_t           scan;      /* where the search for the next line
                                   resumes, relative to in */
    size_t           max_head, max_body;
    http_state_e     state;

    char            *head;      /* 2 * (max_head + 1) bytes */
    char            *body;      /* body_cap bytes */
    size_t           body_len, body_cap;
    size_t           need;      /* Content-Length, or bytes left in chunk */
    size_t           trailer;   /* trailer bytes seen */
    int              expect;    /* 100-continue asked and not yet answered */

    http_request_t   req;
    int              status;
    char             err[160];
};

static http_status_e http_fail(http_parser_t *p, int status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static http_status_e http_parse_head(http_parser_t *p, size_t head_len);
static int http_body_reserve(http_parser_t *p, size_t n);
static http_status_e http_finish(http_parser_t *p, http_request_t *req);
static void http_consume(http_parser_t *p, size_t n);
static int http_is_tchar(int c);

http_parser_t *
http_parser_new(size_t max_head, size_t max_body)
{
    http_parser_t  *p;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->max_head = max_head ? max_head : HTTP_DEF_MAX_HEAD;
    p->max_body = max_body ? max_body : HTTP_DEF_MAX_BODY;
    /* the head, its NUL, then a copy of the path and its NUL */
    p->head = malloc(2 * (p->max_head + 1));
    if (p->head == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void
http_parser_free(http_parser_t *p)
{
    if (p == NULL) {
        return;
    }
    free(p->in);
    free(p->head);
    free(p->body);
    free(p);
}

int
http_parser_feed(http_parser_t *p, const void *buf, size_t len)
{
    char    *n;
    size_t   cap;

    if (len == 0) {
        return 0;
    }
    if (p->in_len + len > p->in_cap) {
        cap = p->in_cap ? p->in_cap : 4096;
        while (cap < p->in_len + len) {
            cap *= 2;
        }
        n = realloc(p->in, cap);
        if (n == NULL) {
            return -1;
        }
        p->in = n;
        p->in_cap = cap;
    }
    memcpy(p->in + p->in_len, buf, len);
    p->in_len += len;
    return 0;
}

int
http_parser_status(const http_parser_t *p)
{
    return p->state == HTTP_ST_ERROR ? p->status : 0;
}

const char *
http_parser_error(const http_parser_t *p)
{
    return p->state == HTTP_ST_ERROR ? p->err : "";
}

size_t
http_parser_buffered(const http_parser_t *p)
{
    return p->in_len;
}

int
http_parser_partial(const http_parser_t *p)
{
    switch (p->state) {
    case HTTP_ST_HEAD:
        return p->in_len > 0;
    case HTTP_ST_DONE:
    case HTTP_ST_ERROR:
        return 0;
    default:
        return 1;
    }
}

static http_status_e
http_fail(http_parser_t *p, int status, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
    p->status = status;
    p->state = HTTP_ST_ERROR;
    return HTTP_ERROR;
}

static void
http_consume(http_parser_t *p, size_t n)
{
    memmove(p->in, p->in + n, p->in_len - n);
    p->in_len -= n;
    p->scan = 0;
}

/* the length of the line starting at off (without its LF), or -1 when no
 * LF was fed yet; *next is the offset after the LF */
static long
http_line(const http_parser_t *p, size_t off, size_t *next)
{
    const char  *lf;

    lf = memchr(p->in + off, '\n', p->in_len - off);
    if (lf == NULL) {
        return -1;
    }
    *next = (size_t) (lf - p->in) + 1;
    return lf - (p->in + off);
}

http_status_e
http_parser_next(http_parser_t *p, http_request_t *req)
{
    size_t   next, n, line_len;
    long     len;
    const char  *s;
    unsigned long long  v;

    if (p->state == HTTP_ST_ERROR) {
        return HTTP_ERROR;
    }
    if (p->state == HTTP_ST_DONE) {
        p->state = HTTP_ST_HEAD;
        p->body_len = 0;
        p->trailer = 0;
        memset(&p->req, 0, sizeof(p->req));
    }

    for ( ;; ) {
        switch (p->state) {

        case HTTP_ST_HEAD:
            /* empty lines before a request line are skipped (RFC 9112 2.2) */
            while (p->in_len > 0 && (p->in[0] == '\n'
                   || (p->in[0] == '\r' && p->in_len > 1
                       && p->in[1] == '\n')))
            {
                http_consume(p, p->in[0] == '\n' ? 1 : 2);
            }
            for ( ;; ) {
                len = http_line(p, p->scan, &next);
                if (len < 0) {
                    if (p->in_len > p->max_head) {
                        return http_fail(p, p->scan == 0 ? 414 : 431,
                                         "%s longer than %zu bytes",
                                         p->scan == 0 ? "request line"
                                                      : "request head",
                                         p->max_head);
                    }
                    return HTTP_NEED_MORE;
                }
                if (next > p->max_head) {
                    return http_fail(p, p->scan == 0 ? 414 : 431,
                                     "%s longer than %zu bytes",
                                     p->scan == 0 ? "request line"
                                                  : "request head",
                                     p->max_head);
                }
                line_len = (size_t) len;
                if (line_len > 0 && p->in[p->scan + line_len - 1] == '\r') {
                    line_len--;
                }
                if (line_len == 0 && p->scan > 0) {
                    p->scan = next;
                    break;
                }
                p->scan = next;
            }
            if (http_parse_head(p, p->scan) == HTTP_ERROR) {
                return HTTP_ERROR;
            }
            http_consume(p, p->scan);
            if (p->state == HTTP_ST_DONE) {
                return http_finish(p, req);
            }
            if (p->expect && p->in_len == 0) {
                p->expect = 0;
                return HTTP_CONTINUE;
            }
            p->expect = 0;
            break;

        case HTTP_ST_BODY:
            n = p->in_len < p->need ? p->in_len : p->need;
            memcpy(p->body + p->body_len, p->in, n);
            p->body_len += n;
            p->need -= n;
            http_consume(p, n);
            if (p->need > 0) {
                return HTTP_NEED_MORE;
            }
            return http_finish(p, req);

        case HTTP_ST_CHUNK_SIZE:
            len = http_line(p, 0, &next);
            if (len < 0) {
                if (p->in_len > HTTP_MAX_CHUNK_LINE) {
                    return http_fail(p, 400, "chunk size line too long");
                }
                return HTTP_NEED_MORE;
            }
            if (len > HTTP_MAX_CHUNK_LINE) {
                return http_fail(p, 400, "chunk size line too long");
            }
            if (!isxdigit((unsigned char) p->in[0])) {
                return http_fail(p, 400, "bad chunk size");
            }
            v = 0;
            for (s = p->in; isxdigit((unsigned char) *s); s++) {
                if (v > (1ULL << 40)) {
                    return http_fail(p, 413, "chunk too large");
                }
                v = v * 16 + (unsigned) (isdigit((unsigned char) *s)
                                         ? *s - '0'
                                         : (tolower((unsigned char) *s)
                                            - 'a' + 10));
            }
            /* chunk extensions (";name=value") are ignored */
            while (*s == ' ' || *s == '\t') {
                s++;
            }
            if (*s != ';' && *s != '\r' && *s != '\n') {
                return http_fail(p, 400, "bad chunk size");
            }
            if (*s == '\r' && s[1] != '\n') {
                return http_fail(p, 400, "bad chunk size");
            }
            http_consume(p, next);
            if (v == 0) {
                p->state = HTTP_ST_TRAILER;
                break;
            }
            if (v > p->max_body || p->body_len + v > p->max_body) {
                return http_fail(p, 413, "body larger than %zu bytes",
                                 p->max_body);
            }
            if (http_body_reserve(p, p->body_len + v) != 0) {
                return http_fail(p, 413, "out of memory for the body");
            }
            p->need = v;
            p->state = HTTP_ST_CHUNK_DATA;
            break;

        case HTTP_ST_CHUNK_DATA:
            n = p->in_len < p->need ? p->in_len : p->need;
            memcpy(p->body + p->body_len, p->in, n);
            p->body_len += n;
            p->need -= n;
            http_consume(p, n);
            if (p->need > 0) {
                return HTTP_NEED_MORE;
            }
            p->state = HTTP_ST_CHUNK_CRLF;
            break;

        case HTTP_ST_CHUNK_CRLF:
            if (p->in_len == 0) {
                return HTTP_NEED_MORE;
            }
            if (p->in[0] == '\n') {
                http_consume(p, 1);
            } else if (p->in[0] != '\r') {
                return http_fail(p, 400, "chunk data not followed by CRLF");
            } else if (p->in_len < 2) {
                return HTTP_NEED_MORE;
            } else if (p->in[1] != '\n') {
                return http_fail(p, 400, "chunk data not followed by CRLF");
            } else {
                http_consume(p, 2);
            }
            p->state = HTTP_ST_CHUNK_SIZE;
            break;

        case HTTP_ST_TRAILER:
            len = http_line(p, 0, &next);
            if (len < 0) {
                if (p->trailer + p->in_len > p->max_head) {
                    return http_fail(p, 431, "trailer longer than %zu bytes",
                                     p->max_head);
                }
                return HTTP_NEED_MORE;
            }
            p->trailer += next;
            if (p->trailer > p->max_head) {
                return http_fail(p, 431, "trailer longer than %zu bytes",
                                 p->max_head);
            }
            line_len = (size_t) len;
            if (line_len == 1 && p->in[0] == '\r') {
                line_len = 0;
            }
            http_consume(p, next);
            if (line_len == 0) {
                return http_finish(p, req);
            }
            break;

        case HTTP_ST_DONE:
        case HTTP_ST_ERROR:
            return HTTP_ERROR;
        }
    }
}

static int
http_body_reserve(http_parser_t *p, size_t n)
{
    char    *b;
    size_t   cap;

    if (n + 1 <= p->body_cap) {
        return 0;
    }
    cap = p->body_cap ? p->body_cap : 1024;
    while (cap < n + 1) {
        cap *= 2;
    }
    b = realloc(p->body, cap);
    if (b == NULL) {
        return -1;
    }
    p->body = b;
    p->body_cap = cap;
    return 0;
}

static http_status_e
http_finish(http_parser_t *p, http_request_t *req)
{
    if (http_body_reserve(p, p->body_len) != 0) {
        return http_fail(p, 413, "out of memory for the body");
    }
    p->body[p->body_len] = '\0';
    p->req.body = p->body;
    p->req.body_len = p->body_len;
    p->state = HTTP_ST_DONE;
    *req = p->req;
    return HTTP_OK;
}

static int
http_is_tchar(int c)
{
    return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* does the comma-separated list hdr hold token (case-insensitive)? */
static int
http_has_token(const char *hdr, const char *token)
{
    size_t       n = strlen(token);
    const char  *s = hdr;

    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',') {
            s++;
        }
        if (strncasecmp(s, token, n) == 0
            && (s[n] == '\0' || s[n] == ',' || s[n] == ' ' || s[n] == '\t'))
        {
            return 1;
        }
        while (*s && *s != ',') {
            s++;
        }
    }
    return 0;
}

/* splits the head in[0, head_len) (request line, headers, empty line) */
static http_status_e
http_parse_head(http_parser_t *p, size_t head_len)
{
    char            *s, *line, *eol, *colon, *v, *e;
    http_request_t  *r = &p->req;
    const char      *cl = NULL, *te = NULL, *h;
    size_t           i, cl_val = 0;
    int              n_cl = 0;

    /* the head is split with string functions: a NUL would cut it short */
    if (memchr(p->in, '\0', head_len) != NULL) {
        return http_fail(p, 400, "NUL byte in the request head");
    }
    memcpy(p->head, p->in, head_len);
    p->head[head_len] = '\0';
    memset(r, 0, sizeof(*r));

    /* request line: method SP request-target SP HTTP-version */
    line = p->head;
    eol = strchr(line, '\n');
    *eol = '\0';
    if (eol > line && eol[-1] == '\r') {
        eol[-1] = '\0';
    }
    for (s = line; *s && http_is_tchar((unsigned char) *s); s++) {
        /* void */
    }
    if (s == line || *s != ' ') {
        return http_fail(p, 400, "bad request line: method");
    }
    *s++ = '\0';
    r->method = line;
    r->target = s;
    for ( ; *s && *s != ' '; s++) {
        if ((unsigned char) *s <= 0x20 || *s == 0x7f) {
            return http_fail(p, 400, "bad request line: target");
        }
    }
    if (s == r->target || *s != ' ') {
        return http_fail(p, 400, "bad request line: target");
    }
    *s++ = '\0';
    if (r->target[0] != '/' && strcmp(r->target, "*") != 0) {
        return http_fail(p, 400, "bad request line: target must be a path");
    }
    if (strncmp(s, "HTTP/", 5) != 0 || !isdigit((unsigned char) s[5])
        || s[6] != '.' || !isdigit((unsigned char) s[7]) || s[8] != '\0')
    {
        return http_fail(p, 400, "bad request line: version");
    }
    if (s[5] != '1') {
        return http_fail(p, 505, "HTTP version %s not supported", s + 5);
    }
    r->version = s[7] == '0' ? 10 : 11;

    /* header fields */
    line = eol + 1;
    while (*line != '\0' && *line != '\r' && *line != '\n') {
        eol = strchr(line, '\n');
        *eol = '\0';
        if (eol > line && eol[-1] == '\r') {
            eol[-1] = '\0';
        }
        if (*line == ' ' || *line == '\t') {
            return http_fail(p, 400, "obsolete header line folding");
        }
        for (colon = line; *colon && http_is_tchar((unsigned char) *colon);
             colon++)
        {
            /* void */
        }
        if (colon == line || *colon != ':') {
            return http_fail(p, 400, "bad header name");
        }
        *colon = '\0';
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++) {
            /* void */
        }
        for (e = v; *e; e++) {
            if (((unsigned char) *e < 0x20 && *e != '\t') || *e == 0x7f) {
                return http_fail(p, 400, "bad character in header %s",
                                 line);
            }
        }
        while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
            *--e = '\0';
        }
        if (r->n_headers == HTTP_MAX_HEADERS) {
            return http_fail(p, 431, "more than %d header fields",
                             HTTP_MAX_HEADERS);
        }
        r->headers[r->n_headers].name = line;
        r->headers[r->n_headers].value = v;
        r->n_headers++;
        line = eol + 1;
    }

    /* the path (target without its query) is copied after the head */
    s = p->head + head_len + 1;
    for (v = (char *) r->target; *v && *v != '?'; v++) {
        *s++ = *v;
    }
    *s = '\0';
    r->path = p->head + head_len + 1;

    for (i = 0; i < (size_t) r->n_headers; i++) {
        h = r->headers[i].name;
        if (strcasecmp(h, "content-length") == 0) {
            v = (char *) r->headers[i].value;
            if (*v == '\0') {
                return http_fail(p, 400, "bad Content-Length");
            }
            cl_val = 0;
            for (s = v; *s; s++) {
                if (!isdigit((unsigned char) *s)) {
                    return http_fail(p, 400, "bad Content-Length");
                }
                if (cl_val > p->max_body) {
                    break;
                }
                cl_val = cl_val * 10 + (size_t) (*s - '0');
            }
            if (cl != NULL && strcmp(cl, v) != 0) {
                return http_fail(p, 400, "conflicting Content-Length");
            }
            cl = v;
            n_cl++;
        } else if (strcasecmp(h, "transfer-encoding") == 0) {
            if (te != NULL) {
                return http_fail(p, 501, "more than one Transfer-Encoding");
            }
            te = r->headers[i].value;
        }
    }

    if (r->version == 11 && http_request_header(r, "host") == NULL) {
        return http_fail(p, 400, "HTTP/1.1 request without Host");
    }

    h = http_request_header(r, "connection");
    if (r->version == 11) {
        r->keep_alive = !(h != NULL && http_has_token(h, "close"));
    } else {
        r->keep_alive = h != NULL && http_has_token(h, "keep-alive");
    }

    h = http_request_header(r, "expect");
    p->expect = h != NULL && strcasecmp(h, "100-continue") == 0
                && r->version == 11;

    if (te != NULL) {
        if (cl != NULL) {
            return http_fail(p, 400,
                             "both Content-Length and Transfer-Encoding");
        }
        if (strcasecmp(te, "chunked") != 0) {
            return http_fail(p, 501, "Transfer-Encoding %.40s not supported",
                             te);
        }
        r->chunked = 1;
        p->state = HTTP_ST_CHUNK_SIZE;
        return HTTP_OK;
    }
    if (cl_val > p->max_body) {
        return http_fail(p, 413, "body larger than %zu bytes", p->max_body);
    }
    if (cl_val == 0) {
        p->expect = 0;
        p->state = HTTP_ST_DONE;
        return HTTP_OK;
    }
    if (http_body_reserve(p, cl_val) != 0) {
        return http_fail(p, 413, "out of memory for the body");
    }
    p->need = cl_val;
    p->state = HTTP_ST_BODY;
    return HTTP_OK;
}

const char *
http_request_header(const http_request_t *req, const char *name)
{
    int  i;

    for (i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0) {
            return req->headers[i].value;
        }
    }
    return NULL;
}

const char *
http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}
