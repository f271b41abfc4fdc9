/*
 * Stream assembly, replay and usage, on streams captured from the provider
 * mocks (t/data/sse/capture.sh) and hand-written ones: a finished stream
 * assembles into the mock's non-streamed answer to the same request; every
 * unfinished or malformed stream is not DONE; replay(assemble(stream))
 * assembles back to the same JSON; any split of the bytes gives the same
 * result.
 */

#include <dlfcn.h>
#include <unistd.h>

#include <jansson.h>

#include "tap.h"
#include "llmc_stream.h"

static char  datadir[1024];

static void
find_datadir(const char *argv0)
{
    const char  *root;
    char        *slash;

    root = getenv("LLMCACHE_ROOT");
    if (root != NULL) {
        snprintf(datadir, sizeof(datadir), "%s/t/data/sse", root);
        return;
    }
    if (access("t/data/sse/chat.sse", R_OK) == 0) {
        snprintf(datadir, sizeof(datadir), "t/data/sse");
        return;
    }
    /* build/unit/test_stream -> t/data/sse */
    snprintf(datadir, sizeof(datadir), "%s", argv0);
    slash = strrchr(datadir, '/');
    if (slash != NULL) {
        snprintf(slash, sizeof(datadir) - (size_t) (slash - datadir),
                 "/../../t/data/sse");
    }
}

static char *
slurp(const char *name, size_t *len)
{
    char    path[1200], *buf;
    FILE   *f;
    long    n;

    snprintf(path, sizeof(path), "%s/%s", datadir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        printf("# cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n + 1);
    if (buf == NULL || fread(buf, 1, n, f) != (size_t) n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* feeds in pieces of step bytes (0: whole), then finishes; the result
 * (NULL unless DONE) and the final state and error */
static char *
assemble(llmc_api_e api, const char *in, size_t len, size_t step,
    size_t max_bytes, llmc_stream_state_e *state, char *err, size_t errlen)
{
    llmc_stream_t  *s;
    size_t          off, n;
    char           *out;

    s = llmc_stream_new(api, max_bytes);
    if (s == NULL) {
        *state = LLMC_STREAM_FAILED;
        return NULL;
    }
    if (step == 0) {
        step = len ? len : 1;
    }
    for (off = 0; off < len; off += n) {
        n = len - off < step ? len - off : step;
        if (llmc_stream_feed(s, in + off, n) != 0) {
            break;
        }
    }
    *state = llmc_stream_finish(s);
    snprintf(err, errlen, "%s", llmc_stream_error(s));
    out = llmc_stream_result(s, NULL);
    llmc_stream_free(s);
    return out;
}

static char *
assemble_file(llmc_api_e api, const char *name, llmc_stream_state_e *state,
    char *err, size_t errlen)
{
    char    *in, *out;
    size_t   len;

    in = slurp(name, &len);
    if (in == NULL) {
        *state = LLMC_STREAM_FAILED;
        snprintf(err, errlen, "no fixture");
        return NULL;
    }
    out = assemble(api, in, len, 0, 0, state, err, errlen);
    free(in);
    return out;
}

static json_t *
load(const char *s)
{
    return s ? json_loads(s, JSON_ALLOW_NUL, NULL) : NULL;
}

/* deletes created / created_at, which differ between two calls */
static void
drop_times(json_t *j)
{
    json_object_del(j, "created");
    json_object_del(j, "created_at");
}

static const char *
jstr(json_t *root, const char *path)
{
    /* path: keys and array indexes separated by '.' */
    char      buf[256], *tok, *save;
    json_t   *j = root;

    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && j;
         tok = strtok_r(NULL, ".", &save))
    {
        if (json_is_array(j)) {
            j = json_array_get(j, atoi(tok));
        } else {
            j = json_object_get(j, tok);
        }
    }
    return json_string_value(j);
}

static json_t *
jget(json_t *root, const char *path)
{
    char      buf[256], *tok, *save;
    json_t   *j = root;

    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && j;
         tok = strtok_r(NULL, ".", &save))
    {
        j = json_is_array(j) ? json_array_get(j, atoi(tok))
                             : json_object_get(j, tok);
    }
    return j;
}

typedef struct {
    const char  *name;
    llmc_api_e   api;
    const char  *text_path;     /* the answer text, or the tool arguments */
    const char  *finish_path;
    const char  *finish;
} capture_t;

static const capture_t  captures[] = {
    { "chat", LLMC_API_CHAT, "choices.0.message.content",
      "choices.0.finish_reason", "stop" },
    { "chat-length", LLMC_API_CHAT, "choices.0.message.content",
      "choices.0.finish_reason", "length" },
    { "chat-tool", LLMC_API_CHAT,
      "choices.0.message.tool_calls.0.function.arguments",
      "choices.0.finish_reason", "tool_calls" },
    { "chat-n2", LLMC_API_CHAT, "choices.1.message.content",
      "choices.1.finish_reason", "stop" },
    { "completions", LLMC_API_COMPLETIONS, "choices.0.text",
      "choices.0.finish_reason", "stop" },
    { "responses", LLMC_API_RESPONSES, "output.0.content.0.text",
      "status", "completed" },
    { "responses-tool", LLMC_API_RESPONSES, "output.0.arguments",
      "status", "completed" },
    { "messages", LLMC_API_MESSAGES, "content.0.text", "stop_reason",
      "end_turn" },
    { "messages-length", LLMC_API_MESSAGES, "content.0.text",
      "stop_reason", "max_tokens" },
    { "messages-tool", LLMC_API_MESSAGES, "content.0.input.answer",
      "stop_reason", "tool_use" },
};

static void
test_round_trip(const char *name, llmc_api_e api, const char *result,
    int include_usage)
{
    char                *sse, *again, err[256];
    size_t               len;
    llmc_stream_state_e  st;
    json_t              *a, *b;

    sse = llmc_stream_replay(api, result, strlen(result), include_usage, 5,
                             &len, err, sizeof(err));
    ok(sse != NULL && strlen(sse) == len, "%s: replays (%s)", name,
       sse ? "" : err);
    if (sse == NULL) {
        return;
    }
    again = assemble(api, sse, len, 0, 0, &st, err, sizeof(err));
    ok(st == LLMC_STREAM_DONE, "%s: the replay assembles (%s)", name, err);
    a = load(result);
    b = load(again);
    if (!include_usage && (api == LLMC_API_CHAT
                           || api == LLMC_API_COMPLETIONS))
    {
        ok(strstr(sse, "\"usage\"") == NULL,
           "%s: no usage without include_usage", name);
        json_object_del(a, "usage");
    }
    ok(a && b && json_equal(a, b), "%s: replay(assembled) assembles to the "
       "same JSON (usage %d)", name, include_usage);
    json_decref(a);
    json_decref(b);
    free(again);

    /* one byte at a time */
    if (include_usage) {
        again = assemble(api, sse, len, 1, 0, &st, err, sizeof(err));
        a = load(result);
        b = load(again);
        ok(st == LLMC_STREAM_DONE && a && b && json_equal(a, b),
           "%s: the replay fed byte by byte too", name);
        json_decref(a);
        json_decref(b);
        free(again);
    }
    free(sse);
}

static void
test_captures(void)
{
    const capture_t     *c;
    char                 fname[128], *sse, *res, *res1, *want, err[256];
    size_t               i, len, wlen;
    llmc_stream_state_e  st;
    json_t              *got, *exp;
    llmc_usage_t         ug, uw;
    int                  rc;

    for (i = 0; i < sizeof(captures) / sizeof(captures[0]); i++) {
        c = &captures[i];
        snprintf(fname, sizeof(fname), "%s.sse", c->name);
        sse = slurp(fname, &len);
        snprintf(fname, sizeof(fname), "%s.json", c->name);
        want = slurp(fname, &wlen);
        if (sse == NULL || want == NULL) {
            ok(0, "%s: fixtures present", c->name);
            free(sse);
            free(want);
            continue;
        }

        res = assemble(c->api, sse, len, 0, 0, &st, err, sizeof(err));
        is_int(st, LLMC_STREAM_DONE, "%s: DONE (%s)", c->name, err);
        got = load(res);
        exp = load(want);
        ok(got != NULL && exp != NULL, "%s: the result is JSON", c->name);
        if (got == NULL || exp == NULL) {
            free(sse);
            free(want);
            free(res);
            json_decref(got);
            json_decref(exp);
            continue;
        }

        /* field by field first, so a failure says which */
        if (c->api == LLMC_API_MESSAGES
            && strcmp(c->name, "messages-tool") == 0)
        {
            ok(json_is_object(jget(got, "content.0.input")),
               "%s: tool input parsed into an object", c->name);
        }
        is_str(jstr(got, c->text_path), jstr(exp, c->text_path),
               "%s: %s", c->name, c->text_path);
        is_str(jstr(got, c->finish_path), c->finish, "%s: %s", c->name,
               c->finish_path);
        ok(json_equal(jget(got, "usage"), jget(exp, "usage")),
           "%s: usage", c->name);
        rc = llmc_usage_parse(c->api, res, strlen(res), &ug);
        rc |= llmc_usage_parse(c->api, want, wlen, &uw);
        ok(rc == 0 && ug.input == uw.input && ug.output == uw.output
           && ug.cached == uw.cached && ug.output > 0,
           "%s: usage counts (in %lld out %lld)", c->name,
           (long long) ug.input, (long long) ug.output);
        is_str(jstr(got, "id"), jstr(exp, "id"), "%s: id", c->name);
        is_str(jstr(got, "model"), jstr(exp, "model"), "%s: model",
               c->name);

        /* then the whole object */
        drop_times(got);
        drop_times(exp);
        ok(json_equal(got, exp), "%s: equals the non-streamed answer",
           c->name);
        if (!json_equal(got, exp)) {
            printf("#   got:  %s\n#   want: %s\n", res, want);
        }

        /* any split gives the same bytes */
        res1 = assemble(c->api, sse, len, 1, 0, &st, err, sizeof(err));
        ok(res1 != NULL && strcmp(res1, res) == 0,
           "%s: fed one byte at a time, the same result", c->name);
        free(res1);
        res1 = assemble(c->api, sse, len, 7, 0, &st, err, sizeof(err));
        ok(res1 != NULL && strcmp(res1, res) == 0,
           "%s: fed 7 bytes at a time, the same result", c->name);
        free(res1);

        /* the size bound */
        res1 = assemble(c->api, sse, len, 100, len - 1, &st, err,
                        sizeof(err));
        ok(res1 == NULL && st == LLMC_STREAM_FAILED
           && strstr(err, "size limit") != NULL,
           "%s: one byte over max_bytes fails (%s)", c->name, err);
        free(res1);
        res1 = assemble(c->api, sse, len, 100, len, &st, err, sizeof(err));
        ok(res1 != NULL, "%s: exactly max_bytes passes", c->name);
        free(res1);

        test_round_trip(c->name, c->api, res, 1);
        test_round_trip(c->name, c->api, res, 0);

        /* an entry stored from a non-streamed answer, hit by a streaming
         * request */
        snprintf(fname, sizeof(fname), "%s (non-streamed body)", c->name);
        test_round_trip(fname, c->api, want, 1);

        json_decref(got);
        json_decref(exp);
        free(res);
        free(sse);
        free(want);
    }
}

static void
test_every_split(void)
{
    char                *sse, *whole, *part, err[256];
    size_t               len, i;
    int                  bad = 0;
    llmc_stream_t       *s;
    llmc_stream_state_e  st;

    sse = slurp("messages-thinking.sse", &len);
    if (sse == NULL) {
        ok(0, "messages-thinking.sse present");
        return;
    }
    whole = assemble(LLMC_API_MESSAGES, sse, len, 0, 0, &st, err,
                     sizeof(err));
    for (i = 0; i <= len; i++) {
        s = llmc_stream_new(LLMC_API_MESSAGES, 0);
        llmc_stream_feed(s, sse, i);
        llmc_stream_feed(s, sse + i, len - i);
        llmc_stream_finish(s);
        part = llmc_stream_result(s, NULL);
        if (part == NULL || whole == NULL || strcmp(part, whole) != 0) {
            bad++;
        }
        free(part);
        llmc_stream_free(s);
    }
    is_int(bad, 0, "thinking stream split at each of %zu boundaries",
           len + 1);
    free(whole);
    free(sse);
}

static void
test_crlf_comments(void)
{
    static const struct { const char *sse, *json; llmc_api_e api; } t[] = {
        { "chat-crlf.sse", "chat.json", LLMC_API_CHAT },
        { "messages-crlf.sse", "messages.json", LLMC_API_MESSAGES },
    };
    char                *res, *want, err[256];
    size_t               i, wlen;
    llmc_stream_state_e  st;
    json_t              *a, *b;

    for (i = 0; i < 2; i++) {
        res = assemble_file(t[i].api, t[i].sse, &st, err, sizeof(err));
        want = slurp(t[i].json, &wlen);
        a = load(res);
        b = load(want);
        drop_times(a);
        drop_times(b);
        ok(st == LLMC_STREAM_DONE && a && b && json_equal(a, b),
           "%s (CRLF, keep-alive comments) equals %s (%s)", t[i].sse,
           t[i].json, err);
        json_decref(a);
        json_decref(b);
        free(res);
        free(want);
    }
}

static void
test_hand_written(void)
{
    char                *res, err[256];
    llmc_stream_state_e  st;
    json_t              *j;

    res = assemble_file(LLMC_API_MESSAGES, "messages-thinking.sse", &st, err,
                        sizeof(err));
    is_int(st, LLMC_STREAM_DONE, "thinking + citations + tool: DONE (%s)",
           err);
    j = load(res);
    is_str(jstr(j, "content.0.type"), "thinking", "block 0 is thinking");
    is_str(jstr(j, "content.0.thinking"), "The user asks about the "
           "document. Cite it, then look up the weather.",
           "thinking deltas joined");
    is_str(jstr(j, "content.0.signature"),
           "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
           "signature kept");
    is_str(jstr(j, "content.1.text"), "The grass is green — says the "
           "document. ☀", "text deltas joined");
    is_str(jstr(j, "content.1.citations.0.cited_text"),
           "The grass is green.", "citation kept");
    is_str(jstr(j, "content.2.input.location"), "San Francisco, CA",
           "tool input parsed at content_block_stop");
    is_int(json_integer_value(jget(j, "content.2.input.days.1")), 2,
           "tool input nested array");
    is_int(json_integer_value(jget(j, "usage.output_tokens")), 89,
           "usage output_tokens from message_delta");
    is_int(json_integer_value(jget(j, "usage.cache_read_input_tokens")),
           1800, "usage cache read from message_start");
    is_str(jstr(j, "stop_reason"), "tool_use", "stop_reason");
    ok(json_is_null(jget(j, "stop_sequence")), "stop_sequence null");
    json_decref(j);
    if (res) {
        test_round_trip("thinking", LLMC_API_MESSAGES, res, 0);
    }
    free(res);

    res = assemble_file(LLMC_API_CHAT, "chat-refusal.sse", &st, err,
                        sizeof(err));
    is_int(st, LLMC_STREAM_DONE, "refusal: DONE (%s)", err);
    j = load(res);
    is_str(jstr(j, "choices.0.message.refusal"),
           "I'm sorry, I can't help with that.", "refusal deltas joined");
    ok(json_is_null(jget(j, "choices.0.message.content")),
       "content stays null");
    is_int(json_array_size(jget(j, "choices.0.logprobs.refusal")), 2,
           "refusal logprobs concatenated");
    is_str(jstr(j, "system_fingerprint"), "fp_hand", "system_fingerprint");
    ok(jget(j, "usage") == NULL, "no usage without the usage chunk");
    json_decref(j);
    if (res) {
        test_round_trip("refusal", LLMC_API_CHAT, res, 0);
    }
    free(res);

    res = assemble_file(LLMC_API_CHAT, "chat-tools2.sse", &st, err,
                        sizeof(err));
    is_int(st, LLMC_STREAM_DONE, "two tool calls: DONE (%s)", err);
    j = load(res);
    is_str(jstr(j, "choices.0.message.tool_calls.0.function.arguments"),
           "{\"city\": \"Paris\"}", "interleaved arguments, call 0");
    is_str(jstr(j, "choices.0.message.tool_calls.1.function.arguments"),
           "{\"tz\": \"CET\"}", "interleaved arguments, call 1");
    is_str(jstr(j, "choices.0.message.tool_calls.1.id"), "call_b",
           "call 1 id");
    is_str(jstr(j, "choices.0.message.tool_calls.1.function.name"),
           "get_time", "call 1 name");
    json_decref(j);
    if (res) {
        test_round_trip("two tools", LLMC_API_CHAT, res, 0);
    }
    free(res);
}

static void
test_other_fields(void)
{
    char                *res, err[256];
    llmc_stream_state_e  st;
    json_t              *j;

    res = assemble_file(LLMC_API_CHAT, "chat-reasoning.sse", &st, err,
                        sizeof(err));
    is_int(st, LLMC_STREAM_DONE, "reasoning_content: DONE (%s)", err);
    j = load(res);
    is_str(jstr(j, "choices.0.message.reasoning_content"),
           "9.11 vs 9.9: compare tenths.", "reasoning_content joined");
    is_str(jstr(j, "choices.0.message.content"), "9.9 is greater.",
           "content next to it");
    is_int(json_integer_value(jget(j,
           "usage.completion_tokens_details.reasoning_tokens")), 20,
           "usage from a chunk with choices");
    json_decref(j);
    if (res) {
        test_round_trip("reasoning_content", LLMC_API_CHAT, res, 1);
    }
    free(res);

    res = assemble_file(LLMC_API_RESPONSES, "responses-reasoning.sse", &st,
                        err, sizeof(err));
    is_int(st, LLMC_STREAM_DONE, "Responses reasoning + message: DONE (%s)",
           err);
    j = load(res);
    is_str(jstr(j, "output.0.summary.0.text"), "Thinking about colours.",
           "reasoning summary kept");
    is_str(jstr(j, "output.1.content.0.text"), "Blue, mostly — \"sky\".",
           "message text of the second item");
    is_int(json_integer_value(jget(j,
           "usage.output_tokens_details.reasoning_tokens")), 48,
           "reasoning tokens");
    json_decref(j);
    if (res) {
        test_round_trip("responses reasoning", LLMC_API_RESPONSES, res, 0);
    }
    free(res);

    res = assemble_file(LLMC_API_CHAT, "chat-function-call.sse", &st, err,
                        sizeof(err));
    is_int(st, LLMC_STREAM_DONE, "legacy function_call: DONE (%s)", err);
    j = load(res);
    is_str(jstr(j, "choices.0.message.function_call.name"),
           "get_current_weather", "function_call name");
    is_str(jstr(j, "choices.0.message.function_call.arguments"),
           "{\n  \"location\": \"Boston, MA\"\n}",
           "function_call arguments joined");
    is_str(jstr(j, "choices.0.finish_reason"), "function_call",
           "finish_reason function_call");
    json_decref(j);
    if (res) {
        test_round_trip("function_call", LLMC_API_CHAT, res, 0);
    }
    free(res);
}

static void
test_not_finished(void)
{
    static const struct { const char *name; llmc_api_e api; int open; } t[] = {
        { "chat-error.sse", LLMC_API_CHAT, 0 },
        { "chat-tool-error.sse", LLMC_API_CHAT, 0 },
        { "completions-error.sse", LLMC_API_COMPLETIONS, 0 },
        { "responses-error.sse", LLMC_API_RESPONSES, 0 },
        { "messages-error.sse", LLMC_API_MESSAGES, 0 },
        { "messages-tool-error.sse", LLMC_API_MESSAGES, 0 },
        { "responses-incomplete.sse", LLMC_API_RESPONSES, 0 },
        { "chat-truncated.sse", LLMC_API_CHAT, 1 },
        { "chat-tool-truncated.sse", LLMC_API_CHAT, 1 },
        { "completions-truncated.sse", LLMC_API_COMPLETIONS, 1 },
        { "responses-truncated.sse", LLMC_API_RESPONSES, 1 },
        { "messages-truncated.sse", LLMC_API_MESSAGES, 1 },
        { "messages-tool-truncated.sse", LLMC_API_MESSAGES, 1 },
    };
    char            *in, *res;
    size_t           i, len;
    llmc_stream_t   *s;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        in = slurp(t[i].name, &len);
        if (in == NULL) {
            ok(0, "%s present", t[i].name);
            continue;
        }
        s = llmc_stream_new(t[i].api, 0);
        llmc_stream_feed(s, in, len);
        if (t[i].open) {
            is_int(llmc_stream_state(s), LLMC_STREAM_OPEN,
                   "%s: OPEN at the end of the bytes", t[i].name);
        } else {
            is_int(llmc_stream_state(s), LLMC_STREAM_FAILED,
                   "%s: FAILED (%s)", t[i].name, llmc_stream_error(s));
        }
        res = llmc_stream_result(s, NULL);
        ok(res == NULL, "%s: no result before finish", t[i].name);
        is_int(llmc_stream_finish(s), LLMC_STREAM_FAILED,
               "%s: FAILED after finish (%s)", t[i].name,
               llmc_stream_error(s));
        res = llmc_stream_result(s, NULL);
        ok(res == NULL && llmc_stream_error(s)[0] != '\0',
           "%s: no result, a reason", t[i].name);
        free(res);
        llmc_stream_free(s);

        /* byte by byte: the same verdict */
        s = llmc_stream_new(t[i].api, 0);
        for (len = 0; in[len]; len++) {
            llmc_stream_feed(s, in + len, 1);
        }
        is_int(llmc_stream_state(s), t[i].open ? LLMC_STREAM_OPEN
                                               : LLMC_STREAM_FAILED,
               "%s: same verdict byte by byte", t[i].name);
        llmc_stream_free(s);
        free(in);
    }
}

/* a stream given inline, fed whole, must end FAILED with err containing
 * want */
static void
bad(llmc_api_e api, const char *name, const char *in, const char *want)
{
    char                *res, err[256];
    llmc_stream_state_e  st;

    res = assemble(api, in, strlen(in), 0, 0, &st, err, sizeof(err));
    ok(res == NULL && st == LLMC_STREAM_FAILED && strstr(err, want) != NULL,
       "%s: FAILED (%s)", name, err);
    free(res);
}

#define CHUNK(choices)                                                       \
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\","              \
    "\"created\":1,\"model\":\"m\",\"choices\":[" choices "]}\n\n"
#define TEXT(t)   CHUNK("{\"index\":0,\"delta\":{\"content\":\"" t "\"}}")
#define FIN       CHUNK("{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}")

#define AEV(type, body)                                                      \
    "event: " type "\ndata: {\"type\":\"" type "\"" body "}\n\n"
#define MSTART    AEV("message_start", ",\"message\":{\"id\":\"m\","        \
    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"           \
    "\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}")
#define BSTART(i, block)                                                     \
    AEV("content_block_start", ",\"index\":" #i ",\"content_block\":" block)
#define BTEXT(i, t)                                                          \
    AEV("content_block_delta", ",\"index\":" #i ",\"delta\":{\"type\":"    \
        "\"text_delta\",\"text\":\"" t "\"}")
#define BJSON(i, t)                                                          \
    AEV("content_block_delta", ",\"index\":" #i ",\"delta\":{\"type\":"    \
        "\"input_json_delta\",\"partial_json\":\"" t "\"}")
#define BSTOP(i)  AEV("content_block_stop", ",\"index\":" #i)
#define MDELTA    AEV("message_delta", ",\"delta\":{\"stop_reason\":"       \
    "\"end_turn\"},\"usage\":{\"output_tokens\":3}")
#define MSTOP     AEV("message_stop", "")

#define REV(type, body)                                                      \
    "event: " type "\ndata: {\"type\":\"" type "\"" body "}\n\n"
#define RCREATED  REV("response.created", ",\"response\":{\"id\":\"r\"}")
#define RADDED(i) REV("response.output_item.added", ",\"output_index\":" #i \
    ",\"item\":{\"type\":\"message\"}")
#define RDELTA(i) REV("response.output_text.delta", ",\"output_index\":" #i \
    ",\"content_index\":0,\"delta\":\"x\"")
#define RDONE(i)  REV("response.output_item.done", ",\"output_index\":" #i \
    ",\"item\":{\"type\":\"message\"}")
#define RCOMPLETED REV("response.completed", ",\"response\":{\"id\":\"r\"," \
    "\"object\":\"response\",\"status\":\"completed\",\"output\":[]}")

static void
test_bad_streams(void)
{
    char                *res, err[256];
    llmc_stream_state_e  st;

    /* the inline helpers themselves make a valid stream */
    {
        const char *in = TEXT("a") TEXT("b") FIN "data: [DONE]\n\n";
        res = assemble(LLMC_API_CHAT, in, strlen(in), 0, 0, &st, err,
                       sizeof(err));
        is_int(st, LLMC_STREAM_DONE, "inline chat stream: DONE (%s)", err);
        free(res);
        in = MSTART BSTART(0, "{\"type\":\"text\",\"text\":\"\"}")
             BTEXT(0, "hi") BSTOP(0) MDELTA MSTOP;
        res = assemble(LLMC_API_MESSAGES, in, strlen(in), 0, 0, &st, err,
                       sizeof(err));
        is_int(st, LLMC_STREAM_DONE, "inline messages stream: DONE (%s)",
               err);
        free(res);
        in = RCREATED RADDED(0) RDELTA(0) RDONE(0) RCOMPLETED;
        res = assemble(LLMC_API_RESPONSES, in, strlen(in), 0, 0, &st, err,
                       sizeof(err));
        is_int(st, LLMC_STREAM_DONE, "inline responses stream: DONE (%s)",
               err);
        free(res);
    }

    /* OpenAI chat */
    bad(LLMC_API_CHAT, "malformed JSON", TEXT("a") "data: {\"id\":\n\n"
        FIN "data: [DONE]\n\n", "not JSON");
    bad(LLMC_API_CHAT, "data not an object", "data: [1,2]\n\n",
        "not a JSON object");
    bad(LLMC_API_CHAT, "[DONE] before finish_reason",
        TEXT("a") "data: [DONE]\n\n", "before a finish_reason");
    bad(LLMC_API_CHAT, "[DONE] alone", "data: [DONE]\n\n",
        "without a choice");
    bad(LLMC_API_CHAT, "content after finish_reason",
        TEXT("a") FIN TEXT("b") "data: [DONE]\n\n", "after finish_reason");
    bad(LLMC_API_CHAT, "data after [DONE]",
        TEXT("a") FIN "data: [DONE]\n\n" TEXT("b"), "after the end");
    bad(LLMC_API_CHAT, "error object", TEXT("a")
        "data: {\"error\":{\"message\":\"boom\"}}\n\n", "boom");
    bad(LLMC_API_CHAT, "event: error", TEXT("a")
        "event: error\ndata: {\"message\":\"x\"}\n\n", "error event");
    bad(LLMC_API_CHAT, "wrong object", "data: {\"object\":\"response\","
        "\"choices\":[]}\n\n", "unexpected object");
    bad(LLMC_API_CHAT, "choice without index",
        CHUNK("{\"delta\":{\"content\":\"a\"}}"), "without an index");
    bad(LLMC_API_CHAT, "choice index too large",
        CHUNK("{\"index\":100000,\"delta\":{}}"), "out of range");
    bad(LLMC_API_CHAT, "tool call without index",
        CHUNK("{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"x\"}]}}"),
        "without an index");
    {
        const char *in = TEXT("a") FIN "data: [DONE]\n\n: bye\n\n: end\n";

        res = assemble(LLMC_API_CHAT, in, strlen(in), 0, 0, &st, err,
                       sizeof(err));
        ok(res != NULL && st == LLMC_STREAM_DONE,
           "comments after [DONE] are fine (%s)", err);
        free(res);
    }
    bad(LLMC_API_CHAT, "partial event after [DONE]",
        TEXT("a") FIN "data: [DONE]\n\ndata: {", "after the terminal");
    bad(LLMC_API_CHAT, "audio output",
        CHUNK("{\"index\":0,\"delta\":{\"audio\":{\"id\":\"a\","
              "\"data\":\"AAAA\"}}}") FIN "data: [DONE]\n\n",
        "\"audio\" not a string");
    bad(LLMC_API_CHAT, "function_call not an object",
        CHUNK("{\"index\":0,\"delta\":{\"function_call\":\"f\"}}") FIN
        "data: [DONE]\n\n", "not a string");
    bad(LLMC_API_CHAT, "too many extra fields",
        CHUNK("{\"index\":0,\"delta\":{\"a\":\"1\",\"b\":\"1\","
              "\"c\":\"1\",\"d\":\"1\",\"e\":\"1\",\"f\":\"1\","
              "\"g\":\"1\",\"h\":\"1\",\"i\":\"1\"}}"), "too many");
    bad(LLMC_API_COMPLETIONS, "completions [DONE] first",
        "data: [DONE]\n\n", "without a choice");

    /* Anthropic */
    bad(LLMC_API_MESSAGES, "delta before message_start",
        BTEXT(0, "x"), "before message_start");
    bad(LLMC_API_MESSAGES, "delta before block start",
        MSTART BTEXT(0, "x"), "not open");
    bad(LLMC_API_MESSAGES, "block index skipped",
        MSTART BSTART(1, "{\"type\":\"text\",\"text\":\"\"}"),
        "out of order");
    bad(LLMC_API_MESSAGES, "delta for another index",
        MSTART BSTART(0, "{\"type\":\"text\",\"text\":\"\"}")
        BTEXT(1, "x"), "not open");
    bad(LLMC_API_MESSAGES, "text delta in a tool block",
        MSTART BSTART(0, "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
        "\"f\",\"input\":{}}") BTEXT(0, "x"), "unexpected delta");
    bad(LLMC_API_MESSAGES, "tool input not JSON",
        MSTART BSTART(0, "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
        "\"f\",\"input\":{}}") BJSON(0, "{\\\"a\\\":") BSTOP(0),
        "not JSON");
    bad(LLMC_API_MESSAGES, "tool input not an object",
        MSTART BSTART(0, "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
        "\"f\",\"input\":{}}") BJSON(0, "[1]") BSTOP(0), "not an object");
    bad(LLMC_API_MESSAGES, "message_stop without message_delta",
        MSTART BSTART(0, "{\"type\":\"text\",\"text\":\"\"}")
        BTEXT(0, "x") BSTOP(0) MSTOP, "before message_delta");
    bad(LLMC_API_MESSAGES, "message_delta inside a block",
        MSTART BSTART(0, "{\"type\":\"text\",\"text\":\"\"}") MDELTA,
        "inside a content block");
    bad(LLMC_API_MESSAGES, "two message_start", MSTART MSTART,
        "out of order");
    bad(LLMC_API_MESSAGES, "error event", MSTART
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
        "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        "Overloaded");
    bad(LLMC_API_MESSAGES, "data without a type", MSTART
        "event: x\ndata: {}\n\n", "without a type");
    bad(LLMC_API_MESSAGES, "event after message_stop",
        MSTART BSTART(0, "{\"type\":\"text\",\"text\":\"\"}") BTEXT(0, "x")
        BSTOP(0) MDELTA MSTOP AEV("ping", ""), "after the end");

    /* Responses */
    bad(LLMC_API_RESPONSES, "item before response.created", RADDED(0),
        "before response.created");
    bad(LLMC_API_RESPONSES, "delta before output_item.added",
        RCREATED RDELTA(0), "not open");
    bad(LLMC_API_RESPONSES, "output index skipped", RCREATED RADDED(1),
        "out of order");
    bad(LLMC_API_RESPONSES, "delta after output_item.done",
        RCREATED RADDED(0) RDONE(0) RDELTA(0), "not open");
    bad(LLMC_API_RESPONSES, "completed with an open item",
        RCREATED RADDED(0) RCOMPLETED, "before output_item.done");
    bad(LLMC_API_RESPONSES, "response.failed",
        RCREATED REV("response.failed", ",\"response\":{}"),
        "response.failed");
    bad(LLMC_API_RESPONSES, "completed without a response",
        RCREATED REV("response.completed", ""), "without a response");
    bad(LLMC_API_RESPONSES, "completed with an untyped item",
        RCREATED REV("response.completed", ",\"response\":{\"object\":"
        "\"response\",\"status\":\"completed\",\"output\":[{}]}"),
        "malformed");
    bad(LLMC_API_RESPONSES, "completed without an output array",
        RCREATED REV("response.completed", ",\"response\":{\"object\":"
        "\"response\",\"status\":\"completed\"}"), "malformed");
    bad(LLMC_API_RESPONSES, "completed without a status",
        RCREATED REV("response.completed", ",\"response\":{\"object\":"
        "\"response\",\"output\":[]}"), "status");
    /* a text part without its text would be stored and never replayed */
    bad(LLMC_API_RESPONSES, "a text part without text",
        RCREATED REV("response.completed", ",\"response\":{\"object\":"
        "\"response\",\"status\":\"completed\",\"output\":[{\"type\":"
        "\"message\",\"id\":\"m\",\"role\":\"assistant\",\"content\":"
        "[{\"type\":\"output_text\",\"dext\":\"x\"}]}]}"),
        "would not replay");
    bad(LLMC_API_MESSAGES, "message_start with another type",
        AEV("message_start", ",\"message\":{\"type\":\"other\"}"),
        "message_start");
}

/* logprobs arrays add up across chunks; a null in a later chunk does not
 * drop what came before */
/* one event may be most of the stream: bounded by max_bytes, not by the
 * SSE parser's default */
static void
test_big_event(void)
{
    char                *in, *res, err[256];
    size_t               n = 2 * 1024 * 1024, len;
    llmc_stream_state_e  st;
    const char          *head = "data: {\"id\":\"c\",\"object\":"
        "\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"";
    const char          *tail = "\"},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";

    in = malloc(strlen(head) + n + strlen(tail) + 1);
    strcpy(in, head);
    memset(in + strlen(head), 'a', n);
    strcpy(in + strlen(head) + n, tail);
    len = strlen(in);
    res = assemble(LLMC_API_CHAT, in, len, 65536, 0, &st, err, sizeof(err));
    ok(res != NULL && st == LLMC_STREAM_DONE,
       "a 2 MiB event without max_bytes (%s)", err);
    free(res);
    res = assemble(LLMC_API_CHAT, in, len, 65536, len - 100, &st, err,
                   sizeof(err));
    ok(res == NULL && st == LLMC_STREAM_FAILED, "over max_bytes (%s)", err);
    free(res);
    free(in);
}

static void
test_logprobs(void)
{
    const char          *in;
    char                *res, err[256];
    llmc_stream_state_e  st;
    json_t              *j;

    in = CHUNK("{\"index\":0,\"delta\":{\"content\":\"a\"},\"logprobs\":"
               "{\"content\":[{\"token\":\"a\",\"logprob\":-1}]}}")
         CHUNK("{\"index\":0,\"delta\":{\"content\":\"b\"},\"logprobs\":"
               "{\"content\":null}}")
         CHUNK("{\"index\":0,\"delta\":{\"content\":\"c\"},\"logprobs\":"
               "{\"content\":[{\"token\":\"c\",\"logprob\":-2}]}}")
         FIN "data: [DONE]\n\n";
    res = assemble(LLMC_API_CHAT, in, strlen(in), 0, 0, &st, err,
                   sizeof(err));
    j = load(res);
    is_str(jstr(j, "choices.0.message.content"), "abc", "content joined");
    is_int(json_array_size(jget(j, "choices.0.logprobs.content")), 2,
           "logprobs of both chunks kept across a null");
    is_str(jstr(j, "choices.0.logprobs.content.1.token"), "c",
           "in order");
    json_decref(j);
    free(res);
}

static void
test_api_misuse(void)
{
    char        err[256], *out;
    const char *body;
    size_t      len;

    ok(llmc_stream_new(LLMC_API_UNKNOWN, 0) == NULL,
       "no stream for an unknown api");

    out = llmc_stream_replay(LLMC_API_CHAT, "{", 1, 0, 0, &len, err,
                             sizeof(err));
    ok(out == NULL && strstr(err, "not JSON"), "replay: not JSON (%s)", err);
    out = llmc_stream_replay(LLMC_API_CHAT, "[]", 2, 0, 0, &len, err,
                             sizeof(err));
    ok(out == NULL && strstr(err, "object"), "replay: not an object (%s)",
       err);
    out = llmc_stream_replay(LLMC_API_MESSAGES,
                             "{\"object\":\"chat.completion\"}", 28, 0, 0,
                             &len, err, sizeof(err));
    ok(out == NULL && strstr(err, "message"),
       "replay: a chat body for messages (%s)", err);
    out = llmc_stream_replay(LLMC_API_CHAT,
                             "{\"object\":\"chat.completion\"}", 28, 0, 0,
                             &len, err, sizeof(err));
    ok(out == NULL && strstr(err, "choices"), "replay: no choices (%s)",
       err);
    out = llmc_stream_replay(LLMC_API_MESSAGES,
                             "{\"type\":\"message\",\"content\":[]}", 31, 0,
                             0, &len, err, sizeof(err));
    ok(out == NULL && strstr(err, "finished"),
       "replay: a message without stop_reason (%s)", err);
    body = "{\"object\":\"response\",\"status\":\"failed\","
           "\"output\":[]}";
    out = llmc_stream_replay(LLMC_API_RESPONSES, body, strlen(body), 0, 0,
                             &len, err, sizeof(err));
    ok(out == NULL && strstr(err, "completed"),
       "replay: a failed response (%s)", err);
    out = llmc_stream_replay(LLMC_API_UNKNOWN, "{}", 2, 0, 0, &len, err,
                             sizeof(err));
    ok(out == NULL && strstr(err, "unknown api"), "replay: unknown api");
}

static void
test_replay_shape(void)
{
    char        *res, *sse, err[256], *p;
    size_t       len;
    int          n;
    llmc_stream_state_e st;

    /* chat: a role chunk, several content chunks, finish, usage, [DONE] */
    res = assemble_file(LLMC_API_CHAT, "chat.sse", &st, err, sizeof(err));
    if (res == NULL) {
        ok(0, "chat.sse assembles");
        return;
    }
    sse = llmc_stream_replay(LLMC_API_CHAT, res, strlen(res), 1, 4, &len,
                             err, sizeof(err));
    ok(sse != NULL, "chat replays");
    if (sse != NULL) {
        ok(strncmp(sse, "data: {", 7) == 0 && strstr(sse, "\"role\":"
           "\"assistant\"") != NULL && strstr(sse, "\"role\"")
           < strstr(sse, "\"content\":\"mock"), "role chunk first");
        for (n = 0, p = sse; (p = strstr(p, "\"content\":\"")); p++) {
            n++;
        }
        ok(n > 3, "content in several chunks (%d)", n);
        p = strstr(sse, "\"choices\":[]");
        ok(p != NULL && strstr(sse, "\"finish_reason\":\"stop\"") < p,
           "the usage chunk after the finish chunk");
        ok(len > 14 && strcmp(sse + len - 14, "data: [DONE]\n\n") == 0,
           "ends with data: [DONE]");
        free(sse);
    }
    free(res);

    /* Anthropic event order */
    res = assemble_file(LLMC_API_MESSAGES, "messages-thinking.sse", &st, err,
                        sizeof(err));
    sse = res ? llmc_stream_replay(LLMC_API_MESSAGES, res, strlen(res), 0,
                                   0, &len, err, sizeof(err)) : NULL;
    ok(sse != NULL, "messages replay");
    if (sse != NULL) {
        static const char *order[] = { "event: message_start\n",
            "event: content_block_start\n", "\"thinking_delta\"",
            "\"signature_delta\"", "event: content_block_stop\n",
            "\"citations_delta\"", "\"text_delta\"", "\"input_json_delta\"",
            "event: message_delta\n", "event: message_stop\n" };
        const char *at = sse;
        size_t      i;

        for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
            p = strstr(at, order[i]);
            if (p == NULL) {
                break;
            }
            at = p;
        }
        is_int(i, sizeof(order) / sizeof(order[0]),
               "Anthropic events in the documented order");
        free(sse);
    }
    free(res);

    /* Responses event names */
    res = assemble_file(LLMC_API_RESPONSES, "responses.sse", &st, err,
                        sizeof(err));
    sse = res ? llmc_stream_replay(LLMC_API_RESPONSES, res, strlen(res), 0,
                                   3, &len, err, sizeof(err)) : NULL;
    ok(sse != NULL, "responses replay");
    if (sse != NULL) {
        static const char *order[] = { "event: response.created\n",
            "event: response.in_progress\n",
            "event: response.output_item.added\n",
            "event: response.content_part.added\n",
            "event: response.output_text.delta\n",
            "event: response.output_text.done\n",
            "event: response.content_part.done\n",
            "event: response.output_item.done\n",
            "event: response.completed\n" };
        const char *at = sse;
        size_t      i;

        for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
            p = strstr(at, order[i]);
            if (p == NULL) {
                break;
            }
            at = p;
        }
        is_int(i, sizeof(order) / sizeof(order[0]),
               "Responses events in the documented order");
        ok(strstr(sse, "\"sequence_number\":0") != NULL,
           "sequence numbers from 0");
        free(sse);
    }
    free(res);

    /* multi-byte characters are never cut */
    {
        const char *body = "{\"object\":\"chat.completion\",\"id\":\"x\","
            "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
            "\"content\":\"ééé☃☃☃\"},\"finish_reason\":\"stop\"}]}";
        json_t     *a, *b;

        sse = llmc_stream_replay(LLMC_API_CHAT, body, strlen(body), 0, 1,
                                 &len, err, sizeof(err));
        ok(sse && strstr(sse, "\"content\":\"é\"")
           && strstr(sse, "\"content\":\"☃\""), "one code point per chunk");
        res = sse ? assemble(LLMC_API_CHAT, sse, len, 0, 0, &st, err,
                             sizeof(err)) : NULL;
        a = load(res);
        is_str(jstr(a, "choices.0.message.content"), "ééé☃☃☃",
               "re-assembled intact");
        b = load(body);
        ok(a && b, "loaded");
        json_decref(a);
        json_decref(b);
        free(res);
        free(sse);
    }
}

/* text with every kind of escape, and the replay's own piece marker in the
 * stored values, survive replay + assembly in every format */
static void
test_replay_escapes(void)
{
    static const struct { llmc_api_e api; const char *body, *path; } t[] = {
        { LLMC_API_CHAT, "{\"object\":\"chat.completion\",\"id\":"
          "\"@@llmc-piece@@\",\"model\":\"\\\"@@llmc-piece@@\\\"\","
          "\"choices\":[{\"index\":0,\"message\":{\"role\":"
          "\"assistant\",\"content\":\"%s\"},\"finish_reason\":"
          "\"stop\"}]}", "choices.0.message.content" },
        { LLMC_API_COMPLETIONS, "{\"object\":\"text_completion\",\"id\":"
          "\"@@llmc-piece@@\",\"choices\":[{\"index\":0,\"text\":"
          "\"%s\",\"finish_reason\":\"stop\"}]}", "choices.0.text" },
        { LLMC_API_RESPONSES, "{\"object\":\"response\",\"id\":"
          "\"@@llmc-piece@@\",\"status\":\"completed\",\"output\":[{"
          "\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\","
          "\"content\":[{\"type\":\"output_text\",\"text\":\"%s\","
          "\"annotations\":[]}]}]}", "output.0.content.0.text" },
        { LLMC_API_MESSAGES, "{\"type\":\"message\",\"id\":"
          "\"@@llmc-piece@@\",\"role\":\"assistant\",\"content\":[{"
          "\"type\":\"text\",\"text\":\"%s\"}],\"stop_reason\":"
          "\"end_turn\"}", "content.0.text" },
    };
    static const char  text[] = "q\\\"b\\\\ n\\n r\\r t\\t"
        " \\u0000 \\u0001 \\u001f / \\u2028 \\ud83d\\ude00 @@llmc-piece@@";
    char                 body[2048], *sse, *res, err[256];
    size_t               i, len, chunk;
    llmc_stream_state_e  st;
    json_t              *a, *b;
    int                  same;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        snprintf(body, sizeof(body), t[i].body, text);
        b = load(body);
        ok(b != NULL, "escapes %zu: the stored body is JSON", i);
        same = 1;
        for (chunk = 1; chunk <= 40; chunk += 13) {
            sse = llmc_stream_replay(t[i].api, body, strlen(body), 1, chunk,
                                     &len, err, sizeof(err));
            res = sse ? assemble(t[i].api, sse, len, 0, 0, &st, err,
                                 sizeof(err)) : NULL;
            a = load(res);
            if (a == NULL || b == NULL
                || !json_equal(jget(a, t[i].path), jget(b, t[i].path))
                || !json_equal(jget(a, "id"), jget(b, "id")))
            {
                same = 0;
                printf("#   chunk %zu: %s\n", chunk, res ? res : err);
            }
            json_decref(a);
            free(res);
            free(sse);
        }
        ok(same, "escapes %zu: text and ids intact at every chunk size", i);
        json_decref(b);
    }
}

/* every event's data is written exactly as jansson writes that JSON
 * (compact, keys in order): integers at both ends, reals, empty and nested
 * containers, escapes, non-ASCII, a NUL */
static void
test_replay_bytes(void)
{
    static const char  body[] =
        "{\"id\":\"c-1\",\"object\":\"chat.completion\",\"created\":"
        "-9223372036854775808,\"model\":\"m/\\u00e9\\u2028\","
        "\"system_fingerprint\":null,\"choices\":[{\"index\":7,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"a\\u0000b"
        "\\u001f\\\"\\\\\",\"annotations\":[{\"n\":9223372036854775807,"
        "\"r\":[0.1,-2.5e-300,1e22,3.0],\"e\":{},\"l\":[[],[{}]],"
        "\"t\":true,\"f\":false,\"z\":null,\"\\n\":\"\\t\"}],"
        "\"audio\":{\"id\":\"au\",\"expires_at\":0,\"w\":-1}},"
        "\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":"
        "-0.000123,\"bytes\":[97]}]},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}";
    char    *sse, *p, *nl, *js, err[256];
    size_t   len, events = 0;
    json_t  *v;
    int      same = 1;

    sse = llmc_stream_replay(LLMC_API_CHAT, body, sizeof(body) - 1, 1, 3,
                             &len, err, sizeof(err));
    ok(sse != NULL, "bytes: replays (%s)", sse ? "" : err);
    if (sse == NULL) {
        return;
    }
    for (p = sse; (p = strstr(p, "data: {")) != NULL; p = nl) {
        p += 6;
        nl = strchr(p, '\n');
        v = json_loadb(p, nl - p, JSON_ALLOW_NUL, NULL);
        js = v ? json_dumps(v, JSON_COMPACT) : NULL;
        if (js == NULL || strlen(js) != (size_t) (nl - p)
            || memcmp(js, p, nl - p) != 0)
        {
            same = 0;
            printf("#   %.*s\n#   %s\n", (int) (nl - p), p,
                   js ? js : "(not JSON)");
        }
        free(js);
        json_decref(v);
        events++;
    }
    ok(same && events >= 7, "bytes: %zu events, each as jansson writes it",
       events);
    ok(strstr(sse, "\"created\":-9223372036854775808,") != NULL
       && strstr(sse, "\"n\":9223372036854775807,") != NULL
       && strstr(sse, "\"r\":[0.10000000000000001,-2.5e-300,1e22,3.0]")
          != NULL
       && strstr(sse, "\"a\\u0000b\"") != NULL
       && strstr(sse, "\"\\u001F\\\"\\\\\"") != NULL,
       "bytes: extreme integers, reals and escapes as written");
    free(sse);
}

/* the replay from the stored text writes what the replay from jansson's
 * tree writes, byte for byte, and takes the usual chat answers */
static void
test_replay_text(void)
{
    static const struct {
        int          text;      /* 1: the text path takes it */
        const char  *body;
        llmc_api_e   api;
    } t[] = {
        { 1, "{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":1,"
             "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{"
             "\"role\":\"assistant\",\"content\":\"Hello there, a longer "
             "answer than one piece\"},\"finish_reason\":\"stop\"}]}",
          LLMC_API_CHAT },
        /* pretty-printed, escapes to canonicalize, keys in another order */
        { 1, "{\n  \"choices\" : [ {\n    \"message\" : { \"content\" : "
             "\"caf\\u00e9 \\/ \\ud83d\\ude00 \\u0041\\u001f\\u0000 \\\"q\\\""
             " \\b\\f\\n\\r\\t\" , \"role\" : \"assistant\" } ,\n    "
             "\"finish_reason\" : null , \"index\" : 3 , \"logprobs\" : "
             "{ \"content\" : [ ] , \"n\" : -12 }\n  } ] ,\n  \"object\" : "
             "\"chat.completion\" ,\n  \"model\" : \"gpt\\u002d4o\" ,\n  "
             "\"usage\" : { \"prompt_tokens\" : 10 , \"x\" : [ true , false"
             " , null , { } , [ ] ] }\n}\n", LLMC_API_CHAT },
        /* no id, two choices, no index, role not a string, content null,
         * refusals, annotations, an unknown null field, extra members */
        { 1, "{\"object\":\"chat.completion\",\"extra\":{\"a\":[1,2]},"
             "\"system_fingerprint\":null,\"service_tier\":\"default\","
             "\"choices\":[{\"message\":{\"role\":7,\"content\":null,"
             "\"refusal\":\"\",\"annotations\":[],\"audio\":null,"
             "\"tool_calls\":[]}},{\"index\":\"1\",\"message\":{"
             "\"content\":\"\",\"refusal\":\"I can't help with that.\","
             "\"annotations\":[{\"type\":\"url_citation\",\"url_citation\":"
             "{\"start_index\":0,\"end_index\":5,\"url\":\"https://x\"}}]},"
             "\"finish_reason\":\"content_filter\",\"other\":1}],"
             "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":0}}",
          LLMC_API_CHAT },
        { 1, "{\"object\":\"chat.completion\",\"choices\":[],"
             "\"usage\":7}", LLMC_API_CHAT },
        { 1, "{\"object\":\"chat.completion\",\"created\":-9223372036854775,"
             "\"choices\":[{\"message\":{\"content\":\"\"}}]}",
          LLMC_API_CHAT },
        /* left to the tree: it replays them or says why not */
        { 0, "{\"object\":\"chat.completion\",\"choices\":[{\"message\":{"
             "\"content\":\"a\"},\"logprobs\":{\"x\":0.5}}]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[{\"message\":{"
             "\"content\":null,\"tool_calls\":[{\"id\":\"t\",\"type\":"
             "\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
             "\"{}\"}}]}}]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[{\"message\":{"
             "\"content\":\"a\",\"audio\":{\"id\":\"au\"}}}]}",
          LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[{\"message\":{"
             "\"content\":\"a\",\"\\u0061udio\":null}}]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[{\"message\":{"
             "\"content\":\"a\"},\"x\":{\"k\":1,\"k\":2}}]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"created\":-0,"
             "\"choices\":[]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"created\":0123,"
             "\"choices\":[]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"created\":"
             "1234567890123456789,\"choices\":[]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"id\":\"\\ud800\","
             "\"choices\":[]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"id\":\"\xc3\x28\","
             "\"choices\":[]}", LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[]} x",
          LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[],}",
          LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[{}]}",
          LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[1]}",
          LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":{}}",
          LLMC_API_CHAT },
        { 0, "{\"object\":\"text_completion\",\"choices\":[]}",
          LLMC_API_CHAT },
        { 0, "{\"object\":\"chat.completion\",\"choices\":[],\"x\":"
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]"
             "]]]]]]]]]]]]]}", LLMC_API_CHAT },
        { 0, "[]", LLMC_API_CHAT },
        { 0, "", LLMC_API_CHAT },
        /* Anthropic messages */
        { 1, "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
             "\"model\":\"claude\",\"content\":[{\"type\":\"text\",\"text\":"
             "\"Hello there, a longer answer than one piece\"}],"
             "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":"
             "{\"input_tokens\":10,\"output_tokens\":5}}", LLMC_API_MESSAGES },
        { 1, "{ \"content\" : [ { \"citations\" : [ { \"type\" : "
             "\"char_location\" , \"cited_text\" : \"caf\\u00e9\" , "
             "\"start_char_index\" : 0 } , { } ] , \"type\" : \"text\" , "
             "\"text\" : \"one \\ud83d\\ude00 \\n\\\"two\\\"\" } , "
             "{ \"type\" : "
             "\"text\" , \"text\" : \"\" , \"citations\" : null , \"x\" : 1 } "
             "] ,\n \"type\" : \"message\" , \"stop_reason\" : "
             "\"stop_sequence\""
             " , \"stop_sequence\" : \"\\u0041\" }\n", LLMC_API_MESSAGES },
        { 1, "{\"type\":\"message\",\"content\":[],\"stop_reason\":"
             "\"max_tokens\",\"usage\":null}", LLMC_API_MESSAGES },
        { 0, "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\","
             "\"id\":\"t\",\"name\":\"f\",\"input\":{\"a\":1}}],"
             "\"stop_reason\":\"tool_use\"}", LLMC_API_MESSAGES },
        { 0, "{\"type\":\"message\",\"content\":[{\"type\":\"thinking\","
             "\"thinking\":\"hm\",\"signature\":\"s\"},{\"type\":\"text\","
             "\"text\":\"a\"}],\"stop_reason\":\"end_turn\"}",
          LLMC_API_MESSAGES },
        { 0, "{\"type\":\"message\",\"content\":[{\"type\":\"text\"}],"
             "\"stop_reason\":\"end_turn\"}", LLMC_API_MESSAGES },
        { 0, "{\"type\":\"message\",\"content\":[],\"stop_reason\":null}",
          LLMC_API_MESSAGES },
        { 0, "{\"type\":\"msg\",\"content\":[],\"stop_reason\":\"x\"}",
          LLMC_API_MESSAGES },
        { 0, "{\"type\":\"message\",\"content\":[],\"stop_reason\":\"x\","
             "\"usage\":{\"cost\":0.5}}", LLMC_API_MESSAGES },
        { 0, "{\"type\":\"message\",\"content\":[1],\"stop_reason\":\"x\"}",
          LLMC_API_MESSAGES },
    };
    char    *any, *tree, *text, err[256], err2[256];
    size_t   i, any_len, tree_len, text_len, chunk;
    int         usage, same, taken;
    llmc_api_e  api;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        api = t[i].api;
        same = 1;
        taken = 1;
        for (usage = 0; usage <= 1; usage++) {
            for (chunk = 1; chunk <= 21; chunk += 10) {
                any_len = tree_len = text_len = 0;
                any = llmc_stream_replay_by(LLMC_REPLAY_ANY, api,
                                            t[i].body, strlen(t[i].body),
                                            usage, chunk, &any_len, err,
                                            sizeof(err));
                tree = llmc_stream_replay_by(LLMC_REPLAY_TREE, api,
                                             t[i].body, strlen(t[i].body),
                                             usage, chunk, &tree_len, err2,
                                             sizeof(err2));
                text = llmc_stream_replay_by(LLMC_REPLAY_TEXT, api,
                                             t[i].body, strlen(t[i].body),
                                             usage, chunk, &text_len, err,
                                             sizeof(err));
                if ((any == NULL) != (tree == NULL)
                    || (any != NULL && (any_len != tree_len
                                        || memcmp(any, tree, any_len) != 0))
                    || (text != NULL
                        && (tree == NULL || text_len != tree_len
                            || memcmp(text, tree, text_len) != 0)))
                {
                    same = 0;
                    printf("#   usage %d chunk %zu\n#   text: %s\n"
                           "#   tree: %s\n", usage, chunk,
                           text ? text : err, tree ? tree : err2);
                }
                if (text == NULL) {
                    taken = 0;
                }
                free(any);
                free(tree);
                free(text);
            }
        }
        ok(same, "text replay %zu: the same bytes as the tree's", i);
        if (i == 2) {
            tree = llmc_stream_replay_by(LLMC_REPLAY_TREE, LLMC_API_CHAT,
                                         t[i].body, strlen(t[i].body), 0, 0,
                                         NULL, err, sizeof(err));
            ok(tree != NULL && strstr(tree, "\"role\":\"assistant\","
                                      "\"content\":null,\"refusal\":null}")
               != NULL, "text replay %zu: content null, refusal null", i);
            free(tree);
        }
        ok(taken == t[i].text, "text replay %zu: %s", i,
           t[i].text ? "written from the text" : "left to the tree");
    }
}

/* jansson's n-th allocation fails (n < 0: none); counts them.  Not inside
 * json_loadb() and json_dumps(): jansson 2.14 loses bytes there when an
 * allocation fails and still succeeds (its lexer drops a character of a
 * string, its dumper a quote of a key), which no caller can detect. */
static long  alloc_fail, alloc_count;
static int   in_parser;

static void *
failing_malloc(size_t size)
{
    if (in_parser) {
        return malloc(size);
    }
    if (alloc_count++ == alloc_fail) {
        return NULL;
    }
    return malloc(size);
}

json_t *
json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err)
{
    static json_t  *(*real)(const char *, size_t, size_t, json_error_t *);
    json_t         *j;

    if (real == NULL) {
        *(void **) &real = dlsym(RTLD_NEXT, "json_loadb");
        if (real == NULL) {
            abort();
        }
    }
    in_parser++;
    j = real(buf, len, flags, err);
    in_parser--;
    return j;
}

char *
json_dumps(const json_t *json, size_t flags)
{
    static char  *(*real)(const json_t *, size_t);
    char         *out;

    if (real == NULL) {
        *(void **) &real = dlsym(RTLD_NEXT, "json_dumps");
        if (real == NULL) {
            abort();
        }
    }
    in_parser++;
    out = real(json, flags);
    in_parser--;
    return out;
}

/* one allocation failing anywhere in assembly or replay gives no result,
 * never a wrong one, and leaks nothing (valgrind) */
static void
test_out_of_memory(void)
{
    static const struct { const char *name; llmc_api_e api; } t[] = {
        { "chat-tools2.sse", LLMC_API_CHAT },
        { "chat-reasoning.sse", LLMC_API_CHAT },
        { "chat-refusal.sse", LLMC_API_CHAT },
        { "chat-function-call.sse", LLMC_API_CHAT },
        { "completions.sse", LLMC_API_COMPLETIONS },
        { "responses-tool.sse", LLMC_API_RESPONSES },
        { "responses.sse", LLMC_API_RESPONSES },
        { "messages-thinking.sse", LLMC_API_MESSAGES },
    };
    char                *in, *want, *got, *sse_want, *sse, err[256];
    size_t               i, len, slen, glen;
    long                 n, na, nr;
    int                  wrong, failed;
    llmc_stream_state_e  st;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        in = slurp(t[i].name, &len);
        json_set_alloc_funcs(failing_malloc, free);
        alloc_fail = -1;
        alloc_count = 0;
        want = in ? assemble(t[i].api, in, len, 0, 0, &st, err, sizeof(err))
                  : NULL;
        na = alloc_count;
        alloc_count = 0;
        sse_want = want ? llmc_stream_replay(t[i].api, want, strlen(want),
                                             1, 4, &slen, err, sizeof(err))
                        : NULL;
        nr = alloc_count;
        if (sse_want == NULL) {
            json_set_alloc_funcs(malloc, free);
            ok(0, "%s: assembles and replays", t[i].name);
            free(in);
            free(want);
            continue;
        }

        wrong = failed = 0;
        for (n = 0; n < na || n < nr; n++) {
            if (n < na) {
                alloc_fail = n;
                alloc_count = 0;
                got = assemble(t[i].api, in, len, 0, 0, &st, err,
                               sizeof(err));
                if (got != NULL) {
                    if (strcmp(got, want) != 0 && wrong++ == 0) {
                        printf("#   allocation %ld failing, assembled: "
                               "%s\n", n, got);
                    }
                } else {
                    failed++;
                }
                free(got);
            }
            if (n < nr) {
                alloc_fail = n;
                alloc_count = 0;
                sse = llmc_stream_replay(t[i].api, want, strlen(want), 1, 4,
                                         &glen, err, sizeof(err));
                if (sse != NULL) {
                    if ((glen != slen || memcmp(sse, sse_want, slen) != 0)
                        && wrong++ == 0)
                    {
                        printf("#   allocation %ld failing, replayed: "
                               "%.300s\n", n, sse);
                    }
                } else {
                    failed++;
                }
                free(sse);
            }
        }
        json_set_alloc_funcs(malloc, free);
        ok(wrong == 0 && failed > 0, "%s: each of %ld (assembly) and %ld "
           "(replay) allocations failing in turn: %d without a result, "
           "%d wrong", t[i].name, na, nr, failed, wrong);
        free(in);
        free(want);
        free(sse_want);
    }
}

static void
test_usage(void)
{
    llmc_usage_t  u;
    const char   *s;

    s = "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    ok(llmc_stream_wants_usage(s, strlen(s)) == 1, "include_usage: true");
    s = "{\"stream\":true,\"stream_options\":{\"include_usage\":1}}";
    ok(llmc_stream_wants_usage(s, strlen(s)) == 0, "include_usage: 1 is "
       "not true");
    s = "{\"stream\":true}";
    ok(llmc_stream_wants_usage(s, strlen(s)) == 0, "no stream_options");
    s = "{\"stream_options\":{\"include_usage\":true}";
    ok(llmc_stream_wants_usage(s, strlen(s)) == 0, "invalid JSON");

    s = "{\"usage\":{\"prompt_tokens\":2000,\"completion_tokens\":50,"
        "\"prompt_tokens_details\":{\"cached_tokens\":1536}}}";
    ok(llmc_usage_parse(LLMC_API_CHAT, s, strlen(s), &u) == 0
       && u.input == 464 && u.cached == 1536 && u.output == 50
       && u.cache_write_5m == 0, "chat usage: input excludes cached");

    s = "{\"usage\":{\"input_tokens\":300,\"input_tokens_details\":"
        "{\"cached_tokens\":128},\"output_tokens\":9}}";
    ok(llmc_usage_parse(LLMC_API_RESPONSES, s, strlen(s), &u) == 0
       && u.input == 172 && u.cached == 128 && u.output == 9,
       "responses usage");

    s = "{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":4000,"
        "\"cache_creation_input_tokens\":3000,\"cache_creation\":{"
        "\"ephemeral_5m_input_tokens\":1000,\"ephemeral_1h_input_tokens\":"
        "2000},\"output_tokens\":77}}";
    ok(llmc_usage_parse(LLMC_API_MESSAGES, s, strlen(s), &u) == 0
       && u.input == 10 && u.cached == 4000 && u.cache_write_5m == 1000
       && u.cache_write_1h == 2000 && u.output == 77,
       "messages usage with the TTL split");

    s = "{\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":"
        "3000,\"output_tokens\":7}}";
    ok(llmc_usage_parse(LLMC_API_MESSAGES, s, strlen(s), &u) == 0
       && u.cache_write_5m == 3000 && u.cache_write_1h == 0,
       "messages usage without the split counts as 5m");

    ok(llmc_usage_parse(LLMC_API_CHAT, "{", 1, &u) == -1 && u.output == 0,
       "usage: bad JSON");
    s = "{\"choices\":[]}";
    ok(llmc_usage_parse(LLMC_API_CHAT, s, strlen(s), &u) == -1,
       "usage: none");
    s = "{\"usage\":{}}";
    ok(llmc_usage_parse(LLMC_API_UNKNOWN, s, strlen(s), &u) == -1,
       "usage: unknown api");
}

int
main(int argc, char **argv)
{
    (void) argc;
    find_datadir(argv[0]);
    test_captures();
    test_every_split();
    test_crlf_comments();
    test_hand_written();
    test_other_fields();
    test_not_finished();
    test_bad_streams();
    test_logprobs();
    test_big_event();
    test_api_misuse();
    test_replay_shape();
    test_replay_escapes();
    test_replay_bytes();
    test_replay_text();
    test_out_of_memory();
    test_usage();
    return done_testing();
}
