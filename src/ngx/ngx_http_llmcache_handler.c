/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * The PRECONTENT phase: read the request body, decide whether the request
 * is cacheable, build its keys, look the entry up in Redis without blocking
 * and either answer from the cache or let the content handler (proxy_pass)
 * run.  Anything that is not a well-formed, known request goes upstream
 * untouched as BYPASS.
 */


#include "ngx_http_llmcache_module.h"


static void ngx_http_llmcache_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_llmcache_lookup(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
static void ngx_http_llmcache_lookup_done(ngx_http_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_llmcache_send_hit(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
static ngx_int_t ngx_http_llmcache_read_body(ngx_http_request_t *r,
    size_t max, ngx_str_t *body);
static ngx_uint_t ngx_http_llmcache_cache_control(ngx_http_request_t *r);
static ngx_int_t ngx_http_llmcache_tenant(ngx_http_request_t *r,
    ngx_http_llmcache_loc_conf_t *llcf, llmc_api_e api, ngx_str_t *tenant);

static ngx_uint_t ngx_http_llmcache_is_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_llmcache_bypass(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, const char *why);


#define NGX_HTTP_LLMCACHE_CC_NO_CACHE  1
#define NGX_HTTP_LLMCACHE_CC_NO_STORE  2

/* characters of text per replayed delta, as a provider streams them */
#define NGX_HTTP_LLMCACHE_REPLAY_CHARS  16


ngx_http_llmcache_ctx_t *
ngx_http_llmcache_get_ctx(ngx_http_request_t *r)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_llmcache_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_llmcache_module);

    return ctx;
}


ngx_int_t
ngx_http_llmcache_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_uint_t                     cc;
    llmc_api_e                     api;
    ngx_http_llmcache_ctx_t       *ctx;
    ngx_http_llmcache_loc_conf_t  *llcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    if (!llcf->enable && !ngx_http_llmcache_rewrite_enabled(llcf)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    if (ctx) {
        if (!ctx->done) {
            /* still reading the body or waiting for Redis */
            return NGX_DONE;
        }

        if (ctx->status == NGX_HTTP_LLMCACHE_HIT
            || ctx->status == NGX_HTTP_LLMCACHE_SEMANTIC)
        {
            rc = ngx_http_llmcache_send_hit(r, ctx);
            ngx_http_finalize_request(r, rc);
            return NGX_DONE;
        }

        /* on to the provider, reshaped for its prompt cache if asked */
        ngx_http_llmcache_rewrite(r, ctx);

        return NGX_DECLINED;
    }

    ctx = ngx_http_llmcache_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_llmcache_bypass(r, ctx, "not a POST");
    }

    api = llmc_api_from_uri((char *) r->uri.data, r->uri.len,
                            (llmc_provider_e) llcf->provider);
    if (api == LLMC_API_UNKNOWN) {
        return ngx_http_llmcache_bypass(r, ctx, "not an LLM API URI");
    }

    ctx->api.data = (u_char *) llmc_api_name(api);
    ctx->api.len = ngx_strlen(ctx->api.data);
    ctx->api_id = api;

    if (!ngx_http_llmcache_is_json(r)) {
        return ngx_http_llmcache_bypass(r, ctx, "not application/json");
    }

    if (r->headers_in.content_length_n > (off_t) llcf->max_body_size) {
        return ngx_http_llmcache_bypass(r, ctx, "body over "
                                        "llmcache_max_body_size");
    }

    cc = ngx_http_llmcache_cache_control(r);

    if (!llcf->enable) {
        /* a location that only reshapes requests for the provider */
        ctx->store = 0;

    } else if (cc & NGX_HTTP_LLMCACHE_CC_NO_STORE) {
        ctx->status = NGX_HTTP_LLMCACHE_BYPASS;
        ctx->store = 0;

    } else {
        ctx->store = 1;

        if (llcf->no_store
            && ngx_http_test_predicates(r, llcf->no_store) == NGX_DECLINED)
        {
            ctx->store = 0;
        }

        /* lookup unless the client or the operator says otherwise */

        ctx->status = NGX_HTTP_LLMCACHE_MISS;

        if ((cc & NGX_HTTP_LLMCACHE_CC_NO_CACHE)
            || (llcf->bypass
                && ngx_http_test_predicates(r, llcf->bypass) == NGX_DECLINED))
        {
            ctx->status = NGX_HTTP_LLMCACHE_BYPASS;
        }
    }

    if (ctx->status == NGX_HTTP_LLMCACHE_BYPASS && !ctx->store
        && !ngx_http_llmcache_rewrite_enabled(llcf))
    {
        /* nothing to do with the body */
        ctx->done = 1;
        return NGX_DECLINED;
    }

    ctx->started = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_llmcache_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_llmcache_bypass(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx,
    const char *why)
{
    ngx_http_llmcache_loc_conf_t  *llcf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llmcache: bypass: %s", why);

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    if (llcf->enable) {
        ctx->status = NGX_HTTP_LLMCACHE_BYPASS;
    }

    ctx->store = 0;
    ctx->done = 1;

    return NGX_DECLINED;
}


static void
ngx_http_llmcache_body_handler(ngx_http_request_t *r)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    ngx_time_update();
    ctx->lookup_start = ngx_current_msec;

    if (ngx_http_llmcache_lookup(r, ctx) == NGX_AGAIN) {
        /* Redis answers later; nothing may run the phases meanwhile */
        ctx->waiting = 1;
        r->write_event_handler = ngx_http_request_empty_handler;
        return;
    }

    ctx->done = 1;
    ctx->lookup_time = ngx_current_msec - ctx->lookup_start;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/*
 * A PML prompt for llmcache-worker: its schema is $llmcache_schema, and its
 * text is keyed as it is, since its tags mean more than their words.
 */

static ngx_int_t
ngx_http_llmcache_pml(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx,
    llmc_request_t *req)
{
    size_t       len;
    const char  *name;

    if (req->prompt == NULL
        || !llmc_pml_schema(req->prompt, req->prompt_len, &name, &len))
    {
        return NGX_OK;
    }

    ctx->pml = 1;

    ctx->schema.data = ngx_pnalloc(r->pool, len);
    if (ctx->schema.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->schema.data, name, len);
    ctx->schema.len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_llmcache_lookup(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx)
{
    char                           err[256], *norm;
    size_t                         norm_len, argvlen[2];
    ngx_int_t                      rc;
    ngx_str_t                      body, tenant;
    llmc_api_e                     api;
    const char                    *argv[2];
    llmc_request_t                 req;
    ngx_pool_cleanup_t            *cln;
    ngx_http_llmcache_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    rc = ngx_http_llmcache_read_body(r, llcf->max_body_size, &body);

    if (rc != NGX_OK) {
        return ngx_http_llmcache_bypass(r, ctx,
                                        rc == NGX_DECLINED
                                        ? "body over llmcache_max_body_size"
                                        : "body could not be read");
    }

    api = llmc_api_from_uri((char *) r->uri.data, r->uri.len,
                            (llmc_provider_e) llcf->provider);

    ngx_memzero(&req, sizeof(llmc_request_t));

    if (llmc_request_parse(&req, api, (char *) body.data, body.len,
                           err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llmcache: not cacheable: %s", err);
        llmc_request_free(&req);
        return ngx_http_llmcache_bypass(r, ctx, "not cacheable");
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        llmc_request_free(&req);
        return ngx_http_llmcache_bypass(r, ctx, "out of memory");
    }

    /* streamed and non-streamed requests share entries */

    ctx->stream = req.stream ? 1 : 0;
    ctx->include_usage = req.include_usage ? 1 : 0;

    ctx->model.len = ngx_strlen(req.model);
    ctx->model.data = ngx_pnalloc(r->pool, ctx->model.len + 1);
    if (ctx->model.data == NULL) {
        llmc_request_free(&req);
        return ngx_http_llmcache_bypass(r, ctx, "out of memory");
    }

    ngx_cpystrn(ctx->model.data, (u_char *) req.model, ctx->model.len + 1);

    if (ngx_http_llmcache_pml(r, ctx, &req) != NGX_OK) {
        llmc_request_free(&req);
        return ngx_http_llmcache_bypass(r, ctx, "out of memory");
    }

    if (!llcf->enable) {
        llmc_request_free(&req);
        return NGX_OK;
    }

    norm = NULL;
    norm_len = 0;

    if (llmc_normalize(req.prompt ? req.prompt : "", req.prompt_len,
                       ctx->pml ? 0 : llcf->normalize,
                       llcf->dict, &norm, &norm_len, err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llmcache: not cacheable: %s", err);
        llmc_request_free(&req);
        return ngx_http_llmcache_bypass(r, ctx, "not normalizable");
    }

    cln->handler = free;
    cln->data = norm;

    ctx->norm.data = (u_char *) norm;
    ctx->norm.len = norm_len;

    if (ngx_http_llmcache_tenant(r, llcf, api, &tenant) != NGX_OK) {
        llmc_request_free(&req);
        return ngx_http_llmcache_bypass(r, ctx, "llmcache_key failed");
    }

    llmc_key_make(&ctx->key, (char *) tenant.data, tenant.len, &req,
                  norm, norm_len);

    ctx->key_hex.data = (u_char *) ctx->key.exact;
    ctx->key_hex.len = LLMC_EXACT_HEX_LEN;
    ctx->redis_key_len = llmc_key_redis_entry(&ctx->key, ctx->redis_key,
                                              sizeof(ctx->redis_key));

    llmc_request_free(&req);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llmcache: key %s, prompt \"%s\"", ctx->key.exact, norm);

    if (ctx->status == NGX_HTTP_LLMCACHE_BYPASS) {
        return NGX_OK;
    }

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = ctx->redis_key;
    argvlen[1] = ctx->redis_key_len;

    rc = ngx_http_llmcache_redis_request(r, ctx,
                                         ngx_http_llmcache_lookup_done,
                                         2, argv, argvlen);

    if (rc != NGX_OK) {
        return NGX_OK;
    }

    return NGX_AGAIN;
}


static void
ngx_http_llmcache_lookup_done(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    if (reply && reply->type == REDIS_REPLY_STRING) {
        ngx_http_llmcache_use_entry(r, ctx, reply->str, reply->len);
    }

    if (ctx->status != NGX_HTTP_LLMCACHE_MISS || reply == NULL) {
        /* a HIT, or Redis failed: no more round trips */
        ngx_http_llmcache_redis_detach(ctx);
        ngx_http_llmcache_resume(r);
        return;
    }

    if (ngx_http_llmcache_semantic(r, ctx) == NGX_AGAIN) {
        return;
    }

    ngx_http_llmcache_miss(r, ctx);
}


/* the lookups missed: take the single-flight lock, then go upstream */

void
ngx_http_llmcache_miss(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx)
{
    if (ngx_http_llmcache_lock(r, ctx) == NGX_AGAIN) {
        return;
    }

    ngx_http_llmcache_resume(r);
}


/* a stored value: a HIT when it decodes (and, for a stream, replays) */

void
ngx_http_llmcache_use_entry(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, const char *value, size_t len)
{
    char                          *sse, err[128];
    size_t                         sse_len;
    ngx_pool_cleanup_t            *cln;
    ngx_http_llmcache_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    /* no entry this location stores is larger: something else wrote it */
    if (len > llcf->max_entry_size + LLMC_ENTRY_META_MAX) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "llmcache: ignoring an entry %s of %uz bytes, over "
                      "llmcache_max_entry_size", ctx->redis_key, len);
        ctx->entry_refused = 1;
        return;
    }

    ctx->hit.data = ngx_pnalloc(r->pool, len);
    if (ctx->hit.data == NULL) {
        return;
    }

    ngx_memcpy(ctx->hit.data, value, len);
    ctx->hit.len = len;

    if (llmc_entry_decode(&ctx->entry, (char *) ctx->hit.data, ctx->hit.len,
                          err, sizeof(err))
        != 0)
    {
        /* the next complete response overwrites it */
        ctx->entry_refused = 1;
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "llmcache: ignoring a damaged entry %s: %s",
                      ctx->redis_key, err);
        return;
    }

    if (ctx->stream) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return;
        }

        sse = llmc_stream_replay(ctx->api_id, ctx->entry.body,
                                 ctx->entry.body_len, ctx->include_usage,
                                 NGX_HTTP_LLMCACHE_REPLAY_CHARS, &sse_len,
                                 err, sizeof(err));
        if (sse == NULL) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "llmcache: entry %s cannot be replayed as a "
                          "stream: %s", ctx->redis_key, err);
            return;
        }

        cln->handler = free;
        cln->data = sse;

        ctx->replay.data = (u_char *) sse;
        ctx->replay.len = sse_len;
    }

    ctx->status = NGX_HTTP_LLMCACHE_HIT;
    ctx->store = 0;
}


void
ngx_http_llmcache_resume(ngx_http_request_t *r)
{
    ngx_connection_t         *c;
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    ctx->waiting = 0;
    ctx->done = 1;

    ngx_time_update();
    ctx->lookup_time = ngx_current_msec - ctx->lookup_start;

    c = r->connection;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_llmcache_send_hit(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx)
{
    u_char        *body;
    size_t         len;
    ngx_int_t      rc;
    ngx_buf_t     *b;
    ngx_chain_t    out;
    llmc_entry_t  *entry;

    static ngx_str_t  event_stream = ngx_string("text/event-stream");

    entry = &ctx->entry;

    r->headers_out.status = NGX_HTTP_OK;

    if (ctx->stream) {
        body = ctx->replay.data;
        len = ctx->replay.len;
        r->headers_out.content_type = event_stream;

    } else {
        body = (u_char *) entry->body;
        len = entry->body_len;
        r->headers_out.content_type.len = entry->content_type_len;
        r->headers_out.content_type.data = (u_char *) entry->content_type;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len;
    ctx->hit_bytes = len;

    /* parsed only if a variable or the metrics ask: HITs stay cheap */
    ctx->account_hit = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = len ? 1 : 0;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The whole body in one buffer: memory buffers are used in place when
 * there is only one, file buffers (client_body_buffer_size exceeded) are
 * read back.  NGX_DECLINED when it is larger than max.
 */

static ngx_int_t
ngx_http_llmcache_read_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body)
{
    off_t         len;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = (u_char *) "";

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) max) {
        return NGX_DECLINED;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && ngx_buf_in_memory(cl->buf)) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_llmcache_cache_control(ngx_http_request_t *r)
{
    u_char           *v, *last;
    ngx_uint_t        cc;
    ngx_table_elt_t  *h;

    cc = 0;
    h = NULL;

    while ((h = ngx_http_llmcache_header(r, h, "Cache-Control",
                                         sizeof("Cache-Control") - 1)))
    {
        v = h->value.data;
        last = v + h->value.len;

        if (ngx_strlcasestrn(v, last, (u_char *) "no-store", 8 - 1)) {
            cc |= NGX_HTTP_LLMCACHE_CC_NO_STORE;
        }

        if (ngx_strlcasestrn(v, last, (u_char *) "no-cache", 8 - 1)) {
            cc |= NGX_HTTP_LLMCACHE_CC_NO_CACHE;
        }
    }

    return cc;
}


/*
 * The tenant material: llmcache_key's value, the request headers that
 * select another API behaviour or account and so can change the answer,
 * and what the prompt was normalized with (steps, dictionaries and ICU, by
 * their fingerprint), so entries made under other rules are never served.
 * It is hashed into the scope and never stored.
 */

static ngx_int_t
ngx_http_llmcache_tenant(ngx_http_request_t *r,
    ngx_http_llmcache_loc_conf_t *llcf, llmc_api_e api, ngx_str_t *tenant)
{
    size_t               len;
    ngx_str_t            key;
    ngx_uint_t           i;
    ngx_array_t         *headers;
    llmc_header_t       *hd;
    llmc_provider_e      provider;
    ngx_table_elt_t     *h;
    const char *const   *name;

    if (ngx_http_complex_value(r, llcf->key, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    provider = llmc_api_provider(api);
    name = llmc_tenant_header_names(provider);

    headers = ngx_array_create(r->pool, 2, sizeof(llmc_header_t));
    if (headers == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; name[i]; i++) {
        for (h = ngx_http_llmcache_header(r, NULL, name[i],
                                          ngx_strlen(name[i]));
             h;
             h = ngx_http_llmcache_header(r, h, name[i],
                                          ngx_strlen(name[i])))
        {
            hd = ngx_array_push(headers);
            if (hd == NULL) {
                return NGX_ERROR;
            }

            hd->name = (char *) h->key.data;
            hd->name_len = h->key.len;
            hd->value = (char *) h->value.data;
            hd->value_len = h->value.len;
        }
    }

    len = llmc_tenant_size(key.len, provider, headers->elts, headers->nelts);

    tenant->data = ngx_pnalloc(r->pool, len);
    if (tenant->data == NULL) {
        return NGX_ERROR;
    }

    tenant->len = llmc_tenant_write((char *) tenant->data, len,
                                    (char *) key.data, key.len, provider,
                                    headers->elts, headers->nelts,
                                    llcf->normalize, llcf->dict);

    return tenant->len ? NGX_OK : NGX_ERROR;
}


/* the next request header called name after "after" (NULL: the first) */

ngx_table_elt_t *
ngx_http_llmcache_header(ngx_http_request_t *r, ngx_table_elt_t *after,
    const char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    ngx_uint_t        seen;

    seen = (after == NULL);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (!seen) {
            seen = (&h[i] == after);
            continue;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/* the request body as one buffer, for the rewrite */

ngx_int_t
ngx_http_llmcache_request_body(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_http_llmcache_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    return ngx_http_llmcache_read_body(r, llcf->max_body_size, body);
}


/* application/json, or any type/subtype+json, with parameters */

static ngx_uint_t
ngx_http_llmcache_is_json(ngx_http_request_t *r)
{
    u_char           *p, *last;
    ngx_table_elt_t  *ct;

    ct = r->headers_in.content_type;

    if (ct == NULL) {
        return 0;
    }

    p = ct->value.data;
    last = p + ct->value.len;

    for ( /* void */ ; p < last; p++) {
        if (*p == ';' || *p == ' ' || *p == '\t') {
            break;
        }
    }

    if (p - ct->value.data == sizeof("application/json") - 1
        && ngx_strncasecmp(ct->value.data, (u_char *) "application/json",
                           sizeof("application/json") - 1)
           == 0)
    {
        return 1;
    }

    return p - ct->value.data > 5
           && ngx_strncasecmp(p - 5, (u_char *) "+json", 5) == 0;
}
