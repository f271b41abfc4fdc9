/*
 * The OpenAI request decoding, response shapes, the outgoing text filter
 * (split UTF-8, stop strings) and the metrics text.
 */

#include <jansson.h>

#include "tap.h"
#include "api.h"

static int
parse(api_endpoint_e ep, const char *body, api_request_t *req,
      api_error_t *err)
{
    return api_request_parse(ep, body, strlen(body), req, err);
}

static void
bad(api_endpoint_e ep, const char *body, const char *param, const char *name)
{
    api_request_t  req;
    api_error_t    err;
    int            rc;

    memset(&err, 0, sizeof(err));
    rc = parse(ep, body, &req, &err);
    ok(rc == -1 && err.status == 400 && err.message[0] != '\0',
       "%s -> 400 (%s)", name, err.message);
    if (param != NULL) {
        is_str(err.param, param, "%s: param", name);
    }
}

static void
test_route(void)
{
    api_endpoint_e  ep;
    api_error_t     err;

    is_int(api_route("POST", "/v1/completions", &ep, &err), 0, "route");
    is_int(ep, API_EP_COMPLETIONS, "route: completions");
    is_int(api_route("POST", "/v1/chat/completions", &ep, &err), 0,
           "route chat");
    is_int(ep, API_EP_CHAT, "route: chat");
    is_int(api_route("GET", "/metrics", &ep, &err), 0, "route metrics");
    is_int(api_route("HEAD", "/health", &ep, &err), 0, "HEAD on a GET");
    is_int(api_route("GET", "/v1/embeddings", &ep, &err), 405, "405");
    is_int(err.status, 405, "405 status in err");
    is_int(ep, API_EP_EMBEDDINGS, "405 still names the endpoint");
    is_int(api_route("GET", "/v1/completion", &ep, &err), 404, "404");
    is_int(ep, API_EP_OTHER, "404 endpoint other");
    is_str(api_endpoint_name(API_EP_CHAT), "/v1/chat/completions", "name");

    is_int(api_route("POST", "/v1/schemas", &ep, &err), 0, "POST schemas");
    is_int(ep, API_EP_SCHEMAS, "route: schemas");
    is_int(api_route("GET", "/v1/schemas", &ep, &err), 0, "GET schemas");
    is_int(api_route("DELETE", "/v1/schemas", &ep, &err), 405,
           "DELETE on the list: 405");
    is_int(api_route("DELETE", "/v1/schemas/doc-qa", &ep, &err), 0,
           "DELETE one schema");
    is_int(ep, API_EP_SCHEMA, "route: one schema");
    is_str(api_schema_name("/v1/schemas/doc-qa"), "doc-qa", "schema name");
    is_int(api_route("POST", "/v1/schemas/doc-qa", &ep, &err), 405,
           "POST on one schema: 405");
    ok(api_schema_name("/v1/schemas/") == NULL
       && api_schema_name("/v1/schemas/a/b") == NULL
       && api_schema_name("/v1/schemasx") == NULL, "no schema name in bad "
       "paths");
    is_int(api_route("DELETE", "/v1/schemas/a/b", &ep, &err), 404,
           "a nested path is 404");
}

static void
test_completions(void)
{
    api_request_t  req;
    api_error_t    err;

    is_int(parse(API_EP_COMPLETIONS, "{\"prompt\":\"hi\"}", &req, &err), 0,
           "minimal completion");
    is_str(req.prompt, "hi", "prompt");
    is_int(req.max_tokens, -1, "max_tokens not given");
    ok(req.temperature == 1.0f && req.top_p == 1.0f && req.top_k == 0,
       "sampling defaults");
    ok(!req.stream && !req.include_usage && !req.has_seed, "flags off");
    is_int(req.cache, 1, "the prompt cache is on by default");
    api_request_free(&req);

    is_int(parse(API_EP_COMPLETIONS, "{\"prompt\":\"hi\",\"cache\":false}",
                 &req, &err), 0, "cache: false");
    is_int(req.cache, 0, "the prompt cache is off");
    api_request_free(&req);
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"hi\",\"cache\":\"no\"}",
        "cache", "cache not a boolean");

    is_int(parse(API_EP_COMPLETIONS,
                 "{\"model\":\"m\",\"prompt\":[\"a\\u00e9\"],\"max_tokens\":7,"
                 "\"temperature\":0,\"top_p\":0.5,\"top_k\":3,\"seed\":9,"
                 "\"stop\":[\"x\",\"\",\"yz\"],\"stream\":true,"
                 "\"stream_options\":{\"include_usage\":true},\"n\":1,"
                 "\"echo\":false,\"logprobs\":null,\"user\":\"u\","
                 "\"unknown\":{\"deep\":[1]}}", &req, &err), 0,
           "every field");
    is_str(req.prompt, "a\xc3\xa9", "one-string prompt array, UTF-8");
    is_int(req.max_tokens, 7, "max_tokens");
    ok(req.temperature == 0.0f && req.top_p == 0.5f && req.top_k == 3,
       "sampling");
    ok(req.has_seed && req.seed == 9, "seed");
    is_int(req.n_stop, 2, "empty stop strings dropped");
    is_str(req.stop[1], "yz", "stop order");
    ok(req.stream && req.include_usage, "stream + include_usage");
    api_request_free(&req);

    is_int(parse(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"stop\":\"s\","
                 "\"max_tokens\":null}", &req, &err), 0, "stop string");
    is_int(req.n_stop, 1, "one stop");
    is_int(req.max_tokens, -1, "null max_tokens is absent");
    api_request_free(&req);

    bad(API_EP_COMPLETIONS, "", NULL, "empty body");
    bad(API_EP_COMPLETIONS, "{\"prompt\":", NULL, "truncated JSON");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"prompt\":\"b\"}", NULL,
        "duplicate key");
    bad(API_EP_COMPLETIONS, "[]", NULL, "array body");
    {
        api_error_t  e;
        char        *s;

        /* the parse error quotes invalid UTF-8 from the body */
        ok(parse(API_EP_COMPLETIONS, "{\"a\":\"\\u0\xca\x9a\"}", &req,
                 &e) == -1, "bad escape before invalid UTF-8");
        s = api_error_json(&e);
        ok(s != NULL && strstr(s, "\"message\":") != NULL,
           "the error JSON is still written: %s", s ? s : "(null)");
        free(s);
    }
    bad(API_EP_COMPLETIONS, "{}", "prompt", "no prompt");
    bad(API_EP_COMPLETIONS, "{\"prompt\":[1,2]}", "prompt", "token prompt");
    bad(API_EP_COMPLETIONS, "{\"prompt\":[\"a\",\"b\"]}", "prompt",
        "two prompts");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"model\":1}", "model",
        "model not a string");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"n\":2}", "n", "n 2");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"echo\":true}", "echo",
        "echo");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"best_of\":3}", "best_of",
        "best_of");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"suffix\":\"z\"}", "suffix",
        "suffix");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"logprobs\":2}", "logprobs",
        "logprobs");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"presence_penalty\":1}",
        "presence_penalty", "presence_penalty");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"logit_bias\":{\"1\":2}}",
        "logit_bias", "logit_bias");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"max_tokens\":0}",
        "max_tokens", "max_tokens 0");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"max_tokens\":1.5}",
        "max_tokens", "max_tokens 1.5");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"temperature\":\"1\"}",
        "temperature", "temperature a string");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"temperature\":2.5}",
        "temperature", "temperature 2.5");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"top_p\":-0.1}", "top_p",
        "top_p < 0");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"top_k\":-1}", "top_k",
        "top_k < 0");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"seed\":\"1\"}", "seed",
        "seed a string");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"stop\":[\"1\",\"2\",\"3\","
        "\"4\",\"5\"]}", "stop", "five stops");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"stop\":[1]}", "stop",
        "stop not a string");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"stream\":1}", "stream",
        "stream not a boolean");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"stream_options\":true}",
        "stream_options", "stream_options not an object");
    bad(API_EP_COMPLETIONS, "{\"prompt\":\"a\",\"stream_options\":"
        "{\"include_usage\":\"yes\"}}", "include_usage",
        "include_usage not a boolean");
    bad(API_EP_MODELS, "{}", NULL, "a body for /v1/models");
}

static void
test_chat(void)
{
    api_request_t  req;
    api_error_t    err;

    is_int(parse(API_EP_CHAT, "{\"messages\":[{\"role\":\"system\","
                 "\"content\":\"s\"},{\"role\":\"user\",\"content\":"
                 "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
                 "\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null}"
                 "],\"max_completion_tokens\":5}", &req, &err), 0,
           "chat");
    is_int(req.n_msgs, 3, "three messages");
    is_str(req.msgs[0].role, "system", "role");
    is_str(req.msgs[1].content, "ab", "text parts joined");
    is_str(req.msgs[2].content, "", "null content is empty");
    is_int(req.max_tokens, 5, "max_completion_tokens");
    api_request_free(&req);

    bad(API_EP_CHAT, "{}", "messages", "no messages");
    bad(API_EP_CHAT, "{\"messages\":[]}", "messages", "empty messages");
    bad(API_EP_CHAT, "{\"messages\":{}}", "messages", "messages object");
    bad(API_EP_CHAT, "{\"messages\":[\"hi\"]}", "messages",
        "message not an object");
    bad(API_EP_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages",
        "no role");
    bad(API_EP_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":1}]}",
        "messages", "content a number");
    bad(API_EP_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"image_url\"}]}]}", "messages", "image part");
    bad(API_EP_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
        "\"tools\":[{}]}", "tools", "tools");
    bad(API_EP_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
        "\"response_format\":{\"type\":\"json_object\"}}", "response_format",
        "json response_format");
}

static void
test_embeddings(void)
{
    api_request_t  req;
    api_error_t    err;

    is_int(parse(API_EP_EMBEDDINGS, "{\"input\":\"x\"}", &req, &err), 0,
           "one input");
    is_int(req.n_inputs, 1, "one");
    api_request_free(&req);
    is_int(parse(API_EP_EMBEDDINGS, "{\"input\":[\"x\",\"y\"],"
                 "\"encoding_format\":\"float\"}", &req, &err), 0,
           "two inputs");
    is_int(req.n_inputs, 2, "two");
    is_str(req.inputs[1], "y", "second");
    api_request_free(&req);
    bad(API_EP_EMBEDDINGS, "{}", "input", "no input");
    bad(API_EP_EMBEDDINGS, "{\"input\":[]}", "input", "empty input");
    bad(API_EP_EMBEDDINGS, "{\"input\":[[1,2]]}", "input", "token input");
    bad(API_EP_EMBEDDINGS, "{\"input\":\"x\",\"encoding_format\":"
        "\"base64\"}", "encoding_format", "base64");
    bad(API_EP_EMBEDDINGS, "{\"input\":\"x\",\"dimensions\":8}",
        "dimensions", "dimensions");
}

static void
test_responses(void)
{
    api_usage_t   u = { 3, 2, 0, 0, 0, 0 };
    api_error_t   e;
    char         *s;
    json_t       *j;
    float         v[4] = { 0.5f, 0.5f, 0.5f, 0.5f };

    s = api_completion_json(API_EP_CHAT, "chatcmpl-1", 7, "m", "a\xff" "b",
                            3, "stop", &u);
    j = json_loads(s, 0, NULL);
    ok(j != NULL, "chat response is JSON");
    is_str(json_string_value(json_object_get(j, "object")),
           "chat.completion", "chat object");
    is_str(json_string_value(json_object_get(json_object_get(
           json_array_get(json_object_get(j, "choices"), 0), "message"),
           "content")), "a\xef\xbf\xbd" "b", "invalid UTF-8 -> U+FFFD");
    is_int(json_integer_value(json_object_get(json_object_get(j, "usage"),
           "total_tokens")), 5, "total tokens");
    is_int(json_integer_value(json_object_get(json_object_get(
           json_object_get(j, "usage"), "prompt_tokens_details"),
           "cached_tokens")), 0, "cached tokens");
    json_decref(j);
    free(s);

    s = api_chunk_json(API_EP_CHAT, "c", 1, "m", "assistant", NULL, 0, NULL);
    ok(strstr(s, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}")
       != NULL, "role chunk: %s", s);
    free(s);
    s = api_chunk_json(API_EP_CHAT, "c", 1, "m", NULL, NULL, 0, "length");
    ok(strstr(s, "\"delta\":{}") && strstr(s, "\"finish_reason\":\"length\""),
       "finish chunk: %s", s);
    free(s);
    s = api_chunk_json(API_EP_COMPLETIONS, "c", 1, "m", NULL, "xy", 2, NULL);
    ok(strstr(s, "\"text\":\"xy\"") && strstr(s, "\"finish_reason\":null"),
       "completion chunk: %s", s);
    free(s);
    s = api_usage_chunk_json(API_EP_COMPLETIONS, "c", 1, "m", &u);
    ok(strstr(s, "\"choices\":[]") && strstr(s, "\"completion_tokens\":2"),
       "usage chunk: %s", s);
    free(s);

    s = api_finish_chunk_json(API_EP_COMPLETIONS, "c", 1, "m", "stop", &u);
    ok(strstr(s, "\"finish_reason\":\"stop\"") && !strstr(s, "timings"),
       "finish chunk without timings: %s", s);
    free(s);

    u.has_timings = 1;
    u.cached_tokens = 2;
    u.prefill_ms = 1.5;
    u.ttft_ms = 2.25;
    s = api_completion_json(API_EP_COMPLETIONS, "c", 1, "m", "x", 1, "stop",
                            &u);
    j = json_loads(s, 0, NULL);
    ok(json_real_value(json_object_get(json_object_get(j, "timings"),
       "ttft_ms")) == 2.25, "timings.ttft_ms: %s", s);
    is_int(json_integer_value(json_object_get(json_object_get(j, "timings"),
           "cached_tokens")), 2, "timings.cached_tokens");
    is_int(json_integer_value(json_object_get(json_object_get(
           json_object_get(j, "usage"), "prompt_tokens_details"),
           "cached_tokens")), 2, "usage cached tokens");
    json_decref(j);
    free(s);
    s = api_finish_chunk_json(API_EP_CHAT, "c", 1, "m", "stop", &u);
    ok(strstr(s, "\"timings\":{") && strstr(s, "\"prefill_ms\":1.5"),
       "finish chunk with timings: %s", s);
    free(s);
    s = api_usage_chunk_json(API_EP_CHAT, "c", 1, "m", &u);
    ok(strstr(s, "\"timings\":{") && strstr(s, "\"prompt_tokens\":3"),
       "usage chunk with timings: %s", s);
    free(s);

    {
        api_schema_mod_t  mods[2] = { { "", 3, 0, 10, 300, 1 },
                                      { "doc1", 7, 3, 10, 700, 0 } };
        api_schema_t      sc = { "qa", "scaffold", mods, 2, 10, 1000, 4.5,
                                 0 };

        s = api_schema_json(&sc);
        j = json_loads(s, 0, NULL);
        is_str(json_string_value(json_object_get(j, "name")), "qa",
               "schema name");
        is_str(json_string_value(json_object_get(json_array_get(
               json_object_get(j, "modules"), 1), "name")), "doc1",
               "module name");
        is_int(json_integer_value(json_object_get(json_array_get(
               json_object_get(j, "modules"), 1), "bytes")), 700,
               "module bytes");
        ok(json_is_false(json_object_get(json_array_get(
           json_object_get(j, "modules"), 1), "resident")), "evicted");
        json_decref(j);
        free(s);
        s = api_schemas_json(&sc, 1, 1 << 20, 1000, 100);
        j = json_loads(s, 0, NULL);
        is_int(json_integer_value(json_object_get(json_object_get(j, "kv"),
               "bytes_per_token")), 100, "bytes per token");
        is_int(json_array_size(json_object_get(j, "data")), 1, "one schema");
        json_decref(j);
        free(s);
    }

    s = api_embeddings_json("m", v, 1, 4, 3);
    j = json_loads(s, 0, NULL);
    is_int(json_array_size(json_object_get(json_array_get(
           json_object_get(j, "data"), 0), "embedding")), 4, "embedding dim");
    json_decref(j);
    free(s);

    api_error_set(&e, 400, "invalid_request_error", "n", NULL, "bad %d", 2);
    s = api_error_json(&e);
    is_str(s, "{\"error\":{\"message\":\"bad 2\",\"type\":"
           "\"invalid_request_error\",\"param\":\"n\",\"code\":null}}",
           "error JSON");
    free(s);
}

static void
test_utf8(void)
{
    is_int(api_utf8_complete("ab", 2), 2, "ASCII complete");
    is_int(api_utf8_complete("a\xc3", 2), 1, "cut 2-byte lead held back");
    is_int(api_utf8_complete("a\xc3\xa9", 3), 3, "2-byte complete");
    is_int(api_utf8_complete("a\xe2\x82", 3), 1, "cut 3-byte held back");
    is_int(api_utf8_complete("\xf0\x9f\x98", 3), 0, "cut 4-byte held back");
    is_int(api_utf8_complete("\xf0\x9f\x98\x80", 4), 4, "4-byte complete");
    is_int(api_utf8_complete("a\xff", 2), 2, "invalid byte not held");
    is_int(api_utf8_complete("a\x80", 2), 2, "stray continuation not held");
    is_int(api_utf8_complete("\xe0\x80", 2), 2, "overlong not held");
}

/* pushes pieces through the filter; returns what would be sent */
static void
run_textout(char *const *stop, int n_stop, const char *const *pieces,
            const char *want, int want_stopped, const char *name)
{
    api_textout_t  t;
    char           out[256];
    size_t         o = 0, r;
    int            i, held_ok = 1;

    api_textout_init(&t, stop, n_stop);
    for (i = 0; pieces[i] != NULL && !t.stopped; i++) {
        api_textout_push(&t, pieces[i], strlen(pieces[i]));
        r = api_textout_ready(&t, 0);
        memcpy(out + o, t.buf, r);
        o += r;
        api_textout_consume(&t, r);
        out[o] = '\0';
        if (api_utf8_complete(out, o) != o) {
            held_ok = 0;
        }
    }
    r = api_textout_ready(&t, 1);
    memcpy(out + o, t.buf, r);
    o += r;
    out[o] = '\0';
    ok(held_ok, "%s: nothing sent ends in a cut character", name);
    is_str(out, want, "%s: text", name);
    is_int(t.stopped, want_stopped, "%s: stopped", name);
    api_textout_free(&t);
}

static void
test_textout(void)
{
    char *stop1[] = { "END" };
    char *stop2[] = { "xyz", "yq" };
    const char *p1[] = { "ab", "cE", "N", "Dzz", NULL };
    const char *p2[] = { "E", "N", "E", "ND", NULL };
    const char *p3[] = { "aE", "Nb", NULL };
    const char *p4[] = { "\xe2", "\x82", "\xac", "!", NULL };
    const char *p5[] = { "ax", "y", "q", NULL };
    const char *p6[] = { "aEN", NULL };
    const char *p7[] = { "END", NULL };

    run_textout(stop1, 1, p1, "abc", 1, "stop across three tokens");
    run_textout(stop1, 1, p2, "EN", 1, "a false start before the stop");
    run_textout(stop1, 1, p3, "aENb", 0, "a prefix that does not complete");
    run_textout(NULL, 0, p4, "\xe2\x82\xac!", 0, "a split euro sign");
    run_textout(stop2, 2, p5, "ax", 1, "the earliest of two stops");
    run_textout(stop1, 1, p6, "aEN", 0, "a held prefix flushed at the end");
    run_textout(stop1, 1, p7, "", 1, "a stop at the very start");
}

static void
test_metrics(void)
{
    api_metrics_t  m;
    char          *s;

    memset(&m, 0, sizeof(m));
    api_metrics_count(&m, API_EP_CHAT, 200);
    api_metrics_count(&m, API_EP_CHAT, 200);
    api_metrics_count(&m, API_EP_OTHER, 404);
    api_metrics_count(&m, API_EP_COMPLETIONS, 418);
    m.generated_tokens = 12;
    m.pc_hits = 5;
    m.pc_prefix_tokens = 77;
    api_metrics_count(&m, API_EP_SCHEMA, 404);
    s = api_metrics_text(&m);
    ok(strstr(s, "llmcache_worker_pcache_hits_total 5\n") != NULL,
       "prompt cache hits");
    ok(strstr(s, "llmcache_worker_prefix_reused_tokens_total 77\n") != NULL,
       "prefix tokens");
    ok(strstr(s, "endpoint=\"/v1/schemas/{name}\",status=\"404\"} 1\n")
       != NULL, "schema endpoint counted");
    ok(strstr(s, "llmcache_worker_requests_total{endpoint=\"/v1/chat/"
              "completions\",status=\"200\"} 2\n") != NULL, "chat 200 x2");
    ok(strstr(s, "endpoint=\"other\",status=\"404\"} 1\n") != NULL,
       "404 on other");
    ok(strstr(s, "status=\"other\"} 1\n") != NULL, "unlisted status");
    ok(strstr(s, "llmcache_worker_generated_tokens_total 12\n") != NULL,
       "generated tokens");
    ok(strstr(s, "# TYPE llmcache_worker_decode_tokens_per_second gauge")
       != NULL, "gauge type");
    free(s);
}

int
main(void)
{
    test_route();
    test_completions();
    test_chat();
    test_embeddings();
    test_responses();
    test_utf8();
    test_textout();
    test_metrics();
    return done_testing();
}
