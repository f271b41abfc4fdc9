# What is stored and for how long: TTL, llmcache_bypass, llmcache_no_store,
# the client's Cache-Control, size limits, and responses that must never be
# stored (non-200, encoded, broken).

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_long_string();

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        llmcache_bypass $http_x_bypass;
        llmcache_no_store $http_x_no_store;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

# chat(TEXT) -> a request line + body asking TEXT
sub chat {
    my $text = shift // "What is a cache?";
    return "POST /v1/chat/completions\n"
        . '{"model":"gpt-4o","messages":[{"role":"user","content":"'
        . $text . '"}]}';
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers",
                      "Content-Type: application/json\n"
                      . "Authorization: Bearer sk-test-0004")
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: entries carry the TTL and expire with it
--- config
    location /v1/ {
        llmcache on;
        llmcache_ttl 1s;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
--- request eval
[main::chat(), main::chat(), "GET /__mock/redis/dump", "GET /__mock/sleep?ms=2100",
 main::chat()]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", "", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/^llmc:\S+\t1\t/, qr/ok/, qr/#2/]
--- no_error_log
[error]



=== TEST 2: the default TTL is one hour
--- request eval
[main::chat(), "GET /__mock/redis/dump"]
--- response_body_like eval
[qr/#1/, qr/^llmc:\S+\t(3600|3599)\t/]
--- no_error_log
[error]



=== TEST 3: llmcache_bypass skips the lookup but stores the answer
--- request eval
[main::chat(), main::chat(), main::chat()]
--- more_headers eval
["Content-Type: application/json", "Content-Type: application/json\nX-Bypass: 1",
 "Content-Type: application/json"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#2/]
--- no_error_log
[error]



=== TEST 4: llmcache_no_store looks up but does not store
--- request eval
[main::chat(), main::chat(), main::chat()]
--- more_headers eval
["Content-Type: application/json\nX-No-Store: yes", "Content-Type: application/json",
 "Content-Type: application/json\nX-No-Store: 1"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#2/]
--- no_error_log
[error]



=== TEST 5: a predicate of "0" or empty is false
--- request eval
[main::chat(), main::chat()]
--- more_headers eval
["Content-Type: application/json\nX-Bypass: 0", "Content-Type: application/json\nX-No-Store: 0\nX-Bypass:"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#1/]
--- no_error_log
[error]



=== TEST 6: Cache-Control: no-cache skips the lookup but stores
--- request eval
[main::chat(), main::chat(), main::chat()]
--- more_headers eval
["Content-Type: application/json", "Content-Type: application/json\nCache-Control: no-cache",
 "Content-Type: application/json"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#2/]
--- no_error_log
[error]



=== TEST 7: Cache-Control: no-store skips both
--- request eval
[main::chat(), main::chat(), main::chat()]
--- more_headers eval
["Content-Type: application/json\nCache-Control: no-store",
 "Content-Type: application/json\nCache-Control: max-age=0, No-Store",
 "Content-Type: application/json"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/]
--- no_error_log
[error]



=== TEST 8: upstream errors are never stored
--- request eval
[main::chat(), main::chat(), main::chat(), main::chat()]
--- more_headers eval
["Content-Type: application/json\nX-Mock-Status: 500",
 "Content-Type: application/json\nX-Mock-Status: 429",
 "Content-Type: application/json", "Content-Type: application/json"]
--- error_code eval
[500, 429, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/error/, qr/error/, qr/#3/, qr/#3/]
--- no_error_log
[error]



=== TEST 9: a response over llmcache_max_entry_size is passed on whole, not stored
--- config
    location /v1/ {
        llmcache on;
        llmcache_max_entry_size 4k;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
[main::chat(), main::chat(), main::chat("small"), main::chat("small")]
--- more_headers eval
["Content-Type: application/json\nX-Mock-Body-Size: 20000",
 "Content-Type: application/json\nX-Mock-Body-Size: 20000",
 "Content-Type: application/json", "Content-Type: application/json"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/^\{.{20000,}\}$/s, qr/#2/, qr/#3/, qr/#3/]
--- no_error_log
[error]



=== TEST 10: a large response spilled to a temporary file is stored whole
--- config
    location /v1/ {
        llmcache on;
        proxy_buffer_size 4k;
        proxy_buffers 2 4k;
        proxy_busy_buffers_size 4k;
        proxy_max_temp_file_size 1m;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
[main::chat("big"), main::chat("big")]
--- more_headers
Content-Type: application/json
X-Mock-Body-Size: 300000
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/^\{"id":"chatcmpl-mock-1"(?:.{60000}){4}.*\}$/s, qr/^\{"id":"chatcmpl-mock-1"(?:.{60000}){4}.*\}$/s]
--- no_error_log
[error]



=== TEST 11: a gzip-encoded upstream response is not stored
--- request eval
[main::chat(), main::chat()]
--- more_headers
Content-Type: application/json
X-Mock-Content-Encoding: gzip
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- no_error_log
[error]



=== TEST 12: an upstream connection reset mid-body stores nothing
--- request eval
[main::chat(), "GET /__mock/redis/dump", main::chat()]
--- more_headers eval
["Content-Type: application/json\nX-Mock-Reset-After: 40\nX-Mock-Body-Size: 2000",
 "", "Content-Type: application/json"]
--- response_body_like eval
[qr/^.{0,40}$/s, qr/^$/, qr/#2/]



=== TEST 13: the reset is nginx's own error, not the cache's
--- request eval
main::chat()
--- more_headers
Content-Type: application/json
X-Mock-Reset-After: 40
X-Mock-Body-Size: 2000
--- response_body_like: ^.{0,40}$
--- error_log eval
qr/Connection reset by peer\) while reading upstream|upstream prematurely closed connection/



=== TEST 14: llmcache_ttl 0 stores nothing
--- config
    location /v1/ {
        llmcache on;
        llmcache_ttl 0;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
[main::chat(), main::chat()]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/]
--- no_error_log
[error]
