/*
 * The OpenAI-compatible API of llmcache-worker, I/O-free: routing, the
 * decoding of request bodies (jansson) into api_request_t, the JSON of
 * responses, stream chunks and errors, the text filter that holds back
 * split UTF-8 and possible stop-string prefixes, and the Prometheus text
 * of the metrics.
 *
 * Request fields: unknown fields are ignored, as OpenAI-compatible servers
 * commonly do. Known fields that would change the output in a way this
 * engine cannot honour are refused with a 400 naming the field: n != 1,
 * echo, suffix, best_of > 1, logprobs, top_logprobs, non-zero presence or
 * frequency penalties, logit_bias, tools, response_format other than
 * text, embeddings' encoding_format other than float and dimensions.
 */

#ifndef LLMC_API_H
#define LLMC_API_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"

#define API_MAX_STOP    4
#define API_MAX_INPUTS  2048
#define API_N_STATUS    14

typedef enum {
    API_EP_COMPLETIONS = 0,
    API_EP_CHAT,
    API_EP_EMBEDDINGS,
    API_EP_MODELS,
    API_EP_HEALTH,
    API_EP_METRICS,
    API_EP_SCHEMAS,             /* GET, POST /v1/schemas */
    API_EP_SCHEMA,              /* GET, DELETE /v1/schemas/{name} */
    API_EP_OTHER,               /* unknown path: counted together */
    API_EP_COUNT
} api_endpoint_e;

typedef struct {
    int    status;              /* HTTP status: 400, 404, ... */
    char   type[32];            /* "invalid_request_error", ... */
    char   param[32];           /* "" = null */
    char   code[48];            /* "" = null */
    char   message[256];
} api_error_t;

typedef struct {
    api_endpoint_e  endpoint;
    char           *prompt;         /* completions */
    chat_msg_t     *msgs;           /* chat; strings owned */
    size_t          n_msgs;
    char          **inputs;         /* embeddings */
    size_t          n_inputs;
    int             max_tokens;     /* -1: not given */
    float           temperature;    /* default 1 */
    float           top_p;          /* default 1 (off) */
    int             top_k;          /* default 0 (off) */
    uint64_t        seed;
    int             has_seed;       /* else the server picks one */
    char           *stop[API_MAX_STOP];
    int             n_stop;
    int             stream;
    int             include_usage;
    int             cache;          /* "cache": false turns off the
                                       prompt cache (default 1) */
} api_request_t;

typedef struct {
    int    prompt_tokens;
    int    completion_tokens;
    int    cached_tokens;       /* from stored modules or a prefix */
    int    has_timings;         /* add "timings" beside "usage" */
    double prefill_ms;          /* gathering + evaluating the prompt */
    double ttft_ms;             /* the job's start to its first token */
} api_usage_t;

/*
 * 0 and *ep, or 404 (unknown path) / 405 (wrong method) with err set.
 * /v1/schemas/{name} routes to API_EP_SCHEMA (api_schema_name gives the
 * name).
 */
int api_route(const char *method, const char *path, api_endpoint_e *ep,
    api_error_t *err);
const char *api_endpoint_name(api_endpoint_e ep);  /* "/v1/completions" */
/* the {name} of /v1/schemas/{name}, NULL for another path */
const char *api_schema_name(const char *path);

/* decodes a POST body for ep; 0, or -1 with err (status 400) */
int api_request_parse(api_endpoint_e ep, const char *body, size_t len,
    api_request_t *req, api_error_t *err);
void api_request_free(api_request_t *req);

void api_error_set(api_error_t *err, int status, const char *type,
    const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/*
 * Response bodies: malloc()ed NUL-terminated JSON, NULL when out of
 * memory. Text arguments are bytes: invalid UTF-8 becomes U+FFFD. id is
 * the response id ("cmpl-...", "chatcmpl-..."); created in Unix seconds.
 */
char *api_error_json(const api_error_t *err);
char *api_completion_json(api_endpoint_e ep, const char *id, long created,
    const char *model, const char *text, size_t len,
    const char *finish_reason, const api_usage_t *usage);
/* one stream chunk: role first (chat only, role != NULL), a text delta,
 * or the finish (finish_reason != NULL, no text) */
char *api_chunk_json(api_endpoint_e ep, const char *id, long created,
    const char *model, const char *role, const char *text, size_t len,
    const char *finish_reason);
/* the final chunk of stream_options.include_usage: "choices": [] */
char *api_usage_chunk_json(api_endpoint_e ep, const char *id, long created,
    const char *model, const api_usage_t *usage);
char *api_embeddings_json(const char *model, const float *vecs, size_t n,
    int dim, int prompt_tokens);
char *api_models_json(const char *model, long created, int n_ctx);
/* the finish chunk with "timings" (and no usage) */
char *api_finish_chunk_json(api_endpoint_e ep, const char *id, long created,
    const char *model, const char *finish_reason, const api_usage_t *usage);

/* stored Prompt Cache schemas, for /v1/schemas */
typedef struct {
    const char  *name;
    int          tokens, start, end;
    size_t       bytes;
    int          resident;
} api_schema_mod_t;

typedef struct {
    const char        *name;
    const char        *mode;    /* "scaffold", "independent" */
    api_schema_mod_t  *mods;
    int                n_mods;
    int                tokens;
    size_t             bytes;
    double             encode_ms;
    int                loaded;  /* read from the kv directory */
} api_schema_t;

char *api_schema_json(const api_schema_t *s);
/* {"object": "schema", "name": ..., "deleted": true} */
char *api_deleted_json(const char *name);
char *api_schemas_json(const api_schema_t *s, int n, size_t budget,
    size_t used, size_t bytes_per_token);

/* the length of s[0, n) without a trailing incomplete UTF-8 sequence */
size_t api_utf8_complete(const char *s, size_t n);

/*
 * Generated text on its way out: pieces are pushed as tokens are decoded;
 * api_textout_ready() says how many leading bytes can be sent now, holding
 * back a trailing incomplete UTF-8 sequence and any suffix that may start
 * a stop string. A stop string found is cut with everything after it and
 * sets stopped.
 */
typedef struct {
    char        *buf;
    size_t       len, cap;
    char *const *stop;
    int          n_stop;
    int          stopped;
} api_textout_t;

void api_textout_init(api_textout_t *t, char *const *stop, int n_stop);
void api_textout_free(api_textout_t *t);
int api_textout_push(api_textout_t *t, const char *piece, size_t n);
/* final: nothing is held back except a matched stop string */
size_t api_textout_ready(api_textout_t *t, int final);
void api_textout_consume(api_textout_t *t, size_t n);

/* counters kept by the server, printed as Prometheus text */
typedef struct {
    /* by endpoint and status: api_metrics_count() maps a status to a
     * column (200 400 404 405 408 413 414 431 499 500 501 503 505,
     * other) */
    uint64_t  requests[API_EP_COUNT][API_N_STATUS];
    uint64_t  prompt_tokens, generated_tokens;
    double    prefill_seconds, decode_seconds;
    double    last_prefill_tps, last_decode_tps;
    uint64_t  queue_depth, queue_rejected, client_aborts;
    /* the prompt cache */
    uint64_t  pc_schemas, pc_modules, pc_resident, pc_bytes, pc_budget;
    uint64_t  pc_hits, pc_misses, pc_evictions, pc_encode_passes;
    uint64_t  pc_cached_tokens, pc_prefix_tokens;
} api_metrics_t;

void api_metrics_count(api_metrics_t *m, api_endpoint_e ep, int status);
/* malloc()ed text/plain; version=0.0.4 exposition */
char *api_metrics_text(const api_metrics_t *m);

#endif /* LLMC_API_H */
