/*
 * The stored entry:
 *
 *     "LLMC1\n" <metadata JSON object, one line> "\n" <body bytes>
 *
 * The metadata is written by jansson (compact, sorted keys), so it holds no
 * raw newline.  The decoder trusts nothing: a value from Redis may be
 * damaged, truncated or written by something else.
 */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_json.h"
#include "llmc_entry.h"

#define LLMC_ENTRY_MAGIC     "LLMC1\n"
#define LLMC_ENTRY_MAGIC_LEN (sizeof(LLMC_ENTRY_MAGIC) - 1)

/*
 * The content type goes back into a response header: printable ASCII only
 * (no CR/LF, no control bytes).  Quotes and backslashes are refused too, so
 * its JSON form is the bytes themselves and the decoder can point into the
 * stored value instead of copying.
 */
static int
llmc_entry_ct_valid(const char *ct, size_t len)
{
    size_t  i;

    if (len == 0 || len > 255) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) ct[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            return 0;
        }
    }
    return 1;
}

static int
llmc_entry_name_valid(const char *s, size_t len, size_t max)
{
    size_t  i;

    if (len >= max) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }
    return 1;
}

char *
llmc_entry_encode(const char *content_type, size_t ct_len, const char *api,
    const char *model, int64_t created, const char *body, size_t body_len,
    size_t *out_len)
{
    char    *meta, *out;
    size_t   meta_len, len;
    json_t  *obj;

    if (content_type == NULL || api == NULL || model == NULL
        || (body == NULL && body_len) || created < 0
        || !llmc_entry_ct_valid(content_type, ct_len)
        || !llmc_entry_name_valid(api, strlen(api),
                                  sizeof(((llmc_entry_t *) 0)->api))
        || !llmc_entry_name_valid(model, strlen(model),
                                  sizeof(((llmc_entry_t *) 0)->model))
        || (uint64_t) body_len > (uint64_t) LLONG_MAX)
    {
        return NULL;
    }

    obj = json_pack("{s:s#, s:I, s:s, s:s, s:I}",
                    "content_type", content_type, (int) ct_len,
                    "created", (json_int_t) created,
                    "api", api,
                    "model", model,
                    "body_len", (json_int_t) body_len);
    if (obj == NULL) {
        return NULL;
    }

    meta = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    if (meta == NULL) {
        return NULL;
    }
    meta_len = strlen(meta);

    len = LLMC_ENTRY_MAGIC_LEN + meta_len + 1 + body_len;
    out = malloc(len ? len : 1);
    if (out == NULL) {
        free(meta);
        return NULL;
    }

    memcpy(out, LLMC_ENTRY_MAGIC, LLMC_ENTRY_MAGIC_LEN);
    memcpy(out + LLMC_ENTRY_MAGIC_LEN, meta, meta_len);
    out[LLMC_ENTRY_MAGIC_LEN + meta_len] = '\n';
    if (body_len) {
        memcpy(out + LLMC_ENTRY_MAGIC_LEN + meta_len + 1, body, body_len);
    }
    free(meta);

    if (out_len) {
        *out_len = len;
    }
    return out;
}

/* memmem() without depending on _GNU_SOURCE; n > 0 */
static const char *
llmc_entry_find(const char *hay, size_t len, const char *needle, size_t n)
{
    const char  *p, *end;

    if (n > len) {
        return NULL;
    }
    end = hay + len - n;
    for (p = hay; p <= end; p++) {
        p = memchr(p, needle[0], end - p + 1);
        if (p == NULL) {
            return NULL;
        }
        if (memcmp(p, needle, n) == 0) {
            return p;
        }
    }
    return NULL;
}

/*
 * The metadata line exactly as llmc_entry_encode() writes it:
 *
 *     {"api":"..","body_len":N,"content_type":"..","created":N,"model":".."}
 *
 * with plain strings (printable ASCII, no escapes) and integers of at most
 * 18 digits.  Such a line is read here without building a jansson object;
 * any other line, valid or not, is left to jansson, which decides.
 */

typedef struct {
    const char  *s;
    size_t       len;
} llmc_entry_str_t;

static const char *
llmc_entry_fast_key(const char *p, const char *end, const char *key)
{
    size_t  n = strlen(key);

    if ((size_t) (end - p) < n || memcmp(p, key, n) != 0) {
        return NULL;
    }
    return p + n;
}

static const char *
llmc_entry_fast_str(const char *p, const char *end, llmc_entry_str_t *out)
{
    const char  *q;

    if (p == NULL || p == end || *p++ != '"') {
        return NULL;
    }
    for (q = p; q < end; q++) {
        unsigned char c = (unsigned char) *q;
        if (c == '"') {
            out->s = p;
            out->len = q - p;
            return q + 1;
        }
        if (c < 0x20 || c > 0x7e || c == '\\') {
            return NULL;
        }
    }
    return NULL;
}

static const char *
llmc_entry_fast_int(const char *p, const char *end, int64_t *out)
{
    int      n = 0;
    int64_t  v = 0;

    if (p == NULL || p == end) {
        return NULL;
    }
    if (*p == '0') {
        *out = 0;
        return p + 1;
    }
    while (p < end && *p >= '0' && *p <= '9') {
        if (++n > 18) {
            return NULL;
        }
        v = v * 10 + (*p++ - '0');
    }
    if (n == 0) {
        return NULL;
    }
    *out = v;
    return p;
}

static int
llmc_entry_fast(llmc_entry_t *entry, const char *meta, size_t meta_len,
    size_t body_len)
{
    int64_t            created, blen;
    const char        *p, *end = meta + meta_len, *found;
    llmc_entry_str_t   api, ct, model;

    p = llmc_entry_fast_key(meta, end, "{\"api\":");
    p = llmc_entry_fast_str(p, end, &api);
    p = p ? llmc_entry_fast_key(p, end, ",\"body_len\":") : NULL;
    p = llmc_entry_fast_int(p, end, &blen);
    p = p ? llmc_entry_fast_key(p, end, ",\"content_type\":") : NULL;
    p = llmc_entry_fast_str(p, end, &ct);
    p = p ? llmc_entry_fast_key(p, end, ",\"created\":") : NULL;
    p = llmc_entry_fast_int(p, end, &created);
    p = p ? llmc_entry_fast_key(p, end, ",\"model\":") : NULL;
    p = llmc_entry_fast_str(p, end, &model);
    if (p == NULL || end - p != 1 || *p != '}') {
        return -1;
    }

    /* the same checks as below; a failure gets jansson's verdict there */
    if (!llmc_entry_ct_valid(ct.s, ct.len)
        || !llmc_entry_name_valid(api.s, api.len, sizeof(entry->api))
        || !llmc_entry_name_valid(model.s, model.len, sizeof(entry->model))
        || (uint64_t) blen != (uint64_t) body_len)
    {
        return -1;
    }
    found = llmc_entry_find(meta, meta_len, ct.s, ct.len);
    if (found == NULL) {
        return -1;
    }

    entry->content_type = found;
    entry->content_type_len = ct.len;
    entry->body = end + 1;
    entry->body_len = body_len;
    entry->created = created;
    memcpy(entry->model, model.s, model.len);
    entry->model[model.len] = '\0';
    memcpy(entry->api, api.s, api.len);
    entry->api[api.len] = '\0';
    return 0;
}

#define llmc_entry_fail(...)                                                 \
    do {                                                                     \
        if (errlen) {                                                        \
            snprintf(err, errlen, "llmc_entry_decode: " __VA_ARGS__);        \
        }                                                                    \
        goto failed;                                                         \
    } while (0)

int
llmc_entry_decode(llmc_entry_t *entry, const char *buf, size_t len,
    char *err, size_t errlen)
{
    const char    *nl, *meta, *ct, *api, *model, *found;
    size_t         meta_len, body_len, ct_len, api_len, model_len;
    json_t        *obj = NULL, *v;
    json_int_t     created, blen;
    json_error_t   jerr;

    memset(entry, 0, sizeof(*entry));
    if (errlen) {
        err[0] = '\0';
    }

    if (buf == NULL || len < LLMC_ENTRY_MAGIC_LEN
        || memcmp(buf, LLMC_ENTRY_MAGIC, LLMC_ENTRY_MAGIC_LEN) != 0)
    {
        llmc_entry_fail("bad magic");
    }

    meta = buf + LLMC_ENTRY_MAGIC_LEN;
    meta_len = len - LLMC_ENTRY_MAGIC_LEN;
    nl = memchr(meta, '\n',
                meta_len < LLMC_ENTRY_META_MAX ? meta_len
                                               : LLMC_ENTRY_META_MAX);
    if (nl == NULL) {
        llmc_entry_fail("no metadata line");
    }
    meta_len = nl - meta;
    body_len = len - LLMC_ENTRY_MAGIC_LEN - meta_len - 1;

    if (llmc_entry_fast(entry, meta, meta_len, body_len) == 0) {
        return 0;
    }

    obj = json_loadb(meta, meta_len, JSON_REJECT_DUPLICATES, &jerr);
    if (obj == NULL) {
        llmc_entry_fail("bad metadata JSON at %d: %s", jerr.position,
                        llmc_json_errmsg(&jerr));
    }
    if (!json_is_object(obj)) {
        llmc_entry_fail("metadata is not an object");
    }

    v = json_object_get(obj, "content_type");
    if (!json_is_string(v)) {
        llmc_entry_fail("no content_type");
    }
    ct = json_string_value(v);
    ct_len = json_string_length(v);
    if (!llmc_entry_ct_valid(ct, ct_len)) {
        llmc_entry_fail("bad content_type");
    }

    v = json_object_get(obj, "created");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        llmc_entry_fail("no created time");
    }
    created = json_integer_value(v);

    v = json_object_get(obj, "api");
    if (!json_is_string(v)) {
        llmc_entry_fail("no api");
    }
    api = json_string_value(v);
    api_len = json_string_length(v);
    if (!llmc_entry_name_valid(api, api_len, sizeof(entry->api))
        || memchr(api, '\0', api_len))
    {
        llmc_entry_fail("bad api");
    }

    v = json_object_get(obj, "model");
    if (!json_is_string(v)) {
        llmc_entry_fail("no model");
    }
    model = json_string_value(v);
    model_len = json_string_length(v);
    if (!llmc_entry_name_valid(model, model_len, sizeof(entry->model))
        || memchr(model, '\0', model_len))
    {
        llmc_entry_fail("bad model");
    }

    v = json_object_get(obj, "body_len");
    if (!json_is_integer(v)) {
        llmc_entry_fail("no body_len");
    }
    blen = json_integer_value(v);
    if (blen < 0 || (uint64_t) blen != (uint64_t) body_len) {
        llmc_entry_fail("body length %lld, %zu bytes stored",
                        (long long) blen, body_len);
    }

    /* the content type's bytes are in the metadata line verbatim */
    found = llmc_entry_find(meta, meta_len, ct, ct_len);
    if (found == NULL) {
        llmc_entry_fail("content_type not in canonical form");
    }

    entry->content_type = found;
    entry->content_type_len = ct_len;
    entry->body = nl + 1;
    entry->body_len = body_len;
    entry->created = created;
    memcpy(entry->model, model, model_len);
    entry->model[model_len] = '\0';
    memcpy(entry->api, api, api_len);
    entry->api[api_len] = '\0';

    json_decref(obj);
    return 0;

failed:

    json_decref(obj);
    memset(entry, 0, sizeof(*entry));
    return -1;
}
