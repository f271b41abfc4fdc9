/*
 * The scope serializer against jansson's json_dumps(JSON_COMPACT |
 * JSON_SORT_KEYS): stored keys hash those bytes, so the two must agree on
 * every tree, byte for byte.  Hand-picked edge cases first, then random
 * trees from a fixed seed.
 */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "tap.h"
#include "llmc_request.h"

/* compares both serializations of v; takes the reference */
static int
same(json_t *v, const char *name)
{
    int     rc;
    char   *want, *got;
    size_t  len = 0;

    want = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    got = llmc_json_dump_canon(v, 0, &len);
    rc = want && got && strcmp(want, got) == 0 && len == strlen(want);
    if (!rc && name) {
        printf("# %s\n#   want %s\n#   got  %s\n", name,
               want ? want : "(null)", got ? got : "(null)");
    }
    free(want);
    free(got);
    json_decref(v);
    return rc;
}

static void
test_cases(void)
{
    size_t      i;
    json_t     *o;
    static const char  *docs[] = {
        "{}", "[]", "[{}]", "[[]]", "{\"a\":{}}",
        "{\"b\":1,\"a\":2,\"aa\":3,\"A\":4,\"\":5,\"ab\":6}",
        "[true,false,null,0,-1,9223372036854775807,-9223372036854775808]",
        "[0.5,-0.0,0.7,1e300,1e-7,1.5e16,1e17,2.5e-5,5e-324,"
        "1.7976931348623157e308,123456789.125,-3.0,1e22,1e-300]",
        "[\"\",\"a\\\"b\",\"\\\\\",\"\\/\",\"\\b\\f\\n\\r\\t\","
        "\"\\u0001\\u001f\\u007f\",\"\\u00e9\\u2028\\ud83d\\ude00\","
        "\"\xed\x8c\x8c\xec\x8a\xa4\xed\x83\x80\"]",
        "{\"\\u0001\":1,\"\\n\":2,\"\\\"\":3,\"\\u00e9\":4,\"z\":5}",
        "{\"k\":[1,{\"y\":[],\"x\":{\"c\":null,\"b\":[1.25]}}]}",
    };

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        o = json_loads(docs[i], 0, NULL);
        ok(o != NULL && same(o, docs[i]), "same bytes: %.40s", docs[i]);
    }

    /* more members than fit the small sort buffer */
    o = json_object();
    for (i = 0; i < 300; i++) {
        char  k[16];

        snprintf(k, sizeof(k), "k%zu", (i * 7919) % 1000);
        json_object_set_new(o, k, json_integer((json_int_t) i));
    }
    ok(same(o, "300 members"), "same bytes: 300 members, sorted");

    ok(llmc_json_dump_canon(NULL, 0, NULL) == NULL, "NULL refused");
    o = json_string("x");
    ok(llmc_json_dump_canon(o, 0, NULL) == NULL, "a bare string refused");
    json_decref(o);
}

/* xorshift: reproducible trees */
static uint64_t  rng = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned) (rng % n);
}

static json_t *
rnd_string(void)
{
    size_t       i, n = rnd(6), len = 0;
    char         buf[64];
    static const char  *pieces[] = {
        "a", "b", "Z", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f",
        "\xc3\xa9", "\xe2\x80\xa8", "\xf0\x9f\x98\x80", "cache_control", " "
    };

    for (i = 0; i < n; i++) {
        const char  *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];

        memcpy(buf + len, p, strlen(p));
        len += strlen(p);
    }
    return json_stringn(buf, len);
}

static json_t *
rnd_number(void)
{
    static const double  reals[] = {
        0.1, 0.7, -0.0, 1e300, 1e-7, 2.5e-5, 1e17, 1.5e16, 5e-324, 1e22,
        3.0, -123.456, 9007199254740993.0
    };

    switch (rnd(4)) {
    case 0:
        return json_integer((json_int_t) rnd(100000) - 50000);
    case 1:
        return json_integer((json_int_t) (rng >> 1) * (rnd(2) ? 1 : -1));
    case 2:
        return json_real(reals[rnd(sizeof(reals) / sizeof(reals[0]))]);
    default:
        return json_real(((double) (rng >> 11) / 9007199254740992.0 - 0.5)
                         * pow(10.0, (double) rnd(40) - 20.0));
    }
}

static json_t *
rnd_tree(int depth)
{
    size_t   i, n;
    json_t  *v, *key;

    switch (rnd(depth > 4 ? 5 : 8)) {
    case 0:
        return rnd(3) == 0 ? json_null() : json_boolean(rnd(2));
    case 1:
    case 2:
        return rnd_number();
    case 3:
    case 4:
        return rnd_string();
    case 5:
        v = json_array();
        n = rnd(5);
        for (i = 0; i < n; i++) {
            json_array_append_new(v, rnd_tree(depth + 1));
        }
        return v;
    default:
        v = json_object();
        n = rnd(7);
        for (i = 0; i < n; i++) {
            key = rnd_string();
            json_object_set_new(v, json_string_value(key),
                                rnd_tree(depth + 1));
            json_decref(key);
        }
        return v;
    }
}

static void
test_random(void)
{
    int      i, bad = 0, n = 20000;
    json_t  *v;

    for (i = 0; i < n; i++) {
        v = rnd_tree(0);
        if (!json_is_object(v) && !json_is_array(v)) {
            v = json_pack("[o]", v);
        }
        if (!same(v, bad < 3 ? "random tree" : NULL)) {
            bad++;
        }
    }
    is_int(bad, 0, "%d random trees: same bytes as json_dumps", n);
}

int
main(void)
{
    test_cases();
    test_random();
    return done_testing();
}
