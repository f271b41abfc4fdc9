/*
 * The request model: API detection, the four request shapes, what goes
 * into the scope and the prompt, and every reason a body is refused.
 */

#include <string.h>
#include <time.h>

#include <jansson.h>

#include "tap.h"
#include "llmc_request.h"

static char  err[256];

/* parses and returns the scope (malloc()ed), or NULL with err set */
static char *
scope_of(llmc_api_e api, const char *body)
{
    char            *s;
    llmc_request_t   r;

    if (llmc_request_parse(&r, api, body, strlen(body), err, sizeof(err))
        != 0)
    {
        return NULL;
    }
    s = strdup(r.scope_json);
    llmc_request_free(&r);
    return s;
}

static void
same_scope(llmc_api_e api, const char *a, const char *b, const char *what)
{
    char  *sa = scope_of(api, a), *sb = scope_of(api, b);

    if (!ok(sa && sb && strcmp(sa, sb) == 0, "same scope: %s", what)) {
        printf("#   a: %s\n#   b: %s\n", sa ? sa : err, sb ? sb : err);
    }
    free(sa);
    free(sb);
}

static void
other_scope(llmc_api_e api, const char *a, const char *b, const char *what)
{
    char  *sa = scope_of(api, a), *sb = scope_of(api, b);

    if (!ok(sa && sb && strcmp(sa, sb) != 0, "other scope: %s", what)) {
        printf("#   a: %s\n#   b: %s\n", sa ? sa : err, sb ? sb : err);
    }
    free(sa);
    free(sb);
}

static void
rejected(llmc_api_e api, const char *body, size_t len, const char *what,
    const char *reason)
{
    int             rc;
    llmc_request_t  r;

    err[0] = '\0';
    rc = llmc_request_parse(&r, api, body, len, err, sizeof(err));
    ok(rc == -1, "rejected: %s", what);
    if (!ok(strstr(err, reason) != NULL, "reason mentions '%s'", reason)) {
        printf("#   err: %s\n", err);
    }
    ok(r.scope_json == NULL && r.prompt == NULL && r.model == NULL,
       "nothing left allocated");
    if (rc == 0) {
        llmc_request_free(&r);
    }
}

#define REJECT(api, body, what, reason)                                      \
    rejected(api, body, sizeof(body) - 1, what, reason)

static void
test_uri(void)
{
    static const struct {
        const char       *uri;
        llmc_provider_e   forced;
        llmc_api_e        api;
    } t[] = {
        { "/v1/chat/completions", LLMC_PROVIDER_UNKNOWN, LLMC_API_CHAT },
        { "/openai/v1/chat/completions?x=1", LLMC_PROVIDER_UNKNOWN,
          LLMC_API_CHAT },
        { "/v1/completions", LLMC_PROVIDER_UNKNOWN, LLMC_API_COMPLETIONS },
        { "/v1/responses", LLMC_PROVIDER_UNKNOWN, LLMC_API_RESPONSES },
        { "/v1/messages", LLMC_PROVIDER_UNKNOWN, LLMC_API_MESSAGES },
        { "/v1/messages?beta=true", LLMC_PROVIDER_UNKNOWN,
          LLMC_API_MESSAGES },
        { "/v1/messages", LLMC_PROVIDER_OPENAI, LLMC_API_UNKNOWN },
        { "/v1/chat/completions", LLMC_PROVIDER_OPENAI, LLMC_API_CHAT },
        { "/v1/chat/completions", LLMC_PROVIDER_ANTHROPIC,
          LLMC_API_UNKNOWN },
        { "/v1/responses", LLMC_PROVIDER_ANTHROPIC, LLMC_API_UNKNOWN },
        { "/v1/messages", LLMC_PROVIDER_ANTHROPIC, LLMC_API_MESSAGES },
        { "/v1/messages/count_tokens", LLMC_PROVIDER_UNKNOWN,
          LLMC_API_UNKNOWN },
        { "/v1/responses/resp_1/cancel", LLMC_PROVIDER_UNKNOWN,
          LLMC_API_UNKNOWN },
        { "/v1/embeddings", LLMC_PROVIDER_UNKNOWN, LLMC_API_UNKNOWN },
        { "/v1/chatcompletions", LLMC_PROVIDER_UNKNOWN, LLMC_API_UNKNOWN },
        { "/x?/v1/messages", LLMC_PROVIDER_UNKNOWN, LLMC_API_UNKNOWN },
        { "", LLMC_PROVIDER_UNKNOWN, LLMC_API_UNKNOWN },
        { "completions", LLMC_PROVIDER_UNKNOWN, LLMC_API_UNKNOWN },
    };
    size_t  i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        is_int(llmc_api_from_uri(t[i].uri, strlen(t[i].uri), t[i].forced),
               t[i].api, "uri %s (forced %d)", t[i].uri, t[i].forced);
    }

    /* the length is honoured, not the NUL */
    is_int(llmc_api_from_uri("/v1/messagesXYZ", 12, LLMC_PROVIDER_UNKNOWN),
           LLMC_API_MESSAGES, "uri length honoured");

    is_int(llmc_api_provider(LLMC_API_CHAT), LLMC_PROVIDER_OPENAI,
           "chat is OpenAI");
    is_int(llmc_api_provider(LLMC_API_RESPONSES), LLMC_PROVIDER_OPENAI,
           "responses is OpenAI");
    is_int(llmc_api_provider(LLMC_API_MESSAGES), LLMC_PROVIDER_ANTHROPIC,
           "messages is Anthropic");
    is_int(llmc_api_provider(LLMC_API_UNKNOWN), LLMC_PROVIDER_UNKNOWN,
           "unknown API, unknown provider");
    is_str(llmc_api_name(LLMC_API_COMPLETIONS), "completions", "api name");
    is_str(llmc_api_name((llmc_api_e) 99), "unknown", "bad api name");
}

static void
test_chat(void)
{
    char            *copy;
    llmc_request_t   r;
    static const char  body[] =
        "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"user\":\"u-1\","
        "\"stream_options\":{\"include_usage\":true},"
        "\"messages\":["
        "{\"role\":\"developer\",\"content\":\"Answer briefly.\"},"
        "{\"role\":\"user\",\"content\":\"What is 2+2?\"},"
        "{\"role\":\"assistant\",\"content\":\"4\"},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"And 3+3?\"},"
        "{\"type\":\"text\",\"text\":\"Explain.\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}"
        "]}],"
        "\"x_vendor\":{\"a\":1}}";

    copy = strdup(body);
    is_int(llmc_request_parse(&r, LLMC_API_CHAT, copy, strlen(copy), err,
                              sizeof(err)), 0, "chat parses: %s", err);
    ok(strcmp(copy, body) == 0, "the body is not modified");
    free(copy);

    is_int(r.provider, LLMC_PROVIDER_OPENAI, "provider");
    is_int(r.api, LLMC_API_CHAT, "api");
    is_int(r.stream, 1, "stream");
    is_str(r.model, "gpt-4o-mini", "model");
    is_str(r.prompt, "And 3+3?\nExplain.", "text parts joined with \\n");
    is_int(r.prompt_len, strlen("And 3+3?\nExplain."), "prompt length");
    is_int(r.n_unknown, 1, "one unknown field");
    is_int(r.scope_len, strlen(r.scope_json), "scope length");
    ok(strstr(r.scope_json, "And 3+3") == NULL, "latest text not in scope");
    ok(strstr(r.scope_json, "https://x/y.png") != NULL,
       "latest image stays in scope");
    ok(strstr(r.scope_json, "What is 2+2?") != NULL,
       "earlier turn in scope");
    ok(strstr(r.scope_json, "Answer briefly.") != NULL,
       "system prompt in scope");
    ok(strstr(r.scope_json, "x_vendor") != NULL, "unknown field kept");
    ok(strstr(r.scope_json, "\"stream\"") == NULL
       && strstr(r.scope_json, "include_usage") == NULL
       && strstr(r.scope_json, "u-1") == NULL,
       "stream, stream_options, user left out");
    ok(strstr(r.scope_json, "\"temperature\":1") != NULL
       && strstr(r.scope_json, "\"top_p\":1") != NULL
       && strstr(r.scope_json, "\"n\":1") != NULL,
       "defaults explicit");
    ok(strchr(r.scope_json, '\n') == NULL
       && strstr(r.scope_json, ", ") == NULL, "compact");
    ok(strncmp(r.scope_json, "{\"frequency_penalty\"", 20) == 0,
       "sorted keys: %.30s", r.scope_json);
    llmc_request_free(&r);
    ok(r.scope_json == NULL && r.prompt == NULL, "free clears");
    llmc_request_free(&r);          /* twice: harmless (valgrind checks) */
    llmc_request_free(NULL);

    /* the latest turn is a tool result: everything in scope, no prompt */
    {
        static const char  tool[] =
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"w?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
            "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
            "\"w\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\","
            "\"tool_call_id\":\"c1\",\"content\":\"sunny\"}]}";
        static const char  image[] =
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
            "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}}]}"
            "]}";

        is_int(llmc_request_parse(&r, LLMC_API_CHAT, tool, sizeof(tool) - 1,
                                  err, sizeof(err)), 0,
               "tool turn parses: %s", err);
        is_str(r.prompt, "", "tool turn: empty prompt");
        is_int(r.prompt_len, 0, "tool turn: prompt length 0");
        ok(strstr(r.scope_json, "sunny") && strstr(r.scope_json, "w?"),
           "tool turn: all text in scope");
        llmc_request_free(&r);

        is_int(llmc_request_parse(&r, LLMC_API_CHAT, image, sizeof(image) - 1,
                                  err, sizeof(err)), 0,
               "image-only parses: %s", err);
        is_str(r.prompt, "", "image only: empty prompt");
        llmc_request_free(&r);
    }

    /* text on both sides of an image: the whole turn is matched exactly */
#define MIXED(a, b)                                                          \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{"     \
    "\"type\":\"text\",\"text\":\"" a "\"},{\"type\":\"image_url\","        \
    "\"image_url\":{\"url\":\"u\"}},{\"type\":\"text\",\"text\":\"" b     \
    "\"}]}]}"

    is_int(llmc_request_parse(&r, LLMC_API_CHAT, MIXED("a", "b"),
                              strlen(MIXED("a", "b")), err, sizeof(err)), 0,
           "text around an image parses: %s", err);
    is_str(r.prompt, "", "text around an image: empty prompt");
    ok(strstr(r.scope_json, "\"text\":\"a\"")
       && strstr(r.scope_json, "\"text\":\"b\""),
       "text around an image: both texts in scope");
    llmc_request_free(&r);
    other_scope(LLMC_API_CHAT, MIXED("a\\nb", "c"), MIXED("a", "b\\nc"),
                "where the image sits in the text");
#undef MIXED

#define CHAT(extra, last)                                                    \
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":"  \
    "\"S\"},{\"role\":\"user\",\"content\":\"" last "\"}]" extra "}"

    same_scope(LLMC_API_CHAT, CHAT("", "a"), CHAT("", "b"),
               "latest user text");
    same_scope(LLMC_API_CHAT, CHAT("", "a"), CHAT(",\"temperature\":1", "a"),
               "absent temperature is 1");
    same_scope(LLMC_API_CHAT, CHAT(",\"temperature\":1.0", "a"),
               CHAT(",\"temperature\":1", "a"), "1.0 is 1");
    same_scope(LLMC_API_CHAT, CHAT(",\"temperature\":null", "a"),
               CHAT("", "a"), "null temperature is the default");
    same_scope(LLMC_API_CHAT, CHAT(",\"top_p\":1,\"n\":1,\"presence_penalty\""
               ":0,\"frequency_penalty\":0.0,\"logprobs\":false", "a"),
               CHAT("", "a"), "all sampling defaults");
    same_scope(LLMC_API_CHAT, CHAT(",\"stream\":true", "a"),
               CHAT(",\"stream\":false", "a"), "stream");
    same_scope(LLMC_API_CHAT, CHAT(",\"metadata\":{\"k\":\"v\""
               "},\"service_tier\":\"flex\",\"prompt_cache_key\":\"p\","
               "\"prompt_cache_retention\":\"24h\",\"safety_identifier\":"
               "\"s\"", "a"), CHAT("", "a"), "answer-neutral fields");
    same_scope(LLMC_API_CHAT, CHAT(",\"stop\":\"END\"", "a"),
               CHAT(",\"stop\":[\"END\"]", "a"), "stop string is [string]");
    same_scope(LLMC_API_CHAT, CHAT(",\"store\":false", "a"), CHAT("", "a"),
               "store defaults to false");
    other_scope(LLMC_API_CHAT, CHAT(",\"store\":true", "a"), CHAT("", "a"),
                "store (a stored completion can be retrieved by id)");
    same_scope(LLMC_API_CHAT, CHAT(",\"logit_bias\":{}", "a"),
               CHAT("", "a"), "empty logit_bias");
    same_scope(LLMC_API_CHAT, CHAT(",\"tools\":[]", "a"),
               CHAT("", "a"), "empty tools");
    same_scope(LLMC_API_CHAT,
               "{\"model\":\"m\",\"messages\":[{\"role\":\"system\","
               "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"q\"}]}",
               "{\"model\":\"m\",\"messages\":[{\"role\":\"system\","
               "\"content\":[{\"type\":\"text\",\"text\":\"S\"}]},{\"role\":"
               "\"user\",\"content\":[{\"text\":\"z\",\"type\":\"text\"}]}]}",
               "string content is one text part");
    same_scope(LLMC_API_CHAT, CHAT(",\"tools\":[{\"type\":\"function\","
               "\"function\":{\"name\":\"f\"}}]", "a"),
               CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\""
               ":\"f\"}}],\"tool_choice\":\"auto\"", "a"),
               "tool_choice defaults to auto with tools");
    same_scope(LLMC_API_CHAT, CHAT(",\"tools\":[{\"type\":\"function\","
               "\"function\":{\"name\":\"f\"}}],\"tool_choice\":null", "a"),
               CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\""
               ":\"f\"}}]", "a"), "null tool_choice is the default");
    same_scope(LLMC_API_CHAT, CHAT("", "a"),
               CHAT(",\"stop\":null,\"seed\":null,\"max_tokens\":null,"
                    "\"stream\":null", "a"), "nulls are absent");
    same_scope(LLMC_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":"
               "\"a\"}],\"model\":\"m\",\"seed\":7}",
               "{ \"seed\" : 7.0 ,\n\"model\":\"m\",\"messages\":[{\"content\""
               ":\"a\",\"role\":\"user\"}]}", "key order, spacing, 7.0");

    other_scope(LLMC_API_CHAT, CHAT("", "a"),
                CHAT(",\"temperature\":0.5", "a"), "temperature");
    other_scope(LLMC_API_CHAT, CHAT(",\"temperature\":0.5", "a"),
                CHAT(",\"temperature\":0.50001", "a"), "close temperature");
    other_scope(LLMC_API_CHAT, CHAT("", "a"), CHAT(",\"n\":2", "a"), "n");
    other_scope(LLMC_API_CHAT, CHAT("", "a"), CHAT(",\"max_tokens\":9", "a"),
                "max_tokens");
    other_scope(LLMC_API_CHAT, CHAT("", "a"), CHAT(",\"seed\":1", "a"),
                "seed");
    other_scope(LLMC_API_CHAT, CHAT("", "a"), CHAT(",\"response_format\":{"
                "\"type\":\"json_object\"}", "a"), "response_format");
    other_scope(LLMC_API_CHAT, CHAT("", "a"), CHAT(",\"x_new\":true", "a"),
                "an unknown field");
    other_scope(LLMC_API_CHAT, CHAT(",\"x_new\":null", "a"), CHAT("", "a"),
                "an unknown null field");
    other_scope(LLMC_API_CHAT, CHAT(",\"tools\":[{\"type\":\"function\","
                "\"function\":{\"name\":\"f\"}}]", "a"),
                CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{"
                "\"name\":\"g\"}}]", "a"), "tools");
    other_scope(LLMC_API_CHAT, CHAT(",\"tools\":[{\"type\":\"function\","
                "\"function\":{\"name\":\"f\"}}]", "a"),
                CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{"
                "\"name\":\"f\"}}],\"tool_choice\":\"required\"", "a"),
                "tool_choice");
    other_scope(LLMC_API_CHAT, CHAT(",\"parallel_tool_calls\":false", "a"),
                CHAT("", "a"), "parallel_tool_calls");
    other_scope(LLMC_API_CHAT, CHAT("", "a"),
                "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
                "\"content\":\"T\"},{\"role\":\"user\",\"content\":\"a\"}]}",
                "system prompt");
    other_scope(LLMC_API_CHAT, CHAT("", "a"),
                "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\","
                "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"a\"}]}",
                "model");
    other_scope(LLMC_API_CHAT,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"1\"},{\"role\":\"assistant\",\"content\":\"2\"},{\"role\":"
                "\"user\",\"content\":\"q\"}]}",
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"1\"},{\"role\":\"assistant\",\"content\":\"3\"},{\"role\":"
                "\"user\",\"content\":\"q\"}]}", "an earlier turn");
    other_scope(LLMC_API_CHAT,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
                "\"text\":\"b\"}]}]}",
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"a\\nb\"}]}", "two text parts are not one");
    other_scope(LLMC_API_CHAT,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"q\"}]}",
                "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
                "\"content\":\"q\"}]}", "the role of the last turn");
    other_scope(LLMC_API_CHAT,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"q\"}]}",
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"\"}]}", "empty latest text is not a placeholder");

    /* cache_control is a marker, except as a schema property */
    same_scope(LLMC_API_CHAT,
               "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\""
               ":[{\"type\":\"text\",\"text\":\"S\",\"cache_control\":{\"type\""
               ":\"ephemeral\"}}]},{\"role\":\"user\",\"content\":\"q\"}]}",
               "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\""
               ":\"S\"},{\"role\":\"user\",\"content\":\"q\"}]}",
               "cache_control removed");
    other_scope(LLMC_API_CHAT,
                CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\""
                ":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{"
                "\"cache_control\":{\"type\":\"string\"}}}}}]", "a"),
                CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\""
                ":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{}"
                "}}}]", "a"), "cache_control as a schema property is kept");
#undef CHAT
}

static void
test_completions(void)
{
    llmc_request_t  r;

#define CMPL(extra)  "{\"model\":\"gpt-3.5-turbo-instruct\"" extra "}"

    is_int(llmc_request_parse(&r, LLMC_API_COMPLETIONS,
                              CMPL(",\"prompt\":\"Say this\""),
                              strlen(CMPL(",\"prompt\":\"Say this\"")), err,
                              sizeof(err)), 0, "completions parse: %s", err);
    is_str(r.prompt, "Say this", "completions prompt");
    ok(strstr(r.scope_json, "\"max_tokens\":16")
       && strstr(r.scope_json, "\"echo\":false")
       && strstr(r.scope_json, "\"best_of\":1"), "completions defaults");
    llmc_request_free(&r);

    is_int(llmc_request_parse(&r, LLMC_API_COMPLETIONS,
                              CMPL(",\"prompt\":[[1,2,3]]"),
                              strlen(CMPL(",\"prompt\":[[1,2,3]]")), err,
                              sizeof(err)), 0, "token prompt parses");
    is_str(r.prompt, "", "token prompt: empty prompt");
    ok(strstr(r.scope_json, "[[1,2,3]]") != NULL, "tokens in scope");
    llmc_request_free(&r);

    is_int(llmc_request_parse(&r, LLMC_API_COMPLETIONS,
                              CMPL(",\"prompt\":[\"a\",\"b\"]"),
                              strlen(CMPL(",\"prompt\":[\"a\",\"b\"]")), err,
                              sizeof(err)), 0, "batch prompt parses");
    is_str(r.prompt, "", "batch of prompts: empty prompt");
    llmc_request_free(&r);

    same_scope(LLMC_API_COMPLETIONS, CMPL(",\"prompt\":\"x\""),
               CMPL(",\"prompt\":[\"y\"]"), "[\"text\"] is \"text\"");
    same_scope(LLMC_API_COMPLETIONS, CMPL(",\"prompt\":\"x\""),
               CMPL(",\"prompt\":\"y\",\"max_tokens\":16,\"stream\":true,"
                    "\"user\":\"u\",\"suffix\":null"), "completions defaults");
    other_scope(LLMC_API_COMPLETIONS, CMPL(",\"prompt\":\"x\""),
                CMPL(",\"prompt\":\"x\",\"suffix\":\"end\""), "suffix");
    other_scope(LLMC_API_COMPLETIONS, CMPL(",\"prompt\":\"x\""),
                CMPL(",\"prompt\":\"x\",\"echo\":true"), "echo");
    other_scope(LLMC_API_COMPLETIONS, CMPL(",\"prompt\":[1,2]"),
                CMPL(",\"prompt\":[1,3]"), "token prompts");

    REJECT(LLMC_API_COMPLETIONS, CMPL(",\"prompt\":5"), "numeric prompt",
           "prompt");
    REJECT(LLMC_API_COMPLETIONS, "{\"prompt\":\"x\"}", "no model", "model");
    REJECT(LLMC_API_COMPLETIONS, "{\"prompt\":\"x\",\"model\":1}",
           "model not a string", "model");
#undef CMPL
}

static void
test_responses(void)
{
    llmc_request_t  r;
    static const char  items[] =
        "{\"model\":\"gpt-4.1\",\"instructions\":\"Be terse.\","
        "\"input\":[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"w\","
        "\"arguments\":\"{}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c\","
        "\"output\":\"rain\"},"
        "{\"type\":\"message\",\"role\":\"user\",\"content\":["
        "{\"type\":\"input_text\",\"text\":\"umbrella?\"},"
        "{\"type\":\"input_image\",\"image_url\":\"https://i/x.png\"}]}],"
        "\"store\":true,\"previous_response_id\":\"resp_1\"}";

    is_int(llmc_request_parse(&r, LLMC_API_RESPONSES, items,
                              sizeof(items) - 1, err, sizeof(err)), 0,
           "responses parse: %s", err);
    is_str(r.prompt, "umbrella?", "responses prompt");
    ok(strstr(r.scope_json, "rain") && strstr(r.scope_json, "Be terse.")
       && strstr(r.scope_json, "https://i/x.png")
       && strstr(r.scope_json, "resp_1"),
       "tool output, instructions, image, previous_response_id in scope");
    ok(strstr(r.scope_json, "\"store\":true") != NULL,
       "store kept (chaining by id needs it)");
    ok(strstr(r.scope_json, "\"truncation\":\"disabled\""),
       "truncation default");
    llmc_request_free(&r);

#define RESP(input, extra)  "{\"model\":\"gpt-4.1\",\"input\":" input extra "}"

    same_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
               RESP("[{\"role\":\"user\",\"content\":\"yo\"}]", ""),
               "string input is one user message");
    same_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
               RESP("[{\"type\":\"message\",\"role\":\"user\",\"content\":[{"
                    "\"type\":\"input_text\",\"text\":\"yo\"}]}]", ""),
               "... with explicit parts");
    same_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
               RESP("\"hi\"", ",\"text\":{\"format\":{\"type\":\"text\"}},"
                    "\"temperature\":1.0,\"parallel_tool_calls\":true,"
                    "\"stream\":true,\"metadata\":{}"),
               "responses defaults");
    other_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
                RESP("\"hi\"", ",\"instructions\":\"x\""), "instructions");
    same_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
               RESP("\"hi\"", ",\"store\":true,\"service_tier\":\"auto\""),
               "store and service_tier defaults");
    other_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
                RESP("\"hi\"", ",\"metadata\":{\"k\":\"v\"}"),
                "metadata (echoed in the response object)");
    other_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
                RESP("\"hi\"", ",\"user\":\"alice\""),
                "user (echoed in the response object)");
    other_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
                RESP("\"hi\"", ",\"store\":false"), "store false");
    other_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
                RESP("\"hi\"", ",\"previous_response_id\":\"resp_2\""),
                "previous_response_id");
    other_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
                RESP("\"hi\"", ",\"reasoning\":{\"effort\":\"high\"}"),
                "reasoning");
    other_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ""),
                RESP("\"hi\"", ",\"text\":{\"format\":{\"type\":"
                     "\"json_object\"}}"), "text.format");

    is_int(llmc_request_parse(&r, LLMC_API_RESPONSES,
                              "{\"model\":\"m\",\"previous_response_id\":"
                              "\"r\"}", 40, err, sizeof(err)), 0,
           "no input (previous response only) parses: %s", err);
    is_str(r.prompt, "", "no input: empty prompt");
    llmc_request_free(&r);

    REJECT(LLMC_API_RESPONSES, RESP("\"hi\"", ",\"conversation\":\"conv_1\""),
           "conversation", "conversation");
    same_scope(LLMC_API_RESPONSES, RESP("\"hi\"", ",\"conversation\":null"),
               RESP("\"hi\"", ""), "null conversation is none");
    REJECT(LLMC_API_RESPONSES, RESP("42", ""), "numeric input", "input");
    REJECT(LLMC_API_RESPONSES, RESP("[\"x\"]", ""), "input item a string",
           "not an object");
    REJECT(LLMC_API_RESPONSES, RESP("[{\"role\":1,\"content\":\"x\"}]", ""),
           "role not a string", "role");
    REJECT(LLMC_API_RESPONSES, RESP("[{\"content\":\"x\"}]", ""),
           "item without type or role", "type");
    REJECT(LLMC_API_RESPONSES, "{\"model\":7,\"input\":\"x\"}",
           "model not a string", "model");
#undef RESP
}

static void
test_messages(void)
{
    llmc_request_t  r;
    static const char  body[] =
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,"
        "\"system\":[{\"type\":\"text\",\"text\":\"You are a poet.\","
        "\"cache_control\":{\"type\":\"ephemeral\",\"ttl\":\"1h\"}}],"
        "\"metadata\":{\"user_id\":\"abc\"},\"stream\":false,"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
        "\"id\":\"t1\",\"name\":\"get\",\"input\":{\"cache_control\":1}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"t1\",\"content\":\"42\"},"
        "{\"type\":\"text\",\"text\":\"so?\",\"cache_control\":"
        "{\"type\":\"ephemeral\"}}]}]}";

    is_int(llmc_request_parse(&r, LLMC_API_MESSAGES, body, sizeof(body) - 1,
                              err, sizeof(err)), 0, "messages parse: %s",
           err);
    is_int(r.provider, LLMC_PROVIDER_ANTHROPIC, "anthropic");
    is_str(r.prompt, "so?", "text after a tool result is the prompt");
    ok(strstr(r.scope_json, "tool_result") && strstr(r.scope_json, "42"),
       "tool result stays in scope");
    ok(strstr(r.scope_json, "\"cache_control\":1") != NULL,
       "tool input kept whole");
    ok(strstr(r.scope_json, "ephemeral") == NULL, "markers removed");
    ok(strstr(r.scope_json, "user_id") == NULL, "metadata left out");
    ok(strstr(r.scope_json, "\"temperature\":1") != NULL,
       "temperature default");
    llmc_request_free(&r);

#define MSG(extra, sys)                                                      \
    "{\"model\":\"claude\",\"max_tokens\":100," sys "\"messages\":[{"        \
    "\"role\":\"user\",\"content\":\"q\"}]" extra "}"

    same_scope(LLMC_API_MESSAGES, MSG("", "\"system\":\"S\","),
               MSG("", "\"system\":[{\"type\":\"text\",\"text\":\"S\","
                   "\"cache_control\":{\"type\":\"ephemeral\"}}],"),
               "system string is one text block");
    same_scope(LLMC_API_MESSAGES, MSG("", ""), MSG("", "\"system\":\"\","),
               "empty system");
    same_scope(LLMC_API_MESSAGES, MSG("", ""),
               MSG(",\"temperature\":1.0,\"stream\":true,\"service_tier\":"
                   "\"auto\",\"stop_sequences\":[]", ""), "messages defaults");
    other_scope(LLMC_API_MESSAGES, MSG("", ""), MSG(",\"top_k\":5", ""),
                "top_k");
    other_scope(LLMC_API_MESSAGES, MSG("", ""),
                MSG(",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":"
                    "2000}", ""), "thinking");
    other_scope(LLMC_API_MESSAGES, MSG("", "\"system\":\"S\","),
                MSG("", "\"system\":\"T\","), "system");
    other_scope(LLMC_API_MESSAGES, MSG("", ""),
                "{\"model\":\"claude\",\"max_tokens\":101,\"messages\":[{"
                "\"role\":\"user\",\"content\":\"q\"}]}", "max_tokens");

    REJECT(LLMC_API_MESSAGES, "{\"model\":\"c\",\"messages\":[{\"role\":"
           "\"user\",\"content\":\"q\"}]}", "no max_tokens", "max_tokens");
    REJECT(LLMC_API_MESSAGES, "{\"max_tokens\":5,\"messages\":[{\"role\":"
           "\"user\",\"content\":\"q\"}]}", "no model", "model");
    REJECT(LLMC_API_MESSAGES, "{\"model\":\"c\",\"max_tokens\":\"5\","
           "\"messages\":[]}", "max_tokens a string", "max_tokens");
    REJECT(LLMC_API_MESSAGES, MSG("", "\"system\":5,"), "numeric system",
           "system");
    REJECT(LLMC_API_MESSAGES, "{\"model\":\"c\",\"max_tokens\":5,"
           "\"messages\":[]}", "no messages", "empty");
#undef MSG
}

/* a chat body whose deepest value sits `depth` levels down */
static const char *
nested(int depth)
{
    int          d;
    size_t       k;
    static char  buf[1024];

    k = sprintf(buf, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"q\"}],\"x\":");
    for (d = 1; d < depth; d++) {
        buf[k++] = '[';
    }
    for (d = 1; d < depth; d++) {
        buf[k++] = ']';
    }
    buf[k++] = '}';
    buf[k] = '\0';
    return buf;
}

static void
test_rejects(void)
{
    char     *deep;
    size_t    i, n = 100000;
    clock_t   t0;

    rejected(LLMC_API_CHAT, "", 0, "empty body", "empty");
    rejected(LLMC_API_CHAT, NULL, 0, "NULL body", "empty");
    REJECT(LLMC_API_UNKNOWN, "{\"model\":\"m\",\"messages\":[]}",
           "unknown API", "unknown API");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",", "truncated JSON",
           "invalid JSON");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\"} x", "trailing garbage",
           "invalid JSON");
    REJECT(LLMC_API_CHAT, "[{\"model\":\"m\"}]", "top-level array",
           "not a JSON object");
    REJECT(LLMC_API_CHAT, "\"x\"", "top-level string", "invalid JSON");
    /* the reason is logged: it does not quote the body (a prompt) */
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":"
           "\"user\",\"content\":\"PROMPTSECRET \\q\"}]}", "bad escape",
           "invalid JSON");
    ok(strstr(err, "PROMPTSECRET") == NULL && strstr(err, "near") == NULL,
       "the reason does not quote the prompt (%s)", err);
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"model\":\"n\",\"messages\":"
           "[{\"role\":\"user\",\"content\":\"q\"}]}", "duplicate keys",
           "duplicate");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"\xc3\x28\"}]}", "bad UTF-8 continuation", "UTF-8");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"\xc0\xaf\"}]}", "overlong UTF-8", "UTF-8");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"\xed\xa0\x80\"}]}", "UTF-8 surrogate", "UTF-8");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"\xf4\x90\x80\x80\"}]}", "above U+10FFFF", "UTF-8");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"x\":\"\xe2\x82", "cut UTF-8",
           "UTF-8");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"\\ud800\"}]}", "lone surrogate escape",
           "invalid JSON");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"a\\u0000b\"}]}", "NUL escape", "invalid JSON");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"seed\":123456789012345678901234,"
           "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
           "integer out of range", "invalid JSON");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\"}", "chat without messages",
           "messages");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":null}",
           "messages null", "messages");
    REJECT(LLMC_API_CHAT, "{\"model\":null,\"messages\":[{\"role\":\"user\","
           "\"content\":\"q\"}]}", "model null", "model");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":{}}",
           "messages not an array", "messages");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[]}",
           "empty messages", "empty");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[\"hi\"]}",
           "message not an object", "not an object");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"content\":"
           "\"q\"}]}", "message without a role", "role");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":null,"
           "\"content\":\"q\"}]}", "role null", "role");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":5}]}", "numeric content", "content");
    REJECT(LLMC_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":"
           "\"q\"}]}", "chat without model", "model");
    REJECT(LLMC_API_CHAT, "{\"model\":\"m\",\"stream\":\"yes\",\"messages\":"
           "[{\"role\":\"user\",\"content\":\"q\"}]}", "stream not a boolean",
           "stream");

    /* nesting: LLMC_REQ_MAX_DEPTH levels pass, one more does not */
    {
        char  *s;

        s = scope_of(LLMC_API_CHAT, nested(LLMC_REQ_MAX_DEPTH));
        ok(s != NULL, "depth %d is accepted%s", LLMC_REQ_MAX_DEPTH,
           s ? "" : err);
        free(s);
        s = scope_of(LLMC_API_CHAT, nested(LLMC_REQ_MAX_DEPTH + 1));
        ok(s == NULL && strstr(err, "nesting"), "depth %d is refused: %s",
           LLMC_REQ_MAX_DEPTH + 1, err);
        free(s);
    }

    /* brackets inside strings do not count */
    {
        char  buf[512], *s;
        size_t k = 0, d;

        k += sprintf(buf + k, "{\"model\":\"m\",\"messages\":[{\"role\":"
                     "\"user\",\"content\":\"");
        for (d = 0; d < 100; d++) {
            buf[k++] = '[';
        }
        k += sprintf(buf + k, "\\\"{\"}]}");
        s = scope_of(LLMC_API_CHAT, buf);
        ok(s != NULL, "brackets in strings are text: %s", s ? "" : err);
        free(s);
    }

    deep = malloc(2 * n + 1);
    for (i = 0; i < n; i++) {
        deep[i] = '[';
        deep[n + i] = ']';
    }
    t0 = clock();
    rejected(LLMC_API_CHAT, deep, 2 * n, "100k-deep arrays", "nesting");
    memset(deep, '{', n);
    rejected(LLMC_API_CHAT, deep, n, "100k-deep objects", "nesting");
    ok((double) (clock() - t0) / CLOCKS_PER_SEC < 0.1,
       "deep bodies are cheap (%.4f s)",
       (double) (clock() - t0) / CLOCKS_PER_SEC);
    free(deep);

    /* a small err buffer is not overrun */
    {
        char            small[8];
        llmc_request_t  r;

        memset(small, 'x', sizeof(small));
        is_int(llmc_request_parse(&r, LLMC_API_CHAT, "[", 1, small, 4), -1,
               "small err buffer");
        ok(strlen(small) == 3 && small[4] == 'x', "err truncated in place");
        is_int(llmc_request_parse(&r, LLMC_API_CHAT, "[", 1, NULL, 0), -1,
               "no err buffer");
    }
}

/* jansson's allocations fail from the n-th on */
static long  alloc_left;

static void *
failing_malloc(size_t size)
{
    if (alloc_left-- <= 0) {
        return NULL;
    }
    return malloc(size);
}

static void
test_out_of_memory(void)
{
    int             rc, bad = 0;
    long            n;
    llmc_request_t  r;
    static const char  body[] =
        "{\"model\":\"m\",\"stop\":\"x\",\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"f\"}}],\"messages\":[{\"role\":\"system\","
        "\"content\":\"s\"},{\"role\":\"user\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"a\",\"cache_control\":{}},{\"type\":\"text\","
        "\"text\":\"b\"}]}],\"temperature\":1.0}";

    json_set_alloc_funcs(failing_malloc, free);
    for (n = 0; n < 10000; n++) {
        alloc_left = n;
        rc = llmc_request_parse(&r, LLMC_API_CHAT, body, sizeof(body) - 1,
                                err, sizeof(err));
        if (rc == 0) {
            llmc_request_free(&r);
            break;
        }
        if (rc != -1 || r.scope_json || r.prompt || r.model) {
            bad++;
        }
    }
    json_set_alloc_funcs(malloc, free);

    ok(n > 10 && n < 10000, "parse succeeds once %ld allocations succeed",
       n);
    is_int(bad, 0, "every failed allocation gives -1 and frees all");
}

int
main(void)
{
    test_uri();
    test_chat();
    test_completions();
    test_responses();
    test_messages();
    test_rejects();
    test_out_of_memory();
    return done_testing();
}
