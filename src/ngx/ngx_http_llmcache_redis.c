/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * hiredis' async API on nginx events.  Each worker process keeps one
 * connection per Redis node, shared by all requests (hiredis pipelines
 * their commands), reconnected with backoff.  With "cluster", the slot map
 * comes from CLUSTER SLOTS, each command goes to the node of its key's slot
 * (every key of a scope carries the scope's hash tag), MOVED updates the
 * map and resends, ASK resends once after ASKING, and the map is refreshed
 * in the background, at most once a second, never per request.  A node
 * that is down makes only its slots MISS.
 *
 * Debian's hiredis 0.14 has no timer hook, so per-command timeouts are
 * nginx timers in the request context; a reply arriving after its request
 * timed out or went away finds its operation detached and is dropped.
 * Trouble is logged once per incident and node: the first failure after a
 * success at "error", the rest at "debug", and the recovery at "notice".
 */


#include "ngx_http_llmcache_module.h"

#include "llmc_slot.h"


#define NGX_HTTP_LLMCACHE_REDIS_DOWN        0
#define NGX_HTTP_LLMCACHE_REDIS_CONNECTING  1
#define NGX_HTTP_LLMCACHE_REDIS_READY       2

#define NGX_HTTP_LLMCACHE_BACKOFF_MIN       50
#define NGX_HTTP_LLMCACHE_BACKOFF_MAX       1000
#define NGX_HTTP_LLMCACHE_MAX_NODES         64
#define NGX_HTTP_LLMCACHE_MAX_REDIRECTS     3
#define NGX_HTTP_LLMCACHE_REFRESH_EVERY     1000


typedef struct {
    u_char                          name[NGX_SOCKADDR_STRLEN + 8];
    u_char                          host[NGX_SOCKADDR_STRLEN];
    ngx_int_t                       port;       /* 0: unix socket */
    u_char                         *unix_path;
    redisAsyncContext              *ac;
    ngx_connection_t               *conn;
    ngx_uint_t                      state;
    ngx_uint_t                      failing;    /* an incident is open */
    ngx_msec_t                      backoff;
    ngx_msec_t                      retry_at;
} ngx_http_llmcache_node_t;


struct ngx_http_llmcache_op_s {
    ngx_http_request_t             *request;    /* NULL once detached */
    ngx_http_llmcache_reply_pt      handler;    /* NULL: nobody waits */
    char                           *cmd;        /* formatted, for resends */
    int                             len;
    ngx_uint_t                      redirects;
    ngx_http_llmcache_node_t       *node;
};


typedef struct {
    ngx_http_llmcache_node_t        nodes[NGX_HTTP_LLMCACHE_MAX_NODES];
    ngx_uint_t                      n_nodes;
    ngx_uint_t                      n_seeds;
    int8_t                          slots[LLMC_SLOTS];  /* node, -1 none */
    ngx_msec_t                      refresh_at;
    ngx_uint_t                      refreshing;
    ngx_log_t                      *log;
    ngx_http_llmcache_main_conf_t  *lmcf;
} ngx_http_llmcache_redis_t;


static ngx_int_t ngx_http_llmcache_redis_dispatch(
    ngx_http_llmcache_op_t *op, int slot, ngx_int_t node_index);
static int ngx_http_llmcache_redis_slot(int argc, const char **argv,
    const size_t *argvlen);
static ngx_http_llmcache_op_t *ngx_http_llmcache_redis_op(ngx_log_t *log,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_http_llmcache_redis_op_free(ngx_http_llmcache_op_t *op);
static int ngx_http_llmcache_redis_format(char **out, int argc,
    const char **argv, const size_t *argvlen);
static ngx_int_t ngx_http_llmcache_redis_redirect(ngx_http_llmcache_op_t *op,
    redisReply *reply);
static ngx_http_llmcache_node_t *ngx_http_llmcache_redis_node(u_char *host,
    size_t len, ngx_int_t port);
static void ngx_http_llmcache_redis_refresh(void);
static void ngx_http_llmcache_redis_slots(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_http_llmcache_redis_connect(
    ngx_http_llmcache_node_t *node);
static void ngx_http_llmcache_redis_failed(ngx_http_llmcache_node_t *node,
    ngx_log_t *log, const char *what, const char *detail);
static void ngx_http_llmcache_redis_ok(ngx_http_llmcache_node_t *node);
static void ngx_http_llmcache_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_llmcache_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_http_llmcache_redis_setup_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_llmcache_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
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
    ngx_uint_t                      i;
    ngx_http_llmcache_node_t       *node;
    ngx_http_llmcache_addr_t       *addr;
    ngx_http_llmcache_redis_t      *rd = &ngx_http_llmcache_redis;
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

    ngx_memzero(rd, sizeof(ngx_http_llmcache_redis_t));
    ngx_memset(rd->slots, 0xff, sizeof(rd->slots));

    /* the connections' own log, so their action does not leak elsewhere */

    ngx_http_llmcache_redis_log = *cycle->log;
    ngx_http_llmcache_redis_log.action = "talking to llmcache redis";

    rd->lmcf = lmcf;
    rd->log = &ngx_http_llmcache_redis_log;

    addr = lmcf->addrs->elts;

    for (i = 0; i < lmcf->addrs->nelts; i++) {
        node = &rd->nodes[rd->n_nodes++];

        ngx_cpystrn(node->name, addr[i].name.data,
                    ngx_min(addr[i].name.len + 1, sizeof(node->name)));
        ngx_cpystrn(node->host, addr[i].host.data,
                    ngx_min(addr[i].host.len + 1, sizeof(node->host)));
        node->port = addr[i].port;
        node->unix_path = addr[i].unix_path.data;
        node->backoff = NGX_HTTP_LLMCACHE_BACKOFF_MIN;
    }

    rd->n_seeds = rd->n_nodes;

    /* a connection refused at start-up is retried on the first request */

    (void) ngx_http_llmcache_redis_connect(&rd->nodes[0]);

    if (lmcf->cluster) {
        ngx_http_llmcache_redis_refresh();
    }

    return NGX_OK;
}


void
ngx_http_llmcache_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    for (i = 0; i < rd->n_nodes; i++) {
        if (rd->nodes[i].ac) {
            redisAsyncFree(rd->nodes[i].ac);
            rd->nodes[i].ac = NULL;
        }
    }
}


/*
 * Sends a command for request r.  NGX_OK: the reply (or NULL on failure or
 * timeout) will reach handler, and the request waits; NGX_DECLINED: Redis is
 * not available now, go on without it.  A second command sent while the
 * first is pending is pipelined behind it: its reply reaches its handler
 * after the first one's, unless the request detaches it meanwhile.  If it
 * is answered first (the first one was redirected), it is dropped and
 * ctx->op is NULL when the first one's handler runs.
 */

ngx_int_t
ngx_http_llmcache_redis_request(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_reply_pt handler,
    int argc, const char **argv, const size_t *argvlen)
{
    return ngx_http_llmcache_redis_request_node(r, ctx, -1, handler, argc,
                                                argv, argvlen);
}


/* the same, to node n of ngx_http_llmcache_redis_scan_nodes() */

ngx_int_t
ngx_http_llmcache_redis_request_node(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_int_t n,
    ngx_http_llmcache_reply_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_pool_cleanup_t      *cln;
    ngx_http_llmcache_op_t  *op;

    if (ctx->timer.handler == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_DECLINED;
        }

        cln->handler = ngx_http_llmcache_redis_cleanup_request;
        cln->data = ctx;

        ctx->timer.handler = ngx_http_llmcache_redis_timeout;
        ctx->timer.data = r;
        ctx->timer.log = r->connection->log;
    }

    if (ctx->op_next) {
        return NGX_DECLINED;
    }

    op = ngx_http_llmcache_redis_op(r->connection->log, argc, argv, argvlen);
    if (op == NULL) {
        return NGX_DECLINED;
    }

    op->request = r;
    op->handler = handler;

    if (ngx_http_llmcache_redis_dispatch(op,
            ngx_http_llmcache_redis_slot(argc, argv, argvlen), n)
        != NGX_OK)
    {
        ngx_http_llmcache_redis_op_free(op);
        return NGX_DECLINED;
    }

    if (ctx->op) {
        /* pipelined: its reply follows the first one's, on the timer
           already running */
        ctx->op_next = op;
        return NGX_OK;
    }

    ctx->op = op;
    ngx_add_timer(&ctx->timer, ngx_http_llmcache_redis.lmcf->timeout);

    return NGX_OK;
}


/* A command nobody waits for (storing): errors are logged, that is all. */

ngx_int_t
ngx_http_llmcache_redis_send(ngx_log_t *log, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_http_llmcache_op_t  *op;

    op = ngx_http_llmcache_redis_op(log, argc, argv, argvlen);
    if (op == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_llmcache_redis_dispatch(op,
            ngx_http_llmcache_redis_slot(argc, argv, argvlen), -1)
        != NGX_OK)
    {
        ngx_http_llmcache_redis_op_free(op);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The nodes a SCAN must visit to see every key: the masters of the slot
 * map in cluster mode, else the one node, as -1.  Writes up to max
 * indices; returns how many, 0 while the slot map is not known yet (it is
 * asked for: try again shortly).
 */

ngx_uint_t
ngx_http_llmcache_redis_scan_nodes(ngx_int_t *nodes, ngx_uint_t max)
{
    ngx_uint_t                  i, n, s;
    u_char                      master[NGX_HTTP_LLMCACHE_MAX_NODES];
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    if (rd->lmcf == NULL || !rd->lmcf->cluster) {
        nodes[0] = -1;
        return 1;
    }

    ngx_memzero(master, sizeof(master));
    n = 0;

    for (s = 0; s < LLMC_SLOTS; s++) {
        if (rd->slots[s] >= 0 && !master[(int) rd->slots[s]]) {
            master[(int) rd->slots[s]] = 1;
            n++;
        }
    }

    if (n == 0) {
        ngx_http_llmcache_redis_refresh();
        return 0;
    }

    for (i = 0, s = 0; i < rd->n_nodes && s < max; i++) {
        if (master[i]) {
            nodes[s++] = (ngx_int_t) i;
        }
    }

    return s;
}


void
ngx_http_llmcache_redis_detach(ngx_http_llmcache_ctx_t *ctx)
{
    if (ctx->op) {
        ctx->op->request = NULL;
        ctx->op = NULL;
    }

    if (ctx->op_next) {
        ctx->op_next->request = NULL;
        ctx->op_next = NULL;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


static ngx_http_llmcache_op_t *
ngx_http_llmcache_redis_op(ngx_log_t *log, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_http_llmcache_op_t  *op;

    op = ngx_calloc(sizeof(ngx_http_llmcache_op_t), log);
    if (op == NULL) {
        return NULL;
    }

    /* kept formatted: a redirected command is sent again as it is */

    op->len = ngx_http_llmcache_redis_format(&op->cmd, argc, argv, argvlen);
    if (op->len < 0) {
        ngx_free(op);
        return NULL;
    }

    return op;
}


/*
 * A command in RESP, as redisFormatCommandArgv() writes it, without its
 * sprintf() per argument (a lookup's commands carry a few dozen); in a
 * malloc()ed buffer, which hiredis' free() releases like its own.
 */

static u_char *
ngx_http_llmcache_redis_num(u_char *p, char type, size_t n)
{
    u_char  tmp[NGX_SIZE_T_LEN], *t = tmp + sizeof(tmp);

    do {
        *--t = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    *p++ = (u_char) type;
    p = ngx_cpymem(p, t, tmp + sizeof(tmp) - t);
    *p++ = CR;
    *p++ = LF;

    return p;
}


static int
ngx_http_llmcache_redis_format(char **out, int argc, const char **argv,
    const size_t *argvlen)
{
    int      i;
    size_t   len;
    u_char  *buf, *p;

    len = 1 + NGX_SIZE_T_LEN + 2;

    for (i = 0; i < argc; i++) {
        len += 1 + NGX_SIZE_T_LEN + 2 + argvlen[i] + 2;
    }

    buf = malloc(len);
    if (buf == NULL) {
        return -1;
    }

    p = ngx_http_llmcache_redis_num(buf, '*', (size_t) argc);

    for (i = 0; i < argc; i++) {
        p = ngx_http_llmcache_redis_num(p, '$', argvlen[i]);
        p = ngx_cpymem(p, argv[i], argvlen[i]);
        *p++ = CR;
        *p++ = LF;
    }

    *out = (char *) buf;

    return (int) (p - buf);
}


static void
ngx_http_llmcache_redis_op_free(ngx_http_llmcache_op_t *op)
{
    free(op->cmd);
    ngx_free(op);
}


/* the slot of the first key-like argument (they all carry a hash tag) */

static int
ngx_http_llmcache_redis_slot(int argc, const char **argv,
    const size_t *argvlen)
{
    int  i;

    if (!ngx_http_llmcache_redis.lmcf->cluster) {
        return -1;
    }

    for (i = 1; i < argc; i++) {
        if (argvlen[i] > sizeof(LLMC_KEY_PREFIX)
            && ngx_strncmp(argv[i], LLMC_KEY_PREFIX "{",
                           sizeof(LLMC_KEY_PREFIX)) == 0)
        {
            return (int) llmc_key_slot(argv[i], argvlen[i]);
        }
    }

    return -1;
}


static ngx_int_t
ngx_http_llmcache_redis_dispatch(ngx_http_llmcache_op_t *op, int slot,
    ngx_int_t node_index)
{
    ngx_uint_t                  i;
    ngx_http_llmcache_node_t   *node;
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    if (rd->lmcf == NULL) {
        return NGX_DECLINED;
    }

    node = NULL;

    if (node_index >= 0 && (ngx_uint_t) node_index < rd->n_nodes) {
        node = &rd->nodes[node_index];

    } else if (slot >= 0 && rd->slots[slot] >= 0) {
        node = &rd->nodes[(int) rd->slots[slot]];

    } else {
        /* any node answers; a wrong one redirects: one connected or on
           its way, else the first that can be tried now */
        for (i = 0; i < rd->n_nodes; i++) {
            if (rd->nodes[i].state != NGX_HTTP_LLMCACHE_REDIS_DOWN) {
                node = &rd->nodes[i];
                break;
            }
        }

        for (i = 0; node == NULL && i < rd->n_nodes; i++) {
            if (ngx_http_llmcache_redis_connect(&rd->nodes[i]) == NGX_OK) {
                node = &rd->nodes[i];
            }
        }

        if (node == NULL) {
            return NGX_DECLINED;
        }
    }

    if (ngx_http_llmcache_redis_connect(node) != NGX_OK) {
        /* a node waiting to be retried: has its replica taken over? */
        ngx_http_llmcache_redis_refresh();
        return NGX_DECLINED;
    }

    op->node = node;

    if (redisAsyncFormattedCommand(node->ac, ngx_http_llmcache_redis_reply,
                                   op, op->cmd, op->len)
        != REDIS_OK)
    {
        ngx_http_llmcache_redis_failed(node, rd->log, "command failed", "");
        return NGX_DECLINED;
    }

    return NGX_OK;
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
    ngx_http_llmcache_op_t   *op;
    ngx_http_llmcache_ctx_t  *ctx;

    r = ev->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    op = ctx->op;
    if (op == NULL) {
        return;
    }

    ngx_http_llmcache_metrics_redis(NGX_HTTP_LLMCACHE_M_REDIS_TIMEOUT);
    ngx_http_llmcache_redis_failed(op->node, r->connection->log, "timed out",
                                   "");

    ngx_http_llmcache_redis_detach(ctx);

    op->handler(r, NULL);
}


static void
ngx_http_llmcache_redis_reply(redisAsyncContext *ac, void *rep,
    void *privdata)
{
    redisReply               *reply = rep;
    ngx_log_t                *log;
    ngx_http_request_t       *r;
    ngx_http_llmcache_op_t   *op = privdata;
    ngx_http_llmcache_ctx_t  *ctx;

    r = op->request;
    log = r ? r->connection->log : ngx_http_llmcache_redis.log;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {

        if (ngx_http_llmcache_redis_redirect(op, reply) == NGX_OK) {
            /* sent again to the node that owns the slot */
            return;
        }

        ngx_http_llmcache_redis_failed(op->node, log, "answered", reply->str);
        reply = NULL;

    } else if (reply != NULL) {
        ngx_http_llmcache_redis_ok(op->node);
    }

    if (r != NULL && op->handler) {
        op->request = NULL;

        ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

        if (op == ctx->op_next) {
            /* ahead of the first command, which was redirected */
            ctx->op_next = NULL;
            ngx_http_llmcache_redis_op_free(op);
            return;
        }

        /* a pipelined command is waited for next, on the same timer */
        ctx->op = ctx->op_next;
        ctx->op_next = NULL;

        if (ctx->op == NULL && ctx->timer.timer_set) {
            ngx_del_timer(&ctx->timer);
        }

        op->handler(r, reply);
    }

    ngx_http_llmcache_redis_op_free(op);
}


/* MOVED <slot> <host>:<port> and ASK <slot> <host>:<port> */

static ngx_int_t
ngx_http_llmcache_redis_redirect(ngx_http_llmcache_op_t *op,
    redisReply *reply)
{
    u_char                     *p, *last, *host, *colon;
    ngx_int_t                   slot, port;
    ngx_uint_t                  ask;
    ngx_http_llmcache_node_t   *node;
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (reply->len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        ask = 0;
        p += 6;

    } else if (reply->len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    if (!rd->lmcf->cluster
        || op->redirects++ >= NGX_HTTP_LLMCACHE_MAX_REDIRECTS)
    {
        return NGX_DECLINED;
    }

    host = ngx_strlchr(p, last, ' ');
    if (host == NULL) {
        return NGX_DECLINED;
    }

    slot = ngx_atoi(p, host - p);
    host++;

    colon = NULL;
    for (p = host; p < last; p++) {
        if (*p == ':') {
            colon = p;      /* the last one: IPv6 addresses have more */
        }
    }

    if (slot < 0 || slot >= LLMC_SLOTS || colon == NULL) {
        return NGX_DECLINED;
    }

    port = ngx_atoi(colon + 1, last - colon - 1);
    if (port < 1 || port > 65535) {
        return NGX_DECLINED;
    }

    node = ngx_http_llmcache_redis_node(host, colon - host, port);
    if (node == NULL || ngx_http_llmcache_redis_connect(node) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ask) {
        if (redisAsyncCommand(node->ac, NULL, NULL, "ASKING") != REDIS_OK) {
            return NGX_DECLINED;
        }

    } else {
        rd->slots[slot] = (int8_t) (node - rd->nodes);
        ngx_http_llmcache_redis_refresh();
    }

    op->node = node;

    if (redisAsyncFormattedCommand(node->ac, ngx_http_llmcache_redis_reply,
                                   op, op->cmd, op->len)
        != REDIS_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* a node by address, added when new */

static ngx_http_llmcache_node_t *
ngx_http_llmcache_redis_node(u_char *host, size_t len, ngx_int_t port)
{
    ngx_uint_t                  i;
    ngx_http_llmcache_node_t   *node;
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    if (len == 0 || len >= sizeof(node->host)) {
        return NULL;
    }

    for (i = 0; i < rd->n_nodes; i++) {
        node = &rd->nodes[i];

        if (node->port == port && ngx_strlen(node->host) == len
            && ngx_strncmp(node->host, host, len) == 0)
        {
            return node;
        }
    }

    if (rd->n_nodes == NGX_HTTP_LLMCACHE_MAX_NODES) {
        return NULL;
    }

    node = &rd->nodes[rd->n_nodes++];
    ngx_memzero(node, sizeof(ngx_http_llmcache_node_t));

    ngx_cpystrn(node->host, host, len + 1);
    ngx_snprintf(node->name, sizeof(node->name) - 1, "%*s:%i%Z",
                 len, host, port);
    node->port = port;
    node->backoff = NGX_HTTP_LLMCACHE_BACKOFF_MIN;

    return node;
}


/* the slot map from CLUSTER SLOTS, in the background, at most once a second */

static void
ngx_http_llmcache_redis_refresh(void)
{
    ngx_uint_t                  i, n;
    ngx_http_llmcache_node_t   *node;
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    if (!rd->lmcf->cluster || rd->refreshing
        || (rd->refresh_at
            && (ngx_msec_int_t) (ngx_current_msec - rd->refresh_at) < 0))
    {
        return;
    }

    rd->refresh_at = ngx_current_msec + NGX_HTTP_LLMCACHE_REFRESH_EVERY;

    /*
     * ask a node that is up, starting with a different one each time; only
     * when none is, one that can be tried (a dead master retried at the
     * wrong moment would otherwise take every refresh)
     */

    for (n = 0; n < 2 * rd->n_nodes; n++) {
        i = (ngx_current_msec / NGX_HTTP_LLMCACHE_REFRESH_EVERY + n)
            % rd->n_nodes;
        node = &rd->nodes[i];

        if (n < rd->n_nodes) {
            if (node->state != NGX_HTTP_LLMCACHE_REDIS_READY
                || node->failing)
            {
                continue;
            }

        } else if (ngx_http_llmcache_redis_connect(node) != NGX_OK) {
            continue;
        }

        if (redisAsyncCommand(node->ac, ngx_http_llmcache_redis_slots, node,
                              "CLUSTER SLOTS")
            == REDIS_OK)
        {
            rd->refreshing = 1;
            return;
        }
    }
}


static void
ngx_http_llmcache_redis_slots(redisAsyncContext *ac, void *rep,
    void *privdata)
{
    size_t                      i;
    ngx_int_t                   start, end, s;
    redisReply                 *reply = rep, *range, *master;
    ngx_http_llmcache_node_t   *node;
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

    rd->refreshing = 0;

    if (reply == NULL) {
        /* the node went away before answering: ask another one soon */
        rd->refresh_at = ngx_current_msec + NGX_HTTP_LLMCACHE_BACKOFF_MIN;
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_http_llmcache_redis_failed(privdata, rd->log,
                                           "answered CLUSTER SLOTS",
                                           reply->str);
        }

        return;
    }

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[2]->type != REDIS_REPLY_ARRAY
            || range->element[2]->elements < 2
            || range->element[2]->element[0]->type != REDIS_REPLY_STRING
            || range->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
        {
            continue;
        }

        start = range->element[0]->integer;
        end = range->element[1]->integer;
        master = range->element[2];

        if (start < 0 || end >= LLMC_SLOTS || start > end) {
            continue;
        }

        node = ngx_http_llmcache_redis_node(
                   (u_char *) master->element[0]->str,
                   master->element[0]->len, master->element[1]->integer);
        if (node == NULL) {
            continue;
        }

        for (s = start; s <= end; s++) {
            rd->slots[s] = (int8_t) (node - rd->nodes);
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "llmcache: redis cluster map: %ui nodes", rd->n_nodes);
}


static void
ngx_http_llmcache_redis_failed(ngx_http_llmcache_node_t *node, ngx_log_t *log,
    const char *what, const char *detail)
{
    if (ngx_strcmp(what, "timed out") != 0) {
        ngx_http_llmcache_metrics_redis(NGX_HTTP_LLMCACHE_M_REDIS_ERROR);
    }

    /*
     * A failed-over cluster has a new map: ask for it on every failure (at
     * most once a second), as the first one may come before the replica
     * has taken over.
     */
    ngx_http_llmcache_redis_refresh();

    if (node->failing) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                       "llmcache: redis %s still failing: %s %s",
                       node->name, what, detail);
        return;
    }

    node->failing = 1;

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "llmcache: redis %s %s%s%s; requests go upstream "
                  "uncached until it recovers",
                  node->name, what, detail[0] ? ": " : "", detail);
}


static void
ngx_http_llmcache_redis_ok(ngx_http_llmcache_node_t *node)
{
    if (!node->failing) {
        return;
    }

    node->failing = 0;

    ngx_log_error(NGX_LOG_NOTICE, ngx_http_llmcache_redis.log, 0,
                  "llmcache: redis %s is answering again", node->name);
}


static ngx_int_t
ngx_http_llmcache_redis_connect(ngx_http_llmcache_node_t *node)
{
    int                             argc;
    char                            db[NGX_INT_T_LEN];
    size_t                          argvlen[2];
    ngx_log_t                      *log;
    const char                     *argv[2];
    ngx_connection_t               *c;
    redisAsyncContext              *ac;
    ngx_http_llmcache_main_conf_t  *lmcf;

    if (node->state != NGX_HTTP_LLMCACHE_REDIS_DOWN) {
        return NGX_OK;
    }

    lmcf = ngx_http_llmcache_redis.lmcf;
    log = ngx_http_llmcache_redis.log;

    if (node->retry_at
        && (ngx_msec_int_t) (ngx_current_msec - node->retry_at) < 0)
    {
        return NGX_DECLINED;
    }

    /* the next attempt, should this one fail */

    node->retry_at = ngx_current_msec + node->backoff;
    node->backoff = ngx_min(node->backoff * 2, NGX_HTTP_LLMCACHE_BACKOFF_MAX);

    if (node->port) {
        ac = redisAsyncConnect((char *) node->host, (int) node->port);

    } else {
        ac = redisAsyncConnectUnix((char *) node->unix_path);
    }

    if (ac == NULL) {
        ngx_http_llmcache_redis_failed(node, log, "connect failed",
                                       "out of memory");
        return NGX_DECLINED;
    }

    if (ac->err) {
        ngx_http_llmcache_redis_failed(node, log, "connect failed",
                                       ac->errstr);
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

    ac->data = node;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_llmcache_redis_add_read;
    ac->ev.delRead = ngx_http_llmcache_redis_del_read;
    ac->ev.addWrite = ngx_http_llmcache_redis_add_write;
    ac->ev.delWrite = ngx_http_llmcache_redis_del_write;
    ac->ev.cleanup = ngx_http_llmcache_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_llmcache_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_llmcache_redis_disconnected);

    node->ac = ac;
    node->conn = c;
    node->state = NGX_HTTP_LLMCACHE_REDIS_CONNECTING;

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
    ngx_http_llmcache_node_t  *node = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        ngx_http_llmcache_redis_failed(node, ngx_http_llmcache_redis.log,
                                       "connect failed", ac->errstr);
        node->ac = NULL;
        node->conn = NULL;
        node->state = NGX_HTTP_LLMCACHE_REDIS_DOWN;
        return;
    }

    node->state = NGX_HTTP_LLMCACHE_REDIS_READY;
    node->backoff = NGX_HTTP_LLMCACHE_BACKOFF_MIN;
    node->retry_at = 0;

    ngx_http_llmcache_metrics_redis(NGX_HTTP_LLMCACHE_M_REDIS_RECONNECT);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_http_llmcache_redis.log, 0,
                   "llmcache: redis %s connected", node->name);
}


static void
ngx_http_llmcache_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_llmcache_node_t  *node = ac->data;

    if (status != REDIS_OK) {
        ngx_http_llmcache_redis_failed(node, ngx_http_llmcache_redis.log,
                                       "connection lost",
                                       ac->errstr ? ac->errstr : "");
    }

    node->ac = NULL;
    node->conn = NULL;
    node->state = NGX_HTTP_LLMCACHE_REDIS_DOWN;
}


static void
ngx_http_llmcache_redis_setup_reply(redisAsyncContext *ac, void *rep,
    void *privdata)
{
    redisReply  *reply = rep;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_http_llmcache_redis_failed(ac->data, ngx_http_llmcache_redis.log,
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

    ngx_uint_t                  i;
    ngx_http_llmcache_redis_t  *rd = &ngx_http_llmcache_redis;

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

    for (i = 0; i < rd->n_nodes; i++) {
        if (rd->nodes[i].conn == c) {
            rd->nodes[i].conn = NULL;
            rd->nodes[i].ac = NULL;
            rd->nodes[i].state = NGX_HTTP_LLMCACHE_REDIS_DOWN;
        }
    }
}
