/*
 * The SSE parser: framing per the event-stream rules, fed whole, split at
 * every byte boundary and one byte at a time; the bound; bad input.
 */

#include <string.h>

#include "tap.h"
#include "llmc_sse.h"

/* the events seen, rendered as "<event>|<data>\x1e" each */
typedef struct {
    char    log[8192];
    size_t  len;
    int     n;
    int     stop_at;        /* the handler stops on this event (1-based) */
} seen_t;

static int
collect(void *data, const llmc_sse_event_t *ev)
{
    seen_t  *s = data;
    int      w;

    s->n++;
    if (strlen(ev->data) != ev->data_len) {
        /* data is NUL-terminated at data_len (no NUL inside here) */
        return 1;
    }
    w = snprintf(s->log + s->len, sizeof(s->log) - s->len, "%.*s|%.*s\x1e",
                 (int) ev->event_len, ev->event, (int) ev->data_len,
                 ev->data);
    if (w > 0) {
        s->len += (size_t) w;
    }
    return s->stop_at != 0 && s->n == s->stop_at;
}

/* feeds input in pieces of step bytes (0: whole); returns feed's result */
static int
parse(const char *in, size_t len, size_t step, size_t max, seen_t *s)
{
    llmc_sse_t  *p;
    size_t       off, n;
    int          rc = 0;

    memset(s, 0, sizeof(*s));
    p = llmc_sse_new(max);
    if (p == NULL) {
        return -2;
    }
    if (step == 0) {
        step = len ? len : 1;
    }
    for (off = 0; off < len && rc == 0; off += n) {
        n = len - off < step ? len - off : step;
        rc = llmc_sse_feed(p, in + off, n, collect, s);
    }
    llmc_sse_free(p);
    return rc;
}

static void
check(const char *name, const char *in, const char *want)
{
    seen_t  s;
    size_t  len = strlen(in), i;
    int     rc, bad;
    char    first[8192];

    rc = parse(in, len, 0, 0, &s);
    ok(rc == 0, "%s: parses", name);
    is_str(s.log, want, "%s: events", name);
    memcpy(first, s.log, s.len + 1);

    rc = parse(in, len, 1, 0, &s);
    ok(rc == 0 && strcmp(s.log, first) == 0, "%s: one byte at a time",
       name);

    /* two feeds, split at every boundary */
    bad = 0;
    for (i = 0; i <= len; i++) {
        llmc_sse_t  *p = llmc_sse_new(0);

        memset(&s, 0, sizeof(s));
        if (llmc_sse_feed(p, in, i, collect, &s) != 0
            || llmc_sse_feed(p, in + i, len - i, collect, &s) != 0
            || strcmp(s.log, first) != 0)
        {
            bad++;
        }
        llmc_sse_free(p);
    }
    is_int(bad, 0, "%s: split at each of %zu boundaries", name, len + 1);
}

static void
test_framing(void)
{
    check("lf", "data: a\n\ndata: b\n\n", "message|a\x1emessage|b\x1e");
    check("crlf", "event: x\r\ndata: a\r\n\r\ndata: b\r\n\r\n",
          "x|a\x1emessage|b\x1e");
    check("cr", "event: x\rdata: a\r\rdata: b\r\r",
          "x|a\x1emessage|b\x1e");
    check("mixed ends", "data: a\r\n\ndata: b\r\r\ndata: c\n\r",
          "message|a\x1emessage|b\x1emessage|c\x1e");
    check("multi-line data", "data: one\ndata:two\ndata:  three\n\n",
          "message|one\ntwo\n three\x1e");
    check("comments", ": keep-alive\n\n:x\ndata: a\n: mid\ndata: b\n\n",
          "message|a\nb\x1e");
    check("bom", "\xef\xbb\xbf" "data: a\n\n", "message|a\x1e");
    check("bom only first", "\xef\xbb\xbf\xef\xbb\xbf" "data: a\n\n"
          "data: b\n\n", "message|b\x1e");
    check("not quite a bom", "\xef\xbb" "data: a\n\ndata: b\n\n",
          "message|b\x1e");
    check("id retry unknown", "id: 7\nretry: 100\nfoo: bar\ndata: a\n\n",
          "message|a\x1e");
    check("no data no event", "event: x\n\nid: 1\n\ndata: a\n\n",
          "message|a\x1e");
    check("empty data dispatches", "data\n\ndata:\n\n",
          "message|\x1emessage|\x1e");
    check("event reset after dispatch",
          "event: e1\ndata: a\n\ndata: b\n\n", "e1|a\x1emessage|b\x1e");
    check("last event line wins", "event: a\nevent: b\ndata: x\n\n",
          "b|x\x1e");
    check("no space kept", "data:x\nevent:y\n\n", "y|x\x1e");
    check("colon in value", "data: {\"a\":\"b: c\"}\n\n",
          "message|{\"a\":\"b: c\"}\x1e");
    check("unfinished event dropped", "data: a\n\ndata: b\n",
          "message|a\x1e");
    check("unfinished line dropped", "data: a\n\ndata: b", "message|a\x1e");
    check("empty", "", "");
}

static void
test_bound(void)
{
    seen_t      s;
    llmc_sse_t *p;
    char        big[300];
    int         rc;

    /* "data: " + 10 bytes = 16 bytes of line, + 1 for its end */
    rc = parse("data: 0123456789\n\n", 18, 0, 17, &s);
    ok(rc == 0 && s.n == 1, "an event of exactly max_event bytes passes");
    rc = parse("data: 0123456789\n\n", 18, 0, 16, &s);
    ok(rc == -1 && s.n == 0, "one byte more fails");
    rc = parse("data: 0123456789\n\n", 18, 1, 16, &s);
    ok(rc == -1 && s.n == 0, "one byte more fails, fed byte by byte");

    /* the bound is per event: many small events are fine */
    rc = parse("data: 0123\n\ndata: 4567\n\ndata: 89ab\n\n", 36, 0, 12, &s);
    ok(rc == 0 && s.n == 3, "the bound is per event");

    /* many short lines add up, line ends included */
    rc = parse("data\ndata\ndata\ndata\n\n", 21, 0, 16, &s);
    ok(rc == -1, "short lines add up to the bound");

    /* a line that never ends */
    memset(big, 'x', sizeof(big));
    p = llmc_sse_new(256);
    memset(&s, 0, sizeof(s));
    rc = llmc_sse_feed(p, big, 200, collect, &s);
    ok(rc == 0, "a long line under the bound is kept");
    rc = llmc_sse_feed(p, big, 100, collect, &s);
    ok(rc == -1, "an endless line fails at the bound");
    ok(strstr(llmc_sse_error(p), "too long") != NULL, "error says why: %s",
       llmc_sse_error(p));
    rc = llmc_sse_feed(p, "\n\n", 2, collect, &s);
    ok(rc == -1 && s.n == 0, "a failed parser stays failed");
    llmc_sse_free(p);
}

static void
test_stop(void)
{
    seen_t       s;
    llmc_sse_t  *p;
    const char  *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    int          rc;

    p = llmc_sse_new(0);
    memset(&s, 0, sizeof(s));
    s.stop_at = 2;
    rc = llmc_sse_feed(p, in, strlen(in), collect, &s);
    ok(rc == -1 && s.n == 2, "a handler's non-zero return stops the feed");
    ok(strstr(llmc_sse_error(p), "handler") != NULL, "error: %s",
       llmc_sse_error(p));
    rc = llmc_sse_feed(p, "data: 4\n\n", 9, collect, &s);
    ok(rc == -1 && s.n == 2, "and later feeds");
    llmc_sse_free(p);
}

static void
test_pending(void)
{
    seen_t       s;
    llmc_sse_t  *p;

    p = llmc_sse_new(0);
    memset(&s, 0, sizeof(s));
    ok(!llmc_sse_pending(p), "nothing pending at the start");
    llmc_sse_feed(p, "data: a", 7, collect, &s);
    ok(llmc_sse_pending(p), "a partial line is pending");
    llmc_sse_feed(p, "\n", 1, collect, &s);
    ok(llmc_sse_pending(p), "an event without its blank line is pending");
    llmc_sse_feed(p, "\n", 1, collect, &s);
    ok(!llmc_sse_pending(p) && s.n == 1, "nothing after the dispatch");
    llmc_sse_feed(p, ": bye\n", 6, collect, &s);
    ok(!llmc_sse_pending(p), "a comment line is not pending");
    llmc_sse_feed(p, "id: 3\n", 6, collect, &s);
    ok(llmc_sse_pending(p), "an id line is");
    llmc_sse_free(p);
}

int
main(void)
{
    test_framing();
    test_bound();
    test_stop();
    test_pending();
    return done_testing();
}
