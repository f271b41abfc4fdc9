/*
 * Incremental SSE parser.  Bytes are cut into lines; a line is copied into
 * a buffer only when it straddles two feeds, so the common case (whole
 * lines in one buffer) parses in place.  The bound counts the raw bytes of
 * the current event, so a peer that never sends a blank line, or one
 * endless line, cannot make the parser grow without limit.
 */

#include <stdlib.h>
#include <string.h>

#include "llmc_json.h"
#include "llmc_sse.h"

#define LLMC_SSE_DEFAULT_MAX  (1024 * 1024)

struct llmc_sse_s {
    size_t          max_event;
    size_t          event_bytes;    /* raw bytes of the current event */
    llmc_buf_t      line;           /* a line split across feeds */
    llmc_buf_t      data;
    llmc_buf_t      event;
    unsigned        ndata;          /* data: lines in the current event */
    unsigned        nfields;        /* field lines in it, comments not */
    unsigned        bom;            /* BOM bytes matched so far */
    unsigned        started:1;      /* past the BOM check */
    unsigned        last_cr:1;      /* previous feed ended in CR */
    unsigned        failed:1;
    const char     *err;
};

static const unsigned char  llmc_sse_bom[3] = { 0xef, 0xbb, 0xbf };

llmc_sse_t *
llmc_sse_new(size_t max_event)
{
    llmc_sse_t  *p;

    p = calloc(1, sizeof(llmc_sse_t));
    if (p == NULL) {
        return NULL;
    }
    p->max_event = max_event ? max_event : LLMC_SSE_DEFAULT_MAX;
    p->err = "";
    return p;
}

void
llmc_sse_free(llmc_sse_t *p)
{
    if (p == NULL) {
        return;
    }
    free(p->line.p);
    free(p->data.p);
    free(p->event.p);
    free(p);
}

const char *
llmc_sse_error(const llmc_sse_t *p)
{
    return p->err;
}

int
llmc_sse_pending(const llmc_sse_t *p)
{
    return p->nfields > 0 || p->line.len > 0;
}

static int
llmc_sse_fail(llmc_sse_t *p, const char *err)
{
    p->failed = 1;
    p->err = err;
    return -1;
}

static int
llmc_sse_dispatch(llmc_sse_t *p, llmc_sse_handler_pt h, void *data)
{
    llmc_sse_event_t  ev;
    int               rc = 0;

    if (p->ndata > 0) {
        if (p->event.len > 0) {
            ev.event = p->event.p;
            ev.event_len = p->event.len;
        } else {
            ev.event = "message";
            ev.event_len = sizeof("message") - 1;
        }
        ev.data = p->data.p;
        ev.data_len = p->data.len;
        rc = h(data, &ev);
    }
    p->ndata = 0;
    p->nfields = 0;
    p->data.len = 0;
    p->event.len = 0;
    p->event_bytes = 0;
    if (rc != 0) {
        return llmc_sse_fail(p, "stopped by the handler");
    }
    return 0;
}

static int
llmc_sse_line(llmc_sse_t *p, const char *s, size_t n, llmc_sse_handler_pt h,
    void *data)
{
    const char  *colon, *v;
    size_t       name_len, vlen;

    if (n == 0) {
        return llmc_sse_dispatch(p, h, data);
    }
    if (s[0] == ':') {
        return 0;
    }
    p->nfields++;

    colon = memchr(s, ':', n);
    if (colon != NULL) {
        name_len = colon - s;
        v = colon + 1;
        vlen = n - name_len - 1;
        if (vlen > 0 && v[0] == ' ') {
            v++;
            vlen--;
        }
    } else {
        name_len = n;
        v = s + n;
        vlen = 0;
    }

    if (name_len == 4 && memcmp(s, "data", 4) == 0) {
        if ((p->ndata > 0 && llmc_buf_put(&p->data, "\n", 1) != 0)
            || llmc_buf_put(&p->data, v, vlen) != 0)
        {
            return llmc_sse_fail(p, "out of memory");
        }
        p->ndata++;

    } else if (name_len == 5 && memcmp(s, "event", 5) == 0) {
        p->event.len = 0;
        if (llmc_buf_put(&p->event, v, vlen) != 0) {
            return llmc_sse_fail(p, "out of memory");
        }
    }

    /* id: and retry: matter to a reconnecting browser, not to a cache;
     * unknown fields are ignored as the spec says */
    return 0;
}

int
llmc_sse_feed(llmc_sse_t *p, const char *buf, size_t len,
    llmc_sse_handler_pt h, void *data)
{
    const char  *end, *q, *s;
    size_t       n;

    if (p->failed) {
        return -1;
    }
    end = buf + len;

    while (!p->started && buf < end) {
        if ((unsigned char) *buf == llmc_sse_bom[p->bom]) {
            buf++;
            if (++p->bom == sizeof(llmc_sse_bom)) {
                p->started = 1;
            }
            continue;
        }
        /* not a BOM after all: the bytes matched so far are text */
        p->started = 1;
        if (p->bom > 0) {
            if (llmc_buf_put(&p->line, (const char *) llmc_sse_bom,
                                 p->bom) != 0)
            {
                return llmc_sse_fail(p, "out of memory");
            }
            p->event_bytes += p->bom;
        }
    }

    if (p->last_cr && buf < end) {
        p->last_cr = 0;
        if (*buf == '\n') {
            buf++;
        }
    }

    while (buf < end) {
        for (q = buf; q < end && *q != '\n' && *q != '\r'; q++) {
            /* void */
        }
        n = q - buf;

        if (p->event_bytes + n > p->max_event) {
            return llmc_sse_fail(p, "event too long");
        }
        p->event_bytes += n;

        if (q == end) {
            if (llmc_buf_put(&p->line, buf, n) != 0) {
                return llmc_sse_fail(p, "out of memory");
            }
            break;
        }

        if (p->line.len > 0) {
            if (llmc_buf_put(&p->line, buf, n) != 0) {
                return llmc_sse_fail(p, "out of memory");
            }
            s = p->line.p;
            n = p->line.len;
        } else {
            s = buf;
        }

        /* a line end counts towards the bound too, so an event of empty
         * field lines ("x\nx\n...") is bounded as well */
        if (n > 0 && ++p->event_bytes > p->max_event) {
            return llmc_sse_fail(p, "event too long");
        }

        if (*q == '\r') {
            if (q + 1 == end) {
                p->last_cr = 1;
            } else if (q[1] == '\n') {
                q++;
            }
        }
        buf = q + 1;

        if (llmc_sse_line(p, s, n, h, data) != 0) {
            p->line.len = 0;
            return -1;
        }
        p->line.len = 0;
    }

    return 0;
}
