/*
 * The HTTP/1.1 request parser: whole and byte-at-a-time feeding,
 * pipelining, Content-Length and chunked bodies, 100-continue, and every
 * error path with its status.
 */

#include "tap.h"
#include "http.h"

/* feeds all of s at once (or one byte at a time) and returns the result of
 * the first http_parser_next() that is not NEED_MORE */
static http_status_e
parse(http_parser_t *p, const char *s, size_t len, int bytewise,
      http_request_t *req)
{
    http_status_e  rc = HTTP_NEED_MORE;
    size_t         i;

    if (!bytewise) {
        http_parser_feed(p, s, len);
        return http_parser_next(p, req);
    }
    for (i = 0; i < len; i++) {
        http_parser_feed(p, s + i, 1);
        rc = http_parser_next(p, req);
        if (rc == HTTP_CONTINUE) {
            rc = http_parser_next(p, req);
        }
        if (rc != HTTP_NEED_MORE) {
            if (rc == HTTP_OK && i + 1 != len) {
                printf("# finished at byte %zu of %zu\n", i + 1, len);
            }
            return rc;
        }
    }
    return rc;
}

static void
feed_str(http_parser_t *p, const char *s)
{
    http_parser_feed(p, s, strlen(s));
}

static int
expect_error(const char *name, const char *s, int status, size_t max_head,
             size_t max_body)
{
    http_parser_t   *p;
    http_request_t   req;
    http_status_e    rc;
    int              bytewise, good = 1;

    for (bytewise = 0; bytewise < 2; bytewise++) {
        p = http_parser_new(max_head, max_body);
        rc = parse(p, s, strlen(s), bytewise, &req);
        if (!ok(rc == HTTP_ERROR && http_parser_status(p) == status,
                "%s -> %d%s", name, status, bytewise ? " (bytewise)" : ""))
        {
            printf("#   rc %d status %d: %s\n", rc, http_parser_status(p),
                   http_parser_error(p));
            good = 0;
        }
        ok(http_parser_next(p, &req) == HTTP_ERROR,
           "%s: the parser stays in error", name);
        http_parser_free(p);
    }
    return good;
}

static void
test_simple(void)
{
    static const char  get[] =
        "GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\nX-Long:   spaced  \r\n"
        "\r\n";
    static const char  post[] =
        "POST /v1/completions HTTP/1.1\r\nHost: a\r\n"
        "Content-Type: application/json\r\nContent-Length: 11\r\n\r\n"
        "{\"a\":\"bc\"}\n";
    http_parser_t   *p;
    http_request_t   req;
    int              bytewise;

    for (bytewise = 0; bytewise < 2; bytewise++) {
        p = http_parser_new(0, 0);
        is_int(parse(p, get, sizeof(get) - 1, bytewise, &req), HTTP_OK,
               "GET parsed (bytewise %d)", bytewise);
        is_str(req.method, "GET", "method");
        is_str(req.target, "/v1/models?x=1", "target keeps the query");
        is_str(req.path, "/v1/models", "path drops the query");
        is_int(req.version, 11, "HTTP/1.1");
        ok(req.keep_alive, "1.1 keeps the connection by default");
        is_str(http_request_header(&req, "x-long"), "spaced",
               "header value trimmed, name case-insensitive");
        ok(http_request_header(&req, "missing") == NULL, "absent header");
        is_int(req.body_len, 0, "no body");
        is_int(http_parser_next(p, &req), HTTP_NEED_MORE,
               "nothing more buffered");

        is_int(parse(p, post, sizeof(post) - 1, bytewise, &req), HTTP_OK,
               "POST parsed after a GET on the same parser");
        is_str(req.method, "POST", "POST method");
        is_int(req.body_len, 11, "body length");
        is_str(req.body, "{\"a\":\"bc\"}\n", "body bytes, NUL-terminated");
        is_int(http_parser_buffered(p), 0, "everything consumed");
        http_parser_free(p);
    }
}

static void
test_pipelined(void)
{
    static const char  three[] =
        "\r\nPOST /a HTTP/1.1\nHost: h\nContent-Length: 3\n\nabc"
        "GET /b HTTP/1.0\r\n\r\n"
        "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
        "4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
        "GET /d HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n";
    http_parser_t   *p;
    http_request_t   req;

    p = http_parser_new(0, 0);
    http_parser_feed(p, three, sizeof(three) - 1);
    is_int(http_parser_next(p, &req), HTTP_OK, "pipelined 1");
    is_str(req.path, "/a", "1: path (LF-only lines, leading CRLF skipped)");
    is_str(req.body, "abc", "1: body");
    is_int(http_parser_next(p, &req), HTTP_OK, "pipelined 2");
    is_str(req.path, "/b", "2: path");
    is_int(req.version, 10, "2: HTTP/1.0 without Host is fine");
    ok(!req.keep_alive, "2: 1.0 closes by default");
    is_int(http_parser_next(p, &req), HTTP_OK, "pipelined 3");
    is_str(req.path, "/c", "3: path");
    ok(req.chunked, "3: chunked");
    is_int(req.body_len, 9, "3: de-chunked length");
    is_str(req.body, "Wikipedia", "3: de-chunked body, trailer dropped");
    ok(!req.keep_alive, "3: Connection: close");
    is_int(http_parser_next(p, &req), HTTP_NEED_MORE,
           "4 is incomplete: need more");
    http_parser_feed(p, "\r\n", 2);
    is_int(http_parser_next(p, &req), HTTP_OK, "4 completes");
    ok(!req.keep_alive, "4: close among Connection tokens");
    http_parser_free(p);
}

static void
test_chunked_bytewise(void)
{
    static const char  s[] =
        "POST /x HTTP/1.1\r\nHost: h\r\ntransfer-encoding: Chunked\r\n\r\n"
        "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
        "A\r\n0123456789\r\n0\r\n\r\n";
    http_parser_t   *p;
    http_request_t   req;

    p = http_parser_new(0, 0);
    is_int(parse(p, s, sizeof(s) - 1, 1, &req), HTTP_OK,
           "chunked body byte at a time");
    is_str(req.body, "abcdefghijklmnopqrstuvwxyz0123456789",
           "hex sizes in both cases");
    http_parser_free(p);
}

static void
test_continue(void)
{
    static const char  head[] =
        "POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
        "Content-Length: 2\r\n\r\n";
    http_parser_t   *p;
    http_request_t   req;

    p = http_parser_new(0, 0);
    ok(!http_parser_partial(p), "nothing fed: not partial");
    http_parser_feed(p, head, sizeof(head) - 1);
    ok(http_parser_partial(p), "a head fed: partial");
    is_int(http_parser_next(p, &req), HTTP_CONTINUE,
           "Expect: 100-continue reported once the head is in");
    is_int(http_parser_next(p, &req), HTTP_NEED_MORE,
           "then the body is awaited");
    ok(http_parser_partial(p), "waiting for the body: partial");
    http_parser_feed(p, "hi", 2);
    is_int(http_parser_next(p, &req), HTTP_OK, "body arrives");
    ok(!http_parser_partial(p), "a request handed out: not partial");
    is_str(req.body, "hi", "body after 100-continue");
    http_parser_free(p);

    /* a client that sent the body without waiting gets no 100 */
    p = http_parser_new(0, 0);
    http_parser_feed(p, head, sizeof(head) - 1);
    http_parser_feed(p, "hi", 2);
    is_int(http_parser_next(p, &req), HTTP_OK,
           "no 100-continue when the body is already there");
    http_parser_free(p);
}

static void
test_limits(void)
{
    char             big[600];
    http_parser_t   *p;
    http_request_t   req;
    int              i;

    /* exactly at the limits passes */
    p = http_parser_new(64, 4);
    feed_str(p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n"
             "abcd");
    is_int(http_parser_next(p, &req), HTTP_OK, "body at max_body passes");
    http_parser_free(p);

    expect_error("Content-Length over max_body",
                 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
                 413, 0, 4);
    expect_error("huge Content-Length",
                 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
                 "99999999999999999999999999\r\n\r\n", 413, 0, 0);
    expect_error("chunks over max_body",
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                 "\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n", 413, 0, 4);
    expect_error("huge chunk size",
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                 "\r\n\r\nffffffffffffffffffff\r\n", 413, 0, 0);

    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    big[sizeof(big) - 1] = '\0';
    expect_error("request line over max_head", big, 414, 128, 0);

    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    expect_error("head over max_head", big, 431, 128, 0);

    /* a chunk-size line padded with extensions, and a long trailer */
    p = http_parser_new(128, 0);
    feed_str(p, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
             "\r\n\r\n1;");
    for (i = 0; i < 120; i++) {       /* past HTTP_MAX_CHUNK_LINE (1024) */
        feed_str(p, "ext=value;");
    }
    is_int(http_parser_next(p, &req), HTTP_ERROR, "chunk line too long");
    is_int(http_parser_status(p), 400, "chunk line too long -> 400");
    http_parser_free(p);

    p = http_parser_new(128, 0);
    feed_str(p, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
             "\r\n\r\n1\r\na\r\n0\r\n");
    for (i = 0; i < 20; i++) {
        feed_str(p, "X-Trailer: 123456\r\n");
    }
    is_int(http_parser_next(p, &req), HTTP_ERROR, "trailer too long");
    is_int(http_parser_status(p), 431, "trailer too long -> 431");
    http_parser_free(p);

    /* many header lines */
    p = http_parser_new(0, 0);
    http_parser_feed(p, "GET / HTTP/1.1\r\nHost: h\r\n", 25);
    for (i = 0; i < HTTP_MAX_HEADERS; i++) {
        http_parser_feed(p, "A: b\r\n", 6);
    }
    http_parser_feed(p, "\r\n", 2);
    is_int(http_parser_next(p, &req), HTTP_ERROR, "too many header fields");
    is_int(http_parser_status(p), 431, "too many header fields -> 431");
    http_parser_free(p);
}

/* a NUL inside the head (strlen-based helpers cannot feed it) */
static void
p_nul_test(void)
{
    static const char  s[] = "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n";
    http_parser_t     *p = http_parser_new(0, 0);
    http_request_t     req;

    http_parser_feed(p, s, sizeof(s) - 1);
    is_int(http_parser_next(p, &req), HTTP_ERROR, "NUL in the head");
    is_int(http_parser_status(p), 400, "NUL in the head -> 400");
    http_parser_free(p);
}

static void
test_errors(void)
{
    expect_error("no method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0);
    expect_error("bad method char", "G@T / HTTP/1.1\r\nHost: h\r\n\r\n",
                 400, 0, 0);
    expect_error("two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
                 400, 0, 0);
    expect_error("no version", "GET /\r\nHost: h\r\n\r\n", 400, 0, 0);
    expect_error("target not a path", "GET abc HTTP/1.1\r\nHost: h\r\n\r\n",
                 400, 0, 0);
    expect_error("control char in target",
                 "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0);
    p_nul_test();
    expect_error("bad version", "GET / HTTX/1.1\r\nHost: h\r\n\r\n",
                 400, 0, 0);
    expect_error("trailing junk after version",
                 "GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400, 0, 0);
    expect_error("HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, 0, 0);
    expect_error("missing Host", "GET / HTTP/1.1\r\n\r\n", 400, 0, 0);
    expect_error("header without colon",
                 "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400, 0, 0);
    expect_error("space before colon",
                 "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, 0, 0);
    expect_error("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
                 400, 0, 0);
    expect_error("control char in value",
                 "GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n", 400, 0, 0);
    expect_error("bad Content-Length",
                 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n",
                 400, 0, 0);
    expect_error("negative Content-Length",
                 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
                 400, 0, 0);
    expect_error("empty Content-Length",
                 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
                 400, 0, 0);
    expect_error("conflicting Content-Length",
                 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                 "Content-Length: 2\r\n\r\n", 400, 0, 0);
    expect_error("Content-Length and Transfer-Encoding",
                 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n", 400, 0, 0);
    expect_error("gzip Transfer-Encoding",
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                 "\r\n", 501, 0, 0);
    expect_error("bad chunk size",
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                 "\r\n\r\nzz\r\n", 400, 0, 0);
    expect_error("chunk size with junk",
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                 "\r\n\r\n3x\r\nabc\r\n", 400, 0, 0);
    expect_error("chunk data without CRLF",
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                 "\r\n\r\n3\r\nabcX\r\n", 400, 0, 0);
    expect_error("chunk data with CR only",
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                 "\r\n\r\n3\r\nabc\rX", 400, 0, 0);
}

static void
test_reason(void)
{
    is_str(http_reason(404), "Not Found", "reason 404");
    is_str(http_reason(431), "Request Header Fields Too Large", "reason 431");
    is_str(http_reason(299), "Unknown", "reason of an unknown status");
}

int
main(void)
{
    test_simple();
    test_pipelined();
    test_chunked_bytewise();
    test_continue();
    test_limits();
    test_errors();
    test_reason();
    return done_testing();
}
