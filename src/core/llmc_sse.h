/*
 * An incremental Server-Sent Events parser (the WHATWG event-stream rules):
 * bytes in, one callback per dispatched event.  I/O-free and nginx-free,
 * so the module, the worker and the fuzzer share it.
 *
 * Lines end in CRLF, LF or CR (a CR at the end of one buffer and an LF at
 * the start of the next are one line end).  A UTF-8 BOM at the very start
 * is skipped.  "data:" lines are joined with "\n"; "event:" sets the type
 * (default "message"); "id:" and "retry:" are parsed and otherwise
 * ignored; lines starting with ':' are comments; unknown fields are
 * ignored; one space after the colon is dropped.  A blank line dispatches
 * the event unless no data line was seen.  An event still open when the
 * bytes end is never dispatched (as the spec says).
 */

#ifndef LLMC_SSE_H
#define LLMC_SSE_H

#include <stddef.h>

typedef struct {
    const char  *event;       /* "message" when there was no event: line */
    size_t       event_len;
    const char  *data;        /* data lines joined with "\n"; NUL-ended */
    size_t       data_len;
} llmc_sse_event_t;

typedef struct llmc_sse_s  llmc_sse_t;

/* Called once per event; the pointers are valid only during the call.  A
 * non-zero return stops the parser (llmc_sse_feed() then returns -1). */
typedef int (*llmc_sse_handler_pt)(void *data, const llmc_sse_event_t *ev);

/* max_event bounds the bytes of one event (its raw lines, field names
 * included); 0 means the default, 1 MiB.  NULL on allocation failure. */
llmc_sse_t *llmc_sse_new(size_t max_event);

/* Returns 0, or -1 when an event is longer than max_event, the handler
 * stopped, or memory ran out; after -1 every later call returns -1. */
int llmc_sse_feed(llmc_sse_t *p, const char *buf, size_t len,
    llmc_sse_handler_pt h, void *data);

/* Why the last llmc_sse_feed() failed ("" if it did not). */
const char *llmc_sse_error(const llmc_sse_t *p);

/* Whether an unfinished event (a field line without its blank line) or
 * an unfinished line is pending; comment lines alone are not. */
int llmc_sse_pending(const llmc_sse_t *p);

void llmc_sse_free(llmc_sse_t *p);

#endif /* LLMC_SSE_H */
