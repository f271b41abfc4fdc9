# Faults: Redis refused, killed, paused past the timeout, answering errors.
# Every request is still answered by the provider (MISS), one error line per
# incident, and caching resumes by itself once Redis is back.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

# Error-log checks run after every request of a block, on the lines that
# request added (Test::Nginx's semantics): a pattern in grep_error_log_out
# that allows at most one line per request, with single-request blocks
# proving that the line is there.

no_shuffle();

# Under valgrind a command to a running Redis can take longer than 200 ms,
# and the extra "timed out" (and "is answering again") lines would break
# the one-line-per-incident checks.  There the timeout is 5 s, as the
# harness gives blocks without one of their own, so only a paused Redis
# times out; the clients wait long enough for it.
our $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $RedisTimeout = $Valgrind ? '5s' : '200ms';

our $HttpConfig = <<"_EOC_";
    llmcache_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;
    llmcache_redis_timeout $RedisTimeout;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

sub chat {
    my $text = shift // "Is Redis up?";
    return "POST /v1/chat/completions\n"
        . '{"model":"gpt-4o","messages":[{"role":"user","content":"'
        . $text . '"}]}';
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers", "Content-Type: application/json")
        unless defined $block->more_headers;
    $block->set_value("timeout", 30) if $Valgrind && !defined $block->timeout;
});

run_tests();

__DATA__

=== TEST 1: Redis refuses connections: the request is a MISS from the provider
--- redis: stopped
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:\d+ connect failed: Connection refused; requests go upstream uncached until it recovers/



=== TEST 2: Redis refusing: every request answered, no more error lines
--- redis: stopped
--- request eval
[main::chat(), main::chat(), main::chat(), main::chat()]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#4/]
--- grep_error_log eval: qr/\[error\].*llmcache: redis/
--- grep_error_log_out eval
qr/\A([^\n]*llmcache: redis[^\n]*\n)?\z/



=== TEST 3: Redis killed while serving; caching resumes once it is back
--- request eval
[main::chat(), main::chat(),
 "POST /__mock/redis/stop", main::chat(), main::chat(),
 "POST /__mock/redis/start", "GET /__mock/sleep?ms=1200",
 main::chat(), main::chat()]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", "", "", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/ok/, qr/#2/, qr/#3/, qr/ok/, qr/ok/, qr/#4/, qr/#4/]
--- grep_error_log eval: qr/llmcache: redis \S+ (connection lost|connect failed|timed out|answered|is answering again)/
--- grep_error_log_out eval
qr/\A(llmcache: redis 127\.0\.0\.1:\d+ (connection lost|is answering again)\n)?\z/



=== TEST 4: the kill of a connected Redis is logged as an error
--- request
POST /__mock/redis/stop
--- response_body_like: ok
--- wait: 0.2
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:\d+ connection lost: Server closed the connection/



=== TEST 5: Redis paused past llmcache_redis_timeout: MISS, then HIT once resumed
--- request eval
[main::chat(), main::chat(),
 "POST /__mock/redis/pause", main::chat(), main::chat(),
 "POST /__mock/redis/resume", main::chat()]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/ok/, qr/#2/, qr/#3/, qr/ok/, qr/#\d/]
--- grep_error_log eval: qr/llmcache: redis \S+ (timed out|is answering again)/
--- grep_error_log_out eval
qr/\A(llmcache: redis 127\.0\.0\.1:\d+ (timed out|is answering again)\n)?\z/



=== TEST 6: a paused Redis is one error line: "timed out"
--- redis: paused
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:\d+ timed out; requests go upstream uncached/



=== TEST 7: Redis answering errors: MISS, the error said once
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_BAD_REDIS_PORT;
--- request eval
[main::chat(), main::chat(), main::chat()]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/]
--- grep_error_log eval: qr/llmcache: redis \S+ answered: [^;]+/
--- grep_error_log_out eval
qr/\A(llmcache: redis 127\.0\.0\.1:\d+ answered: ERR mock failure\n)?\z/



=== TEST 8: the Redis error reply is logged
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_BAD_REDIS_PORT;
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:\d+ answered: ERR mock failure/



=== TEST 9: a wrong password: MISS, and the AUTH error is logged
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=wrong-password;
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1
--- error_log eval
qr/llmcache: redis 127\.0\.0\.1:\d+ AUTH: ERR/



=== TEST 10: db= selects the database; entries land there
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=3;
--- request eval
[main::chat(), main::chat(), "GET /__mock/redis/dump?db=3", "GET /__mock/redis/dump"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/^llmc:/, qr/^$/]
--- no_error_log
[error]



=== TEST 11: a unix socket that does not exist: MISS
--- http_config
    llmcache_redis unix:/nonexistent/redis.sock;
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1
--- error_log
llmcache: redis unix:/nonexistent/redis.sock connect failed
