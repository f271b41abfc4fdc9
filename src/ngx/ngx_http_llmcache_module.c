/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * Directives, configuration, variables and module registration.  The
 * request path lives in ngx_http_llmcache_handler.c (lookup and hits),
 * ngx_http_llmcache_store.c (capturing and storing responses) and
 * ngx_http_llmcache_redis.c (hiredis on nginx events).
 */


#include "ngx_http_llmcache_module.h"

#include <jansson.h>

#include "llmc_embed.h"
#include "llmc_rewrite.h"
#include "llmc_price.h"

#include <regex.h>


static ngx_int_t ngx_http_llmcache_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_llmcache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_llmcache_schema_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_llmcache_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_llmcache_lock_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_llmcache_similarity_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static char *ngx_http_llmcache_threshold(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_embedding(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_guards(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_entities(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_llmcache_entities_cleanup(void *data);
static char *ngx_http_llmcache_volatile(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_cache_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_min_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_price(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_llmcache_preconfiguration(ngx_conf_t *cf);
static void *ngx_http_llmcache_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_llmcache_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_llmcache_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_llmcache_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_llmcache_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_normalize(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_dictionary(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_llmcache_load_dict(ngx_conf_t *cf,
    ngx_http_llmcache_loc_conf_t *conf);
static void ngx_http_llmcache_dict_cleanup(void *data);
static ngx_int_t ngx_http_llmcache_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_llmcache_init_process(ngx_cycle_t *cycle);
static void ngx_http_llmcache_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_llmcache_provider[] = {
    { ngx_string("auto"), LLMC_PROVIDER_UNKNOWN },
    { ngx_string("openai"), LLMC_PROVIDER_OPENAI },
    { ngx_string("anthropic"), LLMC_PROVIDER_ANTHROPIC },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_llmcache_dims_bounds = {
    ngx_conf_check_num_bounds, LLMC_EMBED_DIM_MIN, LLMC_EMBED_DIM_MAX
};


static ngx_conf_enum_t  ngx_http_llmcache_off_auto[] = {
    { ngx_string("off"), 0 },
    { ngx_string("auto"), 1 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_llmcache_ttls[] = {
    { ngx_string("5m"), 0 },
    { ngx_string("1h"), 1 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_llmcache_prefix[] = {
    { ngx_string("off"), 0 },
    { ngx_string("stable"), 1 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_llmcache_retention[] = {
    { ngx_string("off"), 0 },
    { ngx_string("in_memory"), 1 },
    { ngx_string("24h"), 2 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_llmcache_commands[] = {

    { ngx_string("llmcache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, enable),
      NULL },

    { ngx_string("llmcache_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_llmcache_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_llmcache_main_conf_t, timeout),
      NULL },

    { ngx_string("llmcache_provider"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, provider),
      &ngx_http_llmcache_provider },

    { ngx_string("llmcache_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, key),
      NULL },

    { ngx_string("llmcache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, ttl),
      NULL },

    { ngx_string("llmcache_normalize"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_llmcache_normalize,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_dictionary"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_llmcache_dictionary,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_bypass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_set_predicate_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, bypass),
      NULL },

    { ngx_string("llmcache_no_store"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_set_predicate_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, no_store),
      NULL },

    { ngx_string("llmcache_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("llmcache_max_entry_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, max_entry_size),
      NULL },

    { ngx_string("llmcache_lock"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, lock),
      NULL },

    { ngx_string("llmcache_lock_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, lock_timeout),
      NULL },

    { ngx_string("llmcache_semantic"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, semantic),
      NULL },

    { ngx_string("llmcache_semantic_threshold"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_llmcache_threshold,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_embedding"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_llmcache_embedding,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_embedding_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, embedding_model),
      NULL },

    { ngx_string("llmcache_embedding_dimensions"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, embedding_dims),
      &ngx_http_llmcache_dims_bounds },

    { ngx_string("llmcache_semantic_guard"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_llmcache_guards,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_semantic_entities"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_llmcache_entities,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_anthropic_cache_control"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, anthropic_cc),
      &ngx_http_llmcache_off_auto },

    { ngx_string("llmcache_anthropic_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, anthropic_ttl),
      &ngx_http_llmcache_ttls },

    { ngx_string("llmcache_anthropic_beta_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, anthropic_beta),
      NULL },

    { ngx_string("llmcache_openai_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, openai_prefix),
      &ngx_http_llmcache_prefix },

    { ngx_string("llmcache_openai_volatile"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_llmcache_volatile,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_openai_cache_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_llmcache_cache_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_openai_cache_retention"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_llmcache_loc_conf_t, openai_retention),
      &ngx_http_llmcache_retention },

    { ngx_string("llmcache_min_cacheable_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_llmcache_min_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llmcache_price"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_llmcache_price,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_llmcache_module_ctx = {
    ngx_http_llmcache_preconfiguration,    /* preconfiguration */
    ngx_http_llmcache_init,                /* postconfiguration */

    ngx_http_llmcache_create_main_conf,    /* create main configuration */
    ngx_http_llmcache_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_llmcache_create_loc_conf,     /* create location configuration */
    ngx_http_llmcache_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_llmcache_module = {
    NGX_MODULE_V1,
    &ngx_http_llmcache_module_ctx,         /* module context */
    ngx_http_llmcache_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_llmcache_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_llmcache_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_llmcache_vars[] = {

    { ngx_string("llmcache_status"), NULL,
      ngx_http_llmcache_status_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_key"), NULL,
      ngx_http_llmcache_key_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_schema"), NULL,
      ngx_http_llmcache_schema_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_similarity"), NULL,
      ngx_http_llmcache_similarity_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_lock_time"), NULL,
      ngx_http_llmcache_lock_time_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_llmcache_status_names[] = {
    ngx_null_string,
    ngx_string("HIT"),
    ngx_string("MISS"),
    ngx_string("BYPASS"),
    ngx_string("SEMANTIC")
};


static ngx_int_t
ngx_http_llmcache_preconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_llmcache_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_llmcache_rewrite_add_variables(cf);
}


static ngx_int_t
ngx_http_llmcache_add_variables(ngx_conf_t *cf)
{
    return ngx_http_llmcache_register_variables(cf, ngx_http_llmcache_vars);
}


ngx_int_t
ngx_http_llmcache_register_variables(ngx_conf_t *cf, ngx_http_variable_t *vars)
{
    ngx_http_variable_t  *var, *v;

    for (v = vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_llmcache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_llmcache_module);

    if (ctx == NULL || ctx->status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_llmcache_status_names[ctx->status].len;
    v->data = ngx_http_llmcache_status_names[ctx->status].data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_llmcache_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_llmcache_module);

    if (ctx == NULL || ctx->key_hex.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->key_hex.len;
    v->data = ctx->key_hex.data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* the schema a PML prompt names, empty otherwise */

static ngx_int_t
ngx_http_llmcache_schema_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_llmcache_module);

    if (ctx == NULL || ctx->schema.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->schema.len;
    v->data = ctx->schema.data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* the cosine of a SEMANTIC hit, empty otherwise */

static ngx_int_t
ngx_http_llmcache_similarity_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_llmcache_module);

    if (ctx == NULL || ctx->status != NGX_HTTP_LLMCACHE_SEMANTIC) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 16);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%.4f", (double) ctx->similarity) - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* milliseconds spent waiting for another request's answer */

static ngx_int_t
ngx_http_llmcache_lock_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_llmcache_module);

    if (ctx == NULL || ctx->key_hex.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%M", ctx->lock_wait ? ctx->lock_time : 0) - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static void *
ngx_http_llmcache_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_llmcache_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_llmcache_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    lmcf->db = NGX_CONF_UNSET;
    lmcf->timeout = NGX_CONF_UNSET_MSEC;

    return lmcf;
}


static char *
ngx_http_llmcache_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_llmcache_main_conf_t  *lmcf = conf;

    ngx_conf_init_value(lmcf->db, 0);
    ngx_conf_init_msec_value(lmcf->timeout, 100);

    return NGX_CONF_OK;
}


static void *
ngx_http_llmcache_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_llmcache_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_llmcache_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->key = NULL;
     *     conf->dict_files = NULL;
     *     conf->dict = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->provider = NGX_CONF_UNSET_UINT;
    conf->ttl = NGX_CONF_UNSET;
    conf->normalize = NGX_CONF_UNSET_UINT;
    conf->bypass = NGX_CONF_UNSET_PTR;
    conf->no_store = NGX_CONF_UNSET_PTR;
    conf->max_body_size = NGX_CONF_UNSET_SIZE;
    conf->max_entry_size = NGX_CONF_UNSET_SIZE;
    conf->lock = NGX_CONF_UNSET;
    conf->lock_timeout = NGX_CONF_UNSET_MSEC;
    conf->semantic = NGX_CONF_UNSET;
    conf->threshold = -1;
    conf->embedding.data = NULL;
    conf->embedding_dims = NGX_CONF_UNSET;
    conf->guards = NGX_CONF_UNSET_UINT;
    conf->entities = NGX_CONF_UNSET_PTR;
    conf->anthropic_cc = NGX_CONF_UNSET_UINT;
    conf->anthropic_ttl = NGX_CONF_UNSET_UINT;
    conf->anthropic_beta = NGX_CONF_UNSET;
    conf->openai_prefix = NGX_CONF_UNSET_UINT;
    conf->openai_volatile = NGX_CONF_UNSET_PTR;
    conf->openai_cache_key_mode = NGX_CONF_UNSET_UINT;
    conf->openai_retention = NGX_CONF_UNSET_UINT;
    conf->min_tokens = NGX_CONF_UNSET_PTR;
    conf->prices = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_llmcache_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_llmcache_loc_conf_t *prev = parent;
    ngx_http_llmcache_loc_conf_t *conf = child;

    ngx_str_t                          *f, *pf;
    ngx_uint_t                          i;
    ngx_array_t                        *files;
    ngx_http_llmcache_main_conf_t      *lmcf;
    ngx_http_compile_complex_value_t    ccv;

    static ngx_str_t  default_key =
                          ngx_string("$http_authorization$http_x_api_key");

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_uint_value(conf->provider, prev->provider,
                              LLMC_PROVIDER_UNKNOWN);
    ngx_conf_merge_sec_value(conf->ttl, prev->ttl, 3600);
    ngx_conf_merge_uint_value(conf->normalize, prev->normalize,
                              LLMC_NORM_ALL);
    ngx_conf_merge_ptr_value(conf->bypass, prev->bypass, NULL);
    ngx_conf_merge_ptr_value(conf->no_store, prev->no_store, NULL);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              1024 * 1024);
    ngx_conf_merge_size_value(conf->max_entry_size, prev->max_entry_size,
                              1024 * 1024);
    ngx_conf_merge_value(conf->lock, prev->lock, 1);
    ngx_conf_merge_msec_value(conf->lock_timeout, prev->lock_timeout, 5000);

    ngx_conf_merge_value(conf->semantic, prev->semantic, 0);

    if (conf->threshold < 0) {
        conf->threshold = (prev->threshold < 0)
                          ? (float) LLMC_SEMANTIC_THRESHOLD_DEFAULT
                          : prev->threshold;
    }

    if (conf->embedding.data == NULL) {
        conf->embedding = prev->embedding;
    }

    ngx_conf_merge_str_value(conf->embedding_model, prev->embedding_model,
                             "");
    ngx_conf_merge_value(conf->embedding_dims, prev->embedding_dims,
                         LLMC_EMBED_DIM_DEFAULT);
    ngx_conf_merge_uint_value(conf->guards, prev->guards, LLMC_GUARD_ALL);
    ngx_conf_merge_ptr_value(conf->entities, prev->entities, NULL);

    ngx_conf_merge_uint_value(conf->anthropic_cc, prev->anthropic_cc, 0);
    ngx_conf_merge_uint_value(conf->anthropic_ttl, prev->anthropic_ttl, 0);
    ngx_conf_merge_value(conf->anthropic_beta, prev->anthropic_beta, 0);
    ngx_conf_merge_uint_value(conf->openai_prefix, prev->openai_prefix, 0);
    ngx_conf_merge_ptr_value(conf->openai_volatile, prev->openai_volatile,
                             NULL);
    ngx_conf_merge_uint_value(conf->openai_retention, prev->openai_retention,
                              0);
    ngx_conf_merge_ptr_value(conf->min_tokens, prev->min_tokens, NULL);
    ngx_conf_merge_ptr_value(conf->prices, prev->prices, NULL);

    if (conf->openai_cache_key_mode == NGX_CONF_UNSET_UINT) {
        conf->openai_cache_key_mode =
            (prev->openai_cache_key_mode == NGX_CONF_UNSET_UINT)
            ? 0 : prev->openai_cache_key_mode;
        conf->openai_cache_key = prev->openai_cache_key;
    }

    if (conf->key == NULL) {
        conf->key = prev->key;
    }

    if (conf->key == NULL) {
        conf->key = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (conf->key == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &default_key;
        ccv.complex_value = conf->key;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        prev->key = conf->key;
    }

    /* dictionaries: the parent's files, then this level's own, in order */

    if (conf->dict_files == NULL) {
        conf->dict_files = prev->dict_files;
        conf->dict = prev->dict;

    } else if (prev->dict_files) {
        files = ngx_array_create(cf->pool,
                                 prev->dict_files->nelts
                                 + conf->dict_files->nelts,
                                 sizeof(ngx_str_t));
        if (files == NULL) {
            return NGX_CONF_ERROR;
        }

        pf = prev->dict_files->elts;
        for (i = 0; i < prev->dict_files->nelts; i++) {
            f = ngx_array_push(files);
            *f = pf[i];
        }

        pf = conf->dict_files->elts;
        for (i = 0; i < conf->dict_files->nelts; i++) {
            f = ngx_array_push(files);
            *f = pf[i];
        }

        conf->dict_files = files;
        conf->dict = NULL;
    }

    if (conf->dict_files && conf->dict == NULL) {
        if (ngx_http_llmcache_load_dict(cf, conf) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_llmcache_module);

    if (ngx_http_llmcache_rewrite_enabled(conf)) {
        /* rewriting alone needs no Redis */
        lmcf->active = 1;
    }

    if (conf->enable) {
        if (!lmcf->configured) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llmcache\" is on but no \"llmcache_redis\" "
                               "is configured in the http block");
            return NGX_CONF_ERROR;
        }

        lmcf->enabled = 1;
        lmcf->active = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_llmcache_load_dict(ngx_conf_t *cf,
    ngx_http_llmcache_loc_conf_t *conf)
{
    char                 err[512];
    ngx_str_t           *file;
    ngx_uint_t           i;
    llmc_dict_t         *dict;
    ngx_pool_cleanup_t  *cln;

    dict = llmc_dict_new();
    if (dict == NULL) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        llmc_dict_free(dict);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_llmcache_dict_cleanup;
    cln->data = dict;

    file = conf->dict_files->elts;

    for (i = 0; i < conf->dict_files->nelts; i++) {
        if (llmc_dict_load_file(dict, (char *) file[i].data, err, sizeof(err))
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "llmcache_dictionary: %s", err);
            return NGX_CONF_ERROR;
        }
    }

    conf->dict = dict;

    return NGX_CONF_OK;
}


static void
ngx_http_llmcache_dict_cleanup(void *data)
{
    llmc_dict_free(data);
}


/*
 * llmcache_redis host:port | unix:/path [db=n] [password=p];
 * llmcache_redis host:port [host:port ...] cluster [password=p];
 */

static char *
ngx_http_llmcache_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_main_conf_t *lmcf = conf;

    u_char                    *p, *last;
    ngx_str_t                 *value;
    ngx_int_t                  n;
    ngx_uint_t                 i;
    ngx_http_llmcache_addr_t  *a;

    if (lmcf->configured) {
        return "is duplicate";
    }

    lmcf->addrs = ngx_array_create(cf->pool, 2,
                                   sizeof(ngx_http_llmcache_addr_t));
    if (lmcf->addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "cluster") == 0) {
            lmcf->cluster = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid db number \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            lmcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            lmcf->password.len = value[i].len - 9;
            lmcf->password.data = value[i].data + 9;

            if (lmcf->password.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "empty redis password");
                return NGX_CONF_ERROR;
            }

            continue;
        }

        a = ngx_array_push(lmcf->addrs);
        if (a == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(a, sizeof(ngx_http_llmcache_addr_t));
        a->name = value[i];

        if (value[i].len > 5 && ngx_strncmp(value[i].data, "unix:", 5) == 0) {
            a->unix_path.len = value[i].len - 5;
            a->unix_path.data = value[i].data + 5;  /* NUL-terminated */
            continue;
        }

        last = value[i].data + value[i].len;

        for (p = last - 1; p > value[i].data && *p != ':'; p--) {
            /* void */
        }

        if (p == value[i].data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid redis address or parameter \"%V\": "
                               "host:port, unix:/path, cluster, db= or "
                               "password= is expected", &value[i]);
            return NGX_CONF_ERROR;
        }

        n = ngx_atoi(p + 1, last - p - 1);
        if (n < 1 || n > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid port in redis address \"%V\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        a->port = n;
        a->host.len = p - value[i].data;
        a->host.data = ngx_pnalloc(cf->pool, a->host.len + 1);
        if (a->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(a->host.data, value[i].data, a->host.len + 1);
    }

    if (lmcf->addrs->nelts == 0) {
        return "needs an address";
    }

    if (!lmcf->cluster && lmcf->addrs->nelts > 1) {
        return "takes one address, or several with \"cluster\"";
    }

    if (lmcf->cluster && lmcf->db != NGX_CONF_UNSET && lmcf->db != 0) {
        return "with \"cluster\" cannot select a database";
    }

    if (lmcf->cluster) {
        a = lmcf->addrs->elts;

        for (i = 0; i < lmcf->addrs->nelts; i++) {
            if (a[i].port == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "cluster nodes are host:port, not "
                                   "\"%V\"", &a[i].name);
                return NGX_CONF_ERROR;
            }
        }
    }

    lmcf->configured = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_llmcache_normalize(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    unsigned     bit;
    ngx_str_t   *value;
    ngx_uint_t   i, steps;

    if (llcf->normalize != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        llcf->normalize = 0;
        return NGX_CONF_OK;
    }

    steps = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        bit = llmc_norm_step((char *) value[i].data, value[i].len);

        if (bit == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown normalization step \"%V\"; "
                               "the steps are nfkc, casefold, space, punct "
                               "and dict, or \"off\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        steps |= bit;
    }

    llcf->normalize = steps;

    return NGX_CONF_OK;
}


static char *
ngx_http_llmcache_dictionary(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    ngx_str_t  *value, *file;

    value = cf->args->elts;

    if (llcf->dict_files == NULL) {
        llcf->dict_files = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (llcf->dict_files == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    file = ngx_array_push(llcf->dict_files);
    if (file == NULL) {
        return NGX_CONF_ERROR;
    }

    *file = value[1];

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_llmcache_threshold(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    char       buf[32], *end;
    double     t;
    ngx_str_t *value;

    if (llcf->threshold >= 0) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len >= sizeof(buf)) {
        goto invalid;
    }

    ngx_memcpy(buf, value[1].data, value[1].len);
    buf[value[1].len] = '\0';

    t = strtod(buf, &end);

    if (*end != '\0' || !(t >= 0 && t <= 1)) {
        goto invalid;
    }

    llcf->threshold = (float) t;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid similarity threshold \"%V\": a cosine "
                       "between 0 and 1 is expected", &value[1]);
    return NGX_CONF_ERROR;
}


/* builtin, or the URI of an internal location that proxies /v1/embeddings */

static char *
ngx_http_llmcache_embedding(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    ngx_str_t  *value;

    if (llcf->embedding.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "builtin") == 0) {
        ngx_str_set(&llcf->embedding, "");
        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid embedding \"%V\": \"builtin\" or the "
                           "URI of a location (e.g. /_embeddings) that "
                           "proxies to an OpenAI-compatible /v1/embeddings "
                           "is expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    llcf->embedding = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_llmcache_guards(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    unsigned     bit;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (llcf->guards != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        llcf->guards = 0;
        return NGX_CONF_OK;
    }

    llcf->guards = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        bit = llmc_guard_flag((char *) value[i].data, value[i].len);

        if (bit == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown semantic guard \"%V\"; the guards "
                               "are negation, numbers and entities, or "
                               "\"off\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        llcf->guards |= bit;
    }

    return NGX_CONF_OK;
}


/* the named entities that must match for a SEMANTIC hit, one per line */

static char *
ngx_http_llmcache_entities(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    char                 err[512];
    ngx_str_t           *value, file;
    llmc_entities_t     *ents;
    ngx_pool_cleanup_t  *cln;

    if (llcf->entities != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ents = llmc_entities_new();
    if (ents == NULL) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        llmc_entities_free(ents);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_llmcache_entities_cleanup;
    cln->data = ents;

    if (llmc_entities_load_file(ents, (char *) file.data, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmcache_semantic_entities: %s", err);
        return NGX_CONF_ERROR;
    }

    llcf->entities = ents;

    return NGX_CONF_OK;
}


static void
ngx_http_llmcache_entities_cleanup(void *data)
{
    llmc_entities_free(data);
}


/* llmcache_openai_volatile regex ...: POSIX extended, checked here */

static char *
ngx_http_llmcache_volatile(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    int          rc;
    char         err[128];
    regex_t      re;
    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (llcf->openai_volatile != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    llcf->openai_volatile = ngx_array_create(cf->pool, cf->args->nelts,
                                             sizeof(ngx_str_t));
    if (llcf->openai_volatile == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        rc = regcomp(&re, (char *) value[i].data, REG_EXTENDED);

        if (rc != 0) {
            regerror(rc, &re, err, sizeof(err));
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid regex \"%V\": %s", &value[i], err);
            return NGX_CONF_ERROR;
        }

        regfree(&re);

        s = ngx_array_push(llcf->openai_volatile);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* llmcache_openai_cache_key off | auto | <complex value> */

static char *
ngx_http_llmcache_cache_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (llcf->openai_cache_key_mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        llcf->openai_cache_key_mode = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "auto") == 0) {
        llcf->openai_cache_key_mode = 1;
        return NGX_CONF_OK;
    }

    llcf->openai_cache_key = ngx_palloc(cf->pool,
                                        sizeof(ngx_http_complex_value_t));
    if (llcf->openai_cache_key == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = llcf->openai_cache_key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    llcf->openai_cache_key_mode = 2;

    return NGX_CONF_OK;
}


/* llmcache_min_cacheable_tokens <model pattern> <n> */

static char *
ngx_http_llmcache_min_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    ngx_int_t           n;
    ngx_str_t          *value;
    llmc_min_tokens_t  *t;

    value = cf->args->elts;

    n = ngx_atoi(value[2].data, value[2].len);
    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of tokens \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (llcf->min_tokens == NGX_CONF_UNSET_PTR) {
        llcf->min_tokens = ngx_array_create(cf->pool, 4,
                                            sizeof(llmc_min_tokens_t));
        if (llcf->min_tokens == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    t = ngx_array_push(llcf->min_tokens);
    if (t == NULL) {
        return NGX_CONF_ERROR;
    }

    t->pattern = (char *) value[1].data;
    t->tokens = (size_t) n;

    return NGX_CONF_OK;
}


/*
 * llmcache_price <model pattern> input=<usd/MTok> [cached=] [write=]
 *     [write_1h=] output=<usd/MTok>;
 */

static char *
ngx_http_llmcache_price(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llmcache_loc_conf_t *llcf = conf;

    char           buf[32], *end, *eq;
    double         d, *field;
    ngx_str_t     *value;
    ngx_uint_t     i;
    llmc_price_t  *p;

    value = cf->args->elts;

    if (llcf->prices == NGX_CONF_UNSET_PTR) {
        llcf->prices = ngx_array_create(cf->pool, 4, sizeof(llmc_price_t));
        if (llcf->prices == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    p = ngx_array_push(llcf->prices);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(p, sizeof(llmc_price_t));
    p->pattern = (char *) value[1].data;
    p->cached = p->write_5m = p->write_1h = -1;

    for (i = 2; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
             ? (char *) ngx_strlchr(value[i].data,
                                    value[i].data + value[i].len, '=')
             : NULL;

        if (eq == NULL || value[i].len - (eq + 1 - (char *) value[i].data)
                          >= sizeof(buf))
        {
            goto invalid;
        }

        ngx_cpystrn((u_char *) buf, (u_char *) eq + 1, sizeof(buf));
        d = strtod(buf, &end);
        if (end == buf || *end != '\0' || !(d >= 0)) {
            goto invalid;
        }

#define LLMC_PRICE_FIELD(name, f)                                             \
        if ((size_t) (eq - (char *) value[i].data) == sizeof(name) - 1       \
            && ngx_strncmp(value[i].data, name, sizeof(name) - 1) == 0)       \
        {                                                                     \
            field = &p->f;                                                    \
        } else

        LLMC_PRICE_FIELD("input", input)
        LLMC_PRICE_FIELD("cached", cached)
        LLMC_PRICE_FIELD("write", write_5m)
        LLMC_PRICE_FIELD("write_1h", write_1h)
        LLMC_PRICE_FIELD("output", output)
        {
            goto invalid;
        }

#undef LLMC_PRICE_FIELD

        *field = d;
    }

    /* what is not given is priced like the provider prices it */

    if (p->cached < 0) {
        p->cached = p->input;
    }

    if (p->write_5m < 0) {
        p->write_5m = p->input * 1.25;
    }

    if (p->write_1h < 0) {
        p->write_1h = p->input * 2;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid price \"%V\": input=, cached=, write=, "
                       "write_1h= or output= with USD per million tokens "
                       "is expected", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_llmcache_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_llmcache_main_conf_t  *lmcf;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_llmcache_module);

    /*
     * jansson seeds its hash function on first use from /dev/urandom:
     * do it once here, in the master, rather than in a request
     */

    json_object_seed(0);

    /* nothing to register unless some location caches or rewrites */

    if (!lmcf->active) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_llmcache_handler;

    return ngx_http_llmcache_store_init(cf);
}


static ngx_int_t
ngx_http_llmcache_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_llmcache_redis_init_process(cycle);
}


static void
ngx_http_llmcache_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_llmcache_redis_exit_process(cycle);

    /* what the worker kept for its lifetime, so that leak checkers see
       only what requests leave behind */
    ngx_http_llmcache_semantic_exit();
    llmc_request_cleanup();
    llmc_normalize_cleanup();
}
