/*
 * An I/O-free incremental HTTP/1.1 request parser, in the manner of
 * hiredis' read.c: the caller feeds the bytes it read, then asks for the
 * next complete request, which is either there (HTTP_OK), not yet
 * (HTTP_NEED_MORE) or impossible (HTTP_ERROR with a status to answer:
 * 400, 413, 431, 501 or 505). Pipelined requests come out one per call.
 *
 * Bodies: Content-Length and Transfer-Encoding: chunked (decoded; trailers
 * are read and dropped). A request carrying both is refused (smuggling).
 * Lines may end in CRLF or a bare LF. Empty lines before a request line
 * are skipped.
 */

#ifndef LLMC_HTTP_H
#define LLMC_HTTP_H

#include <stddef.h>

#define HTTP_MAX_HEADERS      64
#define HTTP_DEF_MAX_HEAD     (16 * 1024)
#define HTTP_DEF_MAX_BODY     (8 * 1024 * 1024)

typedef enum {
    HTTP_ERROR = -1,
    HTTP_OK = 0,
    HTTP_NEED_MORE,
    HTTP_CONTINUE           /* head done, "Expect: 100-continue": answer
                               "100 Continue" then call again */
} http_status_e;

typedef struct {
    const char  *name;      /* NUL-terminated, as sent */
    const char  *value;     /* NUL-terminated, outer blanks trimmed */
} http_header_t;

typedef struct {
    const char     *method;      /* "GET", "POST", ... */
    const char     *target;      /* request-target, with its query */
    const char     *path;        /* target without the query */
    int             version;     /* 10 or 11 */
    int             keep_alive;  /* the connection stays open after it */
    int             chunked;     /* the body came chunked */
    http_header_t   headers[HTTP_MAX_HEADERS];
    int             n_headers;
    const char     *body;        /* NUL-terminated (not counted in len) */
    size_t          body_len;
} http_request_t;

typedef struct http_parser http_parser_t;

/* max_head: request line + headers in bytes (0: HTTP_DEF_MAX_HEAD);
 * max_body: decoded body in bytes (0: HTTP_DEF_MAX_BODY) */
http_parser_t *http_parser_new(size_t max_head, size_t max_body);
void http_parser_free(http_parser_t *p);

/* copies len bytes in; returns 0, or -1 when out of memory */
int http_parser_feed(http_parser_t *p, const void *buf, size_t len);

/*
 * Parses the next request from what was fed. On HTTP_OK, req points into
 * the parser and stays valid until the next feed or next call. After
 * HTTP_ERROR the parser stays in error (the connection's framing is lost):
 * answer http_parser_status() and close.
 */
http_status_e http_parser_next(http_parser_t *p, http_request_t *req);

int http_parser_status(const http_parser_t *p);      /* 400, 413, ... */
const char *http_parser_error(const http_parser_t *p);
size_t http_parser_buffered(const http_parser_t *p); /* bytes not consumed */
/* 1 while a request has begun to arrive and is not complete yet */
int http_parser_partial(const http_parser_t *p);

/* case-insensitive header lookup; NULL when absent */
const char *http_request_header(const http_request_t *req, const char *name);

/* "OK", "Not Found", ... for a status code; "Unknown" otherwise */
const char *http_reason(int status);

#endif /* LLMC_HTTP_H */
