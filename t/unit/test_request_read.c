/*
 * The request model reads bodies with its own reader and leaves what it
 * does not take to json_loadb().  Either way the verdict must be jansson's:
 * a body jansson refuses fails with jansson's message, and a body it
 * accepts gives the scope and prompt of the same tree written out again by
 * jansson (another spelling: escapes decoded, numbers rewritten, no
 * whitespace).  Bodies around every rule of the grammar.
 */

#include <string.h>

#include <jansson.h>

#include "tap.h"
#include "llmc_json.h"
#include "llmc_request.h"

static char  err[512];

/* a chat body whose first message's content is `content`, plus `extra`
 * members */
static void
check(const char *content, const char *extra, const char *why)
{
    int              rc, rc2;
    char             body[2048], want[600], *again;
    json_t          *j;
    json_error_t     jerr;
    llmc_request_t   r, r2;

    snprintf(body, sizeof(body),
             " {\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
             "%s}]%s%s}\n", content, extra[0] ? "," : "", extra);

    rc = llmc_request_parse(&r, LLMC_API_CHAT, body, strlen(body), err,
                            sizeof(err));
    j = json_loadb(body, strlen(body), JSON_REJECT_DUPLICATES, &jerr);

    if (j == NULL) {
        snprintf(want, sizeof(want),
                 "llmc_request_parse: invalid JSON: %s at %d",
                 llmc_json_errmsg(&jerr), jerr.position);
        ok(rc == -1 && strcmp(err, want) == 0, "refused as jansson does: %s",
           why);
        if (rc == 0) {
            llmc_request_free(&r);
        } else if (strcmp(err, want) != 0) {
            printf("#   got  %s\n#   want %s\n", err, want);
        }
        return;
    }

    again = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    rc2 = llmc_request_parse(&r2, LLMC_API_CHAT, again, strlen(again), err,
                             sizeof(err));
    free(again);

    if (rc != 0 || rc2 != 0) {
        ok(rc == rc2, "same verdict as jansson's tree: %s", why);
    } else {
        ok(r.scope_len == r2.scope_len
           && strcmp(r.scope_json, r2.scope_json) == 0
           && r.prompt_len == r2.prompt_len
           && memcmp(r.prompt, r2.prompt, r.prompt_len) == 0
           && r.n_unknown == r2.n_unknown,
           "same scope and prompt as jansson's tree: %s", why);
        if (strcmp(r.scope_json, r2.scope_json) != 0) {
            printf("#   got  %s\n#   want %s\n", r.scope_json, r2.scope_json);
        }
    }
    if (rc == 0) {
        llmc_request_free(&r);
    }
    if (rc2 == 0) {
        llmc_request_free(&r2);
    }
}

static void
test_strings(void)
{
    size_t  i;
    static const char  *s[] = {
        "\"plain\"", "\"\"", "\"\\\"q\\\"\"", "\"\\\\\"", "\"\\/\"",
        "\"\\b\\f\\n\\r\\t\"", "\"\\u0041\\u00e9\\u20AC\"",
        "\"\\ud83d\\ude00\"", "\"\\uD83D\\uDE00\"", "\"\\udbff\\udfff\"",
        "\"\\ud800\\udc00\"", "\"\xed\x8c\x8c\xec\x8a\xa4\xed\x83\x80\"",
        "\"\x7f\"",
        /* refused */
        "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83dx\"", "\"\\ud83d\\u0041\"",
        "\"\\ud83d\\\"", "\"\\u0000\"", "\"a\\u0000b\"", "\"\\x\"",
        "\"\\uZZZZ\"", "\"\\u12\"", "\"\\u12G4\"", "\"\x01\"", "\"a\tb\"",
        "\"\\\"", "\"unterminated", "'single'",
    };

    for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        check(s[i], "", s[i]);
    }
    check("\"x\"", "\"k\\u0000\":1", "a NUL in a key");
    check("\"x\"", "\"\\u0078_k\":1,\"x_k\":2", "keys equal once decoded");
    check("\"x\"", "\"x_\\u00e9\":1", "an escaped key");
}

static void
test_numbers(void)
{
    size_t  i;
    char    extra[128];
    static const char  *n[] = {
        "0", "-0", "1", "-1", "1.0", "-0.0", "0.7", "1e5", "1E5", "1e+5",
        "1E-5", "0.1e1", "1e0001", "1.5e308", "1e-400", "4.9e-324",
        "9223372036854775807", "-9223372036854775808",
        "123456789012345678901234567890123456789012345678901234567890123.5",
        /* refused */
        "01", "-01", "00", "1.", "2.e5", ".5", "-.5", "1e", "1e+", "-", "+1",
        "1e400", "-1e400", "9223372036854775808", "-9223372036854775809",
        "99999999999999999999", "0x10", "1_0", "Infinity", "NaN", "1.5.3",
    };

    for (i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
        snprintf(extra, sizeof(extra), "\"temperature\":%s", n[i]);
        check("\"x\"", extra, n[i]);
        snprintf(extra, sizeof(extra), "\"x_list\":[%s, %s]", n[i], n[i]);
        check("\"x\"", extra, n[i]);
    }
}

static void
test_structure(void)
{
    size_t  i;
    static const char  *v[] = {
        "true", "false", "null", "[]", "{}", "[ ]", "{ }", "[1, [2, {}]]",
        "{\"a\" : { \"b\" :\t[ null ] } }", "\"x\"\r\n",
        /* refused */
        "tru", "nul", "truex", "True", "[,]", "{,}", "[1,]", "{\"a\":1,}",
        "{\"a\"}", "{\"a\":}", "{a:1}", "[1 2]", "{\"a\":1 \"b\":2}",
        "{\"a\":1,\"a\":2}", "{\"b\":{\"c\":1,\"c\":1}}",
    };

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char  extra[128];

        snprintf(extra, sizeof(extra), "\"x_v\":%s", v[i]);
        check("\"x\"", extra, v[i]);
    }
    check("[{\"type\":\"text\",\"text\":\"\\u0041 b\"}]", "",
          "an escaped latest text");
    check("\"x\"", "\"model\":\"again\"", "a duplicate top-level key");
}

static void
test_outside(void)
{
    int              rc;
    json_t          *j;
    llmc_request_t   r;
    json_error_t     jerr;
    size_t           i;
    static const char  *bodies[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
        " x",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
        "}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
        " {}",
        "\xef\xbb\xbf{\"model\":\"m\",\"messages\":[]}",
        "[{\"model\":\"m\"}]",
        "\"m\"",
        " \t\r\n",
    };

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        rc = llmc_request_parse(&r, LLMC_API_CHAT, bodies[i],
                                strlen(bodies[i]), err, sizeof(err));
        j = json_loadb(bodies[i], strlen(bodies[i]), JSON_REJECT_DUPLICATES,
                       &jerr);
        ok(rc == -1 && (j == NULL) == (strstr(err, "invalid JSON") != NULL),
           "refused, as jansson %s it: %.20s", j ? "reads" : "refuses",
           bodies[i]);
        json_decref(j);
    }

    /* a NUL byte after the object */
    rc = llmc_request_parse(&r, LLMC_API_CHAT, "{\"model\":\"m\"}\0", 14, err,
                            sizeof(err));
    ok(rc == -1 && strstr(err, "invalid JSON") != NULL,
       "a NUL byte after the object: %s", err);
}

int
main(void)
{
    test_strings();
    test_numbers();
    test_structure();
    test_outside();
    return done_testing();
}
