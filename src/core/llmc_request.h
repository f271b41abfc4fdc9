/*
 * The request model: reads OpenAI (chat completions, completions,
 * Responses API) and Anthropic (messages) request bodies with jansson and
 * splits them into what decides the scope and the prompt text that is
 * matched.  I/O-free; nginx-free.
 */

#ifndef LLMC_REQUEST_H
#define LLMC_REQUEST_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LLMC_PROVIDER_UNKNOWN = 0,
    LLMC_PROVIDER_OPENAI,
    LLMC_PROVIDER_ANTHROPIC
} llmc_provider_e;

typedef enum {
    LLMC_API_UNKNOWN = 0,
    LLMC_API_CHAT,            /* OpenAI  POST .../chat/completions */
    LLMC_API_COMPLETIONS,     /* OpenAI  POST .../completions */
    LLMC_API_RESPONSES,       /* OpenAI  POST .../responses */
    LLMC_API_MESSAGES         /* Anthropic POST .../messages */
} llmc_api_e;

#define LLMC_REQ_MAX_DEPTH  64

typedef struct {
    llmc_provider_e  provider;
    llmc_api_e       api;
    int              stream;          /* "stream": true */
    int              include_usage;   /* stream_options.include_usage */
    char            *model;           /* malloc()ed, NUL-terminated */
    /* Canonical JSON (sorted keys, compact) of everything that decides the
     * answer except the latest user turn's text: model, every
     * output-affecting parameter (defaults made explicit), system prompt,
     * tools, earlier turns, unknown fields.  Fields that never change the
     * answer nor show in it (stream, stream_options; user, metadata,
     * service_tier, prompt_cache_key... except for the Responses API,
     * whose response echoes them) are left out; cache_control markers are
     * removed; 1.0 is 1.  The list and the reasons: llmc_request.c. */
    char            *scope_json;
    size_t           scope_len;
    /* The latest user turn's text (its non-empty text parts joined with
     * "\n"; its other parts stay in the scope).  "" (never NULL) when the
     * last turn is not a user turn with text (a tool result, an image
     * only, token arrays, text on both sides of an image): the whole
     * request is then in the scope and only an exact repeat matches. */
    char            *prompt;
    size_t           prompt_len;
    int              n_unknown;       /* unknown top-level fields kept */
} llmc_request_t;

/* Provider and API from a URI path (by its last segments: "/v1/messages",
 * ".../chat/completions", ...; a query string is ignored).  A forced
 * provider (not UNKNOWN) restricts the choice: openai never gives
 * MESSAGES, anthropic gives only MESSAGES.  Anything else is UNKNOWN. */
llmc_api_e llmc_api_from_uri(const char *uri, size_t len,
    llmc_provider_e forced);
llmc_provider_e llmc_api_provider(llmc_api_e api);
const char *llmc_api_name(llmc_api_e api);

/* Parses a body (never modified).  Returns 0, or -1 with a reason in err
 * (empty body, invalid JSON, invalid UTF-8, duplicate keys, nesting deeper
 * than LLMC_REQ_MAX_DEPTH, top level not an object, not a known request
 * shape for api, a Responses "conversation").  The request is then not
 * cacheable: the caller passes it upstream untouched.  On success the
 * caller frees req with llmc_request_free(); on failure nothing is left to
 * free (calling llmc_request_free() is harmless). */
int llmc_request_parse(llmc_request_t *req, llmc_api_e api,
    const char *body, size_t len, char *err, size_t errlen);
void llmc_request_free(llmc_request_t *req);
/* Frees the parse constants a process keeps (at its exit, when no other
 * thread parses). */
void llmc_request_cleanup(void);

/* The bytes json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) gives for an
 * object or array v (the scope's form), written without jansson's per-token
 * callbacks.  size_hint is the expected length (0 if unknown).  Returns a
 * malloc()ed NUL-terminated string and its length in *len, or NULL
 * (allocation failure, v not an object or array). */
struct json_t;
char *llmc_json_dump_canon(const struct json_t *v, size_t size_hint,
    size_t *len);

#endif /* LLMC_REQUEST_H */
