# PML prompts (the Prompt Cache markup llmcache-worker serves): the schema
# they name is $llmcache_schema, and they are keyed exactly as written —
# never normalized, never matched semantically — since their tags carry
# meaning that folding case and punctuation would lose.

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
        llmcache_semantic on;
        add_header X-LLM-Cache $llmcache_status always;
        add_header X-LLM-Schema "[$llmcache_schema]" always;
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

=== TEST 1: the schema of a completions prompt and of a chat message
--- request eval
my $c = '{"model":"local","prompt":"<prompt schema=\"doc-qa\"><doc1/> Who wrote it?</prompt>"}';
my $m = '{"model":"local","messages":[{"role":"user","content":"  <prompt schema=\u0027travel.v2\u0027><trip/>Plan it</prompt>"}]}';
["POST /v1/completions\n$c", "POST /v1/chat/completions\n$m"]
--- response_headers eval
["X-LLM-Schema: [doc-qa]", "X-LLM-Schema: [travel.v2]"]
--- error_code eval
[200, 200]
--- no_error_log
[error]



=== TEST 2: plain prompts and a tag elsewhere leave it empty
--- request eval
my $a = '{"model":"gpt-4o","messages":[{"role":"user","content":"What is PML?"}]}';
my $b = '{"model":"gpt-4o","messages":[{"role":"user","content":"Explain <prompt schema=\"x\"> tags"}]}';
["POST /v1/chat/completions\n$a", "POST /v1/chat/completions\n$b"]
--- response_headers eval
["X-LLM-Schema: []", "X-LLM-Schema: []"]
--- no_error_log
[error]



=== TEST 3: prompts that differ only in their tags are two entries
Normalization would fold both to the same words: nesting a module inside
another is a different prompt from importing both side by side.
--- request eval
my $a = '{"model":"local","prompt":"<prompt schema=\"s\"><a/><b/>Q</prompt>"}';
my $b = '{"model":"local","prompt":"<prompt schema=\"s\"><a><b/></a>Q</prompt>"}';
["POST /v1/completions\n$a", "POST /v1/completions\n$b",
 "POST /v1/completions\n$a", "POST /v1/completions\n$b",
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/mock answer/, qr/mock answer/, qr/mock answer/, qr/mock answer/,
 qr/^2$/]
--- no_error_log
[error]



=== TEST 4: no semantic match and no folding for PML prompts
The same question in other case and punctuation is a MISS for a PML
prompt, where a plain prompt would be served from the first entry.
--- request eval
my $a = '{"model":"local","prompt":"<prompt schema=\"s\"><doc/>What is the capital of France?</prompt>"}';
my $b = '{"model":"local","prompt":"<prompt schema=\"s\"><doc/>what is the capital of france</prompt>"}';
my $c = '{"model":"local","prompt":"What is the capital of France?"}';
my $d = '{"model":"local","prompt":"what is the capital of france"}';
["POST /v1/completions\n$a", "POST /v1/completions\n$b",
 "POST /v1/completions\n$c", "POST /v1/completions\n$d",
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/mock answer/, qr/mock answer/, qr/mock answer/, qr/mock answer/,
 qr/^3$/]
--- no_error_log
[error]
