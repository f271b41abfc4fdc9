/*
 * The entry decoder reads the metadata line llmc_entry_encode() writes
 * without jansson, and leaves every other line to jansson.  Lines close to
 * the written form must get the same verdict either way: what JSON allows
 * decodes, what it does not is refused.
 */

#include <string.h>

#include "tap.h"
#include "llmc_entry.h"

static char  err[256];

/* "LLMC1\n" meta "\n" body */
static int
decode_meta(llmc_entry_t *e, const char *meta, const char *body)
{
    static char  buf[1024];
    size_t       len;

    len = (size_t) snprintf(buf, sizeof(buf), "LLMC1\n%s\n%s", meta, body);
    return llmc_entry_decode(e, buf, len, err, sizeof(err));
}

#define GOOD(m_, b_, why)                                                    \
    do {                                                                     \
        llmc_entry_t  e_;                                                    \
        is_int(decode_meta(&e_, m_, b_), 0, "decodes: %s (%s)", why,     \
               err);                                                         \
    } while (0)

#define BAD(m_, b_, why)                                                     \
    do {                                                                     \
        llmc_entry_t  e_;                                                    \
        is_int(decode_meta(&e_, m_, b_), -1, "refused: %s", why);        \
        ok(e_.body == NULL && e_.model[0] == '\0', "nothing left: %s", why); \
    } while (0)

static void
test_written_form(void)
{
    char          *v;
    size_t         len;
    llmc_entry_t   e;

    v = llmc_entry_encode("text/event-stream", 17, "messages", "claude-x",
                          1700000000, "data: x\n\n", 9, &len);
    ok(v != NULL, "encode");
    is_int(llmc_entry_decode(&e, v, len, err, sizeof(err)), 0, "decode");
    is_int(e.content_type_len, 17, "content type length");
    ok(e.content_type && memcmp(e.content_type, "text/event-stream", 17)
       == 0, "content type points into the value");
    is_int(e.created, 1700000000, "created");
    is_int(e.body_len, 9, "body length");
    ok(e.body == v + len - 9, "body points into the value");
    is_str(e.model, "claude-x", "model");
    is_str(e.api, "messages", "api");
    free(v);

    /* a quote in the model is escaped: jansson's path reads it */
    v = llmc_entry_encode("application/json", 16, "chat", "m\"q\\", 0, "",
                          0, &len);
    ok(v != NULL, "encode a model with a quote and a backslash");
    is_int(llmc_entry_decode(&e, v, len, err, sizeof(err)), 0,
           "decode it: %s", err);
    is_str(e.model, "m\"q\\", "model unescaped");
    is_int(e.created, 0, "created 0");
    free(v);
}

static void
test_near_forms(void)
{
    GOOD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
         "\"created\":5,\"model\":\"m\"}", "xy", "written form");
    GOOD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
         "\"created\":5,\"model\":\"m\",\"x\":[1,{}]}", "xy",
         "an unknown field");
    GOOD("{\"model\":\"m\",\"created\":5,\"content_type\":\"a/b\","
         "\"body_len\":2,\"api\":\"chat\"}", "xy", "another key order");
    GOOD(" { \"api\" : \"chat\", \"body_len\":2,\"content_type\":\"a/b\","
         "\"created\":5,\"model\":\"m\"} ", "xy", "whitespace");
    GOOD("{\"api\":\"ch\\u0061t\",\"body_len\":2,\"content_type\":\"a/b\","
         "\"created\":5,\"model\":\"\\u00e9\"}", "xy", "escapes");
    GOOD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
         "\"created\":1234567890123456789,\"model\":\"m\"}", "xy",
         "a 19-digit time");

    BAD("{\"api\":\"chat\",\"body_len\":02,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"m\"}", "xy", "a leading zero");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":-5,\"model\":\"m\"}", "xy", "a negative time");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5.0,\"model\":\"m\"}", "xy", "a real time");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":99999999999999999999,\"model\":\"m\"}", "xy",
        "a time out of range");
    BAD("{\"api\":\"chat\",\"body_len\":3,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"m\"}", "xy", "a wrong body length");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"m\"}}", "xy", "a second brace");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"m\"", "xy", "no closing brace");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"m\",\"api\":\"chat\"}", "xy",
        "a duplicate key");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"\","
        "\"created\":5,\"model\":\"m\"}", "xy", "an empty content type");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"m\x01\"}", "xy", "a control byte");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"m\x7f\"}", "xy", "DEL in the model");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"m\xff\"}", "xy", "invalid UTF-8");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5,\"model\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "xy",
        "a model of 154 bytes");
    BAD("{\"api\":\"chat\",\"body_len\":2,\"content_type\":\"a/b\","
        "\"created\":5}", "xy", "no model");
}

int
main(void)
{
    test_written_form();
    test_near_forms();
    return done_testing();
}
