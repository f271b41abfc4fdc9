/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * hiredis' async API on nginx events: one connection per worker process,
 * shared by all requests (hiredis pipelines their commands), reconnected
 * with backoff.  Debian's hiredis 0.14 has no timer hook, so per-command
 * timeouts are nginx timers in the request context; a reply arriving after
 * its request timed out or went away finds its operation detached and is
 * dropped.  Trouble is logged once per incident: the first failure after a
 * success at "error", the rest at "debug", and the recovery at "notice".
 */


#include "ngx_http_llmcache_module.h"


#define NGX_HTTP_LLMCACHE_REDIS_DOWN        0
#define NGX_HTTP_LLMCACHE_REDIS_CONNECTING  1
#define NGX_HTTP_LLMCACHE_REDIS_READY       2

#define NGX_HTTP_LLMCACHE_BACKOFF_MIN       50
#define NGX_HTTP_LLMCACHE_BACKOFF_MAX       1000


struct ngx_http_llmcache_op_s {
    ngx_http_request_t             *request;   /* NULL once detached */
    ngx_http_llmcache_reply_pt      handler;
};


typedef struct {
    redisAsyncContext              *ac;
    ngx_connection_t               *conn;
    ngx_uint_t                      state;
    ngx_msec_t                      backoff;
    ngx_msec_t                      retry_at;
    ngx_uint_t                      failing;   /* an incident is open */
    ngx_log_t                      *log;
    ngx_http_llmcache_main_conf_t  *lmcf;
} ngx_http_llmcache_redis_t;


static ngx_int_t ngx_http_llmcache_redis_connect(void);
static void ngx_http_llmcache_redis_failed(ngx_log_t *log,
    const char *what, const char *detail);
static void ngx_http_llmcache_redis_ok(void);
static void ngx_http_llmcache_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_llmcache_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_http_llmcache_redis_setup_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_llmcache_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_llmcache_redis_send_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_llmcache_redis_timeout(ngx_event_t *ev);
static void ngx_http_llmcache_redis_cleanup_request(void *data);
static void ngx_http_llmcache_redis_read_handler(ngx_event_t *ev);
static void ngx_http_llmcache_redis_write_handler(ngx_event_t *ev);
static void ngx_http_llmcache_redis_add_read(void *data);
static void ngx_http_llmcache_redis_del_read(void *data);
static void ngx_http_llmcache_redis_add_write(void *data);
static void ngx_http_llmcache_redis_del_write(void *data);
static void ngx_http_llmcache_redis_cleanup(void *data);


static ngx_http_llmcache_redis_t  ngx_http_llmcache_redis;
static ngx_log_t                  ngx_http_llmcache_redis_log;


ngx_int_t
ngx_http_llmcache_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_llmcache_main_conf_t  *lmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_llmcache_module);
    if (lmcf == NULL || !lmcf->enabled) {
        return NGX_OK;
    }

    ngx_memzero(&ngx_http_llmcache_redis, sizeof(ngx_http_llmcache_redis_t));

    /* the connection's own log, so its action does not leak elsewhere */

    ngx_http_llmcache_redis_log = *cycle->log;
    ngx_http_llmcache_redis_log.action = "talking to llmcache redis";

    ngx_http_llmcache_redis.lmcf = lmcf;
    ngx_http_llmcache_redis.log = &ngx_http_llmcache_redis_log;
    ngx_http_llmcache_redis.backoff = NGX_HTTP_LLMCACHE_BACKOFF_MIN;

    /* a connection refused at start-up is retried on the first request */

    (void) ngx_http_llmcache_redis_connect();

    return NGX_OK;
}


void
ngx_http_llmcache_redis_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_llmcache_redis.ac) {
        redisAsyncFree(ngx_http_llmcache_redis.ac);
        ngx_http_llmcache_redis.ac = NULL;
    }
}


/*
 * Sends a command for request r.  NGX_OK: the reply (or NULL on failure or
 * timeout) will reach handler, and the request waits; NGX_DECLINED: Redis is
 * not available now, go on without it.
 */

ngx_int_t
ngx_http_llmcache_redis_request(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_reply_pt handler,
    int argc, const char **argv, const size_t *argvlen)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_llmcache_op_t         *op;
    ngx_http_llmcache_main_conf_t  *lmcf;

    if (ngx_http_llmcache_redis_connect() != NGX_OK) {
        return NGX_DECLINED;
    }

    op = ngx_alloc(sizeof(ngx_http_llmcache_op_t), r->connection->log);
    if (op == NULL) {
        return NGX_DECLINED;
    }

    op->request = r;
    op->handler = handler;

    if (redisAsyncCommandArgv(ngx_http_llmcache_redis.ac,
                              ngx_http_llmcache_redis_reply, op,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        ngx_http_llmcache_redis_failed(r->connection->log,
                                       "command failed", "");
        return NGX_DECLINED;
    }

    if (ctx->timer.handler == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            /* the op stays attached; harmless only with a cleanup: detach */
            op->request = NULL;
            return NGX_DECLINED;
        }

        cln->handler = ngx_http_llmcache_redis_cleanup_request;
        cln->data = ctx;

        ctx->timer.handler = ngx_http_llmcache_redis_timeout;
        ctx->timer.data = r;
        ctx->timer.log = r->connection->log;
    }

    lmcf = ngx_http_llmcache_redis.lmcf;

    ctx->op = op;
    ngx_add_timer(&ctx->timer, lmcf->timeout);

    return NGX_OK;
}


/* A command nobody waits for (storing): errors are logged, that is all. */

ngx_int_t
ngx_http_llmcache_redis_send(ngx_log_t *log, int argc, const char **argv,
    const size_t *argvlen)
{
    if (ngx_http_llmcache_redis_connect() != NGX_OK) {
        return NGX_DECLINED;
    }

    if (redisAsyncCommandArgv(ngx_http_llmcache_redis.ac,
                              ngx_http_llmcache_redis_send_reply, NULL,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_http_llmcache_redis_failed(log, "command failed", "");
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_llmcache_redis_detach(ngx_http_llmcache_ctx_t *ctx)
{
    if (ctx->op) {
        ctx->op->request = NULL;
        ctx->op = NULL;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


static void
ngx_http_llmcache_redis_cleanup_request(void *data)
{
    ngx_http_llmcache_redis_detach(data);
}


static void
ngx_http_llmcache_redis_timeout(ngx_event_t *ev)
{
    ngx_http_request_t       *r;
    ngx_http_llmcache_ctx_t  *ctx;
    ngx_http_llmcache_op_t   *op;

    r = ev->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    op = ctx->op;
    if (op == NULL) {
        return;
    }

    ngx_http_llmcache_metrics_redis(NGX_HTTP_LLMCACHE_M_REDIS_TIMEOUT);
    ngx_http_llmcache_redis_failed(r->connection->log, "timed out", "");

    ngx_http_llmcache_redis_detach(ctx);

    op->handler(r, NULL);
}


static void
ngx_http_llmcache_redis_reply(redisAsyncContext *ac, void *rep,
    void *privdata)
{
    redisReply              *reply = rep;
    ngx_http_request_t      *r;
    ngx_http_llmcache_op_t  *op = privdata;
    ngx_http_llmcache_ctx_t *ctx;

    r = op->request;
    op->request = NULL;

    if (reply != NULL) {
        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_http_llmcache_redis_failed(r ? r->connection->log
                                             : ngx_http_llmcache_redis.log,
                                           "answered", reply->str);
            reply = NULL;

        } else {
            ngx_http_llmcache_redis_ok();
        }
    }

    if (r != NULL) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);
        ctx->op = NULL;

        if (ctx->timer.timer_set) {
            ngx_del_timer(&ctx->timer);
        }

        op->handler(r, reply);
    }

    ngx_free(op);
}


static void
ngx_http_llmcache_redis_send_reply(redisAsyncContext *ac, void *rep,
    void *privdata)
{
    redisReply  *reply = rep;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_llmcache_redis_failed(ngx_http_llmcache_redis.log,
                                       "answered", reply->str);
        return;
    }

    ngx_http_llmcache_redis_ok();
}


static void
ngx_http_llmcache_redis_failed(ngx_log_t *log, const char *what,
    const char *detail)
{
    ngx_http_llmcache_main_conf_t  *lmcf = ngx_http_llmcache_redis.lmcf;

    if (ngx_strcmp(what, "timed out") != 0) {
        ngx_http_llmcache_metrics_redis(NGX_HTTP_LLMCACHE_M_REDIS_ERROR);
    }

    if (ngx_http_llmcache_redis.failing) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                       "llmcache: redis %V still failing: %s %s",
                       &lmcf->addr, what, detail);
        return;
    }

    ngx_http_llmcache_redis.failing = 1;

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "llmcache: redis %V %s%s%s; requests go upstream "
                  "uncached until it recovers",
                  &lmcf->addr, what, detail[0] ? ": " : "", detail);
}


static void
ngx_http_llmcache_redis_ok(void)
{
    if (!ngx_http_llmcache_redis.failing) {
        return;
    }

    ngx_http_llmcache_redis.failing = 0;

    ngx_log_error(NGX_LOG_NOTICE, ngx_http_llmcache_redis.log, 0,
                  "llmcache: redis %V is answering again",
                  &ngx_http_llmcache_redis.lmcf->addr);
}


static ngx_int_t
ngx_http_llmcache_redis_connect(void)
{
    int                             argc;
    char                            db[NGX_INT_T_LEN];
    size_t                          argvlen[2];
    ngx_log_t                      *log;
    const char                     *argv[2];
    ngx_connection_t               *c;
    redisAsyncContext              *ac;
    ngx_http_llmcache_main_conf_t  *lmcf;
    ngx_http_llmcache_redis_t      *rd = &ngx_http_llmcache_redis;

    if (rd->state != NGX_HTTP_LLMCACHE_REDIS_DOWN) {
        return NGX_OK;
    }

    lmcf = rd->lmcf;
    if (lmcf == NULL) {
        return NGX_DECLINED;
    }

    if (rd->retry_at && (ngx_msec_int_t) (ngx_current_msec - rd->retry_at) < 0)
    {
        return NGX_DECLINED;
    }

    log = rd->log;

    /* the next attempt, should this one fail */

    rd->retry_at = ngx_current_msec + rd->backoff;
    rd->backoff = ngx_min(rd->backoff * 2, NGX_HTTP_LLMCACHE_BACKOFF_MAX);

    if (lmcf->port) {
        ac = redisAsyncConnect((char *) lmcf->host.data, (int) lmcf->port);

    } else {
        ac = redisAsyncConnectUnix((char *) lmcf->unix_path.data);
    }

    if (ac == NULL) {
        ngx_http_llmcache_redis_failed(log, "connect failed",
                                       "out of memory");
        return NGX_DECLINED;
    }

    if (ac->err) {
        ngx_http_llmcache_redis_failed(log, "connect failed", ac->errstr);
        redisAsyncFree(ac);
        return NGX_DECLINED;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return NGX_DECLINED;
    }

    c->data = ac;
    c->log = log;
    c->read->handler = ngx_http_llmcache_redis_read_handler;
    c->write->handler = ngx_http_llmcache_redis_write_handler;
    c->read->log = log;
    c->write->log = log;

    ac->data = rd;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_llmcache_redis_add_read;
    ac->ev.delRead = ngx_http_llmcache_redis_del_read;
    ac->ev.addWrite = ngx_http_llmcache_redis_add_write;
    ac->ev.delWrite = ngx_http_llmcache_redis_del_write;
    ac->ev.cleanup = ngx_http_llmcache_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_llmcache_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_llmcache_redis_disconnected);

    rd->ac = ac;
    rd->conn = c;
    rd->state = NGX_HTTP_LLMCACHE_REDIS_CONNECTING;

    /* AUTH and SELECT go first; requests' commands queue behind them */

    if (lmcf->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (const char *) lmcf->password.data;
        argvlen[1] = lmcf->password.len;
        argc = 2;

        redisAsyncCommandArgv(ac, ngx_http_llmcache_redis_setup_reply,
                              (void *) "AUTH", argc, argv, argvlen);
    }

    if (lmcf->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = db;
        argvlen[1] = ngx_sprintf((u_char *) db, "%i", lmcf->db)
                     - (u_char *) db;
        argc = 2;

        redisAsyncCommandArgv(ac, ngx_http_llmcache_redis_setup_reply,
                              (void *) "SELECT", argc, argv, argvlen);
    }

    return NGX_OK;
}


static void
ngx_http_llmcache_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        ngx_http_llmcache_redis_failed(rd->log, "connect failed",
                                       ac->errstr);
        rd->ac = NULL;
        rd->conn = NULL;
        rd->state = NGX_HTTP_LLMCACHE_REDIS_DOWN;
        return;
    }

    rd->state = NGX_HTTP_LLMCACHE_REDIS_READY;
    rd->backoff = NGX_HTTP_LLMCACHE_BACKOFF_MIN;

    ngx_http_llmcache_metrics_redis(NGX_HTTP_LLMCACHE_M_REDIS_RECONNECT);
    rd->retry_at = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "llmcache: redis %V connected", &rd->lmcf->addr);
}


static void
ngx_http_llmcache_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    if (status != REDIS_OK) {
        ngx_http_llmcache_redis_failed(rd->log, "connection lost",
                                       ac->errstr ? ac->errstr : "");
    }

    rd->ac = NULL;
    rd->conn = NULL;
    rd->state = NGX_HTTP_LLMCACHE_REDIS_DOWN;
}


static void
ngx_http_llmcache_redis_setup_reply(redisAsyncContext *ac, void *rep,
    void *privdata)
{
    redisReply  *reply = rep;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_http_llmcache_redis_failed(ngx_http_llmcache_redis.log,
                                   privdata, reply->str);

    redisAsyncDisconnect(ac);
}


static void
ngx_http_llmcache_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_llmcache_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
}


/*
 * hiredis reads once per call, so the events are level-triggered: a reply
 * larger than one read is not left waiting for an edge that never comes.
 */

static void
ngx_http_llmcache_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_llmcache_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_llmcache_redis_add_write(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->write->active) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_llmcache_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


/* hiredis frees the context (and closes the fd) after this returns */

static void
ngx_http_llmcache_redis_cleanup(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    if (ngx_http_llmcache_redis.conn == c) {
        ngx_http_llmcache_redis.conn = NULL;
        ngx_http_llmcache_redis.ac = NULL;
        ngx_http_llmcache_redis.state = NGX_HTTP_LLMCACHE_REDIS_DOWN;
    }
}
