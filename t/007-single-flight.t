# Single flight: identical requests arriving together reach the provider
# once; the others wait for the first one's answer (llmcache_lock).

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

no_shuffle();
worker_connections(1024);

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        add_header X-LLM-Lock-Time $llmcache_lock_time always;
        proxy_set_header X-Mock-Delay-Ms $http_x_delay;
        proxy_set_header X-Mock-Status $http_x_status;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /nolock/ {
        llmcache on;
        llmcache_lock off;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_set_header X-Mock-Delay-Ms $http_x_delay;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location /short/ {
        llmcache on;
        llmcache_lock_timeout 300ms;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_set_header X-Mock-Delay-Ms $http_x_delay;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location /__mock/ {
        proxy_read_timeout 60s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

# fanout(N, PATH, HEADERS) -> a request that makes the mock send N identical
# chat requests to this nginx at once
sub fanout {
    my ($n, $path, $headers) = @_;
    my $body = '{"model":"gpt-4o","messages":[{"role":"user","content":"popular question"}]}';
    $body =~ s/"/\\"/g;
    my $h = join ",", map { qq{"$_":"$headers->{$_}"} } sort keys %$headers;
    return "POST /__mock/fanout\n"
        . qq/{"url":"http:\/\/127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}$path",/
        . qq/"n":$n,"body":"$body","headers":{$h}}/;
}

# Under valgrind nginx is about 20 times slower, and with a 300 ms holder
# the 100 requests of TEST 1 are still arriving when it has its answer: one
# whose lookup is on its way while the holder stores the entry and releases
# the lock takes the lock itself and calls the provider a second time.
# There the provider holds the answer back 3 s, so that every request is
# waiting before it comes, and the waiters wait up to 60 s rather than the
# default 5 s, which a 3 s holder could outlast on a busy machine.
our $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $FanoutDelay = $Valgrind ? 3000 : 300;
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
    $block->set_value("timeout", 60) unless defined $block->timeout;
});

run_tests();

__DATA__

=== TEST 1: 100 identical requests at once: one provider call, 100 answers
--- request eval
[main::fanout(100, "/v1/chat/completions",
              {"X-Delay" => $main::FanoutDelay}),
 "GET /__mock/calls"]
--- response_body_like eval
[qr/"statuses":\{"200":100\}.*"distinct_bodies":1\b/, qr/^1$/]
--- no_error_log
[error]



=== TEST 2: without the lock every one of them goes upstream
--- request eval
[main::fanout(20, "/nolock/v1/chat/completions", {"X-Delay" => "300"}),
 "GET /__mock/calls"]
--- response_body_like eval
[qr/"statuses":\{"200":20\}.*"distinct_bodies":20\b/, qr/^20$/]
--- no_error_log
[error]



=== TEST 3: the waiters report how long they waited
--- request eval
[main::fanout(2, "/v1/chat/completions", {"X-Delay" => "400"}),
 "GET /__mock/calls",
 "POST /v1/chat/completions\n" . '{"model":"gpt-4o","messages":[{"role":"user","content":"popular question"}]}']
--- response_body_like eval
[qr/"cache":\{("HIT":1,"MISS":1|"MISS":1,"HIT":1)\}/, qr/^1$/, qr/#1/]
--- response_headers eval
["", "", "X-LLM-Lock-Time: 0"]
--- no_error_log
[error]



=== TEST 4: a holder slower than llmcache_lock_timeout: the waiters go upstream themselves
--- request eval
[main::fanout(5, "/short/v1/chat/completions", {"X-Delay" => "1500"}),
 "GET /__mock/calls"]
--- response_body_like eval
[qr/"statuses":\{"200":5\}/, qr/^5$/]
--- no_error_log
[error]



=== TEST 5: a holder whose answer is not storable: the waiters go upstream
--- request eval
[main::fanout(5, "/v1/chat/completions", {"X-Delay" => "300", "X-Status" => "500"}),
 "GET /__mock/calls"]
--- response_body_like eval
[qr/"statuses":\{"500":5\}/, qr/^5$/]
--- no_error_log
[error]



=== TEST 6: the lock holder's Redis goes away: every request is still answered
--- redis: stopped
--- request eval
[main::fanout(10, "/v1/chat/completions", {"X-Delay" => "200"}),
 "GET /__mock/calls"]
--- response_body_like eval
[qr/"statuses":\{"200":10\}/, qr/^10$/]
