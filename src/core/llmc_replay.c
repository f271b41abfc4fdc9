/*
 * Replay of a stored non-streamed response as SSE in its provider's stream
 * format (the other half of llmc_stream.h; assembly is in llmc_stream.c).
 * The usual answer is written straight from its stored text; everything
 * else through jansson's tree of it.  What each format replays:
 * docs/streaming.md.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_json.h"
#include "llmc_normalize.h"
#include "llmc_stream.h"
#include "llmc_stream_int.h"

/* --- replay -------------------------------------------------------------- */

typedef struct {
    llmc_buf_t   out;
    size_t       chunk;         /* code points per piece */
    int          failed;
    json_int_t   seq;           /* Responses sequence_number */
} llmc_replay_t;

/*
 * Appends v as compact JSON, byte for byte what json_dumps(v, JSON_COMPACT)
 * writes (keys in insertion order, the same escapes and reals), without
 * its callback per token and its copy of the result: a replay dumps one
 * object per event.  (The scope's writer in llmc_request.c sorts keys.)
 */
static int
llmc_json_dump(llmc_buf_t *out, json_t *v)
{
    const char  *key;
    json_t      *e;
    size_t       i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (llmc_buf_put(out, "{", 1) != 0) {
            return -1;
        }
        i = 0;
        json_object_foreach(v, key, e) {
            if ((i++ > 0 && llmc_buf_put(out, ",", 1) != 0)
                || llmc_json_put_string(out, key, strlen(key)) != 0
                || llmc_buf_put(out, ":", 1) != 0
                || llmc_json_dump(out, e) != 0)
            {
                return -1;
            }
        }
        return llmc_buf_put(out, "}", 1);

    case JSON_ARRAY:
        if (llmc_buf_put(out, "[", 1) != 0) {
            return -1;
        }
        json_array_foreach(v, i, e) {
            if ((i > 0 && llmc_buf_put(out, ",", 1) != 0)
                || llmc_json_dump(out, e) != 0)
            {
                return -1;
            }
        }
        return llmc_buf_put(out, "]", 1);

    case JSON_STRING:
        return llmc_json_put_string(out, json_string_value(v),
                                    json_string_length(v));
    case JSON_INTEGER:
        return llmc_json_put_int(out, json_integer_value(v));
    case JSON_REAL:
        return llmc_json_put_real(out, json_real_value(v));
    case JSON_TRUE:
        return llmc_buf_put(out, "true", 4);
    case JSON_FALSE:
        return llmc_buf_put(out, "false", 5);
    default:
        return llmc_buf_put(out, "null", 4);
    }
}

/* appends one event; takes the reference to obj */
static void
llmc_replay_emit(llmc_replay_t *rp, const char *event, json_t *obj)
{
    if (obj == NULL
        || (event != NULL
            && (llmc_buf_putz(&rp->out, "event: ") != 0
                || llmc_buf_putz(&rp->out, event) != 0
                || llmc_buf_putz(&rp->out, "\n") != 0))
        || llmc_buf_putz(&rp->out, "data: ") != 0
        || llmc_json_dump(&rp->out, obj) != 0
        || llmc_buf_putz(&rp->out, "\n\n") != 0)
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
    llmc_buf_t   pre;           /* "event: ...\ndata: {...": up to the piece */
    llmc_buf_t   post;          /* after the piece, "\n\n" included */
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
            && (llmc_buf_putz(&t->pre, "event: ") != 0
                || llmc_buf_putz(&t->pre, event) != 0
                || llmc_buf_putz(&t->pre, "\n") != 0))
        || llmc_buf_putz(&t->pre, "data: ") != 0)
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
    if (m == NULL || llmc_buf_putz(&t->post, m + sizeof(mark) - 1) != 0) {
        goto failed;
    }
    t->pre.len = m - t->pre.p;
    t->pre.p[t->pre.len] = '\0';
    if (seq) {
        /* the object ends in '}': the sequence number goes before it */
        t->post.len--;
    }
    if (llmc_buf_putz(&t->post, "\n\n") != 0) {
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
        if (llmc_buf_put(&rp->out, t->pre.p, t->pre.len) != 0
            || llmc_json_put_string(&rp->out, p, n) != 0)
        {
            rp->failed = 1;
            return;
        }
        if (t->seq) {
            snprintf(num, sizeof(num), ",\"sequence_number\":%lld}",
                     (long long) rp->seq++);
            if (llmc_buf_putz(&rp->out, num) != 0) {
                rp->failed = 1;
                return;
            }
        }
        if (llmc_buf_put(&rp->out, t->post.p, t->post.len) != 0) {
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
    const char  *key;
    json_t      *v, *name, *args;

    json_object_foreach(m, key, v) {
        if (llmc_chat_field_known(key) || json_is_null(v)) {
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
jscan_unescape(llmc_buf_t *out, const char *p, const char *end, int canon)
{
    const char  *start = p;
    uint32_t     u;
    char         b[4];

    while (p < end) {
        if (*p != '\\') {
            p++;
            continue;
        }
        if (llmc_buf_put(out, start, p - start) != 0) {
            return -1;
        }
        (void) llmc_json_escape_read(&p, end, &u);
        start = p;
        if (canon && (u < 0x20 || u == '"' || u == '\\')) {
            b[0] = (char) u;
            if (llmc_json_put_string_in(out, b, 1) != 0) {
                return -1;
            }
        } else if (llmc_buf_put(out, b, llmc_utf8_put(u, b)) != 0) {
            return -1;
        }
    }
    return llmc_buf_put(out, start, p - start);
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
jscan_value(llmc_jscan_t *s, llmc_buf_t *out, const char *const *names,
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
            return llmc_buf_put(out, a - 1, b - a + 2) == 0 ? 1 : -1;
        }
        return llmc_buf_put(out, "\"", 1) == 0
               && jscan_unescape(out, a, b, 1) == 0
               && llmc_buf_put(out, "\"", 1) == 0 ? 1 : -1;

    case '{':
    case '[':
        close = *s->p == '{' ? '}' : ']';
        if (++s->depth > LLMC_JSCAN_DEPTH) {
            return 0;
        }
        if (out != NULL && llmc_buf_put(out, s->p, 1) != 0) {
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
                    && (llmc_buf_put(out, a - 1, b - a + 2) != 0
                        || llmc_buf_put(out, ":", 1) != 0))
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
            if (out != NULL && llmc_buf_put(out, ",", 1) != 0) {
                return -1;
            }
        }
    closed:
        s->p++;
        s->depth--;
        return out == NULL || llmc_buf_put(out, &close, 1) == 0 ? 1 : -1;

    case 't':
    case 'f':
    case 'n':
        a = *s->p == 't' ? "true" : *s->p == 'f' ? "false" : "null";
        i = strlen(a);
        if ((size_t) (s->end - s->p) < i || memcmp(s->p, a, i) != 0) {
            return 0;
        }
        s->p += i;
        return out == NULL || llmc_buf_put(out, a, i) == 0 ? 1 : -1;

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
        return out == NULL || llmc_buf_put(out, a, b - a) == 0 ? 1 : -1;
    }
}

/* writes a checked value (a span of jscan_value()) as jansson dumps it */
static int
jscan_put(llmc_buf_t *out, const llmc_span_t *v)
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
jscan_put_with(llmc_buf_t *out, const llmc_span_t *v,
    const char *const *keys, const char *const *vals, size_t n)
{
    llmc_jscan_t  s = { v->a + 1, v->b, 0 };
    llmc_span_t   k, m;
    size_t        i;

    if (llmc_buf_put(out, "{", 1) != 0) {
        return -1;
    }
    for (i = 0; jscan_next(&s, &k, &m); i++) {
        if ((i > 0 && llmc_buf_put(out, ",", 1) != 0)
            || llmc_buf_put(out, k.a - 1, k.b - k.a + 2) != 0
            || llmc_buf_put(out, ":", 1) != 0)
        {
            return -1;
        }
        if (jscan_name(keys, n, k.a, k.b) < n
            ? llmc_buf_putz(out, vals[jscan_name(keys, n, k.a, k.b)]) != 0
            : jscan_put(out, &m) != 0)
        {
            return -1;
        }
    }
    return llmc_buf_put(out, "}", 1);
}

/* the members of a chat answer, a choice and its message (in the order of
 * llmc_chat_fields) */
enum { CT_ID, CT_OBJECT, CT_CREATED, CT_MODEL, CT_TIER, CT_FP, CT_CHOICES,
       CT_USAGE, CT_N };
enum { CC_INDEX, CC_MESSAGE, CC_LOGPROBS, CC_FINISH, CC_N };
enum { CM_ROLE, CM_CONTENT, CM_REFUSAL, CM_ANNOTATIONS, CM_TOOLS, CM_N };

/* an event of one choice: head, {"index":N, mid, the value v as jansson
 * writes it, end */
static int
llmc_text_event(llmc_replay_t *rp, const llmc_buf_t *head, const char *index,
    const char *mid, const llmc_span_t *v, const char *end)
{
    if (llmc_buf_put(&rp->out, head->p, head->len) != 0
        || llmc_buf_putz(&rp->out, "{\"index\":") != 0
        || llmc_buf_putz(&rp->out, index) != 0
        || llmc_buf_putz(&rp->out, mid) != 0
        || (v != NULL && jscan_put(&rp->out, v) != 0)
        || llmc_buf_putz(&rp->out, end) != 0)
    {
        return -1;
    }
    return 0;
}

#define LLMC_TEXT_TAIL  ",\"logprobs\":null,\"finish_reason\":null}]}\n\n"

/* one event per piece of the checked string v, through template t */
static int
llmc_text_pieces_tpl(llmc_replay_t *rp, llmc_tpl_t *t, const llmc_span_t *v,
    llmc_buf_t *tmp)
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
llmc_text_pieces(llmc_replay_t *rp, const llmc_buf_t *head,
    const char *index, const char *key, const llmc_span_t *v,
    llmc_buf_t *tmp)
{
    llmc_tpl_t  t;
    int         rc;

    memset(&t, 0, sizeof(llmc_tpl_t));
    rc = -1;
    if (llmc_buf_put(&t.pre, head->p, head->len) == 0
        && llmc_buf_putz(&t.pre, "{\"index\":") == 0
        && llmc_buf_putz(&t.pre, index) == 0
        && llmc_buf_putz(&t.pre, ",\"delta\":{\"") == 0
        && llmc_buf_putz(&t.pre, key) == 0
        && llmc_buf_putz(&t.pre, "\":") == 0
        && llmc_buf_putz(&t.post, "}" LLMC_TEXT_TAIL) == 0)
    {
        rc = llmc_text_pieces_tpl(rp, &t, v, tmp);
    }
    llmc_tpl_free(&t);
    return rc;
}

/* the usual chat answer: 1 replayed into rp->out, 0 declined (the caller
 * drops what was written), -1 out of memory */
static int
llmc_replay_chat_text(llmc_replay_t *rp, const char *json, size_t len,
    int include_usage)
{
    static const char *const  top[] = { "id", "object", "created", "model",
                                        "service_tier", "system_fingerprint",
                                        "choices", "usage" };
    static const char *const  choice[] = { "index", "message", "logprobs",
                                           "finish_reason" };
    static const char         asst[] = "\"assistant\"", st[] = "\"stop\"",
                              nu[] = "null";
    static const llmc_span_t  assistant = { asst, asst + sizeof(asst) - 1 },
                              stop = { st, st + sizeof(st) - 1 },
                              null = { nu, nu + sizeof(nu) - 1 };
    llmc_jscan_t              c, m;
    llmc_span_t               tv[CT_N], cv[CC_N], mv[CM_N], el;
    llmc_buf_t                head, tmp;
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
    if (llmc_buf_putz(&head, "data: {") != 0) {
        goto done;
    }
    for (i = CT_ID; i <= CT_FP; i++) {
        if (i != CT_OBJECT && tv[i].a == NULL) {
            continue;
        }
        if ((head.len > sizeof("data: {") - 1
             && llmc_buf_put(&head, ",", 1) != 0)
            || llmc_buf_put(&head, "\"", 1) != 0
            || llmc_buf_putz(&head, top[i]) != 0
            || llmc_buf_put(&head, "\":", 2) != 0
            || (i == CT_OBJECT
                ? llmc_buf_putz(&head, "\"chat.completion.chunk\"")
                : jscan_put(&head, &tv[i])) != 0)
        {
            goto done;
        }
    }
    head0 = head.len;
    if ((include_usage && llmc_buf_putz(&head, ",\"usage\":null") != 0)
        || llmc_buf_putz(&head, ",\"choices\":[") != 0)
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
            || jscan_value(&m, NULL, llmc_chat_fields, CM_N, mv, 1) != 1)
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
            || llmc_buf_putz(&rp->out, "}]}\n\n") != 0)
        {
            goto done;
        }
    }

    if (include_usage && jscan_is(&tv[CT_USAGE], '{')
        && (llmc_buf_put(&rp->out, head.p, head0) != 0
            || llmc_buf_putz(&rp->out, ",\"choices\":[],\"usage\":") != 0
            || jscan_put(&rp->out, &tv[CT_USAGE]) != 0
            || llmc_buf_putz(&rp->out, "}\n\n") != 0))
    {
        goto done;
    }
    rc = llmc_buf_putz(&rp->out, "data: [DONE]\n\n") == 0 ? 1 : -1;

done:
    free(head.p);
    free(tmp.p);
    return rc;
}

/* an Anthropic event's start: "event: type", "data: {"type":"type"" and,
 * unless index is NULL, ","index":index" */
static int
llmc_text_ant(llmc_buf_t *out, const char *type, const char *index)
{
    return llmc_buf_putz(out, "event: ") == 0
           && llmc_buf_putz(out, type) == 0
           && llmc_buf_putz(out, "\ndata: {\"type\":\"") == 0
           && llmc_buf_putz(out, type) == 0
           && llmc_buf_put(out, "\"", 1) == 0
           && (index == NULL
               || (llmc_buf_putz(out, ",\"index\":") == 0
                   && llmc_buf_putz(out, index) == 0)) ? 0 : -1;
}

/* the usual Anthropic message (text blocks only): 1 replayed into
 * rp->out, 0 declined (the caller drops what was written), -1 out of
 * memory */
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
    llmc_buf_t    tmp;
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

    /* the events llmc_replay_messages() writes */
    whole.a = llmc_json_ws(json, json + len);
    whole.b = json + len;
    if (llmc_text_ant(&rp->out, "message_start", NULL) != 0
        || llmc_buf_putz(&rp->out, ",\"message\":") != 0
        || jscan_put_with(&rp->out, &whole, start, start_vals, 3) != 0
        || llmc_buf_putz(&rp->out, "}\n\n") != 0)
    {
        return -1;
    }

    memset(&tmp, 0, sizeof(tmp));
    rc = -1;
    b.p = tv[MT_CONTENT].a + 1;
    b.end = tv[MT_CONTENT].b;
    b.depth = 0;
    for (i = 0; jscan_next(&b, NULL, &el); i++) {
        c.p = el.a;
        c.end = el.b;
        c.depth = 0;
        if (jscan_value(&c, NULL, block, MB_N, bv, 0) != 1
            || !jscan_eq(&bv[MB_TYPE], "\"text\"")
            || !jscan_is(&bv[MB_TEXT], '"'))
        {
            rc = 0;             /* only text blocks: the rest to the tree */
            goto done;
        }
        snprintf(index, sizeof(index), "%zu", i);
        if (llmc_text_ant(&rp->out, "content_block_start", index) != 0
            || llmc_buf_putz(&rp->out, ",\"content_block\":") != 0
            || jscan_put_with(&rp->out, &el, empty, empty_vals,
                              jscan_is(&bv[MB_CITATIONS], '[') ? 2 : 1) != 0
            || llmc_buf_putz(&rp->out, "}\n\n") != 0
            || (i == 0 && (llmc_text_ant(&rp->out, "ping", NULL) != 0
                           || llmc_buf_putz(&rp->out, "}\n\n") != 0)))
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
                    || llmc_buf_putz(&rp->out, ",\"delta\":{\"type\":"
                                     "\"citations_delta\",\"citation\":")
                       != 0
                    || jscan_put(&rp->out, &cit) != 0
                    || llmc_buf_putz(&rp->out, "}}\n\n") != 0)
                {
                    goto done;
                }
            }
        }

        /* the text in pieces, then the block's end */
        memset(&t, 0, sizeof(llmc_tpl_t));
        bad = llmc_text_ant(&t.pre, "content_block_delta", index) != 0
              || llmc_buf_putz(&t.pre, ",\"delta\":{\"type\":"
                               "\"text_delta\",\"text\":") != 0
              || llmc_buf_putz(&t.post, "}}\n\n") != 0
              || llmc_text_pieces_tpl(rp, &t, &bv[MB_TEXT], &tmp) != 0;
        llmc_tpl_free(&t);
        if (bad
            || llmc_text_ant(&rp->out, "content_block_stop", index) != 0
            || llmc_buf_putz(&rp->out, "}\n\n") != 0)
        {
            goto done;
        }
    }

    if (llmc_text_ant(&rp->out, "message_delta", NULL) != 0
        || llmc_buf_putz(&rp->out, ",\"delta\":{\"stop_reason\":") != 0
        || jscan_put(&rp->out, &tv[MT_STOP]) != 0
        || (tv[MT_SEQ].a != NULL
            && (llmc_buf_putz(&rp->out, ",\"stop_sequence\":") != 0
                || jscan_put(&rp->out, &tv[MT_SEQ]) != 0))
        || llmc_buf_put(&rp->out, "}", 1) != 0
        || (tv[MT_USAGE].a != NULL
            && (llmc_buf_putz(&rp->out, ",\"usage\":") != 0
                || jscan_put(&rp->out, &tv[MT_USAGE]) != 0))
        || llmc_buf_putz(&rp->out, "}\n\n") != 0
        || llmc_text_ant(&rp->out, "message_stop", NULL) != 0
        || llmc_buf_putz(&rp->out, "}\n\n") != 0)
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
        if (llmc_buf_putz(&rp.out, "data: [DONE]\n\n") != 0) {
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
