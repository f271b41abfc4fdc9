/*
 * OpenAI-compatible request decoding and response encoding (see api.h).
 */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"

static const struct {
    const char      *path;
    const char      *method;
    api_endpoint_e   ep;
} api_routes[] = {
    { "/v1/completions",      "POST", API_EP_COMPLETIONS },
    { "/v1/chat/completions", "POST", API_EP_CHAT },
    { "/v1/embeddings",       "POST", API_EP_EMBEDDINGS },
    { "/v1/models",           "GET",  API_EP_MODELS },
    { "/health",              "GET",  API_EP_HEALTH },
    { "/metrics",             "GET",  API_EP_METRICS },
};

static const int api_statuses[API_N_STATUS - 1] = {
    200, 400, 404, 405, 408, 413, 414, 431, 499, 500, 501, 503, 505
};

static json_t *api_text(const char *s, size_t n);
static json_t *api_usage_obj(const api_usage_t *u);
static json_t *api_timings_obj(const api_usage_t *u);
static char *api_dump(json_t *root);

void
api_error_set(api_error_t *err, int status, const char *type,
    const char *param, const char *code, const char *fmt, ...)
{
    va_list  ap;

    err->status = status;
    snprintf(err->type, sizeof(err->type), "%s", type);
    snprintf(err->param, sizeof(err->param), "%s", param ? param : "");
    snprintf(err->code, sizeof(err->code), "%s", code ? code : "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

int
api_route(const char *method, const char *path, api_endpoint_e *ep,
    api_error_t *err)
{
    size_t       i;
    const char  *allow = NULL;

    /* the schema store: two methods on one path */
    if (strcmp(path, "/v1/schemas") == 0) {
        *ep = API_EP_SCHEMAS;
        allow = "GET, POST";
    } else if (api_schema_name(path) != NULL) {
        *ep = API_EP_SCHEMA;
        allow = "GET, DELETE";
    }
    if (allow != NULL) {
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0
            || strcmp(method, *ep == API_EP_SCHEMAS ? "POST" : "DELETE")
               == 0)
        {
            return 0;
        }
        api_error_set(err, 405, "invalid_request_error", NULL,
                      "method_not_allowed", "%s is not allowed on %s: use "
                      "%s", method, path, allow);
        return 405;
    }

    for (i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
        if (strcmp(path, api_routes[i].path) != 0) {
            continue;
        }
        *ep = api_routes[i].ep;
        if (strcmp(method, api_routes[i].method) != 0
            && !(strcmp(method, "HEAD") == 0
                 && strcmp(api_routes[i].method, "GET") == 0))
        {
            api_error_set(err, 405, "invalid_request_error", NULL,
                          "method_not_allowed",
                          "%s is not allowed on %s: use %s", method, path,
                          api_routes[i].method);
            return 405;
        }
        return 0;
    }
    *ep = API_EP_OTHER;
    api_error_set(err, 404, "invalid_request_error", NULL, "unknown_url",
                  "Unknown request URL: %s %s", method, path);
    return 404;
}

const char *
api_schema_name(const char *path)
{
    static const char  pre[] = "/v1/schemas/";

    if (strncmp(path, pre, sizeof(pre) - 1) != 0
        || path[sizeof(pre) - 1] == '\0'
        || strchr(path + sizeof(pre) - 1, '/') != NULL)
    {
        return NULL;
    }
    return path + sizeof(pre) - 1;
}

const char *
api_endpoint_name(api_endpoint_e ep)
{
    size_t  i;

    if (ep == API_EP_SCHEMAS) {
        return "/v1/schemas";
    }
    if (ep == API_EP_SCHEMA) {
        return "/v1/schemas/{name}";
    }

    for (i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
        if (api_routes[i].ep == ep) {
            return api_routes[i].path;
        }
    }
    return "other";
}

/* --- request decoding ---------------------------------------------------- */

static int
api_bad(api_error_t *err, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
api_bad(api_error_t *err, const char *param, const char *fmt, ...)
{
    va_list  ap;

    api_error_set(err, 400, "invalid_request_error", param, NULL, "%s", "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* present and not null */
static json_t *
api_get(json_t *root, const char *key)
{
    json_t  *v = json_object_get(root, key);

    return json_is_null(v) ? NULL : v;
}

static int
api_get_number(json_t *root, const char *key, double lo, double hi,
    float *out, api_error_t *err)
{
    json_t  *v = api_get(root, key);
    double   d;

    if (v == NULL) {
        return 0;
    }
    if (!json_is_number(v)) {
        return api_bad(err, key, "'%s' must be a number", key);
    }
    d = json_number_value(v);
    if (!(d >= lo && d <= hi)) {
        return api_bad(err, key, "'%s' must be between %g and %g, got %g",
                       key, lo, hi, d);
    }
    *out = (float) d;
    return 0;
}

static int
api_get_int(json_t *root, const char *key, long long lo, long long hi,
    long long *out, api_error_t *err)
{
    json_t     *v = api_get(root, key);
    long long   n;

    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v)) {
        return api_bad(err, key, "'%s' must be an integer", key);
    }
    n = json_integer_value(v);
    if (n < lo || n > hi) {
        return api_bad(err, key, "'%s' must be between %lld and %lld, got "
                       "%lld", key, lo, hi, n);
    }
    *out = n;
    return 0;
}

static int
api_get_bool(json_t *root, const char *key, int *out, api_error_t *err)
{
    json_t  *v = api_get(root, key);

    if (v == NULL) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return api_bad(err, key, "'%s' must be a boolean", key);
    }
    *out = json_is_true(v);
    return 0;
}

static char *
api_strdup(const char *s, size_t n)
{
    char  *d = malloc(n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* fields that change the output in ways this engine does not do */
static int
api_check_unsupported(json_t *root, api_endpoint_e ep, api_error_t *err)
{
    json_t  *v;

    if ((v = api_get(root, "n")) != NULL
        && !(json_is_integer(v) && json_integer_value(v) == 1))
    {
        return api_bad(err, "n", "'n' must be 1: one choice per request");
    }
    if ((v = api_get(root, "best_of")) != NULL
        && !(json_is_integer(v) && json_integer_value(v) == 1))
    {
        return api_bad(err, "best_of", "'best_of' is not supported");
    }
    if ((v = api_get(root, "echo")) != NULL && !json_is_false(v)) {
        return api_bad(err, "echo", "'echo' is not supported");
    }
    if ((v = api_get(root, "suffix")) != NULL
        && !(json_is_string(v) && json_string_length(v) == 0))
    {
        return api_bad(err, "suffix", "'suffix' is not supported");
    }
    if ((v = api_get(root, "logprobs")) != NULL && !json_is_false(v)
        && !(json_is_integer(v) && json_integer_value(v) == 0))
    {
        return api_bad(err, "logprobs", "'logprobs' is not supported");
    }
    if ((v = api_get(root, "top_logprobs")) != NULL
        && !(json_is_integer(v) && json_integer_value(v) == 0))
    {
        return api_bad(err, "top_logprobs",
                       "'top_logprobs' is not supported");
    }
    if ((v = api_get(root, "presence_penalty")) != NULL
        && (!json_is_number(v) || json_number_value(v) != 0))
    {
        return api_bad(err, "presence_penalty",
                       "'presence_penalty' is not supported (only 0)");
    }
    if ((v = api_get(root, "frequency_penalty")) != NULL
        && (!json_is_number(v) || json_number_value(v) != 0))
    {
        return api_bad(err, "frequency_penalty",
                       "'frequency_penalty' is not supported (only 0)");
    }
    if ((v = api_get(root, "logit_bias")) != NULL
        && !(json_is_object(v) && json_object_size(v) == 0))
    {
        return api_bad(err, "logit_bias", "'logit_bias' is not supported");
    }
    if ((v = api_get(root, "tools")) != NULL
        && !(json_is_array(v) && json_array_size(v) == 0))
    {
        return api_bad(err, "tools", "'tools' is not supported");
    }
    if ((v = api_get(root, "response_format")) != NULL) {
        json_t  *t = json_object_get(v, "type");

        if (!json_is_object(v) || !json_is_string(t)
            || strcmp(json_string_value(t), "text") != 0)
        {
            return api_bad(err, "response_format",
                           "'response_format' other than text is not "
                           "supported");
        }
    }
    if (ep == API_EP_EMBEDDINGS) {
        if ((v = api_get(root, "encoding_format")) != NULL
            && !(json_is_string(v)
                 && strcmp(json_string_value(v), "float") == 0))
        {
            return api_bad(err, "encoding_format",
                           "'encoding_format' must be \"float\"");
        }
        if (api_get(root, "dimensions") != NULL) {
            return api_bad(err, "dimensions", "'dimensions' is not "
                           "supported: the model's dimension is used");
        }
    }
    return 0;
}

static int
api_parse_stop(json_t *root, api_request_t *req, api_error_t *err)
{
    json_t  *v = api_get(root, "stop"), *s;
    size_t   i;

    if (v == NULL) {
        return 0;
    }
    if (json_is_string(v)) {
        if (json_string_length(v) > 0) {
            req->stop[req->n_stop++] = api_strdup(json_string_value(v),
                                                  json_string_length(v));
        }
        return 0;
    }
    if (!json_is_array(v)) {
        return api_bad(err, "stop", "'stop' must be a string or an array of "
                       "strings");
    }
    if (json_array_size(v) > API_MAX_STOP) {
        return api_bad(err, "stop", "'stop' has %zu strings, at most %d",
                       json_array_size(v), API_MAX_STOP);
    }
    json_array_foreach(v, i, s) {
        if (!json_is_string(s)) {
            return api_bad(err, "stop", "'stop' must be a string or an "
                           "array of strings");
        }
        if (json_string_length(s) > 0) {
            req->stop[req->n_stop++] = api_strdup(json_string_value(s),
                                                  json_string_length(s));
        }
    }
    return 0;
}

/* a message's content: a string, or an array of {"type":"text"} parts */
static char *
api_content(json_t *c, size_t idx, api_error_t *err)
{
    json_t  *part, *t;
    size_t   i, len = 0;
    char    *s, *n;

    if (c == NULL || json_is_null(c)) {
        return api_strdup("", 0);
    }
    if (json_is_string(c)) {
        return api_strdup(json_string_value(c), json_string_length(c));
    }
    if (!json_is_array(c)) {
        api_bad(err, "messages", "messages[%zu].content must be a string or "
                "an array of text parts", idx);
        return NULL;
    }
    s = api_strdup("", 0);
    json_array_foreach(c, i, part) {
        t = json_object_get(part, "type");
        if (!json_is_string(t) || strcmp(json_string_value(t), "text") != 0
            || !json_is_string(json_object_get(part, "text")))
        {
            free(s);
            api_bad(err, "messages", "messages[%zu].content[%zu]: only "
                    "{\"type\":\"text\",\"text\":...} parts are supported",
                    idx, i);
            return NULL;
        }
        t = json_object_get(part, "text");
        n = s ? realloc(s, len + json_string_length(t) + 1) : NULL;
        if (n == NULL) {
            free(s);
            api_bad(err, "messages", "out of memory");
            return NULL;
        }
        s = n;
        memcpy(s + len, json_string_value(t), json_string_length(t));
        len += json_string_length(t);
        s[len] = '\0';
    }
    return s;
}

static int
api_parse_messages(json_t *root, api_request_t *req, api_error_t *err)
{
    json_t  *msgs = api_get(root, "messages"), *m, *role;
    size_t   i;

    if (msgs == NULL) {
        return api_bad(err, "messages", "'messages' is required");
    }
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        return api_bad(err, "messages",
                       "'messages' must be a non-empty array");
    }
    req->msgs = calloc(json_array_size(msgs), sizeof(chat_msg_t));
    if (req->msgs == NULL) {
        return api_bad(err, "messages", "out of memory");
    }
    json_array_foreach(msgs, i, m) {
        role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            return api_bad(err, "messages", "messages[%zu] must be an "
                           "object with a string 'role'", i);
        }
        req->msgs[i].role = api_strdup(json_string_value(role),
                                       json_string_length(role));
        req->n_msgs = i + 1;
        req->msgs[i].content = api_content(json_object_get(m, "content"), i,
                                           err);
        if (req->msgs[i].content == NULL) {
            return -1;
        }
    }
    return 0;
}

static int
api_parse_prompt(json_t *root, api_request_t *req, api_error_t *err)
{
    json_t  *p = api_get(root, "prompt");

    if (p == NULL) {
        return api_bad(err, "prompt", "'prompt' is required");
    }
    /* a one-string array is what some clients send for one prompt */
    if (json_is_array(p) && json_array_size(p) == 1
        && json_is_string(json_array_get(p, 0)))
    {
        p = json_array_get(p, 0);
    }
    if (!json_is_string(p)) {
        return api_bad(err, "prompt", "'prompt' must be a string (token "
                       "arrays and several prompts are not supported)");
    }
    req->prompt = api_strdup(json_string_value(p), json_string_length(p));
    return 0;
}

static int
api_parse_input(json_t *root, api_request_t *req, api_error_t *err)
{
    json_t  *in = api_get(root, "input"), *s;
    size_t   i;

    if (in == NULL) {
        return api_bad(err, "input", "'input' is required");
    }
    if (json_is_string(in)) {
        req->inputs = calloc(1, sizeof(char *));
        if (req->inputs == NULL) {
            return api_bad(err, "input", "out of memory");
        }
        req->inputs[0] = api_strdup(json_string_value(in),
                                    json_string_length(in));
        req->n_inputs = 1;
        return 0;
    }
    if (!json_is_array(in) || json_array_size(in) == 0
        || json_array_size(in) > API_MAX_INPUTS)
    {
        return api_bad(err, "input", "'input' must be a string or an array "
                       "of 1 to %d strings", API_MAX_INPUTS);
    }
    req->inputs = calloc(json_array_size(in), sizeof(char *));
    if (req->inputs == NULL) {
        return api_bad(err, "input", "out of memory");
    }
    json_array_foreach(in, i, s) {
        if (!json_is_string(s)) {
            return api_bad(err, "input", "input[%zu] must be a string (token "
                           "arrays are not supported)", i);
        }
        req->inputs[i] = api_strdup(json_string_value(s),
                                    json_string_length(s));
        req->n_inputs = i + 1;
    }
    return 0;
}

int
api_request_parse(api_endpoint_e ep, const char *body, size_t len,
    api_request_t *req, api_error_t *err)
{
    json_t        *root, *v;
    json_error_t   jerr;
    long long      n;
    int            rc = -1;

    memset(req, 0, sizeof(*req));
    req->endpoint = ep;
    req->max_tokens = -1;
    req->temperature = 1.0f;
    req->top_p = 1.0f;
    req->cache = 1;

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return api_bad(err, NULL, "We could not parse the JSON body of your "
                       "request: %s (line %d, column %d)", jerr.text,
                       jerr.line, jerr.column);
    }
    if (!json_is_object(root)) {
        api_bad(err, NULL, "The request body must be a JSON object");
        goto done;
    }
    if ((v = api_get(root, "model")) != NULL && !json_is_string(v)) {
        api_bad(err, "model", "'model' must be a string");
        goto done;
    }
    if (api_check_unsupported(root, ep, err) != 0) {
        goto done;
    }

    switch (ep) {
    case API_EP_COMPLETIONS:
        if (api_parse_prompt(root, req, err) != 0) {
            goto done;
        }
        break;
    case API_EP_CHAT:
        if (api_parse_messages(root, req, err) != 0) {
            goto done;
        }
        break;
    case API_EP_EMBEDDINGS:
        if (api_parse_input(root, req, err) != 0) {
            goto done;
        }
        rc = 0;
        goto done;
    default:
        api_bad(err, NULL, "%s takes no body", api_endpoint_name(ep));
        goto done;
    }

    n = -1;
    if (api_get_int(root, "max_tokens", 1, 1 << 30, &n, err) != 0) {
        goto done;
    }
    if (n < 0 && ep == API_EP_CHAT
        && api_get_int(root, "max_completion_tokens", 1, 1 << 30, &n, err)
           != 0)
    {
        goto done;
    }
    req->max_tokens = (int) n;
    if (api_get_number(root, "temperature", 0, 2, &req->temperature, err)
        || api_get_number(root, "top_p", 0, 1, &req->top_p, err))
    {
        goto done;
    }
    n = 0;
    if (api_get_int(root, "top_k", 0, 1 << 30, &n, err) != 0) {
        goto done;
    }
    req->top_k = (int) n;
    if ((v = api_get(root, "seed")) != NULL) {
        if (!json_is_integer(v)) {
            api_bad(err, "seed", "'seed' must be an integer");
            goto done;
        }
        req->seed = (uint64_t) json_integer_value(v);
        req->has_seed = 1;
    }
    if (api_parse_stop(root, req, err) != 0
        || api_get_bool(root, "stream", &req->stream, err) != 0
        || api_get_bool(root, "cache", &req->cache, err) != 0)
    {
        goto done;
    }
    if ((v = api_get(root, "stream_options")) != NULL) {
        if (!json_is_object(v)) {
            api_bad(err, "stream_options", "'stream_options' must be an "
                    "object");
            goto done;
        }
        if (api_get_bool(v, "include_usage", &req->include_usage, err)
            != 0)
        {
            goto done;
        }
    }
    rc = 0;

done:
    json_decref(root);
    if (rc != 0) {
        api_request_free(req);
    }
    return rc;
}

void
api_request_free(api_request_t *req)
{
    size_t  i;
    int     k;

    free(req->prompt);
    for (i = 0; i < req->n_msgs; i++) {
        free((char *) req->msgs[i].role);
        free((char *) req->msgs[i].content);
    }
    free(req->msgs);
    for (i = 0; i < req->n_inputs; i++) {
        free(req->inputs[i]);
    }
    free(req->inputs);
    for (k = 0; k < req->n_stop; k++) {
        free(req->stop[k]);
    }
    memset(req, 0, sizeof(*req));
}

/* --- UTF-8 --------------------------------------------------------------- */

/* the length of the valid sequence at s (1..4), or 0 when invalid;
 * -1 when it is valid so far but cut short by the end */
static int
api_utf8_seq(const unsigned char *s, size_t n)
{
    int       len, i;
    unsigned  c = s[0];

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
    } else {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((size_t) i >= n) {
            return -1;
        }
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        /* overlong, surrogate and out-of-range forms are invalid as soon
         * as the second byte shows them */
        if (i == 1 && ((len == 3 && c == 0xe0 && s[1] < 0xa0)
                       || (len == 3 && c == 0xed && s[1] > 0x9f)
                       || (len == 4 && c == 0xf0 && s[1] < 0x90)
                       || (len == 4 && c == 0xf4 && s[1] > 0x8f)))
        {
            return 0;
        }
    }
    return len;
}

size_t
api_utf8_complete(const char *s, size_t n)
{
    size_t  i, back;

    /* only the last 3 bytes can start an incomplete sequence */
    for (back = 1; back <= 3 && back <= n; back++) {
        i = n - back;
        if ((((const unsigned char *) s)[i] & 0xc0) != 0x80) {
            if (api_utf8_seq((const unsigned char *) s + i, back) == -1) {
                return i;
            }
            break;
        }
    }
    return n;
}

/* a JSON string of the bytes s[0, n), invalid UTF-8 replaced by U+FFFD */
static json_t *
api_text(const char *s, size_t n)
{
    const unsigned char  *u = (const unsigned char *) s;
    char                 *buf;
    size_t                i = 0, o = 0;
    int                   l;
    json_t               *j;

    j = json_stringn(s, n);
    if (j != NULL) {
        return j;
    }
    buf = malloc(n * 3 + 1);
    if (buf == NULL) {
        return NULL;
    }
    while (i < n) {
        l = api_utf8_seq(u + i, n - i);
        if (l > 0) {
            memcpy(buf + o, u + i, (size_t) l);
            o += (size_t) l;
            i += (size_t) l;
        } else {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

/* --- responses ----------------------------------------------------------- */

static char *
api_dump(json_t *root)
{
    char  *s;

    if (root == NULL) {
        return NULL;
    }
    /* the only reals are embeddings, floats: 9 digits round-trip them */
    s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(root);
    return s;
}

char *
api_error_json(const api_error_t *err)
{
    /* the message may quote request bytes (a JSON parse error does), or
     * be cut inside a character: it goes through the UTF-8 repair */
    return api_dump(json_pack("{s:{s:o, s:s, s:o, s:o}}", "error",
        "message", api_text(err->message, strlen(err->message)),
        "type", err->type,
        "param", err->param[0] ? json_string(err->param) : json_null(),
        "code", err->code[0] ? json_string(err->code) : json_null()));
}

static json_t *
api_usage_obj(const api_usage_t *u)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i}}",
        "prompt_tokens", u->prompt_tokens,
        "completion_tokens", u->completion_tokens,
        "total_tokens", u->prompt_tokens + u->completion_tokens,
        "prompt_tokens_details", "cached_tokens", u->cached_tokens);
}

static json_t *
api_timings_obj(const api_usage_t *u)
{
    return json_pack("{s:f, s:f, s:i, s:i}",
        "prefill_ms", u->prefill_ms, "ttft_ms", u->ttft_ms,
        "cached_tokens", u->cached_tokens,
        "prompt_tokens", u->prompt_tokens);
}

/* adds "timings" to a response object when the usage has them */
static json_t *
api_with_timings(json_t *root, const api_usage_t *u)
{
    if (root != NULL && u != NULL && u->has_timings) {
        json_object_set_new(root, "timings", api_timings_obj(u));
    }
    return root;
}

char *
api_completion_json(api_endpoint_e ep, const char *id, long created,
    const char *model, const char *text, size_t len,
    const char *finish_reason, const api_usage_t *usage)
{
    json_t  *choice;

    if (ep == API_EP_CHAT) {
        choice = json_pack("{s:i, s:{s:s, s:o}, s:n, s:s}", "index", 0,
            "message", "role", "assistant", "content", api_text(text, len),
            "logprobs", "finish_reason", finish_reason);
    } else {
        choice = json_pack("{s:o, s:i, s:n, s:s}",
            "text", api_text(text, len), "index", 0, "logprobs",
            "finish_reason", finish_reason);
    }
    return api_dump(api_with_timings(json_pack(
        "{s:s, s:s, s:I, s:s, s:[o], s:o}",
        "id", id,
        "object", ep == API_EP_CHAT ? "chat.completion" : "text_completion",
        "created", (json_int_t) created, "model", model,
        "choices", choice, "usage", api_usage_obj(usage)), usage));
}

static json_t *api_chunk_obj(api_endpoint_e ep, const char *id,
    long created, const char *model, const char *role, const char *text,
    size_t len, const char *finish_reason);

char *
api_chunk_json(api_endpoint_e ep, const char *id, long created,
    const char *model, const char *role, const char *text, size_t len,
    const char *finish_reason)
{
    return api_dump(api_chunk_obj(ep, id, created, model, role, text, len,
                                  finish_reason));
}

char *
api_finish_chunk_json(api_endpoint_e ep, const char *id, long created,
    const char *model, const char *finish_reason, const api_usage_t *usage)
{
    return api_dump(api_with_timings(api_chunk_obj(ep, id, created, model,
                    NULL, NULL, 0, finish_reason), usage));
}

static json_t *
api_chunk_obj(api_endpoint_e ep, const char *id, long created,
    const char *model, const char *role, const char *text, size_t len,
    const char *finish_reason)
{
    json_t  *choice, *delta;

    if (ep == API_EP_CHAT) {
        delta = json_object();
        if (role != NULL) {
            json_object_set_new(delta, "role", json_string(role));
            json_object_set_new(delta, "content", json_string(""));
        } else if (finish_reason == NULL) {
            json_object_set_new(delta, "content", api_text(text, len));
        }
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0,
            "delta", delta, "logprobs", "finish_reason",
            finish_reason ? json_string(finish_reason) : json_null());
    } else {
        choice = json_pack("{s:o, s:i, s:n, s:o}",
            "text", finish_reason ? json_string("") : api_text(text, len),
            "index", 0, "logprobs", "finish_reason",
            finish_reason ? json_string(finish_reason) : json_null());
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:[o]}",
        "id", id,
        "object", ep == API_EP_CHAT ? "chat.completion.chunk"
                                    : "text_completion",
        "created", (json_int_t) created, "model", model,
        "choices", choice);
}

char *
api_usage_chunk_json(api_endpoint_e ep, const char *id, long created,
    const char *model, const api_usage_t *usage)
{
    return api_dump(api_with_timings(json_pack(
        "{s:s, s:s, s:I, s:s, s:[], s:o}",
        "id", id,
        "object", ep == API_EP_CHAT ? "chat.completion.chunk"
                                    : "text_completion",
        "created", (json_int_t) created, "model", model,
        "choices", "usage", api_usage_obj(usage)), usage));
}

char *
api_embeddings_json(const char *model, const float *vecs, size_t n, int dim,
    int prompt_tokens)
{
    json_t  *data, *emb;
    size_t   i;
    int      k;

    data = json_array();
    for (i = 0; i < n; i++) {
        emb = json_array();
        for (k = 0; k < dim; k++) {
            json_array_append_new(emb,
                json_real(isfinite(vecs[i * dim + k]) ? vecs[i * dim + k]
                                                      : 0.0));
        }
        json_array_append_new(data, json_pack("{s:s, s:o, s:I}",
            "object", "embedding", "embedding", emb, "index",
            (json_int_t) i));
    }
    return api_dump(json_pack("{s:s, s:o, s:s, s:{s:i, s:i}}",
        "object", "list", "data", data, "model", model,
        "usage", "prompt_tokens", prompt_tokens,
        "total_tokens", prompt_tokens));
}

char *
api_models_json(const char *model, long created, int n_ctx)
{
    return api_dump(json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:i}]}",
        "object", "list", "data", "id", model, "object", "model",
        "created", (json_int_t) created, "owned_by", "llmcache",
        "context_length", n_ctx));
}

static json_t *
api_schema_obj(const api_schema_t *s)
{
    json_t  *mods;
    int      k;

    mods = json_array();
    for (k = 0; k < s->n_mods; k++) {
        json_array_append_new(mods, json_pack(
            "{s:s, s:i, s:i, s:i, s:I, s:b}",
            "name", s->mods[k].name, "tokens", s->mods[k].tokens,
            "start", s->mods[k].start, "end", s->mods[k].end,
            "bytes", (json_int_t) s->mods[k].bytes,
            "resident", s->mods[k].resident));
    }
    return json_pack("{s:s, s:s, s:o, s:i, s:I, s:f, s:b}",
        "name", s->name, "mode", s->mode, "modules", mods,
        "tokens", s->tokens, "bytes", (json_int_t) s->bytes,
        "encode_ms", s->encode_ms, "loaded", s->loaded);
}

char *
api_schema_json(const api_schema_t *s)
{
    return api_dump(api_schema_obj(s));
}

char *
api_deleted_json(const char *name)
{
    return api_dump(json_pack("{s:s, s:o, s:b}", "object", "schema",
        "name", api_text(name, strlen(name)), "deleted", 1));
}

char *
api_schemas_json(const api_schema_t *s, int n, size_t budget, size_t used,
    size_t bytes_per_token)
{
    json_t  *data;
    int      i;

    data = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(data, api_schema_obj(&s[i]));
    }
    return api_dump(json_pack("{s:s, s:o, s:{s:I, s:I, s:I}}",
        "object", "list", "data", data, "kv",
        "budget_bytes", (json_int_t) budget,
        "used_bytes", (json_int_t) used,
        "bytes_per_token", (json_int_t) bytes_per_token));
}

/* --- the outgoing text filter -------------------------------------------- */

void
api_textout_init(api_textout_t *t, char *const *stop, int n_stop)
{
    memset(t, 0, sizeof(*t));
    t->stop = stop;
    t->n_stop = n_stop;
}

void
api_textout_free(api_textout_t *t)
{
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

int
api_textout_push(api_textout_t *t, const char *piece, size_t n)
{
    char    *b;
    size_t   cap;

    if (t->stopped || n == 0) {
        return 0;
    }
    if (t->len + n + 1 > t->cap) {
        cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) {
            cap *= 2;
        }
        b = realloc(t->buf, cap);
        if (b == NULL) {
            return -1;
        }
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, piece, n);
    t->len += n;
    return 0;
}

size_t
api_textout_ready(api_textout_t *t, int final)
{
    size_t       hold = 0, k, sl, first = t->len;
    const char  *m;
    int          i;

    if (t->stopped) {
        return t->len;
    }
    for (i = 0; i < t->n_stop; i++) {
        sl = strlen(t->stop[i]);
        m = memmem(t->buf, t->len, t->stop[i], sl);
        if (m != NULL && (size_t) (m - t->buf) < first) {
            first = (size_t) (m - t->buf);
        }
    }
    if (first < t->len) {
        t->len = first;
        t->stopped = 1;
        return t->len;
    }
    if (final) {
        return t->len;
    }
    /* the longest suffix that a stop string starts with */
    for (i = 0; i < t->n_stop; i++) {
        sl = strlen(t->stop[i]);
        for (k = sl - 1 < t->len ? sl - 1 : t->len; k > hold; k--) {
            if (memcmp(t->buf + t->len - k, t->stop[i], k) == 0) {
                hold = k;
                break;
            }
        }
    }
    return api_utf8_complete(t->buf, t->len - hold);
}

void
api_textout_consume(api_textout_t *t, size_t n)
{
    memmove(t->buf, t->buf + n, t->len - n);
    t->len -= n;
}

/* --- metrics ------------------------------------------------------------- */

void
api_metrics_count(api_metrics_t *m, api_endpoint_e ep, int status)
{
    int  i;

    for (i = 0; i < API_N_STATUS - 1; i++) {
        if (api_statuses[i] == status) {
            break;
        }
    }
    m->requests[ep][i]++;
}

char *
api_metrics_text(const api_metrics_t *m)
{
    char    *buf;
    size_t   cap = 32768, o = 0;
    int      e, i;

#define API_OUT(...)                                                         \
    o += (size_t) snprintf(buf + o, o < cap ? cap - o : 0, __VA_ARGS__)

    buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    API_OUT("# HELP llmcache_worker_requests_total HTTP requests by "
            "endpoint and status.\n"
            "# TYPE llmcache_worker_requests_total counter\n");
    for (e = 0; e < API_EP_COUNT; e++) {
        for (i = 0; i < API_N_STATUS; i++) {
            if (m->requests[e][i] == 0) {
                continue;
            }
            if (i < API_N_STATUS - 1) {
                API_OUT("llmcache_worker_requests_total{endpoint=\"%s\","
                        "status=\"%d\"} %llu\n",
                        api_endpoint_name((api_endpoint_e) e),
                        api_statuses[i],
                        (unsigned long long) m->requests[e][i]);
            } else {
                API_OUT("llmcache_worker_requests_total{endpoint=\"%s\","
                        "status=\"other\"} %llu\n",
                        api_endpoint_name((api_endpoint_e) e),
                        (unsigned long long) m->requests[e][i]);
            }
        }
    }
    API_OUT("# HELP llmcache_worker_prompt_tokens_total Prompt tokens "
            "evaluated (completions, chat and embeddings).\n"
            "# TYPE llmcache_worker_prompt_tokens_total counter\n"
            "llmcache_worker_prompt_tokens_total %llu\n"
            "# HELP llmcache_worker_generated_tokens_total Tokens generated."
            "\n# TYPE llmcache_worker_generated_tokens_total counter\n"
            "llmcache_worker_generated_tokens_total %llu\n",
            (unsigned long long) m->prompt_tokens,
            (unsigned long long) m->generated_tokens);
    API_OUT("# HELP llmcache_worker_prefill_seconds_total Time spent "
            "evaluating prompts.\n"
            "# TYPE llmcache_worker_prefill_seconds_total counter\n"
            "llmcache_worker_prefill_seconds_total %.6f\n"
            "# HELP llmcache_worker_decode_seconds_total Time spent "
            "generating tokens.\n"
            "# TYPE llmcache_worker_decode_seconds_total counter\n"
            "llmcache_worker_decode_seconds_total %.6f\n",
            m->prefill_seconds, m->decode_seconds);
    API_OUT("# HELP llmcache_worker_prefill_tokens_per_second Prompt "
            "tokens per second of the last request.\n"
            "# TYPE llmcache_worker_prefill_tokens_per_second gauge\n"
            "llmcache_worker_prefill_tokens_per_second %.3f\n"
            "# HELP llmcache_worker_decode_tokens_per_second Generated "
            "tokens per second of the last request.\n"
            "# TYPE llmcache_worker_decode_tokens_per_second gauge\n"
            "llmcache_worker_decode_tokens_per_second %.3f\n",
            m->last_prefill_tps, m->last_decode_tps);
    API_OUT("# HELP llmcache_worker_queue_depth Requests waiting for the "
            "generation thread.\n"
            "# TYPE llmcache_worker_queue_depth gauge\n"
            "llmcache_worker_queue_depth %llu\n"
            "# HELP llmcache_worker_queue_rejected_total Requests refused "
            "with 503 because the queue was full.\n"
            "# TYPE llmcache_worker_queue_rejected_total counter\n"
            "llmcache_worker_queue_rejected_total %llu\n"
            "# HELP llmcache_worker_client_aborts_total Generations stopped "
            "because the client went away.\n"
            "# TYPE llmcache_worker_client_aborts_total counter\n"
            "llmcache_worker_client_aborts_total %llu\n",
            (unsigned long long) m->queue_depth,
            (unsigned long long) m->queue_rejected,
            (unsigned long long) m->client_aborts);
    API_OUT("# HELP llmcache_worker_pcache_schemas Prompt Cache schemas "
            "stored.\n"
            "# TYPE llmcache_worker_pcache_schemas gauge\n"
            "llmcache_worker_pcache_schemas %llu\n"
            "# HELP llmcache_worker_pcache_modules Prompt Cache modules "
            "stored, and of them resident (not evicted).\n"
            "# TYPE llmcache_worker_pcache_modules gauge\n"
            "llmcache_worker_pcache_modules %llu\n"
            "llmcache_worker_pcache_modules{state=\"resident\"} %llu\n"
            "# HELP llmcache_worker_pcache_bytes K/V bytes of resident "
            "modules, and the budget.\n"
            "# TYPE llmcache_worker_pcache_bytes gauge\n"
            "llmcache_worker_pcache_bytes %llu\n"
            "llmcache_worker_pcache_bytes{kind=\"budget\"} %llu\n",
            (unsigned long long) m->pc_schemas,
            (unsigned long long) m->pc_modules,
            (unsigned long long) m->pc_resident,
            (unsigned long long) m->pc_bytes,
            (unsigned long long) m->pc_budget);
    API_OUT("# HELP llmcache_worker_pcache_hits_total Modules gathered as "
            "stored.\n"
            "# TYPE llmcache_worker_pcache_hits_total counter\n"
            "llmcache_worker_pcache_hits_total %llu\n"
            "# HELP llmcache_worker_pcache_misses_total Evicted modules "
            "encoded again for a prompt.\n"
            "# TYPE llmcache_worker_pcache_misses_total counter\n"
            "llmcache_worker_pcache_misses_total %llu\n"
            "# HELP llmcache_worker_pcache_evictions_total Modules evicted "
            "to stay within the budget.\n"
            "# TYPE llmcache_worker_pcache_evictions_total counter\n"
            "llmcache_worker_pcache_evictions_total %llu\n"
            "# HELP llmcache_worker_pcache_encode_passes_total Model passes "
            "spent encoding modules.\n"
            "# TYPE llmcache_worker_pcache_encode_passes_total counter\n"
            "llmcache_worker_pcache_encode_passes_total %llu\n",
            (unsigned long long) m->pc_hits,
            (unsigned long long) m->pc_misses,
            (unsigned long long) m->pc_evictions,
            (unsigned long long) m->pc_encode_passes);
    API_OUT("# HELP llmcache_worker_pcache_cached_tokens_total Prompt "
            "tokens taken from stored modules.\n"
            "# TYPE llmcache_worker_pcache_cached_tokens_total counter\n"
            "llmcache_worker_pcache_cached_tokens_total %llu\n"
            "# HELP llmcache_worker_prefix_reused_tokens_total Prompt "
            "tokens reused from the previous prompt's K/V.\n"
            "# TYPE llmcache_worker_prefix_reused_tokens_total counter\n"
            "llmcache_worker_prefix_reused_tokens_total %llu\n",
            (unsigned long long) m->pc_cached_tokens,
            (unsigned long long) m->pc_prefix_tokens);
#undef API_OUT

    if (o >= cap) {
        /* cannot happen with the fixed set of series above */
        buf[cap - 1] = '\0';
    }
    return buf;
}
