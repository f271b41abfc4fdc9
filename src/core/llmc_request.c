/*
 * The request model.
 *
 * A body is checked byte by byte first (UTF-8, nesting depth), so a hostile
 * body costs one linear pass before jansson builds anything.  jansson then
 * parses it (duplicate keys rejected), the shape is checked for the API,
 * and the tree is brought to a canonical form: the latest user text
 * replaced by a placeholder, the fields that never change the answer left
 * out, equivalent spellings made one (a string content and a one-text-part
 * array).  Written with sorted keys, defaults made explicit, 1.0 as 1 and
 * cache_control markers left out, it is the scope.
 *
 * The body itself is never touched: the gateway forwards the original
 * bytes.
 */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_json.h"
#include "llmc_request.h"

/*
 * Stands in for the latest user text in the scope.  It need not be
 * impossible in real text: the prompt itself is part of the exact key, so
 * a request whose text is this string still gets its own entry.
 */
#define LLMC_REQ_PLACEHOLDER  "{{llmc:latest-user-text}}"

#define LLMC_REQ_DROP  0x01   /* never changes the answer: left out */

/* the values the scope adds, built once: llmc_req_const() */
typedef enum {
    LLMC_REQ_NONE = 0,
    LLMC_REQ_FALSE,
    LLMC_REQ_TRUE,
    LLMC_REQ_ONE,
    LLMC_REQ_ZERO,
    LLMC_REQ_16,
    LLMC_REQ_AUTO,            /* "auto" */
    LLMC_REQ_DISABLED,        /* "disabled" */
    LLMC_REQ_TYPE_TEXT,       /* {"type":"text"} */
    LLMC_REQ_TEXT_ONLY,       /* ["text"] */
    LLMC_REQ_TYPE_AUTO,       /* {"type":"auto"} */
    LLMC_REQ_S_TEXT,          /* "text" */
    LLMC_REQ_S_INPUT_TEXT,    /* "input_text" */
    LLMC_REQ_S_MESSAGE,       /* "message" */
    LLMC_REQ_S_USER,          /* "user" */
    LLMC_REQ_PH,              /* the placeholder string */
    LLMC_REQ_NCONST
} llmc_req_const_e;

typedef struct {
    const char        *name;
    unsigned           flags;
    llmc_req_const_e   dflt;  /* the provider's default, or LLMC_REQ_NONE */
} llmc_req_field_t;

/*
 * Left out of the scope (LLMC_REQ_DROP) because they never change the
 * answer nor show in it:
 *   stream, stream_options   transport only (all APIs): streamed and
 *                            non-streamed requests share entries, the
 *                            module replays the stored answer in the form
 *                            asked for
 *   user, safety_identifier, metadata (chat, messages)
 *                            end-user ids and tags for abuse monitoring and
 *                            dashboards
 *   service_tier             capacity/priority and price, same model
 *   prompt_cache_key, prompt_cache_retention
 *                            provider-side prefix cache routing and billing
 * Kept although they do not change the text:
 *   store (chat, responses)  the returned id can be retrieved or chained
 *                            (previous_response_id) only if it was stored
 *   every field of the Responses API: its response object echoes
 *                            metadata, user, safety_identifier,
 *                            prompt_cache_key, service_tier..., so a replay
 *                            would hand one caller's values to another
 * Kept because they change the answer: parallel_tool_calls (one reply may
 * hold several tool calls), background, include, prediction,
 * previous_response_id (a stored response never changes), every unknown
 * field.
 */

static const llmc_req_field_t  llmc_req_chat_fields[] = {
    { "model", 0, LLMC_REQ_NONE },
    { "messages", 0, LLMC_REQ_NONE },
    { "stream", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "stream_options", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "user", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "safety_identifier", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "metadata", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "store", 0, LLMC_REQ_FALSE },
    { "service_tier", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "prompt_cache_key", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "prompt_cache_retention", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "temperature", 0, LLMC_REQ_ONE },
    { "top_p", 0, LLMC_REQ_ONE },
    { "n", 0, LLMC_REQ_ONE },
    { "presence_penalty", 0, LLMC_REQ_ZERO },
    { "frequency_penalty", 0, LLMC_REQ_ZERO },
    { "logprobs", 0, LLMC_REQ_FALSE },
    { "top_logprobs", 0, LLMC_REQ_NONE },
    { "logit_bias", 0, LLMC_REQ_NONE },
    { "max_tokens", 0, LLMC_REQ_NONE },
    { "max_completion_tokens", 0, LLMC_REQ_NONE },
    { "stop", 0, LLMC_REQ_NONE },
    { "seed", 0, LLMC_REQ_NONE },
    { "response_format", 0, LLMC_REQ_TYPE_TEXT },
    { "modalities", 0, LLMC_REQ_TEXT_ONLY },
    { "audio", 0, LLMC_REQ_NONE },
    { "prediction", 0, LLMC_REQ_NONE },
    { "reasoning_effort", 0, LLMC_REQ_NONE },
    { "verbosity", 0, LLMC_REQ_NONE },
    { "web_search_options", 0, LLMC_REQ_NONE },
    { "tools", 0, LLMC_REQ_NONE },
    { "tool_choice", 0, LLMC_REQ_NONE },
    { "parallel_tool_calls", 0, LLMC_REQ_TRUE },
    { "functions", 0, LLMC_REQ_NONE },
    { "function_call", 0, LLMC_REQ_NONE },
    { NULL, 0, LLMC_REQ_NONE }
};

static const llmc_req_field_t  llmc_req_completions_fields[] = {
    { "model", 0, LLMC_REQ_NONE },
    { "prompt", 0, LLMC_REQ_NONE },
    { "stream", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "stream_options", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "user", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "temperature", 0, LLMC_REQ_ONE },
    { "top_p", 0, LLMC_REQ_ONE },
    { "n", 0, LLMC_REQ_ONE },
    { "best_of", 0, LLMC_REQ_ONE },
    { "echo", 0, LLMC_REQ_FALSE },
    { "max_tokens", 0, LLMC_REQ_16 },
    { "presence_penalty", 0, LLMC_REQ_ZERO },
    { "frequency_penalty", 0, LLMC_REQ_ZERO },
    { "logprobs", 0, LLMC_REQ_NONE },
    { "logit_bias", 0, LLMC_REQ_NONE },
    { "stop", 0, LLMC_REQ_NONE },
    { "seed", 0, LLMC_REQ_NONE },
    { "suffix", 0, LLMC_REQ_NONE },
    { NULL, 0, LLMC_REQ_NONE }
};

static const llmc_req_field_t  llmc_req_responses_fields[] = {
    { "model", 0, LLMC_REQ_NONE },
    { "input", 0, LLMC_REQ_NONE },
    { "instructions", 0, LLMC_REQ_NONE },
    { "stream", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "stream_options", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "user", 0, LLMC_REQ_NONE },
    { "safety_identifier", 0, LLMC_REQ_NONE },
    { "metadata", 0, LLMC_REQ_NONE },
    { "store", 0, LLMC_REQ_TRUE },
    { "service_tier", 0, LLMC_REQ_AUTO },
    { "prompt_cache_key", 0, LLMC_REQ_NONE },
    { "prompt_cache_retention", 0, LLMC_REQ_NONE },
    { "temperature", 0, LLMC_REQ_ONE },
    { "top_p", 0, LLMC_REQ_ONE },
    { "top_logprobs", 0, LLMC_REQ_NONE },
    { "max_output_tokens", 0, LLMC_REQ_NONE },
    { "max_tool_calls", 0, LLMC_REQ_NONE },
    { "truncation", 0, LLMC_REQ_DISABLED },
    { "background", 0, LLMC_REQ_FALSE },
    { "include", 0, LLMC_REQ_NONE },
    { "reasoning", 0, LLMC_REQ_NONE },
    { "text", 0, LLMC_REQ_NONE },
    { "tools", 0, LLMC_REQ_NONE },
    { "tool_choice", 0, LLMC_REQ_NONE },
    { "parallel_tool_calls", 0, LLMC_REQ_TRUE },
    { "previous_response_id", 0, LLMC_REQ_NONE },
    { "prompt", 0, LLMC_REQ_NONE },
    { "conversation", 0, LLMC_REQ_NONE },
    { NULL, 0, LLMC_REQ_NONE }
};

static const llmc_req_field_t  llmc_req_messages_fields[] = {
    { "model", 0, LLMC_REQ_NONE },
    { "messages", 0, LLMC_REQ_NONE },
    { "max_tokens", 0, LLMC_REQ_NONE },
    { "system", 0, LLMC_REQ_NONE },
    { "stream", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "metadata", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "service_tier", LLMC_REQ_DROP, LLMC_REQ_NONE },
    { "temperature", 0, LLMC_REQ_ONE },
    { "top_p", 0, LLMC_REQ_NONE },
    { "top_k", 0, LLMC_REQ_NONE },
    { "stop_sequences", 0, LLMC_REQ_NONE },
    { "tools", 0, LLMC_REQ_NONE },
    { "tool_choice", 0, LLMC_REQ_NONE },
    { "thinking", 0, LLMC_REQ_NONE },
    { "container", 0, LLMC_REQ_NONE },
    { "mcp_servers", 0, LLMC_REQ_NONE },
    { "context_management", 0, LLMC_REQ_NONE },
    { NULL, 0, LLMC_REQ_NONE }
};

/*
 * Members holding a JSON schema or tool arguments are the client's data:
 * a property that happens to be named "cache_control" there is part of the
 * definition, not a caching marker.
 */
static const char  *llmc_req_opaque_keys[] = {
    "parameters", "input_schema", "schema", "json_schema", "arguments",
    NULL
};

typedef struct {
    char    *err;
    size_t   errlen;
    char    *prompt;          /* the joined latest user text, or NULL */
    size_t   prompt_len;
} llmc_req_ctx_t;

static int llmc_req_fail(llmc_req_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
llmc_req_fail(llmc_req_ctx_t *ctx, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    if (ctx->errlen == 0) {
        return -1;
    }
    n = snprintf(ctx->err, ctx->errlen, "llmc_request_parse: ");
    if (n < 0 || (size_t) n >= ctx->errlen) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(ctx->err + n, ctx->errlen - n, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------------------ */

llmc_provider_e
llmc_api_provider(llmc_api_e api)
{
    switch (api) {
    case LLMC_API_CHAT:
    case LLMC_API_COMPLETIONS:
    case LLMC_API_RESPONSES:
        return LLMC_PROVIDER_OPENAI;
    case LLMC_API_MESSAGES:
        return LLMC_PROVIDER_ANTHROPIC;
    default:
        return LLMC_PROVIDER_UNKNOWN;
    }
}

const char *
llmc_api_name(llmc_api_e api)
{
    switch (api) {
    case LLMC_API_CHAT:
        return "chat";
    case LLMC_API_COMPLETIONS:
        return "completions";
    case LLMC_API_RESPONSES:
        return "responses";
    case LLMC_API_MESSAGES:
        return "messages";
    default:
        return "unknown";
    }
}

static int
llmc_uri_ends(const char *p, size_t len, const char *suffix)
{
    size_t  n = strlen(suffix);

    return len >= n && memcmp(p + len - n, suffix, n) == 0;
}

llmc_api_e
llmc_api_from_uri(const char *uri, size_t len, llmc_provider_e forced)
{
    const char  *q;
    llmc_api_e   api;

    if (uri == NULL) {
        return LLMC_API_UNKNOWN;
    }

    q = memchr(uri, '?', len);
    if (q) {
        len = q - uri;
    }

    if (llmc_uri_ends(uri, len, "/chat/completions")) {
        api = LLMC_API_CHAT;
    } else if (llmc_uri_ends(uri, len, "/completions")) {
        api = LLMC_API_COMPLETIONS;
    } else if (llmc_uri_ends(uri, len, "/responses")) {
        api = LLMC_API_RESPONSES;
    } else if (llmc_uri_ends(uri, len, "/messages")) {
        api = LLMC_API_MESSAGES;
    } else {
        return LLMC_API_UNKNOWN;
    }

    if (forced != LLMC_PROVIDER_UNKNOWN && llmc_api_provider(api) != forced) {
        return LLMC_API_UNKNOWN;
    }

    return api;
}

/* ------------------------------------------------------------------------ */

/*
 * One pass over the bytes: strict UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF) and the nesting depth of arrays and objects
 * outside strings.
 */
static int
llmc_req_prepass(llmc_req_ctx_t *ctx, const unsigned char *p, size_t len)
{
    int       in_str = 0, esc = 0;
    size_t    i, depth = 0;
    uint32_t  cp;

    for (i = 0; i < len; i++) {
        unsigned char c = p[i];

        if (c >= 0x80) {
            size_t  n;

            if (c >= 0xc2 && c <= 0xdf) {
                n = 1; cp = c & 0x1f;
            } else if (c >= 0xe0 && c <= 0xef) {
                n = 2; cp = c & 0x0f;
            } else if (c >= 0xf0 && c <= 0xf4) {
                n = 3; cp = c & 0x07;
            } else {
                return llmc_req_fail(ctx, "invalid UTF-8 at byte %zu", i);
            }
            if (len - i - 1 < n) {
                return llmc_req_fail(ctx, "invalid UTF-8 at byte %zu", i);
            }
            for (size_t k = 1; k <= n; k++) {
                if ((p[i + k] & 0xc0) != 0x80) {
                    return llmc_req_fail(ctx, "invalid UTF-8 at byte %zu", i);
                }
                cp = cp << 6 | (p[i + k] & 0x3f);
            }
            if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
                || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            {
                return llmc_req_fail(ctx, "invalid UTF-8 at byte %zu", i);
            }
            i += n;
            esc = 0;
            continue;
        }

        if (in_str) {
            if (esc) {
                esc = 0;
            } else if (c == '\\') {
                esc = 1;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }

        switch (c) {
        case '"':
            in_str = 1;
            break;
        case '[':
        case '{':
            if (++depth > LLMC_REQ_MAX_DEPTH) {
                return llmc_req_fail(ctx, "nesting deeper than %d",
                                     LLMC_REQ_MAX_DEPTH);
            }
            break;
        case ']':
        case '}':
            if (depth) {
                depth--;
            }
            break;
        }
    }

    return 0;
}

/* ------------------------------------------------------------------------ */

static int
llmc_req_is_opaque(const char *key)
{
    int  i;

    for (i = 0; llmc_req_opaque_keys[i]; i++) {
        if (key[0] == llmc_req_opaque_keys[i][0]
            && strcmp(key, llmc_req_opaque_keys[i]) == 0)
        {
            return 1;
        }
    }
    return 0;
}

/*
 * The scope's bytes: what json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS)
 * wrote before (keys and hashes stored in Redis depend on them), written
 * straight into one growing buffer instead of through jansson's callback
 * per token, its key array per object and its final copy.
 */

typedef struct {
    const char  *key;
    size_t       len;
    json_t      *value;
    int          opaque;      /* below a schema or tool arguments */
} llmc_req_member_t;

#define LLMC_REQ_SORT_STACK  32

static int
llmc_req_member_cmp(const void *a, const void *b)
{
    int                       r;
    const llmc_req_member_t  *x = a, *y = b;

    /* most keys differ in their first byte (an empty key's is its NUL,
     * which sorts it first, as the lengths would) */
    r = (unsigned char) x->key[0] - (unsigned char) y->key[0];
    if (r) {
        return r;
    }
    r = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
    if (r) {
        return r;
    }
    return x->len < y->len ? -1 : x->len > y->len;
}

/*
 * For the scope (canon), the writer also does what makes two spellings of
 * one request the same bytes, on the fly instead of editing the tree
 * first: cache_control members outside schemas and tool arguments are left
 * out, a real that holds an integer is written as that integer (1.0 -> 1,
 * -0.0 -> 0), and the root gets the defaults of the absent known fields.
 */
typedef struct {
    int                      canon;
    const llmc_req_field_t  *fields;    /* the root's defaults, or NULL */
} llmc_req_dump_t;

static int llmc_req_dump(llmc_buf_t *b, const llmc_req_dump_t *d,
    const json_t *v, int opaque);
static json_t *llmc_req_const(llmc_req_const_e c);

static int
llmc_req_is_integral(double d)
{
    return d == floor(d) && fabs(d) <= 9007199254740992.0;
}

static int
llmc_req_dump_object(llmc_buf_t *b, const llmc_req_dump_t *d,
    const json_t *v, int opaque, int top)
{
    int                      rc = -1;
    size_t                   n, cap, i, j, klen;
    json_t                  *child;
    const char              *key;
    llmc_req_member_t        stack[LLMC_REQ_SORT_STACK], *m, t;
    const llmc_req_field_t  *f;

    n = json_object_size(v);
    cap = n;
    if (top && d->fields) {
        for (f = d->fields; f->name; f++) {
            cap += f->dflt != LLMC_REQ_NONE;
        }
    }
    if (cap == 0) {
        return llmc_buf_put(b, "{}", 2);
    }
    m = stack;
    if (cap > LLMC_REQ_SORT_STACK) {
        m = malloc(cap * sizeof(llmc_req_member_t));
        if (m == NULL) {
            return -1;
        }
    }

    i = 0;
    json_object_keylen_foreach((json_t *) v, key, klen, child) {
        if (i == n) {
            goto done;
        }
        if (d->canon && !opaque && key[0] == 'c'
            && strcmp(key, "cache_control") == 0)
        {
            n--;
            continue;
        }
        m[i].key = key;
        m[i].len = klen;
        m[i].value = child;
        m[i].opaque = d->canon
                      && (opaque || llmc_req_is_opaque(key)
                          || (!top && key[0] == 'i'
                              && strcmp(key, "input") == 0));
        i++;
    }
    if (i != n) {
        goto done;
    }

    if (top && d->fields) {
        size_t  body_n = n;

        for (f = d->fields; f->name; f++) {
            if (f->dflt == LLMC_REQ_NONE) {
                continue;
            }
            /* the body's members are few: a scan beats a hash lookup */
            klen = strlen(f->name);
            for (j = 0; j < body_n; j++) {
                if (m[j].len == klen && memcmp(m[j].key, f->name, klen) == 0)
                {
                    break;
                }
            }
            if (j < body_n) {
                continue;
            }
            m[n].value = llmc_req_const(f->dflt);
            if (m[n].value == NULL) {
                goto done;
            }
            m[n].key = f->name;
            m[n].len = klen;
            m[n].opaque = 0;
            n++;
        }
    }

    if (n > LLMC_REQ_SORT_STACK) {
        qsort(m, n, sizeof(llmc_req_member_t), llmc_req_member_cmp);
    } else {
        for (i = 1; i < n; i++) {
            t = m[i];
            for (j = i; j && llmc_req_member_cmp(&m[j - 1], &t) > 0; j--) {
                m[j] = m[j - 1];
            }
            m[j] = t;
        }
    }

    if (llmc_buf_put(b, "{", 1) != 0) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        if ((i && llmc_buf_put(b, ",", 1) != 0)
            || llmc_json_put_string(b, m[i].key, m[i].len) != 0
            || llmc_buf_put(b, ":", 1) != 0
            || llmc_req_dump(b, d, m[i].value, m[i].opaque) != 0)
        {
            goto done;
        }
    }
    rc = llmc_buf_put(b, "}", 1);

done:

    if (m != stack) {
        free(m);
    }
    return rc;
}

static int
llmc_req_dump(llmc_buf_t *b, const llmc_req_dump_t *d, const json_t *v,
    int opaque)
{
    size_t  i, n;
    double  r;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return llmc_req_dump_object(b, d, v, opaque, 0);
    case JSON_ARRAY:
        n = json_array_size(v);
        if (llmc_buf_put(b, "[", 1) != 0) {
            return -1;
        }
        for (i = 0; i < n; i++) {
            if ((i && llmc_buf_put(b, ",", 1) != 0)
                || llmc_req_dump(b, d, json_array_get(v, i), opaque) != 0)
            {
                return -1;
            }
        }
        return llmc_buf_put(b, "]", 1);
    case JSON_STRING:
        return llmc_json_put_string(b, json_string_value(v),
                                    json_string_length(v));
    case JSON_INTEGER:
        return llmc_json_put_int(b, json_integer_value(v));
    case JSON_REAL:
        r = json_real_value(v);
        if (d->canon && llmc_req_is_integral(r)) {
            return llmc_json_put_int(b, (json_int_t) r);
        }
        return llmc_json_put_real(b, r);
    case JSON_TRUE:
        return llmc_buf_put(b, "true", 4);
    case JSON_FALSE:
        return llmc_buf_put(b, "false", 5);
    case JSON_NULL:
        return llmc_buf_put(b, "null", 4);
    }
    return -1;
}

/* the canonical scope of root: see llmc_req_dump_t */
static char *
llmc_req_scope(const json_t *root, const llmc_req_field_t *fields,
    size_t size_hint, size_t *len)
{
    llmc_buf_t   b = { NULL, 0, 0 };
    llmc_req_dump_t  d = { 1, fields };

    if (llmc_buf_grow(&b, size_hint) != 0
        || llmc_req_dump_object(&b, &d, root, 0, 1) != 0)
    {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

char *
llmc_json_dump_canon(const struct json_t *v, size_t size_hint, size_t *len)
{
    llmc_buf_t   b = { NULL, 0, 0 };
    llmc_req_dump_t  d = { 0, NULL };

    if (v == NULL || (!json_is_object(v) && !json_is_array(v))
        || llmc_buf_grow(&b, size_hint) != 0
        || llmc_req_dump(&b, &d, v, 0) != 0)
    {
        free(b.p);
        return NULL;
    }
    if (len) {
        *len = b.len;
    }
    return b.p;
}

/*
 * Values the scope adds (defaults, placeholder, part types) are built once
 * and shared by every request tree: a tree only holds a reference, and
 * nothing below modifies them (they hold no cache_control and no real).
 * jansson's reference counts are atomic, and a slot is filled with a
 * compare-and-swap, so threads may share them too.
 */
static const char  *llmc_req_const_src[LLMC_REQ_NCONST] = {
    [LLMC_REQ_FALSE] = "false",
    [LLMC_REQ_TRUE] = "true",
    [LLMC_REQ_ONE] = "1",
    [LLMC_REQ_ZERO] = "0",
    [LLMC_REQ_16] = "16",
    [LLMC_REQ_AUTO] = "\"auto\"",
    [LLMC_REQ_DISABLED] = "\"disabled\"",
    [LLMC_REQ_TYPE_TEXT] = "{\"type\":\"text\"}",
    [LLMC_REQ_TEXT_ONLY] = "[\"text\"]",
    [LLMC_REQ_TYPE_AUTO] = "{\"type\":\"auto\"}",
    [LLMC_REQ_S_TEXT] = "\"text\"",
    [LLMC_REQ_S_INPUT_TEXT] = "\"input_text\"",
    [LLMC_REQ_S_MESSAGE] = "\"message\"",
    [LLMC_REQ_S_USER] = "\"user\"",
    [LLMC_REQ_PH] = "\"" LLMC_REQ_PLACEHOLDER "\""
};

static json_t  *llmc_req_const_v[LLMC_REQ_NCONST];

/* a borrowed reference to constant c, or NULL when out of memory */
static json_t *
llmc_req_const(llmc_req_const_e c)
{
    json_t  *v, *expected;

    if (c <= LLMC_REQ_NONE || c >= LLMC_REQ_NCONST) {
        return NULL;
    }

    v = __atomic_load_n(&llmc_req_const_v[c], __ATOMIC_ACQUIRE);
    if (v) {
        return v;
    }

    v = json_loads(llmc_req_const_src[c], JSON_DECODE_ANY, NULL);
    if (v == NULL) {
        return NULL;
    }

    expected = NULL;
    if (!__atomic_compare_exchange_n(&llmc_req_const_v[c], &expected, v, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    {
        json_decref(v);
        v = expected;
    }
    return v;
}

void
llmc_request_cleanup(void)
{
    int  c;

    for (c = 0; c < LLMC_REQ_NCONST; c++) {
        if (llmc_req_const_v[c]) {
            json_decref(llmc_req_const_v[c]);
            llmc_req_const_v[c] = NULL;
        }
    }
}

/* the string constant of a part type: "text" or "input_text" */
static json_t *
llmc_req_const_type(const char *type)
{
    return llmc_req_const(strcmp(type, "text") == 0 ? LLMC_REQ_S_TEXT
                                                    : LLMC_REQ_S_INPUT_TEXT);
}

/*
 * Known fields: the ones that never change the answer go, and an explicit
 * null goes too, as it means the default (the scope's writer adds the
 * documented defaults of absent fields).  Returns the number of unknown
 * top-level fields.
 */
static int
llmc_req_fields(json_t *root, const llmc_req_field_t *fields)
{
    int                      n_unknown = 0;
    void                    *tmp;
    json_t                  *v;
    const char              *key;
    const llmc_req_field_t  *f;

    json_object_foreach_safe(root, tmp, key, v) {
        for (f = fields; f->name; f++) {
            if (f->name[0] == key[0] && strcmp(key, f->name) == 0) {
                break;
            }
        }
        if (f->name == NULL) {
            n_unknown++;
            continue;
        }
        if ((f->flags & LLMC_REQ_DROP) || json_is_null(v)) {
            json_object_del(root, key);
        }
    }

    return n_unknown;
}

/* An empty array or object means the same as an absent field. */
static void
llmc_req_del_empty(json_t *root, const char *key)
{
    json_t  *v = json_object_get(root, key);

    if ((json_is_array(v) && json_array_size(v) == 0)
        || (json_is_object(v) && json_object_size(v) == 0))
    {
        json_object_del(root, key);
    }
}

/* "stop": "x" is "stop": ["x"]. */
static int
llmc_req_stop(json_t *root, const char *key)
{
    json_t  *v = json_object_get(root, key), *a;

    if (json_is_string(v)) {
        a = json_array();
        if (a == NULL) {
            return -1;
        }
        if (json_array_append(a, v) != 0) {
            json_decref(a);
            return -1;
        }
        if (json_object_set_new(root, key, a) != 0) {
            return -1;
        }
    }
    llmc_req_del_empty(root, key);
    return 0;
}

/* With tools and no tool_choice, the model chooses: dflt. */
static int
llmc_req_tools(json_t *root, llmc_req_const_e dflt)
{
    json_t  *d;

    llmc_req_del_empty(root, "tools");
    if (json_object_get(root, "tools")
        && json_object_get(root, "tool_choice") == NULL)
    {
        d = llmc_req_const(dflt);
        if (d == NULL || json_object_set(root, "tool_choice", d) != 0) {
            return -1;
        }
    }
    return 0;
}


/* [obj], taking obj's reference; NULL (obj released) without memory */
static json_t *
llmc_req_array_of(json_t *obj)
{
    json_t  *a;

    a = json_array();
    if (a == NULL) {
        json_decref(obj);
        return NULL;
    }
    if (json_array_append_new(a, obj) != 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* [{"type": type, "text": text}] (text borrowed), or NULL */
static json_t *
llmc_req_one_part(const char *type, json_t *text)
{
    json_t  *t, *part;

    t = llmc_req_const_type(type);
    part = json_object();
    if (t == NULL || part == NULL
        || json_object_set(part, "type", t) != 0
        || json_object_set(part, "text", text) != 0)
    {
        json_decref(part);
        return NULL;
    }
    return llmc_req_array_of(part);
}

/* A string content is one text part of type `type`. */
static int
llmc_req_content_parts(json_t *msg, const char *type)
{
    json_t  *c = json_object_get(msg, "content"), *parts;

    if (!json_is_string(c)) {
        return 0;
    }
    parts = llmc_req_one_part(type, c);
    if (parts == NULL || json_object_set_new(msg, "content", parts) != 0) {
        return -1;
    }
    return 0;
}

/* a text part of type `type` with some text */
static json_t *
llmc_req_text_of(json_t *part, const char *type)
{
    json_t  *t = json_object_get(part, "type");

    if (!json_is_string(t) || strcmp(json_string_value(t), type) != 0) {
        return NULL;
    }
    t = json_object_get(part, "text");
    return json_is_string(t) && json_string_length(t) ? t : NULL;
}

/*
 * The latest user turn: its text parts (type `type`) are joined with "\n"
 * into the prompt and replaced by the placeholder; other parts stay.  No
 * text (only images, tool results, empty strings) leaves the turn whole in
 * the scope and the prompt empty.  So does text on both sides of another
 * part: "a" [image] "b c" and "a b" [image] "c" would join to the same
 * prompt and the same scope, but are not the same question.
 */
static int
llmc_req_take_text(llmc_req_ctx_t *ctx, json_t *msg, const char *type)
{
    int       gap = 0;
    char     *p;
    size_t    i, len = 0, n = 0, tlen;
    json_t   *parts, *part, *t, *ph;

    parts = json_object_get(msg, "content");
    if (!json_is_array(parts)) {
        return 0;
    }

    json_array_foreach(parts, i, part) {
        t = llmc_req_text_of(part, type);
        if (t == NULL) {
            gap = n > 0;
            continue;
        }
        if (gap) {
            return 0;
        }
        len += json_string_length(t) + (n ? 1 : 0);
        n++;
    }
    if (n == 0) {
        return 0;
    }

    p = malloc(len + 1);
    if (p == NULL) {
        return llmc_req_fail(ctx, "out of memory");
    }
    ph = llmc_req_const(LLMC_REQ_PH);
    if (ph == NULL) {
        free(p);
        return llmc_req_fail(ctx, "out of memory");
    }

    len = 0;
    json_array_foreach(parts, i, part) {
        t = llmc_req_text_of(part, type);
        if (t == NULL) {
            continue;
        }
        if (len) {
            p[len++] = '\n';
        }
        tlen = json_string_length(t);
        memcpy(p + len, json_string_value(t), tlen);
        len += tlen;
        if (json_object_set(part, "text", ph) != 0) {
            free(p);
            return llmc_req_fail(ctx, "out of memory");
        }
    }
    p[len] = '\0';

    ctx->prompt = p;
    ctx->prompt_len = len;
    return 0;
}

static int
llmc_req_role_is(json_t *msg, const char *role)
{
    json_t  *r = json_object_get(msg, "role");

    return json_is_string(r) && strcmp(json_string_value(r), role) == 0;
}

/* chat and messages: an array of objects, each with a string role */
static int
llmc_req_messages(llmc_req_ctx_t *ctx, json_t *root, const char *text_type)
{
    size_t   i;
    json_t  *msgs, *msg, *c;

    msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs)) {
        return llmc_req_fail(ctx, "\"messages\" is not an array");
    }
    if (json_array_size(msgs) == 0) {
        return llmc_req_fail(ctx, "\"messages\" is empty");
    }

    json_array_foreach(msgs, i, msg) {
        if (!json_is_object(msg)) {
            return llmc_req_fail(ctx, "message %zu is not an object", i);
        }
        if (!json_is_string(json_object_get(msg, "role"))) {
            return llmc_req_fail(ctx, "message %zu has no string role", i);
        }
        c = json_object_get(msg, "content");
        if (c && !json_is_string(c) && !json_is_array(c) && !json_is_null(c))
        {
            return llmc_req_fail(ctx, "message %zu: bad content", i);
        }
        if (llmc_req_content_parts(msg, text_type) != 0) {
            return llmc_req_fail(ctx, "out of memory");
        }
    }

    msg = json_array_get(msgs, json_array_size(msgs) - 1);
    if (llmc_req_role_is(msg, "user")) {
        return llmc_req_take_text(ctx, msg, text_type);
    }
    return 0;
}

static int
llmc_req_model(llmc_req_ctx_t *ctx, json_t *root, int required)
{
    json_t  *m = json_object_get(root, "model");

    if (m == NULL && !required) {
        return 0;
    }
    if (!json_is_string(m)) {
        return llmc_req_fail(ctx, "\"model\" is %s",
                             m ? "not a string" : "missing");
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

static int
llmc_req_chat(llmc_req_ctx_t *ctx, json_t *root)
{
    if (llmc_req_model(ctx, root, 1) != 0
        || llmc_req_messages(ctx, root, "text") != 0)
    {
        return -1;
    }
    if (llmc_req_stop(root, "stop") != 0
        || llmc_req_tools(root, LLMC_REQ_AUTO) != 0)
    {
        return llmc_req_fail(ctx, "out of memory");
    }
    llmc_req_del_empty(root, "logit_bias");
    return 0;
}

static int
llmc_req_completions(llmc_req_ctx_t *ctx, json_t *root)
{
    json_t  *p, *ph;

    if (llmc_req_model(ctx, root, 1) != 0) {
        return -1;
    }

    p = json_object_get(root, "prompt");
    if (p && !json_is_string(p) && !json_is_array(p) && !json_is_null(p)) {
        return llmc_req_fail(ctx, "\"prompt\" is not a string or an array");
    }

    /* ["text"] is "text"; several prompts or token arrays stay whole */
    if (json_is_array(p) && json_array_size(p) == 1
        && json_is_string(json_array_get(p, 0)))
    {
        if (json_object_set(root, "prompt", json_array_get(p, 0)) != 0) {
            return llmc_req_fail(ctx, "out of memory");
        }
        p = json_object_get(root, "prompt");
    }

    if (json_is_string(p) && json_string_length(p)) {
        ctx->prompt_len = json_string_length(p);
        ctx->prompt = malloc(ctx->prompt_len + 1);
        ph = llmc_req_const(LLMC_REQ_PH);
        if (ctx->prompt == NULL || ph == NULL) {
            return llmc_req_fail(ctx, "out of memory");
        }
        memcpy(ctx->prompt, json_string_value(p), ctx->prompt_len + 1);
        if (json_object_set(root, "prompt", ph) != 0) {
            return llmc_req_fail(ctx, "out of memory");
        }
    }

    if (llmc_req_stop(root, "stop") != 0) {
        return llmc_req_fail(ctx, "out of memory");
    }
    llmc_req_del_empty(root, "logit_bias");
    return 0;
}

/* [{"type": "message", "role": "user", "content": content}] (content
 * borrowed), or NULL */
static json_t *
llmc_req_user_message(json_t *content)
{
    json_t  *type, *role, *msg;

    type = llmc_req_const(LLMC_REQ_S_MESSAGE);
    role = llmc_req_const(LLMC_REQ_S_USER);
    msg = json_object();
    if (type == NULL || role == NULL || msg == NULL
        || json_object_set(msg, "type", type) != 0
        || json_object_set(msg, "role", role) != 0
        || json_object_set(msg, "content", content) != 0)
    {
        json_decref(msg);
        return NULL;
    }
    return llmc_req_array_of(msg);
}

/*
 * Responses API input: a string is one user message; an item with a role
 * and no type is a message; a string content of a user, system or
 * developer message is one input_text part.
 */
static int
llmc_req_responses(llmc_req_ctx_t *ctx, json_t *root)
{
    size_t   i;
    json_t  *in, *item, *r, *t, *text;

    if (llmc_req_model(ctx, root, 0) != 0) {
        return -1;
    }

    /* server-side conversation state changes between two equal requests,
     * and a cached answer would not be appended to it */
    t = json_object_get(root, "conversation");
    if (t && !json_is_null(t)) {
        return llmc_req_fail(ctx, "\"conversation\" state is server-side");
    }

    t = json_object_get(root, "instructions");
    if (t && !json_is_string(t) && !json_is_array(t) && !json_is_null(t)) {
        return llmc_req_fail(ctx, "\"instructions\" is not a string");
    }

    in = json_object_get(root, "input");
    if (json_is_string(in)) {
        in = llmc_req_user_message(in);
        if (in == NULL || json_object_set_new(root, "input", in) != 0) {
            return llmc_req_fail(ctx, "out of memory");
        }
    } else if (in && !json_is_array(in) && !json_is_null(in)) {
        return llmc_req_fail(ctx, "\"input\" is not a string or an array");
    }

    json_array_foreach(in, i, item) {
        if (!json_is_object(item)) {
            return llmc_req_fail(ctx, "input item %zu is not an object", i);
        }
        r = json_object_get(item, "role");
        t = json_object_get(item, "type");
        if (t && !json_is_string(t)) {
            return llmc_req_fail(ctx, "input item %zu: type not a string", i);
        }
        if (r == NULL) {
            if (t == NULL) {
                return llmc_req_fail(ctx, "input item %zu has no type", i);
            }
            continue;
        }
        if (!json_is_string(r)) {
            return llmc_req_fail(ctx, "input item %zu: role not a string", i);
        }
        if (t == NULL
            && ((t = llmc_req_const(LLMC_REQ_S_MESSAGE)) == NULL
                || json_object_set(item, "type", t) != 0))
        {
            return llmc_req_fail(ctx, "out of memory");
        }
        if (!llmc_req_role_is(item, "assistant")
            && llmc_req_content_parts(item, "input_text") != 0)
        {
            return llmc_req_fail(ctx, "out of memory");
        }
    }

    if (json_is_array(in) && json_array_size(in)) {
        item = json_array_get(in, json_array_size(in) - 1);
        t = json_object_get(item, "type");
        if (llmc_req_role_is(item, "user")
            && strcmp(json_string_value(t), "message") == 0
            && llmc_req_take_text(ctx, item, "input_text") != 0)
        {
            return -1;
        }
    }

    /* text.format defaults to plain text */
    text = json_object_get(root, "text");
    if (text == NULL) {
        text = json_object();
        if (text == NULL || json_object_set_new(root, "text", text) != 0) {
            return llmc_req_fail(ctx, "out of memory");
        }
    }
    if (json_is_object(text)) {
        t = json_object_get(text, "format");
        if (t == NULL || json_is_null(t)) {
            t = llmc_req_const(LLMC_REQ_TYPE_TEXT);
            if (t == NULL || json_object_set(text, "format", t) != 0) {
                return llmc_req_fail(ctx, "out of memory");
            }
        }
    }

    if (llmc_req_tools(root, LLMC_REQ_AUTO) != 0) {
        return llmc_req_fail(ctx, "out of memory");
    }
    llmc_req_del_empty(root, "include");
    llmc_req_del_empty(root, "metadata");
    return 0;
}

static int
llmc_req_anthropic(llmc_req_ctx_t *ctx, json_t *root)
{
    json_t  *v;

    if (llmc_req_model(ctx, root, 1) != 0) {
        return -1;
    }

    v = json_object_get(root, "max_tokens");
    if (!json_is_number(v)) {
        return llmc_req_fail(ctx, "\"max_tokens\" is %s",
                             v ? "not a number" : "missing");
    }

    /* a string system prompt is one text block; an empty one is none */
    v = json_object_get(root, "system");
    if (json_is_string(v) && json_string_length(v) == 0) {
        json_object_del(root, "system");
    } else if (json_is_string(v)) {
        v = llmc_req_one_part("text", v);
        if (v == NULL || json_object_set_new(root, "system", v) != 0) {
            return llmc_req_fail(ctx, "out of memory");
        }
    } else if (v && !json_is_array(v) && !json_is_null(v)) {
        return llmc_req_fail(ctx, "\"system\" is not a string or an array");
    }
    llmc_req_del_empty(root, "system");

    if (llmc_req_messages(ctx, root, "text") != 0) {
        return -1;
    }

    llmc_req_del_empty(root, "stop_sequences");
    if (llmc_req_tools(root, LLMC_REQ_TYPE_AUTO) != 0) {
        return llmc_req_fail(ctx, "out of memory");
    }
    return 0;
}

/*
 * A reader for bodies jansson would accept, building the same tree through
 * jansson's constructors (so its allocator still does every allocation):
 * jansson's own lexer saves a body byte by byte.  Strict JSON, as jansson
 * reads it with JSON_REJECT_DUPLICATES: no control bytes in strings, no
 * \u0000, paired surrogates, no leading zeros, integers that fit, reals
 * that do not overflow, only whitespace after the object.  Anything it
 * does not take (an error, an allocation failure, a number it does not
 * convert exactly as jansson would) returns NULL, and the body goes to
 * json_loadb(), whose verdict and message stand.  The pre-pass already
 * checked UTF-8 and bounded the depth.
 */

typedef struct {
    const char  *p;
    const char  *end;
} llmc_req_rd_t;

static json_t *llmc_req_rd_value(llmc_req_rd_t *rd);

static void
llmc_req_rd_ws(llmc_req_rd_t *rd)
{
    rd->p = llmc_json_ws(rd->p, rd->end);
}

/*
 * A string at rd->p (on its opening quote).  Without escapes it is
 * returned in place; with escapes it is decoded into *buf (malloc()ed, the
 * caller frees it).  Returns its length, or -1.
 */
static ssize_t
llmc_req_rd_string(llmc_req_rd_t *rd, const char **out, char **buf)
{
    char          *d;
    uint32_t       cp;
    const char    *p = rd->p + 1, *start = p, *q;
    unsigned char  c;

    *buf = NULL;
    for ( ;; ) {
        if (p == rd->end) {
            return -1;
        }
        c = (unsigned char) *p;
        if (c == '"') {
            *out = start;
            rd->p = p + 1;
            return p - start;
        }
        if (c < 0x20) {
            return -1;
        }
        if (c == '\\') {
            break;
        }
        p++;
    }

    /* escapes: never longer decoded than written, so the written length
     * (up to the closing quote) is enough */
    for (q = p; q < rd->end && *q != '"'; q++) {
        if (*q == '\\' && q + 1 < rd->end) {
            q++;
        }
    }
    d = malloc(q - start + 1);
    if (d == NULL) {
        return -1;
    }
    *buf = d;
    memcpy(d, start, p - start);
    d += p - start;

    for ( ;; ) {
        if (p == rd->end) {
            return -1;
        }
        c = (unsigned char) *p;
        if (c == '"') {
            *out = *buf;
            rd->p = p + 1;
            return d - *buf;
        }
        if (c < 0x20) {
            return -1;
        }
        if (c != '\\') {
            *d++ = (char) c;
            p++;
            continue;
        }
        if (llmc_json_escape_read(&p, rd->end, &cp) != 0 || cp == 0) {
            return -1;
        }
        d += llmc_utf8_put(cp, d);
    }
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, converted as jansson
 * does: strtoll() without a fraction or an exponent, else strtod() */
static json_t *
llmc_req_rd_number(llmc_req_rd_t *rd)
{
    int          real = 0;
    char         tok[64], *e;
    double       d;
    size_t       n;
    long long    v;
    const char  *p = rd->p, *end = rd->end;

#define LLMC_RD_DIGITS(p)                                                    \
    do {                                                                     \
        if (p == end || *p < '0' || *p > '9') {                              \
            return NULL;                                                     \
        }                                                                    \
        while (p < end && *p >= '0' && *p <= '9') {                          \
            p++;                                                             \
        }                                                                    \
    } while (0)

    if (*p == '-') {
        p++;
    }
    if (p < end && *p == '0') {
        p++;
    } else {
        LLMC_RD_DIGITS(p);
    }
    if (p < end && *p == '.') {
        p++;
        real = 1;
        LLMC_RD_DIGITS(p);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        real = 1;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        LLMC_RD_DIGITS(p);
    }
#undef LLMC_RD_DIGITS

    n = p - rd->p;
    if (n >= sizeof(tok)) {
        return NULL;
    }
    memcpy(tok, rd->p, n);
    tok[n] = '\0';
    rd->p = p;

    errno = 0;
    if (!real) {
        v = strtoll(tok, &e, 10);
        if (errno == ERANGE || e != tok + n) {
            return NULL;
        }
        return json_integer((json_int_t) v);
    }
    d = strtod(tok, &e);
    if (e != tok + n || isinf(d)) {
        return NULL;
    }
    return json_real(d);
}

static json_t *
llmc_req_rd_object(llmc_req_rd_t *rd)
{
    char        *buf;
    ssize_t      klen;
    json_t      *obj, *v;
    const char  *key;

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }
    rd->p++;
    llmc_req_rd_ws(rd);
    if (rd->p < rd->end && *rd->p == '}') {
        rd->p++;
        return obj;
    }

    for ( ;; ) {
        if (rd->p == rd->end || *rd->p != '"') {
            goto failed;
        }
        klen = llmc_req_rd_string(rd, &key, &buf);
        if (klen < 0) {
            free(buf);
            goto failed;
        }
        llmc_req_rd_ws(rd);
        if (rd->p == rd->end || *rd->p != ':'
            || json_object_getn(obj, key, klen) != NULL)
        {
            free(buf);
            goto failed;
        }
        rd->p++;
        llmc_req_rd_ws(rd);
        v = llmc_req_rd_value(rd);
        if (v == NULL || json_object_setn_new_nocheck(obj, key, klen, v) != 0)
        {
            free(buf);
            goto failed;
        }
        free(buf);

        llmc_req_rd_ws(rd);
        if (rd->p == rd->end) {
            goto failed;
        }
        if (*rd->p == '}') {
            rd->p++;
            return obj;
        }
        if (*rd->p != ',') {
            goto failed;
        }
        rd->p++;
        llmc_req_rd_ws(rd);
    }

failed:

    json_decref(obj);
    return NULL;
}

static json_t *
llmc_req_rd_array(llmc_req_rd_t *rd)
{
    json_t  *arr, *v;

    arr = json_array();
    if (arr == NULL) {
        return NULL;
    }
    rd->p++;
    llmc_req_rd_ws(rd);
    if (rd->p < rd->end && *rd->p == ']') {
        rd->p++;
        return arr;
    }

    for ( ;; ) {
        v = llmc_req_rd_value(rd);
        if (v == NULL || json_array_append_new(arr, v) != 0) {
            goto failed;
        }
        llmc_req_rd_ws(rd);
        if (rd->p == rd->end) {
            goto failed;
        }
        if (*rd->p == ']') {
            rd->p++;
            return arr;
        }
        if (*rd->p != ',') {
            goto failed;
        }
        rd->p++;
        llmc_req_rd_ws(rd);
    }

failed:

    json_decref(arr);
    return NULL;
}

static int
llmc_req_rd_word(llmc_req_rd_t *rd, const char *w, size_t n)
{
    if ((size_t) (rd->end - rd->p) < n || memcmp(rd->p, w, n) != 0) {
        return 0;
    }
    rd->p += n;
    return 1;
}

static json_t *
llmc_req_rd_value(llmc_req_rd_t *rd)
{
    char        *buf;
    json_t      *v;
    ssize_t      len;
    const char  *s;

    if (rd->p == rd->end) {
        return NULL;
    }
    switch (*rd->p) {
    case '{':
        return llmc_req_rd_object(rd);
    case '[':
        return llmc_req_rd_array(rd);
    case '"':
        len = llmc_req_rd_string(rd, &s, &buf);
        v = len < 0 ? NULL : json_stringn_nocheck(s, len);
        free(buf);
        return v;
    case 't':
        return llmc_req_rd_word(rd, "true", 4) ? json_true() : NULL;
    case 'f':
        return llmc_req_rd_word(rd, "false", 5) ? json_false() : NULL;
    case 'n':
        return llmc_req_rd_word(rd, "null", 4) ? json_null() : NULL;
    default:
        if (*rd->p == '-' || (*rd->p >= '0' && *rd->p <= '9')) {
            return llmc_req_rd_number(rd);
        }
        return NULL;
    }
}

/* the body's object, or NULL: then json_loadb() decides */
static json_t *
llmc_req_read(const char *body, size_t len)
{
    json_t         *root;
    llmc_req_rd_t   rd = { body, body + len };

    llmc_req_rd_ws(&rd);
    if (rd.p == rd.end || *rd.p != '{') {
        return NULL;
    }
    root = llmc_req_rd_object(&rd);
    if (root == NULL) {
        return NULL;
    }
    llmc_req_rd_ws(&rd);
    if (rd.p != rd.end) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ------------------------------------------------------------------------ */

int
llmc_request_parse(llmc_request_t *req, llmc_api_e api, const char *body,
    size_t len, char *err, size_t errlen)
{
    int                      rc, n_unknown;
    json_t                  *root, *v;
    json_error_t             jerr;
    llmc_req_ctx_t           ctx;
    const llmc_req_field_t  *fields;

    memset(req, 0, sizeof(*req));
    memset(&ctx, 0, sizeof(ctx));
    ctx.err = err;
    ctx.errlen = errlen;
    if (errlen) {
        err[0] = '\0';
    }

    switch (api) {
    case LLMC_API_CHAT:
        fields = llmc_req_chat_fields;
        break;
    case LLMC_API_COMPLETIONS:
        fields = llmc_req_completions_fields;
        break;
    case LLMC_API_RESPONSES:
        fields = llmc_req_responses_fields;
        break;
    case LLMC_API_MESSAGES:
        fields = llmc_req_messages_fields;
        break;
    default:
        return llmc_req_fail(&ctx, "unknown API");
    }

    if (body == NULL || len == 0) {
        return llmc_req_fail(&ctx, "empty body");
    }

    if (llmc_req_prepass(&ctx, (const unsigned char *) body, len) != 0) {
        return -1;
    }

    root = llmc_req_read(body, len);
    if (root == NULL) {
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    }
    if (root == NULL) {
        return llmc_req_fail(&ctx, "invalid JSON: %s at %d",
                             llmc_json_errmsg(&jerr),
                             jerr.position);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return llmc_req_fail(&ctx, "not a JSON object");
    }

    v = json_object_get(root, "stream");
    if (v && !json_is_boolean(v) && !json_is_null(v)) {
        json_decref(root);
        return llmc_req_fail(&ctx, "\"stream\" is not a boolean");
    }
    req->stream = json_is_true(v);

    /* a replayed stream ends with a usage chunk only when this asks */
    v = json_object_get(root, "stream_options");
    req->include_usage = json_is_object(v)
                         && json_is_true(json_object_get(v, "include_usage"));

    v = json_object_get(root, "model");
    req->model = strdup(json_is_string(v) ? json_string_value(v) : "");
    if (req->model == NULL) {
        json_decref(root);
        return llmc_req_fail(&ctx, "out of memory");
    }

    /* first the field table, so that an explicit null is absent for the
     * shape checks and the canonical forms below */
    n_unknown = llmc_req_fields(root, fields);
    if (n_unknown < 0) {
        llmc_req_fail(&ctx, "out of memory");
        goto failed;
    }

    switch (api) {
    case LLMC_API_CHAT:
        rc = llmc_req_chat(&ctx, root);
        break;
    case LLMC_API_COMPLETIONS:
        rc = llmc_req_completions(&ctx, root);
        break;
    case LLMC_API_RESPONSES:
        rc = llmc_req_responses(&ctx, root);
        break;
    default:
        rc = llmc_req_anthropic(&ctx, root);
        break;
    }
    if (rc != 0) {
        goto failed;
    }

    /* the scope is about as long as the body plus the defaults */
    req->scope_json = llmc_req_scope(root, fields, len + 256, &req->scope_len);
    if (req->scope_json == NULL) {
        llmc_req_fail(&ctx, "out of memory");
        goto failed;
    }

    if (ctx.prompt == NULL) {
        ctx.prompt = strdup("");
        if (ctx.prompt == NULL) {
            llmc_req_fail(&ctx, "out of memory");
            goto failed;
        }
    }

    req->prompt = ctx.prompt;
    req->prompt_len = ctx.prompt_len;
    req->provider = llmc_api_provider(api);
    req->api = api;
    req->n_unknown = n_unknown;

    json_decref(root);
    return 0;

failed:

    json_decref(root);
    free(ctx.prompt);
    llmc_request_free(req);
    return -1;
}

void
llmc_request_free(llmc_request_t *req)
{
    if (req == NULL) {
        return;
    }
    free(req->model);
    free(req->scope_json);
    free(req->prompt);
    memset(req, 0, sizeof(*req));
}
