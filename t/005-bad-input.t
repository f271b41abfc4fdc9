# Bad input: whatever the module cannot read as a known request goes to the
# provider untouched, as BYPASS, and nothing is stored.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;

no_shuffle();

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        llmcache_max_body_size 2k;
        add_header X-LLM-Cache $llmcache_status always;
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
    $block->set_value("more_headers", "Content-Type: application/json")
        unless defined $block->more_headers;
});

our $Long = '{"model":"gpt-4o","messages":[{"role":"user","content":"'
    . ('a long question ' x 1500) . '"}]}';

# bad(BODY[, URI]) -> [the request twice, what the upstream got, the Redis
# dump]: BYPASS both times, body forwarded byte for byte, nothing stored.
sub bad {
    my ($body, $uri) = @_;
    $uri //= "/v1/chat/completions";
    return ["POST $uri\n$body", "POST $uri\n$body",
            "GET /__mock/last?part=body", "GET /__mock/redis/dump"];
}

sub bypassed {
    return ["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "", ""];
}

run_tests();

__DATA__

=== TEST 1: invalid JSON
--- request eval
main::bad('{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]')
--- error_code eval
[400, 400, 200, 200]
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/error/, qr/error/,
 qr/^\Q{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]\E$/, qr/^$/]
--- no_error_log
[error]



=== TEST 2: the reason is logged at "info"
--- request eval
"POST /v1/chat/completions\n" . '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]'
--- error_code: 400
--- response_headers
X-LLM-Cache: BYPASS
--- log_level: info
--- error_log
llmcache: not cacheable
--- no_error_log
[error]



=== TEST 3: JSON that is not a chat request
--- request eval
main::bad('{"model":"gpt-4o","prompt":"hi"}')
--- error_code eval
[400, 400, 200, 200]
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/error/, qr/error/, qr/^\Q{"model":"gpt-4o","prompt":"hi"}\E$/, qr/^$/]
--- no_error_log
[error]



=== TEST 4: a JSON array, a string, a number at the top level
--- request eval
my $r = main::bad('[1,2,3]');
[@$r[0, 2, 3]]
--- error_code eval
[400, 200, 200]
--- response_headers eval
["X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
[qr/error/, qr/^\Q[1,2,3]\E$/, qr/^$/]
--- no_error_log
[error]



=== TEST 5: a wrong Content-Type
--- request eval
main::bad('{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}')
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/#1/, qr/#2/, qr/^\Q{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}\E$/, qr/^$/]
--- no_error_log
[error]



=== TEST 6: no Content-Type at all
--- request eval
main::bad('{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}')
--- more_headers
X-Nothing: here
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/#1/, qr/#2/, qr/hi/, qr/^$/]
--- no_error_log
[error]



=== TEST 7: invalid UTF-8 inside a JSON string
--- request eval
main::bad("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"bad \xff\xfe bytes\"}]}")
--- error_code eval
[400, 400, 200, 200]
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/./, qr/./, qr/bad .+ bytes/, qr/^$/]
--- no_error_log
[error]



=== TEST 8: deeply nested JSON
--- request eval
my $deep = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"x":'
    . ('[' x 500) . (']' x 500) . '}';
main::bad($deep)
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/./, qr/./, qr/^\{"model".*\]\]\]\}$/, qr/^$/]
--- no_error_log
[error]



=== TEST 9: an empty body
--- request eval
["POST /v1/chat/completions\n", "GET /__mock/redis/dump"]
--- error_code eval
[400, 200]
--- response_headers eval
["X-LLM-Cache: BYPASS", ""]
--- response_body_like eval
[qr/error/, qr/^$/]
--- no_error_log
[error]



=== TEST 10: a body over llmcache_max_body_size
--- request eval
my $big = '{"model":"gpt-4o","messages":[{"role":"user","content":"' . ('x' x 3000) . '"}]}';
main::bad($big)
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/#1/, qr/#2/, qr/^\{"model":"gpt-4o".{3000,}\}$/, qr/^$/]
--- no_error_log
[error]



=== TEST 11: a body over the limit sent chunked (no Content-Length)
--- raw_request eval
my $big = '{"model":"gpt-4o","messages":[{"role":"user","content":"' . ('y' x 3000) . '"}]}';
"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
. "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
. "Connection: close\r\n\r\n"
. sprintf("%x\r\n%s\r\n0\r\n\r\n", length($big), $big)
--- response_headers
X-LLM-Cache: BYPASS
--- response_body_like: mock answer #1
--- no_error_log
[error]



=== TEST 12: an unknown URI in a cached location is BYPASS
--- request eval
main::bad('{"model":"text-embedding-3-small","input":"hello"}', "/v1/embeddings")
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/embedding/, qr/embedding/, qr/hello/, qr/^$/]
--- no_error_log
[error]



=== TEST 13: duplicate keys make the request ambiguous
--- request eval
main::bad('{"model":"gpt-4o","model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}')
--- response_headers eval
main::bypassed()
--- response_body_like eval
[qr/./, qr/./, qr/gpt-4o-mini/, qr/^$/]
--- no_error_log
[error]



=== TEST 14: a value in Redis larger than any entry this location stores is not served
--- config
    location /v1/ {
        llmcache on;
        llmcache_max_body_size 64k;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /small/ {
        llmcache on;
        llmcache_max_body_size 64k;
        llmcache_max_entry_size 1k;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }
--- init
# a 24 kB answer stored through /v1/, and served from there as a HIT,
# before the block's request
my $url = 'http://127.0.0.1:' . Test::Nginx::Socket::server_port()
    . '/v1/chat/completions';
my %req = (headers => {'Content-Type' => 'application/json'},
           content => $main::Long);
my $res = HTTP::Tiny->new(timeout => 10)->request('POST', $url, \%req);
die "priming: $res->{status}\n" unless $res->{status} == 200;
for (1 .. 100) {
    last if LLMCacheTest::redis_keys('llmc:*:e:*');
    select undef, undef, undef, 0.05;
}
$res = HTTP::Tiny->new(timeout => 10)->request('POST', $url, \%req);
die "priming: not a HIT at /v1/\n"
    unless ($res->{headers}{'x-llm-cache'} // '') eq 'HIT';
--- request eval
"POST /small/v1/chat/completions\n$main::Long"
--- error_code: 200
--- response_headers
X-LLM-Cache: MISS
--- grep_error_log eval
qr/llmcache: ignoring an entry llmc:\S+ of \d+ bytes, over llmcache_max_entry_size/
--- grep_error_log_out eval
qr/\Allmcache: ignoring an entry llmc:\S+ of \d+ bytes, over llmcache_max_entry_size\n\z/
--- no_error_log
[error]
