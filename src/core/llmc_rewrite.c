/*
 * Upstream request rewriting for provider-side prompt caching.
 *
 * The body is parsed with jansson (object key order preserved), changed in
 * place and dumped compact in the received key order.  Whatever does not
 * look like a request we understand is left alone: the caller then sends
 * the original bytes.  docs/provider-cache.md has the rules.
 */

#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_rewrite.h"

#define LLMC_RW_MAX_MARKS  4
#define LLMC_RW_TTL_5M     1
#define LLMC_RW_TTL_1H     2

/* Anthropic's minimum cacheable prefixes; the longest match wins.  The
 * providers' documents and other sources disagree for some models, hence
 * data that operators override with llmcache_min_cacheable_tokens. */
static const llmc_min_tokens_t  llmc_rw_min_builtin[] = {
    { "claude-opus-4-5*", 4096 },
    { "claude-opus-4-6*", 4096 },
    { "claude-haiku-4-5*", 4096 },
    { "claude-sonnet-4-6*", 2048 },
    { "*haiku*", 2048 },
    { "*", 1024 },
};

#define llmc_rw_nelts(a)  (sizeof(a) / sizeof((a)[0]))


int
llmc_glob_match(const char *p, const char *s)
{
    const char  *star = NULL, *back = NULL;

    while (*s) {
        if (*p == '*') {
            star = ++p;
            back = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star;
            s = ++back;
        } else {
            return 0;
        }
    }
    while (*p == '*') {
        p++;
    }
    return *p == '\0';
}


static const llmc_min_tokens_t *
llmc_rw_min_find(const llmc_min_tokens_t *t, size_t n, const char *model)
{
    size_t                    i, best_len = 0;
    const llmc_min_tokens_t  *best = NULL;

    for (i = 0; i < n; i++) {
        size_t l = strlen(t[i].pattern);
        if ((best == NULL || l > best_len)
            && llmc_glob_match(t[i].pattern, model))
        {
            best = &t[i];
            best_len = l;
        }
    }
    return best;
}


size_t
llmc_min_cacheable_tokens(const llmc_min_tokens_t *user, size_t n_user,
    const char *model)
{
    const llmc_min_tokens_t  *m;

    if (user != NULL && (m = llmc_rw_min_find(user, n_user, model))) {
        return m->tokens;
    }
    m = llmc_rw_min_find(llmc_rw_min_builtin,
                         llmc_rw_nelts(llmc_rw_min_builtin), model);
    return m ? m->tokens : 1024;
}


/*
 * Aims low: a breakpoint below the minimum only wastes one of four slots,
 * but the estimate should not claim a prefix reaches the minimum when the
 * provider counts less.  Latin script runs ~4 bytes a token; Hangul, CJK
 * and kana about a token per character; other scripts (Cyrillic, Greek,
 * Arabic, Indic...) about two characters a token.
 */
size_t
llmc_estimate_tokens(const char *text, size_t len)
{
    const unsigned char  *p = (const unsigned char *) text;
    size_t                i = 0, latin = 0, other = 0, one = 0;
    uint32_t              c;

    while (i < len) {
        if (p[i] < 0x80) {
            latin++;
            i++;
        } else if ((p[i] & 0xe0) == 0xc0 && i + 1 < len) {
            other++;
            i += 2;
        } else if ((p[i] & 0xf0) == 0xe0 && i + 2 < len) {
            c = ((uint32_t) (p[i] & 0x0f) << 12)
                | ((uint32_t) (p[i + 1] & 0x3f) << 6) | (p[i + 2] & 0x3f);
            if ((c >= 0x1100 && c <= 0x11ff) || (c >= 0x3040 && c <= 0x30ff)
                || (c >= 0x3130 && c <= 0x318f)
                || (c >= 0x3400 && c <= 0x4dbf)
                || (c >= 0x4e00 && c <= 0x9fff)
                || (c >= 0xac00 && c <= 0xd7af)
                || (c >= 0xf900 && c <= 0xfaff))
            {
                one++;
            } else {
                other++;
            }
            i += 3;
        } else if ((p[i] & 0xf8) == 0xf0 && i + 3 < len) {
            one++;                        /* emoji, CJK extensions */
            i += 4;
        } else {
            latin++;                      /* stray byte */
            i++;
        }
    }
    return latin / 4 + other / 2 + one;
}


static void
llmc_rw_info(char *info, size_t infolen, const char *fmt, const char *a)
{
    if (info != NULL && infolen > 0) {
        snprintf(info, infolen, fmt, a);
    }
}


/* --- output -------------------------------------------------------------- */

/*
 * The body is written back compact, in the received key order, with each
 * real in its shortest form that reads back as the same double (jansson
 * writes 0.7 as 0.69999999999999996).
 */
typedef struct {
    char    *p;
    size_t   n, cap;
    int      nomem;
} llmc_rw_out_t;


static void
llmc_rw_put(llmc_rw_out_t *o, const char *s, size_t n)
{
    char    *p;
    size_t   cap;

    if (o->nomem) {
        return;
    }
    if (o->n + n + 1 > o->cap) {
        cap = o->cap ? o->cap : 4096;
        while (cap < o->n + n + 1) {
            cap *= 2;
        }
        p = realloc(o->p, cap);
        if (p == NULL) {
            o->nomem = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}


static void
llmc_rw_put_str(llmc_rw_out_t *o, const char *s, size_t n)
{
    size_t  i, run = 0;
    char    esc[8];

    llmc_rw_put(o, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        llmc_rw_put(o, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
        case '\\':
            esc[0] = '\\';
            esc[1] = (char) c;
            break;
        case '\n':
            memcpy(esc, "\\n", 2);
            break;
        case '\r':
            memcpy(esc, "\\r", 2);
            break;
        case '\t':
            memcpy(esc, "\\t", 2);
            break;
        case '\b':
            memcpy(esc, "\\b", 2);
            break;
        case '\f':
            memcpy(esc, "\\f", 2);
            break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            llmc_rw_put(o, esc, 6);
            continue;
        }
        llmc_rw_put(o, esc, 2);
    }
    llmc_rw_put(o, s + run, n - run);
    llmc_rw_put(o, "\"", 1);
}


static void
llmc_rw_put_real(llmc_rw_out_t *o, double d)
{
    char   buf[40], *c;
    int    prec, n = 0;

    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if ((c = strchr(buf, ',')) != NULL) {
            *c = '.';                     /* a locale's decimal comma */
        }
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    if (strpbrk(buf, ".eEn") == NULL) {
        buf[n++] = '.';                   /* still a real: 1.0, not 1 */
        buf[n++] = '0';
        buf[n] = '\0';
    }
    llmc_rw_put(o, buf, (size_t) n);
}


static void
llmc_rw_put_json(llmc_rw_out_t *o, json_t *v)
{
    char         buf[32];
    const char  *key;
    json_t      *val;
    size_t       i;
    int          first = 1;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        llmc_rw_put(o, "{", 1);
        json_object_foreach(v, key, val) {
            if (!first) {
                llmc_rw_put(o, ",", 1);
            }
            first = 0;
            llmc_rw_put_str(o, key, strlen(key));
            llmc_rw_put(o, ":", 1);
            llmc_rw_put_json(o, val);
        }
        llmc_rw_put(o, "}", 1);
        break;
    case JSON_ARRAY:
        llmc_rw_put(o, "[", 1);
        for (i = 0; i < json_array_size(v); i++) {
            if (i) {
                llmc_rw_put(o, ",", 1);
            }
            llmc_rw_put_json(o, json_array_get(v, i));
        }
        llmc_rw_put(o, "]", 1);
        break;
    case JSON_STRING:
        llmc_rw_put_str(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        llmc_rw_put(o, buf, strlen(buf));
        break;
    case JSON_REAL:
        llmc_rw_put_real(o, json_real_value(v));
        break;
    case JSON_TRUE:
        llmc_rw_put(o, "true", 4);
        break;
    case JSON_FALSE:
        llmc_rw_put(o, "false", 5);
        break;
    default:
        llmc_rw_put(o, "null", 4);
    }
}


/* v as compact JSON (malloc()ed), or NULL when memory ran out; unlike
 * json_dumps(), which can drop bytes silently when an allocation fails */
static char *
llmc_rw_dump(json_t *v)
{
    llmc_rw_out_t  o;

    memset(&o, 0, sizeof(o));
    llmc_rw_put_json(&o, v);
    if (o.nomem || o.p == NULL) {
        free(o.p);
        return NULL;
    }
    return o.p;
}


/* -1 when memory ran out */
static int
llmc_rw_json_tokens(json_t *v, size_t *n)
{
    char  *s;

    s = llmc_rw_dump(v);
    if (s == NULL) {
        return -1;
    }
    *n = llmc_estimate_tokens(s, strlen(s));
    free(s);
    return 0;
}


/* --- Anthropic ----------------------------------------------------------- */

typedef struct {
    json_t  *holder;      /* the object that gets "cache_control" */
    json_t  *wrap;        /* an object whose string field becomes a block */
    const char *wrap_key; /* "system" or "content" */
    size_t   cum;         /* estimated tokens up to and including it */
    int      client;      /* client markers on it (and nested) */
    int      ok;          /* may carry a marker */
    int      ours;        /* our marker's ttl, 0: none */
} llmc_rw_block_t;

typedef struct {
    size_t   pos;
    int      ttl;
} llmc_rw_mark_t;

typedef struct {
    llmc_rw_block_t  *b;
    size_t            n, cap;
    llmc_rw_mark_t    marks[LLMC_RW_MAX_MARKS + 1];
    size_t            nmarks;     /* client markers, in prefix order */
    int               too_many;
    int               bad;
    size_t            cum;
} llmc_rw_anth_t;


static int
llmc_rw_ttl(json_t *cc)
{
    json_t      *t;
    const char  *s;

    if (!json_is_object(cc)) {
        return -1;
    }
    t = json_object_get(cc, "type");
    if (!json_is_string(t) || strcmp(json_string_value(t), "ephemeral")) {
        return -1;
    }
    t = json_object_get(cc, "ttl");
    if (t == NULL) {
        return LLMC_RW_TTL_5M;
    }
    s = json_string_value(t);
    if (s && strcmp(s, "5m") == 0) {
        return LLMC_RW_TTL_5M;
    }
    if (s && strcmp(s, "1h") == 0) {
        return LLMC_RW_TTL_1H;
    }
    return -1;
}


static int
llmc_rw_client_mark(llmc_rw_anth_t *a, json_t *obj, size_t pos)
{
    json_t  *cc;
    int      ttl;

    cc = json_object_get(obj, "cache_control");
    if (cc == NULL) {
        return 0;
    }
    ttl = llmc_rw_ttl(cc);
    if (ttl < 0) {
        a->bad = 1;
        return 0;
    }
    if (a->nmarks == LLMC_RW_MAX_MARKS) {
        a->too_many = 1;
        return 1;
    }
    a->marks[a->nmarks].pos = pos;
    a->marks[a->nmarks].ttl = ttl;
    a->nmarks++;
    return 1;
}


static llmc_rw_block_t *
llmc_rw_push(llmc_rw_anth_t *a, size_t tokens)
{
    llmc_rw_block_t  *b;

    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        b = realloc(a->b, cap * sizeof(*b));
        if (b == NULL) {
            return NULL;
        }
        a->b = b;
        a->cap = cap;
    }
    b = &a->b[a->n++];
    memset(b, 0, sizeof(*b));
    a->cum += tokens;
    b->cum = a->cum;
    return b;
}


/* A content block of a message (or of the system array).  Returns -1 on
 * allocation failure. */
static int
llmc_rw_content_block(llmc_rw_anth_t *a, json_t *blk, int system)
{
    json_t           *t, *sub;
    const char       *type;
    size_t            tokens, i;
    llmc_rw_block_t  *b;

    if (!json_is_object(blk)
        || !json_is_string(t = json_object_get(blk, "type")))
    {
        a->bad = 1;
        return 0;
    }
    type = json_string_value(t);
    if (system && strcmp(type, "text") != 0) {
        a->bad = 1;
        return 0;
    }
    if (strcmp(type, "text") == 0) {
        t = json_object_get(blk, "text");
        if (!json_is_string(t)) {
            a->bad = 1;
            return 0;
        }
        tokens = llmc_estimate_tokens(json_string_value(t),
                                      json_string_length(t));
    } else if (llmc_rw_json_tokens(blk, &tokens) != 0) {
        return -1;
    }
    b = llmc_rw_push(a, tokens);
    if (b == NULL) {
        return -1;
    }
    b->holder = blk;

    /* markers inside a tool_result end with it */
    if (strcmp(type, "tool_result") == 0
        && json_is_array(sub = json_object_get(blk, "content")))
    {
        for (i = 0; i < json_array_size(sub); i++) {
            json_t *s = json_array_get(sub, i);
            if (!json_is_object(s)) {
                a->bad = 1;
                return 0;
            }
            b->client += llmc_rw_client_mark(a, s, a->n - 1);
        }
    }
    b->client += llmc_rw_client_mark(a, blk, a->n - 1);

    if (strcmp(type, "text") == 0) {
        b->ok = json_string_length(json_object_get(blk, "text")) > 0;
    } else {
        b->ok = strcmp(type, "thinking") != 0
                && strcmp(type, "redacted_thinking") != 0;
    }
    return 0;
}


/* Would the client's markers plus ours break "1h before 5m"? */
static int
llmc_rw_ttl_order_ok(llmc_rw_anth_t *a)
{
    size_t  i, m = 0;
    int     seen_5m = 0;

    for (i = 0; i <= a->n; i++) {
        /* client markers at this position come first (nested ones) */
        while (m < a->nmarks && a->marks[m].pos == i) {
            if (a->marks[m].ttl == LLMC_RW_TTL_1H && seen_5m) {
                return 0;
            }
            seen_5m |= a->marks[m].ttl == LLMC_RW_TTL_5M;
            m++;
        }
        if (i < a->n && a->b[i].ours) {
            if (a->b[i].ours == LLMC_RW_TTL_1H && seen_5m) {
                return 0;
            }
            seen_5m |= a->b[i].ours == LLMC_RW_TTL_5M;
        }
    }
    return 1;
}


static int
llmc_rw_last_ok(llmc_rw_anth_t *a, size_t from, size_t to)
{
    size_t  i;

    for (i = to; i > from; i--) {
        if (a->b[i - 1].ok) {
            return (int) (i - 1);
        }
    }
    return -1;
}


static int
llmc_rw_set_marker(llmc_rw_block_t *b, int ttl)
{
    json_t  *cc, *blk;

    if (b->wrap != NULL) {
        json_t *s = json_object_get(b->wrap, b->wrap_key);
        blk = json_pack("{s:s,s:O}", "type", "text", "text", s);
        if (blk == NULL) {
            return -1;
        }
        if (json_object_set_new(b->wrap, b->wrap_key,
                                json_pack("[o]", blk)) != 0)
        {
            return -1;
        }
        b->holder = blk;
    }
    cc = ttl == LLMC_RW_TTL_1H
         ? json_pack("{s:s,s:s}", "type", "ephemeral", "ttl", "1h")
         : json_pack("{s:s}", "type", "ephemeral");
    if (cc == NULL || json_object_set_new(b->holder, "cache_control", cc)) {
        return -1;
    }
    return 0;
}


static int
llmc_rw_anthropic(json_t *root, const llmc_rewrite_conf_t *conf,
    int *changed, char *info, size_t infolen)
{
    int               rc = 0, cand[4], nc = 0, k, placed = 0, want;
    int               top_ttl = 0, u, ttl;
    size_t            i, j, min, slots, first_msg, last_tool = 0;
    size_t            last_sys = 0, u_first = 0;
    json_t           *model, *tools, *system, *msgs, *m, *c, *role, *top;
    llmc_rw_anth_t    a;
    llmc_rw_block_t  *b;
    char              what[64];

    memset(&a, 0, sizeof(a));
    model = json_object_get(root, "model");
    msgs = json_object_get(root, "messages");
    tools = json_object_get(root, "tools");
    system = json_object_get(root, "system");
    if (!json_is_string(model) || !json_is_array(msgs)
        || json_array_size(msgs) == 0
        || (tools != NULL && !json_is_array(tools)))
    {
        llmc_rw_info(info, infolen, "%s", "untouched: not a messages request");
        return 0;
    }

    if (tools != NULL) {
        for (i = 0; i < json_array_size(tools); i++) {
            json_t *t = json_array_get(tools, i);
            size_t  n;
            if (!json_is_object(t)) {
                a.bad = 1;
                break;
            }
            if (llmc_rw_json_tokens(t, &n) != 0) {
                goto nomem;
            }
            b = llmc_rw_push(&a, n);
            if (b == NULL) {
                goto nomem;
            }
            b->holder = t;
            b->ok = 1;
            b->client = llmc_rw_client_mark(&a, t, a.n - 1);
            last_tool = a.n;
        }
    }

    if (json_is_string(system)) {
        if (json_string_length(system) > 0) {
            b = llmc_rw_push(&a, llmc_estimate_tokens(
                                 json_string_value(system),
                                 json_string_length(system)));
            if (b == NULL) {
                goto nomem;
            }
            b->wrap = root;
            b->wrap_key = "system";
            b->ok = 1;
            last_sys = a.n;
        }
    } else if (json_is_array(system)) {
        for (i = 0; i < json_array_size(system); i++) {
            if (llmc_rw_content_block(&a, json_array_get(system, i), 1)) {
                goto nomem;
            }
            last_sys = a.n;
        }
    } else if (system != NULL) {
        a.bad = 1;
    }

    first_msg = a.n;
    u = -1;
    for (i = 0; i < json_array_size(msgs) && !a.bad; i++) {
        m = json_array_get(msgs, i);
        role = json_object_get(m, "role");
        c = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role)) {
            a.bad = 1;
            break;
        }
        if (strcmp(json_string_value(role), "user") == 0) {
            u = (int) i;
            u_first = a.n;
        }
        a.cum += 3;                       /* the role's own tokens */
        if (json_is_string(c)) {
            b = llmc_rw_push(&a, llmc_estimate_tokens(json_string_value(c),
                                                  json_string_length(c)));
            if (b == NULL) {
                goto nomem;
            }
            b->wrap = m;
            b->wrap_key = "content";
            b->ok = json_string_length(c) > 0;
        } else if (json_is_array(c)) {
            for (j = 0; j < json_array_size(c); j++) {
                if (llmc_rw_content_block(&a, json_array_get(c, j), 0)) {
                    goto nomem;
                }
            }
        } else {
            a.bad = 1;
        }
    }

    top = json_object_get(root, "cache_control");
    if (top != NULL && !a.bad) {
        top_ttl = llmc_rw_ttl(top);
        if (top_ttl < 0) {
            a.bad = 1;
        } else if (a.nmarks == LLMC_RW_MAX_MARKS) {
            a.too_many = 1;
        } else {
            a.marks[a.nmarks].pos = a.n;
            a.marks[a.nmarks].ttl = top_ttl;
            a.nmarks++;
            if (a.n > 0) {
                a.b[a.n - 1].ok = 0;      /* already marked by it */
            }
        }
    }

    if (a.bad) {
        llmc_rw_info(info, infolen, "%s", "untouched: unexpected shape");
        goto done;
    }
    if (a.too_many || a.nmarks >= LLMC_RW_MAX_MARKS) {
        llmc_rw_info(info, infolen, "%s",
                     a.too_many ? "untouched: more than 4 cache_control"
                                : "untouched: 4 client breakpoints");
        goto done;
    }

    /* candidates, most useful first */
    if (u >= 0) {
        /* the newest user turn: written now, read by the next request;
         * its blocks end where the next message's begin */
        json_t *cu = json_object_get(json_array_get(msgs, (size_t) u),
                                     "content");
        k = llmc_rw_last_ok(&a, u_first, u_first + (json_is_array(cu)
                                          ? json_array_size(cu) : 1));
        if (k >= 0) {
            cand[nc++] = k;
        }
    }
    k = -1;
    if (last_sys > 0) {
        k = (int) last_sys - 1;
    } else if (last_tool > 0) {
        k = (int) last_tool - 1;
    }
    if (k >= 0) {
        cand[nc++] = k;
    }
    if (u >= 0) {
        /* the conversation before the newest turn */
        k = llmc_rw_last_ok(&a, first_msg, u_first);
        if (k >= 0) {
            cand[nc++] = k;
        }
    }
    if (last_tool > 0 && last_sys > 0) {
        cand[nc++] = (int) last_tool - 1;
    }

    min = llmc_min_cacheable_tokens(conf->min_tokens, conf->n_min_tokens,
                                    json_string_value(model));
    slots = LLMC_RW_MAX_MARKS - a.nmarks;
    want = conf->anthropic_ttl_1h ? LLMC_RW_TTL_1H : LLMC_RW_TTL_5M;

    for (k = 0; k < nc && (size_t) placed < slots; k++) {
        b = &a.b[cand[k]];
        if (!b->ok || b->client || b->ours || b->cum < min) {
            continue;
        }
        for (ttl = want; ttl >= LLMC_RW_TTL_5M; ttl--) {
            b->ours = ttl;
            if (llmc_rw_ttl_order_ok(&a)) {
                break;
            }
            b->ours = 0;
        }
        if (b->ours) {
            placed++;
        }
    }

    if (placed == 0) {
        llmc_rw_info(info, infolen, "%s",
                     "untouched: no breakpoint reaches the minimum");
        goto done;
    }

    /* in prefix order; wrapping a string does not move other blocks */
    for (i = 0; i < a.n; i++) {
        if (a.b[i].ours && llmc_rw_set_marker(&a.b[i], a.b[i].ours) != 0) {
            goto nomem;
        }
    }
    *changed = 1;
    snprintf(what, sizeof(what), "anthropic: %d breakpoint%s added, %d kept",
             placed, placed == 1 ? "" : "s", (int) a.nmarks);
    llmc_rw_info(info, infolen, "%s", what);

done:
    free(a.b);
    return rc;

nomem:
    free(a.b);
    return -1;
}


/* --- OpenAI -------------------------------------------------------------- */

/* A copy with object keys sorted, except the member order of "properties"
 * (a schema's properties: structured outputs generate fields in that
 * order) and of anything under "enum"/"const"/"default"/"examples" (data,
 * not schema). */
static json_t *
llmc_rw_sorted(json_t *v, int keep)
{
    size_t       i, n;
    const char  *key, **keys;
    json_t      *out, *val, *s;

    if (json_is_array(v)) {
        out = json_array();
        for (i = 0; out && i < json_array_size(v); i++) {
            s = llmc_rw_sorted(json_array_get(v, i), keep);
            if (s == NULL || json_array_append_new(out, s)) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (!json_is_object(v) || keep == 2) {
        return json_incref(v);
    }
    n = json_object_size(v);
    keys = malloc((n ? n : 1) * sizeof(*keys));
    if (keys == NULL) {
        return NULL;
    }
    i = 0;
    json_object_foreach(v, key, val) {
        keys[i++] = key;
    }
    if (!keep) {
        /* insertion sort: schemas are small */
        for (i = 1; i < n; i++) {
            const char *k = keys[i];
            size_t j = i;
            while (j > 0 && strcmp(keys[j - 1], k) > 0) {
                keys[j] = keys[j - 1];
                j--;
            }
            keys[j] = k;
        }
    }
    out = json_object();
    for (i = 0; out && i < n; i++) {
        int sub = 0;
        if (!keep && strcmp(keys[i], "properties") == 0) {
            sub = 1;
        } else if (!keep && (strcmp(keys[i], "enum") == 0
                   || strcmp(keys[i], "const") == 0
                   || strcmp(keys[i], "default") == 0
                   || strcmp(keys[i], "examples") == 0))
        {
            sub = 2;
        }
        s = llmc_rw_sorted(json_object_get(v, keys[i]), sub);
        if (s == NULL || json_object_set_new(out, keys[i], s)) {
            json_decref(out);
            out = NULL;
        }
    }
    free(keys);
    return out;
}


static const char *
llmc_rw_tool_name(json_t *t)
{
    json_t  *f = json_object_get(t, "function");
    json_t  *n = json_object_get(json_is_object(f) ? f : t, "name");

    return json_is_string(n) ? json_string_value(n) : "";
}


static const char *
llmc_rw_tool_type(json_t *t)
{
    json_t  *n = json_object_get(t, "type");

    return json_is_string(n) ? json_string_value(n) : "";
}


static int
llmc_rw_tool_cmp(json_t *x, json_t *y)
{
    int  r = strcmp(llmc_rw_tool_name(x), llmc_rw_tool_name(y));

    return r ? r : strcmp(llmc_rw_tool_type(x), llmc_rw_tool_type(y));
}


/* Tools sorted by name (stably), each with sorted keys.  Returns 1 when
 * the dump changed, 0 when not, -1 on allocation failure. */
static int
llmc_rw_tools(json_t *root)
{
    size_t    i, j, n;
    json_t   *tools, *sorted, **v;
    char     *before, *after;
    int       rc;

    tools = json_object_get(root, "tools");
    if (!json_is_array(tools) || (n = json_array_size(tools)) == 0) {
        return 0;
    }
    v = malloc(n * sizeof(*v));
    if (v == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        json_t *t = json_array_get(tools, i);
        for (j = i; j > 0 && llmc_rw_tool_cmp(v[j - 1], t) > 0; j--) {
            v[j] = v[j - 1];
        }
        v[j] = t;
    }
    sorted = json_array();
    for (i = 0; sorted && i < n; i++) {
        json_t *s = llmc_rw_sorted(v[i], 0);
        if (s == NULL || json_array_append_new(sorted, s)) {
            json_decref(sorted);
            sorted = NULL;
        }
    }
    free(v);
    if (sorted == NULL) {
        return -1;
    }
    before = llmc_rw_dump(tools);
    after = llmc_rw_dump(sorted);
    if (before == NULL || after == NULL) {
        rc = -1;
    } else if (strcmp(before, after) == 0) {
        rc = 0;
    } else {
        rc = json_object_set(root, "tools", sorted) ? -1 : 1;
    }
    free(before);
    free(after);
    json_decref(sorted);
    return rc;
}


typedef struct {
    regex_t  *re;
    size_t    n;
    char     *moved;          /* matched texts, "\n"-joined */
    size_t    moved_len;
    int       nomem;
} llmc_rw_vol_t;


/* Removes every match of every regex from s; returns a new string or NULL
 * when nothing matched (or on allocation failure: v->nomem). */
static char *
llmc_rw_strip(llmc_rw_vol_t *v, const char *s)
{
    size_t      r, len, n;
    char       *cur, *next, *p;
    regmatch_t  m;
    int         any = 0;

    cur = strdup(s);
    if (cur == NULL) {
        v->nomem = 1;
        return NULL;
    }
    for (r = 0; r < v->n; r++) {
        len = strlen(cur);
        next = malloc(len + 1);
        if (next == NULL) {
            free(cur);
            v->nomem = 1;
            return NULL;
        }
        n = 0;
        p = cur;
        while (*p && regexec(&v->re[r], p, 1, &m, p == cur ? 0 : REG_NOTBOL)
                     == 0)
        {
            size_t ml = (size_t) (m.rm_eo - m.rm_so);
            if (ml == 0) {
                break;                    /* an empty match moves nothing */
            }
            memcpy(next + n, p, (size_t) m.rm_so);
            n += (size_t) m.rm_so;
            {
                char *mv = realloc(v->moved, v->moved_len + ml + 2);
                if (mv == NULL) {
                    free(next);
                    free(cur);
                    v->nomem = 1;
                    return NULL;
                }
                v->moved = mv;
                if (v->moved_len) {
                    mv[v->moved_len++] = '\n';
                }
                memcpy(mv + v->moved_len, p + m.rm_so, ml);
                v->moved_len += ml;
                mv[v->moved_len] = '\0';
            }
            p += m.rm_eo;
            any = 1;
        }
        len = strlen(p);
        memcpy(next + n, p, len + 1);
        free(cur);
        cur = next;
    }
    if (!any) {
        free(cur);
        return NULL;
    }
    return cur;
}


/* Strips the volatile text from a string field key of obj, or from the
 * text parts of an array in it.  -1 on allocation failure. */
static int
llmc_rw_strip_field(llmc_rw_vol_t *v, json_t *obj, const char *key)
{
    json_t      *c = json_object_get(obj, key), *part, *t;
    const char  *type;
    char        *s;
    size_t       i;

    if (json_is_string(c)) {
        s = llmc_rw_strip(v, json_string_value(c));
        if (s != NULL) {
            if (json_object_set_new(obj, key, json_string(s))) {
                v->nomem = 1;
            }
            free(s);
        }
        return v->nomem ? -1 : 0;
    }
    if (!json_is_array(c)) {
        return 0;
    }
    for (i = 0; i < json_array_size(c); i++) {
        part = json_array_get(c, i);
        type = json_string_value(json_object_get(part, "type"));
        t = json_object_get(part, "text");
        if (type == NULL || !json_is_string(t)
            || (strcmp(type, "text") && strcmp(type, "input_text")))
        {
            continue;
        }
        s = llmc_rw_strip(v, json_string_value(t));
        if (s != NULL) {
            if (json_object_set_new(part, "text", json_string(s))) {
                v->nomem = 1;
            }
            free(s);
        }
        if (v->nomem) {
            return -1;
        }
    }
    return 0;
}


static int
llmc_rw_is_role(json_t *m, const char *r1, const char *r2)
{
    const char  *r = json_string_value(json_object_get(m, "role"));

    return r != NULL && (strcmp(r, r1) == 0 || (r2 && strcmp(r, r2) == 0));
}


/* Moves volatile text out of the leading system/developer messages (and
 * the Responses API's instructions) into one new message: before the
 * newest user message when the list ends with one, else at the end. */
static int
llmc_rw_volatile(json_t *root, llmc_api_e api, const llmc_rewrite_conf_t *c,
    int *changed, json_t **added)
{
    size_t          i, n, at;
    int             rc = 0;
    json_t         *list, *m, *msg;
    llmc_rw_vol_t   v;

    memset(&v, 0, sizeof(v));
    v.re = calloc(c->n_volatile, sizeof(regex_t));
    if (v.re == NULL) {
        return -1;
    }
    for (i = 0; i < c->n_volatile; i++) {
        if (c->volatile_res[i] == NULL
            || regcomp(&v.re[v.n], c->volatile_res[i], REG_EXTENDED) != 0)
        {
            continue;                     /* checked at configuration */
        }
        v.n++;
    }

    list = json_object_get(root, api == LLMC_API_CHAT ? "messages" : "input");
    if (api == LLMC_API_RESPONSES
        && llmc_rw_strip_field(&v, root, "instructions"))
    {
        goto nomem;
    }
    if (json_is_array(list)) {
        for (i = 0; i < json_array_size(list); i++) {
            m = json_array_get(list, i);
            if (!llmc_rw_is_role(m, "system", "developer")) {
                break;
            }
            if (llmc_rw_strip_field(&v, m, "content")) {
                goto nomem;
            }
        }
    }
    if (v.moved == NULL) {
        goto done;
    }

    msg = json_pack("{s:s,s:s}", "role",
                    api == LLMC_API_CHAT ? "system" : "developer",
                    "content", v.moved);
    if (msg == NULL) {
        goto nomem;
    }
    if (json_is_string(list)) {
        /* a Responses input string is one user message */
        json_t *arr = json_pack("[o{s:s,s:O}]", msg, "role", "user",
                                "content", list);
        if (arr == NULL || json_object_set_new(root, "input", arr)) {
            goto nomem;
        }
        *added = msg;
    } else if (json_is_array(list)) {
        n = json_array_size(list);
        at = n;
        if (n > 0 && llmc_rw_is_role(json_array_get(list, n - 1), "user",
                                     NULL))
        {
            at = n - 1;
        }
        if (json_array_insert_new(list, at, msg)) {
            goto nomem;
        }
        *added = msg;
    } else {
        json_decref(msg);
    }
    *changed = 1;

done:
    for (i = 0; i < v.n; i++) {
        regfree(&v.re[i]);
    }
    free(v.re);
    free(v.moved);
    return rc;

nomem:
    rc = -1;
    goto done;
}


int
llmc_rewrite_regex_check(const char *re, char *err, size_t errlen)
{
    int      rc;
    regex_t  r;

    rc = regcomp(&r, re, REG_EXTENDED);
    if (rc != 0) {
        if (err != NULL && errlen > 0) {
            regerror(rc, &r, err, errlen);
        }
        return -1;
    }
    regfree(&r);
    return 0;
}


/* FNV-1a 64 of the model, the tools and the system text: the stable
 * prefix, which decides where a request's prefix is cached. */
static uint64_t
llmc_rw_fnv(uint64_t h, const char *s, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char) s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ 0xff;                      /* a field separator */
}


/* skip: the moved volatile text's message, not part of the prefix */
static int
llmc_rw_cache_key(json_t *root, llmc_api_e api, const char *conf_key,
    json_t *skip)
{
    uint64_t     h = 0xcbf29ce484222325ULL;
    json_t      *list, *m;
    char        *s, key[32];
    size_t       i;
    const char  *k[] = { "model", "tools", "instructions" };

    if (*conf_key != '\0') {
        return json_object_set_new(root, "prompt_cache_key",
                                   json_string(conf_key)) ? -1 : 0;
    }
    for (i = 0; i < 3; i++) {
        m = json_object_get(root, k[i]);
        if (m == NULL) {
            h = llmc_rw_fnv(h, "", 0);
            continue;
        }
        s = llmc_rw_dump(m);
        if (s == NULL) {
            return -1;
        }
        h = llmc_rw_fnv(h, s, strlen(s));
        free(s);
    }
    list = json_object_get(root, api == LLMC_API_CHAT ? "messages" : "input");
    for (i = 0; json_is_array(list) && i < json_array_size(list); i++) {
        m = json_array_get(list, i);
        if (m == skip || !llmc_rw_is_role(m, "system", "developer")) {
            break;
        }
        s = llmc_rw_dump(m);
        if (s == NULL) {
            return -1;
        }
        h = llmc_rw_fnv(h, s, strlen(s));
        free(s);
    }
    snprintf(key, sizeof(key), "llmc-%016llx", (unsigned long long) h);
    return json_object_set_new(root, "prompt_cache_key", json_string(key))
           ? -1 : 0;
}


static int
llmc_rw_openai(json_t *root, llmc_api_e api, const llmc_rewrite_conf_t *c,
    int *changed, char *info, size_t infolen)
{
    int      rc, tools = 0, vol = 0, key = 0, ret = 0;
    char     what[96];
    json_t  *added = NULL;

    if (!json_is_string(json_object_get(root, "model"))
        || (api == LLMC_API_CHAT
            && !json_is_array(json_object_get(root, "messages")))
        || (api == LLMC_API_RESPONSES
            && json_object_get(root, "input") == NULL
            && json_object_get(root, "previous_response_id") == NULL))
    {
        llmc_rw_info(info, infolen, "%s", "untouched: unexpected shape");
        return 0;
    }
    if (json_object_get(root, "tools") != NULL
        && !json_is_array(json_object_get(root, "tools")))
    {
        llmc_rw_info(info, infolen, "%s", "untouched: unexpected shape");
        return 0;
    }

    if (c->openai_stable) {
        rc = llmc_rw_tools(root);
        if (rc < 0) {
            return -1;
        }
        tools = rc;
        if (c->n_volatile > 0) {
            if (llmc_rw_volatile(root, api, c, &vol, &added) < 0) {
                return -1;
            }
        }
    }
    if (c->openai_cache_key != NULL
        && json_object_get(root, "prompt_cache_key") == NULL)
    {
        if (llmc_rw_cache_key(root, api, c->openai_cache_key, added) < 0) {
            return -1;
        }
        key = 1;
    }
    if (c->openai_retention != NULL && *c->openai_retention
        && json_object_get(root, "prompt_cache_retention") == NULL)
    {
        if (json_object_set_new(root, "prompt_cache_retention",
                                json_string(c->openai_retention)))
        {
            return -1;
        }
        ret = 1;
    }
    *changed = tools || vol || key || ret;
    snprintf(what, sizeof(what), "openai:%s%s%s%s",
             tools ? " tools sorted" : "", vol ? " volatile moved" : "",
             key ? " cache key" : "", ret ? " retention" : "");
    llmc_rw_info(info, infolen, "%s",
                 *changed ? what : "untouched: nothing to do");
    return 0;
}

int
llmc_rewrite(llmc_api_e api, const char *body, size_t len,
    const llmc_rewrite_conf_t *conf, char **out, size_t *out_len,
    char *info, size_t infolen)
{
    int            rc, changed = 0;
    json_t        *root;
    json_error_t   e;
    char          *s;

    *out = NULL;
    *out_len = 0;
    llmc_rw_info(info, infolen, "%s", "untouched: off");

    if (conf == NULL || body == NULL) {
        return 0;
    }
    if (api == LLMC_API_MESSAGES) {
        if (!conf->anthropic_auto) {
            return 0;
        }
    } else if (api == LLMC_API_CHAT || api == LLMC_API_RESPONSES) {
        if (!conf->openai_stable && conf->openai_cache_key == NULL
            && (conf->openai_retention == NULL || !*conf->openai_retention))
        {
            return 0;
        }
    } else {
        llmc_rw_info(info, infolen, "%s", "untouched: not applicable");
        return 0;
    }

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_object(root)) {
        llmc_rw_info(info, infolen, "%s", "untouched: invalid JSON");
        json_decref(root);
        return 0;
    }

    rc = api == LLMC_API_MESSAGES
         ? llmc_rw_anthropic(root, conf, &changed, info, infolen)
         : llmc_rw_openai(root, api, conf, &changed, info, infolen);
    if (rc < 0 || !changed) {
        json_decref(root);
        return rc < 0 ? -1 : 0;
    }

    s = llmc_rw_dump(root);
    json_decref(root);
    if (s == NULL) {
        return -1;
    }
    *out = s;
    *out_len = strlen(s);
    return 1;
}
