# Upstream rewriting for provider-side prompt caching, and accounting:
# Anthropic cache_control breakpoints, stable OpenAI prefixes, and token
# and dollar variables from usage, with or without llmcache on.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_long_string();

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    log_format usage '$llmcache_status in=$llmcache_input_tokens '
                     'cached=$llmcache_cached_tokens '
                     'write=$llmcache_cache_write_tokens '
                     'out=$llmcache_output_tokens '
                     'cost=$llmcache_cost_usd saved=$llmcache_saved_usd';
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache_anthropic_cache_control auto;
        llmcache_openai_prefix stable;
        access_log logs/access.log usage;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /off/ {
        access_log logs/access.log usage;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location /cached/ {
        llmcache on;
        llmcache_anthropic_cache_control auto;
        access_log logs/access.log usage;
        add_header X-LLM-Cache $llmcache_status always;
        add_header X-Cost $llmcache_cost_usd;
        add_header X-Saved $llmcache_saved_usd;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

# a long system prompt (well over Anthropic's 1024-token minimum) and a turn
our $System = "You are a careful assistant for the ACME company. " x 150;
sub messages {
    my ($q, $extra) = @_;
    $extra //= "";
    return qq/{"model":"claude-sonnet-4-5","max_tokens":100,"system":"$main::System"$extra,"messages":[{"role":"user","content":"$q"}]}/;
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers",
                      "Content-Type: application/json\nx-api-key: sk-ant\n"
                      . "anthropic-version: 2023-06-01")
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: Anthropic: a breakpoint after the long system prompt; the second request reads the cache
--- request eval
["POST /v1/messages\n" . main::messages("first question"),
 "GET /__mock/last?part=body",
 "POST /v1/messages\n" . main::messages("second question")]
--- response_body_like eval
[qr/"cache_creation_input_tokens":[1-9]\d*/,
 qr/"system":\[\{"type":"text","text":"You are a careful.*","cache_control":\{"type":"ephemeral"\}\}\]/,
 qr/"cache_read_input_tokens":[1-9]\d*/]
--- no_error_log
[error]



=== TEST 2: without the directive the body goes upstream byte for byte
--- request eval
["POST /off/v1/messages\n" . main::messages("first question"),
 "GET /__mock/last?part=body",
 "POST /off/v1/messages\n" . main::messages("second question")]
--- response_body_like eval
[qr/"cache_creation_input_tokens":0/,
 qr/^\Q{"model":"claude-sonnet-4-5","max_tokens":100,"system":"You are a careful\E.*"content":"first question"\}\]\}$/,
 qr/"cache_read_input_tokens":0/]
--- no_error_log
[error]



=== TEST 3: a short prompt below the model's minimum gets no breakpoint
--- request eval
["POST /v1/messages\n" . '{"model":"claude-sonnet-4-5","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}',
 "GET /__mock/last?part=body"]
--- response_body_like eval
[qr/"type":"message"/,
 qr/^\Q{"model":"claude-sonnet-4-5","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}\E$/]
--- no_error_log
[error]



=== TEST 4: the client's own four markers are kept; no fifth is added
--- request eval
my $cc = ',"cache_control":{"type":"ephemeral"}';
my $b = qq/{"model":"claude-sonnet-4-5","max_tokens":100,"system":[{"type":"text","text":"$main::System"$cc},{"type":"text","text":"a"$cc},{"type":"text","text":"b"$cc}],"messages":[{"role":"user","content":[{"type":"text","text":"q"$cc}]}]}/;
["POST /v1/messages\n$b", "GET /__mock/last?part=body"]
--- response_body_like eval
[qr/"type":"message"/, qr/^(?:(?!cache_control).)*(?:cache_control(?:(?!cache_control).)*){4}$/s]
--- no_error_log
[error]



=== TEST 5: usage and cost in the access log: Anthropic JSON, a cache write
--- request eval
"POST /v1/messages\n" . main::messages("first question")
--- response_body_like: "type":"message"
--- wait: 0.3
--- access_log eval
qr/^- in=\d+ cached=0 write=[1-9]\d* out=\d+ cost=0\.\d{6} saved=-\d\.\d{6}$/
--- no_error_log
[error]



=== TEST 6: usage and cost in the access log: an Anthropic stream
--- request eval
"POST /v1/messages\n" . main::messages("first question", ',"stream":true')
--- response_body_like: event: message_stop
--- wait: 0.3
--- access_log eval
qr/^- in=\d+ cached=0 write=[1-9]\d* out=\d+ cost=0\.\d{6} saved=-\d\.\d{6}$/
--- no_error_log
[error]



=== TEST 7: usage and cost in the access log: OpenAI chat
--- request eval
"POST /v1/chat/completions\n" . '{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
--- response_body_like: chat\.completion
--- wait: 0.3
--- access_log eval
qr/^- in=\d+ cached=0 write=0 out=\d+ cost=0\.\d{6} saved=0\.000000$/
--- no_error_log
[error]



=== TEST 8: a HIT of ours costs nothing and saves what the answer would have cost
--- request eval
["POST /cached/v1/chat/completions\n" . '{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}',
 "POST /cached/v1/chat/completions\n" . '{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}']
--- response_headers eval
["X-LLM-Cache: MISS\nX-Cost:\nX-Saved:", "X-LLM-Cache: HIT\nX-Cost: 0.000000"]
--- raw_response_headers_like eval
["", qr/X-Saved: 0\.0000[1-9]\d\r\n/]
--- no_error_log
[error]



=== TEST 9: llmcache_price overrides the built-in prices
--- config
    location /v1/ {
        llmcache_anthropic_cache_control auto;
        llmcache_price "gpt-4o*" input=1000000 output=0;
        access_log logs/access.log usage;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
"POST /v1/chat/completions\n" . '{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
--- wait: 0.3
--- access_log eval
qr/ cost=[1-9]\d*\.000000 /
--- no_error_log
[error]



=== TEST 10: a malformed body is passed through unchanged
--- request eval
["POST /v1/messages\n" . '{"model":"claude-sonnet-4-5","max_tokens":100,"system":"x"' ,
 "GET /__mock/last?part=body"]
--- error_code eval
[400, 200]
--- response_body_like eval
[qr/error/, qr/^\Q{"model":"claude-sonnet-4-5","max_tokens":100,"system":"x"\E$/]
--- no_error_log
[error]



=== TEST 11: OpenAI: tools in a deterministic order; the same prefix either way
--- request eval
my $t1 = '{"type":"function","function":{"name":"b_tool","parameters":{"type":"object","properties":{}}}}';
my $t2 = '{"type":"function","function":{"name":"a_tool","parameters":{"type":"object","properties":{}}}}';
["POST /v1/chat/completions\n" . qq/{"model":"gpt-4o","tools":[$t1,$t2],"messages":[{"role":"user","content":"x"}]}/,
 "GET /__mock/last?part=body"]
--- response_body_like eval
[qr/chat\.completion/, qr/"name":"a_tool".*"name":"b_tool"/]
--- no_error_log
[error]
