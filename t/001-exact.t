# Exact cache: a miss goes upstream and is stored, a repeat is served from
# Redis without calling the provider, for every supported API.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

no_shuffle();

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        add_header X-LLM-Key $llmcache_key always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers",
                      "Content-Type: application/json\n"
                      . "Authorization: Bearer sk-test-0001")
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: chat completions: miss, then hit; the provider is called once
--- request eval
my $b = '{"model":"gpt-4o","messages":[{"role":"user","content":"What is the capital of France?"}]}';
["POST /v1/chat/completions\n$b", "POST /v1/chat/completions\n$b",
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/"content":"mock answer #1 to: What is the capital of France\?"/,
 qr/"content":"mock answer #1 to: What is the capital of France\?"/,
 qr/^1$/]
--- no_error_log
[error]



=== TEST 2: the hit carries the upstream's status, type and exact bytes
--- request eval
my $b = '{"model":"gpt-4o","messages":[{"role":"user","content":"Bytes, please"}]}';
["POST /v1/chat/completions\n$b", "POST /v1/chat/completions\n$b"]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json"]
--- response_body_like eval
[qr/^\{"id":"chatcmpl-mock-1",.*"usage":\{"prompt_tokens":\d+/s,
 qr/^\{"id":"chatcmpl-mock-1",.*"usage":\{"prompt_tokens":\d+/s]
--- no_error_log
[error]



=== TEST 3: Anthropic messages
--- request eval
my $b = '{"model":"claude-sonnet-4-5","max_tokens":256,"system":"You are terse.","messages":[{"role":"user","content":[{"type":"text","text":"Name a prime number."}]}]}';
["POST /v1/messages\n$b", "POST /v1/messages\n$b", "GET /__mock/calls"]
--- more_headers
Content-Type: application/json
x-api-key: sk-ant-test
anthropic-version: 2023-06-01
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/"text":"mock answer #1 to: Name a prime number\."/,
 qr/"text":"mock answer #1 to: Name a prime number\."/,
 qr/^1$/]
--- no_error_log
[error]



=== TEST 4: legacy completions
--- request eval
my $b = '{"model":"gpt-3.5-turbo-instruct","prompt":"Say hello","max_tokens":16}';
["POST /v1/completions\n$b", "POST /v1/completions\n$b", "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/mock answer #1 to: Say hello/, qr/mock answer #1 to: Say hello/, qr/^1$/]
--- no_error_log
[error]



=== TEST 5: Responses API: a string input and the same text as a message item are one entry
--- request eval
my $a = '{"model":"gpt-4.1","input":"Summarize nginx in one line"}';
my $b = '{"model":"gpt-4.1","input":[{"role":"user","content":[{"type":"input_text","text":"Summarize nginx in one line"}]}]}';
["POST /v1/responses\n$a", "POST /v1/responses\n$a",
 "POST /v1/responses\n$b", "POST /v1/responses\n$b", "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/mock answer #1 to: Summarize nginx/, qr/mock answer #1 to: Summarize nginx/,
 qr/mock answer #1 to: Summarize nginx/, qr/mock answer #1 to: Summarize nginx/,
 qr/^1$/]
--- no_error_log
[error]



=== TEST 6: $llmcache_key is the hex exact key, the same on miss and hit
--- request eval
my $b = '{"model":"gpt-4o","messages":[{"role":"user","content":"key please"}]}';
["POST /v1/chat/completions\n$b", "POST /v1/chat/completions\n$b"]
--- raw_response_headers_like eval
[qr/X-LLM-Key: [0-9a-f]{64}\r\n/, qr/X-LLM-Key: [0-9a-f]{64}\r\n/]
--- no_error_log
[error]



=== TEST 7: the API key never reaches Redis, neither in a key nor a value
--- request eval
my $b = '{"model":"gpt-4o","messages":[{"role":"user","content":"secret test"}]}';
["POST /v1/chat/completions\n$b", "POST /v1/chat/completions\n$b",
 "GET /__mock/redis/dump"]
--- more_headers
Content-Type: application/json
Authorization: Bearer sk-SECRET-never-stored
--- response_body_like eval
[qr/mock answer #1/, qr/mock answer #1/,
 qr/^llmc:\{[0-9a-f]{32}\}:e:[0-9a-f]{64}\t\d+\t/]
--- response_body_unlike eval
[qr/SECRET/, qr/SECRET/, qr/SECRET|never-stored|Bearer/]
--- no_error_log
[error]



=== TEST 8: the upstream sees the request body and the API key unchanged
--- request eval
my $b = '{"model":"gpt-4o", "messages":[{"role":"user","content":"unchanged  body"}],"temperature":0.5}';
["POST /v1/chat/completions\n$b", "GET /__mock/last?part=body",
 "GET /__mock/last?part=header&name=authorization"]
--- response_body_like eval
[qr/mock answer #1/,
 qr/^\Q{"model":"gpt-4o", "messages":[{"role":"user","content":"unchanged  body"}],"temperature":0.5}\E$/,
 qr/^Bearer sk-test-0001$/]
--- no_error_log
[error]



=== TEST 9: a HEAD or GET in a cached location is BYPASS
--- request
GET /v1/models
--- error_code: 404
--- response_headers
X-LLM-Cache: BYPASS
--- no_error_log
[error]
