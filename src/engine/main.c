/*
 * llmcache-worker: serves a local model over an OpenAI-compatible HTTP API
 * on a unix socket or a TCP port.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void
usage(FILE *f)
{
    fprintf(f,
"usage: llmcache-worker --model FILE --listen ADDR [options]\n"
"\n"
"Serves a GGUF (or llama2.c) model over an OpenAI-compatible HTTP/1.1 API.\n"
"\n"
"  -m, --model FILE          GGUF model; or a llama2.c checkpoint together\n"
"                            with --tokenizer\n"
"  -t, --tokenizer FILE      llama2.c tokenizer (tok*.bin) for a llama2.c\n"
"                            checkpoint given as --model\n"
"  -l, --listen ADDR         unix:/path/to.sock (or a path starting with /\n"
"                            or .) or host:port (e.g. 127.0.0.1:8080,\n"
"                            [::1]:8080, :8080 for every address). A stale\n"
"                            socket file is replaced; a live one is an error.\n"
"      --socket-mode MODE    permissions of the unix socket file, octal\n"
"                            (default 0660: nginx's worker processes must\n"
"                            share the worker's user or group, or use 0666)\n"
"      --socket-owner USER[:GROUP]\n"
"                            owner and group of the unix socket file (names\n"
"                            or ids; \":GROUP\" for the group alone); the\n"
"                            worker must be allowed to chown it (root, or\n"
"                            a group it belongs to)\n"
"  -T, --threads N           threads for the model's matrix work (default:\n"
"                            the online CPUs)\n"
"  -c, --ctx N               context length in tokens (default: the model's\n"
"                            training context, at most 4096)\n"
"      --chat-template NAME  llama2, chatml, llama3 or zephyr for\n"
"                            /v1/chat/completions (default: detected from\n"
"                            the GGUF's tokenizer.chat_template; chatml when\n"
"                            there is none or it is not recognized)\n"
"      --name NAME           the model id in responses and /v1/models\n"
"                            (default: general.name, else the file name)\n"
"  -q, --max-queue N         requests that may wait for generation; more are\n"
"                            answered 503 (default 16)\n"
"      --max-body BYTES      request body limit, larger is 413 (default\n"
"                            8388608)\n"
"      --stop-grace SECONDS  on SIGTERM/SIGINT, how long the running request\n"
"                            may go on before it is cancelled (default 30)\n"
"      --request-timeout SECONDS\n"
"                            a request that began to arrive and then sends\n"
"                            nothing for this long gets 408 and the\n"
"                            connection closes (default 60); idle keep-alive\n"
"                            connections are never closed by the worker\n"
"      --kv-budget BYTES     memory for the K/V of stored prompt modules,\n"
"                            with a K, M or G suffix (default 1G; 0: no\n"
"                            limit). Least recently used modules are\n"
"                            evicted and encoded again when needed\n"
"      --kv-dir DIR          keep encoded schemas in DIR and load them on\n"
"                            start, so a restart serves without encoding\n"
"      --prefix-min N        a plain prompt reuses the K/V of the previous\n"
"                            prompt's common prefix when it is at least N\n"
"                            tokens long (default 128)\n"
"  -h, --help                this text\n"
"\n"
"Endpoints: POST /v1/completions, POST /v1/chat/completions (both with\n"
"\"stream\": true as server-sent events), POST /v1/embeddings, GET\n"
"/v1/models, GET /health, GET /metrics (Prometheus text); GET and POST\n"
"/v1/schemas (the PML schema as the body), GET and DELETE\n"
"/v1/schemas/NAME. A prompt (or the last user message) starting with\n"
"<prompt schema=\"NAME\"> reuses the schema's stored modules; \"cache\":\n"
"false evaluates the same tokens in full. Plain prompts reuse the longest\n"
"common prefix with the previous one.\n"
"Requests are generated one at a time, in arrival order. Unknown request\n"
"fields are ignored; fields this engine cannot honour (n > 1, echo,\n"
"logprobs, penalties, logit_bias, tools, ...) are a 400 naming the field.\n"
"A client that disconnects cancels its generation.\n");
}

/* BYTES[KMG] */
static int
parse_size(const char *opt, const char *v, size_t *out)
{
    char                *end;
    unsigned long long   n = strtoull(v, &end, 10), mul = 1;

    if (*end == 'K' || *end == 'k') {
        mul = 1ULL << 10;
        end++;
    } else if (*end == 'M' || *end == 'm') {
        mul = 1ULL << 20;
        end++;
    } else if (*end == 'G' || *end == 'g') {
        mul = 1ULL << 30;
        end++;
    }
    if (*v < '0' || *v > '9' || *end != '\0' || n > (1ULL << 50) / mul) {
        fprintf(stderr, "llmcache-worker: %s: bad size \"%s\"\n", opt, v);
        return -1;
    }
    *out = (size_t) (n * mul);
    return 0;
}

static int
parse_int(const char *opt, const char *v, int lo, int *out)
{
    char  *end;
    long   n = strtol(v, &end, 10);

    if (*v == '\0' || *end != '\0' || n < lo || n > 1 << 30) {
        fprintf(stderr, "llmcache-worker: %s: bad number \"%s\"\n", opt, v);
        return -1;
    }
    *out = (int) n;
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option  opts[] = {
        { "model",         required_argument, NULL, 'm' },
        { "tokenizer",     required_argument, NULL, 't' },
        { "listen",        required_argument, NULL, 'l' },
        { "threads",       required_argument, NULL, 'T' },
        { "ctx",           required_argument, NULL, 'c' },
        { "chat-template", required_argument, NULL, 'C' },
        { "name",          required_argument, NULL, 'N' },
        { "max-queue",     required_argument, NULL, 'q' },
        { "max-body",      required_argument, NULL, 'B' },
        { "socket-mode",   required_argument, NULL, 'S' },
        { "socket-owner",  required_argument, NULL, 'O' },
        { "stop-grace",    required_argument, NULL, 'G' },
        { "request-timeout", required_argument, NULL, 'R' },
        { "kv-budget",     required_argument, NULL, 'K' },
        { "kv-dir",        required_argument, NULL, 'D' },
        { "prefix-min",    required_argument, NULL, 'P' },
        { "help",          no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    server_config_t  cfg;
    server_t        *s;
    char             err[512], *end;
    int              o, n;
    unsigned long    mode;

    memset(&cfg, 0, sizeof(cfg));
    cfg.kv_budget = (size_t) 1 << 30;
    while ((o = getopt_long(argc, argv, "m:t:l:T:c:q:h", opts, NULL)) != -1) {
        switch (o) {
        case 'm': cfg.model_path = optarg; break;
        case 't': cfg.tokenizer_path = optarg; break;
        case 'l': cfg.listen = optarg; break;
        case 'C': cfg.chat_template = optarg; break;
        case 'N': cfg.model_name = optarg; break;
        case 'T':
            if (parse_int("--threads", optarg, 1, &cfg.n_threads) != 0) {
                return 2;
            }
            break;
        case 'c':
            if (parse_int("--ctx", optarg, 2, &cfg.n_ctx) != 0) {
                return 2;
            }
            break;
        case 'q':
            if (parse_int("--max-queue", optarg, 1, &cfg.max_queue) != 0) {
                return 2;
            }
            break;
        case 'B':
            if (parse_int("--max-body", optarg, 1, &n) != 0) {
                return 2;
            }
            cfg.max_body = (size_t) n;
            break;
        case 'G':
            if (parse_int("--stop-grace", optarg, 1, &cfg.stop_grace) != 0) {
                return 2;
            }
            break;
        case 'R':
            if (parse_int("--request-timeout", optarg, 1,
                          &cfg.request_timeout) != 0)
            {
                return 2;
            }
            break;
        case 'S':
            mode = strtoul(optarg, &end, 8);
            if (*optarg == '\0' || *end != '\0' || mode == 0
                || mode > 0777)
            {
                fprintf(stderr, "llmcache-worker: --socket-mode: bad mode "
                        "\"%s\"\n", optarg);
                return 2;
            }
            cfg.socket_mode = (unsigned) mode;
            break;
        case 'O':
            cfg.socket_owner = optarg;
            break;
        case 'K':
            if (parse_size("--kv-budget", optarg, &cfg.kv_budget) != 0) {
                return 2;
            }
            break;
        case 'D':
            cfg.kv_dir = optarg;
            break;
        case 'P':
            if (parse_int("--prefix-min", optarg, 1, &cfg.prefix_min) != 0) {
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "llmcache-worker: unexpected argument \"%s\"\n",
                argv[optind]);
        return 2;
    }
    if (cfg.model_path == NULL || cfg.listen == NULL) {
        fprintf(stderr, "llmcache-worker: --model and --listen are "
                "required (--help)\n");
        return 2;
    }

    s = server_new(&cfg, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "llmcache-worker: %s\n", err);
        return 1;
    }
    fprintf(stderr, "llmcache-worker: serving %s on %s\n", cfg.model_path,
            cfg.listen);
    if (server_run(s, err, sizeof(err)) != 0) {
        fprintf(stderr, "llmcache-worker: %s\n", err);
        server_free(s);
        return 1;
    }
    server_free(s);
    return 0;
}
