/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * Shared declarations of the module's C files: configuration, the
 * per-request context and the Redis connection of a worker process.
 */

#ifndef _NGX_HTTP_LLMCACHE_MODULE_H_INCLUDED_
#define _NGX_HTTP_LLMCACHE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "llmc_request.h"
#include "llmc_normalize.h"
#include "llmc_key.h"
#include "llmc_entry.h"
#include "llmc_guard.h"
#include "llmc_stream.h"
#include "llmc_tenant.h"
#include "llmc_pml.h"


#define NGX_HTTP_LLMCACHE_HIT     1
#define NGX_HTTP_LLMCACHE_MISS    2
#define NGX_HTTP_LLMCACHE_BYPASS  3
#define NGX_HTTP_LLMCACHE_SEMANTIC  4


typedef struct {
    ngx_str_t                   name;        /* as written, for logs */
    ngx_str_t                   host;        /* NUL-terminated */
    ngx_int_t                   port;        /* 0 for unix sockets */
    ngx_str_t                   unix_path;   /* NUL-terminated */
} ngx_http_llmcache_addr_t;


typedef struct {
    ngx_array_t                *addrs;       /* ngx_http_llmcache_addr_t */
    ngx_flag_t                  cluster;
    ngx_int_t                   db;
    ngx_str_t                   password;
    ngx_msec_t                  timeout;
    ngx_uint_t                  configured;
    ngx_uint_t                  enabled;     /* some location has it on */
    ngx_uint_t                  active;      /* ... or rewrites requests */
} ngx_http_llmcache_main_conf_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_uint_t                  provider;    /* llmc_provider_e, 0 = auto */
    ngx_http_complex_value_t   *key;
    time_t                      ttl;
    ngx_uint_t                  normalize;   /* LLMC_NORM_* bits */
    ngx_array_t                *dict_files;  /* ngx_str_t, merged in order */
    llmc_dict_t                *dict;
    ngx_array_t                *bypass;      /* ngx_http_complex_value_t */
    ngx_array_t                *no_store;    /* ngx_http_complex_value_t */
    size_t                      max_body_size;
    size_t                      max_entry_size;
    ngx_flag_t                  lock;
    ngx_msec_t                  lock_timeout;

    ngx_flag_t                  semantic;
    float                       threshold;
    ngx_str_t                   embedding;   /* empty: builtin, else URI */
    ngx_str_t                   embedding_model;
    ngx_int_t                   embedding_dims;
    ngx_uint_t                  guards;      /* LLMC_GUARD_* */
    llmc_entities_t            *entities;

    ngx_uint_t                  anthropic_cc;      /* 0 off, 1 auto */
    ngx_uint_t                  anthropic_ttl;     /* 0 5m, 1 1h */
    ngx_flag_t                  anthropic_beta;
    ngx_uint_t                  openai_prefix;     /* 0 off, 1 stable */
    ngx_array_t                *openai_volatile;   /* ngx_str_t, NUL-ended */
    ngx_uint_t                  openai_cache_key_mode; /* off, auto, value */
    ngx_http_complex_value_t   *openai_cache_key;
    ngx_uint_t                  openai_retention;  /* off, in_memory, 24h */
    ngx_array_t                *min_tokens;        /* llmc_min_tokens_t */
    ngx_array_t                *prices;            /* llmc_price_t */
} ngx_http_llmcache_loc_conf_t;


typedef struct ngx_http_llmcache_op_s  ngx_http_llmcache_op_t;

typedef struct {
    ngx_uint_t                  status;      /* NGX_HTTP_LLMCACHE_* */
    ngx_int_t                   phase_rc;    /* what the phase returns */
    unsigned                    started:1;
    unsigned                    waiting:1;   /* Redis lookup pending */
    unsigned                    done:1;      /* lookup finished */
    unsigned                    store:1;     /* store the response */
    unsigned                    capture:1;   /* copying the body */
    unsigned                    stored:1;
    unsigned                    lock_held:1; /* this request is upstream */
    unsigned                    lock_wait:1; /* waited for another one */
    unsigned                    embed_wait:1;
    unsigned                    stream:1;    /* the client asked for SSE */
    unsigned                    include_usage:1;
    unsigned                    rewritten:1;
    unsigned                    accounted:1; /* usage known */
    unsigned                    priced:1;    /* and its price */
    unsigned                    account_hit:1; /* a HIT not yet accounted */
    unsigned                    pml:1;       /* a PML prompt: kept exact */
    unsigned                    cand_entries:1; /* fetched with vectors */
    unsigned                    entry_refused:1; /* the exact entry was
                                                    damaged or too big */

    llmc_key_t                  key;
    ngx_str_t                   key_hex;     /* $llmcache_key */
    char                        redis_key[LLMC_REDIS_KEY_MAX];
    size_t                      redis_key_len;
    ngx_str_t                   api;
    llmc_api_e                  api_id;
    ngx_str_t                   model;
    ngx_str_t                   schema;      /* $llmcache_schema */

    ngx_str_t                   hit;         /* the stored entry */
    llmc_entry_t                entry;       /* decoded, points into hit */
    ngx_str_t                   replay;      /* the entry as SSE */

    ngx_http_llmcache_op_t     *op;          /* pending Redis command */
    ngx_http_llmcache_op_t     *op_next;     /* pipelined behind it */
    ngx_event_t                 timer;

    ngx_str_t                   norm;        /* the normalized prompt */
    float                      *vec;         /* its embedding */
    int                         dim;
    float                       similarity;  /* of a SEMANTIC hit */
    u_char                     *cand;        /* candidate exacts, 64 hex */
    size_t                      ncand;
    char                        emb_tag[16];

    llmc_usage_t                usage;
    double                      cost;        /* $llmcache_cost_usd */
    double                      saved;       /* $llmcache_saved_usd */

    ngx_msec_t                  lookup_start;  /* body read, lookup begins */
    ngx_msec_t                  lookup_time;   /* until the phase went on */
    size_t                      hit_bytes;     /* body bytes sent from cache */

    ngx_event_t                 poll;        /* single-flight wait */
    ngx_msec_t                  poll_delay;
    ngx_msec_t                  lock_start;
    ngx_msec_t                  lock_time;   /* $llmcache_lock_time */
    u_char                      lock_token[64];
    size_t                      lock_token_len;

    ngx_str_t                   content_type;
    llmc_stream_t              *sse;         /* assembling a stream */
    u_char                     *body;        /* captured response */
    size_t                      body_len;
    size_t                      body_cap;
} ngx_http_llmcache_ctx_t;


typedef void (*ngx_http_llmcache_reply_pt)(ngx_http_request_t *r,
    redisReply *reply);


extern ngx_module_t  ngx_http_llmcache_module;


/* ngx_http_llmcache_module.c */
ngx_int_t ngx_http_llmcache_register_variables(ngx_conf_t *cf,
    ngx_http_variable_t *vars);

/* ngx_http_llmcache_redis.c */
ngx_int_t ngx_http_llmcache_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_llmcache_redis_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_llmcache_redis_request(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_reply_pt handler,
    int argc, const char **argv, const size_t *argvlen);
ngx_int_t ngx_http_llmcache_redis_request_node(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_int_t n,
    ngx_http_llmcache_reply_pt handler, int argc, const char **argv,
    const size_t *argvlen);
ngx_uint_t ngx_http_llmcache_redis_scan_nodes(ngx_int_t *nodes,
    ngx_uint_t max);
ngx_int_t ngx_http_llmcache_redis_send(ngx_log_t *log, int argc,
    const char **argv, const size_t *argvlen);
void ngx_http_llmcache_redis_detach(ngx_http_llmcache_ctx_t *ctx);

/* ngx_http_llmcache_handler.c */
ngx_int_t ngx_http_llmcache_handler(ngx_http_request_t *r);
ngx_http_llmcache_ctx_t *ngx_http_llmcache_get_ctx(ngx_http_request_t *r);
void ngx_http_llmcache_resume(ngx_http_request_t *r);
ngx_int_t ngx_http_llmcache_request_body(ngx_http_request_t *r,
    ngx_str_t *body);
ngx_table_elt_t *ngx_http_llmcache_header(ngx_http_request_t *r,
    ngx_table_elt_t *after, const char *name, size_t len);
void ngx_http_llmcache_miss(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
void ngx_http_llmcache_use_entry(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, const char *value, size_t len);

/* ngx_http_llmcache_lock.c */
ngx_int_t ngx_http_llmcache_lock(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
void ngx_http_llmcache_lock_release(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);

/* ngx_http_llmcache_semantic.c */
ngx_int_t ngx_http_llmcache_semantic(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
void ngx_http_llmcache_semantic_exit(void);
void ngx_http_llmcache_semantic_store(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, time_t ttl);

/* ngx_http_llmcache_rewrite.c */
ngx_int_t ngx_http_llmcache_rewrite_add_variables(ngx_conf_t *cf);
ngx_uint_t ngx_http_llmcache_rewrite_enabled(
    ngx_http_llmcache_loc_conf_t *llcf);
void ngx_http_llmcache_rewrite(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
void ngx_http_llmcache_account(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, const char *json, size_t len,
    ngx_uint_t hit);
void ngx_http_llmcache_account_hit(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);

/* ngx_http_llmcache_metrics.c */
#define NGX_HTTP_LLMCACHE_M_REDIS_ERROR      1
#define NGX_HTTP_LLMCACHE_M_REDIS_TIMEOUT    2
#define NGX_HTTP_LLMCACHE_M_REDIS_RECONNECT  3
void ngx_http_llmcache_metrics_redis(ngx_uint_t event);
extern ngx_module_t  ngx_http_llmcache_metrics_module;

/* ngx_http_llmcache_store.c */
ngx_int_t ngx_http_llmcache_store_init(ngx_conf_t *cf);


#endif /* _NGX_HTTP_LLMCACHE_MODULE_H_INCLUDED_ */
