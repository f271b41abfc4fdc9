/*
 * llmcache-worker's event loop, request queue and generation thread (see
 * server.h).
 *
 * Threads: the I/O thread owns the sockets and every conn_t; the
 * generation thread owns the model's KV cache and logits. They share the
 * queue and each job's output buffer under one mutex. The generation
 * thread appends response bytes to job->out and pokes an eventfd; the I/O
 * thread moves them to the connection and writes. A connection that goes
 * away marks its job cancelled, which the generation thread sees between
 * tokens; whichever side lets go of a job last frees it.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "errf.h"
#include "api.h"
#include "chat.h"
#include "gguf.h"
#include "http.h"
#include "model.h"
#include "pcache.h"
#include "pml.h"
#include "sampler.h"
#include "server.h"
#include "tokenizer.h"

#define SERVER_READ_CHUNK    65536
#define SERVER_LINGER        2      /* seconds */
#define SERVER_PIECE_MAX     256

typedef struct conn conn_t;
typedef struct job job_t;

struct job {
    job_t           *next;          /* queue */
    api_request_t    req;
    int              keep_alive;
    int              version;
    char             id[48];
    long             created;
    char             method[8];     /* schema endpoints */
    char            *name;          /* /v1/schemas/{name} */
    char            *body;          /* POST /v1/schemas: the PML text */
    size_t           body_len;

    /* under server.lock */
    char            *out;
    size_t           out_len, out_cap;
    int              done;          /* the generation thread let go */
    int              orphan;        /* the I/O thread let go */
    int              cancelled;     /* atomic: stop generating */
};

struct conn {
    conn_t          *prev, *next;
    int              fd;
    http_parser_t   *parser;
    char            *wbuf;
    size_t           wlen, wpos, wcap;
    job_t           *job;
    int              close_after;   /* close once wbuf is written */
    unsigned         events;        /* registered with epoll */
    time_t           last_read;     /* monotonic seconds */
    time_t           lingering;     /* since when, after shutdown(WR) */
};

struct server {
    server_config_t  cfg;
    char             listen_path[108];   /* unix socket file, or "" */
    int              lfd, efd, evfd, sfd;
    char             tag_listen, tag_event, tag_signal;   /* epoll ids */

    model_t         *model;
    const tokenizer_t *tok;
    chat_tmpl_e      tmpl;
    char             model_name[128];
    int              n_ctx, n_vocab, dim;
    long             started;

    conn_t          *conns;
    int              accept_paused;
    int              stopping;
    time_t           stop_deadline;

    pthread_t        thread;
    int              thread_started;
    pthread_mutex_t  lock;
    pthread_cond_t   cond;
    job_t           *queue_head, *queue_tail;
    int              queue_len;
    job_t           *running;
    int              gen_exited;
    api_metrics_t    metrics;
    uint64_t         id_seq;

    /* generation thread only */
    kv_cache_t      *kv;
    float           *logits;
    int32_t         *kv_toks;       /* (n_ctx) the tokens of kv's entries
                                       when they are a plain prompt at
                                       positions 0, 1, ... and its output */
    int              kv_toks_len;   /* 0: nothing to reuse */
    float           *last_logits;   /* after kv_toks[0 .. last_n) */
    int              last_n;        /* 0: none */
    pcache_t        *pc;
    pcache_held_t    held;          /* kv's entries from stored modules */
    pml_roles_t      roles;
    char            *role_text[6];
};

static void *server_gen_main(void *arg);
static void server_accept_pause(server_t *s, int pause);

/* --- small helpers ------------------------------------------------------- */

static int64_t
server_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static time_t
server_mono(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static double
server_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static int
buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    char    *b;
    size_t   c;

    if (*len + n > *cap) {
        c = *cap ? *cap : 4096;
        while (c < *len + n) {
            c *= 2;
        }
        b = realloc(*buf, c);
        if (b == NULL) {
            return -1;
        }
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

/* the status line and headers; content_length < 0: chunked (HTTP/1.1) or
 * close-delimited (HTTP/1.0) */
static int
server_head(char *buf, size_t size, int status, const char *ctype,
    long content_length, int keep_alive, int version, const char *extra)
{
    char  len[64];

    if (content_length >= 0) {
        snprintf(len, sizeof(len), "Content-Length: %ld\r\n",
                 content_length);
    } else {
        snprintf(len, sizeof(len), "%s", version >= 11
                 ? "Transfer-Encoding: chunked\r\n" : "");
    }
    return snprintf(buf, size, "HTTP/1.1 %d %s\r\n"
                    "Server: llmcache-worker\r\n"
                    "Content-Type: %s\r\n"
                    "%s%s%s\r\n",
                    status, http_reason(status), ctype, len,
                    keep_alive ? (version < 11 ? "Connection: keep-alive\r\n"
                                               : "")
                               : "Connection: close\r\n",
                    extra ? extra : "");
}

static void
server_count(server_t *s, api_endpoint_e ep, int status)
{
    if (ep >= API_EP_COUNT) {
        return;                 /* counted by the caller */
    }
    pthread_mutex_lock(&s->lock);
    api_metrics_count(&s->metrics, ep, status);
    pthread_mutex_unlock(&s->lock);
}

/* --- jobs: the generation thread's side ---------------------------------- */

static void
job_free(job_t *j)
{
    free(j->name);
    free(j->body);
    api_request_free(&j->req);
    free(j->out);
    free(j);
}

static void
server_notify(server_t *s)
{
    uint64_t  one = 1;

    if (write(s->evfd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the I/O thread is behind and will
         * look at every job anyway */
    }
}

static void
job_write(server_t *s, job_t *j, const void *data, size_t n)
{
    pthread_mutex_lock(&s->lock);
    if (!j->orphan) {
        /* out of memory drops bytes; the client sees a short response */
        (void) buf_append(&j->out, &j->out_len, &j->out_cap, data, n);
    }
    pthread_mutex_unlock(&s->lock);
    server_notify(s);
}

static int
job_cancelled(job_t *j)
{
    return __atomic_load_n(&j->cancelled, __ATOMIC_RELAXED);
}

/* a complete JSON response */
static void
job_respond(server_t *s, job_t *j, api_endpoint_e ep, int status,
    char *json)
{
    char    head[512];
    int     n;
    static const char  oom[] = "{\"error\":{\"message\":\"out of memory\","
        "\"type\":\"server_error\",\"param\":null,\"code\":null}}";

    if (json == NULL) {
        status = 500;
    }
    /* counted before the client can see the answer and ask /metrics */
    server_count(s, ep, status);
    n = server_head(head, sizeof(head), status, "application/json",
                    (long) (json ? strlen(json) : sizeof(oom) - 1),
                    j->keep_alive, j->version, NULL);
    job_write(s, j, head, (size_t) n);
    job_write(s, j, json ? json : oom, json ? strlen(json) : sizeof(oom) - 1);
    free(json);
}

static void
job_error(server_t *s, job_t *j, int status, const char *type,
    const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void
job_error(server_t *s, job_t *j, int status, const char *type,
    const char *param, const char *code, const char *fmt, ...)
{
    api_error_t  e;
    va_list      ap;

    api_error_set(&e, status, type, param, code, "%s", "");
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    job_respond(s, j, j->req.endpoint, status, api_error_json(&e));
}

/* one SSE event as an HTTP chunk (or raw on HTTP/1.0) */
static void
job_event(server_t *s, job_t *j, const char *data)
{
    char    *buf;
    size_t   n = strlen(data), o = 0;

    buf = malloc(n + 32);
    if (buf == NULL) {
        return;
    }
    if (j->version >= 11) {
        o = (size_t) sprintf(buf, "%zx\r\n", n + 8);
    }
    memcpy(buf + o, "data: ", 6);
    memcpy(buf + o + 6, data, n);
    memcpy(buf + o + 6 + n, "\n\n", 2);
    o += n + 8;
    if (j->version >= 11) {
        memcpy(buf + o, "\r\n", 2);
        o += 2;
    }
    job_write(s, j, buf, o);
    free(buf);
}

static void
job_event_json(server_t *s, job_t *j, char *json)
{
    if (json != NULL) {
        job_event(s, j, json);
        free(json);
    }
}

/* the prompt's ids, BOS included; NULL after answering the error */
static int32_t *
server_tokenize(server_t *s, job_t *j, const char *text, int *n_out,
    const char *param)
{
    int32_t  *toks;
    int       n, cap;
    char      err[256];
    size_t    len = strlen(text);

    cap = (int) (len + 8 < (size_t) 1 << 30 ? len + 8 : 1 << 30);
    toks = malloc((size_t) cap * sizeof(int32_t));
    if (toks == NULL) {
        job_error(s, j, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    n = tokenizer_encode(s->tok, text, len, 1, toks, cap, err, sizeof(err));
    if (n < 0) {
        free(toks);
        job_error(s, j, 400, "invalid_request_error", param, NULL,
                  "the text could not be tokenized: %s", err);
        return NULL;
    }
    if (n == 0) {
        free(toks);
        job_error(s, j, 400, "invalid_request_error", param, NULL,
                  "the %s is empty", param);
        return NULL;
    }
    if (n > s->n_ctx || (n == s->n_ctx && j->req.endpoint != API_EP_EMBEDDINGS))
    {
        free(toks);
        job_error(s, j, 400, "invalid_request_error", param,
                  "context_length_exceeded",
                  "This model's maximum context length is %d tokens, "
                  "however you requested %d tokens in the %s%s", s->n_ctx, n,
                  param, j->req.endpoint != API_EP_EMBEDDINGS
                  ? " and at least 1 more must be generated" : "");
        return NULL;
    }
    *n_out = n;
    return toks;
}

static void
server_embed(server_t *s, job_t *j)
{
    api_request_t  *r = &j->req;
    float          *vecs;
    int32_t        *toks;
    int             n, total = 0;
    size_t          i;
    char            err[256];
    double          t0 = server_now(), dt;

    vecs = malloc(r->n_inputs * (size_t) s->dim * sizeof(float));
    if (vecs == NULL) {
        job_error(s, j, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    for (i = 0; i < r->n_inputs; i++) {
        if (job_cancelled(j)) {
            free(vecs);
            server_count(s, API_EP_EMBEDDINGS, 499);
            return;
        }
        toks = server_tokenize(s, j, r->inputs[i], &n, "input");
        if (toks == NULL) {
            free(vecs);
            return;
        }
        if (model_is_encoder(s->model)
            && n > model_hparams(s->model)->n_ctx_train)
        {
            free(toks);
            free(vecs);
            job_error(s, j, 400, "invalid_request_error", "input",
                      "context_length_exceeded", "input %zu is %d tokens, "
                      "the model embeds at most %d", i, n,
                      model_hparams(s->model)->n_ctx_train);
            return;
        }
        if (model_embed(s->model, toks, n, vecs + i * (size_t) s->dim, err,
                        sizeof(err)) != 0)
        {
            free(toks);
            free(vecs);
            job_error(s, j, 500, "server_error", NULL, NULL, "%s", err);
            return;
        }
        free(toks);
        total += n;
    }
    dt = server_now() - t0;
    pthread_mutex_lock(&s->lock);
    s->metrics.prompt_tokens += (uint64_t) total;
    s->metrics.prefill_seconds += dt;
    s->metrics.last_prefill_tps = dt > 0 ? total / dt : 0;
    pthread_mutex_unlock(&s->lock);
    job_respond(s, j, API_EP_EMBEDDINGS, 200,
                api_embeddings_json(s->model_name, vecs, r->n_inputs, s->dim,
                                    total));
    free(vecs);
}

/* --- the prompt cache -------------------------------------------------- */

/* pml_tokenize_fn: text without BOS */
static int
server_pml_tok(void *ud, const char *text, size_t len, int32_t **ids, int *n)
{
    server_t  *s = ud;
    int32_t   *buf;
    int        k, cap;
    char       err[128];

    cap = (int) (len + 8 < (size_t) 1 << 30 ? len + 8 : 1 << 30);
    buf = malloc((size_t) cap * sizeof(int32_t));
    if (buf == NULL) {
        return -1;
    }
    k = tokenizer_encode(s->tok, text, len, 0, buf, cap, err, sizeof(err));
    if (k < 0) {
        free(buf);
        return -1;
    }
    *ids = buf;
    *n = k;
    return 0;
}

/* copies the store's counters into the metrics */
static void
server_pc_sync(server_t *s)
{
    pcache_stats_t  st;

    pcache_stats(s->pc, &st);
    pthread_mutex_lock(&s->lock);
    s->metrics.pc_schemas = st.schemas;
    s->metrics.pc_modules = st.modules;
    s->metrics.pc_resident = st.resident_modules;
    s->metrics.pc_bytes = st.bytes;
    s->metrics.pc_budget = st.budget;
    s->metrics.pc_hits = st.hits;
    s->metrics.pc_misses = st.misses;
    s->metrics.pc_evictions = st.evictions;
    s->metrics.pc_encode_passes = st.encode_passes;
    s->metrics.pc_cached_tokens = st.cached_tokens;
    pthread_mutex_unlock(&s->lock);
}

/* the PML prompt of a request: the completion's prompt, or the content of
 * the last chat message when it is the user's; NULL: a plain prompt */
static const char *
server_pml_text(const api_request_t *r)
{
    const chat_msg_t  *m;

    if (r->endpoint == API_EP_COMPLETIONS && r->prompt != NULL
        && pml_is_prompt(r->prompt, strlen(r->prompt)))
    {
        return r->prompt;
    }
    if (r->endpoint == API_EP_CHAT && r->n_msgs > 0) {
        m = &r->msgs[r->n_msgs - 1];
        if (m->role != NULL && strcmp(m->role, "user") == 0
            && m->content != NULL
            && pml_is_prompt(m->content, strlen(m->content)))
        {
            return m->content;
        }
    }
    return NULL;
}

/* the plan of a PML prompt and its schema's name (malloc()ed); -1 after
 * answering the error */
static int
server_pml_plan(server_t *s, job_t *j, const char *text, const char *param,
    pml_plan_t *plan, char **schema)
{
    pml_prompt_t        *p;
    const pml_layout_t  *l;
    char                 err[256];

    if (pml_prompt_parse(text, strlen(text), &p, err, sizeof(err)) != 0) {
        job_error(s, j, 400, "invalid_request_error", param,
                  "invalid_prompt", "PML prompt: %s", err);
        return -1;
    }
    l = pcache_schema_layout(s->pc, p->schema);
    if (l == NULL) {
        job_error(s, j, 404, "invalid_request_error", param,
                  "unknown_schema", "unknown schema \"%s\": POST it to "
                  "/v1/schemas first", p->schema);
        pml_prompt_free(p);
        return -1;
    }
    if (pml_bind(l, p, server_pml_tok, s, plan, err, sizeof(err)) != 0) {
        job_error(s, j, 400, "invalid_request_error", param,
                  "invalid_prompt", "PML prompt: %s", err);
        pml_prompt_free(p);
        return -1;
    }
    *schema = strdup(p->schema);
    pml_prompt_free(p);
    if (*schema == NULL) {
        pml_plan_free(plan);
        job_error(s, j, 500, "server_error", NULL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* chat: the template's assistant opening after the prompt's text, so the
 * model answers as the assistant; 0 or -1 */
static int
server_plan_assistant(server_t *s, const char *schema, pml_plan_t *plan)
{
    const pml_layout_t  *l = pcache_schema_layout(s->pc, schema);
    const char          *open = s->roles.open[2];
    int32_t             *ids, *t, *p, start;
    int                  k, i;

    if (l == NULL || open == NULL || open[0] == '\0') {
        return 0;
    }
    if (server_pml_tok(s, open, strlen(open), &ids, &k) != 0) {
        return -1;
    }
    start = plan->n > 0 ? plan->pos[plan->n - 1] + 1 : l->n_pos;
    if (start < l->n_pos) {
        start = l->n_pos;       /* the prompt had arguments only */
    }
    t = realloc(plan->tokens, (size_t) (plan->n + k + 1) * sizeof(int32_t));
    if (t != NULL) {
        plan->tokens = t;
    }
    p = realloc(plan->pos, (size_t) (plan->n + k + 1) * sizeof(int32_t));
    if (p != NULL) {
        plan->pos = p;
    }
    if (t == NULL || p == NULL) {
        free(ids);
        return -1;
    }
    for (i = 0; i < k; i++) {
        plan->tokens[plan->n + i] = ids[i];
        plan->pos[plan->n + i] = start + i;
    }
    plan->n += k;
    free(ids);
    return 0;
}

/*
 * Prefill of a PML prompt: the stored modules gathered, then the plan's
 * new tokens at their positions; with "cache": false, all of the same
 * tokens evaluated at the same positions, each module in a segment of its
 * own in independent mode (what the stored entries saw). -1 after
 * answering the error.
 */
static int
server_prefill_pml(server_t *s, job_t *j, const char *text,
    const char *param, int *n_prompt, int *n_cached, int32_t *last,
    int32_t *next_pos)
{
    pml_plan_t   plan;
    char        *schema = NULL, err[256];
    int32_t     *rt = NULL, *rp = NULL, *rs = NULL, *t = NULL, *p = NULL,
                *g = NULL;
    int          nr = 0, n, i, rc = -1, cached = 0;

    memset(&plan, 0, sizeof(plan));
    if (server_pml_plan(s, j, text, param, &plan, &schema) != 0) {
        return -1;
    }
    if (j->req.endpoint == API_EP_CHAT
        && server_plan_assistant(s, schema, &plan) != 0)
    {
        job_error(s, j, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    if (pcache_plan_ref(s->pc, schema, plan.mods, plan.n_mods, &rt, &rp,
                        &rs, &nr, err, sizeof(err)) != 0)
    {
        job_error(s, j, 500, "server_error", NULL, NULL, "%s", err);
        goto done;
    }
    n = nr + plan.n;
    if (n == 0) {
        job_error(s, j, 400, "invalid_request_error", param, NULL,
                  "the prompt is empty");
        goto done;
    }
    if (n >= s->n_ctx) {
        job_error(s, j, 400, "invalid_request_error", param,
                  "context_length_exceeded", "This model's maximum context "
                  "length is %d tokens, however you requested %d tokens in "
                  "the %s and at least 1 more must be generated", s->n_ctx,
                  n, param);
        goto done;
    }
    s->kv_toks_len = 0;
    if (j->req.cache) {
        /* the entries the previous PML prompt left in the cache are kept
         * as far as this one shares them */
        if (pcache_gather_held(s->pc, schema, plan.mods, plan.n_mods, s->kv,
                               &s->held, &cached, &i, err, sizeof(err))
            != 0)
        {
            kv_cache_truncate(s->kv, 0);
            pcache_held_reset(&s->held);
            job_error(s, j, 500, "server_error", NULL, NULL, "%s", err);
            goto done;
        }
        if (plan.n > 0) {
            i = model_eval(s->model, s->kv, plan.tokens, plan.pos, plan.n,
                           s->logits, 0, err, sizeof(err));
        } else {
            /* nothing new: the last stored entry again, for logits */
            kv_cache_truncate(s->kv, cached - 1);
            cached--;
            if (s->held.n > cached) {
                s->held.n = cached;
            }
            i = model_eval(s->model, s->kv, &rt[nr - 1], &rp[nr - 1], 1,
                           s->logits, 0, err, sizeof(err));
        }
    } else {
        kv_cache_truncate(s->kv, 0);
        pcache_held_reset(&s->held);
        t = malloc((size_t) n * sizeof(int32_t));
        p = malloc((size_t) n * sizeof(int32_t));
        g = malloc((size_t) n * sizeof(int32_t));
        if (t == NULL || p == NULL || g == NULL) {
            job_error(s, j, 500, "server_error", NULL, NULL,
                      "out of memory");
            goto done;
        }
        for (i = 0; i < n; i++) {
            t[i] = i < nr ? rt[i] : plan.tokens[i - nr];
            p[i] = i < nr ? rp[i] : plan.pos[i - nr];
            g[i] = i < nr ? rs[i] : 0;
        }
        i = model_eval_seg(s->model, s->kv, t, p, g, n, s->logits, 0, err,
                           sizeof(err));
    }
    if (i != 0) {
        kv_cache_truncate(s->kv, 0);
        pcache_held_reset(&s->held);
        job_error(s, j, 500, "server_error", NULL, NULL, "%s", err);
        goto done;
    }
    *last = plan.n > 0 ? plan.tokens[plan.n - 1] : rt[nr - 1];
    *next_pos = (plan.n > 0 ? plan.pos[plan.n - 1] : rp[nr - 1]) + 1;
    *n_prompt = n;
    *n_cached = cached;
    rc = 0;

done:
    free(rt);
    free(rp);
    free(rs);
    free(t);
    free(p);
    free(g);
    free(schema);
    pml_plan_free(&plan);
    server_pc_sync(s);
    return rc;
}

/*
 * Prefill of a plain prompt, reusing the longest common prefix with the
 * tokens already in the cache (the previous prompt and its output); at
 * least the last token is evaluated, for its logits, unless the prompt is
 * the previous plain prompt again: its logits were kept. -1 + err.
 */
static int
server_prefill_plain(server_t *s, const int32_t *toks, int n, int reuse,
    int *n_cached, char *err, size_t errlen)
{
    int  p = 0;

    if (reuse && n == s->last_n && n >= s->cfg.prefix_min
        && s->kv_toks_len >= n
        && memcmp(s->kv_toks, toks, (size_t) n * sizeof(int32_t)) == 0)
    {
        /* the same prompt again (as long as a reused prefix must be):
           its entries are all there (kv_toks only ever grows past
           them), and so are its logits */
        kv_cache_truncate(s->kv, n);
        s->kv_toks_len = n;
        memcpy(s->logits, s->last_logits, (size_t) s->n_vocab * sizeof(float));
        *n_cached = n;
        return 0;
    }

    s->last_n = 0;

    if (reuse && s->kv_toks_len > 0) {
        p = pcache_common_prefix(s->kv_toks, s->kv_toks_len, toks, n);
        if (p >= n) {
            p = n - 1;
        }
        /* a short prefix saves little: evaluated again */
        if (p < s->cfg.prefix_min) {
            p = 0;
        }
    }
    kv_cache_truncate(s->kv, p);
    s->kv_toks_len = 0;
    pcache_held_reset(&s->held);
    if (model_eval(s->model, s->kv, toks + p, NULL, n - p, s->logits, 0,
                   err, errlen) != 0)
    {
        kv_cache_truncate(s->kv, 0);
        return -1;
    }
    memcpy(s->kv_toks, toks, (size_t) n * sizeof(int32_t));
    s->kv_toks_len = n;
    memcpy(s->last_logits, s->logits, (size_t) s->n_vocab * sizeof(float));
    s->last_n = n;
    *n_cached = p;
    return 0;
}

static void
server_generate(server_t *s, job_t *j)
{
    api_request_t    *r = &j->req;
    api_endpoint_e    ep = r->endpoint;
    api_textout_t     to;
    api_usage_t       usage = { 0, 0, 0, 0, 0, 0 };
    sampler_params_t  sp;
    sampler_t        *smp = NULL;
    char             *prompt, *text = NULL, err[256], piece[SERVER_PIECE_MAX];
    char              head[512];
    const char       *pml, *param = ep == API_EP_CHAT ? "messages"
                                                      : "prompt";
    size_t            text_len = 0, text_cap = 0, ready;
    int32_t          *toks, id, prev, next_pos;
    int               n_prompt, n_cached = 0, max_tokens, n_gen = 0, n,
                      failed = 0, plain;
    const char       *finish = "length";
    double            t_start = server_now(), t0, t1, t2, t_first = 0;

    pml = server_pml_text(r);
    plain = pml == NULL;
    if (!plain && ep == API_EP_CHAT && r->n_msgs > 1) {
        /* the other turns would have no place in the schema's layout */
        job_error(s, j, 400, "invalid_request_error", "messages", NULL,
                  "a PML prompt must be the only message: the schema holds "
                  "the system text (<system>) and earlier turns");
        return;
    }
    if (!plain) {
        t0 = server_now();
        if (server_prefill_pml(s, j, pml, param, &n_prompt, &n_cached,
                               &prev, &next_pos) != 0)
        {
            return;
        }
        t1 = server_now();
    } else {
        if (ep == API_EP_CHAT) {
            prompt = chat_apply(s->tmpl, r->msgs, r->n_msgs, 1, err,
                                sizeof(err));
            if (prompt == NULL) {
                job_error(s, j, 400, "invalid_request_error", "messages",
                          NULL, "%s", err);
                return;
            }
            toks = server_tokenize(s, j, prompt, &n_prompt, "messages");
            free(prompt);
        } else {
            toks = server_tokenize(s, j, r->prompt, &n_prompt, "prompt");
        }
        if (toks == NULL) {
            return;
        }
        t0 = server_now();
        if (server_prefill_plain(s, toks, n_prompt, r->cache, &n_cached, err,
                                 sizeof(err)) != 0)
        {
            free(toks);
            job_error(s, j, 500, "server_error", NULL, NULL, "%s", err);
            return;
        }
        t1 = server_now();
        prev = toks[n_prompt - 1];
        next_pos = n_prompt;
        free(toks);
    }

    max_tokens = s->n_ctx - n_prompt;
    if (r->max_tokens > 0 && r->max_tokens < max_tokens) {
        max_tokens = r->max_tokens;
    } else if (r->max_tokens < 0 && ep == API_EP_COMPLETIONS
               && max_tokens > 16)
    {
        max_tokens = 16;        /* OpenAI's default for completions */
    }

    sp.temperature = r->top_p == 0 ? 0 : r->temperature;
    sp.top_k = r->top_k;
    sp.top_p = r->top_p;
    sp.seed = r->seed;
    smp = sampler_new(&sp, s->n_vocab);
    if (smp == NULL) {
        job_error(s, j, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }

    api_textout_init(&to, r->stop, r->n_stop);
    if (r->stream) {
        /* HTTP/1.0 has no chunked framing: the end of the stream is the
         * end of the connection */
        if (j->version < 11) {
            j->keep_alive = 0;
        }
        n = server_head(head, sizeof(head), 200, "text/event-stream", -1,
                        j->keep_alive, j->version,
                        "Cache-Control: no-cache\r\n");
        job_write(s, j, head, (size_t) n);
        if (ep == API_EP_CHAT) {
            job_event_json(s, j, api_chunk_json(ep, j->id, j->created,
                           s->model_name, "assistant", NULL, 0, NULL));
        }
    }

    while (n_gen < max_tokens) {
        if (job_cancelled(j)) {
            failed = 499;
            break;
        }
        id = sampler_sample(smp, s->logits);
        if (t_first == 0) {
            t_first = server_now();
        }
        if (tokenizer_is_eog(s->tok, id)) {
            finish = "stop";
            break;
        }
        n_gen++;
        n = tokenizer_decode(s->tok, prev, id, piece, sizeof(piece));
        if (n > 0 && api_textout_push(&to, piece, (size_t) n) != 0) {
            failed = 500;
            break;
        }
        ready = api_textout_ready(&to, 0);
        if (ready > 0) {
            if (r->stream) {
                job_event_json(s, j, api_chunk_json(ep, j->id, j->created,
                               s->model_name, NULL, to.buf, ready, NULL));
            } else if (buf_append(&text, &text_len, &text_cap, to.buf, ready)
                       != 0)
            {
                failed = 500;
                break;
            }
            api_textout_consume(&to, ready);
        }
        if (to.stopped) {
            finish = "stop";
            break;
        }
        if (n_gen == max_tokens) {
            break;
        }
        if (model_eval(s->model, s->kv, &id, &next_pos, 1, s->logits, 0,
                       err, sizeof(err)) != 0)
        {
            s->kv_toks_len = 0;
            failed = 500;
            break;
        }
        next_pos++;
        if (plain && s->kv_toks_len < s->n_ctx) {
            s->kv_toks[s->kv_toks_len++] = id;
        }
        prev = id;
    }
    t2 = server_now();
    sampler_free(smp);

    /* whatever was held back: an incomplete character or a stop prefix
     * that never completed */
    ready = api_textout_ready(&to, 1);
    if (failed == 0 && ready > 0) {
        if (r->stream) {
            job_event_json(s, j, api_chunk_json(ep, j->id, j->created,
                           s->model_name, NULL, to.buf, ready, NULL));
        } else if (buf_append(&text, &text_len, &text_cap, to.buf, ready)
                   != 0)
        {
            failed = 500;
        }
    }
    api_textout_free(&to);

    usage.prompt_tokens = n_prompt;
    usage.completion_tokens = n_gen;
    usage.cached_tokens = n_cached;
    usage.has_timings = 1;
    usage.prefill_ms = (t1 - t0) * 1e3;
    usage.ttft_ms = ((t_first > 0 ? t_first : t1) - t_start) * 1e3;
    pthread_mutex_lock(&s->lock);
    if (plain) {
        s->metrics.pc_prefix_tokens += (uint64_t) n_cached;
    }
    s->metrics.prompt_tokens += (uint64_t) n_prompt;
    s->metrics.generated_tokens += (uint64_t) n_gen;
    s->metrics.prefill_seconds += t1 - t0;
    s->metrics.decode_seconds += t2 - t1;
    s->metrics.last_prefill_tps = t1 > t0 ? n_prompt / (t1 - t0) : 0;
    s->metrics.last_decode_tps = t2 > t1 ? n_gen / (t2 - t1) : 0;
    if (failed == 499) {
        s->metrics.client_aborts++;
    }
    pthread_mutex_unlock(&s->lock);

    if (failed == 499) {
        server_count(s, ep, 499);
    } else if (r->stream) {
        server_count(s, ep, failed ? failed : 200);
        if (failed) {
            job_event(s, j, "{\"error\":{\"message\":\"generation failed\","
                      "\"type\":\"server_error\",\"param\":null,"
                      "\"code\":null}}");
        } else {
            if (r->include_usage) {
                job_event_json(s, j, api_chunk_json(ep, j->id, j->created,
                               s->model_name, NULL, NULL, 0, finish));
            } else {
                job_event_json(s, j, api_finish_chunk_json(ep, j->id,
                               j->created, s->model_name, finish, &usage));
            }
            if (r->include_usage) {
                job_event_json(s, j, api_usage_chunk_json(ep, j->id,
                               j->created, s->model_name, &usage));
            }
        }
        job_event(s, j, "[DONE]");
        if (j->version >= 11) {
            job_write(s, j, "0\r\n\r\n", 5);
        }
    } else if (failed) {
        job_error(s, j, 500, "server_error", NULL, NULL,
                  "generation failed: %s", failed == 500 ? err : "");
    } else {
        job_respond(s, j, ep, 200, api_completion_json(ep, j->id, j->created,
                    s->model_name, text ? text : "", text_len, finish,
                    &usage));
    }
    free(text);
}

/* --- the schema store's endpoints (generation thread) -------------------- */

static int
server_pml_src(const pml_node_t *n, const char **name)
{
    size_t  i;

    if (n->kind == PML_NODE_MODULE && n->src != NULL) {
        *name = n->name;
        return 1;
    }
    for (i = 0; i < n->n_kids; i++) {
        if (server_pml_src(n->kids[i], name)) {
            return 1;
        }
    }
    return 0;
}

/* a stored schema for api.c, by index or name; out->mods is malloc()ed */
static int
server_schema_info(server_t *s, int i, const char *name, api_schema_t *out)
{
    pcache_schema_info_t  si;
    pcache_mod_info_t     mi;
    int                   k;

    if (pcache_schema_info(s->pc, i, name, &si) != 0) {
        return -1;
    }
    out->name = si.name;
    out->mode = si.mode == PML_MODE_INDEPENDENT ? "independent" : "scaffold";
    out->n_mods = si.n_mods;
    out->tokens = si.n_tokens;
    out->bytes = si.bytes;
    out->encode_ms = si.encode_ms;
    out->loaded = si.loaded;
    out->mods = calloc((size_t) si.n_mods, sizeof(api_schema_mod_t));
    if (out->mods == NULL) {
        return -1;
    }
    for (k = 0; k < si.n_mods; k++) {
        pcache_module_info(s->pc, i, name, k, &mi);
        out->mods[k].name = mi.name;
        out->mods[k].tokens = mi.n_tokens;
        out->mods[k].start = mi.start;
        out->mods[k].end = mi.end;
        out->mods[k].bytes = mi.bytes;
        out->mods[k].resident = mi.resident;
    }
    return 0;
}

static char *
server_schema_json(server_t *s, const char *name)
{
    api_schema_t  as;
    char         *json;

    if (server_schema_info(s, -1, name, &as) != 0) {
        return NULL;
    }
    json = api_schema_json(&as);
    free(as.mods);
    return json;
}

static void
server_schema_put(server_t *s, job_t *j)
{
    pml_schema_t  *sc;
    pml_layout_t   lay;
    const char    *src;
    char           err[256], *name;
    int            rc;

    if (j->body == NULL || j->body_len == 0) {
        job_error(s, j, 400, "invalid_request_error", NULL, "invalid_schema",
                  "the body must be a PML schema");
        return;
    }
    if (pml_schema_parse(j->body, j->body_len, &sc, err, sizeof(err)) != 0) {
        job_error(s, j, 400, "invalid_request_error", NULL, "invalid_schema",
                  "PML schema: %s", err);
        return;
    }
    if (server_pml_src(sc->root, &src)) {
        job_error(s, j, 400, "invalid_request_error", NULL, "invalid_schema",
                  "module \"%s\": src= is resolved by `llmcache schema "
                  "push`, which inlines the files", src);
        pml_schema_free(sc);
        return;
    }
    memset(&lay, 0, sizeof(lay));
    if (pml_layout(sc, &s->roles, tokenizer_bos(s->tok), server_pml_tok, s,
                   &lay, err, sizeof(err)) != 0)
    {
        job_error(s, j, 400, "invalid_request_error", NULL, "invalid_schema",
                  "PML schema: %s", err);
        pml_schema_free(sc);
        return;
    }
    if (lay.n_pos >= s->n_ctx) {
        job_error(s, j, 400, "invalid_request_error", NULL,
                  "context_length_exceeded", "schema \"%s\" spans %d "
                  "positions; the context is %d", sc->name, lay.n_pos,
                  s->n_ctx);
        pml_layout_free(&lay);
        pml_schema_free(sc);
        return;
    }
    rc = pcache_schema_put(s->pc, sc->name, j->body, j->body_len, &lay, err,
                           sizeof(err));
    pml_layout_free(&lay);
    /* before the answer: a client may ask /metrics right after it */
    server_pc_sync(s);
    if (rc == -2) {
        job_error(s, j, 413, "invalid_request_error", NULL, "kv_budget",
                  "%s", err);
    } else if (rc != 0) {
        job_error(s, j, 500, "server_error", NULL, NULL, "%s", err);
    } else {
        name = sc->name;
        job_respond(s, j, API_EP_SCHEMAS, 200,
                    server_schema_json(s, name));
    }
    pml_schema_free(sc);
}

static void
server_schemas(server_t *s, job_t *j)
{
    api_schema_t    *list;
    pcache_stats_t   st;
    char            *json, *one;
    int              i, n;

    if (j->req.endpoint == API_EP_SCHEMAS && strcmp(j->method, "POST") == 0) {
        server_schema_put(s, j);
        return;
    }
    if (j->req.endpoint == API_EP_SCHEMA) {
        if (strcmp(j->method, "DELETE") == 0) {
            n = pcache_schema_del(s->pc, j->name);
            server_pc_sync(s);
            if (n != 0) {
                job_error(s, j, 404, "invalid_request_error", NULL,
                          "unknown_schema", "unknown schema \"%s\"",
                          j->name);
            } else {
                job_respond(s, j, API_EP_SCHEMA, 200,
                            api_deleted_json(j->name));
            }
            return;
        }
        one = server_schema_json(s, j->name);
        if (one == NULL) {
            job_error(s, j, 404, "invalid_request_error", NULL,
                      "unknown_schema", "unknown schema \"%s\"", j->name);
            return;
        }
        job_respond(s, j, API_EP_SCHEMA, 200, one);
        return;
    }

    n = pcache_n_schemas(s->pc);
    list = calloc((size_t) (n > 0 ? n : 1), sizeof(*list));
    if (list == NULL) {
        job_respond(s, j, API_EP_SCHEMAS, 500, NULL);
        return;
    }
    for (i = 0; i < n; i++) {
        if (server_schema_info(s, i, NULL, &list[i]) != 0) {
            list[i].name = "";
            list[i].mode = "";
        }
    }
    pcache_stats(s->pc, &st);
    json = api_schemas_json(list, n, st.budget, (size_t) st.bytes,
                            pcache_entry_bytes(s->pc));
    for (i = 0; i < n; i++) {
        free(list[i].mods);
    }
    free(list);
    job_respond(s, j, API_EP_SCHEMAS, 200, json);
}

static void *
server_gen_main(void *arg)
{
    server_t  *s = arg;
    job_t     *j;
    int        orphan, stopping;

    for ( ;; ) {
        pthread_mutex_lock(&s->lock);
        while (s->queue_head == NULL && !s->stopping) {
            pthread_cond_wait(&s->cond, &s->lock);
        }
        j = s->queue_head;
        if (j == NULL) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        s->queue_head = j->next;
        if (s->queue_head == NULL) {
            s->queue_tail = NULL;
        }
        s->queue_len--;
        s->metrics.queue_depth = (uint64_t) s->queue_len;
        s->running = j;
        stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);

        if (job_cancelled(j)) {
            server_count(s, j->req.endpoint, 499);
        } else if (stopping) {
            j->keep_alive = 0;
            job_error(s, j, 503, "server_error", NULL, "shutting_down",
                      "the worker is shutting down");
        } else if (j->req.endpoint == API_EP_EMBEDDINGS) {
            server_embed(s, j);
        } else if (j->req.endpoint == API_EP_SCHEMAS
                   || j->req.endpoint == API_EP_SCHEMA)
        {
            server_schemas(s, j);
        } else {
            server_generate(s, j);
        }

        pthread_mutex_lock(&s->lock);
        j->done = 1;
        orphan = j->orphan;
        s->running = NULL;
        pthread_mutex_unlock(&s->lock);
        if (orphan) {
            job_free(j);
        }
        server_notify(s);
    }

    pthread_mutex_lock(&s->lock);
    s->gen_exited = 1;
    pthread_mutex_unlock(&s->lock);
    server_notify(s);
    return NULL;
}

/* --- connections: the I/O thread's side ---------------------------------- */

static void
conn_events(server_t *s, conn_t *c)
{
    struct epoll_event  ev;
    unsigned            want = EPOLLRDHUP;

    /* while a job runs, pipelined bytes are buffered, within reason */
    if (c->job == NULL
        || http_parser_buffered(c->parser) < HTTP_DEF_MAX_HEAD
                                             + s->cfg.max_body)
    {
        want |= EPOLLIN;
    }
    if (c->wpos < c->wlen) {
        want |= EPOLLOUT;
    }
    if (want == c->events) {
        return;
    }
    ev.events = want;
    ev.data.ptr = c;
    epoll_ctl(s->efd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = want;
}

static void
conn_close(server_t *s, conn_t *c)
{
    job_t  *j = c->job;

    if (j != NULL) {
        pthread_mutex_lock(&s->lock);
        if (j->done) {
            pthread_mutex_unlock(&s->lock);
            job_free(j);
        } else {
            j->orphan = 1;
            __atomic_store_n(&j->cancelled, 1, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&s->lock);
        }
    }
    epoll_ctl(s->efd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    http_parser_free(c->parser);
    free(c->wbuf);
    free(c);
    server_accept_pause(s, 0);
}

/* writes what it can; -1 when the connection was closed */
static int
conn_flush(server_t *s, conn_t *c)
{
    ssize_t  n;

    while (c->wpos < c->wlen) {
        n = send(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            conn_close(s, c);
            return -1;
        }
        c->wpos += (size_t) n;
    }
    if (c->wpos == c->wlen) {
        c->wpos = c->wlen = 0;
        if (c->close_after && c->job == NULL && !c->lingering) {
            /* a close with unread input would reset a TCP connection and
             * could destroy the response in flight: half-close, then
             * drain until the client closes (or SERVER_LINGER passes) */
            if (s->stopping || shutdown(c->fd, SHUT_WR) != 0) {
                conn_close(s, c);
                return -1;
            }
            c->lingering = server_mono();
        }
    }
    conn_events(s, c);
    return 0;
}

static void
conn_write(conn_t *c, const void *data, size_t n)
{
    if (buf_append(&c->wbuf, &c->wlen, &c->wcap, data, n) != 0) {
        c->close_after = 1;
    }
}

static void
conn_respond(server_t *s, conn_t *c, api_endpoint_e ep, int status,
    const char *ctype, const char *body, int keep_alive, int version,
    int head_only, const char *extra)
{
    char    head[512];
    int     n;
    size_t  len = body ? strlen(body) : 0;

    n = server_head(head, sizeof(head), status, ctype, (long) len,
                    keep_alive, version, extra);
    conn_write(c, head, (size_t) n);
    if (!head_only && len > 0) {
        conn_write(c, body, len);
    }
    if (!keep_alive) {
        c->close_after = 1;
    }
    server_count(s, ep, status);
}

static void
conn_error(server_t *s, conn_t *c, api_endpoint_e ep, const api_error_t *e,
    int keep_alive, int version, const char *extra)
{
    char  *json = api_error_json(e);

    conn_respond(s, c, ep, e->status, "application/json", json, keep_alive,
                 version, 0, extra);
    free(json);
}

static void
conn_request(server_t *s, conn_t *c, const http_request_t *req)
{
    api_endpoint_e   ep;
    api_error_t      e;
    job_t           *j;
    char            *body, allow[64];
    int              ka = req->keep_alive && !s->stopping;
    int              head_only = strcmp(req->method, "HEAD") == 0;

    if (api_route(req->method, req->path, &ep, &e) != 0) {
        allow[0] = '\0';
        if (e.status == 405) {
            snprintf(allow, sizeof(allow), "Allow: %s\r\n",
                     ep == API_EP_COMPLETIONS || ep == API_EP_CHAT
                     || ep == API_EP_EMBEDDINGS ? "POST"
                     : ep == API_EP_SCHEMAS ? "GET, HEAD, POST"
                     : ep == API_EP_SCHEMA ? "GET, HEAD, DELETE"
                     : "GET, HEAD");
        }
        conn_error(s, c, ep, &e, ka, req->version, allow);
        return;
    }

    if (model_is_encoder(s->model)
        && (ep == API_EP_COMPLETIONS || ep == API_EP_CHAT
            || (ep == API_EP_SCHEMAS && strcmp(req->method, "POST") == 0)))
    {
        api_error_set(&e, 400, "invalid_request_error", "model",
                      "model_not_supported", "%s is an encoder (%s): it "
                      "serves /v1/embeddings only", s->model_name,
                      model_arch_name(model_hparams(s->model)->arch));
        conn_error(s, c, ep, &e, ka, req->version, NULL);
        return;
    }

    switch (ep) {
    case API_EP_HEALTH:
        conn_respond(s, c, ep, 200, "application/json",
                     s->stopping ? "{\"status\":\"stopping\"}"
                                 : "{\"status\":\"ok\"}",
                     ka, req->version, head_only, NULL);
        return;
    case API_EP_MODELS:
        body = api_models_json(s->model_name, s->started, s->n_ctx);
        conn_respond(s, c, ep, body ? 200 : 500, "application/json", body,
                     ka, req->version, head_only, NULL);
        free(body);
        return;
    case API_EP_METRICS:
        pthread_mutex_lock(&s->lock);
        /* counted before printing, so a scrape sees itself */
        api_metrics_count(&s->metrics, ep, 200);
        body = api_metrics_text(&s->metrics);
        pthread_mutex_unlock(&s->lock);
        conn_respond(s, c, API_EP_COUNT, 200,
                     "text/plain; version=0.0.4; charset=utf-8", body, ka,
                     req->version, head_only, NULL);
        free(body);
        return;
    default:
        break;
    }

    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        conn_error(s, c, ep, &e, 0, req->version, NULL);
        return;
    }
    if (ep == API_EP_SCHEMAS || ep == API_EP_SCHEMA) {
        /* the store belongs to the generation thread: even a listing
         * waits its turn */
        j->req.endpoint = ep;
        j->req.cache = 1;
        snprintf(j->method, sizeof(j->method), "%s",
                 head_only ? "GET" : req->method);
        if (ep == API_EP_SCHEMA) {
            j->name = strdup(api_schema_name(req->path));
        }
        if (strcmp(req->method, "POST") == 0) {
            j->body = malloc(req->body_len + 1);
            if (j->body != NULL) {
                memcpy(j->body, req->body, req->body_len);
                j->body[req->body_len] = '\0';
                j->body_len = req->body_len;
            }
        }
        if ((ep == API_EP_SCHEMA && j->name == NULL)
            || (strcmp(req->method, "POST") == 0 && j->body == NULL))
        {
            job_free(j);
            api_error_set(&e, 500, "server_error", NULL, NULL,
                          "out of memory");
            conn_error(s, c, ep, &e, 0, req->version, NULL);
            return;
        }
    } else if (api_request_parse(ep, req->body, req->body_len, &j->req, &e)
               != 0)
    {
        free(j);
        conn_error(s, c, ep, &e, ka, req->version, NULL);
        return;
    }
    j->keep_alive = ka;
    j->version = req->version;
    j->created = (long) time(NULL);

    pthread_mutex_lock(&s->lock);
    if (s->stopping || s->queue_len >= s->cfg.max_queue) {
        if (!s->stopping) {
            s->metrics.queue_rejected++;
        }
        pthread_mutex_unlock(&s->lock);
        job_free(j);
        api_error_set(&e, 503, "server_error", NULL,
                      s->stopping ? "shutting_down" : "queue_full",
                      s->stopping ? "the worker is shutting down"
                                  : "the worker is busy: %d requests are "
                                    "already waiting", s->cfg.max_queue);
        conn_error(s, c, ep, &e, ka, req->version, "Retry-After: 1\r\n");
        return;
    }
    s->id_seq++;
    if (!j->req.has_seed) {
        /* splitmix64's increment spreads consecutive requests apart */
        j->req.seed = ((uint64_t) server_now_ns() ^ (uint64_t) getpid())
                      + s->id_seq * 0x9e3779b97f4a7c15ULL;
    }
    snprintf(j->id, sizeof(j->id), "%s-%08lx%016" PRIx64,
             ep == API_EP_CHAT ? "chatcmpl" : ep == API_EP_EMBEDDINGS
             ? "embd" : "cmpl", (unsigned long) s->started, s->id_seq);
    if (s->queue_tail) {
        s->queue_tail->next = j;
    } else {
        s->queue_head = j;
    }
    s->queue_tail = j;
    s->queue_len++;
    s->metrics.queue_depth = (uint64_t) s->queue_len;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    c->job = j;
}

/* parses and answers buffered requests until one needs the generation
 * thread; -1 when the connection was closed */
static int
conn_process(server_t *s, conn_t *c)
{
    http_request_t   req;
    http_status_e    rc;
    api_error_t      e;
    static const char  cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    while (c->job == NULL && !c->close_after) {
        rc = http_parser_next(c->parser, &req);
        if (rc == HTTP_NEED_MORE) {
            break;
        }
        if (rc == HTTP_CONTINUE) {
            conn_write(c, cont, sizeof(cont) - 1);
            continue;
        }
        if (rc == HTTP_ERROR) {
            api_error_set(&e, http_parser_status(c->parser),
                          "invalid_request_error", NULL, "bad_http",
                          "%s", http_parser_error(c->parser));
            conn_error(s, c, API_EP_OTHER, &e, 0, 11, NULL);
            break;
        }
        conn_request(s, c, &req);
    }
    return conn_flush(s, c);
}

/* hup: epoll reported a hang-up, to be acted on even while reading is
 * paused */
static void
conn_read(server_t *s, conn_t *c, int hup)
{
    char     buf[SERVER_READ_CHUNK];
    ssize_t  n;

    for ( ;; ) {
        if (!(c->events & EPOLLIN)) {
            if (hup) {
                conn_close(s, c);
            }
            return;
        }
        n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            c->last_read = server_mono();
            if (c->close_after) {
                continue;       /* no more requests are read: dropped */
            }
            if (http_parser_feed(c->parser, buf, (size_t) n) != 0) {
                conn_close(s, c);
                return;
            }
            if (conn_process(s, c) != 0) {
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        /* EOF or an error: the client is gone, and so is its job */
        conn_close(s, c);
        return;
    }
}

/* moves job output to the connections; finishes done jobs */
static void
server_collect(server_t *s)
{
    conn_t  *c, *next;
    job_t   *j;
    int      done;

    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        j = c->job;
        if (j == NULL) {
            continue;
        }
        pthread_mutex_lock(&s->lock);
        if (j->out_len > 0) {
            conn_write(c, j->out, j->out_len);
            j->out_len = 0;
        }
        done = j->done;
        pthread_mutex_unlock(&s->lock);
        if (done) {
            if (!j->keep_alive) {
                c->close_after = 1;
            }
            job_free(j);
            c->job = NULL;
            if (conn_process(s, c) != 0) {
                continue;
            }
        } else if (conn_flush(s, c) != 0) {
            continue;
        }
    }
}

static void
server_accept_pause(server_t *s, int pause)
{
    struct epoll_event  ev;

    if (s->lfd < 0 || s->accept_paused == pause) {
        return;
    }
    if (pause) {
        epoll_ctl(s->efd, EPOLL_CTL_DEL, s->lfd, NULL);
    } else {
        ev.events = EPOLLIN;
        ev.data.ptr = &s->tag_listen;
        epoll_ctl(s->efd, EPOLL_CTL_ADD, s->lfd, &ev);
    }
    s->accept_paused = pause;
}

static void
server_accept(server_t *s)
{
    struct epoll_event  ev;
    conn_t             *c;
    int                 fd, one = 1;

    for ( ;; ) {
        fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* out of descriptors or memory: the listening socket
                 * would stay readable and spin the loop, so it leaves
                 * epoll until a connection closes */
                server_accept_pause(s, 1);
            }
            return;
        }
        if (s->listen_path[0] == '\0') {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        c = calloc(1, sizeof(*c));
        if (c != NULL) {
            c->parser = http_parser_new(0, s->cfg.max_body);
        }
        if (c == NULL || c->parser == NULL) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->last_read = server_mono();
        c->events = EPOLLIN | EPOLLRDHUP;
        ev.events = c->events;
        ev.data.ptr = c;
        if (epoll_ctl(s->efd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            http_parser_free(c->parser);
            free(c);
            close(fd);
            continue;
        }
        c->next = s->conns;
        if (s->conns) {
            s->conns->prev = c;
        }
        s->conns = c;
    }
}

/* a request that stopped arriving half-way gets 408 and the connection
 * closes; idle keep-alive connections are left to the client */
static void
server_sweep(server_t *s)
{
    conn_t       *c, *next;
    api_error_t   e;
    time_t        now = server_mono();

    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (c->lingering && now - c->lingering >= SERVER_LINGER) {
            conn_close(s, c);
            continue;
        }
        if (c->job != NULL || c->close_after
            || !http_parser_partial(c->parser)
            || now - c->last_read <= s->cfg.request_timeout)
        {
            continue;
        }
        api_error_set(&e, 408, "invalid_request_error", NULL,
                      "request_timeout", "the request stopped arriving: "
                      "no bytes for %d seconds", s->cfg.request_timeout);
        conn_error(s, c, API_EP_OTHER, &e, 0, 11, NULL);
        conn_flush(s, c);
    }
}

static void
server_stop(server_t *s)
{
    conn_t  *c, *next;

    if (s->stopping) {
        return;
    }
    server_accept_pause(s, 1);
    close(s->lfd);
    s->lfd = -1;
    if (s->listen_path[0]) {
        unlink(s->listen_path);
        s->listen_path[0] = '\0';
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    s->stop_deadline = time(NULL) + s->cfg.stop_grace;

    /* idle connections go now; busy ones when their response is out */
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        c->close_after = 1;
        if (c->job == NULL) {
            conn_flush(s, c);
        }
    }
}

int
server_run(server_t *s, char *err, size_t errlen)
{
    struct epoll_event       evs[64];
    struct signalfd_siginfo  si;
    uint64_t                 cnt;
    int                      i, n, gen_exited;
    void                    *p;
    conn_t                  *c;
    time_t                   swept = server_mono();

    if (pthread_create(&s->thread, NULL, server_gen_main, s) != 0) {
        return errf(err, errlen, __func__, "pthread_create failed");
    }
    s->thread_started = 1;

    for ( ;; ) {
        if (s->stopping) {
            pthread_mutex_lock(&s->lock);
            gen_exited = s->gen_exited;
            if (time(NULL) >= s->stop_deadline && s->running != NULL) {
                __atomic_store_n(&s->running->cancelled, 1,
                                 __ATOMIC_RELAXED);
            }
            pthread_mutex_unlock(&s->lock);
            if (gen_exited && s->conns == NULL) {
                break;
            }
            if (gen_exited && time(NULL) >= s->stop_deadline + 5) {
                break;      /* clients that do not read their responses */
            }
        }
        n = epoll_wait(s->efd, evs, 64, s->stopping ? 200 : 1000);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errf(err, errlen, __func__, "epoll_wait: %s",
                              strerror(errno));
        }
        for (i = 0; i < n; i++) {
            p = evs[i].data.ptr;
            if (p == &s->tag_listen) {
                server_accept(s);
            } else if (p == &s->tag_event) {
                if (read(s->evfd, &cnt, sizeof(cnt)) < 0) {
                    /* nothing to read: another wake-up took it */
                }
                server_collect(s);
            } else if (p == &s->tag_signal) {
                if (read(s->sfd, &si, sizeof(si)) == sizeof(si)) {
                    fprintf(stderr, "llmcache-worker: signal %u, stopping\n",
                            si.ssi_signo);
                }
                server_stop(s);
            }
        }
        /* connection events after the server's own: a collect above may
         * have closed one of them, which then no longer appears below */
        for (i = 0; i < n; i++) {
            p = evs[i].data.ptr;
            if (p == &s->tag_listen || p == &s->tag_event
                || p == &s->tag_signal)
            {
                continue;
            }
            for (c = s->conns; c != NULL && c != p; c = c->next) {
                /* void */
            }
            if (c == NULL) {
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (conn_flush(s, c) != 0) {
                    continue;
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP
                                 | EPOLLERR))
            {
                conn_read(s, c, (evs[i].events & (EPOLLRDHUP | EPOLLHUP
                                                  | EPOLLERR)) != 0);
            }
        }
        if (server_mono() != swept) {
            swept = server_mono();
            server_sweep(s);
        }
    }
    return 0;
}

/* --- setup --------------------------------------------------------------- */

/* a user or group by name, or a numeric id; -1 when neither */
static long
server_owner_id(const char *name, int group)
{
    struct passwd  *pw;
    struct group   *gr;
    char           *end;
    unsigned long   id;

    if (group ? (gr = getgrnam(name)) != NULL : (pw = getpwnam(name)) != NULL)
    {
        return group ? (long) gr->gr_gid : (long) pw->pw_uid;
    }
    id = strtoul(name, &end, 10);
    return *name != '\0' && *end == '\0' ? (long) id : -1;
}

/* --socket-owner "USER[:GROUP]" or ":GROUP" */
static int
server_socket_owner(const char *path, const char *spec, char *err,
    size_t errlen)
{
    char         user[256];
    const char  *colon = strchr(spec, ':'), *group;
    long         uid = -1, gid = -1;
    size_t       ul = colon ? (size_t) (colon - spec) : strlen(spec);

    if (ul >= sizeof(user) || (ul == 0 && (colon == NULL || !colon[1]))) {
        return errf(err, errlen, __func__, "--socket-owner \"%s\": "
                    "expected USER, USER:GROUP or :GROUP", spec);
    }
    memcpy(user, spec, ul);
    user[ul] = '\0';
    if (ul > 0 && (uid = server_owner_id(user, 0)) < 0) {
        return errf(err, errlen, __func__, "--socket-owner: no user "
                    "\"%s\"", user);
    }
    group = colon ? colon + 1 : "";
    if (*group != '\0' && (gid = server_owner_id(group, 1)) < 0) {
        return errf(err, errlen, __func__, "--socket-owner: no group "
                    "\"%s\"", group);
    }
    if (chown(path, (uid_t) uid, (gid_t) gid) != 0) {
        return errf(err, errlen, __func__, "--socket-owner: chown %s: %s",
                    path, strerror(errno));
    }
    return 0;
}

static int
server_listen_unix(server_t *s, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un  sa;
    struct stat         st;
    int                 fd, probe;
    mode_t              old;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        return errf(err, errlen, __func__, "socket path too long: %s",
                          path);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);

    /* a stale socket file is removed; a live one is an error */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return errf(err, errlen, __func__, "%s exists and is not "
                              "a socket", path);
        }
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *) &sa,
                                  sizeof(sa)) == 0)
        {
            close(probe);
            return errf(err, errlen, __func__, "%s: another server is "
                              "listening there", path);
        }
        if (probe >= 0) {
            close(probe);
        }
        unlink(path);
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return errf(err, errlen, __func__, "socket: %s",
                          strerror(errno));
    }
    /* the file is created with the wanted mode, never wider for a moment */
    old = umask(0777 & ~s->cfg.socket_mode);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        umask(old);
        close(fd);
        return errf(err, errlen, __func__, "bind %s: %s", path,
                          strerror(errno));
    }
    umask(old);
    chmod(path, s->cfg.socket_mode);
    if (s->cfg.socket_owner != NULL
        && server_socket_owner(path, s->cfg.socket_owner, err, errlen) != 0)
    {
        close(fd);
        unlink(path);
        return -1;
    }
    snprintf(s->listen_path, sizeof(s->listen_path), "%s", path);
    if (listen(fd, 128) != 0) {
        close(fd);
        return errf(err, errlen, __func__, "listen: %s",
                          strerror(errno));
    }
    s->lfd = fd;
    return 0;
}

static int
server_listen_tcp(server_t *s, const char *addr, char *err, size_t errlen)
{
    struct addrinfo   hints, *res, *ai;
    char              host[256];
    const char       *colon = strrchr(addr, ':');
    size_t            hl;
    int               fd = -1, one = 1, rc;

    if (colon == NULL || colon[1] == '\0') {
        return errf(err, errlen, __func__, "--listen %s: expected "
                          "unix:/path or host:port", addr);
    }
    hl = (size_t) (colon - addr);
    if (hl >= sizeof(host)) {
        return errf(err, errlen, __func__, "host too long");
    }
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        return errf(err, errlen, __func__, "%s: %s", addr,
                          gai_strerror(rc));
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK
                    | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0
            && listen(fd, 128) == 0)
        {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return errf(err, errlen, __func__, "cannot listen on %s: %s",
                          addr, strerror(errno));
    }
    s->lfd = fd;
    return 0;
}

static void
server_pick_template(server_t *s)
{
    const gguf_ctx_t  *g = model_gguf(s->model);
    const char        *str;
    char              *jinja;
    size_t             len;

    s->tmpl = CHAT_TMPL_NONE;
    if (s->cfg.chat_template != NULL) {
        s->tmpl = chat_tmpl_from_name(s->cfg.chat_template);
        return;
    }
    if (g != NULL && gguf_get_str(g, "tokenizer.chat_template", &str, &len)
                     == 0)
    {
        jinja = malloc(len + 1);
        if (jinja != NULL) {
            memcpy(jinja, str, len);
            jinja[len] = '\0';
            s->tmpl = chat_tmpl_detect(jinja);
            free(jinja);
        }
    }
    if (s->tmpl == CHAT_TMPL_NONE) {
        /* llama.cpp's choice for a model without a known template */
        s->tmpl = CHAT_TMPL_CHATML;
    }
}

static void
server_pick_name(server_t *s)
{
    const model_hparams_t  *hp = model_hparams(s->model);
    const char             *base, *dot;
    size_t                  n;

    if (s->cfg.model_name != NULL) {
        snprintf(s->model_name, sizeof(s->model_name), "%s",
                 s->cfg.model_name);
        return;
    }
    if (hp->name[0] != '\0') {
        snprintf(s->model_name, sizeof(s->model_name), "%s", hp->name);
        return;
    }
    base = strrchr(s->cfg.model_path, '/');
    base = base ? base + 1 : s->cfg.model_path;
    dot = strrchr(base, '.');
    n = dot && dot != base ? (size_t) (dot - base) : strlen(base);
    if (n >= sizeof(s->model_name)) {
        n = sizeof(s->model_name) - 1;
    }
    memcpy(s->model_name, base, n);
    s->model_name[n] = '\0';
}

/*
 * The text the chat template puts around one message of each role, for
 * PML's <system>, <user> and <assistant>: the template applied to a lone
 * message whose content is a marker, cut at the marker.
 */
static void
server_pick_roles(server_t *s)
{
    static const char  *names[3] = { "system", "user", "assistant" };
    chat_msg_t          msg;
    char               *t, *mark, err[128];
    int                 r;

    for (r = 0; r < 3; r++) {
        msg.role = names[r];
        msg.content = "\x01";
        t = chat_apply(s->tmpl, &msg, 1, 0, err, sizeof(err));
        mark = t ? strchr(t, '\x01') : NULL;
        if (mark != NULL) {
            s->role_text[r] = strndup(t, (size_t) (mark - t));
            s->role_text[3 + r] = strdup(mark + 1);
        }
        free(t);
        s->roles.open[r] = s->role_text[r] ? s->role_text[r] : "";
        s->roles.close[r] = s->role_text[3 + r] ? s->role_text[3 + r] : "";
    }
}

static int
server_pc_init(server_t *s, char *err, size_t errlen)
{
    pcache_config_t  pcfg;
    char             lerr[256];
    int              n, skipped;

    server_pick_roles(s);
    pcfg.budget = s->cfg.kv_budget;
    pcfg.dir = s->cfg.kv_dir;
    pcfg.model_path = s->cfg.model_path;
    s->pc = pcache_new(s->model, &pcfg, err, errlen);
    if (s->pc == NULL) {
        return -1;
    }
    if (s->cfg.kv_dir != NULL) {
        lerr[0] = '\0';
        n = pcache_load_dir(s->pc, &skipped, lerr, sizeof(lerr));
        if (n < 0) {
            return errf(err, errlen, __func__, "%s", lerr);
        }
        fprintf(stderr, "llmcache-worker: %d schema(s) loaded from %s%s%s\n",
                n, s->cfg.kv_dir, skipped ? ", skipped some: " : "",
                skipped ? lerr : "");
    }
    server_pc_sync(s);
    return 0;
}

server_t *
server_new(const server_config_t *cfg, char *err, size_t errlen)
{
    server_t               *s;
    const model_hparams_t  *hp;
    struct epoll_event      ev;
    sigset_t                set;
    const char             *l;
    int                     rc;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        errf(err, errlen, __func__, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->lfd = s->efd = s->evfd = s->sfd = -1;
    if (s->cfg.max_queue <= 0) {
        s->cfg.max_queue = 16;
    }
    if (s->cfg.max_body == 0) {
        s->cfg.max_body = HTTP_DEF_MAX_BODY;
    }
    if (s->cfg.socket_mode == 0) {
        s->cfg.socket_mode = 0660;
    }
    if (s->cfg.stop_grace <= 0) {
        s->cfg.stop_grace = 30;
    }
    if (s->cfg.request_timeout <= 0) {
        s->cfg.request_timeout = 60;
    }
    if (s->cfg.prefix_min <= 0) {
        s->cfg.prefix_min = 128;
    }
    if (s->cfg.n_threads <= 0) {
        s->cfg.n_threads = (int) sysconf(_SC_NPROCESSORS_ONLN);
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->started = (long) time(NULL);

    if (cfg->chat_template != NULL
        && chat_tmpl_from_name(cfg->chat_template) == CHAT_TMPL_NONE)
    {
        errf(err, errlen, __func__, "unknown chat template \"%s\" "
                   "(llama2, chatml, llama3, zephyr)", cfg->chat_template);
        goto failed;
    }

    if (cfg->tokenizer_path != NULL) {
        s->model = model_load_llama2c(cfg->model_path, cfg->tokenizer_path,
                                      s->cfg.n_threads, err, errlen);
    } else {
        s->model = model_load(cfg->model_path, s->cfg.n_threads, err,
                              errlen);
    }
    if (s->model == NULL) {
        goto failed;
    }
    hp = model_hparams(s->model);
    s->tok = model_tokenizer(s->model);
    s->n_vocab = hp->n_vocab;
    s->dim = hp->dim;
    s->n_ctx = cfg->n_ctx > 0 ? cfg->n_ctx
                              : (hp->n_ctx_train < 4096 ? hp->n_ctx_train
                                                        : 4096);
    if (s->n_ctx <= 0) {
        s->n_ctx = 4096;
    }
    server_pick_template(s);
    server_pick_name(s);

    s->kv = kv_cache_new(s->model, s->n_ctx);
    s->logits = malloc((size_t) s->n_vocab * sizeof(float));
    s->kv_toks = malloc((size_t) s->n_ctx * sizeof(int32_t));
    s->last_logits = malloc((size_t) s->n_vocab * sizeof(float));
    if (s->kv == NULL || s->logits == NULL || s->kv_toks == NULL
        || s->last_logits == NULL)
    {
        errf(err, errlen, __func__, "cannot allocate a KV cache of %d "
                   "positions", s->n_ctx);
        goto failed;
    }

    if (server_pc_init(s, err, errlen) != 0) {
        goto failed;
    }

    l = cfg->listen;
    if (strncmp(l, "unix:", 5) == 0) {
        rc = server_listen_unix(s, l + 5, err, errlen);
    } else if (l[0] == '/' || l[0] == '.') {
        rc = server_listen_unix(s, l, err, errlen);
    } else {
        rc = server_listen_tcp(s, l, err, errlen);
    }
    if (rc != 0) {
        goto failed;
    }

    s->efd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->efd < 0 || s->evfd < 0 || s->sfd < 0) {
        errf(err, errlen, __func__, "epoll/eventfd/signalfd: %s",
                   strerror(errno));
        goto failed;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &s->tag_listen;
    epoll_ctl(s->efd, EPOLL_CTL_ADD, s->lfd, &ev);
    ev.data.ptr = &s->tag_event;
    epoll_ctl(s->efd, EPOLL_CTL_ADD, s->evfd, &ev);
    ev.data.ptr = &s->tag_signal;
    epoll_ctl(s->efd, EPOLL_CTL_ADD, s->sfd, &ev);
    return s;

failed:
    server_free(s);
    return NULL;
}

void
server_free(server_t *s)
{
    job_t  *j;
    int     i;

    if (s == NULL) {
        return;
    }
    if (s->thread_started) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 1;
        if (s->running) {
            __atomic_store_n(&s->running->cancelled, 1, __ATOMIC_RELAXED);
        }
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
    }
    while (s->conns != NULL) {
        conn_close(s, s->conns);
    }
    while ((j = s->queue_head) != NULL) {
        s->queue_head = j->next;
        job_free(j);
    }
    if (s->lfd >= 0) {
        close(s->lfd);
    }
    if (s->listen_path[0]) {
        unlink(s->listen_path);
    }
    if (s->efd >= 0) {
        close(s->efd);
    }
    if (s->evfd >= 0) {
        close(s->evfd);
    }
    if (s->sfd >= 0) {
        close(s->sfd);
    }
    free(s->logits);
    free(s->kv_toks);
    free(s->last_logits);
    pcache_held_free(&s->held);
    pcache_free(s->pc);
    for (i = 0; i < 6; i++) {
        free(s->role_text[i]);
    }
    kv_cache_free(s->kv);
    model_free(s->model);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}
