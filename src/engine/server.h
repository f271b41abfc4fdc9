/*
 * llmcache-worker's server: one I/O thread runs an epoll loop over the
 * listening socket (unix or TCP) and its connections, parses requests
 * (http.h), answers the cheap endpoints itself and queues generation and
 * embedding requests (bounded; a full queue answers 503) for one
 * generation thread, which streams the response bytes back through the
 * I/O thread. SIGTERM/SIGINT stop it gracefully: no new connections, the
 * running request finishes (cancelled after stop_grace seconds), queued
 * ones get 503.
 */

#ifndef LLMC_SERVER_H
#define LLMC_SERVER_H

#include <stddef.h>

typedef struct {
    const char  *model_path;      /* GGUF, or a llama2.c checkpoint */
    const char  *tokenizer_path;  /* llama2.c tok*.bin; NULL for GGUF */
    const char  *listen;          /* "unix:/path", "/path" or "host:port" */
    const char  *chat_template;   /* NULL: from the model, else chatml */
    const char  *model_name;      /* NULL: general.name or the file name */
    int          n_threads;       /* <= 0: online CPUs */
    int          n_ctx;           /* <= 0: the model's, at most 4096 */
    int          max_queue;       /* waiting requests; <= 0: 16 */
    size_t       max_body;        /* request body limit; 0: 8 MiB */
    unsigned     socket_mode;     /* unix socket permissions; 0: 0660 */
    const char  *socket_owner;    /* "USER[:GROUP]" or ":GROUP", names
                                     or ids; NULL: the worker's */
    int          stop_grace;      /* seconds; <= 0: 30 */
    int          request_timeout; /* seconds without bytes of a begun
                                     request, then 408; <= 0: 60 */
    size_t       kv_budget;       /* bytes of stored prompt modules; 0:
                                     no limit */
    const char  *kv_dir;          /* encoded schemas persist there; NULL:
                                     in memory only */
    int          prefix_min;      /* shortest common prefix of plain
                                     prompts worth reusing; <= 0: 128 */
} server_config_t;

typedef struct server server_t;

/* masks SIGTERM and SIGINT in the calling thread (so in every thread it
 * starts later: call it before starting any), ignores SIGPIPE, loads the
 * model and binds the socket; NULL + err on failure */
server_t *server_new(const server_config_t *cfg, char *err, size_t errlen);

/* serves until SIGTERM or SIGINT (read through a signalfd); 0, or -1 +
 * err */
int server_run(server_t *s, char *err, size_t errlen);

/* closes everything and removes the unix socket file */
void server_free(server_t *s);

#endif /* LLMC_SERVER_H */
