# Purge: DELETE (or PURGE) on an llmcache_purge location removes one entry
# with its vector and bucket memberships (?key=), every key of a scope
# (?scope=), or everything under the prefix (?all=1), leaving the rest;
# allow/deny guard it; bad requests are 400.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

use IO::Socket::INET;

no_shuffle();
no_long_string();
workers(2);
master_on();

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llmcache_zone llmcache 1m;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/ko.dict;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/en.dict;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location = /purge {
        allow 127.0.0.1;
        deny all;
        llmcache_purge;
    }

    location = /purge-forbidden {
        deny all;
        llmcache_purge;
    }

    location = /metrics {
        llmcache_metrics;
    }
_EOC_

sub chat {
    my ($text) = @_;
    return "POST /v1/chat/completions\n"
        . qq/{"model":"gpt-4o","messages":[{"role":"user","content":"$text"}]}/;
}

# http($method, $uri[, $headers, $body]) -> (status, headers, body)
sub http {
    my ($method, $uri, $headers, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => Test::Nginx::Socket::server_port(),
                                  Timeout => 5) or die "connect: $!";
    $body //= '';
    $headers //= '';
    utf8::encode($body) if utf8::is_utf8($body);
    print {$s} "$method $uri HTTP/1.0\r\nHost: localhost\r\n$headers"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    local $/;
    my $resp = <$s>;
    close $s;
    my ($head, $b) = split /\r\n\r\n/, $resp, 2;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    return ($status, $head, $b);
}

sub ask {
    my ($text, $tenant) = @_;
    $tenant //= 'sk-test-0011';
    my ($status, $head) = http('POST', '/v1/chat/completions',
        "Content-Type: application/json\r\nAuthorization: Bearer $tenant\r\n",
        qq/{"model":"gpt-4o","messages":[{"role":"user","content":"$text"}]}/);
    my ($cache) = $head =~ /X-LLM-Cache: (\w+)/;
    # a MISS is stored by commands nobody waits for: let Redis run them
    select(undef, undef, undef, 0.2) if ($cache // '') eq 'MISS';
    return $cache;
}

# the exact key and scope of the stored entry whose answer quotes $text
sub entry_of {
    my ($text) = @_;
    for my $k (LLMCacheTest::redis_keys('llmc:{*}:e:*')) {
        my $v = LLMCacheTest::redis_cmd('GET', $k) // '';
        utf8::decode($v);
        if (index($v, "to: $text") >= 0) {
            my ($scope, $key) = $k =~ /^llmc:\{([0-9a-f]+)\}:e:([0-9a-f]+)$/;
            return ($key, $scope);
        }
    }
    return;
}

# exacts present in some LSH bucket of $scope
sub bucketed {
    my ($scope) = @_;
    my %in;
    for my $b (LLMCacheTest::redis_keys("llmc:{$scope}:b:*")) {
        $in{$_} = 1 for @{LLMCacheTest::redis_cmd('SMEMBERS', $b)};
    }
    return \%in;
}

sub nkeys {
    my @k = LLMCacheTest::redis_keys(shift);
    return scalar @k;
}

# wait until the block's MISS is done with Redis: its single-flight lock
# released and no more keys coming.  The client has its answer before
# that; under valgrind the lock can still be there seconds later, and a
# count taken then would include a key that goes before the purge.
sub settled {
    my $until = time + ($ENV{TEST_NGINX_USE_VALGRIND} ? 60 : 10);
    my $last = -1;
    while (time < $until) {
        my $n = nkeys('llmc:*');
        return if $n == $last && !nkeys('llmc:{*}:l:*');
        $last = $n;
        select(undef, undef, undef, 0.1);
    }
    Test::More::diag("the keys under llmc: did not settle");
}

# --- then: Perl run after the block's (single) request (the block's nginx is
# still up): it drives the purge itself, since the keys are only known once
# the entries exist
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $code = $block->then;
    return if !defined $code || $dry_run;
    eval "package main; $code; 1" or Test::More::fail($block->name . ": $@");
});

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
});

run_tests();

__DATA__

=== TEST 1: by key: the entry, its vector and bucket memberships go; the other entry stays
--- request eval
main::chat("What is the capital of France?")
--- more_headers
Content-Type: application/json
Authorization: Bearer sk-test-0011
--- response_headers
X-LLM-Cache: MISS
--- then
my $n = $block->name;
is(ask("Name a prime number."), 'MISS', "$n - second entry");
my ($ka, $scope) = entry_of("What is the capital of France?");
my ($kb) = entry_of("Name a prime number.");
ok($ka && $kb, "$n - both entries stored");
ok(bucketed($scope)->{$ka}, "$n - A indexed");
ok(nkeys("llmc:{$scope}:v:*:$ka"), "$n - A's vector");
my ($st, $h, $b) = http('DELETE', "/purge?key=$ka");
is($st, 200, "$n - 200");
like($b, qr/^\{"deleted":2,"entries":1\}$/, "$n - entry and vector deleted");
like($h, qr{Content-Type: application/json}, "$n - JSON");
is(nkeys("llmc:{*}:*$ka"), 0, "$n - no key of A left");
ok(!bucketed($scope)->{$ka}, "$n - A in no bucket");
ok(bucketed($scope)->{$kb}, "$n - B still in its buckets");
ok(LLMCacheTest::redis_cmd('EXISTS', "llmc:{$scope}:e:$kb"), "$n - B's entry stays");
is(ask("Name a prime number."), 'HIT', "$n - B still a HIT");
is(ask("What is the capital of France?"), 'MISS', "$n - A a MISS again");
($st, $h, $b) = http('DELETE', "/purge?key=$ka");
like($b, qr/^\{"deleted":2,"entries":1\}$/, "$n - stored anew, purged anew");
($st, $h, $b) = http('PURGE', "/purge?key=" . ('0' x 64));
like("$st $b", qr/^200 \{"deleted":0,"entries":0\}$/, "$n - PURGE of an unknown key: 0");
--- no_error_log
[error]



=== TEST 2: by scope (PURGE): one tenant's entries go, another tenant's stay
--- request eval
[main::chat("What is the capital of France?")]
--- more_headers
Content-Type: application/json
Authorization: Bearer sk-test-0011
--- then
my $n = $block->name;
is(ask("Name a prime number."), 'MISS', "$n - second entry, tenant 1");
is(ask("What is the capital of France?", 'sk-other'), 'MISS', "$n - tenant 2");
my ($k1, $s1) = entry_of("Name a prime number.");
my @all = LLMCacheTest::redis_keys('llmc:{*}:e:*');
my ($s2) = grep { $_ ne $s1 } map { /\{(\w+)\}/; $1 } @all;
ok($s1 && $s2 && $s1 ne $s2, "$n - two scopes");
my $mine = nkeys("llmc:{$s1}:*");
my $theirs = nkeys("llmc:{$s2}:*");
my ($st, $h, $b) = http('PURGE', "/purge?scope=" . uc $s1);
is($st, 200, "$n - 200");
like($b, qr/^\{"deleted":$mine,"entries":2\}$/, "$n - every key of the scope");
is(nkeys("llmc:{$s1}:*"), 0, "$n - scope empty");
is(nkeys("llmc:{$s2}:*"), $theirs, "$n - other scope intact");
is(ask("What is the capital of France?", 'sk-other'), 'HIT', "$n - tenant 2 still HIT");
is(ask("What is the capital of France?"), 'MISS', "$n - tenant 1 MISS");
--- no_error_log
[error]



=== TEST 3: all, over several SCAN rounds; keys outside the prefix stay
--- request eval
[main::chat("What is the capital of France?")]
--- more_headers
Content-Type: application/json
Authorization: Bearer sk-test-0011
--- then
my $n = $block->name;
my @kv = map { ("llmc:{" . sprintf("%032x", $_ % 7) . "}:e:" . sprintf("%064x", $_), "x") } 1 .. 3000;
LLMCacheTest::redis_cmd('MSET', @kv);
LLMCacheTest::redis_cmd('SET', 'other:keep', 'me');
LLMCacheTest::redis_cmd('SET', 'llmcx', 'me too');
settled();
my $total = nkeys('llmc:*');
ok($total > 3000, "$n - $total keys to purge");
my ($st, $h, $b) = http('DELETE', "/purge?all=1");
is($st, 200, "$n - 200");
like($b, qr/^\{"deleted":$total,"entries":3001\}$/, "$n - all deleted");
is(nkeys('llmc:*'), 0, "$n - none left");
is(LLMCacheTest::redis_cmd('GET', 'other:keep'), 'me', "$n - other keys stay");
is(LLMCacheTest::redis_cmd('GET', 'llmcx'), 'me too', "$n - prefix means llmc:");
($st, $h, $b) = http('GET', "/metrics");
like($b, qr/^llmcache_purged_keys_total $total$/m, "$n - counted in the metrics");
--- no_error_log
[error]



=== TEST 4: a forbidden client gets 403 (deny all)
--- request
DELETE /purge-forbidden?all=1
--- more_headers
--- error_code: 403
--- error_log
access forbidden by rule



=== TEST 5: bad requests: no parameter, bad hex, wrong lengths, two at once, all=2
--- request eval
["DELETE /purge", "DELETE /purge?key=xyz",
 "DELETE /purge?key=" . ("g" x 64), "DELETE /purge?key=" . ("a" x 63),
 "DELETE /purge?scope=" . ("0" x 31), "DELETE /purge?scope=" . ("z" x 32),
 "DELETE /purge?scope=" . ("0" x 32) . "&all=1", "DELETE /purge?all=2",
 "DELETE /purge?foo=1"]
--- more_headers
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 400]
--- response_body_like eval
[qr/give one of key=, scope= or all=1/, qr/key is 64 hex digits/,
 qr/key is 64 hex digits/, qr/key is 64 hex digits/,
 qr/scope is 32 hex digits/, qr/scope is 32 hex digits/,
 qr/give one of/, qr/all takes 1/, qr/give one of/]
--- no_error_log
[error]



=== TEST 6: other methods: 405
--- request eval
["GET /purge?all=1", "POST /purge?all=1\n{}"]
--- more_headers
--- error_code eval
[405, 405]
--- response_body_like eval
[qr/use DELETE or PURGE/, qr/use DELETE or PURGE/]



=== TEST 7: Redis down: 503, said in JSON (refused at once, or once the connect fails)
--- redis: stopped
--- request
DELETE /purge?all=1
--- more_headers
--- error_code: 503
--- response_body_like eval
qr/^\{"error":"redis (is not available","deleted":0|failed during the purge","deleted":0,"entries":0)\}\n\z/



=== TEST 8: by key when the entry expired before its vector: the vector and memberships still go
--- request eval
main::chat("What is the capital of France?")
--- more_headers
Content-Type: application/json
Authorization: Bearer sk-test-0011
--- then
my $n = $block->name;
select(undef, undef, undef, 0.2);
my ($ka, $scope) = entry_of("What is the capital of France?");
LLMCacheTest::redis_cmd('DEL', "llmc:{$scope}:e:$ka");
ok(bucketed($scope)->{$ka}, "$n - still indexed");
my ($st, $h, $b) = http('DELETE', "/purge?key=$ka");
like("$st $b", qr/^200 \{"deleted":1,"entries":0\}$/, "$n - the vector deleted");
is(nkeys("llmc:{*}:*$ka"), 0, "$n - no key of it left");
ok(!bucketed($scope)->{$ka}, "$n - in no bucket");
--- no_error_log
[error]
