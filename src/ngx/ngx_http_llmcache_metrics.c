/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * Counters in shared memory (llmcache_zone), served as Prometheus text,
 * JSON or a dashboard page (llmcache_metrics), and cache purging
 * (llmcache_purge).  A module of its own in the same shared object.
 *
 * The counters are atomics in one slab allocation, so every worker adds to
 * the same numbers without a lock.  Models get a fixed table: a name is
 * written once under the slab's mutex and published by bumping the count
 * after a barrier, so readers never lock; once the table is full the rest
 * share the "other" row.
 *
 * A purge is a chain of Redis round trips on the module's connection: SCAN
 * with MATCH on the hash-tagged pattern, UNLINK what the batch found (one
 * UNLINK per hash slot, as a cluster wants), SCAN on from the cursor until
 * it is 0, then the same on the next master of a cluster; the request is
 * kept alive by its count until the last reply answers it.
 */


#include "ngx_http_llmcache_module.h"
#include "ngx_http_llmcache_dashboard.h"

#include "llmc_slot.h"


#define NGX_HTTP_LLMCACHE_M_STATUSES   5    /* NGX_HTTP_LLMCACHE_*, 0 unused */
#define NGX_HTTP_LLMCACHE_M_APIS       5    /* llmc_api_e */
#define NGX_HTTP_LLMCACHE_M_MODELS     32
#define NGX_HTTP_LLMCACHE_M_MODEL_LEN  64
#define NGX_HTTP_LLMCACHE_M_BUCKETS    13   /* the last is +Inf */
#define NGX_HTTP_LLMCACHE_M_EVENTS     4    /* NGX_HTTP_LLMCACHE_M_REDIS_* */

#define NGX_HTTP_LLMCACHE_PURGE_KEY    1
#define NGX_HTTP_LLMCACHE_PURGE_SCOPE  2
#define NGX_HTTP_LLMCACHE_PURGE_ALL    3
#define NGX_HTTP_LLMCACHE_PURGE_WAIT   50
#define NGX_HTTP_LLMCACHE_PURGE_WAIT_MAX  2000

#define NGX_HTTP_LLMCACHE_SCAN_COUNT   "1000"


/* tokens and dollars (in millionths) as the accounting reports them */
typedef struct {
    ngx_atomic_t                input_tokens;
    ngx_atomic_t                cached_tokens;
    ngx_atomic_t                output_tokens;
    ngx_atomic_t                saved_tokens;
    ngx_atomic_t                cost_musd;
    ngx_atomic_t                saved_musd;
} ngx_http_llmcache_m_usage_t;


typedef struct {
    u_char                      name[NGX_HTTP_LLMCACHE_M_MODEL_LEN];
    size_t                      len;
    ngx_atomic_t                requests[NGX_HTTP_LLMCACHE_M_STATUSES];
    ngx_atomic_t                hit_bytes;
    ngx_http_llmcache_m_usage_t usage;
} ngx_http_llmcache_m_model_t;


typedef struct {
    ngx_atomic_t                requests[NGX_HTTP_LLMCACHE_M_STATUSES]
                                        [NGX_HTTP_LLMCACHE_M_APIS];
    ngx_atomic_t                redis[NGX_HTTP_LLMCACHE_M_EVENTS];
    ngx_atomic_t                lookup[NGX_HTTP_LLMCACHE_M_BUCKETS];
    ngx_atomic_t                lookup_count;
    ngx_atomic_t                lookup_ms;
    ngx_atomic_t                hit_bytes;
    ngx_atomic_t                lock_waits;
    ngx_atomic_t                lock_ms;
    ngx_atomic_t                purged;
    ngx_http_llmcache_m_usage_t usage;
    time_t                      start;
    ngx_atomic_t                nmodels;
    /* the last row is "other" */
    ngx_http_llmcache_m_model_t models[NGX_HTTP_LLMCACHE_M_MODELS + 1];
} ngx_http_llmcache_m_shm_t;


typedef struct {
    ngx_shm_zone_t             *zone;
    ngx_uint_t                  metrics;     /* some location serves them */
} ngx_http_llmcache_metrics_main_conf_t;


typedef struct {
    u_char                     *data;
    size_t                      len;
    ngx_uint_t                  slot;
} ngx_http_llmcache_purge_key_t;


typedef struct {
    ngx_http_llmcache_ctx_t    *lctx;        /* for the Redis calls */
    ngx_uint_t                  mode;
    ngx_uint_t                  pass;        /* key: 0 entries, 1 buckets */
    u_char                      key[LLMC_EXACT_HEX_LEN + 1];
    u_char                      scope[LLMC_SCOPE_HEX_LEN + 1];
    ngx_uint_t                  scope_found;
    char                        pattern[LLMC_REDIS_KEY_MAX];
    size_t                      pattern_len;
    char                        cursor[32];
    size_t                      cursor_len;
    ngx_uint_t                  deleted;     /* keys removed */
    ngx_uint_t                  entries;     /* of them, cached answers */
    ngx_uint_t                  unlinked;    /* entries of the last batch */
    const char                **argv;
    size_t                     *argvlen;
    ngx_uint_t                  nargv;
    ngx_int_t                   nodes[64];   /* the nodes to scan */
    ngx_uint_t                  n_nodes;
    ngx_uint_t                  node;        /* the one scanned now */
    ngx_http_llmcache_purge_key_t *keys;     /* the batch, by slot */
    ngx_uint_t                  nkeys;
    ngx_uint_t                  next;        /* first key not sent yet */
    ngx_event_t                 wait;        /* for the cluster's map */
    ngx_msec_t                  waited;
} ngx_http_llmcache_purge_ctx_t;


static ngx_int_t ngx_http_llmcache_metrics_init(ngx_conf_t *cf);
static void *ngx_http_llmcache_metrics_create_main_conf(ngx_conf_t *cf);
static ngx_int_t ngx_http_llmcache_metrics_init_process(ngx_cycle_t *cycle);
static char *ngx_http_llmcache_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_llmcache_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static char *ngx_http_llmcache_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_purge(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_llmcache_metrics_log(ngx_http_request_t *r);
static ngx_http_llmcache_m_model_t *ngx_http_llmcache_metrics_model(
    ngx_shm_zone_t *zone, ngx_str_t *name);
static void ngx_http_llmcache_metrics_usage(ngx_http_llmcache_m_usage_t *mu,
    ngx_http_llmcache_ctx_t *ctx);
static u_char *ngx_http_llmcache_metrics_usd(u_char *p, u_char *end,
    ngx_atomic_uint_t v);
static ngx_int_t ngx_http_llmcache_metrics_handler(ngx_http_request_t *r);
static ngx_buf_t *ngx_http_llmcache_metrics_prometheus(ngx_http_request_t *r,
    ngx_http_llmcache_m_shm_t *sh);
static ngx_buf_t *ngx_http_llmcache_metrics_json(ngx_http_request_t *r,
    ngx_http_llmcache_m_shm_t *sh);
static ngx_int_t ngx_http_llmcache_send(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, ngx_buf_t *b);
static ngx_int_t ngx_http_llmcache_send_json(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);
static ngx_int_t ngx_http_llmcache_purge_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_llmcache_purge_scan(ngx_http_request_t *r,
    ngx_http_llmcache_purge_ctx_t *pc);
static void ngx_http_llmcache_purge_scanned(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_llmcache_purge_batch(ngx_http_request_t *r,
    ngx_http_llmcache_purge_ctx_t *pc);
static int ngx_libc_cdecl ngx_http_llmcache_purge_cmp(const void *a,
    const void *b);
static void ngx_http_llmcache_purge_free(void *data);
static void ngx_http_llmcache_purge_wait(ngx_event_t *ev);
static void ngx_http_llmcache_purge_removed(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_llmcache_purge_next(ngx_http_request_t *r,
    ngx_http_llmcache_purge_ctx_t *pc);
static void ngx_http_llmcache_purge_done(ngx_http_request_t *r,
    ngx_uint_t status);
static ngx_int_t ngx_http_llmcache_hex(ngx_str_t *value, u_char *out,
    size_t len);


static const char  *ngx_http_llmcache_m_status[] = {
    "", "HIT", "MISS", "BYPASS", "SEMANTIC"
};

static const char  *ngx_http_llmcache_m_api[] = {
    "unknown", "chat", "completions", "responses", "messages"
};

static const char  *ngx_http_llmcache_m_provider[] = {
    "unknown", "openai", "openai", "openai", "anthropic"
};

/* lookup latency bucket bounds, ms and as Prometheus writes them (s) */
static const ngx_msec_t  ngx_http_llmcache_m_le[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
};

static const char  *ngx_http_llmcache_m_le_s[] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "+Inf"
};

static const char  *ngx_http_llmcache_m_event[] = {
    "", "error", "timeout", "connect"
};

/* removes one exact from every LSH bucket of its scope (one hash slot) */
static const char  ngx_http_llmcache_srem_script[] =
    "local n = 0 "
    "for i = 1, #KEYS do n = n + redis.call('SREM', KEYS[i], ARGV[1]) end "
    "return n";


/* this worker's view of the zone; NULL without llmcache_zone */
static ngx_http_llmcache_m_shm_t  *ngx_http_llmcache_m_shm;


static ngx_command_t  ngx_http_llmcache_metrics_commands[] = {

    { ngx_string("llmcache_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_llmcache_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_llmcache_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_purge"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_llmcache_purge,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_llmcache_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_llmcache_metrics_init,        /* postconfiguration */

    ngx_http_llmcache_metrics_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_llmcache_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_llmcache_metrics_module_ctx, /* module context */
    ngx_http_llmcache_metrics_commands,    /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_llmcache_metrics_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_llmcache_metrics_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_llmcache_metrics_main_conf_t));
}


static ngx_int_t
ngx_http_llmcache_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt                    *h;
    ngx_http_core_main_conf_t              *cmcf;
    ngx_http_llmcache_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                        ngx_http_llmcache_metrics_module);

    if (mmcf->zone == NULL) {
        if (mmcf->metrics) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llmcache_metrics\" needs \"llmcache_zone\"");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_llmcache_metrics_log;

    return NGX_OK;
}


/* the Redis hooks have no request: they find the zone through this */

static ngx_int_t
ngx_http_llmcache_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_http_llmcache_metrics_main_conf_t  *mmcf;

    ngx_http_llmcache_m_shm = NULL;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                        ngx_http_llmcache_metrics_module);

    if (mmcf && mmcf->zone && mmcf->zone->data) {
        ngx_http_llmcache_m_shm = mmcf->zone->data;
    }

    return NGX_OK;
}


static char *
ngx_http_llmcache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_metrics_main_conf_t  *mmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (mmcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR
        || (size_t) size < sizeof(ngx_http_llmcache_m_shm_t)
                           + 8 * ngx_pagesize)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmcache_zone \"%V\" is too small, at least %uzk",
                           &value[1],
                           (sizeof(ngx_http_llmcache_m_shm_t)
                            + 8 * ngx_pagesize + 1023) / 1024);
        return NGX_CONF_ERROR;
    }

    mmcf->zone = ngx_shared_memory_add(cf, &value[1], size,
                                       &ngx_http_llmcache_metrics_module);
    if (mmcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mmcf->zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    mmcf->zone->init = ngx_http_llmcache_zone_init;
    mmcf->zone->data = mmcf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_llmcache_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_llmcache_m_shm_t  *sh;

    /* a reload keeps the counters */

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_llmcache_m_shm_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->start = ngx_time();
    ngx_memcpy(sh->models[NGX_HTTP_LLMCACHE_M_MODELS].name, "other", 5);
    sh->models[NGX_HTTP_LLMCACHE_M_MODELS].len = 5;

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


static char *
ngx_http_llmcache_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t               *clcf;
    ngx_http_llmcache_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                        ngx_http_llmcache_metrics_module);
    mmcf->metrics = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_llmcache_metrics_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_llmcache_purge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_llmcache_purge_handler;

    return NGX_CONF_OK;
}


void
ngx_http_llmcache_metrics_redis(ngx_uint_t event)
{
    if (ngx_http_llmcache_m_shm == NULL
        || event == 0 || event >= NGX_HTTP_LLMCACHE_M_EVENTS)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_llmcache_m_shm->redis[event], 1);
}


/* ---- counting, in the log phase ---------------------------------------- */

static ngx_int_t
ngx_http_llmcache_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                              i, st, api;
    ngx_http_llmcache_ctx_t                *ctx;
    ngx_http_llmcache_m_shm_t              *sh;
    ngx_http_llmcache_m_model_t            *m;
    ngx_http_llmcache_metrics_main_conf_t  *mmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);
    if (ctx == NULL || ctx->status == 0
        || ctx->status >= NGX_HTTP_LLMCACHE_M_STATUSES)
    {
        return NGX_OK;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_llmcache_metrics_module);
    if (mmcf->zone == NULL || mmcf->zone->data == NULL) {
        return NGX_OK;
    }

    sh = mmcf->zone->data;
    st = ctx->status;
    api = (ngx_uint_t) ctx->api_id < NGX_HTTP_LLMCACHE_M_APIS
          ? (ngx_uint_t) ctx->api_id : 0;

    (void) ngx_atomic_fetch_add(&sh->requests[st][api], 1);

    if (st != NGX_HTTP_LLMCACHE_BYPASS) {
        for (i = 0; i < NGX_HTTP_LLMCACHE_M_BUCKETS - 1; i++) {
            if (ctx->lookup_time <= ngx_http_llmcache_m_le[i]) {
                break;
            }
        }

        (void) ngx_atomic_fetch_add(&sh->lookup[i], 1);
        (void) ngx_atomic_fetch_add(&sh->lookup_count, 1);
        (void) ngx_atomic_fetch_add(&sh->lookup_ms, ctx->lookup_time);
    }

    if (ctx->hit_bytes) {
        (void) ngx_atomic_fetch_add(&sh->hit_bytes, ctx->hit_bytes);
    }

    if (ctx->lock_wait) {
        (void) ngx_atomic_fetch_add(&sh->lock_waits, 1);
        (void) ngx_atomic_fetch_add(&sh->lock_ms, ctx->lock_time);
    }

    ngx_http_llmcache_account_hit(r, ctx);
    ngx_http_llmcache_metrics_usage(&sh->usage, ctx);

    if (ctx->model.len == 0) {
        return NGX_OK;
    }

    m = ngx_http_llmcache_metrics_model(mmcf->zone, &ctx->model);

    (void) ngx_atomic_fetch_add(&m->requests[st], 1);

    if (ctx->hit_bytes) {
        (void) ngx_atomic_fetch_add(&m->hit_bytes, ctx->hit_bytes);
    }

    ngx_http_llmcache_metrics_usage(&m->usage, ctx);

    return NGX_OK;
}


/*
 * The accounting of the answer: a HIT or SEMANTIC paid nothing, so all its
 * tokens and its full price were saved; an upstream answer adds what was
 * paid, and what the provider's own prompt cache saved (negative when its
 * cache writes cost more than they saved so far).
 */

static void
ngx_http_llmcache_metrics_usage(ngx_http_llmcache_m_usage_t *mu,
    ngx_http_llmcache_ctx_t *ctx)
{
    int64_t        all;
    llmc_usage_t  *u;

    if (!ctx->accounted) {
        return;
    }

    u = &ctx->usage;

    if (ctx->status == NGX_HTTP_LLMCACHE_HIT
        || ctx->status == NGX_HTTP_LLMCACHE_SEMANTIC)
    {
        all = u->input + u->cached + u->cache_write_5m + u->cache_write_1h
              + u->output;

        (void) ngx_atomic_fetch_add(&mu->saved_tokens, (ngx_atomic_int_t) all);

        if (ctx->priced) {
            (void) ngx_atomic_fetch_add(&mu->saved_musd,
                                 (ngx_atomic_int_t) (ctx->saved * 1e6 + 0.5));
        }

        return;
    }

    (void) ngx_atomic_fetch_add(&mu->input_tokens,
                                (ngx_atomic_int_t) (u->input
                                                    + u->cache_write_5m
                                                    + u->cache_write_1h));
    (void) ngx_atomic_fetch_add(&mu->cached_tokens,
                                (ngx_atomic_int_t) u->cached);
    (void) ngx_atomic_fetch_add(&mu->output_tokens,
                                (ngx_atomic_int_t) u->output);

    if (ctx->priced) {
        (void) ngx_atomic_fetch_add(&mu->cost_musd,
                                   (ngx_atomic_int_t) (ctx->cost * 1e6 + 0.5));
        (void) ngx_atomic_fetch_add(&mu->saved_musd,
                          (ngx_atomic_int_t) (ctx->saved * 1e6
                                              + (ctx->saved < 0 ? -0.5 : 0.5)));
    }
}


/* millionths of a dollar as a decimal, signed */

static u_char *
ngx_http_llmcache_metrics_usd(u_char *p, u_char *end, ngx_atomic_uint_t v)
{
    ngx_atomic_int_t  s = (ngx_atomic_int_t) v;

    if (s < 0) {
        p = ngx_slprintf(p, end, "-");
        s = -s;
    }

    return ngx_slprintf(p, end, "%uA.%06uA", (ngx_atomic_uint_t) s / 1000000,
                        (ngx_atomic_uint_t) s % 1000000);
}


/*
 * The row of a model, added on first sight.  Names are kept printable and
 * free of quotes and backslashes, so both output formats take them as they
 * are; clients name the models, hence the bound.
 */

static ngx_http_llmcache_m_model_t *
ngx_http_llmcache_metrics_model(ngx_shm_zone_t *zone, ngx_str_t *name)
{
    u_char                        buf[NGX_HTTP_LLMCACHE_M_MODEL_LEN], c;
    size_t                        len, i;
    ngx_uint_t                    n, k;
    ngx_slab_pool_t              *shpool;
    ngx_http_llmcache_m_shm_t    *sh;
    ngx_http_llmcache_m_model_t  *m;

    sh = zone->data;

    len = ngx_min(name->len, NGX_HTTP_LLMCACHE_M_MODEL_LEN - 1);

    for (i = 0; i < len; i++) {
        c = name->data[i];
        buf[i] = (c < 0x21 || c > 0x7e || c == '"' || c == '\\') ? '_' : c;
    }

    n = sh->nmodels;
    ngx_memory_barrier();

    for (k = 0; k < n; k++) {
        m = &sh->models[k];
        if (m->len == len && ngx_memcmp(m->name, buf, len) == 0) {
            return m;
        }
    }

    if (n >= NGX_HTTP_LLMCACHE_M_MODELS) {
        return &sh->models[NGX_HTTP_LLMCACHE_M_MODELS];
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    /* another worker may have added it, or others, meanwhile */

    for (k = n; k < sh->nmodels; k++) {
        m = &sh->models[k];
        if (m->len == len && ngx_memcmp(m->name, buf, len) == 0) {
            ngx_shmtx_unlock(&shpool->mutex);
            return m;
        }
    }

    if (sh->nmodels >= NGX_HTTP_LLMCACHE_M_MODELS) {
        ngx_shmtx_unlock(&shpool->mutex);
        return &sh->models[NGX_HTTP_LLMCACHE_M_MODELS];
    }

    m = &sh->models[sh->nmodels];
    ngx_memcpy(m->name, buf, len);
    m->len = len;

    ngx_memory_barrier();
    sh->nmodels++;

    ngx_shmtx_unlock(&shpool->mutex);

    return m;
}


/* ---- serving them ------------------------------------------------------- */

static ngx_int_t
ngx_http_llmcache_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                               rc;
    ngx_str_t                               format;
    ngx_buf_t                              *b;
    ngx_uint_t                              html;
    ngx_table_elt_t                        *accept;
    ngx_http_llmcache_m_shm_t              *sh;
    ngx_http_llmcache_metrics_main_conf_t  *mmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_llmcache_metrics_module);
    sh = mmcf->zone->data;

    html = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {

        if (format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0) {
            b = ngx_http_llmcache_metrics_json(r, sh);
            return ngx_http_llmcache_send(r, NGX_HTTP_OK,
                                          "application/json", b);
        }

        if (format.len == 4 && ngx_strncmp(format.data, "html", 4) == 0) {
            html = 1;

        } else if (!(format.len == 10
                     && ngx_strncmp(format.data, "prometheus", 10) == 0))
        {
            return ngx_http_llmcache_send_json(r, NGX_HTTP_BAD_REQUEST,
                       "{\"error\":\"format is prometheus, json or html\"}");
        }

    } else {
        accept = r->headers_in.accept;

        if (accept
            && ngx_strlcasestrn(accept->value.data,
                                accept->value.data + accept->value.len,
                                (u_char *) "text/html", 9 - 1)
               != NULL)
        {
            html = 1;
        }
    }

    if (html) {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = (u_char *) ngx_http_llmcache_dashboard_html;
        b->last = b->pos + sizeof(ngx_http_llmcache_dashboard_html) - 1;
        b->memory = 1;

        return ngx_http_llmcache_send(r, NGX_HTTP_OK,
                                      "text/html; charset=utf-8", b);
    }

    b = ngx_http_llmcache_metrics_prometheus(r, sh);

    return ngx_http_llmcache_send(r, NGX_HTTP_OK,
                                  "text/plain; version=0.0.4", b);
}


/* enough for every line that can be written, with the model rows */

static size_t
ngx_http_llmcache_metrics_size(ngx_http_llmcache_m_shm_t *sh)
{
    return 16384 + (sh->nmodels + 1) * 2048;
}


#define ngx_http_llmcache_m_get(a)  ((ngx_atomic_uint_t) (a))


static ngx_buf_t *
ngx_http_llmcache_metrics_prometheus(ngx_http_request_t *r,
    ngx_http_llmcache_m_shm_t *sh)
{
    u_char                       *p, *end;
    ngx_buf_t                    *b;
    ngx_uint_t                    st, api, i, n;
    ngx_atomic_uint_t             v, cum, hits[2];
    ngx_http_llmcache_m_model_t  *m;

    b = ngx_create_temp_buf(r->pool, ngx_http_llmcache_metrics_size(sh));
    if (b == NULL) {
        return NULL;
    }

    p = b->last;
    end = b->end;

    p = ngx_slprintf(p, end,
        "# HELP llmcache_requests_total Requests by cache status, "
        "provider and API.\n"
        "# TYPE llmcache_requests_total counter\n");

    for (st = 1; st < NGX_HTTP_LLMCACHE_M_STATUSES; st++) {
        for (api = 0; api < NGX_HTTP_LLMCACHE_M_APIS; api++) {
            v = ngx_http_llmcache_m_get(sh->requests[st][api]);
            if (v == 0 && api == 0) {
                continue;
            }

            p = ngx_slprintf(p, end,
                    "llmcache_requests_total{status=\"%s\",provider=\"%s\","
                    "api=\"%s\"} %uA\n",
                    ngx_http_llmcache_m_status[st],
                    ngx_http_llmcache_m_provider[api],
                    ngx_http_llmcache_m_api[api], v);
        }
    }

    hits[0] = 0;
    hits[1] = 0;

    for (api = 0; api < NGX_HTTP_LLMCACHE_M_APIS; api++) {
        hits[0] += sh->requests[NGX_HTTP_LLMCACHE_HIT][api];
        hits[1] += sh->requests[NGX_HTTP_LLMCACHE_SEMANTIC][api];
    }

    p = ngx_slprintf(p, end,
        "# HELP llmcache_hits_total Answers served from the cache, "
        "by kind of match.\n"
        "# TYPE llmcache_hits_total counter\n"
        "llmcache_hits_total{kind=\"exact\"} %uA\n"
        "llmcache_hits_total{kind=\"semantic\"} %uA\n",
        hits[0], hits[1]);

    p = ngx_slprintf(p, end,
        "# HELP llmcache_model_requests_total Requests by model and cache "
        "status (the first %d models, then \"other\").\n"
        "# TYPE llmcache_model_requests_total counter\n",
        NGX_HTTP_LLMCACHE_M_MODELS);

    n = sh->nmodels;
    ngx_memory_barrier();

    for (i = 0; i <= NGX_HTTP_LLMCACHE_M_MODELS; i++) {
        if (i == n) {
            i = NGX_HTTP_LLMCACHE_M_MODELS;
        }

        m = &sh->models[i];

        for (st = 1; st < NGX_HTTP_LLMCACHE_M_STATUSES; st++) {
            v = ngx_http_llmcache_m_get(m->requests[st]);
            if (v == 0) {
                continue;
            }

            p = ngx_slprintf(p, end,
                    "llmcache_model_requests_total{model=\"%*s\","
                    "status=\"%s\"} %uA\n",
                    m->len, m->name, ngx_http_llmcache_m_status[st], v);
        }
    }

    p = ngx_slprintf(p, end,
        "# HELP llmcache_redis_events_total Redis errors, timeouts and "
        "connects.\n"
        "# TYPE llmcache_redis_events_total counter\n");

    for (i = 1; i < NGX_HTTP_LLMCACHE_M_EVENTS; i++) {
        p = ngx_slprintf(p, end,
                         "llmcache_redis_events_total{event=\"%s\"} %uA\n",
                         ngx_http_llmcache_m_event[i],
                         ngx_http_llmcache_m_get(sh->redis[i]));
    }

    p = ngx_slprintf(p, end,
        "# HELP llmcache_lookup_duration_seconds Time from the request "
        "body to the lookup's answer.\n"
        "# TYPE llmcache_lookup_duration_seconds histogram\n");

    cum = 0;

    for (i = 0; i < NGX_HTTP_LLMCACHE_M_BUCKETS; i++) {
        cum += ngx_http_llmcache_m_get(sh->lookup[i]);
        p = ngx_slprintf(p, end,
                "llmcache_lookup_duration_seconds_bucket{le=\"%s\"} %uA\n",
                ngx_http_llmcache_m_le_s[i], cum);
    }

    v = ngx_http_llmcache_m_get(sh->lookup_ms);

    p = ngx_slprintf(p, end,
        "llmcache_lookup_duration_seconds_sum %uA.%03uA\n"
        "llmcache_lookup_duration_seconds_count %uA\n",
        v / 1000, v % 1000, cum);

    v = ngx_http_llmcache_m_get(sh->lock_ms);

    p = ngx_slprintf(p, end,
        "# HELP llmcache_hit_bytes_total Response body bytes served from "
        "the cache.\n"
        "# TYPE llmcache_hit_bytes_total counter\n"
        "llmcache_hit_bytes_total %uA\n"
        "# HELP llmcache_lock_waits_total Requests that waited for another "
        "one's upstream call (single flight).\n"
        "# TYPE llmcache_lock_waits_total counter\n"
        "llmcache_lock_waits_total %uA\n"
        "# HELP llmcache_lock_wait_seconds_total Time spent waiting so.\n"
        "# TYPE llmcache_lock_wait_seconds_total counter\n"
        "llmcache_lock_wait_seconds_total %uA.%03uA\n",
        ngx_http_llmcache_m_get(sh->hit_bytes),
        ngx_http_llmcache_m_get(sh->lock_waits),
        v / 1000, v % 1000);

    p = ngx_slprintf(p, end,
        "# HELP llmcache_tokens_total Tokens by kind, as the providers "
        "reported them.\n"
        "# TYPE llmcache_tokens_total counter\n"
        "llmcache_tokens_total{kind=\"input\"} %uA\n"
        "llmcache_tokens_total{kind=\"cached\"} %uA\n"
        "llmcache_tokens_total{kind=\"output\"} %uA\n"
        "llmcache_tokens_total{kind=\"saved\"} %uA\n",
        ngx_http_llmcache_m_get(sh->usage.input_tokens),
        ngx_http_llmcache_m_get(sh->usage.cached_tokens),
        ngx_http_llmcache_m_get(sh->usage.output_tokens),
        ngx_http_llmcache_m_get(sh->usage.saved_tokens));

    p = ngx_slprintf(p, end,
        "# HELP llmcache_usd_total US dollars paid to the providers, and "
        "saved by this cache and the providers' prompt caches.\n"
        "# TYPE llmcache_usd_total counter\n"
        "llmcache_usd_total{kind=\"cost\"} ");
    p = ngx_http_llmcache_metrics_usd(p, end, sh->usage.cost_musd);
    p = ngx_slprintf(p, end, "\nllmcache_usd_total{kind=\"saved\"} ");
    p = ngx_http_llmcache_metrics_usd(p, end, sh->usage.saved_musd);
    p = ngx_slprintf(p, end, "\n");

    p = ngx_slprintf(p, end,
        "# HELP llmcache_purged_keys_total Redis keys removed by "
        "llmcache_purge.\n"
        "# TYPE llmcache_purged_keys_total counter\n"
        "llmcache_purged_keys_total %uA\n"
        "# HELP llmcache_start_time_seconds When the counters started.\n"
        "# TYPE llmcache_start_time_seconds gauge\n"
        "llmcache_start_time_seconds %T\n",
        ngx_http_llmcache_m_get(sh->purged), sh->start);

    b->last = p;

    return b;
}


static u_char *
ngx_http_llmcache_metrics_usage_json(u_char *p, u_char *end,
    ngx_http_llmcache_m_usage_t *u)
{
    p = ngx_slprintf(p, end,
        "\"tokens\":{\"input\":%uA,\"cached\":%uA,\"output\":%uA,"
        "\"saved\":%uA},\"usd\":{\"cost\":",
        ngx_http_llmcache_m_get(u->input_tokens),
        ngx_http_llmcache_m_get(u->cached_tokens),
        ngx_http_llmcache_m_get(u->output_tokens),
        ngx_http_llmcache_m_get(u->saved_tokens));
    p = ngx_http_llmcache_metrics_usd(p, end, u->cost_musd);
    p = ngx_slprintf(p, end, ",\"saved\":");
    p = ngx_http_llmcache_metrics_usd(p, end, u->saved_musd);

    return ngx_slprintf(p, end, "}");
}


static ngx_buf_t *
ngx_http_llmcache_metrics_json(ngx_http_request_t *r,
    ngx_http_llmcache_m_shm_t *sh)
{
    u_char                       *p, *end;
    ngx_buf_t                    *b;
    ngx_uint_t                    st, api, i, n, first;
    ngx_atomic_uint_t             v, total[NGX_HTTP_LLMCACHE_M_STATUSES];
    ngx_http_llmcache_m_model_t  *m;

    b = ngx_create_temp_buf(r->pool, ngx_http_llmcache_metrics_size(sh));
    if (b == NULL) {
        return NULL;
    }

    p = b->last;
    end = b->end;

    ngx_time_update();

    p = ngx_slprintf(p, end, "{\"time\":%T.%03M,\"start\":%T,",
                     ngx_time(), ngx_timeofday()->msec, sh->start);

    ngx_memzero(total, sizeof(total));

    p = ngx_slprintf(p, end, "\"apis\":[");
    first = 1;

    for (api = 0; api < NGX_HTTP_LLMCACHE_M_APIS; api++) {
        v = 0;
        for (st = 1; st < NGX_HTTP_LLMCACHE_M_STATUSES; st++) {
            v += sh->requests[st][api];
        }

        if (v == 0 && api == 0) {
            continue;
        }

        p = ngx_slprintf(p, end, "%s{\"provider\":\"%s\",\"api\":\"%s\"",
                         first ? "" : ",", ngx_http_llmcache_m_provider[api],
                         ngx_http_llmcache_m_api[api]);
        first = 0;

        for (st = 1; st < NGX_HTTP_LLMCACHE_M_STATUSES; st++) {
            v = ngx_http_llmcache_m_get(sh->requests[st][api]);
            total[st] += v;
            p = ngx_slprintf(p, end, ",\"%s\":%uA",
                             ngx_http_llmcache_m_status[st], v);
        }

        p = ngx_slprintf(p, end, "}");
    }

    p = ngx_slprintf(p, end, "],\"requests\":{");

    for (st = 1; st < NGX_HTTP_LLMCACHE_M_STATUSES; st++) {
        p = ngx_slprintf(p, end, "%s\"%s\":%uA", st == 1 ? "" : ",",
                         ngx_http_llmcache_m_status[st], total[st]);
    }

    p = ngx_slprintf(p, end, "},\"hits\":{\"exact\":%uA,\"semantic\":%uA},",
                     total[NGX_HTTP_LLMCACHE_HIT],
                     total[NGX_HTTP_LLMCACHE_SEMANTIC]);

    p = ngx_slprintf(p, end, "\"redis\":{");

    for (i = 1; i < NGX_HTTP_LLMCACHE_M_EVENTS; i++) {
        p = ngx_slprintf(p, end, "%s\"%s\":%uA", i == 1 ? "" : ",",
                         ngx_http_llmcache_m_event[i],
                         ngx_http_llmcache_m_get(sh->redis[i]));
    }

    p = ngx_slprintf(p, end, "},\"lookup\":{\"le_ms\":[");

    for (i = 0; i < NGX_HTTP_LLMCACHE_M_BUCKETS - 1; i++) {
        p = ngx_slprintf(p, end, "%s%M", i ? "," : "",
                         ngx_http_llmcache_m_le[i]);
    }

    p = ngx_slprintf(p, end, "],\"buckets\":[");

    for (i = 0; i < NGX_HTTP_LLMCACHE_M_BUCKETS; i++) {
        p = ngx_slprintf(p, end, "%s%uA", i ? "," : "",
                         ngx_http_llmcache_m_get(sh->lookup[i]));
    }

    p = ngx_slprintf(p, end,
        "],\"count\":%uA,\"sum_ms\":%uA},\"hit_bytes\":%uA,"
        "\"lock\":{\"waits\":%uA,\"wait_ms\":%uA},\"purged\":%uA,",
        ngx_http_llmcache_m_get(sh->lookup_count),
        ngx_http_llmcache_m_get(sh->lookup_ms),
        ngx_http_llmcache_m_get(sh->hit_bytes),
        ngx_http_llmcache_m_get(sh->lock_waits),
        ngx_http_llmcache_m_get(sh->lock_ms),
        ngx_http_llmcache_m_get(sh->purged));

    p = ngx_http_llmcache_metrics_usage_json(p, end, &sh->usage);

    p = ngx_slprintf(p, end, ",\"models\":[");

    n = sh->nmodels;
    ngx_memory_barrier();
    first = 1;

    for (i = 0; i <= NGX_HTTP_LLMCACHE_M_MODELS; i++) {
        if (i == n) {
            i = NGX_HTTP_LLMCACHE_M_MODELS;
        }

        m = &sh->models[i];

        v = 0;
        for (st = 1; st < NGX_HTTP_LLMCACHE_M_STATUSES; st++) {
            v += m->requests[st];
        }

        if (v == 0) {
            continue;
        }

        p = ngx_slprintf(p, end, "%s{\"model\":\"%*s\"", first ? "" : ",",
                         m->len, m->name);
        first = 0;

        for (st = 1; st < NGX_HTTP_LLMCACHE_M_STATUSES; st++) {
            p = ngx_slprintf(p, end, ",\"%s\":%uA",
                             ngx_http_llmcache_m_status[st],
                             ngx_http_llmcache_m_get(m->requests[st]));
        }

        p = ngx_slprintf(p, end, ",\"hit_bytes\":%uA,",
                         ngx_http_llmcache_m_get(m->hit_bytes));
        p = ngx_http_llmcache_metrics_usage_json(p, end, &m->usage);
        p = ngx_slprintf(p, end, "}");
    }

    p = ngx_slprintf(p, end, "]}\n");

    b->last = p;

    return b;
}


static ngx_int_t
ngx_http_llmcache_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, ngx_buf_t *b)
{
    u_char           *p;
    ngx_int_t         rc;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    /* the type without its parameters, as the charset filter expects */
    p = (u_char *) ngx_strchr(type, ';');
    r->headers_out.content_type_len = p ? (size_t) (p - (u_char *) type)
                                        : r->headers_out.content_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    /* live numbers, and purge answers: never from a cache on the way */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_llmcache_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...)
{
    va_list     args;
    ngx_buf_t  *b;

    b = ngx_create_temp_buf(r->pool, 256);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    va_start(args, fmt);
    b->last = ngx_vslprintf(b->last, b->end - 1, fmt, args);
    va_end(args);

    *b->last++ = '\n';

    return ngx_http_llmcache_send(r, status, "application/json", b);
}


/* ---- purge -------------------------------------------------------------- */

static ngx_int_t
ngx_http_llmcache_purge_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       key, scope, all;
    ngx_uint_t                      n;
    ngx_pool_cleanup_t             *cln;
    ngx_http_llmcache_ctx_t        *lctx;
    ngx_http_llmcache_purge_ctx_t  *pc;

    if (r->method != NGX_HTTP_DELETE
        && !(r->method_name.len == 5
             && ngx_strncmp(r->method_name.data, "PURGE", 5) == 0))
    {
        return ngx_http_llmcache_send_json(r, NGX_HTTP_NOT_ALLOWED,
                   "{\"error\":\"use DELETE or PURGE\"}");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    pc = ngx_pcalloc(r->pool, sizeof(ngx_http_llmcache_purge_ctx_t));
    if (pc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 0;

    if (ngx_http_arg(r, (u_char *) "key", 3, &key) == NGX_OK) {
        n++;
        pc->mode = NGX_HTTP_LLMCACHE_PURGE_KEY;
    }

    if (ngx_http_arg(r, (u_char *) "scope", 5, &scope) == NGX_OK) {
        n++;
        pc->mode = NGX_HTTP_LLMCACHE_PURGE_SCOPE;
    }

    if (ngx_http_arg(r, (u_char *) "all", 3, &all) == NGX_OK) {
        n++;
        pc->mode = NGX_HTTP_LLMCACHE_PURGE_ALL;
    }

    if (n != 1) {
        return ngx_http_llmcache_send_json(r, NGX_HTTP_BAD_REQUEST,
                   "{\"error\":\"give one of key=, scope= or all=1\"}");
    }

    switch (pc->mode) {

    case NGX_HTTP_LLMCACHE_PURGE_KEY:
        if (ngx_http_llmcache_hex(&key, pc->key, LLMC_EXACT_HEX_LEN)
            != NGX_OK)
        {
            return ngx_http_llmcache_send_json(r, NGX_HTTP_BAD_REQUEST,
                       "{\"error\":\"key is %d hex digits\"}",
                       LLMC_EXACT_HEX_LEN);
        }

        /* its scope is not known: any scope, the entry, lock and vectors */

        pc->pattern_len = ngx_sprintf((u_char *) pc->pattern,
                                      LLMC_KEY_PREFIX "{*}:[elv]:*%s",
                                      pc->key)
                          - (u_char *) pc->pattern;
        break;

    case NGX_HTTP_LLMCACHE_PURGE_SCOPE:
        if (ngx_http_llmcache_hex(&scope, pc->scope, LLMC_SCOPE_HEX_LEN)
            != NGX_OK)
        {
            return ngx_http_llmcache_send_json(r, NGX_HTTP_BAD_REQUEST,
                       "{\"error\":\"scope is %d hex digits\"}",
                       LLMC_SCOPE_HEX_LEN);
        }

        pc->pattern_len = ngx_sprintf((u_char *) pc->pattern,
                                      LLMC_KEY_PREFIX "{%s}:*", pc->scope)
                          - (u_char *) pc->pattern;
        break;

    default: /* NGX_HTTP_LLMCACHE_PURGE_ALL */
        if (all.len != 1 || all.data[0] != '1') {
            return ngx_http_llmcache_send_json(r, NGX_HTTP_BAD_REQUEST,
                       "{\"error\":\"all takes 1\"}");
        }

        pc->pattern_len = ngx_sprintf((u_char *) pc->pattern,
                                      LLMC_KEY_PREFIX "*")
                          - (u_char *) pc->pattern;
        break;
    }

    /* the Redis layer keeps its timer and pending command there */

    lctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);
    if (lctx == NULL) {
        lctx = ngx_pcalloc(r->pool, sizeof(ngx_http_llmcache_ctx_t));
        if (lctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_set_ctx(r, lctx, ngx_http_llmcache_module);
    }

    pc->lctx = lctx;
    pc->cursor[0] = '0';
    pc->cursor_len = 1;
    pc->n_nodes = ngx_http_llmcache_redis_scan_nodes(pc->nodes, 64);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_llmcache_purge_free;
    cln->data = pc;

    ngx_http_set_ctx(r, pc, ngx_http_llmcache_metrics_module);

    if (pc->n_nodes == 0) {
        /* a cluster whose slot map is on its way */

        pc->wait.handler = ngx_http_llmcache_purge_wait;
        pc->wait.data = r;
        pc->wait.log = r->connection->log;
        ngx_add_timer(&pc->wait, NGX_HTTP_LLMCACHE_PURGE_WAIT);

        r->main->count++;

        return NGX_DONE;
    }

    if (ngx_http_llmcache_purge_scan(r, pc) != NGX_OK) {
        return ngx_http_llmcache_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                   "{\"error\":\"redis is not available\",\"deleted\":0}");
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_llmcache_purge_wait(ngx_event_t *ev)
{
    ngx_http_request_t             *r;
    ngx_http_llmcache_purge_ctx_t  *pc;

    r = ev->data;
    pc = ngx_http_get_module_ctx(r, ngx_http_llmcache_metrics_module);

    pc->n_nodes = ngx_http_llmcache_redis_scan_nodes(pc->nodes, 64);

    if (pc->n_nodes == 0) {
        pc->waited += NGX_HTTP_LLMCACHE_PURGE_WAIT;

        if (pc->waited >= NGX_HTTP_LLMCACHE_PURGE_WAIT_MAX) {
            ngx_http_llmcache_purge_done(r, NGX_HTTP_SERVICE_UNAVAILABLE);
            return;
        }

        ngx_add_timer(&pc->wait, NGX_HTTP_LLMCACHE_PURGE_WAIT);
        return;
    }

    if (ngx_http_llmcache_purge_scan(r, pc) != NGX_OK) {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_SERVICE_UNAVAILABLE);
    }
}


static ngx_int_t
ngx_http_llmcache_purge_scan(ngx_http_request_t *r,
    ngx_http_llmcache_purge_ctx_t *pc)
{
    size_t       argvlen[6];
    const char  *argv[6];

    argv[0] = "SCAN";
    argvlen[0] = 4;
    argv[1] = pc->cursor;
    argvlen[1] = pc->cursor_len;
    argv[2] = "MATCH";
    argvlen[2] = 5;
    argv[3] = pc->pattern;
    argvlen[3] = pc->pattern_len;
    argv[4] = "COUNT";
    argvlen[4] = 5;
    argv[5] = NGX_HTTP_LLMCACHE_SCAN_COUNT;
    argvlen[5] = sizeof(NGX_HTTP_LLMCACHE_SCAN_COUNT) - 1;

    return ngx_http_llmcache_redis_request_node(r, pc->lctx,
                                                pc->nodes[pc->node],
                                                ngx_http_llmcache_purge_scanned,
                                                6, argv, argvlen);
}


/* argv room for a batch of n keys after a few leading arguments */

static ngx_int_t
ngx_http_llmcache_purge_argv(ngx_http_request_t *r,
    ngx_http_llmcache_purge_ctx_t *pc, ngx_uint_t n)
{
    if (n <= pc->nargv) {
        return NGX_OK;
    }

    n = ngx_max(n, 1024);

    pc->argv = ngx_palloc(r->pool, n * sizeof(char *));
    pc->argvlen = ngx_palloc(r->pool, n * sizeof(size_t));

    if (pc->argv == NULL || pc->argvlen == NULL) {
        return NGX_ERROR;
    }

    pc->nargv = n;

    return NGX_OK;
}


static void
ngx_http_llmcache_purge_scanned(ngx_http_request_t *r, redisReply *reply)
{
    char                           *k, *b;
    u_char                         *p;
    size_t                          i, n, len, klen;
    redisReply                     *cursor, *keys;
    ngx_http_llmcache_purge_ctx_t  *pc;

    pc = ngx_http_get_module_ctx(r, ngx_http_llmcache_metrics_module);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    cursor = reply->element[0];
    keys = reply->element[1];

    if (cursor->type != REDIS_REPLY_STRING || keys->type != REDIS_REPLY_ARRAY
        || cursor->len == 0 || cursor->len >= sizeof(pc->cursor))
    {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_BAD_GATEWAY);
        return;
    }

    ngx_memcpy(pc->cursor, cursor->str, cursor->len);
    pc->cursor_len = cursor->len;

    n = keys->elements;

    if (n == 0) {
        ngx_http_llmcache_purge_next(r, pc);
        return;
    }

    /* the reply goes away with this callback: keep the names */

    len = 0;

    for (i = 0; i < n; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING) {
            ngx_http_llmcache_purge_done(r, NGX_HTTP_BAD_GATEWAY);
            return;
        }

        len += keys->element[i]->len;
    }

    ngx_http_llmcache_purge_free(pc);

    pc->keys = ngx_alloc(n * sizeof(ngx_http_llmcache_purge_key_t) + len,
                         r->connection->log);
    if (pc->keys == NULL) {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = (u_char *) (pc->keys + n);

    for (i = 0; i < n; i++) {
        k = keys->element[i]->str;
        klen = keys->element[i]->len;

        pc->keys[i].data = p;
        pc->keys[i].len = klen;
        pc->keys[i].slot = llmc_key_slot(k, klen);
        p = ngx_cpymem(p, k, klen);

        if (pc->pass != 0 || pc->mode != NGX_HTTP_LLMCACHE_PURGE_KEY
            || pc->scope_found)
        {
            continue;
        }

        /* any key of the entry (its vector may outlive it) names the scope */

        b = (char *) ngx_strlchr((u_char *) k, (u_char *) k + klen, '}');

        if (b && b - k == (ssize_t) (sizeof(LLMC_KEY_PREFIX) - 1 + 1
                                     + LLMC_SCOPE_HEX_LEN))
        {
            ngx_memcpy(pc->scope, k + sizeof(LLMC_KEY_PREFIX),
                       LLMC_SCOPE_HEX_LEN);
            pc->scope_found = 1;
        }
    }

    ngx_qsort(pc->keys, n, sizeof(ngx_http_llmcache_purge_key_t),
              ngx_http_llmcache_purge_cmp);

    pc->nkeys = n;
    pc->next = 0;

    if (ngx_http_llmcache_purge_argv(r, pc, n + 4) != NGX_OK) {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_llmcache_purge_batch(r, pc);
}


/* the next keys of one hash slot: UNLINK them, or (pass 1) SREM the key */

static void
ngx_http_llmcache_purge_batch(ngx_http_request_t *r,
    ngx_http_llmcache_purge_ctx_t *pc)
{
    char                           *b;
    size_t                          argc, nk;
    ngx_uint_t                      i, first;
    ngx_http_llmcache_purge_key_t  *key;

    argc = 0;
    pc->unlinked = 0;

    first = pc->next;

    for (i = first; i < pc->nkeys; i++) {
        if (pc->keys[i].slot != pc->keys[first].slot) {
            break;
        }
    }

    nk = i - first;
    pc->next = i;

    if (pc->pass == 1) {
        /* the buckets of the key's scope: take it out of each */

        pc->argv[argc] = "EVAL";
        pc->argvlen[argc++] = 4;
        pc->argv[argc] = ngx_http_llmcache_srem_script;
        pc->argvlen[argc++] = sizeof(ngx_http_llmcache_srem_script) - 1;

        b = ngx_pnalloc(r->pool, NGX_SIZE_T_LEN);
        if (b == NULL) {
            ngx_http_llmcache_purge_done(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        pc->argv[argc] = b;
        pc->argvlen[argc++] = ngx_sprintf((u_char *) b, "%uz", nk)
                              - (u_char *) b;

    } else {
        pc->argv[argc] = "UNLINK";
        pc->argvlen[argc++] = 6;
    }

    for (i = first; i < pc->next; i++) {
        key = &pc->keys[i];

        pc->argv[argc] = (char *) key->data;
        pc->argvlen[argc++] = key->len;

        /* llmc:{scope}:e:... is a cached answer */

        b = (char *) ngx_strlchr(key->data, key->data + key->len, '}');

        if (pc->pass == 0 && b && b + 3 < (char *) key->data + key->len
            && ngx_strncmp(b, "}:e:", 4) == 0)
        {
            pc->unlinked++;
        }
    }

    if (pc->pass == 1) {
        pc->argv[argc] = (char *) pc->key;
        pc->argvlen[argc++] = LLMC_EXACT_HEX_LEN;
    }

    if (ngx_http_llmcache_redis_request(r, pc->lctx,
                                        ngx_http_llmcache_purge_removed,
                                        (int) argc, pc->argv, pc->argvlen)
        != NGX_OK)
    {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_SERVICE_UNAVAILABLE);
    }
}


static int ngx_libc_cdecl
ngx_http_llmcache_purge_cmp(const void *a, const void *b)
{
    const ngx_http_llmcache_purge_key_t  *x = a, *y = b;

    return (int) x->slot - (int) y->slot;
}


static void
ngx_http_llmcache_purge_free(void *data)
{
    ngx_http_llmcache_purge_ctx_t  *pc = data;

    if (pc->wait.timer_set) {
        ngx_del_timer(&pc->wait);
    }

    if (pc->keys) {
        ngx_free(pc->keys);
        pc->keys = NULL;
    }

    pc->nkeys = 0;
    pc->next = 0;
}


/* the batch's answer: count, then go on */

static void
ngx_http_llmcache_purge_removed(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_llmcache_purge_ctx_t  *pc;

    pc = ngx_http_get_module_ctx(r, ngx_http_llmcache_metrics_module);

    if (reply == NULL) {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_BAD_GATEWAY);
        return;
    }

    if (pc->pass == 0) {
        pc->deleted += (ngx_uint_t) reply->integer;
        pc->entries += pc->unlinked;
    }

    if (pc->next < pc->nkeys) {
        ngx_http_llmcache_purge_batch(r, pc);
        return;
    }

    ngx_http_llmcache_purge_next(r, pc);
}


/* scan on from the cursor, start the next pass, or answer */

static void
ngx_http_llmcache_purge_next(ngx_http_request_t *r,
    ngx_http_llmcache_purge_ctx_t *pc)
{
    pc->unlinked = 0;

    if (pc->cursor_len == 1 && pc->cursor[0] == '0'
        && pc->node + 1 < pc->n_nodes)
    {
        pc->node++;         /* the next master of the cluster */

    } else if (pc->cursor_len == 1 && pc->cursor[0] == '0') {

        pc->node = 0;

        if (pc->pass == 0 && pc->scope_found) {
            /* the key's LSH bucket memberships, in its own scope */

            pc->pass = 1;
            pc->cursor[0] = '0';
            pc->cursor_len = 1;
            pc->pattern_len = ngx_sprintf((u_char *) pc->pattern,
                                          LLMC_KEY_PREFIX "{%s}:b:*",
                                          pc->scope)
                              - (u_char *) pc->pattern;

        } else {
            ngx_http_llmcache_purge_done(r, NGX_HTTP_OK);
            return;
        }
    }

    if (ngx_http_llmcache_purge_scan(r, pc) != NGX_OK) {
        ngx_http_llmcache_purge_done(r, NGX_HTTP_SERVICE_UNAVAILABLE);
    }
}


static void
ngx_http_llmcache_purge_done(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_int_t                       rc;
    ngx_connection_t               *c;
    ngx_http_llmcache_purge_ctx_t  *pc;

    pc = ngx_http_get_module_ctx(r, ngx_http_llmcache_metrics_module);
    c = r->connection;

    if (ngx_http_llmcache_m_shm && pc->deleted) {
        (void) ngx_atomic_fetch_add(&ngx_http_llmcache_m_shm->purged,
                                    pc->deleted);
    }

    if (status == NGX_HTTP_OK) {
        ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                      "llmcache: purged %ui keys (%ui entries) matching "
                      "\"%*s\"", pc->deleted, pc->entries,
                      pc->pattern_len, pc->pattern);

        rc = ngx_http_llmcache_send_json(r, status,
                 "{\"deleted\":%ui,\"entries\":%ui}",
                 pc->deleted, pc->entries);

    } else {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "llmcache: purge of \"%*s\" stopped after %ui keys: "
                      "redis failed", pc->pattern_len, pc->pattern,
                      pc->deleted);

        rc = ngx_http_llmcache_send_json(r, status,
                 "{\"error\":\"redis failed during the purge\","
                 "\"deleted\":%ui,\"entries\":%ui}",
                 pc->deleted, pc->entries);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* exactly len hex digits, written lowercase and NUL-terminated into out */

static ngx_int_t
ngx_http_llmcache_hex(ngx_str_t *value, u_char *out, size_t len)
{
    size_t  i;
    u_char  c;

    if (value->len != len) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        c = ngx_tolower(value->data[i]);

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return NGX_ERROR;
        }

        out[i] = c;
    }

    out[len] = '\0';

    return NGX_OK;
}
