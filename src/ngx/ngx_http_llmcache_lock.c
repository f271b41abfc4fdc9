/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * Single flight: while one request for a key is upstream, identical
 * requests wait for its answer instead of paying for their own.  The lock
 * is a Redis key (SET NX PX), so it works across workers and nginx
 * instances, and its expiry frees it when the holder crashes.  The entry
 * is read again in the same round trip (a GET pipelined behind the SET):
 * a request whose lookup crossed the previous holder's store and release
 * takes the lock after the answer is there, and serves it.  Waiters poll
 * the entry with a short backoff on nginx timers; when the entry appears
 * they are HITs, when the lock goes away without an entry (the holder's
 * response was not storable) or llmcache_lock_timeout passes, they go
 * upstream themselves.  Any Redis trouble: go upstream.
 */


#include "ngx_http_llmcache_module.h"


#define NGX_HTTP_LLMCACHE_POLL_MIN  10
#define NGX_HTTP_LLMCACHE_POLL_MAX  100


static void ngx_http_llmcache_lock_acquired(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_llmcache_lock_checked(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_llmcache_lock_poll(ngx_event_t *ev);
static void ngx_http_llmcache_lock_polled(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_llmcache_lock_wait(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
static void ngx_http_llmcache_lock_cleanup(void *data);
static void ngx_http_llmcache_lock_key(ngx_http_llmcache_ctx_t *ctx,
    char *buf, size_t *len);


/* the entry, or whether the lock is still held: one round trip */

static const char  ngx_http_llmcache_poll_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then return v end "
    "return redis.call('EXISTS', KEYS[2])";

/* delete the lock only while it is still ours */

static const char  ngx_http_llmcache_release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0";


/*
 * Called on a MISS that would be stored.  NGX_AGAIN: a Redis command is
 * pending and the request resumes later; NGX_OK: go upstream now.
 */

ngx_int_t
ngx_http_llmcache_lock(ngx_http_request_t *r, ngx_http_llmcache_ctx_t *ctx)
{
    char                           key[LLMC_REDIS_KEY_MAX], ttl[NGX_INT_T_LEN];
    size_t                         key_len, argvlen[6];
    const char                    *argv[6];
    ngx_pool_cleanup_t            *cln;
    ngx_http_llmcache_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    if (!llcf->lock || !ctx->store || ctx->key_hex.len == 0) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_OK;
    }

    cln->handler = ngx_http_llmcache_lock_cleanup;
    cln->data = r;

    /* a token of this request: only its holder may release the lock */

    ctx->lock_token_len = ngx_sprintf(ctx->lock_token, "%P:%08xD%08xD:%M",
                                      ngx_pid, (uint32_t) ngx_random(),
                                      (uint32_t) ngx_random(),
                                      ngx_current_msec)
                          - ctx->lock_token;

    ngx_http_llmcache_lock_key(ctx, key, &key_len);

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = key;
    argvlen[1] = key_len;
    argv[2] = (char *) ctx->lock_token;
    argvlen[2] = ctx->lock_token_len;
    argv[3] = "NX";
    argvlen[3] = 2;
    argv[4] = "PX";
    argvlen[4] = 2;
    argv[5] = ttl;
    argvlen[5] = ngx_sprintf((u_char *) ttl, "%M", llcf->lock_timeout)
                 - (u_char *) ttl;

    if (ngx_http_llmcache_redis_request(r, ctx,
                                        ngx_http_llmcache_lock_acquired,
                                        6, argv, argvlen)
        != NGX_OK)
    {
        return NGX_OK;
    }

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = ctx->redis_key;
    argvlen[1] = ctx->redis_key_len;

    (void) ngx_http_llmcache_redis_request(r, ctx,
                                           ngx_http_llmcache_lock_checked,
                                           2, argv, argvlen);

    return NGX_AGAIN;
}


static void
ngx_http_llmcache_lock_acquired(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    if (reply && reply->type == REDIS_REPLY_STATUS) {
        ctx->lock_held = 1;

        if (ctx->op) {
            /* the entry, read again, comes next */
            return;
        }

        ngx_http_llmcache_resume(r);
        return;
    }

    /* the entry read again is not needed: the poll reads it */
    ngx_http_llmcache_redis_detach(ctx);

    if (reply && reply->type == REDIS_REPLY_NIL) {
        /* another request is upstream for this key: wait for its answer */
        ctx->lock_wait = 1;
        ctx->lock_start = ngx_current_msec;
        ctx->poll_delay = NGX_HTTP_LLMCACHE_POLL_MIN;
        ngx_http_llmcache_lock_wait(r, ctx);
        return;
    }

    ngx_http_llmcache_resume(r);
}


/* the lock is ours: was the answer stored meanwhile? */

static void
ngx_http_llmcache_lock_checked(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    /* (an entry the lookup refused is not read, nor logged, again) */
    if (reply && reply->type == REDIS_REPLY_STRING && !ctx->entry_refused) {
        ngx_http_llmcache_use_entry(r, ctx, reply->str, reply->len);

        if (ctx->status == NGX_HTTP_LLMCACHE_HIT) {
            ngx_http_llmcache_lock_release(r, ctx);
        }
    }

    ngx_http_llmcache_resume(r);
}


static void
ngx_http_llmcache_lock_wait(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx)
{
    ctx->poll.handler = ngx_http_llmcache_lock_poll;
    ctx->poll.data = r;
    ctx->poll.log = r->connection->log;

    ngx_add_timer(&ctx->poll, ctx->poll_delay);

    ctx->poll_delay = ngx_min(ctx->poll_delay * 3 / 2,
                              NGX_HTTP_LLMCACHE_POLL_MAX);
}


static void
ngx_http_llmcache_lock_poll(ngx_event_t *ev)
{
    char                      key[LLMC_REDIS_KEY_MAX];
    size_t                    key_len, argvlen[5];
    const char               *argv[5];
    ngx_http_request_t       *r;
    ngx_http_llmcache_ctx_t  *ctx;

    r = ev->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    ngx_http_llmcache_lock_key(ctx, key, &key_len);

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_llmcache_poll_script;
    argvlen[1] = sizeof(ngx_http_llmcache_poll_script) - 1;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = ctx->redis_key;
    argvlen[3] = ctx->redis_key_len;
    argv[4] = key;
    argvlen[4] = key_len;

    if (ngx_http_llmcache_redis_request(r, ctx,
                                        ngx_http_llmcache_lock_polled,
                                        5, argv, argvlen)
        != NGX_OK)
    {
        ctx->lock_time = ngx_current_msec - ctx->lock_start;
        ngx_http_llmcache_resume(r);
    }
}


static void
ngx_http_llmcache_lock_polled(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_llmcache_ctx_t       *ctx;
    ngx_http_llmcache_loc_conf_t  *llcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);
    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    ctx->lock_time = ngx_current_msec - ctx->lock_start;

    if (reply && reply->type == REDIS_REPLY_STRING) {
        /* the holder's answer is stored: serve it */
        ngx_http_llmcache_use_entry(r, ctx, reply->str, reply->len);
        ngx_http_llmcache_resume(r);
        return;
    }

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1
        && ctx->lock_time < llcf->lock_timeout)
    {
        ngx_http_llmcache_lock_wait(r, ctx);
        return;
    }

    /* timed out, the holder gave up, or Redis failed: go upstream */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llmcache: lock wait over after %M ms, going upstream",
                   ctx->lock_time);

    ngx_http_llmcache_resume(r);
}


void
ngx_http_llmcache_lock_release(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx)
{
    char        key[LLMC_REDIS_KEY_MAX];
    size_t      key_len, argvlen[5];
    const char *argv[5];

    if (!ctx->lock_held) {
        return;
    }

    ctx->lock_held = 0;

    ngx_http_llmcache_lock_key(ctx, key, &key_len);

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_llmcache_release_script;
    argvlen[1] = sizeof(ngx_http_llmcache_release_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = key;
    argvlen[3] = key_len;
    argv[4] = (char *) ctx->lock_token;
    argvlen[4] = ctx->lock_token_len;

    (void) ngx_http_llmcache_redis_send(r->connection->log, 5, argv, argvlen);
}


static void
ngx_http_llmcache_lock_cleanup(void *data)
{
    ngx_http_request_t  *r = data;

    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);
    if (ctx == NULL) {
        return;
    }

    if (ctx->poll.timer_set) {
        ngx_del_timer(&ctx->poll);
    }

    ngx_http_llmcache_lock_release(r, ctx);
}


/* llmc:{scope}:l:<exact>, beside the entry in the same slot */

static void
ngx_http_llmcache_lock_key(ngx_http_llmcache_ctx_t *ctx, char *buf,
    size_t *len)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) buf, LLMC_REDIS_KEY_MAX,
                     LLMC_KEY_PREFIX "{%s}:l:%s",
                     ctx->key.scope, ctx->key.exact);
    *len = p - (u_char *) buf;
}
