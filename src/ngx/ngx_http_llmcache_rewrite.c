/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * Provider-side prompt caching and accounting.  On the way to the provider
 * (a MISS, a BYPASS, or any request of a location that only rewrites) the
 * body is reshaped by llmc_rewrite(): Anthropic cache_control breakpoints,
 * byte-stable OpenAI prefixes; it is replaced only when that changed
 * something, and goes byte for byte untouched otherwise.  On the way back
 * the usage of the answer (JSON or the assembled stream) gives the token
 * and dollar variables; a HIT of ours counts what it avoided as saved.
 */


#include "ngx_http_llmcache_module.h"

#include "llmc_rewrite.h"
#include "llmc_price.h"


#define NGX_HTTP_LLMCACHE_BETA  "prompt-caching-2024-07-31"


static ngx_int_t ngx_http_llmcache_replace_body(ngx_http_request_t *r,
    char *body, size_t len);
static ngx_int_t ngx_http_llmcache_beta_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_llmcache_usage_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_llmcache_usage_vars[] = {

    { ngx_string("llmcache_input_tokens"), NULL,
      ngx_http_llmcache_usage_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_cached_tokens"), NULL,
      ngx_http_llmcache_usage_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_cache_write_tokens"), NULL,
      ngx_http_llmcache_usage_variable, 2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_output_tokens"), NULL,
      ngx_http_llmcache_usage_variable, 3, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_cost_usd"), NULL,
      ngx_http_llmcache_usage_variable, 4, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmcache_saved_usd"), NULL,
      ngx_http_llmcache_usage_variable, 5, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_llmcache_rewrite_add_variables(ngx_conf_t *cf)
{
    return ngx_http_llmcache_register_variables(cf,
                                                ngx_http_llmcache_usage_vars);
}


ngx_uint_t
ngx_http_llmcache_rewrite_enabled(ngx_http_llmcache_loc_conf_t *llcf)
{
    return llcf->anthropic_cc || llcf->anthropic_beta || llcf->openai_prefix
           || llcf->openai_volatile || llcf->openai_cache_key_mode
           || llcf->openai_retention;
}


/*
 * Called once, when the request goes on to the provider.  Anything that
 * does not work out leaves the body as the client sent it.
 */

void
ngx_http_llmcache_rewrite(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx)
{
    char                          *out, info[256];
    size_t                         out_len;
    ngx_int_t                      rc;
    ngx_str_t                      body, key, *re;
    ngx_uint_t                     i;
    const char                   **res;
    llmc_rewrite_conf_t            conf;
    ngx_http_llmcache_loc_conf_t  *llcf;

    static const char  *retention[] = { NULL, "in_memory", "24h" };

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    if (!ngx_http_llmcache_rewrite_enabled(llcf) || ctx->rewritten
        || ctx->api_id == LLMC_API_UNKNOWN)
    {
        return;
    }

    ctx->rewritten = 1;

    if (llcf->anthropic_beta
        && llmc_api_provider(ctx->api_id) == LLMC_PROVIDER_ANTHROPIC
        && ngx_http_llmcache_beta_header(r) != NGX_OK)
    {
        return;
    }

    if (ngx_http_llmcache_request_body(r, &body) != NGX_OK
        || body.len == 0)
    {
        return;
    }

    ngx_memzero(&conf, sizeof(llmc_rewrite_conf_t));

    conf.anthropic_auto = llcf->anthropic_cc;
    conf.anthropic_ttl_1h = llcf->anthropic_ttl;
    conf.openai_stable = llcf->openai_prefix;
    conf.openai_retention = retention[llcf->openai_retention];

    if (llcf->openai_volatile) {
        res = ngx_palloc(r->pool, llcf->openai_volatile->nelts
                                  * sizeof(char *));
        if (res == NULL) {
            return;
        }

        re = llcf->openai_volatile->elts;
        for (i = 0; i < llcf->openai_volatile->nelts; i++) {
            res[i] = (char *) re[i].data;
        }

        conf.volatile_res = res;
        conf.n_volatile = llcf->openai_volatile->nelts;
    }

    if (llcf->openai_cache_key_mode == 1) {
        conf.openai_cache_key = "";

    } else if (llcf->openai_cache_key_mode == 2) {
        if (ngx_http_complex_value(r, llcf->openai_cache_key, &key)
            != NGX_OK)
        {
            return;
        }

        conf.openai_cache_key = (char *) ngx_pnalloc(r->pool, key.len + 1);
        if (conf.openai_cache_key == NULL) {
            return;
        }

        ngx_cpystrn((u_char *) conf.openai_cache_key, key.data, key.len + 1);
    }

    if (llcf->min_tokens) {
        conf.min_tokens = llcf->min_tokens->elts;
        conf.n_min_tokens = llcf->min_tokens->nelts;
    }

    rc = llmc_rewrite(ctx->api_id, (char *) body.data, body.len, &conf,
                      &out, &out_len, info, sizeof(info));

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llmcache: rewrite %i: %s", rc, info);

    if (rc != 1) {
        return;
    }

    (void) ngx_http_llmcache_replace_body(r, out, out_len);

    free(out);
}


/*
 * The new body replaces the old one the way proxy_pass takes it: one memory
 * buffer, Content-Length set (the body was read whole before).
 */

static ngx_int_t
ngx_http_llmcache_replace_body(ngx_http_request_t *r, char *body, size_t len)
{
    u_char           *p;
    ngx_buf_t        *b;
    ngx_chain_t      *cl;
    ngx_table_elt_t  *h;

    b = ngx_create_temp_buf(r->pool, len);
    cl = ngx_alloc_chain_link(r->pool);
    p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
    if (b == NULL || cl == NULL || p == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->pos, body, len);
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl->buf = b;
    cl->next = NULL;

    if (r->request_body->temp_file) {
        /* the file stays for cleanup; proxy reads only bufs */
        r->request_body->temp_file = NULL;
    }

    r->request_body->bufs = cl;
    r->request_body->buf = b;

    r->headers_in.content_length_n = len;
    r->headers_in.chunked = 0;

    h = r->headers_in.content_length;

    if (h == NULL) {
        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        ngx_str_set(&h->key, "Content-Length");
        h->lowcase_key = (u_char *) "content-length";
        h->hash = ngx_hash_key(h->lowcase_key, h->key.len);
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
        r->headers_in.content_length = h;
    }

    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%O", (off_t) len) - p;

    return NGX_OK;
}


/* anthropic-beta: prompt-caching-… for endpoints that still need it */

static ngx_int_t
ngx_http_llmcache_beta_header(ngx_http_request_t *r)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    for (h = ngx_http_llmcache_header(r, NULL, "anthropic-beta",
                                      sizeof("anthropic-beta") - 1);
         h;
         h = ngx_http_llmcache_header(r, h, "anthropic-beta",
                                      sizeof("anthropic-beta") - 1))
    {
        if (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                             (u_char *) NGX_HTTP_LLMCACHE_BETA,
                             sizeof(NGX_HTTP_LLMCACHE_BETA) - 2))
        {
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, h->value.len + sizeof(NGX_HTTP_LLMCACHE_BETA));
        if (p == NULL) {
            return NGX_ERROR;
        }

        h->value.len = ngx_sprintf(p, "%V,%s", &h->value,
                                   NGX_HTTP_LLMCACHE_BETA)
                       - p;
        h->value.data = p;

        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&h->key, "anthropic-beta");
    ngx_str_set(&h->value, NGX_HTTP_LLMCACHE_BETA);
    h->lowcase_key = (u_char *) "anthropic-beta";
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/*
 * The usage of a complete answer (the provider's JSON, or the JSON a
 * stream added up to).  hit: our cache answered, so its cost was saved.
 */

void
ngx_http_llmcache_account(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx,
    const char *json, size_t len, ngx_uint_t hit)
{
    llmc_cost_t                    c;
    llmc_usage_t                   u;
    const llmc_price_t            *price;
    ngx_http_llmcache_loc_conf_t  *llcf;

    if (ctx->api_id == LLMC_API_UNKNOWN
        || llmc_usage_parse(ctx->api_id, json, len, &u) != 0)
    {
        return;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    ctx->usage = u;
    ctx->accounted = 1;

    price = llmc_price_find(llcf->prices ? llcf->prices->elts : NULL,
                            llcf->prices ? llcf->prices->nelts : 0,
                            ctx->model.data ? (char *) ctx->model.data : "");
    if (price == NULL) {
        return;
    }

    ctx->priced = 1;

    if (hit) {
        /* nothing was paid: all of it was saved */
        ctx->cost = 0;
        ctx->saved = llmc_cost_full(price, &u);
        return;
    }

    llmc_cost(price, &u,
              llmc_api_provider(ctx->api_id) == LLMC_PROVIDER_ANTHROPIC, &c);

    ctx->cost = c.cost;
    ctx->saved = c.saved;
}


/* a HIT's usage, from the stored answer, when something needs it */

void
ngx_http_llmcache_account_hit(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx)
{
    if (!ctx->account_hit) {
        return;
    }

    ctx->account_hit = 0;

    ngx_http_llmcache_account(r, ctx, ctx->entry.body, ctx->entry.body_len,
                              1);
}


static ngx_int_t
ngx_http_llmcache_usage_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    int64_t                   n;
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_llmcache_module);

    if (ctx) {
        ngx_http_llmcache_account_hit(r->main, ctx);
    }

    if (ctx == NULL || !ctx->accounted || (data >= 4 && !ctx->priced)) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 16);
    if (p == NULL) {
        return NGX_ERROR;
    }

    switch (data) {

    case 0:
        n = ctx->usage.input;
        break;

    case 1:
        n = ctx->usage.cached;
        break;

    case 2:
        n = ctx->usage.cache_write_5m + ctx->usage.cache_write_1h;
        break;

    case 3:
        n = ctx->usage.output;
        break;

    default:
        v->len = ngx_sprintf(p, "%.6f", data == 4 ? ctx->cost : ctx->saved)
                 - p;
        goto done;
    }

    v->len = ngx_sprintf(p, "%L", n) - p;

done:

    v->data = p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
