/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * Header and body filters that copy a MISS's upstream response while it
 * passes to the client unchanged, and store it once it is complete: a 200,
 * not content-encoded, within llmcache_max_entry_size, and ended by a
 * last_buf.  When the upstream breaks mid-body nginx sends no last_buf, so
 * nothing half-written is ever stored.  A streamed (SSE) response is fed to
 * the stream assembler instead of being copied, and stored as the complete
 * non-streamed JSON response it adds up to, only when the stream finished
 * cleanly; with proxy_buffering off the filter sees each read as it comes
 * and passes it on at once.
 */


#include "ngx_http_llmcache_module.h"


static ngx_int_t ngx_http_llmcache_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_llmcache_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_llmcache_capture(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_buf_t *b, size_t max);
static ngx_int_t ngx_http_llmcache_capture_stream(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_buf_t *b);
static void ngx_http_llmcache_store_stream(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
static void ngx_http_llmcache_stream_cleanup(void *data);
static ngx_int_t ngx_http_llmcache_buf_copy(ngx_buf_t *b, u_char *dst);
static ngx_int_t ngx_http_llmcache_stream_start(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_loc_conf_t *llcf);
static void ngx_http_llmcache_store(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_llmcache_store_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_llmcache_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_llmcache_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_llmcache_header_filter(ngx_http_request_t *r)
{
    ngx_http_llmcache_ctx_t       *ctx;
    ngx_http_llmcache_loc_conf_t  *llcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    /* a complete answer is both stored and accounted */

    if (ctx == NULL || ctx->api_id == LLMC_API_UNKNOWN
        || ctx->status == NGX_HTTP_LLMCACHE_HIT
        || ctx->status == NGX_HTTP_LLMCACHE_SEMANTIC)
    {
        return ngx_http_next_header_filter(r);
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    if (ctx->key_hex.len == 0 || llcf->ttl == 0) {
        ctx->store = 0;
    }

    if (r->headers_out.status != NGX_HTTP_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llmcache: not storing status %ui",
                       r->headers_out.status);
        return ngx_http_next_header_filter(r);
    }

    if (r->headers_out.content_encoding
        && r->headers_out.content_encoding->value.len
        && ngx_strcasecmp(r->headers_out.content_encoding->value.data,
                          (u_char *) "identity")
           != 0)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llmcache: not reading an encoded response");
        return ngx_http_next_header_filter(r);
    }

    if (r->headers_out.content_length_n > (off_t) llcf->max_entry_size) {
        return ngx_http_next_header_filter(r);
    }

    ctx->capture = 1;
    ctx->content_type = r->headers_out.content_type;

    if (ctx->stream) {
        return ngx_http_llmcache_stream_start(r, ctx, llcf);
    }

    if (r->headers_out.content_length_n > 0) {
        ctx->body_cap = (size_t) r->headers_out.content_length_n;
        ctx->body = ngx_pnalloc(r->pool, ctx->body_cap);
        if (ctx->body == NULL) {
            ctx->capture = 0;
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_llmcache_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                   *cl;
    ngx_http_llmcache_ctx_t       *ctx;
    ngx_http_llmcache_loc_conf_t  *llcf;

    if (r != r->main || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    if (ctx == NULL || !ctx->capture) {
        return ngx_http_next_body_filter(r, in);
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    for (cl = in; cl; cl = cl->next) {

        if ((ctx->sse ? ngx_http_llmcache_capture_stream(r, ctx, cl->buf)
                      : ngx_http_llmcache_capture(r, ctx, cl->buf,
                                                  llcf->max_entry_size))
            != NGX_OK)
        {
            ctx->capture = 0;
            break;
        }

        if (cl->buf->last_buf) {
            ctx->capture = 0;

            if (ctx->sse) {
                ngx_http_llmcache_store_stream(r, ctx);

            } else {
                ngx_http_llmcache_account(r, ctx, (char *) ctx->body,
                                          ctx->body_len, 0);
                if (ctx->store) {
                    ngx_http_llmcache_store(r, ctx);
                }
            }

            break;
        }
    }

    return ngx_http_next_body_filter(r, in);
}


/* a buffer's bytes, from memory or its temporary file */

static ngx_int_t
ngx_http_llmcache_buf_copy(ngx_buf_t *b, u_char *dst)
{
    off_t    size;
    ssize_t  n;

    size = ngx_buf_size(b);

    if (ngx_buf_in_memory(b)) {
        ngx_memcpy(dst, b->pos, size);
        return NGX_OK;
    }

    if (!b->in_file) {
        return NGX_ERROR;
    }

    n = ngx_read_file(b->file, dst, size, b->file_pos);

    return (n == size) ? NGX_OK : NGX_ERROR;
}


/* copies one buffer; upstream reuses its buffers, so a copy is a must */

static ngx_int_t
ngx_http_llmcache_capture(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx,
    ngx_buf_t *b, size_t max)
{
    off_t    size;
    size_t   cap;
    u_char  *p;

    size = ngx_buf_size(b);

    if (size == 0) {
        return NGX_OK;
    }

    if (ctx->body_len + size > max) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llmcache: response over llmcache_max_entry_size, "
                       "not storing");
        return NGX_DECLINED;
    }

    if (ctx->body_len + size > ctx->body_cap) {
        cap = ngx_max(ctx->body_cap * 2, ctx->body_len + size);
        cap = ngx_max(cap, 4096);
        cap = ngx_min(cap, max);

        p = ngx_pnalloc(r->pool, cap);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (ctx->body_len) {
            ngx_memcpy(p, ctx->body, ctx->body_len);
        }

        ctx->body = p;
        ctx->body_cap = cap;
    }

    if (ngx_http_llmcache_buf_copy(b, ctx->body + ctx->body_len) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->body_len += size;

    return NGX_OK;
}


/* a streamed answer: only a text/event-stream 200 is assembled */

static ngx_int_t
ngx_http_llmcache_stream_start(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_loc_conf_t *llcf)
{
    ngx_pool_cleanup_t  *cln;

    if (ctx->content_type.len < sizeof("text/event-stream") - 1
        || ngx_strncasecmp(ctx->content_type.data,
                           (u_char *) "text/event-stream",
                           sizeof("text/event-stream") - 1)
           != 0)
    {
        ctx->capture = 0;
        return ngx_http_next_header_filter(r);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ctx->capture = 0;
        return ngx_http_next_header_filter(r);
    }

    ctx->sse = llmc_stream_new(ctx->api_id, llcf->max_entry_size);
    if (ctx->sse == NULL) {
        ctx->capture = 0;
        return ngx_http_next_header_filter(r);
    }

    cln->handler = ngx_http_llmcache_stream_cleanup;
    cln->data = ctx->sse;

    return ngx_http_next_header_filter(r);
}


static void
ngx_http_llmcache_stream_cleanup(void *data)
{
    llmc_stream_free(data);
}


static ngx_int_t
ngx_http_llmcache_capture_stream(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_buf_t *b)
{
    off_t    size;
    u_char  *p;

    size = ngx_buf_size(b);

    if (size == 0) {
        return NGX_OK;
    }

    if (ngx_buf_in_memory(b)) {
        p = b->pos;

    } else {
        /* a buffered stream that spilled to a temporary file */

        p = ngx_pnalloc(r->pool, size);
        if (p == NULL || ngx_http_llmcache_buf_copy(b, p) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (llmc_stream_feed(ctx->sse, (char *) p, size) != 0
        || llmc_stream_state(ctx->sse) == LLMC_STREAM_FAILED)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llmcache: not storing the stream: %s",
                       llmc_stream_error(ctx->sse));
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_http_llmcache_store_stream(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx)
{
    char    *json;
    size_t   len;

    if (llmc_stream_finish(ctx->sse) != LLMC_STREAM_DONE) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llmcache: not storing an unfinished stream: %s",
                       llmc_stream_error(ctx->sse));
        return;
    }

    json = llmc_stream_result(ctx->sse, &len);
    if (json == NULL) {
        return;
    }

    /* one entry serves both kinds of client: store it as the JSON body */

    ngx_http_llmcache_account(r, ctx, json, len, 0);

    ngx_str_set(&ctx->content_type, "application/json");
    ctx->body = (u_char *) json;
    ctx->body_len = len;

    if (ctx->store) {
        ngx_http_llmcache_store(r, ctx);
    }

    ctx->body = NULL;
    free(json);
}


static void
ngx_http_llmcache_store(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx)
{
    u_char                         ttl[NGX_TIME_T_LEN];
    char                          *value;
    size_t                         value_len, argvlen[5];
    const char                    *argv[5];
    ngx_http_llmcache_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    value = llmc_entry_encode((char *) ctx->content_type.data,
                              ctx->content_type.len,
                              (char *) ctx->api.data,
                              ctx->model.data ? (char *) ctx->model.data : "",
                              (int64_t) ngx_time(),
                              (char *) ctx->body, ctx->body_len, &value_len);
    if (value == NULL) {
        return;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = ctx->redis_key;
    argvlen[1] = ctx->redis_key_len;
    argv[2] = value;
    argvlen[2] = value_len;
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = (char *) ttl;
    argvlen[4] = ngx_sprintf(ttl, "%T", llcf->ttl) - ttl;

    if (ngx_http_llmcache_redis_send(r->connection->log, 5, argv, argvlen)
        == NGX_OK)
    {
        ctx->stored = 1;
        ngx_http_llmcache_semantic_store(r, ctx, llcf->ttl);
    }

    free(value);
}
