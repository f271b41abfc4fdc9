/*
 * Streamed responses: assembly of an upstream SSE stream into the
 * non-streamed JSON shape, token usage (the replay of such a JSON response
 * as SSE is in llmc_replay.c).  What each format assembles and replays:
 * docs/streaming.md.
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
#include "llmc_sse.h"
#include "llmc_stream.h"
#include "llmc_stream_int.h"

#define LLMC_STREAM_MAX_CHOICES  128
#define LLMC_STREAM_MAX_TOOLS    128
#define LLMC_STREAM_MAX_BLOCKS   4096
#define LLMC_STREAM_MAX_EXTRA    8
#define LLMC_STREAM_MAX_EVENT    (16 * 1024 * 1024)

typedef struct {
    int          seen;
    json_t      *id;
    json_t      *type;
    llmc_buf_t   name;
    llmc_buf_t   args;
} llmc_tool_t;

/* a string field of the delta the format does not name, such as the
 * reasoning_content of OpenAI-compatible servers: joined like content */
typedef struct {
    char        *key;
    llmc_buf_t   val;
} llmc_extra_t;

typedef struct {
    int          seen;
    int          has_content;
    int          has_refusal;
    llmc_buf_t   content;           /* chat content; completions text */
    llmc_buf_t   refusal;
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
    llmc_buf_t           acc;           /* text, thinking or input JSON */
    llmc_buf_t           sig;
    int                  delta_seen;
};

/* --- small helpers ------------------------------------------------------- */

static json_t *
llmc_str_json(const llmc_buf_t *s)
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

int
llmc_set_copy(json_t *obj, const char *key, json_t *v)
{
    if (v == NULL) {
        return 0;
    }
    return json_object_set_new(obj, key, json_deep_copy(v)) != 0;
}

void
llmc_put_new(json_t *obj, const char *key, json_t *v, int *bad)
{
    if (json_object_set_new(obj, key, v) != 0) {
        *bad = 1;
    }
}

void
llmc_put(json_t *obj, const char *key, json_t *v, int *bad)
{
    if (v == NULL || json_object_set(obj, key, v) != 0) {
        *bad = 1;
    }
}

json_t *
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
            && llmc_buf_put(&t->name, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        v = json_object_get(fn, "arguments");
        if (json_is_string(v)
            && llmc_buf_put(&t->args, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
    }
    return 0;
}

static int
llmc_str_add_json(llmc_buf_t *dst, json_t *v)
{
    return json_is_string(v) ? llmc_buf_put(dst, json_string_value(v),
                                            json_string_length(v))
                             : 0;
}

const char *const  llmc_chat_fields[LLMC_CHAT_FIELDS] = {
    "role", "content", "refusal", "annotations", "tool_calls"
};

int
llmc_chat_field_known(const char *key)
{
    size_t  i;

    for (i = 0; i < LLMC_CHAT_FIELDS; i++) {
        if (strcmp(key, llmc_chat_fields[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* the legacy function_call, and the string fields no format names; a
 * field of another kind (audio) cannot be joined: not stored */
static int
llmc_chat_other_delta(llmc_stream_t *s, llmc_choice_t *c, json_t *delta)
{
    const char         *key;
    json_t             *v;
    llmc_extra_t       *x;
    size_t              i;
    char                buf[128];

    json_object_foreach(delta, key, v) {
        if (llmc_chat_field_known(key) || json_is_null(v)) {
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
            if (llmc_buf_put(&c->content, json_string_value(v),
                             json_string_length(v)) != 0)
            {
                return llmc_stream_fail(s, "out of memory%s", NULL);
            }
        }
        v = json_object_get(delta, "refusal");
        if (chat && json_is_string(v)) {
            c->has_refusal = 1;
            if (llmc_buf_put(&c->refusal, json_string_value(v),
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
            && llmc_buf_put(&s->acc, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
    } else if (strcmp(t, "thinking") == 0) {
        s->block_type = LLMC_BLOCK_THINKING;
        v = json_object_get(b, "thinking");
        if (json_is_string(v)
            && llmc_buf_put(&s->acc, json_string_value(v),
                            json_string_length(v)) != 0)
        {
            return llmc_stream_fail(s, "out of memory%s", NULL);
        }
        v = json_object_get(b, "signature");
        if (json_is_string(v)
            && llmc_buf_put(&s->sig, json_string_value(v),
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
    llmc_buf_t  *dst;
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
    if (llmc_buf_put(dst, json_string_value(v), json_string_length(v)) != 0) {
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
