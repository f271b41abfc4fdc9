/*
 * The stored entry: round trip, and a rejection for every check of the
 * decoder.
 */

#include <string.h>

#include "tap.h"
#include "llmc_entry.h"

static const char  body[] = "{\"id\":\"x\",\"choices\":[]}\nsecond line\r\n";

static int
decode_str(const char *buf, size_t len, char *err, size_t errlen)
{
    llmc_entry_t  e;

    return llmc_entry_decode(&e, buf, len, err, errlen);
}

/* a hand-written value: "LLMC1\n" + meta + "\n" + b */
static char *
make_value(const char *meta, const char *b, size_t blen, size_t *len)
{
    size_t  mlen = strlen(meta);
    char   *v = malloc(6 + mlen + 1 + blen + 1);

    memcpy(v, "LLMC1\n", 6);
    memcpy(v + 6, meta, mlen);
    v[6 + mlen] = '\n';
    memcpy(v + 7 + mlen, b, blen);
    *len = 7 + mlen + blen;
    return v;
}

static void
test_round_trip(void)
{
    char          *v, err[256];
    size_t         len;
    llmc_entry_t   e;

    v = llmc_entry_encode("application/json", 16, "chat", "gpt-4o-mini",
                          1700000000, body, sizeof(body) - 1, &len);
    ok(v != NULL, "encode");
    ok(len > sizeof(body) - 1 + 6, "encoded length %zu", len);
    ok(memcmp(v, "LLMC1\n", 6) == 0, "magic first");
    ok(memchr(v + 6, '\n', len - 6) == v + len - (sizeof(body) - 1) - 1,
       "metadata is one line, the body follows");

    is_int(llmc_entry_decode(&e, v, len, err, sizeof(err)), 0,
           "decode: %s", err);
    is_int(e.content_type_len, 16, "content type length");
    ok(e.content_type && memcmp(e.content_type, "application/json", 16) == 0,
       "content type");
    ok(e.content_type >= v && e.content_type < v + len,
       "content type points into the value");
    is_int(e.body_len, sizeof(body) - 1, "body length");
    ok(e.body == v + len - e.body_len, "body points into the value");
    ok(memcmp(e.body, body, e.body_len) == 0, "body bytes, CR/LF kept");
    is_int(e.created, 1700000000, "created");
    is_str(e.model, "gpt-4o-mini", "model");
    is_str(e.api, "chat", "api");
    free(v);

    /* empty body, SSE content type with a parameter */
    v = llmc_entry_encode("text/event-stream; charset=utf-8", 32, "messages",
                          "claude-x", 0, NULL, 0, &len);
    ok(v != NULL, "encode an empty body");
    is_int(llmc_entry_decode(&e, v, len, err, sizeof(err)), 0,
           "decode an empty body: %s", err);
    is_int(e.body_len, 0, "empty body length");
    ok(e.content_type_len == 32
       && memcmp(e.content_type, "text/event-stream; charset=utf-8", 32)
          == 0, "content type with a parameter");
    free(v);

    /* a body with NUL bytes and "LLMC1\n" inside */
    {
        static const char  bin[] = "a\0b\nLLMC1\n{}\n";

        v = llmc_entry_encode("application/octet-stream", 24, "responses",
                              "m", 5, bin, sizeof(bin), &len);
        is_int(llmc_entry_decode(&e, v, len, err, sizeof(err)), 0,
               "binary body: %s", err);
        ok(e.body_len == sizeof(bin) && memcmp(e.body, bin, sizeof(bin)) == 0,
           "binary body bytes");
        free(v);
    }
}

static void
test_encode_rejects(void)
{
    char    model[200];
    size_t  len;

    ok(llmc_entry_encode("text/plain\r\nX-Evil: 1", 21, "chat", "m", 1,
                         "x", 1, &len) == NULL, "encode: CRLF in content type");
    ok(llmc_entry_encode("text/\"x\"", 8, "chat", "m", 1, "x", 1, &len)
       == NULL, "encode: quote in content type");
    ok(llmc_entry_encode("", 0, "chat", "m", 1, "x", 1, &len) == NULL,
       "encode: empty content type");
    ok(llmc_entry_encode("text/plain", 10, "chat", "m", -1, "x", 1, &len)
       == NULL, "encode: negative time");
    ok(llmc_entry_encode("text/plain", 10, "an-api-name-longer-than-24",
                         "m", 1, "x", 1, &len) == NULL,
       "encode: api too long");
    memset(model, 'm', sizeof(model) - 1);
    model[sizeof(model) - 1] = '\0';
    ok(llmc_entry_encode("text/plain", 10, "chat", model, 1, "x", 1, &len)
       == NULL, "encode: model too long");
    model[128] = '\0';
    ok(llmc_entry_encode("text/plain", 10, "chat", model, 1, "x", 1, &len)
       == NULL, "encode: a model of 128 bytes does not fit");
    model[127] = '\0';
    {
        char  *v = llmc_entry_encode("text/plain", 10, "chat", model, 1, "x",
                                     1, &len);
        ok(v != NULL, "encode: a model of 127 bytes fits");
        free(v);
    }
}

static void
test_decode_rejects(void)
{
    char          *v, *w, err[256];
    size_t         len, i;
    llmc_entry_t   e;

    v = llmc_entry_encode("application/json", 16, "chat", "gpt", 42,
                          body, sizeof(body) - 1, &len);

    /* every truncation fails: the body length no longer matches */
    for (i = 0; i < len; i++) {
        if (decode_str(v, i, err, sizeof(err)) != -1) {
            break;
        }
    }
    is_int(i, len, "every truncated value is rejected");

    /* one byte more */
    w = malloc(len + 1);
    memcpy(w, v, len);
    w[len] = 'x';
    is_int(decode_str(w, len + 1, err, sizeof(err)), -1,
           "an extra byte is rejected");
    ok(strstr(err, "body length") != NULL, "reason: %s", err);

    /* wrong magic */
    memcpy(w, v, len);
    w[4] = '2';
    is_int(decode_str(w, len, err, sizeof(err)), -1, "LLMC2 is rejected");
    ok(strstr(err, "magic") != NULL, "reason: %s", err);
    free(w);

    is_int(decode_str(NULL, 0, err, sizeof(err)), -1, "NULL is rejected");
    is_int(decode_str("", 0, err, sizeof(err)), -1, "empty is rejected");
    is_int(decode_str("LLMC1\n", 6, err, sizeof(err)), -1,
           "no metadata line");
    is_int(llmc_entry_decode(&e, v, len, NULL, 0), 0,
           "decode with no error buffer");
    free(v);

#define REJECT(meta, b, why)                                                 \
    do {                                                                     \
        size_t  l_;                                                          \
        char   *v_ = make_value(meta, b, strlen(b), &l_);                    \
        is_int(decode_str(v_, l_, err, sizeof(err)), -1, "reject: %s", why); \
        free(v_);                                                            \
    } while (0)

    /* the control value is accepted, so each rejection below is its own */
    v = make_value("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
                   "\"text/plain\",\"created\":1,\"model\":\"m\"}", "hi", 2,
                   &len);
    is_int(decode_str(v, len, err, sizeof(err)), 0, "hand-written value: %s",
           err);
    free(v);

    REJECT("{\"api\":\"chat\",\"body_len\":3,\"content_type\":"
           "\"text/plain\",\"created\":1,\"model\":\"m\"}", "hi",
           "length mismatch");
    REJECT("{\"api\":\"chat\",\"body_len\":-2,\"content_type\":"
           "\"text/plain\",\"created\":1,\"model\":\"m\"}", "hi",
           "negative length");
    REJECT("{\"api\":\"chat\",\"body_len\":\"2\",\"content_type\":"
           "\"text/plain\",\"created\":1,\"model\":\"m\"}", "hi",
           "length as a string");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"text/plain\",\"created\":1,\"model\":\"m\"", "hi",
           "bad JSON");
    REJECT("[1,2]", "hi", "metadata not an object");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"body_len\":2,\"content_type\":"
           "\"text/plain\",\"created\":1,\"model\":\"m\"}", "hi",
           "duplicate key");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"text/plain\\r\\nSet-Cookie: a=b\",\"created\":1,\"model\":\"m\"}",
           "hi", "CRLF injection in the content type");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"text/plain\\u0007\",\"created\":1,\"model\":\"m\"}", "hi",
           "control byte in the content type");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"text/pl\\u00e4in\",\"created\":1,\"model\":\"m\"}", "hi",
           "non-ASCII content type");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"\",\"created\":1,\"model\":\"m\"}", "hi",
           "empty content type");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"\\u0074ext/plain\",\"created\":1,\"model\":\"m\"}", "hi",
           "escaped content type (not canonical)");
    REJECT("{\"api\":\"chat\",\"body_len\":2,"
           "\"created\":1,\"model\":\"m\"}", "hi", "no content type");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"text/plain\",\"model\":\"m\"}", "hi", "no created");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"text/plain\",\"created\":1.5,\"model\":\"m\"}", "hi",
           "created not an integer");
    REJECT("{\"api\":\"chat\",\"body_len\":2,\"content_type\":"
           "\"text/plain\",\"created\":1}", "hi", "no model");
    REJECT("{\"body_len\":2,\"content_type\":"
           "\"text/plain\",\"created\":1,\"model\":\"m\"}", "hi", "no api");
    REJECT("{\"api\":\"a-very-long-api-name-here\",\"body_len\":2,"
           "\"content_type\":\"text/plain\",\"created\":1,\"model\":\"m\"}",
           "hi", "api too long");
}

int
main(void)
{
    test_round_trip();
    test_encode_rejects();
    test_decode_rejects();
    return done_testing();
}
