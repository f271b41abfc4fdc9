# Streaming: SSE answers pass through unchanged while they are assembled;
# a stream that finished cleanly is stored as the provider's JSON response
# and replayed to streaming clients as a well-formed stream, and to the
# others as JSON.  Streams that did not finish are never stored.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_long_string();
worker_connections(1024);

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        proxy_buffering off;
        proxy_http_version 1.1;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /buffered/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

our $Chat = '{"model":"gpt-4o","messages":[{"role":"user","content":"tell me a story"}]';
our $ChatStream = '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"tell me a story"}]';

# Under valgrind nginx is about 20 times slower, and the 100 requests of
# TEST 10 can still be arriving when the holder's stream ends: one whose
# lookup is on its way while the holder stores the entry and releases the
# lock takes the lock itself and calls the provider a second time.  There
# the provider holds the stream back 3 s, so that every request is waiting
# before it comes, and the waiters wait up to 60 s rather than the default
# 5 s, which a 3 s holder could outlast on a busy machine.
our $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $FanoutHeaders = '"X-Mock-Stream-Delay-Ms":"30"'
    . ($Valgrind ? ',"X-Mock-Delay-Ms":"3000"' : '');
if ($Valgrind) {
    $Config =~ s/(location \/v1\/ \{\n)/$1        llmcache_lock_timeout 60s;\n/
        or die "no location /v1/ in \$Config\n";
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers", "Content-Type: application/json")
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: chat: a stream MISS is stored; a stream HIT and a JSON HIT say the same
--- request eval
["POST /v1/chat/completions\n$main::ChatStream}",
 "POST /v1/chat/completions\n$main::ChatStream}",
 "POST /v1/chat/completions\n$main::Chat}",
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/^data: \{"id":"chatcmpl-mock-1".*"delta":\{"content":"mock "\}.*data: \[DONE\]\n\n$/s,
 qr/^data: \{"id":"chatcmpl-mock-1".*"role":"assistant".*mock answer #1 .*"finish_reason":"stop".*data: \[DONE\]\n\n$/s,
 qr/^\{"id":"chatcmpl-mock-1","object":"chat\.completion".*"content":"mock answer #1 to: tell me a story"/,
 qr/^1$/]
--- no_error_log
[error]



=== TEST 2: chat: a JSON MISS serves a later stream HIT; the usage chunk only when asked
--- request eval
["POST /v1/chat/completions\n$main::Chat}",
 "POST /v1/chat/completions\n$main::ChatStream}",
 "POST /v1/chat/completions\n$main::ChatStream,\"stream_options\":{\"include_usage\":true}}"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/"chat\.completion"/,
 qr/^(?!.*"choices":\[\],"usage").*mock answer #1.*data: \[DONE\]\n\n$/s,
 qr/"choices":\[\],"usage":\{"prompt_tokens":\d+.*data: \[DONE\]\n\n$/s]
--- no_error_log
[error]



=== TEST 3: Anthropic messages: stream MISS, stream HIT, JSON HIT
--- request eval
my $m = '"model":"claude-sonnet-4-5","max_tokens":200,"messages":[{"role":"user","content":"tell me a story"}]';
["POST /v1/messages\n{\"stream\":true,$m}", "POST /v1/messages\n{\"stream\":true,$m}",
 "POST /v1/messages\n{$m}", "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/event: message_start.*event: message_stop/s,
 qr/^event: message_start\ndata: \{.*"usage".*event: content_block_start.*event: content_block_delta\ndata: \{"type":"content_block_delta","index":0,"delta":\{"type":"text_delta","text":"mock answer #1.*event: message_delta\ndata: .*"stop_reason":"end_turn".*event: message_stop\ndata: \{"type":"message_stop"\}\n\n$/s,
 qr/^\{"id":"msg_mock_1".*"type":"message".*"text":"mock answer #1 to: tell me a story"/,
 qr/^1$/]
--- no_error_log
[error]



=== TEST 4: Responses API: stream MISS, stream HIT, JSON HIT
--- request eval
my $m = '"model":"gpt-4.1","input":"tell me a story"';
["POST /v1/responses\n{\"stream\":true,$m}", "POST /v1/responses\n{\"stream\":true,$m}",
 "POST /v1/responses\n{$m}", "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/event: response\.completed/,
 qr/^event: response\.created\n.*event: response\.output_text\.delta\n.*event: response\.completed\ndata: \{.*"usage"/s,
 qr/^\{"id":"resp_mock_1".*"text":"mock answer #1 to: tell me a story"/,
 qr/^1$/]
--- no_error_log
[error]



=== TEST 5: legacy completions: stream MISS, stream HIT
--- request eval
my $m = '"model":"gpt-3.5-turbo-instruct","prompt":"tell me a story"';
["POST /v1/completions\n{\"stream\":true,$m}", "POST /v1/completions\n{\"stream\":true,$m}",
 "POST /v1/completions\n{$m}"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/data: \[DONE\]/, qr/"text_completion".*mock answer #1.*data: \[DONE\]\n\n$/s,
 qr/^\{"id":"cmpl-mock-1".*"text":"mock answer #1 to: tell me a story"/]
--- no_error_log
[error]



=== TEST 6: tool calls survive the round trip (chat and Anthropic)
--- request eval
my $tools = '"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}}';
my $atools = '"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":{"type":"tool","name":"get_weather"}';
my $am = '"model":"claude-sonnet-4-5","max_tokens":200,"messages":[{"role":"user","content":"weather in Paris"}]';
["POST /v1/chat/completions\n" . qq/{"model":"gpt-4o","stream":true,$tools,"messages":[{"role":"user","content":"weather in Paris"}]}/,
 "POST /v1/chat/completions\n" . qq/{"model":"gpt-4o",$tools,"messages":[{"role":"user","content":"weather in Paris"}]}/,
 "POST /v1/chat/completions\n" . qq/{"model":"gpt-4o","stream":true,$tools,"messages":[{"role":"user","content":"weather in Paris"}]}/,
 "POST /v1/messages\n{\"stream\":true,$atools,$am}",
 "POST /v1/messages\n{$atools,$am}",
 "POST /v1/messages\n{\"stream\":true,$atools,$am}"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT",
 "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/"tool_calls"/,
 qr/"tool_calls":\[\{"id":"[^"]+","type":"function","function":\{"name":"get_weather","arguments":"\{/,
 qr/"tool_calls":\[\{"index":0,"id":"[^"]+","type":"function","function":\{"name":"get_weather"/,
 qr/input_json_delta/,
 qr/"type":"tool_use","id":"[^"]+","name":"get_weather","input":\{/,
 qr/"type":"tool_use".*input_json_delta.*event: message_stop/s]
--- no_error_log
[error]



=== TEST 7: streams that did not finish are never stored
--- request eval
["POST /v1/chat/completions\n$main::ChatStream}",
 "POST /v1/messages\n" . '{"stream":true,"model":"claude-sonnet-4-5","max_tokens":200,"messages":[{"role":"user","content":"tell me a story"}]}',
 "POST /v1/chat/completions\n$main::ChatStream}",
 "GET /__mock/redis/dump"]
--- more_headers eval
["Content-Type: application/json\nX-Mock-Stream-Truncate: 1",
 "Content-Type: application/json\nX-Mock-Stream-Error: 1",
 "Content-Type: application/json\nX-Mock-Stream-Error: 1",
 ""]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/mock /, qr/event: error/, qr/./, qr/^$/]
--- no_error_log
[error]



=== TEST 8: an upstream reset mid-stream is passed on and not stored
--- request eval
["POST /v1/chat/completions HTTP/1.0\n$main::ChatStream}", "GET /__mock/redis/dump"]
--- more_headers eval
["Content-Type: application/json\nX-Mock-Reset-After: 300", ""]
--- response_body_like eval
[qr/^data: /, qr/^$/]



=== TEST 9: with proxy_buffering on, the same stream is stored too
--- request eval
["POST /buffered/v1/chat/completions\n$main::ChatStream}",
 "POST /buffered/v1/chat/completions\n$main::ChatStream}", "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/data: \[DONE\]/, qr/mock answer #1.*data: \[DONE\]/s, qr/^1$/]
--- no_error_log
[error]



=== TEST 10: 100 identical streaming requests at once: one provider call
--- request eval
my $b = '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"popular stream"}]}';
$b =~ s/"/\\"/g;
["POST /__mock/fanout\n" . qq/{"url":"http:\/\/127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}\/v1\/chat\/completions","n":100,"body":"$b","headers":{$main::FanoutHeaders}}/,
 "GET /__mock/calls"]
--- response_body_like eval
[qr/"statuses":\{"200":100\}/, qr/^1$/]
--- timeout: 60
--- no_error_log
[error]
