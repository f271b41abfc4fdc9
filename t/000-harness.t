# The suite harness itself, with stock nginx only (no llmcache module): the
# Test::Nginx runner (the real one or t/lib's), the provider mock and the
# Redis it owns, and the per-block reset done by t/inc/LLMCacheTest.pm.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

# Left over on purpose: every block must start with an empty Redis.
redis_cmd('SET', 'harness:stale', 'x') eq 'OK'
    or die "cannot write to the suite's Redis\n";

# --- redis_dbsize: N checks the Redis key count after each response.
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $want = $block->redis_dbsize;
    return if !defined $want || $dry_run;
    Test::More::is(redis_cmd('DBSIZE'), $want,
                   $block->name . " - redis DBSIZE (req $req_idx)");
});

run_tests();

__DATA__

=== TEST 1: status, body, clean error log
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello
--- redis_dbsize: 0
--- no_error_log
[error]



=== TEST 2: status code and headers present, absent, empty
--- config
    location = /t {
        add_header X-Foo "bar baz" always;
        return 404;
    }
--- request
GET /t
--- error_code: 404
--- response_headers
X-Foo: bar baz
!X-Absent
X-Also-Absent:
Content-Type: text/html
--- response_body_like: <title>404 Not Found</title>
--- no_error_log
[error]



=== TEST 3: header patterns, body mismatch pattern
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers_like
Server: nginx/\d+\.\d+\.\d+
Content-Length: \d+
--- response_body_unlike: error
--- no_error_log
[error]



=== TEST 4: an array of requests, each on its own connection
--- config
    location = /a {
        return 200 "a\n";
    }
    location = /b {
        return 201 "b\n";
    }
--- request eval
["GET /a", "GET /b", "GET /nope"]
--- error_code eval
[200, 201, 404]
--- response_body_like eval
["^a\$", "^b\$", "404 Not Found"]
--- response_headers eval
["Content-Length: 2", "Content-Length: 2", "!X-Foo"]



=== TEST 5: request headers and a body with a computed Content-Length
--- config
    location = /t {
        return 200 "x-foo=$http_x_foo length=$content_length\n";
    }
--- more_headers
X-Foo: bar
--- request
POST /t
hello, world
--- response_body
x-foo=bar length=12
--- no_error_log
[error]



=== TEST 6: error_log with strings and regexes
--- config
    location /missing/ {
        root html;
    }
--- request
GET /missing/nothing.html
--- error_code: 404
--- error_log eval
["No such file or directory", qr{open\(\) ".*/missing/nothing\.html" failed}]
--- no_error_log
[crit]
[alert]



=== TEST 7: $TEST_NGINX_* variables expand in the configuration
--- config
    location = /t {
        return 200 "mock=$TEST_NGINX_MOCK_PORT redis=$TEST_NGINX_REDIS_PORT bad=$TEST_NGINX_BAD_REDIS_PORT dict=$TEST_NGINX_DICT_DIR\n";
    }
--- request
GET /t
--- response_body eval
"mock=$ENV{TEST_NGINX_MOCK_PORT} redis=$ENV{TEST_NGINX_REDIS_PORT} "
. "bad=$ENV{TEST_NGINX_BAD_REDIS_PORT} dict=$ENV{TEST_NGINX_DICT_DIR}\n"
--- no_error_log
[error]



=== TEST 8: proxy to the provider mock; its call counter starts at 0
--- config
    location /v1/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
    location = /calls {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__calls;
    }
--- more_headers
Content-Type: application/json
--- request eval
my $body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}';
["GET /calls", "POST /v1/chat/completions\n$body",
 "POST /v1/chat/completions\n$body", "GET /calls"]
--- response_body_like eval
['^0\s*$', '"object":\s*"chat\.completion".*mock answer #1 to: hi',
 'mock answer #2 to: hi', '^2\s*$']
--- response_headers eval
["", "X-Mock-Call: 1", "X-Mock-Call: 2", ""]
--- no_error_log
[error]



=== TEST 9: Redis is flushed before each block
--- init
LLMCacheTest::redis_cmd('SET', 'harness:marker', 'x') eq 'OK'
    or die "SET failed";
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- redis_dbsize: 1



=== TEST 10: Redis running: nginx reaches its port
--- config
    location = /redis {
        proxy_pass http://127.0.0.1:$TEST_NGINX_REDIS_PORT;
        proxy_connect_timeout 1s;
        proxy_read_timeout 1s;
    }
--- request
GET /redis
--- error_code_like: ^(?:200|502)$
--- no_error_log
Connection refused
upstream timed out



=== TEST 11: --- redis: stopped
--- redis: stopped
--- config
    location = /redis {
        proxy_pass http://127.0.0.1:$TEST_NGINX_REDIS_PORT;
        proxy_connect_timeout 1s;
        proxy_read_timeout 1s;
    }
--- request
GET /redis
--- error_code: 502
--- error_log
connect() failed (111: Connection refused)



=== TEST 12: --- redis: paused
--- redis: paused
--- config
    location = /redis {
        proxy_pass http://127.0.0.1:$TEST_NGINX_REDIS_PORT;
        proxy_connect_timeout 1s;
        proxy_read_timeout 300ms;
    }
--- request
GET /redis
--- error_code: 504
--- error_log
upstream timed out
--- no_error_log
Connection refused



=== TEST 13: chunked responses are decoded before comparing
--- config
    location = /t {
        sub_filter_types text/plain;
        sub_filter_once off;
        sub_filter a b;
        return 200 "aaa\n";
    }
--- request
GET /t
--- raw_response_headers_like: Transfer-Encoding: chunked\r\n
--- response_headers
!Content-Length
--- response_body
bbb
--- no_error_log
[error]



=== TEST 14: pipelined requests on one connection
--- config
    location = /a {
        return 200 "A";
    }
    location = /b {
        return 202 "B";
    }
--- pipelined_requests eval
["GET /a", "GET /b"]
--- error_code eval
[200, 202]
--- response_body eval
["A", "B"]
--- no_error_log
[error]



=== TEST 15: raw request, HTTP/1.0
--- config
    location = /t {
        return 200 "raw\n";
    }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n
--- response_body
raw



=== TEST 16: HEAD request
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
HEAD /t
--- response_headers
Content-Length: 6
--- response_body chomp



=== TEST 17: a request split in packets with a delay
--- config
    location = /t {
        return 200 "length=$content_length x=$http_x\n";
    }
--- more_headers
X: y
--- request eval
[["POST /t\nhel", {value => "lo", delay_before => 0.05}]]
--- response_body
length=5 x=y



=== TEST 18: client timeout with --- abort
--- config
    location = /slow {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions;
        proxy_set_header X-Mock-Delay-Ms 800;
        proxy_set_header Content-Type application/json;
    }
--- request
POST /slow
{"model":"m","messages":[{"role":"user","content":"slow"}]}
--- timeout: 200ms
--- abort
--- ignore_response
--- no_error_log
[crit]



=== TEST 19: skipped for nginx > 1.0.0
--- skip_nginx: 2: > 1.0.0
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- response_body
never checked



=== TEST 20: nginx must die on a bad configuration
--- config
    location = /t {
        return a b c;
    }
--- must_die



=== TEST 21: what nginx logs while it exits
--- config
    location = /t {
        return 200 "bye\n";
    }
--- request
GET /t
--- response_body
bye
--- shutdown_error_log eval
[qr/signal 3 \(SIGQUIT\) received/, qr/\[notice\] \d+#\d+: exit$/]
--- no_shutdown_error_log
[alert]
