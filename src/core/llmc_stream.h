/*
 * Streamed LLM responses: assembles an upstream SSE stream (OpenAI chat
 * completions, legacy completions, Responses API; Anthropic messages) into
 * the response the provider would have sent without "stream", so one cache
 * entry serves streaming and non-streaming clients; replays such a stored
 * response as an SSE stream in the provider's format; reads token usage.
 * I/O-free and nginx-free.  Per-format details: docs/streaming.md.
 */

#ifndef LLMC_STREAM_H
#define LLMC_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "llmc_request.h"

typedef enum {
    LLMC_STREAM_OPEN = 0,       /* no terminal event yet */
    LLMC_STREAM_DONE,           /* finished cleanly: storable */
    LLMC_STREAM_FAILED          /* error event, bad data, too long, ... */
} llmc_stream_state_e;

typedef struct llmc_stream_s  llmc_stream_t;

/* max_bytes bounds the raw stream, and so each event (0: no bound on the
 * stream, 16 MiB per event).  NULL for an unknown api or allocation
 * failure. */
llmc_stream_t *llmc_stream_new(llmc_api_e api, size_t max_bytes);

/* Raw upstream body bytes, in order, any split.  Returns 0, or -1 once the
 * stream is FAILED (later calls return -1 too).  Bytes after the terminal
 * event other than blank lines and comments make it FAILED. */
int llmc_stream_feed(llmc_stream_t *s, const char *buf, size_t len);

/* The upstream body ended (last buffer seen).  A stream still OPEN becomes
 * FAILED ("truncated"), and so does a DONE stream with a partial event
 * pending.  Returns the final state.  A caller that never calls it must
 * treat OPEN as not storable. */
llmc_stream_state_e llmc_stream_finish(llmc_stream_t *s);

llmc_stream_state_e llmc_stream_state(const llmc_stream_t *s);

/* Why the stream FAILED; "" otherwise. */
const char *llmc_stream_error(const llmc_stream_t *s);

/* The complete response in the provider's non-streamed JSON shape (compact
 * JSON, malloc()ed, NUL-terminated; *len without the NUL).  NULL unless
 * DONE (or on allocation failure). */
char *llmc_stream_result(llmc_stream_t *s, size_t *len);

void llmc_stream_free(llmc_stream_t *s);

/* Replays a stored non-streamed JSON response as SSE bytes (malloc()ed,
 * NUL-terminated) in the stream format of api.  include_usage: OpenAI
 * chat/completions' stream_options.include_usage (a final usage chunk);
 * chunk_chars: characters (UTF-8 code points) of text or arguments per
 * delta, 0 for 16.  Returns NULL with a reason in err for a body that is
 * not a response of that api. */
char *llmc_stream_replay(llmc_api_e api, const char *json, size_t len,
    int include_usage, size_t chunk_chars, size_t *out_len, char *err,
    size_t errlen);

/* llmc_stream_replay() by one way only, for the tests that hold the two
 * to the same bytes.  LLMC_REPLAY_TREE: from jansson's tree of the answer
 * (every api, every answer).  LLMC_REPLAY_TEXT: straight from the stored
 * text (the usual chat answer; NULL with err "declined" for what it leaves
 * to the tree).  LLMC_REPLAY_ANY, what llmc_stream_replay() does: the
 * text when it can, the tree otherwise. */
#define LLMC_REPLAY_ANY   0
#define LLMC_REPLAY_TREE  1
#define LLMC_REPLAY_TEXT  2

char *llmc_stream_replay_by(int path, llmc_api_e api, const char *json,
    size_t len, int include_usage, size_t chunk_chars, size_t *out_len,
    char *err, size_t errlen);

/* Whether an OpenAI request body asks for the usage chunk
 * ("stream_options": {"include_usage": true}): the include_usage argument
 * of llmc_stream_replay().  0 for anything else, invalid JSON included. */
int llmc_stream_wants_usage(const char *body, size_t len);

/* Token usage of a non-streamed JSON response, in one shape for every api:
 * input counts every prompt token not read from or written to the
 * provider's cache (OpenAI: prompt/input tokens minus cached; Anthropic:
 * input_tokens), cached the tokens read from it, cache_write_* the tokens
 * written to it (Anthropic only; a total without the 5m/1h split counts as
 * 5m), output the generated tokens (reasoning included).  Returns 0, or -1
 * when the body is not JSON or has no usage object (u is then zeroed). */
typedef struct {
    int64_t  input;
    int64_t  cached;
    int64_t  cache_write_5m;
    int64_t  cache_write_1h;
    int64_t  output;
} llmc_usage_t;

int llmc_usage_parse(llmc_api_e api, const char *json, size_t len,
    llmc_usage_t *u);

#endif /* LLMC_STREAM_H */
