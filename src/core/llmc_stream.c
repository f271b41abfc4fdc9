/*
 * Streamed responses: assembly of an upstream SSE stream into the
 * non-streamed JSON shape, replay of such a JSON response as SSE, token
 * usage.  What each format assembles and replays: docs/streaming.md.
 *
 * The assembler is strict on purpose: a stream is stored only when it is
 * finished and every event came in the order the provider documents, so
 * anything unexpected (bad JSON, a delta for a block that is not open, a
 * terminal event before the finish reason) makes it FAILED, never a
 * half-assembled entry.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_json.h"
#include "llmc_normalize.h"
#include "llmc_sse.h"
#include "llmc_stream.h"

#define LLMC_STREAM_MAX_CHOICES  128
#define LLMC_STREAM_MAX_TOOLS    128
#define LLMC_STREAM_MAX_BLOCKS   4096
#define LLMC_STREAM_CHUNK_CHARS  16
#define LLMC_STREAM_MAX_EXTRA    8
#define LLMC_STREAM_MAX_EVENT    (16 * 1024 * 1024)

typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
} llmc_str_t;

typedef struct {
    int          seen;
    json_t      *id;
    json_t      *type;
    llmc_str_t   name;
    llmc_str_t   args;
} llmc_tool_t;

/* a string field of the delta the format does not name, such as the
 * reasoning_content of OpenAI-compatible servers: joined like content */
typedef struct {
    char        *key;
    llmc_str_t   val;
} llmc_extra_t;

typedef struct {
    int          seen;
    int          has_content;
    int          has_refusal;
    llmc_str_t   content;           /* chat content; completions text */
    llmc_str_t   refusal;
    json_t      *role;
    json_t      *logprobs;          /* arrays concatenated */
    json_t      *annotations;
    json_t      *finish_reason;
    llmc_tool_t *tools;             /* by tool call index */
    size_t       ntools;
    int          has_fc;
    llmc_tool_t  fc;                /* the legacy function_call */
    llmc_extra_t extra[LLMC_STREAM_MAX_EXTRA];
    size_t       nextra;
} llmc_choice_t;

typedef enum {
    LLMC_BLOCK_OTHER = 0,
    LLMC_BLOCK_TEXT,
    LLMC_BLOCK_THINKING,
    LLMC_BLOCK_TOOL
} llmc_block_e;

struct llmc_stream_s {
    llmc_api_e           api;
    llmc_stream_state_e  state;
    size_t               max_bytes;
    size_t               bytes;
    llmc_sse_t          *sse;
    char                 err[192];
    json_t              *result;
    char                *json;          /* result serialized by finish */

    /* OpenAI chat and completions */
    json_t              *head;          /* id, created, model, ... */
    json_t              *usage;
    llmc_choice_t       *choices;       /* by choice index */
    size_t               nchoices;

    /* Responses API */
    int                  started;
    size_t               nitems;
    unsigned char       *item_done;     /* by output_index */

    /* Anthropic */
    json_t              *message;
    json_t              *content;
    int                  block_open;
    llmc_block_e         block_type;
    llmc_str_t           acc;           /* text, thinking or input JSON */
    llmc_str_t           sig;
    int                  delta_seen;
};

/* --- small helpers ------------------------------------------------------- */

static int
llmc_str_add(llmc_str_t *s, const char *p, size_t n)
{
    size_t   cap;
    char    *q;

    if (s->len + n + 1 > s->cap) {
        cap = s->cap ? s->cap : 64;
        while (cap < s->len + n + 1) {
            cap *= 2;
        }
        q = realloc(s->p, cap);
        if (q == NULL) {
            return -1;
        }
        s->p = q;
        s->cap = cap;
    }
    if (n) {
        memcpy(s->p + s->len, p, n);
    }
    s->len += n;
    s->p[s->len] = '\0';
    return 0;
}

static int
llmc_str_addz(llmc_str_t *s, const char *p)
{
    return llmc_str_add(s, p, strlen(p));
}

static json_t *
llmc_str_json(const llmc_str_t *s)
{
    return json_stringn(s->p ? s->p : "", s->len);
}

static int
llmc_stream_fail(llmc_stream_t *s, const char *fmt, const char *arg)
{
    if (s->state != LLMC_STREAM_FAILED) {
        s->state = LLMC_STREAM_FAILED;
        snprintf(s->err, sizeof(s->err), fmt, arg ? arg : "");
    }
    return -1;
}

/* "a string of at most 120 bytes" for an error message */
static const char *
llmc_short(const char *s, char *buf, size_t size)
{
    snprintf(buf, size, "%.120s", s ? s : "");
    return buf;
}

/* sets key of obj to a copy of v (v may be NULL: nothing is done);
 * 1 when that failed */
static int
llmc_set_copy(json_t *obj, const char *key, json_t *v)
{
    if (v == NULL) {
        return 0;
    }
    return json_object_set_new(obj, key, json_deep_copy(v)) != 0;
}

/* json_object_set_new() and json_object_set() that record a failure in
 * *bad; obj or v NULL (a failed allocation before) is a failure too */
static void
llmc_put_new(json_t *obj, const char *key, json_t *v, int *bad)
{
    if (json_object_set_new(obj, key, v) != 0) {
        *bad = 1;
    }
}

static void
llmc_put(json_t *obj, const char *key, json_t *v, int *bad)
{
    if (v == NULL || json_object_set(obj, key, v) != 0) {
        *bad = 1;
    }
}

/* json_pack() with "O" then this: v's reference is given up whether the
 * packing worked or not (jansson 2.14 leaks "o" arguments on some
 * failures) */
static json_t *
llmc_packed(json_t *packed, json_t *v)
{
    json_decref(v);
    return packed;
}

/* appends the elements of the arrays in src to those of dst, key by key */
static int
llmc_merge_arrays(json_t *dst, json_t *src)
{
    const char  *key;
    json_t      *v, *d;

    json_object_foreach(src, key, v) {
        d = json_object_get(dst, key);
        if (json_is_null(v) && d != NULL) {
            continue;
        }
        if (json_is_array(v) && json_is_array(d)) {
            if (json_array_extend(d, v) != 0) {
                return -1;
            }
        } else if (json_object_set(dst, key, v) != 0) {
            return -1;
        }
    }
    return 0;
}

/* --- OpenAI chat completions and legacy completions --------------------- */

static llmc_choice_t *
llmc_choice_get(llmc_stream_t *s, json_int_t index)
{
    llmc_choice_t  *c;
    size_t          n;

    if (index < 0 || index >= LLMC_STREAM_MAX_CHOICES) {
        return NULL;
    }
    if ((size_t) index >= s->nchoices) {
        n = index + 1;
        c = realloc(s->choices, n * sizeof(llmc_choice_t));
        if (c == NULL) {
            return NULL;
        }
        memset(c + s->nchoices, 0, (n - s->nchoices) * sizeof(llmc_choice_t));
        s->choices = c;
        s->nchoices = n;
    }
    return &s->choices[index];
}

static llmc_tool_t *
llmc_tool_get(llmc_choice_t *c, json_int_t index)
{
    llmc_tool_t  *t;
    size_t        n;

    if (index < 0 || index >= LLMC_STREAM_MAX_TOOLS) {
        return NULL;
    }
    if ((size_t) index >= c->ntools) {
        n = index + 1;
        t = realloc(c->tools, n * sizeof(llmc_tool_t));
        if (t == NULL) {
            return NULL;
        }
        memset(t + c->ntools, 0, (n - c->ntools) * sizeof(llmc_tool_t));
        c->tools = t;
        c->ntools = n;
    }
    return &c->tools[index];
}

static void
llmc_choice_free(llmc_choice_t *c)
{
    size_t  i;

    free(c->content.p);
    free(c->refusal.p);
    json_decref(c->role);
    json_decref(c->logprobs);
    json_decref(c->annotations);
    json_decref(c->finish_reason);
    for (i = 0; i < c->ntools; i++) {
        json_decref(c->tools[i].id);
        json_decref(c->tools[i].type);
        free(c->tools[i].name.p);
        free(c->tools[i].args.p);
    }
    free(c->tools);
    free(c->fc.name.p);
    free(c->fc.args.p);
    for (i = 0; i < c->nextra; i++) {
        free(c->extra[i].key);
        free(c->extra[i].val.p);
    }
}

static int
llmc_chat_tool_delta(llmc_stream_t *s, llmc_choice_t *c, json_t *tc)
{
    json_t       *idx, *fn, *v;
    llmc_tool_t  *t;

    idx = json_object_get(tc, "index");
    if (!json_is_object(tc) || !json_is_integer(idx)) {
        return llmc_stream_fail(s, "tool call delta without an index%s",
                                NULL);
    }
    t = llmc_tool_get(c, json_integer_value(idx));
    if (t == NULL) {
        return llmc_stream_fail(s, "tool call index out of range%s", NULL);
    }
    t->seen = 1;

    v = json_object_get(tc, "id");
    if (json_is_string(v)) {
        json_decref(t->id);
        t->id = json_incref(v);
    }
    v = json_object_get(tc, "type");
    if (json_is_string(v)) {
        json_decref(t->type);
        t->type = json_incref(v);
    }
    fn = json_object_get(tc, "function");
    if (json_is_object(fn)) {
        v = json_object_get(fn, "name");
        if (json_is_string(v)
            && llmc_str_add(&t->name, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        v = json_object_get(fn, "arguments");
        if (json_is_string(v)
            && llmc_str_add(&t->args, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
    }
    return 0;
}

static int
llmc_str_add_json(llmc_str_t *dst, json_t *v)
{
    return json_is_string(v) ? llmc_str_add(dst, json_string_value(v),
                                            json_string_length(v))
                             : 0;
}

/* the legacy function_call, and the string fields no format names; a
 * field of another kind (audio) cannot be joined: not stored */
static int
llmc_chat_other_delta(llmc_stream_t *s, llmc_choice_t *c, json_t *delta)
{
    static const char  *known[] = { "role", "content", "refusal",
                                    "annotations", "tool_calls" };
    const char         *key;
    json_t             *v;
    llmc_extra_t       *x;
    size_t              i;
    char                buf[128];

    json_object_foreach(delta, key, v) {
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (strcmp(key, known[i]) == 0) {
                break;
            }
        }
        if (i < sizeof(known) / sizeof(known[0]) || json_is_null(v)) {
            continue;
        }

        if (strcmp(key, "function_call") == 0 && json_is_object(v)) {
            c->has_fc = 1;
            if (llmc_str_add_json(&c->fc.name, json_object_get(v, "name"))
                || llmc_str_add_json(&c->fc.args,
                                     json_object_get(v, "arguments")))
            {
                return llmc_stream_fail(s, "out of memory%s", NULL);
            }
            continue;
        }
        if (!json_is_string(v) || strcmp(key, "function_call") == 0) {
            return llmc_stream_fail(s, "delta field \"%s\" not a string",
                                    llmc_short(key, buf, sizeof(buf)));
        }

        for (i = 0; i < c->nextra; i++) {
            if (strcmp(c->extra[i].key, key) == 0) {
                break;
            }
        }
        if (i == c->nextra) {
            if (c->nextra == LLMC_STREAM_MAX_EXTRA) {
                return llmc_stream_fail(s, "too many delta fields%s", NULL);
            }
            c->extra[i].key = strdup(key);
            if (c->extra[i].key == NULL) {
                return llmc_stream_fail(s, "out of memory%s", NULL);
            }
            c->nextra++;
        }
        x = &c->extra[i];
        if (llmc_str_add_json(&x->val, v) != 0) {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
    }
    return 0;
}

static int
llmc_openai_choice(llmc_stream_t *s, json_t *ch)
{
    json_t         *idx, *delta, *v, *tc;
    llmc_choice_t  *c;
    size_t          i;
    int             chat = (s->api == LLMC_API_CHAT);

    idx = json_object_get(ch, "index");
    if (!json_is_object(ch) || !json_is_integer(idx)) {
        return llmc_stream_fail(s, "choice without an index%s", NULL);
    }
    c = llmc_choice_get(s, json_integer_value(idx));
    if (c == NULL) {
        return llmc_stream_fail(s, "choice index out of range%s", NULL);
    }
    c->seen = 1;

    if (chat) {
        delta = json_object_get(ch, "delta");
        if (delta != NULL && !json_is_object(delta) && !json_is_null(delta)) {
            return llmc_stream_fail(s, "delta not an object%s", NULL);
        }
    } else {
        delta = ch;
    }

    if (json_is_object(delta) && c->finish_reason != NULL) {
        /* anything but an empty delta after the finish reason */
        v = json_object_get(delta, chat ? "content" : "text");
        if ((json_is_string(v) && json_string_length(v) > 0)
            || json_object_get(delta, "tool_calls") != NULL)
        {
            return llmc_stream_fail(s, "delta after finish_reason%s", NULL);
        }
    }

    if (json_is_object(delta)) {
        v = json_object_get(delta, "role");
        if (chat && json_is_string(v)) {
            json_decref(c->role);
            c->role = json_incref(v);
        }
        v = json_object_get(delta, chat ? "content" : "text");
        if (json_is_string(v)) {
            c->has_content = 1;
            if (llmc_str_add(&c->content, json_string_value(v),
                             json_string_length(v)) != 0)
            {
                return llmc_stream_fail(s, "out of memory%s", NULL);
            }
        }
        v = json_object_get(delta, "refusal");
        if (chat && json_is_string(v)) {
            c->has_refusal = 1;
            if (llmc_str_add(&c->refusal, json_string_value(v),
                             json_string_length(v)) != 0)
            {
                return llmc_stream_fail(s, "out of memory%s", NULL);
            }
        }
        v = json_object_get(delta, "annotations");
        if (chat && json_is_array(v)) {
            if (c->annotations == NULL) {
                c->annotations = json_array();
            }
            if (c->annotations == NULL
                || json_array_extend(c->annotations, v) != 0)
            {
                return llmc_stream_fail(s, "out of memory%s", NULL);
            }
        }
        tc = json_object_get(delta, "tool_calls");
        if (chat && tc != NULL && !json_is_null(tc)) {
            if (!json_is_array(tc)) {
                return llmc_stream_fail(s, "tool_calls not an array%s",
                                        NULL);
            }
            for (i = 0; i < json_array_size(tc); i++) {
                if (llmc_chat_tool_delta(s, c, json_array_get(tc, i)) != 0) {
                    return -1;
                }
            }
        }
        if (chat && llmc_chat_other_delta(s, c, delta) != 0) {
            return -1;
        }
    }

    v = json_object_get(ch, "logprobs");
    if (json_is_object(v)) {
        if (c->logprobs == NULL) {
            c->logprobs = json_deep_copy(v);
            if (c->logprobs == NULL) {
                return llmc_stream_fail(s, "out of memory%s", NULL);
            }
        } else if (llmc_merge_arrays(c->logprobs, v) != 0) {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
    }

    v = json_object_get(ch, "finish_reason");
    if (json_is_string(v)) {
        json_decref(c->finish_reason);
        c->finish_reason = json_incref(v);
    }
    return 0;
}

static json_t *
llmc_chat_message(llmc_choice_t *c)
{
    json_t       *m, *tcs, *tc, *fn, *fcn, *fca;
    llmc_tool_t  *t;
    size_t        i;
    int           bad = 0;

    m = json_object();
    llmc_put_new(m, "role", c->role ? json_incref(c->role)
                                    : json_string("assistant"), &bad);
    llmc_put_new(m, "content", c->has_content ? llmc_str_json(&c->content)
                                              : json_null(), &bad);
    tcs = NULL;
    for (i = 0; i < c->ntools; i++) {
        t = &c->tools[i];
        if (!t->seen) {
            continue;
        }
        if (tcs == NULL) {
            tcs = json_array();
            if (tcs == NULL) {
                bad = 1;
                break;
            }
        }
        fn = json_object();
        llmc_put_new(fn, "name", llmc_str_json(&t->name), &bad);
        llmc_put_new(fn, "arguments", llmc_str_json(&t->args), &bad);
        tc = json_object();
        llmc_put_new(tc, "id", t->id ? json_incref(t->id) : json_null(),
                     &bad);
        llmc_put_new(tc, "type", t->type ? json_incref(t->type)
                                         : json_string("function"), &bad);
        llmc_put_new(tc, "function", fn, &bad);
        if (json_array_append_new(tcs, tc) != 0) {
            bad = 1;
        }
    }
    if (tcs != NULL) {
        llmc_put_new(m, "tool_calls", tcs, &bad);
    }
    llmc_put_new(m, "refusal", c->has_refusal ? llmc_str_json(&c->refusal)
                                              : json_null(), &bad);
    llmc_put_new(m, "annotations", c->annotations
                                   ? json_incref(c->annotations)
                                   : json_array(), &bad);
    if (c->has_fc) {
        fcn = llmc_str_json(&c->fc.name);
        fca = llmc_str_json(&c->fc.args);
        llmc_put_new(m, "function_call",
                     llmc_packed(llmc_packed(json_pack("{s:O,s:O}",
                                                       "name", fcn,
                                                       "arguments", fca),
                                             fcn), fca),
                     &bad);
    }
    for (i = 0; i < c->nextra; i++) {
        llmc_put_new(m, c->extra[i].key, llmc_str_json(&c->extra[i].val),
                     &bad);
    }
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static json_t *
llmc_openai_result(llmc_stream_t *s)
{
    json_t         *r, *choices, *ch, *v;
    llmc_choice_t  *c;
    size_t          i;
    int             chat = (s->api == LLMC_API_CHAT), bad = 0;

    r = json_object();
    choices = json_array();
    if (r == NULL || choices == NULL) {
        json_decref(r);
        json_decref(choices);
        return NULL;
    }
    bad |= llmc_set_copy(r, "id", json_object_get(s->head, "id"));
    llmc_put_new(r, "object", json_string(chat ? "chat.completion"
                                               : "text_completion"), &bad);
    bad |= llmc_set_copy(r, "created", json_object_get(s->head, "created"));
    bad |= llmc_set_copy(r, "model", json_object_get(s->head, "model"));

    for (i = 0; i < s->nchoices; i++) {
        c = &s->choices[i];
        if (!c->seen) {
            continue;
        }
        ch = json_object();
        if (chat) {
            llmc_put_new(ch, "index", json_integer(i), &bad);
            llmc_put_new(ch, "message", llmc_chat_message(c), &bad);
        } else {
            llmc_put_new(ch, "text", llmc_str_json(&c->content), &bad);
            llmc_put_new(ch, "index", json_integer(i), &bad);
        }
        llmc_put_new(ch, "logprobs", c->logprobs ? json_incref(c->logprobs)
                                                 : json_null(), &bad);
        llmc_put(ch, "finish_reason", c->finish_reason, &bad);
        if (json_array_append_new(choices, ch) != 0) {
            bad = 1;
        }
    }
    llmc_put_new(r, "choices", choices, &bad);

    if (s->usage != NULL) {
        llmc_put(r, "usage", s->usage, &bad);
    }
    v = json_object_get(s->head, "service_tier");
    if (chat && v != NULL) {
        llmc_put(r, "service_tier", v, &bad);
    }
    bad |= llmc_set_copy(r, "system_fingerprint",
                         json_object_get(s->head, "system_fingerprint"));
    if (bad) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static int
llmc_openai_done(llmc_stream_t *s)
{
    size_t  i, seen = 0;

    for (i = 0; i < s->nchoices; i++) {
        if (!s->choices[i].seen) {
            continue;
        }
        seen++;
        if (s->choices[i].finish_reason == NULL) {
            return llmc_stream_fail(s, "[DONE] before a finish_reason%s",
                                    NULL);
        }
    }
    if (seen == 0) {
        return llmc_stream_fail(s, "[DONE] without a choice%s", NULL);
    }
    s->result = llmc_openai_result(s);
    if (s->result == NULL) {
        return llmc_stream_fail(s, "out of memory%s", NULL);
    }
    s->state = LLMC_STREAM_DONE;
    return 0;
}

static int
llmc_openai_chunk(llmc_stream_t *s, json_t *obj)
{
    static const char  *keys[] = { "id", "created", "model",
                                   "system_fingerprint", "service_tier" };
    json_t             *choices, *v;
    size_t              i;
    char                buf[128];

    v = json_object_get(obj, "object");
    if (v != NULL && !json_is_null(v)
        && !(json_is_string(v)
             && strcmp(json_string_value(v), s->api == LLMC_API_CHAT
                       ? "chat.completion.chunk" : "text_completion") == 0))
    {
        return llmc_stream_fail(s, "unexpected object \"%s\"",
                                llmc_short(json_string_value(v), buf,
                                           sizeof(buf)));
    }

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        v = json_object_get(obj, keys[i]);
        if (v != NULL && !json_is_null(v)
            && json_object_set(s->head, keys[i], v) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
    }

    v = json_object_get(obj, "usage");
    if (json_is_object(v)) {
        json_decref(s->usage);
        s->usage = json_incref(v);
    }

    choices = json_object_get(obj, "choices");
    if (choices == NULL || json_is_null(choices)) {
        return 0;
    }
    if (!json_is_array(choices)) {
        return llmc_stream_fail(s, "choices not an array%s", NULL);
    }
    for (i = 0; i < json_array_size(choices); i++) {
        if (llmc_openai_choice(s, json_array_get(choices, i)) != 0) {
            return -1;
        }
    }
    return 0;
}

/* --- OpenAI Responses API ------------------------------------------------ */

/* what a replay relies on: a response object whose output items are typed
 * and whose function calls carry their arguments */
static int
llmc_responses_check(json_t *r)
{
    json_t      *output, *item, *v;
    const char  *t;
    size_t       i;

    v = json_object_get(r, "object");
    output = json_object_get(r, "output");
    if (!json_is_string(v) || strcmp(json_string_value(v), "response") != 0
        || !json_is_array(output))
    {
        return -1;
    }
    json_array_foreach(output, i, item) {
        t = json_string_value(json_object_get(item, "type"));
        if (t == NULL) {
            return -1;
        }
        if (strcmp(t, "function_call") == 0
            && !json_is_string(json_object_get(item, "arguments")))
        {
            return -1;
        }
    }
    return 0;
}

static int
llmc_responses_event(llmc_stream_t *s, const char *type, json_t *obj)
{
    json_t         *oi, *r, *v;
    json_int_t      i;
    unsigned char  *d;
    size_t          k;
    char            buf[128];

    if (strcmp(type, "error") == 0) {
        v = json_object_get(obj, "message");
        return llmc_stream_fail(s, "error event: %s",
                                llmc_short(json_string_value(v), buf,
                                           sizeof(buf)));
    }
    if (strcmp(type, "response.failed") == 0
        || strcmp(type, "response.incomplete") == 0)
    {
        return llmc_stream_fail(s, "%s", type);
    }
    if (strcmp(type, "response.created") == 0
        || strcmp(type, "response.queued") == 0)
    {
        if (s->nitems > 0) {
            return llmc_stream_fail(s, "%s after output items", type);
        }
        s->started = 1;
        return 0;
    }
    if (!s->started) {
        return llmc_stream_fail(s, "%s before response.created",
                                llmc_short(type, buf, sizeof(buf)));
    }

    if (strcmp(type, "response.completed") == 0) {
        r = json_object_get(obj, "response");
        if (!json_is_object(r)) {
            return llmc_stream_fail(s, "response.completed without a "
                                    "response%s", NULL);
        }
        for (k = 0; k < s->nitems; k++) {
            if (!s->item_done[k]) {
                return llmc_stream_fail(s, "response.completed before "
                                        "output_item.done%s", NULL);
            }
        }
        v = json_object_get(r, "status");
        if (!json_is_string(v)
            || strcmp(json_string_value(v), "completed") != 0)
        {
            return llmc_stream_fail(s, "response.completed with status "
                                    "\"%s\"", llmc_short(json_string_value(v),
                                                         buf, sizeof(buf)));
        }
        if (llmc_responses_check(r) != 0) {
            return llmc_stream_fail(s, "response.completed with a malformed "
                                    "response%s", NULL);
        }
        s->result = json_incref(r);
        s->state = LLMC_STREAM_DONE;
        return 0;
    }

    oi = json_object_get(obj, "output_index");
    if (oi == NULL) {
        return 0;
    }
    if (!json_is_integer(oi)) {
        return llmc_stream_fail(s, "%s: output_index not an integer",
                                llmc_short(type, buf, sizeof(buf)));
    }
    i = json_integer_value(oi);

    if (strcmp(type, "response.output_item.added") == 0) {
        if (i < 0 || (size_t) i != s->nitems
            || s->nitems >= LLMC_STREAM_MAX_BLOCKS)
        {
            return llmc_stream_fail(s, "output_item.added out of order%s",
                                    NULL);
        }
        d = realloc(s->item_done, s->nitems + 1);
        if (d == NULL) {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        s->item_done = d;
        s->item_done[s->nitems++] = 0;
        return 0;
    }

    /* every other event with an output_index is about an open item */
    if (i < 0 || (size_t) i >= s->nitems || s->item_done[i]) {
        return llmc_stream_fail(s, "%s for an item not open",
                                llmc_short(type, buf, sizeof(buf)));
    }
    if (strcmp(type, "response.output_item.done") == 0) {
        s->item_done[i] = 1;
    }
    return 0;
}

/* --- Anthropic messages -------------------------------------------------- */

static int
llmc_block_start(llmc_stream_t *s, json_t *obj)
{
    json_t      *idx, *b, *v;
    const char  *t;

    idx = json_object_get(obj, "index");
    b = json_object_get(obj, "content_block");
    if (s->block_open || !json_is_integer(idx)
        || json_integer_value(idx) != (json_int_t) json_array_size(s->content)
        || json_array_size(s->content) >= LLMC_STREAM_MAX_BLOCKS)
    {
        return llmc_stream_fail(s, "content_block_start out of order%s",
                                NULL);
    }
    t = json_string_value(json_object_get(b, "type"));
    if (!json_is_object(b) || t == NULL) {
        return llmc_stream_fail(s, "content_block_start without a typed "
                                "block%s", NULL);
    }
    b = json_deep_copy(b);
    if (b == NULL || json_array_append_new(s->content, b) != 0) {
        return llmc_stream_fail(s, "out of memory%s", NULL);
    }
    s->block_open = 1;
    s->acc.len = 0;
    s->sig.len = 0;

    if (strcmp(t, "text") == 0) {
        s->block_type = LLMC_BLOCK_TEXT;
        v = json_object_get(b, "text");
        if (json_is_string(v)
            && llmc_str_add(&s->acc, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
    } else if (strcmp(t, "thinking") == 0) {
        s->block_type = LLMC_BLOCK_THINKING;
        v = json_object_get(b, "thinking");
        if (json_is_string(v)
            && llmc_str_add(&s->acc, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        v = json_object_get(b, "signature");
        if (json_is_string(v)
            && llmc_str_add(&s->sig, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
    } else if (json_object_get(b, "input") != NULL) {
        /* tool_use, server_tool_use, mcp_tool_use: the input comes as
         * JSON fragments, the start event's {} is a placeholder */
        s->block_type = LLMC_BLOCK_TOOL;
    } else {
        s->block_type = LLMC_BLOCK_OTHER;
    }
    return 0;
}

static int
llmc_block_delta(llmc_stream_t *s, json_t *obj)
{
    json_t      *idx, *d, *v, *b, *cits;
    const char  *t;
    char         buf[128];
    llmc_str_t  *dst;
    const char  *field;

    idx = json_object_get(obj, "index");
    d = json_object_get(obj, "delta");
    if (!s->block_open || !json_is_integer(idx)
        || json_integer_value(idx)
           != (json_int_t) json_array_size(s->content) - 1)
    {
        return llmc_stream_fail(s, "content_block_delta for a block not "
                                "open%s", NULL);
    }
    t = json_string_value(json_object_get(d, "type"));
    if (t == NULL) {
        return llmc_stream_fail(s, "content_block_delta without a type%s",
                                NULL);
    }
    b = json_array_get(s->content, json_array_size(s->content) - 1);

    if (strcmp(t, "citations_delta") == 0 && s->block_type == LLMC_BLOCK_TEXT)
    {
        v = json_object_get(d, "citation");
        cits = json_object_get(b, "citations");
        if (!json_is_array(cits)) {
            cits = json_array();
            if (cits == NULL || json_object_set_new(b, "citations", cits)) {
                return llmc_stream_fail(s, "out of memory%s", NULL);
            }
        }
        if (v == NULL || json_array_append(cits, v) != 0) {
            return llmc_stream_fail(s, "bad citations_delta%s", NULL);
        }
        return 0;
    }

    if (strcmp(t, "text_delta") == 0 && s->block_type == LLMC_BLOCK_TEXT) {
        dst = &s->acc;
        field = "text";
    } else if (strcmp(t, "thinking_delta") == 0
               && s->block_type == LLMC_BLOCK_THINKING)
    {
        dst = &s->acc;
        field = "thinking";
    } else if (strcmp(t, "signature_delta") == 0
               && s->block_type == LLMC_BLOCK_THINKING)
    {
        dst = &s->sig;
        field = "signature";
    } else if (strcmp(t, "input_json_delta") == 0
               && s->block_type == LLMC_BLOCK_TOOL)
    {
        dst = &s->acc;
        field = "partial_json";
    } else {
        return llmc_stream_fail(s, "unexpected delta \"%s\"",
                                llmc_short(t, buf, sizeof(buf)));
    }

    v = json_object_get(d, field);
    if (!json_is_string(v)) {
        return llmc_stream_fail(s, "%s without its string", t);
    }
    if (llmc_str_add(dst, json_string_value(v), json_string_length(v)) != 0) {
        return llmc_stream_fail(s, "out of memory%s", NULL);
    }
    return 0;
}

static int
llmc_block_stop(llmc_stream_t *s, json_t *obj)
{
    json_t        *idx, *b, *input;
    json_error_t   jerr;

    idx = json_object_get(obj, "index");
    if (!s->block_open || !json_is_integer(idx)
        || json_integer_value(idx)
           != (json_int_t) json_array_size(s->content) - 1)
    {
        return llmc_stream_fail(s, "content_block_stop for a block not "
                                "open%s", NULL);
    }
    b = json_array_get(s->content, json_array_size(s->content) - 1);
    s->block_open = 0;

    switch (s->block_type) {
    case LLMC_BLOCK_TEXT:
        if (json_object_set_new(b, "text", llmc_str_json(&s->acc)) != 0) {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        break;
    case LLMC_BLOCK_THINKING:
        if (json_object_set_new(b, "thinking", llmc_str_json(&s->acc)) != 0
            || json_object_set_new(b, "signature", llmc_str_json(&s->sig))
               != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        break;
    case LLMC_BLOCK_TOOL:
        if (s->acc.len == 0) {
            input = json_object();
        } else {
            input = json_loadb(s->acc.p, s->acc.len,
                               JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                               &jerr);
            if (input == NULL) {
                return llmc_stream_fail(s, "tool input not JSON: %s",
                                        llmc_json_errmsg(&jerr));
            }
        }
        if (!json_is_object(input)) {
            json_decref(input);
            return llmc_stream_fail(s, "tool input not an object%s", NULL);
        }
        if (json_object_set_new(b, "input", input) != 0) {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        break;
    default:
        break;
    }
    return 0;
}

static int
llmc_anthropic_event(llmc_stream_t *s, const char *type, json_t *obj)
{
    json_t       *m, *d, *u, *mu, *v;
    const char   *key;
    char          buf[128];

    if (strcmp(type, "ping") == 0) {
        return 0;
    }
    if (strcmp(type, "error") == 0) {
        v = json_object_get(json_object_get(obj, "error"), "message");
        return llmc_stream_fail(s, "error event: %s",
                                llmc_short(json_string_value(v), buf,
                                           sizeof(buf)));
    }
    if (strcmp(type, "message_start") == 0) {
        m = json_object_get(obj, "message");
        v = json_object_get(m, "type");
        if (s->message != NULL || !json_is_object(m) || !json_is_string(v)
            || strcmp(json_string_value(v), "message") != 0)
        {
            return llmc_stream_fail(s, "message_start out of order or "
                                    "without a message%s", NULL);
        }
        s->message = json_deep_copy(m);
        s->content = json_array();
        if (s->message == NULL || s->content == NULL) {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        return 0;
    }

    if (s->message == NULL) {
        if (strncmp(type, "message_", 8) != 0
            && strncmp(type, "content_block_", 14) != 0)
        {
            return 0;
        }
        return llmc_stream_fail(s, "%s before message_start",
                                llmc_short(type, buf, sizeof(buf)));
    }

    if (strcmp(type, "content_block_start") == 0) {
        if (s->delta_seen) {
            return llmc_stream_fail(s, "content block after "
                                    "message_delta%s", NULL);
        }
        return llmc_block_start(s, obj);
    }
    if (strcmp(type, "content_block_delta") == 0) {
        return llmc_block_delta(s, obj);
    }
    if (strcmp(type, "content_block_stop") == 0) {
        return llmc_block_stop(s, obj);
    }

    if (strcmp(type, "message_delta") == 0) {
        if (s->block_open) {
            return llmc_stream_fail(s, "message_delta inside a content "
                                    "block%s", NULL);
        }
        d = json_object_get(obj, "delta");
        if (json_is_object(d)) {
            json_object_foreach(d, key, v) {
                if (json_object_set(s->message, key, v) != 0) {
                    return llmc_stream_fail(s, "out of memory%s", NULL);
                }
            }
        }
        /* cumulative counts: the latest non-null value of each wins */
        u = json_object_get(obj, "usage");
        if (json_is_object(u)) {
            mu = json_object_get(s->message, "usage");
            if (!json_is_object(mu)) {
                mu = json_object();
                if (mu == NULL
                    || json_object_set_new(s->message, "usage", mu) != 0)
                {
                    return llmc_stream_fail(s, "out of memory%s", NULL);
                }
            }
            json_object_foreach(u, key, v) {
                if (!json_is_null(v) && json_object_set(mu, key, v) != 0) {
                    return llmc_stream_fail(s, "out of memory%s", NULL);
                }
            }
        }
        s->delta_seen = 1;
        return 0;
    }

    if (strcmp(type, "message_stop") == 0) {
        v = json_object_get(s->message, "stop_reason");
        if (!s->delta_seen || s->block_open || !json_is_string(v)) {
            return llmc_stream_fail(s, "message_stop before message_delta "
                                    "with a stop_reason%s", NULL);
        }
        if (json_object_set(s->message, "content", s->content) != 0) {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        s->result = json_incref(s->message);
        s->state = LLMC_STREAM_DONE;
        return 0;
    }

    /* new event types may appear: the documented rule is to ignore them */
    return 0;
}

/* --- the SSE handler ----------------------------------------------------- */

static int
llmc_stream_event(void *data, const llmc_sse_event_t *ev)
{
    llmc_stream_t  *s = data;
    json_t         *obj, *v;
    json_error_t    jerr;
    const char     *type;
    char            buf[128];
    int             rc;

    if (s->state == LLMC_STREAM_DONE) {
        return llmc_stream_fail(s, "event after the end of the stream%s",
                                NULL);
    }
    if (s->state == LLMC_STREAM_FAILED) {
        return -1;
    }

    if (ev->event_len == 5 && memcmp(ev->event, "error", 5) == 0) {
        return llmc_stream_fail(s, "error event: %s",
                                llmc_short(ev->data, buf, sizeof(buf)));
    }

    if ((s->api == LLMC_API_CHAT || s->api == LLMC_API_COMPLETIONS)
        && ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0)
    {
        return llmc_openai_done(s);
    }

    /* a model may well write U+0000: strings are handled with lengths */
    obj = json_loadb(ev->data, ev->data_len,
                     JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (obj == NULL) {
        return llmc_stream_fail(s, "data not JSON: %s",
                                llmc_json_errmsg(&jerr));
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        return llmc_stream_fail(s, "data not a JSON object%s", NULL);
    }

    switch (s->api) {
    case LLMC_API_CHAT:
    case LLMC_API_COMPLETIONS:
        v = json_object_get(obj, "error");
        if (v != NULL && !json_is_null(v)) {
            rc = llmc_stream_fail(s, "error: %s",
                     llmc_short(json_string_value(
                         json_object_get(v, "message")), buf, sizeof(buf)));
            break;
        }
        rc = llmc_openai_chunk(s, obj);
        break;

    default:
        type = json_string_value(json_object_get(obj, "type"));
        if (type == NULL) {
            rc = llmc_stream_fail(s, "event data without a type%s", NULL);
        } else if (s->api == LLMC_API_RESPONSES) {
            rc = llmc_responses_event(s, type, obj);
        } else {
            rc = llmc_anthropic_event(s, type, obj);
        }
        break;
    }

    json_decref(obj);
    return rc;
}

/* --- public: assembly ---------------------------------------------------- */

llmc_stream_t *
llmc_stream_new(llmc_api_e api, size_t max_bytes)
{
    llmc_stream_t  *s;

    if (api != LLMC_API_CHAT && api != LLMC_API_COMPLETIONS
        && api != LLMC_API_RESPONSES && api != LLMC_API_MESSAGES)
    {
        return NULL;
    }
    s = calloc(1, sizeof(llmc_stream_t));
    if (s == NULL) {
        return NULL;
    }
    s->api = api;
    s->max_bytes = max_bytes;
    /* response.completed carries the whole response (instructions and
     * tools echoed): one event may be most of the stream */
    s->sse = llmc_sse_new(max_bytes ? max_bytes : LLMC_STREAM_MAX_EVENT);
    s->head = json_object();
    if (s->sse == NULL || s->head == NULL) {
        llmc_stream_free(s);
        return NULL;
    }
    return s;
}

void
llmc_stream_free(llmc_stream_t *s)
{
    size_t  i;

    if (s == NULL) {
        return;
    }
    llmc_sse_free(s->sse);
    json_decref(s->result);
    free(s->json);
    json_decref(s->head);
    json_decref(s->usage);
    for (i = 0; i < s->nchoices; i++) {
        llmc_choice_free(&s->choices[i]);
    }
    free(s->choices);
    free(s->item_done);
    json_decref(s->message);
    json_decref(s->content);
    free(s->acc.p);
    free(s->sig.p);
    free(s);
}

int
llmc_stream_feed(llmc_stream_t *s, const char *buf, size_t len)
{
    if (s->state == LLMC_STREAM_FAILED) {
        return -1;
    }
    if (s->max_bytes && len > s->max_bytes - s->bytes) {
        return llmc_stream_fail(s, "stream over the size limit%s", NULL);
    }
    s->bytes += len;
    if (llmc_sse_feed(s->sse, buf, len, llmc_stream_event, s) != 0) {
        return llmc_stream_fail(s, "SSE: %s", llmc_sse_error(s->sse));
    }
    return 0;
}

static void llmc_stream_check_replay(llmc_stream_t *s);

llmc_stream_state_e
llmc_stream_finish(llmc_stream_t *s)
{
    if (s->state == LLMC_STREAM_OPEN) {
        llmc_stream_fail(s, "truncated: no terminal event%s", NULL);
    } else if (s->state == LLMC_STREAM_DONE && llmc_sse_pending(s->sse)) {
        llmc_stream_fail(s, "bytes after the terminal event%s", NULL);
    }
    if (s->state == LLMC_STREAM_DONE) {
        llmc_stream_check_replay(s);
    }
    return s->state;
}

/*
 * What is stored must replay: an answer whose parts the provider sent
 * malformed (a text part without its text, ...) would be a stored entry
 * that no streaming client could be served from.
 */
static void
llmc_stream_check_replay(llmc_stream_t *s)
{
    char    *json, *sse, err[128];
    size_t   len;

    json = s->result ? json_dumps(s->result, JSON_COMPACT) : NULL;
    if (json == NULL) {
        llmc_stream_fail(s, "the answer could not be serialized%s", NULL);
        return;
    }
    sse = llmc_stream_replay(s->api, json, strlen(json), 1, 0, &len, err,
                             sizeof(err));
    if (sse == NULL) {
        free(json);
        llmc_stream_fail(s, "the answer would not replay as a stream: %s",
                         err);
        return;
    }
    free(sse);
    free(s->json);
    s->json = json;             /* llmc_stream_result() hands it over */
}

llmc_stream_state_e
llmc_stream_state(const llmc_stream_t *s)
{
    return s->state;
}

const char *
llmc_stream_error(const llmc_stream_t *s)
{
    return s->state == LLMC_STREAM_FAILED ? s->err : "";
}

char *
llmc_stream_result(llmc_stream_t *s, size_t *len)
{
    char  *out;

    if (s->state != LLMC_STREAM_DONE || s->result == NULL) {
        return NULL;
    }
    if (s->json != NULL) {
        out = s->json;          /* serialized once, when it was checked */
        s->json = NULL;
    } else {
        out = json_dumps(s->result, JSON_COMPACT);
    }
    if (out != NULL && len != NULL) {
        *len = strlen(out);
    }
    return out;
}

/* --- replay -------------------------------------------------------------- */

typedef struct {
    llmc_str_t   out;
    size_t       chunk;         /* code points per piece */
    int          failed;
    json_int_t   seq;           /* Responses sequence_number */
} llmc_replay_t;

/* appends p[0..n) as the inside of a JSON string */
static int
llmc_json_escape_in(llmc_str_t *out, const char *p, size_t n)
{
    static const char  hex[] = "0123456789ABCDEF";  /* as jansson */
    const char        *start = p, *end = p + n;
    char               esc[6];
    unsigned char      c;

    for ( ; p < end; p++) {
        c = (unsigned char) *p;
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        if (llmc_str_add(out, start, p - start) != 0) {
            return -1;
        }
        start = p + 1;
        esc[0] = '\\';
        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            if (llmc_str_add(out, esc, 6) != 0) {
                return -1;
            }
            continue;
        }
        if (llmc_str_add(out, esc, 2) != 0) {
            return -1;
        }
    }
    return llmc_str_add(out, start, p - start);
}

/* appends p[0..n) as a JSON string */
static int
llmc_json_escape(llmc_str_t *out, const char *p, size_t n)
{
    return llmc_str_add(out, "\"", 1) == 0
           && llmc_json_escape_in(out, p, n) == 0
           && llmc_str_add(out, "\"", 1) == 0 ? 0 : -1;
}

/*
 * Appends v as compact JSON, byte for byte what json_dumps(v, JSON_COMPACT)
 * writes (keys in insertion order, the same escapes), without its callback
 * per token, its printf per integer and its copy of the result: a replay
 * dumps one object per event.  Reals, rare in answers, are left to jansson.
 */
static int
llmc_json_dump(llmc_str_t *out, json_t *v)
{
    char                 num[24], *js, *q;
    const char          *key;
    json_t              *e;
    size_t               i;
    json_int_t           iv;
    unsigned long long   u;
    int                  rc;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (llmc_str_add(out, "{", 1) != 0) {
            return -1;
        }
        i = 0;
        json_object_foreach(v, key, e) {
            if ((i++ > 0 && llmc_str_add(out, ",", 1) != 0)
                || llmc_json_escape(out, key, strlen(key)) != 0
                || llmc_str_add(out, ":", 1) != 0
                || llmc_json_dump(out, e) != 0)
            {
                return -1;
            }
        }
        return llmc_str_add(out, "}", 1);

    case JSON_ARRAY:
        if (llmc_str_add(out, "[", 1) != 0) {
            return -1;
        }
        json_array_foreach(v, i, e) {
            if ((i > 0 && llmc_str_add(out, ",", 1) != 0)
                || llmc_json_dump(out, e) != 0)
            {
                return -1;
            }
        }
        return llmc_str_add(out, "]", 1);

    case JSON_STRING:
        return llmc_json_escape(out, json_string_value(v),
                                json_string_length(v));

    case JSON_INTEGER:
        iv = json_integer_value(v);
        u = iv < 0 ? 0ULL - (unsigned long long) iv : (unsigned long long) iv;
        q = num + sizeof(num);
        do {
            *--q = (char) ('0' + u % 10);
            u /= 10;
        } while (u > 0);
        if (iv < 0) {
            *--q = '-';
        }
        return llmc_str_add(out, q, num + sizeof(num) - q);

    case JSON_TRUE:
        return llmc_str_add(out, "true", 4);
    case JSON_FALSE:
        return llmc_str_add(out, "false", 5);
    case JSON_NULL:
        return llmc_str_add(out, "null", 4);

    default:
        js = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (js == NULL) {
            return -1;
        }
        rc = llmc_str_add(out, js, strlen(js));
        free(js);
        return rc;
    }
}

/* appends one event; takes the reference to obj */
static void
llmc_replay_emit(llmc_replay_t *rp, const char *event, json_t *obj)
{
    if (obj == NULL
        || (event != NULL
            && (llmc_str_addz(&rp->out, "event: ") != 0
                || llmc_str_addz(&rp->out, event) != 0
                || llmc_str_addz(&rp->out, "\n") != 0))
        || llmc_str_addz(&rp->out, "data: ") != 0
        || llmc_json_dump(&rp->out, obj) != 0
        || llmc_str_addz(&rp->out, "\n\n") != 0)
    {
        rp->failed = 1;
    }
    json_decref(obj);
}

/* the length in bytes of the next piece of at most rp->chunk code points */
static size_t
llmc_replay_piece(const llmc_replay_t *rp, const char *p, size_t len)
{
    size_t  i = 0, n = 0;

    while (i < len) {
        if (((unsigned char) p[i] & 0xc0) != 0x80) {
            if (n == rp->chunk) {
                break;
            }
            n++;
        }
        i++;
    }
    return i;
}

/*
 * The pieces of a text are many events that differ only in one string: the
 * event is dumped once with a marker in that string's place and split
 * around it, so each piece costs an escape and a few copies instead of
 * building and dumping a JSON object.
 */
#define LLMC_MARK  "@@llmc-piece@@"

typedef struct {
    llmc_str_t   pre;           /* "event: ...\ndata: {...": up to the piece */
    llmc_str_t   post;          /* after the piece, "\n\n" included */
    int          seq;           /* append ,"sequence_number":N */
} llmc_tpl_t;

/* takes the reference to obj; the marker must be the last string value of
 * obj that can equal it (the stored values come before it) */
static int
llmc_tpl_init(llmc_replay_t *rp, llmc_tpl_t *t, const char *event,
    json_t *obj, int seq)
{
    char        *m, *q;
    size_t       start;
    const char   mark[] = "\"" LLMC_MARK "\"";

    memset(t, 0, sizeof(llmc_tpl_t));
    t->seq = seq;
    if (obj == NULL
        || (event != NULL
            && (llmc_str_addz(&t->pre, "event: ") != 0
                || llmc_str_addz(&t->pre, event) != 0
                || llmc_str_addz(&t->pre, "\n") != 0))
        || llmc_str_addz(&t->pre, "data: ") != 0)
    {
        goto failed;
    }
    start = t->pre.len;
    if (llmc_json_dump(&t->pre, obj) != 0) {
        goto failed;
    }
    m = NULL;
    for (q = t->pre.p + start; (q = strstr(q, mark)) != NULL; q++) {
        m = q;
    }
    if (m == NULL || llmc_str_addz(&t->post, m + sizeof(mark) - 1) != 0) {
        goto failed;
    }
    t->pre.len = m - t->pre.p;
    t->pre.p[t->pre.len] = '\0';
    if (seq) {
        /* the object ends in '}': the sequence number goes before it */
        t->post.len--;
    }
    if (llmc_str_addz(&t->post, "\n\n") != 0) {
        goto failed;
    }
    json_decref(obj);
    return 0;

failed:
    json_decref(obj);
    free(t->pre.p);
    free(t->post.p);
    memset(t, 0, sizeof(llmc_tpl_t));
    rp->failed = 1;
    return -1;
}

static void
llmc_tpl_free(llmc_tpl_t *t)
{
    free(t->pre.p);
    free(t->post.p);
}

/* one event per piece of the string (p, len) */
static void
llmc_tpl_pieces(llmc_replay_t *rp, llmc_tpl_t *t, const char *p, size_t len)
{
    char    num[32];
    size_t  n;

    while (len > 0 && !rp->failed) {
        n = llmc_replay_piece(rp, p, len);
        if (llmc_str_add(&rp->out, t->pre.p, t->pre.len) != 0
            || llmc_json_escape(&rp->out, p, n) != 0)
        {
            rp->failed = 1;
            return;
        }
        if (t->seq) {
            snprintf(num, sizeof(num), ",\"sequence_number\":%lld}",
                     (long long) rp->seq++);
            if (llmc_str_addz(&rp->out, num) != 0) {
                rp->failed = 1;
                return;
            }
        }
        if (llmc_str_add(&rp->out, t->post.p, t->post.len) != 0) {
            rp->failed = 1;
            return;
        }
        p += n;
        len -= n;
    }
}

static json_t *
llmc_chat_chunk(json_t *src, int include_usage)
{
    static const char  *keys[] = { "id", "object", "created", "model",
                                   "service_tier", "system_fingerprint" };
    json_t             *c;
    size_t              i;
    int                 bad = 0;

    c = json_object();
    if (c == NULL) {
        return NULL;
    }
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (i == 1) {
            llmc_put_new(c, "object",
                json_string(strcmp(json_string_value(
                    json_object_get(src, "object")), "chat.completion") == 0
                    ? "chat.completion.chunk" : "text_completion"), &bad);
            continue;
        }
        bad |= llmc_set_copy(c, keys[i], json_object_get(src, keys[i]));
    }
    if (include_usage) {
        llmc_put_new(c, "usage", json_null(), &bad);
    }
    if (bad) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* one chunk carrying one choice */
static void
llmc_chat_emit(llmc_replay_t *rp, json_t *src, int include_usage,
    json_t *choice)
{
    json_t  *c;

    c = llmc_chat_chunk(src, include_usage);
    if (c == NULL || choice == NULL) {
        json_decref(c);
        json_decref(choice);
        rp->failed = 1;
        return;
    }
    llmc_put_new(c, "choices", llmc_packed(json_pack("[O]", choice), choice),
                 &rp->failed);
    llmc_replay_emit(rp, NULL, c);
}

static json_t *
llmc_chat_delta_choice(json_int_t index, json_t *delta)
{
    return llmc_packed(json_pack("{s:I,s:O,s:n,s:n}", "index", index,
                                 "delta", delta, "logprobs", "finish_reason"),
                       delta);
}

/* a string in pieces: delta holds the marker where each piece goes */
static void
llmc_chat_pieces(llmc_replay_t *rp, json_t *src, int include_usage,
    json_t *choice, json_t *str)
{
    llmc_tpl_t   t;
    json_t      *c;

    c = llmc_chat_chunk(src, include_usage);
    if (c == NULL
        || json_object_set_new(c, "choices",
                               json_pack("[O]", choice)) != 0)
    {
        json_decref(choice);
        json_decref(c);
        rp->failed = 1;
        return;
    }
    json_decref(choice);
    if (llmc_tpl_init(rp, &t, NULL, c, 0) != 0) {
        return;
    }
    llmc_tpl_pieces(rp, &t, json_string_value(str), json_string_length(str));
    llmc_tpl_free(&t);
}

/* the legacy function_call and the message fields no format names */
static void
llmc_replay_chat_other(llmc_replay_t *rp, json_t *src, int include_usage,
    json_int_t index, json_t *m)
{
    static const char  *known[] = { "role", "content", "refusal",
                                    "annotations", "tool_calls" };
    const char         *key;
    json_t             *v, *name, *args;
    size_t              i;

    json_object_foreach(m, key, v) {
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (strcmp(key, known[i]) == 0) {
                break;
            }
        }
        if (i < sizeof(known) / sizeof(known[0]) || json_is_null(v)) {
            continue;
        }

        if (strcmp(key, "function_call") == 0 && json_is_object(v)) {
            name = json_object_get(v, "name");
            args = json_object_get(v, "arguments");
            llmc_chat_emit(rp, src, include_usage,
                llmc_chat_delta_choice(index,
                    json_pack("{s:{s:O,s:s}}", "function_call", "name",
                              json_is_string(name) ? name : json_null(),
                              "arguments", "")));
            if (json_is_string(args)) {
                llmc_chat_pieces(rp, src, include_usage,
                    llmc_chat_delta_choice(index,
                        json_pack("{s:{s:s}}", "function_call",
                                  "arguments", LLMC_MARK)), args);
            }
            continue;
        }

        /* whole, in one delta: a client that does not know the field
         * (the openai SDK) keeps its last value, not the joined pieces */
        llmc_chat_emit(rp, src, include_usage,
            llmc_chat_delta_choice(index, json_pack("{s:O}", key, v)));
    }
}

static int
llmc_replay_chat(llmc_replay_t *rp, json_t *src, int include_usage,
    char *err, size_t errlen)
{
    json_t      *choices, *ch, *m, *v, *tcs, *tc, *fn, *args, *d, *last;
    json_int_t   index;
    json_t      *role, *content;
    size_t       i, k;

    choices = json_object_get(src, "choices");
    if (!json_is_array(choices)) {
        snprintf(err, errlen, "%s: no choices array", __func__);
        return -1;
    }
    json_array_foreach(choices, i, ch) {
        m = json_object_get(ch, "message");
        v = json_object_get(ch, "index");
        index = json_is_integer(v) ? json_integer_value(v) : (json_int_t) i;
        if (!json_is_object(m)) {
            snprintf(err, errlen, "%s: choice %zu without a message",
                     __func__, i);
            return -1;
        }

        /* the role chunk; content null stays null (a tool call) */
        v = json_object_get(m, "content");
        role = json_object_get(m, "role");
        content = json_is_string(v) ? json_string("") : json_null();
        d = llmc_packed(json_pack("{s:s%,s:O,s:n}", "role",
                                  json_is_string(role)
                                  ? json_string_value(role) : "assistant",
                                  json_is_string(role)
                                  ? json_string_length(role) : 9,
                                  "content", content, "refusal"),
                        content);
        llmc_chat_emit(rp, src, include_usage,
                       llmc_chat_delta_choice(index, d));
        if (json_is_string(v)) {
            llmc_chat_pieces(rp, src, include_usage,
                llmc_chat_delta_choice(index,
                    json_pack("{s:s}", "content", LLMC_MARK)), v);
        }

        v = json_object_get(m, "refusal");
        if (json_is_string(v)) {
            if (json_string_length(v) == 0) {
                llmc_chat_emit(rp, src, include_usage,
                    llmc_chat_delta_choice(index,
                        json_pack("{s:s}", "refusal", "")));
            }
            llmc_chat_pieces(rp, src, include_usage,
                llmc_chat_delta_choice(index,
                    json_pack("{s:s}", "refusal", LLMC_MARK)), v);
        }

        v = json_object_get(m, "annotations");
        if (json_is_array(v) && json_array_size(v) > 0) {
            llmc_chat_emit(rp, src, include_usage,
                llmc_chat_delta_choice(index,
                    json_pack("{s:O}", "annotations", v)));
        }

        llmc_replay_chat_other(rp, src, include_usage, index, m);

        tcs = json_object_get(m, "tool_calls");
        json_array_foreach(tcs, k, tc) {
            fn = json_object_get(tc, "function");
            args = json_object_get(fn, "arguments");
            if (!json_is_object(fn) || !json_is_string(args)) {
                snprintf(err, errlen, "%s: tool call %zu without function "
                         "arguments", __func__, k);
                return -1;
            }
            d = json_pack("{s:[{s:I,s:O,s:O,s:{s:O,s:s}}]}", "tool_calls",
                          "index", (json_int_t) k,
                          "id", json_object_get(tc, "id")
                                ? json_object_get(tc, "id") : json_null(),
                          "type", json_object_get(tc, "type")
                                  ? json_object_get(tc, "type")
                                  : json_null(),
                          "function", "name",
                          json_object_get(fn, "name")
                          ? json_object_get(fn, "name") : json_null(),
                          "arguments", "");
            llmc_chat_emit(rp, src, include_usage,
                           llmc_chat_delta_choice(index, d));
            d = json_pack("{s:[{s:I,s:{s:s}}]}", "tool_calls", "index",
                          (json_int_t) k, "function", "arguments",
                          LLMC_MARK);
            llmc_chat_pieces(rp, src, include_usage,
                             llmc_chat_delta_choice(index, d), args);
        }

        v = json_object_get(ch, "finish_reason");
        v = v ? json_incref(v) : json_string("stop");
        last = llmc_packed(json_pack("{s:I,s:{},s:O,s:O}", "index", index,
                                     "delta", "logprobs",
                                     json_object_get(ch, "logprobs")
                                     ? json_object_get(ch, "logprobs")
                                     : json_null(),
                                     "finish_reason", v), v);
        llmc_chat_emit(rp, src, include_usage, last);
    }
    return 0;
}

static int
llmc_replay_completions(llmc_replay_t *rp, json_t *src, int include_usage,
    char *err, size_t errlen)
{
    json_t      *choices, *ch, *v, *text, *fr;
    json_int_t   index;
    size_t       i;

    choices = json_object_get(src, "choices");
    if (!json_is_array(choices)) {
        snprintf(err, errlen, "%s: no choices array", __func__);
        return -1;
    }
    json_array_foreach(choices, i, ch) {
        v = json_object_get(ch, "index");
        index = json_is_integer(v) ? json_integer_value(v) : (json_int_t) i;
        text = json_object_get(ch, "text");
        if (!json_is_string(text)) {
            snprintf(err, errlen, "%s: choice %zu without text", __func__,
                     i);
            return -1;
        }
        llmc_chat_pieces(rp, src, include_usage,
                         json_pack("{s:s,s:I,s:n,s:n}", "text", LLMC_MARK,
                                   "index", index, "logprobs",
                                   "finish_reason"), text);
        fr = json_object_get(ch, "finish_reason");
        fr = fr ? json_incref(fr) : json_string("stop");
        llmc_chat_emit(rp, src, include_usage,
            llmc_packed(json_pack("{s:s,s:I,s:O,s:O}", "text", "", "index",
                                  index, "logprobs",
                                  json_object_get(ch, "logprobs")
                                  ? json_object_get(ch, "logprobs")
                                  : json_null(),
                                  "finish_reason", fr), fr));
    }
    return 0;
}

static void
llmc_resp_emit(llmc_replay_t *rp, const char *type, json_t *obj)
{
    json_t  *e;

    e = json_pack("{s:s,s:I}", "type", type, "sequence_number", rp->seq++);
    if (e == NULL || obj == NULL || json_object_update(e, obj) != 0) {
        rp->failed = 1;
    }
    json_decref(obj);
    llmc_replay_emit(rp, type, e);
}

/* the pieces of str as events of type, with loc's fields */
static void
llmc_resp_pieces(llmc_replay_t *rp, const char *type, json_t *loc,
    json_t *str, int with_logprobs)
{
    llmc_tpl_t   t;
    json_t      *e;

    e = json_pack("{s:s}", "type", type);
    if (e == NULL || json_object_update(e, loc) != 0) {
        json_decref(e);
        rp->failed = 1;
        return;
    }
    if (with_logprobs) {
        llmc_put_new(e, "logprobs", json_array(), &rp->failed);
    }
    llmc_put_new(e, "delta", json_string(LLMC_MARK), &rp->failed);
    if (llmc_tpl_init(rp, &t, type, e, 1) != 0) {
        return;
    }
    llmc_tpl_pieces(rp, &t, json_string_value(str), json_string_length(str));
    llmc_tpl_free(&t);
}

static void
llmc_resp_update(llmc_replay_t *rp, json_t *e, json_t *loc)
{
    if (e == NULL || json_object_update(e, loc) != 0) {
        rp->failed = 1;
    }
}

static void
llmc_replay_resp_message(llmc_replay_t *rp, json_t *item, json_int_t oi)
{
    json_t      *parts, *part, *loc, *v, *e, *empty;
    const char  *t;
    size_t       j;

    parts = json_object_get(item, "content");
    json_array_foreach(parts, j, part) {
        t = json_string_value(json_object_get(part, "type"));
        loc = json_pack("{s:O,s:I,s:I}", "item_id",
                        json_object_get(item, "id") ? json_object_get(item,
                        "id") : json_null(), "output_index", oi,
                        "content_index", (json_int_t) j);
        if (loc == NULL || t == NULL) {
            /* an untyped part is left to output_item.done */
            json_decref(loc);
            if (t != NULL) {
                rp->failed = 1;
            }
            continue;
        }
        empty = json_deep_copy(part);
        if (strcmp(t, "output_text") == 0) {
            llmc_put_new(empty, "text", json_string(""), &rp->failed);
        } else if (strcmp(t, "refusal") == 0) {
            llmc_put_new(empty, "refusal", json_string(""), &rp->failed);
        }
        e = llmc_packed(json_pack("{s:O}", "part", empty), empty);
        llmc_resp_update(rp, e, loc);
        llmc_resp_emit(rp, "response.content_part.added", e);

        if (strcmp(t, "output_text") == 0) {
            v = json_object_get(part, "text");
            llmc_resp_pieces(rp, "response.output_text.delta", loc, v, 1);
            e = json_pack("{s:O,s:[]}", "text", v, "logprobs");
            llmc_resp_update(rp, e, loc);
            llmc_resp_emit(rp, "response.output_text.done", e);
        } else if (strcmp(t, "refusal") == 0) {
            v = json_object_get(part, "refusal");
            llmc_resp_pieces(rp, "response.refusal.delta", loc, v, 0);
            e = json_pack("{s:O}", "refusal", v);
            llmc_resp_update(rp, e, loc);
            llmc_resp_emit(rp, "response.refusal.done", e);
        }

        e = json_pack("{s:O}", "part", part);
        llmc_resp_update(rp, e, loc);
        llmc_resp_emit(rp, "response.content_part.done", e);
        json_decref(loc);
    }
}

static int
llmc_replay_responses(llmc_replay_t *rp, json_t *src, char *err,
    size_t errlen)
{
    json_t      *output, *item, *r, *added, *loc, *v;
    const char  *t, *status;
    size_t       i;

    output = json_object_get(src, "output");
    status = json_string_value(json_object_get(src, "status"));
    if (!json_is_array(output) || status == NULL
        || (strcmp(status, "completed") != 0
            && strcmp(status, "incomplete") != 0))
    {
        snprintf(err, errlen, "%s: not a completed response with an output "
                 "array", __func__);
        return -1;
    }

    r = json_deep_copy(src);
    if (r == NULL) {
        return -1;
    }
    llmc_put_new(r, "status", json_string("in_progress"), &rp->failed);
    llmc_put_new(r, "output", json_array(), &rp->failed);
    llmc_put_new(r, "usage", json_null(), &rp->failed);
    if (json_object_get(r, "incomplete_details") != NULL) {
        llmc_put_new(r, "incomplete_details", json_null(), &rp->failed);
    }
    llmc_resp_emit(rp, "response.created", json_pack("{s:O}", "response",
                                                     r));
    llmc_resp_emit(rp, "response.in_progress",
                   llmc_packed(json_pack("{s:O}", "response", r), r));

    json_array_foreach(output, i, item) {
        t = json_string_value(json_object_get(item, "type"));
        if (!json_is_object(item) || t == NULL) {
            snprintf(err, errlen, "%s: output item %zu without a type",
                     __func__, i);
            return -1;
        }
        added = json_deep_copy(item);
        if (added == NULL) {
            return -1;
        }
        if (strcmp(t, "message") == 0) {
            llmc_put_new(added, "status", json_string("in_progress"),
                         &rp->failed);
            llmc_put_new(added, "content", json_array(), &rp->failed);
        } else if (strcmp(t, "function_call") == 0) {
            llmc_put_new(added, "status", json_string("in_progress"),
                         &rp->failed);
            llmc_put_new(added, "arguments", json_string(""), &rp->failed);
        }
        llmc_resp_emit(rp, "response.output_item.added",
                       llmc_packed(json_pack("{s:I,s:O}", "output_index",
                                             (json_int_t) i, "item", added),
                                   added));

        if (strcmp(t, "message") == 0) {
            llmc_replay_resp_message(rp, item, i);

        } else if (strcmp(t, "function_call") == 0) {
            v = json_object_get(item, "arguments");
            if (!json_is_string(v)) {
                snprintf(err, errlen, "%s: function call %zu without "
                         "arguments", __func__, i);
                return -1;
            }
            loc = json_pack("{s:O,s:I}", "item_id",
                            json_object_get(item, "id")
                            ? json_object_get(item, "id") : json_null(),
                            "output_index", (json_int_t) i);
            llmc_resp_pieces(rp, "response.function_call_arguments.delta",
                             loc, v, 0);
            llmc_put(loc, "arguments", v, &rp->failed);
            llmc_resp_emit(rp, "response.function_call_arguments.done",
                           loc);
        }

        llmc_resp_emit(rp, "response.output_item.done",
                       json_pack("{s:I,s:O}", "output_index", (json_int_t) i,
                                 "item", item));
    }

    llmc_resp_emit(rp, strcmp(status, "completed") == 0
                       ? "response.completed" : "response.incomplete",
                   json_pack("{s:O}", "response", src));
    return 0;
}

static void
llmc_ant_emit(llmc_replay_t *rp, const char *type, json_t *obj)
{
    json_t  *e;

    /* "type" first, as the provider writes it */
    e = json_pack("{s:s}", "type", type);
    if (e == NULL || obj == NULL || json_object_update(e, obj) != 0) {
        rp->failed = 1;
    }
    json_decref(obj);
    llmc_replay_emit(rp, type, e);
}

static void
llmc_ant_pieces(llmc_replay_t *rp, json_int_t index, const char *dtype,
    const char *field, const char *p, size_t len)
{
    llmc_tpl_t  t;

    if (llmc_tpl_init(rp, &t, "content_block_delta",
                      json_pack("{s:s,s:I,s:{s:s,s:s}}", "type",
                                "content_block_delta", "index", index,
                                "delta", "type", dtype, field, LLMC_MARK), 0)
        != 0)
    {
        return;
    }
    llmc_tpl_pieces(rp, &t, p, len);
    llmc_tpl_free(&t);
}

static int
llmc_replay_messages(llmc_replay_t *rp, json_t *src, char *err,
    size_t errlen)
{
    json_t      *content, *b, *start, *v, *m, *cits, *c, *delta, *usage;
    json_int_t   idx;
    const char  *t;
    char        *js;
    size_t       i, k;

    content = json_object_get(src, "content");
    if (!json_is_array(content)
        || !json_is_string(json_object_get(src, "stop_reason")))
    {
        snprintf(err, errlen, "%s: not a finished message with a content "
                 "array", __func__);
        return -1;
    }

    m = json_deep_copy(src);
    if (m == NULL) {
        return -1;
    }
    llmc_put_new(m, "content", json_array(), &rp->failed);
    llmc_put_new(m, "stop_reason", json_null(), &rp->failed);
    if (json_object_get(m, "stop_sequence") != NULL) {
        llmc_put_new(m, "stop_sequence", json_null(), &rp->failed);
    }
    llmc_ant_emit(rp, "message_start",
                  llmc_packed(json_pack("{s:O}", "message", m), m));

    json_array_foreach(content, i, b) {
        idx = (json_int_t) i;
        t = json_string_value(json_object_get(b, "type"));
        if (!json_is_object(b) || t == NULL) {
            snprintf(err, errlen, "%s: content block %zu without a type",
                     __func__, i);
            return -1;
        }
        start = json_deep_copy(b);
        if (start == NULL) {
            return -1;
        }
        if (strcmp(t, "text") == 0) {
            llmc_put_new(start, "text", json_string(""), &rp->failed);
            if (json_is_array(json_object_get(start, "citations"))) {
                llmc_put_new(start, "citations", json_array(), &rp->failed);
            }
        } else if (strcmp(t, "thinking") == 0) {
            llmc_put_new(start, "thinking", json_string(""), &rp->failed);
            llmc_put_new(start, "signature", json_string(""), &rp->failed);
        } else if (json_object_get(b, "input") != NULL) {
            llmc_put_new(start, "input", json_object(), &rp->failed);
        }
        llmc_ant_emit(rp, "content_block_start",
                      llmc_packed(json_pack("{s:I,s:O}", "index", idx,
                                            "content_block", start), start));
        if (i == 0) {
            llmc_ant_emit(rp, "ping", json_object());
        }

        if (strcmp(t, "text") == 0) {
            cits = json_object_get(b, "citations");
            json_array_foreach(cits, k, c) {
                llmc_ant_emit(rp, "content_block_delta",
                              json_pack("{s:I,s:{s:s,s:O}}", "index", idx,
                                        "delta", "type", "citations_delta",
                                        "citation", c));
            }
            v = json_object_get(b, "text");
            llmc_ant_pieces(rp, idx, "text_delta", "text",
                            json_string_value(v), json_string_length(v));

        } else if (strcmp(t, "thinking") == 0) {
            v = json_object_get(b, "thinking");
            llmc_ant_pieces(rp, idx, "thinking_delta", "thinking",
                            json_string_value(v), json_string_length(v));
            v = json_object_get(b, "signature");
            if (json_is_string(v) && json_string_length(v) > 0) {
                llmc_ant_emit(rp, "content_block_delta",
                              json_pack("{s:I,s:{s:s,s:O}}", "index", idx,
                                        "delta", "type", "signature_delta",
                                        "signature", v));
            }

        } else if (json_object_get(b, "input") != NULL) {
            js = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
            if (js == NULL) {
                snprintf(err, errlen, "%s: tool input of block %zu not "
                         "serializable", __func__, i);
                return -1;
            }
            llmc_ant_pieces(rp, idx, "input_json_delta", "partial_json", js,
                            strlen(js));
            free(js);
        }

        llmc_ant_emit(rp, "content_block_stop",
                      json_pack("{s:I}", "index", idx));
    }

    delta = json_pack("{s:O}", "stop_reason",
                      json_object_get(src, "stop_reason"));
    v = json_object_get(src, "stop_sequence");
    if (v != NULL) {
        llmc_put(delta, "stop_sequence", v, &rp->failed);
    }
    /* usage is cumulative in message_delta: the final counts again */
    usage = json_object_get(src, "usage");
    llmc_ant_emit(rp, "message_delta",
                  llmc_packed(usage ? json_pack("{s:O,s:O}", "delta", delta,
                                                "usage", usage)
                                    : json_pack("{s:O}", "delta", delta),
                              delta));
    llmc_ant_emit(rp, "message_stop", json_object());
    return 0;
}

/* --- replay from the stored text ----------------------------------------- */

/*
 * The usual chat answer (text content, perhaps a refusal or annotations, no
 * tool calls) and the usual Anthropic message (text blocks) are replayed
 * straight from their stored text: the stored JSON is scanned, checked as
 * jansson checks it (strict UTF-8, escapes, surrogate pairs, no duplicate
 * keys at any depth, nothing after the value), and its values are written
 * in the compact form jansson dumps.  Building the tree took most of a
 * replay: parsing a 600-byte answer with jansson costs more than the rest
 * of a cache HIT.  What this path leaves to the tree (it declines): tool
 * calls, function_call, thinking and other blocks, fields no format
 * names, reals, keys with escapes, integers of 19 digits or more, nesting
 * past 32, and anything that is not valid JSON (the tree then reports the
 * error).  The two paths write the same bytes: t/unit/test_stream.c and
 * fuzz/fuzz_replay.c hold them to it.
 */

#define LLMC_JSCAN_DEPTH  32
#define LLMC_JSCAN_KEYS   32

typedef struct {
    const char  *p;
    const char  *end;
    int          depth;
} llmc_jscan_t;

typedef struct {
    const char  *a;             /* a value's text, [a, b); a NULL: absent */
    const char  *b;
} llmc_span_t;

static void
jscan_ws(llmc_jscan_t *s)
{
    s->p = llmc_json_ws(s->p, s->end);
}

/* a string at s->p (the input is valid UTF-8): 1 with its inside in
 * [*a, *b) and *esc set when it has escapes, 0 when it is not a valid
 * JSON string */
static int
jscan_string(llmc_jscan_t *s, const char **a, const char **b, int *esc)
{
    const char  *p = s->p;
    unsigned     c;
    uint32_t     u;

    if (p >= s->end || *p != '"') {
        return 0;
    }
    *a = ++p;
    *esc = 0;
    while (p < s->end) {
        c = (unsigned char) *p;
        if (c == '"') {
            *b = p;
            s->p = p + 1;
            return 1;
        }
        if (c < 0x20) {
            return 0;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        *esc = 1;
        if (llmc_json_escape_read(&p, s->end, &u) != 0) {
            return 0;
        }
    }
    return 0;
}

/* the inside of a valid string with its escapes resolved: as JSON string
 * contents the way jansson escapes them (canon), or as the bytes */
static int
jscan_unescape(llmc_str_t *out, const char *p, const char *end, int canon)
{
    const char  *start = p;
    uint32_t     u;
    char         b[4];

    while (p < end) {
        if (*p != '\\') {
            p++;
            continue;
        }
        if (llmc_str_add(out, start, p - start) != 0) {
            return -1;
        }
        (void) llmc_json_escape_read(&p, end, &u);
        start = p;
        if (canon && (u < 0x20 || u == '"' || u == '\\')) {
            b[0] = (char) u;
            if (llmc_json_escape_in(out, b, 1) != 0) {
                return -1;
            }
        } else if (llmc_str_add(out, b, llmc_utf8_put(u, b)) != 0) {
            return -1;
        }
    }
    return llmc_str_add(out, start, p - start);
}

/* the index of the key [a, b) in names, n when it is not there */
static size_t
jscan_name(const char *const *names, size_t n, const char *a, const char *b)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (strlen(names[i]) == (size_t) (b - a)
            && memcmp(names[i], a, b - a) == 0)
        {
            break;
        }
    }
    return i;
}

/*
 * The JSON value at s->p, checked; written to out as jansson dumps it
 * (compact) unless out is NULL.  With names, the value must be an object
 * and spans[i] gets the text of its member names[i] ({NULL, NULL} when
 * absent); with only, a member not in names must be null.  1, 0 when
 * declined, -1 out of memory.
 */
static int
jscan_value(llmc_jscan_t *s, llmc_str_t *out, const char *const *names,
    size_t n, llmc_span_t *spans, int only)
{
    const char  *a, *b, *keys[LLMC_JSCAN_KEYS][2];
    char         close;
    size_t       nk, i, j, digits;
    int          esc, rc;

    if (names != NULL) {
        memset(spans, 0, n * sizeof(llmc_span_t));
        if (s->p >= s->end || *s->p != '{') {
            return 0;
        }
    }
    if (s->p >= s->end) {
        return 0;
    }

    switch (*s->p) {
    case '"':
        if (!jscan_string(s, &a, &b, &esc)) {
            return 0;
        }
        if (out == NULL) {
            return 1;
        }
        if (!esc) {
            return llmc_str_add(out, a - 1, b - a + 2) == 0 ? 1 : -1;
        }
        return llmc_str_add(out, "\"", 1) == 0
               && jscan_unescape(out, a, b, 1) == 0
               && llmc_str_add(out, "\"", 1) == 0 ? 1 : -1;

    case '{':
    case '[':
        close = *s->p == '{' ? '}' : ']';
        if (++s->depth > LLMC_JSCAN_DEPTH) {
            return 0;
        }
        if (out != NULL && llmc_str_add(out, s->p, 1) != 0) {
            return -1;
        }
        s->p++;
        jscan_ws(s);
        nk = 0;
        if (s->p < s->end && *s->p == close) {
            goto closed;
        }
        for ( ;; ) {
            j = n;
            if (close == '}') {
                /* a key: not seen before, no escapes (declined) */
                if (!jscan_string(s, &a, &b, &esc) || esc
                    || nk == LLMC_JSCAN_KEYS)
                {
                    return 0;
                }
                for (i = 0; i < nk; i++) {
                    if (keys[i][1] - keys[i][0] == b - a
                        && memcmp(keys[i][0], a, b - a) == 0)
                    {
                        return 0;
                    }
                }
                keys[nk][0] = a;
                keys[nk++][1] = b;
                jscan_ws(s);
                if (s->p >= s->end || *s->p != ':') {
                    return 0;
                }
                s->p++;
                jscan_ws(s);
                if (out != NULL
                    && (llmc_str_add(out, a - 1, b - a + 2) != 0
                        || llmc_str_add(out, ":", 1) != 0))
                {
                    return -1;
                }
                j = jscan_name(names, n, a, b);
                if (j < n) {
                    spans[j].a = s->p;
                } else if (only
                           && ((size_t) (s->end - s->p) < 4
                               || memcmp(s->p, "null", 4) != 0))
                {
                    return 0;
                }
            }
            rc = jscan_value(s, out, NULL, 0, NULL, 0);
            if (rc != 1) {
                return rc;
            }
            if (j < n) {
                spans[j].b = s->p;
            }
            jscan_ws(s);
            if (s->p >= s->end) {
                return 0;
            }
            if (*s->p == close) {
                break;
            }
            if (*s->p != ',') {
                return 0;
            }
            s->p++;
            jscan_ws(s);
            if (out != NULL && llmc_str_add(out, ",", 1) != 0) {
                return -1;
            }
        }
    closed:
        s->p++;
        s->depth--;
        return out == NULL || llmc_str_add(out, &close, 1) == 0 ? 1 : -1;

    case 't':
    case 'f':
    case 'n':
        a = *s->p == 't' ? "true" : *s->p == 'f' ? "false" : "null";
        i = strlen(a);
        if ((size_t) (s->end - s->p) < i || memcmp(s->p, a, i) != 0) {
            return 0;
        }
        s->p += i;
        return out == NULL || llmc_str_add(out, a, i) == 0 ? 1 : -1;

    default:
        /* an integer as jansson writes it: no "-0", no leading zero, at
         * most 18 digits (declined: reals, longer integers) */
        a = s->p;
        b = *a == '-' ? a + 1 : a;
        for (digits = 0; b < s->end && *b >= '0' && *b <= '9'; b++) {
            digits++;
        }
        if (digits == 0 || digits > 18
            || (b[-(long) digits] == '0' && (digits > 1 || *a == '-')))
        {
            return 0;
        }
        if (b < s->end && (*b == '.' || *b == 'e' || *b == 'E')) {
            return 0;
        }
        s->p = b;
        return out == NULL || llmc_str_add(out, a, b - a) == 0 ? 1 : -1;
    }
}

/* writes a checked value (a span of jscan_value()) as jansson dumps it */
static int
jscan_put(llmc_str_t *out, const llmc_span_t *v)
{
    llmc_jscan_t  s = { v->a, v->b, 0 };

    return jscan_value(&s, out, NULL, 0, NULL, 0) == 1 ? 0 : -1;
}

static int
jscan_is(const llmc_span_t *v, char c)
{
    return v->a != NULL && *v->a == c;
}

/* the value is exactly this JSON text */
static int
jscan_eq(const llmc_span_t *v, const char *text)
{
    size_t  n = strlen(text);

    return v->a != NULL && (size_t) (v->b - v->a) == n
           && memcmp(v->a, text, n) == 0;
}

/* a stored answer: 1 when it is one JSON object (valid UTF-8, nothing
 * after it) the text path takes, with spans[i] its member names[i] */
static int
jscan_top(const char *json, size_t len, const char *const *names, size_t n,
    llmc_span_t *spans)
{
    llmc_jscan_t  s = { json, json + len, 0 };

    if (llmc_utf8_check((const unsigned char *) json, len) != len) {
        return 0;
    }
    jscan_ws(&s);
    if (jscan_value(&s, NULL, names, n, spans, 0) != 1) {
        return 0;
    }
    jscan_ws(&s);
    return s.p == s.end;
}

/* an array with nothing in it */
static int
jscan_empty(const llmc_span_t *v)
{
    llmc_jscan_t  s = { v->a + 1, v->b, 0 };

    jscan_ws(&s);
    return *v->a == '[' && s.p < s.end && *s.p == ']';
}

/* the next element of a checked array, or member of a checked object
 * (s->p inside it, after its bracket or the element before): 1 with the
 * element in v and, for an object, the inside of its key's quotes in k;
 * 0 at the end */
static int
jscan_next(llmc_jscan_t *s, llmc_span_t *k, llmc_span_t *v)
{
    int  esc;

    jscan_ws(s);
    if (*s->p == ',') {
        s->p++;
        jscan_ws(s);
    }
    if (*s->p == ']' || *s->p == '}') {
        return 0;
    }
    if (k != NULL) {
        (void) jscan_string(s, &k->a, &k->b, &esc);
        jscan_ws(s);
        s->p++;                 /* ':' */
        jscan_ws(s);
    }
    v->a = s->p;
    (void) jscan_value(s, NULL, NULL, 0, NULL, 0);
    v->b = s->p;
    return 1;
}

/* the checked object v as jansson dumps it, with the JSON text vals[i]
 * for the value of its member keys[i] (when it has one) */
static int
jscan_put_with(llmc_str_t *out, const llmc_span_t *v,
    const char *const *keys, const char *const *vals, size_t n)
{
    llmc_jscan_t  s = { v->a + 1, v->b, 0 };
    llmc_span_t   k, m;
    size_t        i;

    if (llmc_str_add(out, "{", 1) != 0) {
        return -1;
    }
    for (i = 0; jscan_next(&s, &k, &m); i++) {
        if ((i > 0 && llmc_str_add(out, ",", 1) != 0)
            || llmc_str_add(out, k.a - 1, k.b - k.a + 2) != 0
            || llmc_str_add(out, ":", 1) != 0)
        {
            return -1;
        }
        if (jscan_name(keys, n, k.a, k.b) < n
            ? llmc_str_addz(out, vals[jscan_name(keys, n, k.a, k.b)]) != 0
            : jscan_put(out, &m) != 0)
        {
            return -1;
        }
    }
    return llmc_str_add(out, "}", 1);
}

/* the members of a chat answer, a choice and its message */
enum { CT_ID, CT_OBJECT, CT_CREATED, CT_MODEL, CT_TIER, CT_FP, CT_CHOICES,
       CT_USAGE, CT_N };
enum { CC_INDEX, CC_MESSAGE, CC_LOGPROBS, CC_FINISH, CC_N };
enum { CM_ROLE, CM_CONTENT, CM_REFUSAL, CM_ANNOTATIONS, CM_TOOLS, CM_N };

/* an event of one choice: head, {"index":N, mid, the value v as jansson
 * writes it, end */
static int
llmc_text_event(llmc_replay_t *rp, const llmc_str_t *head, const char *index,
    const char *mid, const llmc_span_t *v, const char *end)
{
    if (llmc_str_add(&rp->out, head->p, head->len) != 0
        || llmc_str_addz(&rp->out, "{\"index\":") != 0
        || llmc_str_addz(&rp->out, index) != 0
        || llmc_str_addz(&rp->out, mid) != 0
        || (v != NULL && jscan_put(&rp->out, v) != 0)
        || llmc_str_addz(&rp->out, end) != 0)
    {
        return -1;
    }
    return 0;
}

#define LLMC_TEXT_TAIL  ",\"logprobs\":null,\"finish_reason\":null}]}\n\n"

/* one event per piece of the checked string v, through template t */
static int
llmc_text_pieces_tpl(llmc_replay_t *rp, llmc_tpl_t *t, const llmc_span_t *v,
    llmc_str_t *tmp)
{
    llmc_jscan_t  s = { v->a, v->b, 0 };
    const char   *a, *b;
    int           esc;

    (void) jscan_string(&s, &a, &b, &esc);
    if (esc) {
        tmp->len = 0;
        if (jscan_unescape(tmp, a, b, 0) != 0) {
            return -1;
        }
        a = tmp->p;
        b = tmp->p + tmp->len;
    }
    llmc_tpl_pieces(rp, t, a, b - a);
    return rp->failed ? -1 : 0;
}

/* one chat event per piece of the string member v, named key */
static int
llmc_text_pieces(llmc_replay_t *rp, const llmc_str_t *head,
    const char *index, const char *key, const llmc_span_t *v,
    llmc_str_t *tmp)
{
    llmc_tpl_t  t;
    int         rc;

    memset(&t, 0, sizeof(llmc_tpl_t));
    rc = -1;
    if (llmc_str_add(&t.pre, head->p, head->len) == 0
        && llmc_str_addz(&t.pre, "{\"index\":") == 0
        && llmc_str_addz(&t.pre, index) == 0
        && llmc_str_addz(&t.pre, ",\"delta\":{\"") == 0
        && llmc_str_addz(&t.pre, key) == 0
        && llmc_str_addz(&t.pre, "\":") == 0
        && llmc_str_addz(&t.post, "}" LLMC_TEXT_TAIL) == 0)
    {
        rc = llmc_text_pieces_tpl(rp, &t, v, tmp);
    }
    llmc_tpl_free(&t);
    return rc;
}

/* 1: replayed into rp->out; 0: declined; -1: out of memory */
static int
llmc_replay_chat_text(llmc_replay_t *rp, const char *json, size_t len,
    int include_usage)
{
    static const char *const  top[] = { "id", "object", "created", "model",
                                        "service_tier", "system_fingerprint",
                                        "choices", "usage" };
    static const char *const  choice[] = { "index", "message", "logprobs",
                                           "finish_reason" };
    static const char *const  message[] = { "role", "content", "refusal",
                                            "annotations", "tool_calls" };
    static const char         asst[] = "\"assistant\"", st[] = "\"stop\"",
                              nu[] = "null";
    static const llmc_span_t  assistant = { asst, asst + sizeof(asst) - 1 },
                              stop = { st, st + sizeof(st) - 1 },
                              null = { nu, nu + sizeof(nu) - 1 };
    llmc_jscan_t              c, m;
    llmc_span_t               tv[CT_N], cv[CC_N], mv[CM_N], el;
    llmc_str_t                head, tmp;
    size_t                    i, head0;
    char                      index[24];
    int                       rc, text, refusal;

    if (!jscan_top(json, len, top, CT_N, tv)
        || !jscan_eq(&tv[CT_OBJECT], "\"chat.completion\"")
        || !jscan_is(&tv[CT_CHOICES], '['))
    {
        return 0;
    }

    /* "data: {" and the members every chunk repeats, up to its choices */
    memset(&head, 0, sizeof(head));
    memset(&tmp, 0, sizeof(tmp));
    rc = -1;
    if (llmc_str_addz(&head, "data: {") != 0) {
        goto done;
    }
    for (i = CT_ID; i <= CT_FP; i++) {
        if (i != CT_OBJECT && tv[i].a == NULL) {
            continue;
        }
        if ((head.len > sizeof("data: {") - 1
             && llmc_str_add(&head, ",", 1) != 0)
            || llmc_str_add(&head, "\"", 1) != 0
            || llmc_str_addz(&head, top[i]) != 0
            || llmc_str_add(&head, "\":", 2) != 0
            || (i == CT_OBJECT
                ? llmc_str_addz(&head, "\"chat.completion.chunk\"")
                : jscan_put(&head, &tv[i])) != 0)
        {
            goto done;
        }
    }
    head0 = head.len;
    if ((include_usage && llmc_str_addz(&head, ",\"usage\":null") != 0)
        || llmc_str_addz(&head, ",\"choices\":[") != 0)
    {
        goto done;
    }

    c.p = tv[CT_CHOICES].a + 1;
    c.end = tv[CT_CHOICES].b;
    c.depth = 0;
    for (i = 0; jscan_next(&c, NULL, &el); i++) {
        m.p = el.a;
        m.end = el.b;
        m.depth = 0;
        (void) jscan_value(&m, NULL, choice, CC_N, cv, 0);
        m.p = cv[CC_MESSAGE].a;
        m.end = cv[CC_MESSAGE].b;
        m.depth = 0;
        if (cv[CC_MESSAGE].a == NULL
            || jscan_value(&m, NULL, message, CM_N, mv, 1) != 1)
        {
            rc = 0;             /* the tree says why, or replays it */
            goto done;
        }
        if (jscan_is(&mv[CM_TOOLS], '[') && !jscan_empty(&mv[CM_TOOLS])) {
            rc = 0;
            goto done;
        }
        if (cv[CC_INDEX].a != NULL
            && (*cv[CC_INDEX].a == '-'
                || (*cv[CC_INDEX].a >= '0' && *cv[CC_INDEX].a <= '9')))
        {
            snprintf(index, sizeof(index), "%.*s",
                     (int) (cv[CC_INDEX].b - cv[CC_INDEX].a), cv[CC_INDEX].a);
        } else {
            snprintf(index, sizeof(index), "%zu", i);
        }

        /* the events llmc_replay_chat() writes */
        text = jscan_is(&mv[CM_CONTENT], '"');
        refusal = jscan_is(&mv[CM_REFUSAL], '"');
        if (llmc_text_event(rp, &head, index, ",\"delta\":{\"role\":",
                            jscan_is(&mv[CM_ROLE], '"') ? &mv[CM_ROLE]
                                                        : &assistant,
                            text ? ",\"content\":\"\",\"refusal\":null}"
                                   LLMC_TEXT_TAIL
                                 : ",\"content\":null,\"refusal\":null}"
                                   LLMC_TEXT_TAIL) != 0
            || (text && llmc_text_pieces(rp, &head, index, "content",
                                         &mv[CM_CONTENT], &tmp) != 0)
            || (refusal && mv[CM_REFUSAL].b - mv[CM_REFUSAL].a == 2
                && llmc_text_event(rp, &head, index, ",\"delta\":{"
                                   "\"refusal\":", &mv[CM_REFUSAL],
                                   "}" LLMC_TEXT_TAIL) != 0)
            || (refusal && llmc_text_pieces(rp, &head, index, "refusal",
                                            &mv[CM_REFUSAL], &tmp) != 0)
            || (jscan_is(&mv[CM_ANNOTATIONS], '[')
                && !jscan_empty(&mv[CM_ANNOTATIONS])
                && llmc_text_event(rp, &head, index, ",\"delta\":{"
                                   "\"annotations\":", &mv[CM_ANNOTATIONS],
                                   "}" LLMC_TEXT_TAIL) != 0)
            || llmc_text_event(rp, &head, index,
                               ",\"delta\":{},\"logprobs\":",
                               cv[CC_LOGPROBS].a ? &cv[CC_LOGPROBS] : &null,
                               ",\"finish_reason\":") != 0
            || jscan_put(&rp->out, cv[CC_FINISH].a ? &cv[CC_FINISH] : &stop)
               != 0
            || llmc_str_addz(&rp->out, "}]}\n\n") != 0)
        {
            goto done;
        }
    }

    if (include_usage && jscan_is(&tv[CT_USAGE], '{')
        && (llmc_str_add(&rp->out, head.p, head0) != 0
            || llmc_str_addz(&rp->out, ",\"choices\":[],\"usage\":") != 0
            || jscan_put(&rp->out, &tv[CT_USAGE]) != 0
            || llmc_str_addz(&rp->out, "}\n\n") != 0))
    {
        goto done;
    }
    rc = llmc_str_addz(&rp->out, "data: [DONE]\n\n") == 0 ? 1 : -1;

done:
    free(head.p);
    free(tmp.p);
    return rc;
}

/* an Anthropic event's start: "event: type", "data: {"type":"type"" and,
 * unless index is NULL, ","index":index" */
static int
llmc_text_ant(llmc_str_t *out, const char *type, const char *index)
{
    return llmc_str_addz(out, "event: ") == 0
           && llmc_str_addz(out, type) == 0
           && llmc_str_addz(out, "\ndata: {\"type\":\"") == 0
           && llmc_str_addz(out, type) == 0
           && llmc_str_add(out, "\"", 1) == 0
           && (index == NULL
               || (llmc_str_addz(out, ",\"index\":") == 0
                   && llmc_str_addz(out, index) == 0)) ? 0 : -1;
}

/* the usual Anthropic message (text blocks only): 1 replayed into
 * rp->out, 0 declined, -1 out of memory */
static int
llmc_replay_messages_text(llmc_replay_t *rp, const char *json, size_t len)
{
    static const char *const  top[] = { "type", "content", "stop_reason",
                                        "stop_sequence", "usage" };
    static const char *const  block[] = { "type", "text", "citations" };
    static const char *const  start[] = { "content", "stop_reason",
                                          "stop_sequence" };
    static const char *const  start_vals[] = { "[]", "null", "null" };
    static const char *const  empty[] = { "text", "citations" };
    static const char *const  empty_vals[] = { "\"\"", "[]" };
    enum { MT_TYPE, MT_CONTENT, MT_STOP, MT_SEQ, MT_USAGE, MT_N };
    enum { MB_TYPE, MB_TEXT, MB_CITATIONS, MB_N };
    llmc_jscan_t  b, c;
    llmc_span_t   tv[MT_N], bv[MB_N], el, cit, whole;
    llmc_str_t    tmp;
    llmc_tpl_t    t;
    char          index[24];
    size_t        i;
    int           rc, bad;

    if (!jscan_top(json, len, top, MT_N, tv)
        || !jscan_eq(&tv[MT_TYPE], "\"message\"")
        || !jscan_is(&tv[MT_CONTENT], '[') || !jscan_is(&tv[MT_STOP], '"'))
    {
        return 0;
    }

    /* only text blocks: anything else is left to the tree */
    b.p = tv[MT_CONTENT].a + 1;
    b.end = tv[MT_CONTENT].b;
    b.depth = 0;
    while (jscan_next(&b, NULL, &el)) {
        c.p = el.a;
        c.end = el.b;
        c.depth = 0;
        if (jscan_value(&c, NULL, block, MB_N, bv, 0) != 1
            || !jscan_eq(&bv[MB_TYPE], "\"text\"")
            || !jscan_is(&bv[MB_TEXT], '"'))
        {
            return 0;
        }
    }

    /* the events llmc_replay_messages() writes */
    whole.a = llmc_json_ws(json, json + len);
    whole.b = json + len;
    if (llmc_text_ant(&rp->out, "message_start", NULL) != 0
        || llmc_str_addz(&rp->out, ",\"message\":") != 0
        || jscan_put_with(&rp->out, &whole, start, start_vals, 3) != 0
        || llmc_str_addz(&rp->out, "}\n\n") != 0)
    {
        return -1;
    }

    memset(&tmp, 0, sizeof(tmp));
    rc = -1;
    b.p = tv[MT_CONTENT].a + 1;
    b.depth = 0;
    for (i = 0; jscan_next(&b, NULL, &el); i++) {
        c.p = el.a;
        c.end = el.b;
        c.depth = 0;
        (void) jscan_value(&c, NULL, block, MB_N, bv, 0);
        snprintf(index, sizeof(index), "%zu", i);
        if (llmc_text_ant(&rp->out, "content_block_start", index) != 0
            || llmc_str_addz(&rp->out, ",\"content_block\":") != 0
            || jscan_put_with(&rp->out, &el, empty, empty_vals,
                              jscan_is(&bv[MB_CITATIONS], '[') ? 2 : 1) != 0
            || llmc_str_addz(&rp->out, "}\n\n") != 0
            || (i == 0 && (llmc_text_ant(&rp->out, "ping", NULL) != 0
                           || llmc_str_addz(&rp->out, "}\n\n") != 0)))
        {
            goto done;
        }
        if (jscan_is(&bv[MB_CITATIONS], '[')) {
            c.p = bv[MB_CITATIONS].a + 1;
            c.end = bv[MB_CITATIONS].b;
            c.depth = 0;
            while (jscan_next(&c, NULL, &cit)) {
                if (llmc_text_ant(&rp->out, "content_block_delta", index)
                    != 0
                    || llmc_str_addz(&rp->out, ",\"delta\":{\"type\":"
                                     "\"citations_delta\",\"citation\":")
                       != 0
                    || jscan_put(&rp->out, &cit) != 0
                    || llmc_str_addz(&rp->out, "}}\n\n") != 0)
                {
                    goto done;
                }
            }
        }

        /* the text in pieces, then the block's end */
        memset(&t, 0, sizeof(llmc_tpl_t));
        bad = llmc_text_ant(&t.pre, "content_block_delta", index) != 0
              || llmc_str_addz(&t.pre, ",\"delta\":{\"type\":"
                               "\"text_delta\",\"text\":") != 0
              || llmc_str_addz(&t.post, "}}\n\n") != 0
              || llmc_text_pieces_tpl(rp, &t, &bv[MB_TEXT], &tmp) != 0;
        llmc_tpl_free(&t);
        if (bad
            || llmc_text_ant(&rp->out, "content_block_stop", index) != 0
            || llmc_str_addz(&rp->out, "}\n\n") != 0)
        {
            goto done;
        }
    }

    if (llmc_text_ant(&rp->out, "message_delta", NULL) != 0
        || llmc_str_addz(&rp->out, ",\"delta\":{\"stop_reason\":") != 0
        || jscan_put(&rp->out, &tv[MT_STOP]) != 0
        || (tv[MT_SEQ].a != NULL
            && (llmc_str_addz(&rp->out, ",\"stop_sequence\":") != 0
                || jscan_put(&rp->out, &tv[MT_SEQ]) != 0))
        || llmc_str_add(&rp->out, "}", 1) != 0
        || (tv[MT_USAGE].a != NULL
            && (llmc_str_addz(&rp->out, ",\"usage\":") != 0
                || jscan_put(&rp->out, &tv[MT_USAGE]) != 0))
        || llmc_str_addz(&rp->out, "}\n\n") != 0
        || llmc_text_ant(&rp->out, "message_stop", NULL) != 0
        || llmc_str_addz(&rp->out, "}\n\n") != 0)
    {
        goto done;
    }
    rc = 1;

done:
    free(tmp.p);
    return rc;
}

char *
llmc_stream_replay(llmc_api_e api, const char *json, size_t len,
    int include_usage, size_t chunk_chars, size_t *out_len, char *err,
    size_t errlen)
{
    return llmc_stream_replay_by(LLMC_REPLAY_ANY, api, json, len,
                                 include_usage, chunk_chars, out_len, err,
                                 errlen);
}

char *
llmc_stream_replay_by(int path, llmc_api_e api, const char *json,
    size_t len, int include_usage, size_t chunk_chars, size_t *out_len,
    char *err, size_t errlen)
{
    llmc_replay_t   rp;
    json_t         *src, *usage, *c, *obj;
    json_error_t    jerr;
    const char     *want;
    int             rc;

    if (errlen > 0) {
        err[0] = '\0';
    }
    memset(&rp, 0, sizeof(rp));
    rp.chunk = chunk_chars ? chunk_chars : LLMC_STREAM_CHUNK_CHARS;

    if ((api == LLMC_API_CHAT || api == LLMC_API_MESSAGES)
        && path != LLMC_REPLAY_TREE)
    {
        rc = api == LLMC_API_CHAT
             ? llmc_replay_chat_text(&rp, json, len, include_usage)
             : llmc_replay_messages_text(&rp, json, len);
        if (rc == 1) {
            if (out_len != NULL) {
                *out_len = rp.out.len;
            }
            return rp.out.p;
        }
        free(rp.out.p);
        memset(&rp, 0, sizeof(rp));
        rp.chunk = chunk_chars ? chunk_chars : LLMC_STREAM_CHUNK_CHARS;
        if (rc < 0) {
            snprintf(err, errlen, "%s: out of memory", __func__);
            return NULL;
        }
    }
    if (path == LLMC_REPLAY_TEXT) {
        snprintf(err, errlen, "declined");
        return NULL;
    }

    src = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                     &jerr);
    if (src == NULL) {
        snprintf(err, errlen, "%s: not JSON at %d: %s", __func__,
                 jerr.position, llmc_json_errmsg(&jerr));
        return NULL;
    }
    if (!json_is_object(src)) {
        json_decref(src);
        snprintf(err, errlen, "%s: not a JSON object", __func__);
        return NULL;
    }

    switch (api) {
    case LLMC_API_CHAT:        want = "chat.completion"; break;
    case LLMC_API_COMPLETIONS: want = "text_completion"; break;
    case LLMC_API_RESPONSES:   want = "response"; break;
    case LLMC_API_MESSAGES:    want = "message"; break;
    default:
        json_decref(src);
        snprintf(err, errlen, "%s: unknown api", __func__);
        return NULL;
    }
    obj = json_object_get(src, api == LLMC_API_MESSAGES ? "type" : "object");
    if (!json_is_string(obj) || strcmp(json_string_value(obj), want) != 0) {
        json_decref(src);
        snprintf(err, errlen, "%s: not a \"%s\" object", __func__, want);
        return NULL;
    }

    switch (api) {
    case LLMC_API_CHAT:
        rc = llmc_replay_chat(&rp, src, include_usage, err, errlen);
        break;
    case LLMC_API_COMPLETIONS:
        rc = llmc_replay_completions(&rp, src, include_usage, err, errlen);
        break;
    case LLMC_API_RESPONSES:
        rc = llmc_replay_responses(&rp, src, err, errlen);
        break;
    default:
        rc = llmc_replay_messages(&rp, src, err, errlen);
        break;
    }

    if (rc == 0 && (api == LLMC_API_CHAT || api == LLMC_API_COMPLETIONS)) {
        usage = json_object_get(src, "usage");
        if (include_usage && json_is_object(usage)) {
            c = llmc_chat_chunk(src, 0);
            llmc_put_new(c, "choices", json_array(), &rp.failed);
            llmc_put(c, "usage", usage, &rp.failed);
            llmc_replay_emit(&rp, NULL, c);
        }
        if (llmc_str_addz(&rp.out, "data: [DONE]\n\n") != 0) {
            rp.failed = 1;
        }
    }
    json_decref(src);

    if (rc != 0 || rp.failed) {
        if (rc == 0 || err[0] == '\0') {
            snprintf(err, errlen, "%s: out of memory or a malformed value",
                     __func__);
        }
        free(rp.out.p);
        return NULL;
    }
    if (out_len != NULL) {
        *out_len = rp.out.len;
    }
    return rp.out.p;
}

int
llmc_stream_wants_usage(const char *body, size_t len)
{
    json_t  *root;
    int      yes;

    root = json_loadb(body, len, 0, NULL);
    yes = json_is_true(json_object_get(json_object_get(root,
                                                       "stream_options"),
                                       "include_usage"));
    json_decref(root);
    return yes;
}

/* --- usage --------------------------------------------------------------- */

static int64_t
llmc_int(json_t *obj, const char *key)
{
    json_t  *v = json_object_get(obj, key);

    return json_is_integer(v) ? (int64_t) json_integer_value(v) : 0;
}

int
llmc_usage_parse(llmc_api_e api, const char *json, size_t len,
    llmc_usage_t *u)
{
    json_t        *root, *usage, *cc;
    json_error_t   jerr;
    int64_t        total, w;

    memset(u, 0, sizeof(llmc_usage_t));
    root = json_loadb(json, len, JSON_ALLOW_NUL, &jerr);
    usage = json_object_get(root, "usage");
    if (!json_is_object(usage)) {
        json_decref(root);
        return -1;
    }

    switch (api) {
    case LLMC_API_CHAT:
    case LLMC_API_COMPLETIONS:
        total = llmc_int(usage, "prompt_tokens");
        u->cached = llmc_int(json_object_get(usage, "prompt_tokens_details"),
                             "cached_tokens");
        u->input = total - u->cached;
        u->output = llmc_int(usage, "completion_tokens");
        break;

    case LLMC_API_RESPONSES:
        total = llmc_int(usage, "input_tokens");
        u->cached = llmc_int(json_object_get(usage, "input_tokens_details"),
                             "cached_tokens");
        u->input = total - u->cached;
        u->output = llmc_int(usage, "output_tokens");
        break;

    case LLMC_API_MESSAGES:
        u->input = llmc_int(usage, "input_tokens");
        u->cached = llmc_int(usage, "cache_read_input_tokens");
        w = llmc_int(usage, "cache_creation_input_tokens");
        cc = json_object_get(usage, "cache_creation");
        if (json_is_object(cc)) {
            u->cache_write_5m = llmc_int(cc, "ephemeral_5m_input_tokens");
            u->cache_write_1h = llmc_int(cc, "ephemeral_1h_input_tokens");
        }
        /* a total with no split (older API versions) counts as 5m */
        if (u->cache_write_5m + u->cache_write_1h == 0) {
            u->cache_write_5m = w;
        }
        u->output = llmc_int(usage, "output_tokens");
        break;

    default:
        json_decref(root);
        return -1;
    }

    json_decref(root);
    if (u->input < 0) {
        u->input = 0;
    }
    return 0;
}
