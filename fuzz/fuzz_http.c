/*
 * libFuzzer target for the worker's request path: the bytes are fed to the
 * HTTP parser in pieces whose sizes come from the first byte, and every
 * request that comes out is routed and its body decoded as the endpoint's
 * JSON, the way the server does; the decoded stop strings then filter the
 * body as if it were generated text. Nothing may crash, leak or read out
 * of bounds, and a request handed out must be self-consistent.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_request(const http_request_t *req)
{
    api_endpoint_e   ep;
    api_error_t      err;
    api_request_t    r;
    api_textout_t    t;
    size_t           i, n;
    char            *json;

    if (strlen(req->body) > req->body_len || req->body[req->body_len] != 0) {
        __builtin_trap();
    }
    if (api_route(req->method, req->path, &ep, &err) != 0) {
        json = api_error_json(&err);
        free(json);
    }
    /* every endpoint's decoder, whatever the path said */
    for (ep = API_EP_COMPLETIONS; ep <= API_EP_EMBEDDINGS; ep++) {
        if (api_request_parse(ep, req->body, req->body_len, &r, &err) != 0) {
            json = api_error_json(&err);
            if (json == NULL || err.status != 400) {
                __builtin_trap();
            }
            free(json);
            continue;
        }
        api_textout_init(&t, r.stop, r.n_stop);
        for (i = 0; i < req->body_len && !t.stopped; i += 3) {
            n = req->body_len - i < 3 ? req->body_len - i : 3;
            api_textout_push(&t, req->body + i, n);
            n = api_textout_ready(&t, 0);
            if (api_utf8_complete(t.buf, n) != n) {
                __builtin_trap();
            }
            json = api_chunk_json(ep, "id", 0, "m", NULL, t.buf, n, NULL);
            if (json == NULL) {
                __builtin_trap();
            }
            free(json);
            api_textout_consume(&t, n);
        }
        api_textout_ready(&t, 1);
        api_textout_free(&t);
        api_request_free(&r);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_parser_t   *p;
    http_request_t   req;
    http_status_e    rc;
    size_t           step, off = 1;

    if (size == 0) {
        return 0;
    }
    step = (size_t) data[0] % 17;
    p = http_parser_new(4096, 65536);
    while (off < size) {
        /* step 0: everything at once */
        size_t n = step == 0 || size - off < step ? size - off : step;

        http_parser_feed(p, data + off, n);
        off += n;
        for ( ;; ) {
            rc = http_parser_next(p, &req);
            if (rc == HTTP_OK) {
                fuzz_request(&req);
                continue;
            }
            if (rc == HTTP_CONTINUE) {
                continue;
            }
            break;
        }
        if (rc == HTTP_ERROR) {
            if (http_parser_status(p) < 400 || http_reason(
                    http_parser_status(p))[0] == 'U')
            {
                __builtin_trap();
            }
            break;
        }
    }
    http_parser_free(p);
    return 0;
}
