# Scope isolation: only requests that would get the same answer share an
# entry.  Another tenant key, model, sampling parameter, system prompt, tool
# or earlier turn is a MISS; fields that never change the answer are not.

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
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    # a second tenant: the same upstream seen with another key
    location /tenant-b/ {
        llmcache on;
        llmcache_key "tenant-b";
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

our $Q = '{"role":"user","content":"Tell me a joke"}';

# chat(EXTRA_FIELDS, MESSAGES_BEFORE) -> request with the same last question
sub chat {
    my ($extra, $before) = @_;
    $extra = defined $extra ? ",$extra" : "";
    $before = defined $before ? "$before," : "";
    return "POST /v1/chat/completions\n"
        . qq/{"model":"gpt-4o","messages":[$before$Q]$extra}/;
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers",
                      "Content-Type: application/json\n"
                      . "Authorization: Bearer sk-tenant-a")
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: another tenant key is another scope
--- request eval
[main::chat(), "POST /tenant-b/v1/chat/completions\n" . '{"model":"gpt-4o","messages":[' . $main::Q . ']}',
 "POST /tenant-b/v1/chat/completions\n" . '{"model":"gpt-4o","messages":[' . $main::Q . ']}',
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#2/, qr/^2$/]
--- no_error_log
[error]



=== TEST 2: the Authorization header is the default tenant key
--- request eval
[main::chat(), main::chat()]
--- more_headers eval
["Content-Type: application/json\nAuthorization: Bearer sk-one",
 "Content-Type: application/json\nAuthorization: Bearer sk-two"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/]
--- no_error_log
[error]



=== TEST 3: another model
--- request eval
[main::chat(), "POST /v1/chat/completions\n" . '{"model":"gpt-4o-mini","messages":[' . $main::Q . ']}']
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/]
--- no_error_log
[error]



=== TEST 4: another temperature; absent equals the provider's default
--- request eval
[main::chat('"temperature":0.2'), main::chat('"temperature":0.7'),
 main::chat(), main::chat('"temperature":1'), main::chat('"temperature":1.0')]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#3/, qr/#3/]
--- no_error_log
[error]



=== TEST 5: another system prompt
--- request eval
[main::chat(undef, '{"role":"system","content":"Be funny."}'),
 main::chat(undef, '{"role":"system","content":"Be serious."}'),
 main::chat(undef, '{"role":"system","content":"Be funny."}')]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#1/]
--- no_error_log
[error]



=== TEST 6: other tools
--- request eval
my $t1 = '"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{}}}}]';
my $t2 = '"tools":[{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}]';
[main::chat($t1), main::chat($t2), main::chat(), main::chat($t1)]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#1/]
--- no_error_log
[error]



=== TEST 7: another earlier turn
--- request eval
my $h1 = '{"role":"user","content":"I like cats"},{"role":"assistant","content":"Cats are great."}';
my $h2 = '{"role":"user","content":"I like dogs"},{"role":"assistant","content":"Dogs are great."}';
[main::chat(undef, $h1), main::chat(undef, $h2), main::chat(undef, $h1)]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#1/]
--- no_error_log
[error]



=== TEST 8: other max_tokens, seed, response_format, top_p are other scopes
--- request eval
[main::chat(), main::chat('"max_tokens":10'), main::chat('"seed":42'),
 main::chat('"response_format":{"type":"json_object"}'),
 main::chat('"top_p":0.5'), "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#4/, qr/#5/, qr/^5$/]
--- no_error_log
[error]



=== TEST 9: stream options and user ids do not split the cache; unknown fields do
--- request eval
[main::chat(), main::chat('"user":"alice"'), main::chat('"x_custom_knob":3')]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/#2/]
--- no_error_log
[error]



=== TEST 10: Anthropic: another system prompt or max_tokens is another scope
--- request eval
my $m = '"messages":[{"role":"user","content":"Tell me a joke"}]';
["POST /v1/messages\n" . qq/{"model":"claude-haiku-4-5","max_tokens":100,"system":"A",$m}/,
 "POST /v1/messages\n" . qq/{"model":"claude-haiku-4-5","max_tokens":100,"system":"B",$m}/,
 "POST /v1/messages\n" . qq/{"model":"claude-haiku-4-5","max_tokens":200,"system":"A",$m}/,
 "POST /v1/messages\n" . qq/{"model":"claude-haiku-4-5","max_tokens":100,"system":"A",$m}/]
--- more_headers
Content-Type: application/json
x-api-key: sk-ant-a
anthropic-version: 2023-06-01
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#1/]
--- no_error_log
[error]



=== TEST 11: Anthropic: another anthropic-beta or anthropic-version header is another scope
--- request eval
my $b = '{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"Tell me a joke"}]}';
["POST /v1/messages\n$b", "POST /v1/messages\n$b", "POST /v1/messages\n$b",
 "POST /v1/messages\n$b"]
--- more_headers eval
["Content-Type: application/json\nx-api-key: sk-ant-a\nanthropic-version: 2023-06-01",
 "Content-Type: application/json\nx-api-key: sk-ant-a\nanthropic-version: 2023-06-01\nanthropic-beta: output-128k-2025-02-19",
 "Content-Type: application/json\nx-api-key: sk-ant-a\nanthropic-version: 2023-01-01",
 "Content-Type: application/json\nx-api-key: sk-ant-a\nanthropic-version: 2023-06-01"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#1/]
--- no_error_log
[error]



=== TEST 12: OpenAI: another OpenAI-Project header is another scope
--- request eval
[main::chat(), main::chat(), main::chat()]
--- more_headers eval
["Content-Type: application/json\nAuthorization: Bearer sk-a\nOpenAI-Project: proj_1",
 "Content-Type: application/json\nAuthorization: Bearer sk-a\nOpenAI-Project: proj_2",
 "Content-Type: application/json\nAuthorization: Bearer sk-a\nOpenAI-Project: proj_1"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#1/]
--- no_error_log
[error]
