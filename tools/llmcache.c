/*
 * llmcache: the operator's command line for the gateway.
 *
 *     llmcache warm FILE --gateway URL [--concurrency N] [--header 'K: V']...
 *     llmcache warm FILE --faq [--redis HOST:PORT] [--tenant S] [--dict F]...
 *     llmcache stats URL
 *     llmcache purge URL (--key HEX | --scope HEX | --all)
 *     llmcache schema push FILE.xml --worker unix:/path.sock
 *
 * Exit status: 0 done, 1 failed, 2 usage error.  Reference: docs/cli.md.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "llmc_entry.h"
#include "llmc_key.h"
#include "llmc_normalize.h"
#include "llmc_request.h"
#include "llmc_tenant.h"

#define LLMCACHE_EXIT_FAIL   1
#define LLMCACHE_EXIT_USAGE  2
#define LLMCACHE_MAX_HEADERS 64
#define LLMCACHE_MAX_DICTS   32

typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
} buf_t;

/* options shared by the subcommands; each uses what it documents */
typedef struct {
    const char  *gateway;
    const char  *path;
    const char  *redis;
    const char  *redis_password;
    const char  *tenant;
    const char  *worker;
    const char  *key;
    const char  *scope;
    const char  *normalize;
    const char  *provider;
    const char  *headers[LLMCACHE_MAX_HEADERS];
    const char  *dicts[LLMCACHE_MAX_DICTS];
    int          nheaders;
    int          ndicts;
    int          concurrency;
    int          redis_db;
    long         ttl;
    long         timeout;
    int          faq;
    int          all;
    int          json;
    int          quiet;
} opts_t;

/* one request of a warm run */
typedef struct {
    char    *url;
    char    *body;
    size_t   body_len;
    int      line;
    long     status;
    char     cache[16];
    char     err[CURL_ERROR_SIZE];
    buf_t    resp;
} warm_req_t;

static const char *prog = "llmcache";


/* --- help ---------------------------------------------------------------- */

static const char usage_main[] =
"usage: llmcache <command> [options]\n"
"\n"
"commands:\n"
"  warm FILE --gateway URL    replay a JSONL file of requests through the\n"
"                             gateway so their answers get cached\n"
"  warm FILE --faq            store question/answer pairs in Redis without\n"
"                             calling the provider\n"
"  stats URL                  show the gateway's llmcache_metrics\n"
"  purge URL (--key HEX | --scope HEX | --all)\n"
"                             delete entries through llmcache_purge\n"
"  schema push FILE.xml --worker unix:/path.sock\n"
"                             register a PML schema with llmcache-worker\n"
"\n"
"`llmcache <command> --help` describes a command.  Exit status: 0 done,\n"
"1 failed, 2 usage error.  Reference: docs/cli.md.\n";

static const char usage_warm[] =
"usage: llmcache warm FILE --gateway URL [options]\n"
"       llmcache warm FILE --faq [options]\n"
"\n"
"Replay mode (--gateway): every line of FILE is one request, either\n"
"  {\"path\": \"/v1/chat/completions\", \"body\": {...}}  or a bare request\n"
"body (then --path says where it goes).  Each is POSTed to URL + path; the\n"
"summary counts the X-LLM-Cache header of the answers.\n"
"  --gateway URL        the gateway's base URL (http://127.0.0.1:8080)\n"
"  --path PATH          path for bare request bodies\n"
"  --concurrency N      requests in flight at once (default 4)\n"
"  --header 'K: V'      add a request header (repeatable), e.g.\n"
"                       'Authorization: Bearer sk-...' for the tenant\n"
"  --timeout SECONDS    per request (default 120)\n"
"\n"
"FAQ mode (--faq): every line is\n"
"  {\"question\": \"...\", \"answer\": \"...\", \"model\": \"...\",\n"
"   \"path\"?: \"/v1/messages\", \"params\"?: {...}}\n"
"and the answer is stored in Redis under the key the gateway computes for\n"
"a client asking that question (a request body of the path's API with the\n"
"model, the question as the user turn and params' fields), with no call\n"
"to the provider.  The options must match the gateway's configuration:\n"
"  --redis HOST:PORT | unix:/PATH   (default 127.0.0.1:6379)\n"
"  --redis-db N, --redis-password P\n"
"  --ttl SECONDS        entry lifetime (default 3600; s, m, h, d suffixes)\n"
"  --tenant STRING      the llmcache_key value of the clients; by default\n"
"                       what the default llmcache_key gives for --header:\n"
"                       Authorization's value then X-Api-Key's\n"
"  --header 'K: V'      the clients' headers (tenant and provider headers:\n"
"                       OpenAI-Organization, OpenAI-Project,\n"
"                       anthropic-version, anthropic-beta)\n"
"  --dict FILE          an llmcache_dictionary, in the gateway's order\n"
"                       (repeatable)\n"
"  --normalize 'STEPS'  llmcache_normalize's steps (default\n"
"                       'nfkc casefold space punct dict'; 'off')\n"
"  --provider auto|openai|anthropic   llmcache_provider (default auto)\n"
"  --path PATH          default path (default /v1/chat/completions)\n"
"\n"
"  --quiet              no progress, only the summary\n";

static const char usage_stats[] =
"usage: llmcache stats URL [--json] [--header 'K: V']... [--timeout S]\n"
"\n"
"Fetches URL?format=json from an llmcache_metrics location and prints\n"
"requests by cache status, the hit ratio, tokens and dollars saved, Redis\n"
"health, lookup latency and the models.  --json prints the document.\n";

static const char usage_purge[] =
"usage: llmcache purge URL (--key HEX | --scope HEX | --all)\n"
"                          [--header 'K: V']... [--timeout S]\n"
"\n"
"Sends DELETE URL?key=HEX (one entry: 64 hex digits, $llmcache_key),\n"
"?scope=HEX (every entry of a scope: 32 hex digits) or ?all=1 to an\n"
"llmcache_purge location and prints how many keys it deleted.\n";

static const char usage_schema[] =
"usage: llmcache schema push FILE.xml --worker unix:/PATH | http://HOST:PORT\n"
"                            [--timeout S]\n"
"\n"
"POSTs the PML schema in FILE.xml to the worker's /v1/schemas and prints\n"
"its answer.  A module's src=\"FILE\" (relative to FILE.xml) is read and its\n"
"text put inside the module, escaped: the worker takes schemas whole.\n";


static void
fail(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


static int
usage_error(const char *usage, const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return LLMCACHE_EXIT_USAGE;
}


/* --- small helpers ------------------------------------------------------- */

static int
buf_add(buf_t *b, const void *data, size_t len)
{
    char    *p;
    size_t   cap;

    if (b->len + len + 1 > b->cap) {
        cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        p = realloc(b->data, cap);
        if (p == NULL) {
            return -1;
        }
        b->data = p;
        b->cap = cap;
    }

    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}


static void
buf_free(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}


static int
read_file(const char *path, buf_t *b)
{
    FILE    *f;
    char     chunk[65536];
    size_t   n;

    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fail("%s: %s", path, strerror(errno));
        return -1;
    }

    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_add(b, chunk, n) != 0) {
            fail("%s: out of memory", path);
            goto failed;
        }
    }

    if (ferror(f)) {
        fail("%s: %s", path, strerror(errno));
        goto failed;
    }

    if (b->data == NULL && buf_add(b, "", 0) != 0) {
        goto failed;
    }

    if (f != stdin) {
        fclose(f);
    }
    return 0;

failed:

    if (f != stdin) {
        fclose(f);
    }
    return -1;
}


/* "30", "30s", "5m", "2h", "1d" -> seconds; -1 when invalid */
static long
parse_seconds(const char *s)
{
    char  *end;
    long   v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || v < 0) {
        return -1;
    }

    switch (*end) {
    case '\0': case 's': break;
    case 'm': v *= 60; break;
    case 'h': v *= 3600; break;
    case 'd': v *= 86400; break;
    default: return -1;
    }

    if (*end && end[1]) {
        return -1;
    }
    return v;
}


static int
parse_int(const char *s, int min, int max, int *out)
{
    char  *end;
    long   v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        return -1;
    }
    *out = (int) v;
    return 0;
}


static int
is_hex(const char *s, size_t len)
{
    size_t  i;

    if (strlen(s) != len) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')
              || (s[i] >= 'A' && s[i] <= 'F')))
        {
            return 0;
        }
    }
    return 1;
}


/* "K: V" -> name and value (value's leading blanks skipped); -1 if no ':' */
static int
split_header(const char *h, llmc_header_t *out)
{
    const char  *colon;

    colon = strchr(h, ':');
    if (colon == NULL || colon == h) {
        return -1;
    }
    out->name = h;
    out->name_len = colon - h;
    out->value = colon + 1;
    while (*out->value == ' ' || *out->value == '\t') {
        out->value++;
    }
    out->value_len = strlen(out->value);
    while (out->value_len && (out->value[out->value_len - 1] == ' '
                              || out->value[out->value_len - 1] == '\t'))
    {
        out->value_len--;
    }
    return 0;
}


/* base + path without a doubled or missing '/' */
static char *
url_join(const char *base, const char *path)
{
    char    *url;
    size_t   blen;

    blen = strlen(base);
    while (blen && base[blen - 1] == '/') {
        blen--;
    }
    while (*path == '/') {
        path++;
    }
    url = malloc(blen + strlen(path) + 2);
    if (url != NULL) {
        sprintf(url, "%.*s/%s", (int) blen, base, path);
    }
    return url;
}


/* --- options ------------------------------------------------------------- */

enum {
    OPT_GATEWAY = 256, OPT_PATH, OPT_CONCURRENCY, OPT_HEADER, OPT_TIMEOUT,
    OPT_FAQ, OPT_REDIS, OPT_REDIS_DB, OPT_REDIS_PASSWORD, OPT_TTL, OPT_TENANT,
    OPT_DICT, OPT_NORMALIZE, OPT_PROVIDER, OPT_QUIET, OPT_JSON, OPT_KEY,
    OPT_SCOPE, OPT_ALL, OPT_WORKER, OPT_HELP
};

static const struct option  long_opts[] = {
    { "gateway", required_argument, NULL, OPT_GATEWAY },
    { "path", required_argument, NULL, OPT_PATH },
    { "concurrency", required_argument, NULL, OPT_CONCURRENCY },
    { "header", required_argument, NULL, OPT_HEADER },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "faq", no_argument, NULL, OPT_FAQ },
    { "redis", required_argument, NULL, OPT_REDIS },
    { "redis-db", required_argument, NULL, OPT_REDIS_DB },
    { "redis-password", required_argument, NULL, OPT_REDIS_PASSWORD },
    { "ttl", required_argument, NULL, OPT_TTL },
    { "tenant", required_argument, NULL, OPT_TENANT },
    { "dict", required_argument, NULL, OPT_DICT },
    { "normalize", required_argument, NULL, OPT_NORMALIZE },
    { "provider", required_argument, NULL, OPT_PROVIDER },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "json", no_argument, NULL, OPT_JSON },
    { "key", required_argument, NULL, OPT_KEY },
    { "scope", required_argument, NULL, OPT_SCOPE },
    { "all", no_argument, NULL, OPT_ALL },
    { "worker", required_argument, NULL, OPT_WORKER },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 }
};


/*
 * Parses the options of a subcommand (argv[0] is its name); the operands
 * are left in argv[optind..].  Returns 0, 1 after --help, or the usage
 * exit status.  allowed lists the options the command takes.
 */
static int
parse_opts(int argc, char **argv, const char *usage, const int *allowed,
    opts_t *o)
{
    int  c, i, ok, idx;

    memset(o, 0, sizeof(opts_t));
    o->concurrency = 4;
    o->ttl = 3600;
    o->timeout = 120;

    optind = 1;
    opterr = 0;

    for ( ;; ) {
        idx = -1;
        c = getopt_long(argc, argv, "h", long_opts, &idx);
        if (c == -1) {
            break;
        }

        if (c == 'h' || c == OPT_HELP) {
            fputs(usage, stdout);
            return 1;
        }

        if (c == '?' || c == ':') {
            return usage_error(usage, "%s: unknown option or missing value: "
                               "%s", argv[0], argv[optind - 1]);
        }

        ok = 0;
        for (i = 0; allowed[i]; i++) {
            if (allowed[i] == c) {
                ok = 1;
            }
        }
        if (!ok) {
            return usage_error(usage, "%s does not take --%s", argv[0],
                               idx >= 0 ? long_opts[idx].name : "?");
        }

        switch (c) {
        case OPT_GATEWAY: o->gateway = optarg; break;
        case OPT_PATH: o->path = optarg; break;
        case OPT_CONCURRENCY:
            if (parse_int(optarg, 1, 1024, &o->concurrency) != 0) {
                return usage_error(usage, "--concurrency: 1 to 1024, not "
                                   "\"%s\"", optarg);
            }
            break;
        case OPT_HEADER:
            if (o->nheaders == LLMCACHE_MAX_HEADERS) {
                return usage_error(usage, "more than %d --header",
                                   LLMCACHE_MAX_HEADERS);
            }
            if (strchr(optarg, ':') == NULL || optarg[0] == ':'
                || strpbrk(optarg, "\r\n"))
            {
                return usage_error(usage, "--header: \"Name: value\", not "
                                   "\"%s\"", optarg);
            }
            o->headers[o->nheaders++] = optarg;
            break;
        case OPT_TIMEOUT:
            o->timeout = parse_seconds(optarg);
            if (o->timeout <= 0) {
                return usage_error(usage, "--timeout: a positive number of "
                                   "seconds, not \"%s\"", optarg);
            }
            break;
        case OPT_FAQ: o->faq = 1; break;
        case OPT_REDIS: o->redis = optarg; break;
        case OPT_REDIS_DB:
            if (parse_int(optarg, 0, 1 << 20, &o->redis_db) != 0) {
                return usage_error(usage, "--redis-db: a database number, "
                                   "not \"%s\"", optarg);
            }
            break;
        case OPT_REDIS_PASSWORD: o->redis_password = optarg; break;
        case OPT_TTL:
            o->ttl = parse_seconds(optarg);
            if (o->ttl <= 0) {
                return usage_error(usage, "--ttl: a positive time (30, 10m, "
                                   "1h, 7d), not \"%s\"", optarg);
            }
            break;
        case OPT_TENANT: o->tenant = optarg; break;
        case OPT_DICT:
            if (o->ndicts == LLMCACHE_MAX_DICTS) {
                return usage_error(usage, "more than %d --dict",
                                   LLMCACHE_MAX_DICTS);
            }
            o->dicts[o->ndicts++] = optarg;
            break;
        case OPT_NORMALIZE: o->normalize = optarg; break;
        case OPT_PROVIDER: o->provider = optarg; break;
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_KEY: o->key = optarg; break;
        case OPT_SCOPE: o->scope = optarg; break;
        case OPT_ALL: o->all = 1; break;
        case OPT_WORKER: o->worker = optarg; break;
        }
    }

    return 0;
}


/* --- HTTP ---------------------------------------------------------------- */

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
    return buf_add(arg, data, size * n) == 0 ? size * n : 0;
}


/* keeps X-LLM-Cache's value */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
    char    *cache = arg;
    size_t   len, i, vlen;

    len = size * n;

    if (len > 12 && strncasecmp(data, "X-LLM-Cache:", 12) == 0) {
        i = 12;
        while (i < len && (data[i] == ' ' || data[i] == '\t')) {
            i++;
        }
        vlen = 0;
        while (i + vlen < len && data[i + vlen] != '\r'
               && data[i + vlen] != '\n' && vlen < 15)
        {
            vlen++;
        }
        memcpy(cache, data + i, vlen);
        cache[vlen] = '\0';
    }

    return len;
}


static struct curl_slist *
header_list(const opts_t *o, const char *content_type)
{
    int                 i;
    char                ct[128];
    struct curl_slist  *list, *l;

    list = NULL;

    if (content_type) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        list = curl_slist_append(list, ct);
        if (list == NULL) {
            return NULL;
        }
    }

    /* no "Expect: 100-continue" round trip before bodies */
    l = curl_slist_append(list, "Expect:");
    if (l == NULL) {
        curl_slist_free_all(list);
        return NULL;
    }
    list = l;

    for (i = 0; i < o->nheaders; i++) {
        l = curl_slist_append(list, o->headers[i]);
        if (l == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = l;
    }

    return list;
}


/*
 * One request.  target is an http(s) URL, or "unix:/path.sock" with path
 * the request path.  Returns 0 with the status and body, or -1 with a
 * message written.
 */
static int
http_do(const char *method, const char *target, const char *path,
    struct curl_slist *headers, const char *body, size_t body_len,
    long timeout, long *status, buf_t *resp)
{
    int        rc;
    char      *url, errbuf[CURL_ERROR_SIZE];
    CURL      *h;
    CURLcode   cc;

    h = curl_easy_init();
    if (h == NULL) {
        fail("curl_easy_init() failed");
        return -1;
    }

    url = NULL;

    if (strncmp(target, "unix:", 5) == 0) {
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, target + 5);
        url = url_join("http://localhost", path ? path : "/");
    } else {
        url = path ? url_join(target, path) : strdup(target);
    }

    if (url == NULL) {
        curl_easy_cleanup(h);
        fail("out of memory");
        return -1;
    }

    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");

    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) body_len);
    }

    cc = curl_easy_perform(h);

    if (cc != CURLE_OK) {
        fail("%s %s: %s", method, url,
             errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = -1;

    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        if (resp->data == NULL) {
            buf_add(resp, "", 0);
        }
        rc = 0;
    }

    curl_easy_cleanup(h);
    free(url);
    return rc;
}


/* --- warm: replaying requests through the gateway ------------------------ */

typedef struct {
    int      total;
    int      done;
    int      errors;
    int      hit;
    int      semantic;
    int      miss;
    int      bypass;
    int      other;
    int      tty;
    int      quiet;
    double   start;
    double   drawn;
} progress_t;


static double
now_seconds(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
progress_show(progress_t *p)
{
    int     i, width, fill;
    double  now;

    if (p->quiet || !p->tty) {
        return;
    }

    /* a terminal redraw at most every 50 ms, and the last one */

    now = now_seconds();
    if (p->done < p->total && now - p->drawn < 0.05) {
        return;
    }
    p->drawn = now;

    width = 30;
    fill = p->total ? (int) ((long) p->done * width / p->total) : width;

    fputs("\r[", stderr);
    for (i = 0; i < width; i++) {
        fputc(i < fill ? '#' : '.', stderr);
    }
    fprintf(stderr, "] %d/%d  HIT %d  SEMANTIC %d  MISS %d  errors %d ",
            p->done, p->total, p->hit, p->semantic, p->miss, p->errors);
    fflush(stderr);
}


static void
progress_count(progress_t *p, const char *cache)
{
    if (strcmp(cache, "HIT") == 0) {
        p->hit++;
    } else if (strcmp(cache, "SEMANTIC") == 0) {
        p->semantic++;
    } else if (strcmp(cache, "MISS") == 0) {
        p->miss++;
    } else if (strcmp(cache, "BYPASS") == 0) {
        p->bypass++;
    } else {
        p->other++;
    }
}


/* reads one JSONL line of a replay file into r; -1 with a message */
static int
warm_prepare(const opts_t *o, const char *line, size_t len, int lineno,
    const char *file, warm_req_t *r)
{
    const char    *path;
    json_t        *root, *body, *p;
    json_error_t   jerr;

    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fail("%s:%d: invalid JSON: %s", file, lineno, jerr.text);
        return -1;
    }

    if (!json_is_object(root)) {
        fail("%s:%d: not a JSON object", file, lineno);
        json_decref(root);
        return -1;
    }

    body = json_object_get(root, "body");
    path = o->path;

    if (json_is_object(body)) {
        p = json_object_get(root, "path");
        if (p != NULL) {
            if (!json_is_string(p) || json_string_value(p)[0] != '/') {
                fail("%s:%d: \"path\" is not a string starting with '/'",
                     file, lineno);
                json_decref(root);
                return -1;
            }
            path = json_string_value(p);
        }

    } else if (body != NULL) {
        fail("%s:%d: \"body\" is not an object", file, lineno);
        json_decref(root);
        return -1;

    } else {
        body = root;
    }

    if (path == NULL) {
        fail("%s:%d: no \"path\" in the line and no --path", file, lineno);
        json_decref(root);
        return -1;
    }

    r->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    r->url = url_join(o->gateway, path);
    r->line = lineno;
    json_decref(root);

    if (r->body == NULL || r->url == NULL) {
        fail("out of memory");
        return -1;
    }

    r->body_len = strlen(r->body);
    return 0;
}


static CURL *
warm_handle(const opts_t *o, struct curl_slist *headers, warm_req_t *r)
{
    CURL  *h;

    h = curl_easy_init();
    if (h == NULL) {
        return NULL;
    }

    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t) r->body_len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, (void *) r->cache);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->err);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");

    return h;
}


/* the first line of an error body, for the log */
static void
warm_report(progress_t *p, warm_req_t *r, const char *file)
{
    int  n;

    if (r->err[0] || r->status < 200 || r->status > 299) {
        if (p->tty && !p->quiet) {
            fputc('\n', stderr);
        }
        if (r->err[0]) {
            fprintf(stderr, "%s: %s:%d: %s\n", prog, file, r->line, r->err);
        } else {
            n = 0;
            while (r->resp.data && r->resp.data[n] && r->resp.data[n] != '\n'
                   && n < 200)
            {
                n++;
            }
            fprintf(stderr, "%s: %s:%d: status %ld: %.*s\n", prog, file,
                    r->line, r->status, n, r->resp.data ? r->resp.data : "");
        }
        return;
    }

    if (!p->quiet && !p->tty) {
        fprintf(stderr, "%d/%d %s:%d %ld %s\n", p->done, p->total, file,
                r->line, r->status, r->cache[0] ? r->cache : "-");
    }
}


static int
warm_gateway(const opts_t *o, const char *file)
{
    int                 i, n, next, running, queued, rc;
    char               *line, *end;
    buf_t               in;
    CURL               *h;
    CURLM              *multi;
    CURLMsg            *msg;
    warm_req_t         *reqs, *r;
    progress_t          p;
    struct curl_slist  *headers;

    memset(&in, 0, sizeof(buf_t));
    if (read_file(file, &in) != 0) {
        return LLMCACHE_EXIT_FAIL;
    }

    /* every line first, so a bad file sends nothing */

    n = 1;
    for (i = 0; (size_t) i < in.len; i++) {
        n += (in.data[i] == '\n');
    }

    reqs = calloc(n, sizeof(warm_req_t));
    if (reqs == NULL) {
        buf_free(&in);
        fail("out of memory");
        return LLMCACHE_EXIT_FAIL;
    }

    rc = 0;
    queued = 0;
    line = in.data;

    for (i = 1; line < in.data + in.len; i++, line = end + 1) {
        end = memchr(line, '\n', in.data + in.len - line);
        if (end == NULL) {
            end = in.data + in.len;
        }
        if (strspn(line, " \t\r") >= (size_t) (end - line)) {
            continue;
        }
        if (warm_prepare(o, line, end - line, i, file, &reqs[queued]) != 0) {
            rc = LLMCACHE_EXIT_FAIL;
            queued++;
            break;
        }
        queued++;
    }

    buf_free(&in);

    headers = (rc == 0) ? header_list(o, "application/json") : NULL;
    if (rc == 0 && headers == NULL) {
        fail("out of memory");
        rc = LLMCACHE_EXIT_FAIL;
    }

    multi = (rc == 0) ? curl_multi_init() : NULL;
    if (rc == 0 && multi == NULL) {
        fail("curl_multi_init() failed");
        rc = LLMCACHE_EXIT_FAIL;
    }

    if (rc != 0) {
        goto done;
    }

    memset(&p, 0, sizeof(progress_t));
    p.total = queued;
    p.tty = isatty(STDERR_FILENO);
    p.quiet = o->quiet;
    p.start = now_seconds();

    progress_show(&p);

    next = 0;
    running = 0;

    while (p.done < queued) {

        while (running < o->concurrency && next < queued) {
            h = warm_handle(o, headers, &reqs[next]);
            if (h == NULL || curl_multi_add_handle(multi, h) != CURLM_OK) {
                fail("could not start a request");
                curl_easy_cleanup(h);
                rc = LLMCACHE_EXIT_FAIL;
                goto cleanup;
            }
            next++;
            running++;
        }

        curl_multi_perform(multi, &i);
        curl_multi_poll(multi, NULL, 0, 1000, NULL);
        curl_multi_perform(multi, &i);

        while ((msg = curl_multi_info_read(multi, &i)) != NULL) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }

            h = msg->easy_handle;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **) &r);

            if (msg->data.result != CURLE_OK) {
                if (r->err[0] == '\0') {
                    snprintf(r->err, sizeof(r->err), "%s",
                             curl_easy_strerror(msg->data.result));
                }
                p.errors++;

            } else {
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
                if (r->status < 200 || r->status > 299) {
                    p.errors++;
                }
            }

            if (r->err[0] == '\0') {
                progress_count(&p, r->cache);
            }

            p.done++;
            running--;

            warm_report(&p, r, file);
            buf_free(&r->resp);
            curl_multi_remove_handle(multi, h);
            curl_easy_cleanup(h);
            progress_show(&p);
        }
    }

    if (p.tty && !p.quiet) {
        fputc('\n', stderr);
    }

    printf("sent %d  HIT %d  SEMANTIC %d  MISS %d  BYPASS %d  no header %d"
           "  errors %d  seconds %.2f\n", p.done, p.hit, p.semantic, p.miss,
           p.bypass, p.other, p.errors, now_seconds() - p.start);

    if (p.errors) {
        rc = LLMCACHE_EXIT_FAIL;
    }

cleanup:

    curl_multi_cleanup(multi);

done:

    curl_slist_free_all(headers);
    for (i = 0; i < queued; i++) {
        free(reqs[i].url);
        free(reqs[i].body);
        buf_free(&reqs[i].resp);
    }
    free(reqs);
    return rc;
}


/* --- warm --faq: entries written straight to Redis ----------------------- */

typedef struct {
    llmc_dict_t       *dict;
    unsigned           steps;
    llmc_provider_e    provider;
    llmc_header_t      headers[LLMCACHE_MAX_HEADERS];
    size_t             nheaders;
    char              *tenant;       /* the llmcache_key value */
    size_t             tenant_len;
    redisContext      *redis;
} faq_t;


static int
faq_steps(const char *spec, unsigned *steps)
{
    const char  *p, *w;
    unsigned     bit;

    *steps = 0;

    if (spec == NULL) {
        *steps = LLMC_NORM_ALL;
        return 0;
    }

    if (strcmp(spec, "off") == 0) {
        return 0;
    }

    for (p = spec; *p; ) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        w = p;
        while (*p && *p != ' ' && *p != ',') {
            p++;
        }
        bit = llmc_norm_step(w, p - w);
        if (bit == 0) {
            fail("--normalize: unknown step \"%.*s\"", (int) (p - w), w);
            return -1;
        }
        *steps |= bit;
    }

    if (*steps == 0) {
        fail("--normalize: no steps (use \"off\")");
        return -1;
    }
    return 0;
}


static redisContext *
faq_redis_connect(const opts_t *o)
{
    char            host[256];
    const char     *addr, *colon;
    redisReply     *reply;
    redisContext   *c;
    struct timeval  tv;
    int             port;

    addr = o->redis ? o->redis : "127.0.0.1:6379";
    tv.tv_sec = 5;
    tv.tv_usec = 0;

    if (strncmp(addr, "unix:", 5) == 0) {
        c = redisConnectUnixWithTimeout(addr + 5, tv);

    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || colon == addr
            || (size_t) (colon - addr) >= sizeof(host)
            || parse_int(colon + 1, 1, 65535, &port) != 0)
        {
            fail("--redis: HOST:PORT or unix:/PATH, not \"%s\"", addr);
            return NULL;
        }
        memcpy(host, addr, colon - addr);
        host[colon - addr] = '\0';
        c = redisConnectWithTimeout(host, port, tv);
    }

    if (c == NULL || c->err) {
        fail("redis %s: %s", addr, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }

    redisSetTimeout(c, tv);

    if (o->redis_password) {
        reply = redisCommand(c, "AUTH %s", o->redis_password);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            fail("redis %s: AUTH: %s", addr,
                 reply ? reply->str : c->errstr);
            freeReplyObject(reply);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(reply);
    }

    if (o->redis_db) {
        reply = redisCommand(c, "SELECT %d", o->redis_db);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            fail("redis %s: SELECT %d: %s", addr, o->redis_db,
                 reply ? reply->str : c->errstr);
            freeReplyObject(reply);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(reply);
    }

    return c;
}


static int
faq_init(faq_t *f, const opts_t *o)
{
    int            i;
    char           err[512];
    size_t         j, len;
    llmc_header_t  h;

    memset(f, 0, sizeof(faq_t));

    if (faq_steps(o->normalize, &f->steps) != 0) {
        return LLMCACHE_EXIT_USAGE;
    }

    if (o->provider == NULL || strcmp(o->provider, "auto") == 0) {
        f->provider = LLMC_PROVIDER_UNKNOWN;
    } else if (strcmp(o->provider, "openai") == 0) {
        f->provider = LLMC_PROVIDER_OPENAI;
    } else if (strcmp(o->provider, "anthropic") == 0) {
        f->provider = LLMC_PROVIDER_ANTHROPIC;
    } else {
        fail("--provider: auto, openai or anthropic, not \"%s\"",
             o->provider);
        return LLMCACHE_EXIT_USAGE;
    }

    for (i = 0; i < o->nheaders; i++) {
        if (split_header(o->headers[i], &f->headers[f->nheaders]) == 0) {
            f->nheaders++;
        }
    }

    /* the module keeps the dictionary NULL when none is configured */

    if (o->ndicts) {
        f->dict = llmc_dict_new();
        if (f->dict == NULL) {
            fail("out of memory");
            return LLMCACHE_EXIT_FAIL;
        }
        for (i = 0; i < o->ndicts; i++) {
            if (llmc_dict_load_file(f->dict, o->dicts[i], err, sizeof(err))
                != 0)
            {
                fail("--dict: %s", err);
                return LLMCACHE_EXIT_FAIL;
            }
        }
    }

    /*
     * The default llmcache_key is $http_authorization$http_x_api_key:
     * the first header of each name, concatenated.
     */

    if (o->tenant) {
        f->tenant = strdup(o->tenant);
        f->tenant_len = strlen(o->tenant);

    } else {
        f->tenant = malloc(1);
        f->tenant_len = 0;
        len = 0;
        for (i = 0; i < 2 && f->tenant; i++) {
            for (j = 0; j < f->nheaders; j++) {
                h = f->headers[j];
                if (h.name_len == (i ? 9 : 13)
                    && strncasecmp(h.name, i ? "X-Api-Key" : "Authorization",
                                   h.name_len) == 0)
                {
                    f->tenant = realloc(f->tenant, len + h.value_len + 1);
                    if (f->tenant) {
                        memcpy(f->tenant + len, h.value, h.value_len);
                        len += h.value_len;
                    }
                    break;
                }
            }
        }
        f->tenant_len = len;
    }

    if (f->tenant == NULL) {
        fail("out of memory");
        return LLMCACHE_EXIT_FAIL;
    }

    f->redis = faq_redis_connect(o);
    if (f->redis == NULL) {
        return LLMCACHE_EXIT_FAIL;
    }

    return 0;
}


static void
faq_free(faq_t *f)
{
    if (f->redis) {
        redisFree(f->redis);
    }
    llmc_dict_free(f->dict);
    free(f->tenant);
}


/* the provider request a client asking this question sends */
static json_t *
faq_request(llmc_api_e api, const char *model, const char *question,
    json_t *params)
{
    json_t  *body, *msg;

    body = json_object();
    if (body == NULL) {
        return NULL;
    }

    json_object_set_new(body, "model", json_string(model));

    switch (api) {

    case LLMC_API_COMPLETIONS:
        json_object_set_new(body, "prompt", json_string(question));
        break;

    case LLMC_API_RESPONSES:
        json_object_set_new(body, "input", json_string(question));
        break;

    default:
        /* chat and messages: one user turn */
        if (api == LLMC_API_MESSAGES) {
            json_object_set_new(body, "max_tokens", json_integer(1024));
        }
        msg = json_pack("[{s:s, s:s}]", "role", "user", "content", question);
        json_object_set_new(body, "messages", msg);
        break;
    }

    if (params && json_object_update(body, params) != 0) {
        json_decref(body);
        return NULL;
    }

    return body;
}


/* the answer as the provider would send it, usage zeroed */
static json_t *
faq_response(llmc_api_e api, const char *model, const char *answer,
    const llmc_key_t *key, int64_t created)
{
    char  id[64];

    switch (api) {

    case LLMC_API_COMPLETIONS:
        snprintf(id, sizeof(id), "cmpl-llmcache-%.24s", key->exact);
        return json_pack("{s:s, s:s, s:I, s:s, s:[{s:s, s:i, s:n, s:s}],"
                         " s:{s:i, s:i, s:i}}",
                         "id", id, "object", "text_completion",
                         "created", (json_int_t) created, "model", model,
                         "choices", "text", answer, "index", 0, "logprobs",
                         "finish_reason", "stop",
                         "usage", "prompt_tokens", 0, "completion_tokens", 0,
                         "total_tokens", 0);

    case LLMC_API_RESPONSES:
        snprintf(id, sizeof(id), "resp_llmcache_%.24s", key->exact);
        return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:s, s:s, s:s, s:s,"
                         " s:[{s:s, s:s, s:[]}]}], s:{s:i, s:i, s:i}}",
                         "id", id, "object", "response",
                         "created_at", (json_int_t) created,
                         "status", "completed", "model", model,
                         "output", "type", "message", "id", id,
                         "status", "completed", "role", "assistant",
                         "content", "type", "output_text", "text", answer,
                         "annotations",
                         "usage", "input_tokens", 0, "output_tokens", 0,
                         "total_tokens", 0);

    case LLMC_API_MESSAGES:
        snprintf(id, sizeof(id), "msg_llmcache_%.24s", key->exact);
        return json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s}], s:s, s:n,"
                         " s:{s:i, s:i}}",
                         "id", id, "type", "message", "role", "assistant",
                         "model", model, "content", "type", "text",
                         "text", answer, "stop_reason", "end_turn",
                         "stop_sequence",
                         "usage", "input_tokens", 0, "output_tokens", 0);

    default:
        snprintf(id, sizeof(id), "chatcmpl-llmcache-%.24s", key->exact);
        return json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s},"
                         " s:s}], s:{s:i, s:i, s:i}}",
                         "id", id, "object", "chat.completion",
                         "created", (json_int_t) created, "model", model,
                         "choices", "index", 0, "message", "role",
                         "assistant", "content", answer,
                         "finish_reason", "stop",
                         "usage", "prompt_tokens", 0, "completion_tokens", 0,
                         "total_tokens", 0);
    }
}


/* one FAQ line: computes the key the gateway would and stores the answer */
static int
faq_store(faq_t *f, const opts_t *o, const char *line, size_t len,
    const char *where, char *rkey, size_t rkey_size)
{
    int             rc;
    char            err[256], *body, *norm, *tenant, *resp, *value, ttl[32];
    size_t          norm_len, tenant_len, value_len;
    json_t         *root, *q, *a, *m, *p, *params, *req_json, *resp_json;
    llmc_api_e      api;
    llmc_key_t      key;
    redisReply     *reply;
    json_error_t    jerr;
    const char     *path, *argv[5];
    size_t          argvlen[5];
    llmc_request_t  req;

    rc = -1;
    body = norm = tenant = resp = value = NULL;
    req_json = resp_json = NULL;
    memset(&req, 0, sizeof(llmc_request_t));

    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fail("%s: invalid JSON: %s", where, jerr.text);
        return -1;
    }

    q = json_object_get(root, "question");
    a = json_object_get(root, "answer");
    m = json_object_get(root, "model");
    p = json_object_get(root, "path");
    params = json_object_get(root, "params");

    if (!json_is_object(root) || !json_is_string(q) || !json_is_string(a)
        || !json_is_string(m) || json_string_length(m) == 0)
    {
        fail("%s: needs \"question\", \"answer\" and \"model\" strings",
             where);
        goto done;
    }

    if ((p && !json_is_string(p)) || (params && !json_is_object(params))) {
        fail("%s: \"path\" must be a string and \"params\" an object",
             where);
        goto done;
    }

    path = p ? json_string_value(p) : (o->path ? o->path
                                                : "/v1/chat/completions");
    api = llmc_api_from_uri(path, strlen(path), f->provider);
    if (api == LLMC_API_UNKNOWN) {
        fail("%s: \"%s\" is not a cached API path", where, path);
        goto done;
    }

    req_json = faq_request(api, json_string_value(m), json_string_value(q),
                           params);
    body = req_json ? json_dumps(req_json, JSON_COMPACT) : NULL;
    if (body == NULL) {
        fail("%s: out of memory", where);
        goto done;
    }

    /* the module's own steps, in its order */

    if (llmc_request_parse(&req, api, body, strlen(body), err, sizeof(err))
        != 0)
    {
        fail("%s: the gateway would not cache this request: %s", where, err);
        goto done;
    }

    if (llmc_normalize(req.prompt ? req.prompt : "", req.prompt_len,
                       f->steps, f->dict, &norm, &norm_len, err, sizeof(err))
        != 0)
    {
        fail("%s: %s", where, err);
        goto done;
    }

    tenant_len = llmc_tenant_size(f->tenant_len, llmc_api_provider(api),
                                  f->headers, f->nheaders);
    tenant = malloc(tenant_len);
    if (tenant == NULL) {
        fail("%s: out of memory", where);
        goto done;
    }

    tenant_len = llmc_tenant_write(tenant, tenant_len, f->tenant,
                                   f->tenant_len, llmc_api_provider(api),
                                   f->headers, f->nheaders, f->steps,
                                   f->dict);

    llmc_key_make(&key, tenant, tenant_len, &req, norm, norm_len);

    if (llmc_key_redis_entry(&key, rkey, rkey_size) == 0) {
        fail("%s: key too long", where);
        goto done;
    }

    resp_json = faq_response(api, json_string_value(m), json_string_value(a),
                             &key, (int64_t) time(NULL));
    resp = resp_json ? json_dumps(resp_json, JSON_COMPACT
                                             | JSON_PRESERVE_ORDER) : NULL;
    if (resp == NULL) {
        fail("%s: out of memory", where);
        goto done;
    }

    value = llmc_entry_encode("application/json", 16, llmc_api_name(api),
                              json_string_value(m), (int64_t) time(NULL),
                              resp, strlen(resp), &value_len);
    if (value == NULL) {
        fail("%s: the entry could not be encoded (a model of 128 bytes or "
             "more?)", where);
        goto done;
    }

    snprintf(ttl, sizeof(ttl), "%ld", o->ttl);

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = rkey;
    argvlen[1] = strlen(rkey);
    argv[2] = value;
    argvlen[2] = value_len;
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = ttl;
    argvlen[4] = strlen(ttl);

    reply = redisCommandArgv(f->redis, 5, argv, argvlen);
    if (reply == NULL) {
        fail("%s: redis: %s", where, f->redis->errstr);
        rc = -2;
        goto done;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        fail("%s: redis: %s", where, reply->str);
    } else {
        rc = 0;
    }

    freeReplyObject(reply);

done:

    llmc_request_free(&req);
    json_decref(root);
    json_decref(req_json);
    json_decref(resp_json);
    free(body);
    free(norm);
    free(tenant);
    free(resp);
    free(value);
    return rc;
}


static int
warm_faq(const opts_t *o, const char *file)
{
    int          lineno, stored, errors, rc, tty, total;
    char         where[512], rkey[LLMC_REDIS_KEY_MAX];
    char        *line, *end, *s;
    buf_t        in;
    faq_t        f;
    double       start, drawn;

    memset(&in, 0, sizeof(buf_t));
    if (read_file(file, &in) != 0) {
        return LLMCACHE_EXIT_FAIL;
    }

    rc = faq_init(&f, o);
    if (rc != 0) {
        faq_free(&f);
        buf_free(&in);
        return rc;
    }

    total = 0;
    for (s = in.data; s < in.data + in.len; s++) {
        total += (*s == '\n');
    }
    total += (in.len && in.data[in.len - 1] != '\n');

    tty = isatty(STDERR_FILENO) && !o->quiet;
    start = now_seconds();
    drawn = 0;
    stored = errors = 0;
    line = in.data;

    for (lineno = 1; line < in.data + in.len; lineno++, line = end + 1) {
        end = memchr(line, '\n', in.data + in.len - line);
        if (end == NULL) {
            end = in.data + in.len;
        }
        if (strspn(line, " \t\r") >= (size_t) (end - line)) {
            continue;
        }

        snprintf(where, sizeof(where), "%s:%d", file, lineno);

        rc = faq_store(&f, o, line, end - line, where, rkey, sizeof(rkey));
        if (rc == -2) {
            /* the connection is gone: the rest would fail the same way */
            errors++;
            break;
        }

        if (rc != 0) {
            errors++;
            continue;
        }

        stored++;

        if (tty) {
            if (now_seconds() - drawn >= 0.05) {
                drawn = now_seconds();
                fprintf(stderr, "\r%d/%d lines  stored %d  errors %d ",
                        lineno, total, stored, errors);
            }
        } else if (!o->quiet) {
            printf("stored %s (%s)\n", rkey, where);
        }
    }

    if (tty) {
        fprintf(stderr, "\r%d/%d lines  stored %d  errors %d\n", total,
                total, stored, errors);
    }

    printf("stored %d  errors %d  seconds %.2f\n", stored, errors,
           now_seconds() - start);

    faq_free(&f);
    buf_free(&in);
    return errors ? LLMCACHE_EXIT_FAIL : 0;
}


static int
cmd_warm(int argc, char **argv)
{
    int     rc;
    opts_t  o;

    static const int  allowed[] = {
        OPT_GATEWAY, OPT_PATH, OPT_CONCURRENCY, OPT_HEADER, OPT_TIMEOUT,
        OPT_FAQ, OPT_REDIS, OPT_REDIS_DB, OPT_REDIS_PASSWORD, OPT_TTL,
        OPT_TENANT, OPT_DICT, OPT_NORMALIZE, OPT_PROVIDER, OPT_QUIET, 0
    };

    rc = parse_opts(argc, argv, usage_warm, allowed, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }

    if (argc - optind != 1) {
        return usage_error(usage_warm, "warm takes one FILE");
    }

    if (o.faq) {
        if (o.gateway) {
            return usage_error(usage_warm, "--faq writes to Redis: no "
                               "--gateway");
        }
        return warm_faq(&o, argv[optind]);
    }

    if (o.gateway == NULL) {
        return usage_error(usage_warm, "warm needs --gateway URL (or --faq)");
    }

    if (o.redis || o.tenant || o.ndicts || o.normalize || o.provider
        || o.redis_db || o.redis_password)
    {
        return usage_error(usage_warm, "--redis, --tenant, --dict, "
                           "--normalize and --provider go with --faq");
    }

    return warm_gateway(&o, argv[optind]);
}


/* --- stats --------------------------------------------------------------- */

static json_int_t
jint(json_t *obj, const char *name)
{
    json_t  *v;

    v = json_object_get(obj, name);
    if (json_is_integer(v)) {
        return json_integer_value(v);
    }
    return json_is_real(v) ? (json_int_t) json_real_value(v) : 0;
}


static double
jnum(json_t *obj, const char *name)
{
    return json_number_value(json_object_get(obj, name));
}


static void
stats_counts(json_t *obj, const char *skip)
{
    const char  *k;
    json_t      *v;

    json_object_foreach(obj, k, v) {
        if (json_is_integer(v) && (skip == NULL || strstr(skip, k) == NULL))
        {
            printf("  %s %" JSON_INTEGER_FORMAT, k, json_integer_value(v));
        }
    }
}


static void
stats_print(json_t *m)
{
    size_t       i, nb;
    json_t      *req, *hits, *redis, *tok, *usd, *lookup, *le, *bk, *models,
                *x;
    json_int_t   hit, sem, miss, total, count, acc, want;
    const char  *k;
    json_t      *v;
    double       ratio;

    req = json_object_get(m, "requests");
    hits = json_object_get(m, "hits");
    redis = json_object_get(m, "redis");
    tok = json_object_get(m, "tokens");
    usd = json_object_get(m, "usd");
    lookup = json_object_get(m, "lookup");
    models = json_object_get(m, "models");

    total = 0;
    json_object_foreach(req, k, v) {
        total += json_is_integer(v) ? json_integer_value(v) : 0;
    }

    hit = jint(req, "HIT");
    sem = jint(req, "SEMANTIC");
    miss = jint(req, "MISS");

    if (json_is_number(json_object_get(m, "time"))
        && json_is_integer(json_object_get(m, "start")))
    {
        printf("uptime        %.0f s\n",
               jnum(m, "time") - (double) jint(m, "start"));
    }

    printf("requests      %" JSON_INTEGER_FORMAT, total);
    stats_counts(req, NULL);
    putchar('\n');

    /* of the lookups that could hit: BYPASS never asks the cache */
    ratio = (hit + sem + miss) ? 100.0 * (hit + sem) / (hit + sem + miss) : 0;
    printf("hit ratio     %.1f%%  (exact %" JSON_INTEGER_FORMAT
           ", semantic %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
           " lookups)\n", ratio, hits ? jint(hits, "exact") : hit,
           hits ? jint(hits, "semantic") : sem, hit + sem + miss);

    if (tok) {
        printf("tokens        saved %" JSON_INTEGER_FORMAT "  input %"
               JSON_INTEGER_FORMAT "  cached %" JSON_INTEGER_FORMAT
               "  output %" JSON_INTEGER_FORMAT "\n", jint(tok, "saved"),
               jint(tok, "input"), jint(tok, "cached"), jint(tok, "output"));
    }

    if (usd) {
        printf("dollars       saved $%.6f  spent $%.6f\n", jnum(usd, "saved"),
               jnum(usd, "cost"));
    }

    if (json_is_integer(json_object_get(m, "hit_bytes"))) {
        printf("from cache    %" JSON_INTEGER_FORMAT " bytes\n",
               jint(m, "hit_bytes"));
    }

    if (redis) {
        /* "connect" counts connections made; the rest are failures */
        acc = 0;
        json_object_foreach(redis, k, v) {
            if (strcmp(k, "connect") != 0 && json_is_integer(v)) {
                acc += json_integer_value(v);
            }
        }
        printf("redis         %s", acc ? "TROUBLE" : "healthy");
        stats_counts(redis, NULL);
        putchar('\n');
    }

    /* percentiles from the cumulative-free buckets: the bound reached */

    le = json_object_get(lookup, "le_ms");
    bk = json_object_get(lookup, "buckets");
    count = jint(lookup, "count");

    if (json_is_array(le) && json_is_array(bk) && count > 0) {
        printf("lookup        %" JSON_INTEGER_FORMAT " lookups, mean %.2f ms",
               count, (double) jint(lookup, "sum_ms") / count);
        nb = json_array_size(bk);
        for (const double *q = (const double[]) { 0.5, 0.99, -1 }; *q > 0;
             q++)
        {
            want = (json_int_t) (*q * count + 0.999999);
            acc = 0;
            for (i = 0; i < nb; i++) {
                acc += json_integer_value(json_array_get(bk, i));
                if (acc >= want) {
                    break;
                }
            }
            x = json_array_get(le, i);
            if (x) {
                printf(", p%g <= %.0f ms", *q * 100, json_number_value(x));
            } else {
                printf(", p%g > %.0f ms", *q * 100,
                       json_number_value(json_array_get(le,
                           json_array_size(le) - 1)));
            }
        }
        putchar('\n');
    }

    x = json_object_get(m, "lock");
    if (x) {
        printf("single-flight %" JSON_INTEGER_FORMAT " waits, %"
               JSON_INTEGER_FORMAT " ms\n", jint(x, "waits"),
               jint(x, "wait_ms"));
    }

    if (json_is_integer(json_object_get(m, "purged"))) {
        printf("purged        %" JSON_INTEGER_FORMAT " keys\n",
               jint(m, "purged"));
    }

    if (json_array_size(models)) {
        printf("\n%-28s %8s %8s %8s %8s %10s\n", "model", "HIT", "SEMANTIC",
               "MISS", "BYPASS", "$ saved");
        json_array_foreach(models, i, x) {
            printf("%-28.28s %8" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT
                   " %8" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT
                   " %10.6f\n",
                   json_string_value(json_object_get(x, "model"))
                   ? json_string_value(json_object_get(x, "model")) : "?",
                   jint(x, "HIT"), jint(x, "SEMANTIC"), jint(x, "MISS"),
                   jint(x, "BYPASS"),
                   jnum(json_object_get(x, "usd"), "saved"));
        }
    }
}


static int
cmd_stats(int argc, char **argv)
{
    int                 rc;
    long                status;
    char               *url, *s;
    buf_t               resp;
    json_t             *m;
    opts_t              o;
    json_error_t        jerr;
    struct curl_slist  *headers;

    static const int  allowed[] = { OPT_JSON, OPT_HEADER, OPT_TIMEOUT, 0 };

    rc = parse_opts(argc, argv, usage_stats, allowed, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }

    if (argc - optind != 1) {
        return usage_error(usage_stats, "stats takes one URL");
    }

    url = malloc(strlen(argv[optind]) + sizeof("&format=json"));
    if (url == NULL) {
        fail("out of memory");
        return LLMCACHE_EXIT_FAIL;
    }
    sprintf(url, "%s%s", argv[optind],
            strchr(argv[optind], '?') ? "&format=json" : "?format=json");

    headers = header_list(&o, NULL);
    memset(&resp, 0, sizeof(buf_t));
    status = 0;
    rc = LLMCACHE_EXIT_FAIL;

    if (http_do("GET", url, NULL, headers, NULL, 0,
                o.timeout, &status, &resp) != 0)
    {
        goto done;
    }

    if (status != 200) {
        fail("GET %s: status %ld: %.200s", url, status, resp.data);
        goto done;
    }

    m = json_loadb(resp.data, resp.len, 0, &jerr);
    if (!json_is_object(m) || !json_is_object(json_object_get(m,
                                                              "requests")))
    {
        fail("GET %s: not llmcache_metrics JSON%s%s", url,
             m ? "" : ": ", m ? "" : jerr.text);
        json_decref(m);
        goto done;
    }

    if (o.json) {
        s = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) {
            puts(s);
            free(s);
        }
    } else {
        stats_print(m);
    }

    json_decref(m);
    rc = 0;

done:

    curl_slist_free_all(headers);
    buf_free(&resp);
    free(url);
    return rc;
}


/* --- purge --------------------------------------------------------------- */

static int
cmd_purge(int argc, char **argv)
{
    int                 rc, n;
    long                status;
    char               *url;
    buf_t               resp;
    json_t             *r, *err;
    opts_t              o;
    const char         *base, *arg;
    struct curl_slist  *headers;

    static const int  allowed[] = {
        OPT_KEY, OPT_SCOPE, OPT_ALL, OPT_HEADER, OPT_TIMEOUT, 0
    };

    rc = parse_opts(argc, argv, usage_purge, allowed, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }

    if (argc - optind != 1) {
        return usage_error(usage_purge, "purge takes one URL");
    }

    n = (o.key != NULL) + (o.scope != NULL) + o.all;
    if (n != 1) {
        return usage_error(usage_purge, "give one of --key, --scope, --all");
    }

    if (o.key && !is_hex(o.key, LLMC_EXACT_HEX_LEN)) {
        return usage_error(usage_purge, "--key: %d hex digits",
                           LLMC_EXACT_HEX_LEN);
    }

    if (o.scope && !is_hex(o.scope, LLMC_SCOPE_HEX_LEN)) {
        return usage_error(usage_purge, "--scope: %d hex digits",
                           LLMC_SCOPE_HEX_LEN);
    }

    base = argv[optind];
    arg = o.key ? "key=" : o.scope ? "scope=" : "all=1";

    url = malloc(strlen(base) + 80);
    if (url == NULL) {
        fail("out of memory");
        return LLMCACHE_EXIT_FAIL;
    }
    sprintf(url, "%s%c%s%s", base, strchr(base, '?') ? '&' : '?', arg,
            o.key ? o.key : o.scope ? o.scope : "");

    headers = header_list(&o, NULL);
    memset(&resp, 0, sizeof(buf_t));
    status = 0;
    rc = LLMCACHE_EXIT_FAIL;

    if (http_do("DELETE", url, NULL, headers, NULL, 0, o.timeout, &status,
                &resp) != 0)
    {
        goto done;
    }

    r = json_loadb(resp.data, resp.len, 0, NULL);
    err = json_object_get(r, "error");

    if (status == 200 && json_is_integer(json_object_get(r, "deleted"))) {
        printf("deleted %" JSON_INTEGER_FORMAT " keys (%" JSON_INTEGER_FORMAT
               " entries)\n", jint(r, "deleted"), jint(r, "entries"));
        rc = 0;

    } else if (json_is_string(err)) {
        fail("DELETE %s: status %ld: %s%s", url, status,
             json_string_value(err),
             json_is_integer(json_object_get(r, "deleted"))
             ? " (some keys were deleted)" : "");
        if (jint(r, "deleted")) {
            printf("deleted %" JSON_INTEGER_FORMAT " keys (%"
                   JSON_INTEGER_FORMAT " entries) before the failure\n",
                   jint(r, "deleted"), jint(r, "entries"));
        }

    } else {
        fail("DELETE %s: status %ld: %.200s", url, status, resp.data);
    }

    json_decref(r);

done:

    curl_slist_free_all(headers);
    buf_free(&resp);
    free(url);
    return rc;
}


/* --- schema push --------------------------------------------------------- */

/*
 * The worker takes schemas whole: a module's src="FILE" (relative to the
 * schema's directory) is read here and its text put inside the module,
 * escaped, the attribute gone.  A module with src= must be empty.
 */

static int
schema_escape(buf_t *out, const char *p, size_t n)
{
    size_t       i, run;
    const char  *e;

    for (i = 0, run = 0; i < n; i++) {
        switch (p[i]) {
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '&': e = "&amp;"; break;
        default: continue;
        }
        if (buf_add(out, p + run, i - run) != 0
            || buf_add(out, e, strlen(e)) != 0)
        {
            return -1;
        }
        run = i + 1;
    }
    return buf_add(out, p + run, n - run);
}


static int
schema_inline(const char *path, const buf_t *in, buf_t *out)
{
    char        *dir, *slash, *src, file[PATH_MAX], q;
    const char  *p = in->data, *end = in->data + in->len, *tag, *gt, *a, *v;
    size_t       vlen;
    int          rc = -1, self;
    buf_t        text;

    dir = strdup(path);
    if (dir == NULL) {
        fail("out of memory");
        return -1;
    }
    slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
    } else {
        strcpy(dir, ".");
    }

    while ((tag = memmem(p, (size_t) (end - p), "<module", 7)) != NULL) {
        gt = memchr(tag, '>', (size_t) (end - tag));
        if (gt == NULL) {
            break;                      /* the worker says what is wrong */
        }

        /* src="..." or src='...' inside this start tag */
        a = tag + 7;
        src = NULL;
        v = NULL;
        vlen = 0;
        while ((a = memmem(a, (size_t) (gt - a), "src", 3)) != NULL) {
            if (a[-1] == ' ' || a[-1] == '\t' || a[-1] == '\n') {
                v = a + 3;
                while (v < gt && (*v == ' ' || *v == '=')) {
                    v++;
                }
                if (v < gt && (*v == '"' || *v == '\'')) {
                    q = *v++;
                    src = memchr(v, q, (size_t) (gt - v));
                    if (src) {
                        vlen = (size_t) (src - v);
                        break;
                    }
                }
            }
            a += 3;
        }

        if (src == NULL) {
            if (buf_add(out, p, (size_t) (gt + 1 - p)) != 0) {
                goto oom;
            }
            p = gt + 1;
            continue;
        }

        self = gt > tag && gt[-1] == '/';
        if (!self && (size_t) (end - gt) >= 10
            && memcmp(gt + 1, "</module>", 9) != 0)
        {
            fail("%s: a module with src= must be empty", path);
            goto done;
        }

        if (vlen == 0 || vlen >= sizeof(file) - strlen(dir) - 2) {
            fail("%s: bad src=", path);
            goto done;
        }
        if (v[0] == '/') {
            snprintf(file, sizeof(file), "%.*s", (int) vlen, v);
        } else {
            snprintf(file, sizeof(file), "%s/%.*s", dir, (int) vlen, v);
        }

        memset(&text, 0, sizeof(buf_t));
        if (read_file(file, &text) != 0) {
            goto done;
        }

        /* the tag without the attribute, then the file's text */
        if (buf_add(out, p, (size_t) (a - p)) != 0
            || buf_add(out, src + 1, (size_t) (gt - (src + 1)) - self) != 0
            || buf_add(out, ">", 1) != 0
            || schema_escape(out, text.data, text.len) != 0
            || (self && buf_add(out, "</module>", 9) != 0))
        {
            buf_free(&text);
            goto oom;
        }
        buf_free(&text);
        p = gt + 1;
    }

    if (buf_add(out, p, (size_t) (end - p)) != 0) {
        goto oom;
    }
    rc = 0;
    goto done;

oom:
    fail("out of memory");

done:
    free(dir);
    return rc;
}


static int
cmd_schema(int argc, char **argv)
{
    int                 rc;
    long                status;
    char               *s;
    buf_t               file, body, resp;
    json_t             *r;
    opts_t              o;
    struct curl_slist  *headers;

    static const int  allowed[] = { OPT_WORKER, OPT_TIMEOUT, OPT_HEADER, 0 };

    rc = parse_opts(argc, argv, usage_schema, allowed, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }

    if (argc - optind != 2 || strcmp(argv[optind], "push") != 0) {
        return usage_error(usage_schema, "schema push FILE.xml");
    }

    if (o.worker == NULL) {
        return usage_error(usage_schema, "schema push needs --worker");
    }

    if (strncmp(o.worker, "unix:/", 6) != 0
        && strncmp(o.worker, "http://", 7) != 0)
    {
        return usage_error(usage_schema, "--worker: unix:/PATH or "
                           "http://HOST:PORT, not \"%s\"", o.worker);
    }

    memset(&file, 0, sizeof(buf_t));
    memset(&body, 0, sizeof(buf_t));
    memset(&resp, 0, sizeof(buf_t));
    headers = NULL;
    rc = LLMCACHE_EXIT_FAIL;

    if (read_file(argv[optind + 1], &file) != 0) {
        goto done;
    }

    if (file.len == 0) {
        fail("%s: empty file", argv[optind + 1]);
        goto done;
    }

    if (schema_inline(argv[optind + 1], &file, &body) != 0) {
        goto done;
    }

    headers = header_list(&o, "application/xml");

    if (http_do("POST", o.worker, "/v1/schemas", headers, body.data,
                body.len, o.timeout, &status, &resp) != 0)
    {
        goto done;
    }

    r = json_loadb(resp.data, resp.len, 0, NULL);
    s = r ? json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

    if (status >= 200 && status <= 299) {
        printf("registered %s: %s\n", argv[optind + 1],
               s ? s : resp.data);
        rc = 0;
    } else {
        fail("POST /v1/schemas: status %ld: %s", status, s ? s : resp.data);
    }

    free(s);
    json_decref(r);

done:

    curl_slist_free_all(headers);
    buf_free(&file);
    buf_free(&body);
    buf_free(&resp);
    return rc;
}


/* --- main ---------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    int          rc;
    const char  *cmd;

    if (argc < 2) {
        fputs(usage_main, stderr);
        return LLMCACHE_EXIT_USAGE;
    }

    cmd = argv[1];

    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0
        || strcmp(cmd, "help") == 0)
    {
        fputs(usage_main, stdout);
        return 0;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fail("curl_global_init() failed");
        return LLMCACHE_EXIT_FAIL;
    }

    if (strcmp(cmd, "warm") == 0) {
        rc = cmd_warm(argc - 1, argv + 1);
    } else if (strcmp(cmd, "stats") == 0) {
        rc = cmd_stats(argc - 1, argv + 1);
    } else if (strcmp(cmd, "purge") == 0) {
        rc = cmd_purge(argc - 1, argv + 1);
    } else if (strcmp(cmd, "schema") == 0) {
        rc = cmd_schema(argc - 1, argv + 1);
    } else {
        fprintf(stderr, "%s: unknown command \"%s\"\n\n%s", prog, cmd,
                usage_main);
        rc = LLMCACHE_EXIT_USAGE;
    }

    curl_global_cleanup();
    return rc;
}
