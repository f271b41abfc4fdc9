# Semantic lookup: an exact miss is answered from a stored prompt of the
# same scope with the same meaning (SEMANTIC), and never from one that
# differs in negation or numbers, or that belongs to another scope.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_long_string();

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/ko.dict;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/en.dict;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        add_header X-LLM-Cache $llmcache_status always;
        add_header X-LLM-Similarity $llmcache_similarity always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

# chat(TEXT[, MODEL[, SYSTEM]]) -> a request line + body asking TEXT
sub chat {
    my ($text, $model, $system) = @_;
    $model //= "gpt-4o";
    my $sys = defined $system
        ? qq/{"role":"system","content":"$system"},/ : "";
    return "POST /v1/chat/completions\n"
        . qq/{"model":"$model","messages":[$sys\{"role":"user","content":"$text"}]}/;
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers",
                      "Content-Type: application/json\n"
                      . "Authorization: Bearer sk-test-0008")
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: the canonical Korean pair: one entry, the second is SEMANTIC
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"),
 main::chat("파스타 레시피 좀 알려주세요"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: SEMANTIC", ""]
--- response_body_like eval
[qr/#1 to: 맛있는 파스타/, qr/#1 to: 맛있는 파스타/, qr/^1$/]
--- raw_response_headers_like eval
["", qr/X-LLM-Similarity: 0\.\d{4}\r\n/, ""]
--- no_error_log
[error]



=== TEST 2: an English paraphrase
--- request eval
[main::chat("What is the capital of France?"),
 main::chat("Tell me the capital of France"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: SEMANTIC", ""]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/^1$/]
--- no_error_log
[error]



=== TEST 3: negation on one side only is never a hit
--- request eval
[main::chat("2FA 켜는 법 알려줘"), main::chat("2FA 끄지 않는 법 알려줘"),
 main::chat("how to enable 2FA"), main::chat("how to not enable 2FA"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#4/, qr/^4$/]
--- no_error_log
[error]



=== TEST 4: other numbers are never a hit
--- request eval
[main::chat("3인분 파스타 레시피"), main::chat("5인분 파스타 레시피"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/^2$/]
--- no_error_log
[error]



=== TEST 5: another tenant, model or system prompt is never a hit
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"),
 main::chat("파스타 레시피 좀 알려주세요", "gpt-4o-mini"),
 main::chat("파스타 레시피 좀 알려주세요", "gpt-4o", "You are a chef."),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/^3$/]
--- no_error_log
[error]



=== TEST 6: another tenant key is never a hit
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"), main::chat("파스타 레시피 좀 알려주세요")]
--- more_headers eval
["Content-Type: application/json\nAuthorization: Bearer sk-one",
 "Content-Type: application/json\nAuthorization: Bearer sk-two"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/]
--- no_error_log
[error]



=== TEST 7: a threshold of 1 leaves only exact hits
--- config
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_semantic_threshold 1;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"), main::chat("파스타 레시피 좀 알려주세요")]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- no_error_log
[error]



=== TEST 8: many candidates: the vectors first, then the best one's entry
Six prompts that differ only in trailing spaces (kept: normalization off)
are six entries with one vector, stored without a lookup (no-cache); a
seventh is SEMANTIC from one of them, among more candidates than are
fetched along with their vectors.
--- config
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_normalize off;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
--- request eval
[(map { main::chat("How long do I boil pasta?" . (" " x $_)) } 0 .. 5),
 main::chat("How long do I boil pasta?" . (" " x 6)), "GET /__mock/calls"]
--- more_headers eval
[(("Content-Type: application/json\nAuthorization: Bearer sk-test-0008\n"
   . "Cache-Control: no-cache") x 6),
 "Content-Type: application/json\nAuthorization: Bearer sk-test-0008", ""]
--- response_headers eval
[("X-LLM-Cache: BYPASS") x 6, "X-LLM-Cache: SEMANTIC", ""]
--- response_body_like eval
[(qr/mock answer/) x 7, qr/^6$/]
--- no_error_log
[error]



=== TEST 9: semantic off (the default): an exact miss stays a MISS
--- config
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"), main::chat("파스타 레시피 좀 알려주세요")]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- no_error_log
[error]



=== TEST 10: the index lives in the scope's slot and carries the TTL
--- config
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_ttl 1s;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"), "GET /__mock/redis/dump?match=*:v:*",
 "GET /__mock/redis/dump?match=*:b:*", "GET /__mock/sleep?ms=2100",
 main::chat("파스타 레시피 좀 알려주세요"), "GET /__mock/redis/dump"]
--- response_headers eval
["X-LLM-Cache: MISS", "", "", "", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/^llmc:\{[0-9a-f]{32}\}:v:h256:[0-9a-f]{64}\t1\t/,
 qr/^(llmc:\{[0-9a-f]{32}\}:b:h256:\d+:[0-9a-f]+\t1\t[0-9a-f]{64}\n){20}$/,
 qr/ok/, qr/#2/, qr/./]
--- no_error_log
[error]



=== TEST 11: embeddings from an OpenAI-compatible endpoint through a subrequest
--- config
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_embedding /_embeddings;
        llmcache_embedding_model text-embedding-3-small;
        llmcache_semantic_threshold 0.4;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location = /_embeddings {
        internal;
        subrequest_output_buffer_size 64k;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/embeddings;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"), main::chat("파스타 레시피 좀 알려주세요"),
 "GET /__mock/calls?path=/v1/embeddings", "GET /__mock/calls?path=/v1/chat/completions",
 "GET /__mock/last?part=body"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: SEMANTIC", "", "", ""]
--- response_body_like eval
[qr/#2 to: 맛있는/, qr/#2 to: 맛있는/, qr/^2$/, qr/^1$/,
 qr/^\{"model":"text-embedding-3-small","input":"파스타 레시피 알려 ?줘","encoding_format":"float"\}$/]
--- no_error_log
[error]



=== TEST 12: the embeddings endpoint down: the request is a MISS from the provider
--- config
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_embedding /_embeddings;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location = /_embeddings {
        internal;
        proxy_pass http://127.0.0.1:1/v1/embeddings;
    }
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"), main::chat("파스타 레시피 좀 알려주세요")]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/]
--- error_log eval
qr/llmcache: the embeddings endpoint answered \d+[^;]*; the request is a MISS/



=== TEST 13: the embeddings endpoint answering garbage: a MISS
--- config
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_embedding /_embeddings;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location = /_embeddings {
        internal;
        return 200 '{"data":[{"embedding":"not a vector"}]}';
    }
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"), main::chat("파스타 레시피 좀 알려주세요")]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/]
--- error_log
llmcache: bad embeddings answer

