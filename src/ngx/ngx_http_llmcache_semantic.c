/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * Semantic lookup, after the exact key missed: embed the normalized prompt
 * (built in, or an OpenAI-compatible /v1/embeddings endpoint reached by an
 * in-memory subrequest), ask Redis for the LSH candidates of the scope
 * (SUNION of the buckets), then their vectors (and, when there are few,
 * their entries too) in one MGET, re-rank them by exact cosine here, run the
 * guards on the best one, and fetch its entry unless it came along: two
 * round trips (three past NGX_HTTP_LLMCACHE_INLINE_ENTRIES candidates,
 * whose entries could be large), plain commands (a script call costs
 * Redis several times more).  On a MISS the vector and its buckets are
 * stored beside the entry.
 *
 * The candidates are not asked for beside the exact GET: that would save a
 * SEMANTIC hit one round trip but cost every exact HIT of the location the
 * embedding, the signature and a SUNION, 35-60% of the exact HITs'
 * throughput there (bench/hit), while the SEMANTIC hits' did not change.
 *
 * Keys, all in the scope's hash slot:
 *     llmc:{scope}:v:<tag>:<exact>       the vector and normalized text
 *     llmc:{scope}:b:<tag>:<band>:<sig>  an LSH bucket: a set of exacts
 * <tag> names the embedding (builtin and its dimension, or a hash of the
 * endpoint and model), so vectors of different embeddings never meet.
 */


#include "ngx_http_llmcache_module.h"

#include "llmc_embed.h"
#include "llmc_lsh.h"
#include "llmc_guard.h"


/* as strings: they are script arguments */
#define NGX_HTTP_LLMCACHE_MAX_CANDIDATES    64
#define NGX_HTTP_LLMCACHE_INLINE_ENTRIES    4   /* fetched with the vectors */
#define NGX_HTTP_LLMCACHE_MAX_BUCKET_S      "256"
#define NGX_HTTP_LLMCACHE_LSH_CACHED      4


static ngx_int_t ngx_http_llmcache_embed_builtin(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_loc_conf_t *llcf);
static ngx_int_t ngx_http_llmcache_semantic_candidates(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx);
static void ngx_http_llmcache_semantic_ids(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_llmcache_semantic_ranked(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_llmcache_semantic_entry(ngx_http_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_llmcache_embed_remote(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_loc_conf_t *llcf);
static ngx_int_t ngx_http_llmcache_embed_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_llmcache_embed_wait(ngx_http_request_t *r);
static const llmc_lsh_t *ngx_http_llmcache_lsh(int dim);
static void ngx_http_llmcache_semantic_tag(ngx_http_llmcache_ctx_t *ctx,
    ngx_http_llmcache_loc_conf_t *llcf);
static size_t ngx_http_llmcache_semantic_key(ngx_http_llmcache_ctx_t *ctx,
    char *buf, size_t size, const char *kind, const char *tail, size_t len);


/* the vector, and its id in every band's bucket, bounded, with the TTL */

static const char  ngx_http_llmcache_index_script[] =
    "redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) "
    "for i = 2, #KEYS do "
    "redis.call('SADD', KEYS[i], ARGV[1]) "
    "redis.call('EXPIRE', KEYS[i], ARGV[3]) "
    "local over = redis.call('SCARD', KEYS[i]) - tonumber(ARGV[4]) "
    "if over > 0 then redis.call('SPOP', KEYS[i], over) end "
    "end "
    "return 1";

static ngx_str_t  ngx_http_llmcache_post_method = ngx_string("POST");

static llmc_lsh_t  ngx_http_llmcache_lsh_cache[NGX_HTTP_LLMCACHE_LSH_CACHED];


/*
 * After an exact MISS.  NGX_AGAIN: the semantic lookup is under way and
 * ends in ngx_http_llmcache_miss() or a SEMANTIC hit; NGX_DECLINED: no
 * semantic lookup for this request.
 */

ngx_int_t
ngx_http_llmcache_semantic(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx)
{
    ngx_http_llmcache_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    if (!llcf->semantic || ctx->norm.len == 0 || ctx->pml) {
        return NGX_DECLINED;
    }

    ngx_http_llmcache_semantic_tag(ctx, llcf);

    if (llcf->embedding.len) {
        return ngx_http_llmcache_embed_remote(r, ctx, llcf);
    }

    if (ngx_http_llmcache_embed_builtin(r, ctx, llcf) != NGX_OK) {
        return NGX_DECLINED;
    }

    return ngx_http_llmcache_semantic_candidates(r, ctx);
}


static ngx_int_t
ngx_http_llmcache_embed_builtin(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_loc_conf_t *llcf)
{
    ctx->dim = (int) llcf->embedding_dims;
    ctx->vec = ngx_palloc(r->pool, ctx->dim * sizeof(float));
    if (ctx->vec == NULL) {
        return NGX_DECLINED;
    }

    if (llmc_embed_builtin((char *) ctx->norm.data, ctx->norm.len,
                           ctx->vec, ctx->dim)
        != 0)
    {
        ctx->vec = NULL;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_llmcache_semantic_candidates(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx)
{
    int                 i, n, argc;
    char               *buf, bucket[32];
    size_t             *argvlen, len;
    uint32_t            sig[LLMC_LSH_BANDS_MAX];
    const char        **argv;
    const llmc_lsh_t   *lsh;

    lsh = ngx_http_llmcache_lsh(ctx->dim);
    if (lsh == NULL) {
        return NGX_DECLINED;
    }

    llmc_lsh_sign(lsh, ctx->vec, sig);

    n = lsh->bands;
    argc = 1 + n;

    argv = ngx_palloc(r->pool, argc * sizeof(char *));
    argvlen = ngx_palloc(r->pool, argc * sizeof(size_t));
    buf = ngx_pnalloc(r->pool, n * LLMC_REDIS_KEY_MAX);
    if (argv == NULL || argvlen == NULL || buf == NULL) {
        return NGX_DECLINED;
    }

    argv[0] = "SUNION";
    argvlen[0] = 6;

    for (i = 0; i < n; i++) {
        if (llmc_lsh_bucket(i, sig[i], bucket, sizeof(bucket)) < 0) {
            return NGX_DECLINED;
        }

        len = ngx_http_llmcache_semantic_key(ctx, buf, LLMC_REDIS_KEY_MAX,
                                             "b", bucket,
                                             ngx_strlen(bucket));
        argv[1 + i] = buf;
        argvlen[1 + i] = len;
        buf += LLMC_REDIS_KEY_MAX;
    }

    if (ngx_http_llmcache_redis_request(r, ctx,
                                        ngx_http_llmcache_semantic_ids,
                                        argc, argv, argvlen)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


/* the candidates' ids: ask for their vectors, and entries when few */

static void
ngx_http_llmcache_semantic_ids(ngx_http_request_t *r, redisReply *reply)
{
    char                     *buf;
    size_t                    i, n, argc, *argvlen;
    redisReply               *id;
    const char              **argv;
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0)
    {
        ngx_http_llmcache_miss(r, ctx);
        return;
    }

    n = ngx_min(reply->elements, NGX_HTTP_LLMCACHE_MAX_CANDIDATES);
    ctx->cand_entries = n <= NGX_HTTP_LLMCACHE_INLINE_ENTRIES;

    argc = 1 + (ctx->cand_entries ? 2 * n : n);

    argv = ngx_palloc(r->pool, argc * sizeof(char *));
    argvlen = ngx_palloc(r->pool, argc * sizeof(size_t));
    buf = ngx_pnalloc(r->pool, (argc - 1) * LLMC_REDIS_KEY_MAX);
    ctx->cand = ngx_pnalloc(r->pool, n * LLMC_EXACT_HEX_LEN);
    if (argv == NULL || argvlen == NULL || buf == NULL || ctx->cand == NULL)
    {
        ngx_http_llmcache_miss(r, ctx);
        return;
    }

    argv[0] = "MGET";
    argvlen[0] = 4;
    ctx->ncand = 0;

    for (i = 0; i < n; i++) {
        id = reply->element[i];

        if (id->type != REDIS_REPLY_STRING || id->len != LLMC_EXACT_HEX_LEN) {
            continue;
        }

        ngx_memcpy(ctx->cand + ctx->ncand * LLMC_EXACT_HEX_LEN, id->str,
                   LLMC_EXACT_HEX_LEN);
        ctx->ncand++;
    }

    if (ctx->ncand == 0) {
        ngx_http_llmcache_miss(r, ctx);
        return;
    }

    argc = 1;

    for (i = 0; i < ctx->ncand; i++) {
        argv[argc] = buf;
        argvlen[argc++] = ngx_http_llmcache_semantic_key(ctx, buf,
                              LLMC_REDIS_KEY_MAX, "v",
                              (char *) ctx->cand + i * LLMC_EXACT_HEX_LEN,
                              LLMC_EXACT_HEX_LEN);
        buf += LLMC_REDIS_KEY_MAX;
    }

    for (i = 0; ctx->cand_entries && i < ctx->ncand; i++) {
        argv[argc] = buf;
        argvlen[argc++] = ngx_snprintf((u_char *) buf, LLMC_REDIS_KEY_MAX,
                              LLMC_KEY_PREFIX "{%s}:e:%*s", ctx->key.scope,
                              (size_t) LLMC_EXACT_HEX_LEN,
                              ctx->cand + i * LLMC_EXACT_HEX_LEN)
                          - (u_char *) buf;
        buf += LLMC_REDIS_KEY_MAX;
    }

    if (ngx_http_llmcache_redis_request(r, ctx,
                                        ngx_http_llmcache_semantic_ranked,
                                        (int) argc, argv, argvlen)
        != NGX_OK)
    {
        ngx_http_llmcache_miss(r, ctx);
    }
}


/* the candidates' vectors: re-rank by exact cosine, guard, fetch the best */

static void
ngx_http_llmcache_semantic_ranked(ngx_http_request_t *r, redisReply *reply)
{
    char                           key[LLMC_REDIS_KEY_MAX];
    float                          best_sim;
    u_char                        *best;
    size_t                         i, key_len, argvlen[2], *lens;
    ngx_int_t                      b;
    redisReply                    *val, *entry;
    const char                    *argv[2], *why, **bufs;
    ngx_http_llmcache_ctx_t       *ctx;
    ngx_http_llmcache_loc_conf_t  *llcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);
    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements
           != (ctx->cand_entries ? 2 * ctx->ncand : ctx->ncand))
    {
        ngx_http_llmcache_miss(r, ctx);
        return;
    }

    bufs = ngx_palloc(r->pool, ctx->ncand * sizeof(char *));
    lens = ngx_palloc(r->pool, ctx->ncand * sizeof(size_t));
    if (bufs == NULL || lens == NULL) {
        ngx_http_llmcache_miss(r, ctx);
        return;
    }

    for (i = 0; i < ctx->ncand; i++) {
        val = reply->element[i];

        /* an expired vector (nil) leaves a stale bucket entry: skipped */
        bufs[i] = val->type == REDIS_REPLY_STRING ? val->str : NULL;
        lens[i] = val->type == REDIS_REPLY_STRING ? val->len : 0;
    }

    b = llmc_semantic_pick(ctx->vec, ctx->dim, (char *) ctx->norm.data,
                           ctx->norm.len, bufs, lens, ctx->ncand,
                           llcf->threshold, llcf->dict, llcf->entities,
                           llcf->guards, &best_sim, &why);

    if (b < 0) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llmcache: semantic: no candidate; best %.2f%s%s",
                       (double) best_sim, why ? " blocked: " : "",
                       why ? why : "");
        ngx_http_llmcache_miss(r, ctx);
        return;
    }

    ctx->similarity = best_sim;

    if (ctx->cand_entries) {
        /* the entry came along */
        entry = reply->element[ctx->ncand + b];
        ngx_http_llmcache_semantic_entry(r,
                                entry->type == REDIS_REPLY_STRING ? entry
                                                                  : NULL);
        return;
    }

    best = ctx->cand + b * LLMC_EXACT_HEX_LEN;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llmcache: semantic: best of %uz candidates, "
                   "fetching its entry", ctx->ncand);

    key_len = ngx_snprintf((u_char *) key, sizeof(key),
                           LLMC_KEY_PREFIX "{%s}:e:%*s",
                           ctx->key.scope, (size_t) LLMC_EXACT_HEX_LEN, best)
              - (u_char *) key;

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = key;
    argvlen[1] = key_len;

    if (ngx_http_llmcache_redis_request(r, ctx,
                                        ngx_http_llmcache_semantic_entry,
                                        2, argv, argvlen)
        != NGX_OK)
    {
        ngx_http_llmcache_miss(r, ctx);
    }
}


static void
ngx_http_llmcache_semantic_entry(ngx_http_request_t *r, redisReply *reply)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    if (reply && reply->type == REDIS_REPLY_STRING) {
        ngx_http_llmcache_use_entry(r, ctx, reply->str, reply->len);

        if (ctx->status == NGX_HTTP_LLMCACHE_HIT) {
            ctx->status = NGX_HTTP_LLMCACHE_SEMANTIC;
            ngx_http_llmcache_resume(r);
            return;
        }
    }

    ctx->similarity = 0;
    ngx_http_llmcache_miss(r, ctx);
}


/* after the entry was stored: index its vector */

void
ngx_http_llmcache_semantic_store(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, time_t ttl)
{
    int                 i, n, argc;
    char               *blob, *buf, bucket[32], ttl_s[NGX_TIME_T_LEN + 1],
                        nkeys[8];
    size_t             *argvlen, blob_len;
    uint32_t            sig[LLMC_LSH_BANDS_MAX];
    const char        **argv;
    const llmc_lsh_t   *lsh;

    ngx_http_llmcache_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmcache_module);

    if (ctx->pml) {
        return;                 /* PML prompts match exactly only */
    }

    if (ctx->vec == NULL && llcf->semantic && llcf->embedding.len == 0
        && ctx->norm.len)
    {
        /* the lookup was skipped (no-cache, bypass): index it anyway */

        ngx_http_llmcache_semantic_tag(ctx, llcf);

        ctx->dim = (int) llcf->embedding_dims;
        ctx->vec = ngx_palloc(r->pool, ctx->dim * sizeof(float));

        if (ctx->vec
            && llmc_embed_builtin((char *) ctx->norm.data, ctx->norm.len,
                                  ctx->vec, ctx->dim)
               != 0)
        {
            ctx->vec = NULL;
        }
    }

    if (ctx->vec == NULL) {
        return;
    }

    lsh = ngx_http_llmcache_lsh(ctx->dim);
    if (lsh == NULL) {
        return;
    }

    llmc_lsh_sign(lsh, ctx->vec, sig);

    n = lsh->bands;
    argc = 3 + 1 + n + 4;

    argv = ngx_palloc(r->pool, argc * sizeof(char *));
    argvlen = ngx_palloc(r->pool, argc * sizeof(size_t));
    buf = ngx_pnalloc(r->pool, (n + 1) * LLMC_REDIS_KEY_MAX);
    if (argv == NULL || argvlen == NULL || buf == NULL) {
        return;
    }

    blob = llmc_vec_encode(ctx->vec, ctx->dim, (char *) ctx->norm.data,
                           ctx->norm.len, &blob_len);
    if (blob == NULL) {
        return;
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_llmcache_index_script;
    argvlen[1] = sizeof(ngx_http_llmcache_index_script) - 1;
    argv[2] = nkeys;
    argvlen[2] = ngx_sprintf((u_char *) nkeys, "%d", n + 1)
                 - (u_char *) nkeys;

    argv[3] = buf;
    argvlen[3] = ngx_http_llmcache_semantic_key(ctx, buf, LLMC_REDIS_KEY_MAX,
                                                "v", ctx->key.exact,
                                                LLMC_EXACT_HEX_LEN);
    buf += LLMC_REDIS_KEY_MAX;

    for (i = 0; i < n; i++) {
        if (llmc_lsh_bucket(i, sig[i], bucket, sizeof(bucket)) < 0) {
            free(blob);
            return;
        }

        argv[4 + i] = buf;
        argvlen[4 + i] = ngx_http_llmcache_semantic_key(ctx, buf,
                                                        LLMC_REDIS_KEY_MAX,
                                                        "b", bucket,
                                                        ngx_strlen(bucket));
        buf += LLMC_REDIS_KEY_MAX;
    }

    argv[4 + n] = ctx->key.exact;
    argvlen[4 + n] = LLMC_EXACT_HEX_LEN;
    argv[5 + n] = blob;
    argvlen[5 + n] = blob_len;
    argv[6 + n] = ttl_s;
    argvlen[6 + n] = ngx_sprintf((u_char *) ttl_s, "%T", ttl)
                     - (u_char *) ttl_s;
    argv[7 + n] = NGX_HTTP_LLMCACHE_MAX_BUCKET_S;
    argvlen[7 + n] = sizeof(NGX_HTTP_LLMCACHE_MAX_BUCKET_S) - 1;

    (void) ngx_http_llmcache_redis_send(r->connection->log, argc, argv,
                                        argvlen);
    free(blob);
}


/*
 * A remote embedding: POST {"model","input"} to the internal location the
 * operator named, in memory, and continue when it is done.  Its failure is
 * a MISS, never an error.
 */

static ngx_int_t
ngx_http_llmcache_embed_remote(ngx_http_request_t *r,
    ngx_http_llmcache_ctx_t *ctx, ngx_http_llmcache_loc_conf_t *llcf)
{
    char                         *json;
    size_t                        len;
    ngx_buf_t                    *b;
    ngx_chain_t                  *cl;
    ngx_http_request_t           *sr;
    ngx_http_request_body_t      *rb;
    ngx_http_post_subrequest_t   *ps;

    json = llmc_embed_request(llcf->embedding_model.len
                              ? (char *) llcf->embedding_model.data : NULL,
                              (char *) ctx->norm.data, ctx->norm.len, &len);
    if (json == NULL) {
        return NGX_DECLINED;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        free(json);
        return NGX_DECLINED;
    }

    b->last = ngx_cpymem(b->last, json, len);
    b->last_buf = 1;
    b->last_in_chain = 1;
    free(json);

    cl = ngx_alloc_chain_link(r->pool);
    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (cl == NULL || rb == NULL || ps == NULL) {
        return NGX_DECLINED;
    }

    cl->buf = b;
    cl->next = NULL;
    rb->bufs = cl;
    rb->buf = b;

    ps->handler = ngx_http_llmcache_embed_done;
    ps->data = ctx;

    if (ngx_http_subrequest(r, &llcf->embedding, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    sr->method = NGX_HTTP_POST;
    sr->method_name = ngx_http_llmcache_post_method;
    sr->request_body = rb;
    sr->headers_in.content_length_n = len;
    sr->headers_in.chunked = 0;

    ctx->embed_wait = 1;
    r->write_event_handler = ngx_http_llmcache_embed_wait;

    /* from a Redis callback nothing else runs the subrequest */
    ngx_http_run_posted_requests(r->connection);

    return NGX_AGAIN;
}


/*
 * The subrequest's end.  It returns NGX_OK whatever happened: an error
 * code passed on would terminate the main request, and a failed embedding
 * only makes it a MISS.
 */

static ngx_int_t
ngx_http_llmcache_embed_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_llmcache_ctx_t *ctx = data;

    int         dim;
    char        err[128];
    float      *v;
    ngx_buf_t  *b;

    ctx->embed_wait = 0;

    if (rc != NGX_OK || sr->headers_out.status != NGX_HTTP_OK
        || sr->out == NULL || sr->out->buf == NULL)
    {
        ngx_log_error(NGX_LOG_WARN, sr->connection->log, 0,
                      "llmcache: the embeddings endpoint answered %ui%s; "
                      "the request is a MISS", sr->headers_out.status,
                      rc == NGX_ERROR ? " (or its answer was over "
                                        "subrequest_output_buffer_size)"
                                      : "");
        return NGX_OK;
    }

    b = sr->out->buf;

    if (llmc_embed_parse((char *) b->pos, b->last - b->pos, &v, &dim,
                         err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_WARN, sr->connection->log, 0,
                      "llmcache: bad embeddings answer: %s", err);
        return NGX_OK;
    }

    ctx->vec = ngx_palloc(sr->main->pool, dim * sizeof(float));
    if (ctx->vec) {
        ngx_memcpy(ctx->vec, v, dim * sizeof(float));
        ctx->dim = dim;
    }

    free(v);

    return NGX_OK;
}


/* the main request's write handler while the embedding is fetched */

static void
ngx_http_llmcache_embed_wait(ngx_http_request_t *r)
{
    ngx_http_llmcache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmcache_module);

    if (ctx->embed_wait) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    if (ctx->vec && ngx_http_llmcache_semantic_candidates(r, ctx) == NGX_AGAIN)
    {
        return;
    }

    ngx_http_llmcache_miss(r, ctx);
}


/* one LSH per dimension a worker meets; the planes come from a fixed seed */

/* at a worker's exit */

void
ngx_http_llmcache_semantic_exit(void)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_LLMCACHE_LSH_CACHED; i++) {
        llmc_lsh_free(&ngx_http_llmcache_lsh_cache[i]);
    }
}


static const llmc_lsh_t *
ngx_http_llmcache_lsh(int dim)
{
    ngx_uint_t   i;
    llmc_lsh_t  *l;

    for (i = 0; i < NGX_HTTP_LLMCACHE_LSH_CACHED; i++) {
        l = &ngx_http_llmcache_lsh_cache[i];

        if (l->planes && l->dim == dim) {
            return l;
        }

        if (l->planes == NULL) {
            if (llmc_lsh_init(l, dim, LLMC_LSH_BANDS_DEFAULT,
                              LLMC_LSH_BITS_DEFAULT, LLMC_LSH_SEED_DEFAULT)
                != 0)
            {
                return NULL;
            }

            return l;
        }
    }

    return NULL;
}


static void
ngx_http_llmcache_semantic_tag(ngx_http_llmcache_ctx_t *ctx,
    ngx_http_llmcache_loc_conf_t *llcf)
{
    u_char         md[32];
    llmc_sha256_t  s;

    if (llcf->embedding.len == 0) {
        ngx_sprintf((u_char *) ctx->emb_tag, "h%i%Z", llcf->embedding_dims);
        return;
    }

    llmc_sha256_init(&s);
    llmc_sha256_update(&s, llcf->embedding.data, llcf->embedding.len);
    llmc_sha256_update(&s, "\0", 1);
    llmc_sha256_update(&s, llcf->embedding_model.data,
                       llcf->embedding_model.len);
    llmc_sha256_final(&s, md);

    ctx->emb_tag[0] = 'r';
    llmc_hex(md, 6, ctx->emb_tag + 1);
    ctx->emb_tag[13] = '\0';
}


/* llmc:{scope}:<kind>:<tag>:<tail> */

static size_t
ngx_http_llmcache_semantic_key(ngx_http_llmcache_ctx_t *ctx, char *buf,
    size_t size, const char *kind, const char *tail, size_t len)
{
    u_char  *p = (u_char *) buf, *last = p + size;

    /* copied piece by piece, not printed: this runs for every band and
       candidate of every lookup */

#define ngx_http_llmcache_put(s, n)                                          \
    p = ngx_cpymem(p, s, ngx_min((size_t) (n), (size_t) (last - p)))

    ngx_http_llmcache_put(LLMC_KEY_PREFIX "{",
                          sizeof(LLMC_KEY_PREFIX "{") - 1);
    ngx_http_llmcache_put(ctx->key.scope, ngx_strlen(ctx->key.scope));
    ngx_http_llmcache_put("}:", 2);
    ngx_http_llmcache_put(kind, ngx_strlen(kind));
    ngx_http_llmcache_put(":", 1);
    ngx_http_llmcache_put(ctx->emb_tag, ngx_strlen(ctx->emb_tag));
    ngx_http_llmcache_put(":", 1);
    ngx_http_llmcache_put(tail, len);

#undef ngx_http_llmcache_put

    return p - (u_char *) buf;
}
