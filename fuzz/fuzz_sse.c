/*
 * libFuzzer target for the SSE parser and the stream assembler.  The first
 * byte picks the api and how the rest is cut into feeds; the rest is the
 * upstream body.  Checked:
 *   - the parser hands out NUL-terminated data of the length it says, and
 *     the same events however the bytes are split;
 *   - the assembler reaches the same state and result fed whole and fed in
 *     pieces;
 *   - a DONE result is a JSON object that replays, and the replay
 *     assembles back to the same JSON (with and without the usage chunk).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_sse.h"
#include "llmc_stream.h"

typedef struct {
    uint64_t  hash;
    size_t    n;
} digest_t;

static int
on_event(void *data, const llmc_sse_event_t *ev)
{
    digest_t  *d = data;
    size_t     i;

    if (ev->data[ev->data_len] != '\0' || ev->event_len == 0) {
        abort();
    }
    d->n++;
    for (i = 0; i < ev->event_len; i++) {
        d->hash = (d->hash ^ (unsigned char) ev->event[i]) * 1099511628211u;
    }
    d->hash = (d->hash ^ 0x100) * 1099511628211u;
    for (i = 0; i < ev->data_len; i++) {
        d->hash = (d->hash ^ (unsigned char) ev->data[i]) * 1099511628211u;
    }
    d->hash = (d->hash ^ 0x200) * 1099511628211u;
    return 0;
}

static int
sse_digest(const uint8_t *buf, size_t len, size_t step, digest_t *d)
{
    llmc_sse_t  *p;
    size_t       off, n;
    int          rc = 0;

    memset(d, 0, sizeof(*d));
    p = llmc_sse_new(4096);
    if (p == NULL) {
        return -2;
    }
    for (off = 0; off < len && rc == 0; off += n) {
        n = len - off < step ? len - off : step;
        rc = llmc_sse_feed(p, (const char *) buf + off, n, on_event, d);
    }
    llmc_sse_free(p);
    return rc;
}

static char *
assemble(llmc_api_e api, const char *buf, size_t len, size_t step,
    llmc_stream_state_e *st)
{
    llmc_stream_t  *s;
    size_t          off, n;
    char           *out;

    s = llmc_stream_new(api, 1 << 20);
    if (s == NULL) {
        abort();
    }
    for (off = 0; off < len; off += n) {
        n = len - off < step ? len - off : step;
        if (llmc_stream_feed(s, buf + off, n) != 0) {
            break;
        }
    }
    *st = llmc_stream_finish(s);
    if (*st == LLMC_STREAM_FAILED && llmc_stream_error(s)[0] == '\0') {
        abort();
    }
    out = llmc_stream_result(s, NULL);
    if ((out != NULL) != (*st == LLMC_STREAM_DONE)) {
        abort();
    }
    llmc_stream_free(s);
    return out;
}

static void
round_trip(llmc_api_e api, const char *res, int include_usage,
    size_t chunk)
{
    char                *sse, *again, err[256];
    size_t               len;
    llmc_stream_state_e  st;
    json_t              *a, *b;

    sse = llmc_stream_replay(api, res, strlen(res), include_usage, chunk,
                             &len, err, sizeof(err));
    if (sse == NULL) {
        abort();
    }
    again = assemble(api, sse, len, len ? len : 1, &st);
    if (st != LLMC_STREAM_DONE) {
        abort();
    }
    a = json_loads(res, JSON_ALLOW_NUL, NULL);
    b = json_loads(again, JSON_ALLOW_NUL, NULL);
    if (!include_usage
        && (api == LLMC_API_CHAT || api == LLMC_API_COMPLETIONS))
    {
        json_object_del(a, "usage");
    }
    if (a == NULL || b == NULL || !json_equal(a, b)) {
        abort();
    }
    json_decref(a);
    json_decref(b);
    free(again);
    free(sse);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const llmc_api_e  apis[] = { LLMC_API_CHAT, LLMC_API_COMPLETIONS,
                                        LLMC_API_RESPONSES,
                                        LLMC_API_MESSAGES };
    llmc_api_e               api;
    llmc_stream_state_e      st1, st2;
    digest_t                 d1, d2;
    size_t                   step;
    char                    *buf, *r1, *r2;
    int                      rc1, rc2;

    if (size < 1 || size > 65536) {
        return 0;
    }
    api = apis[data[0] & 3];
    step = (data[0] >> 2) + 1;
    data++;
    size--;

    rc1 = sse_digest(data, size, size ? size : 1, &d1);
    rc2 = sse_digest(data, size, step, &d2);
    if (rc1 != rc2 || (rc1 == 0 && (d1.n != d2.n || d1.hash != d2.hash))) {
        abort();
    }

    /* an exact-size copy, so reads past the end are caught */
    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);

    r1 = assemble(api, buf, size, size ? size : 1, &st1);
    r2 = assemble(api, buf, size, step, &st2);
    if (st1 != st2 || (r1 == NULL) != (r2 == NULL)
        || (r1 != NULL && strcmp(r1, r2) != 0))
    {
        abort();
    }
    if (r1 != NULL) {
        round_trip(api, r1, 1, 1 + (data[0] & 7));
        round_trip(api, r1, 0, 0);
    }

    free(r1);
    free(r2);
    free(buf);
    return 0;
}
