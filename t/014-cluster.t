# Redis Cluster: three masters on loopback, nginx given one seed.  The slot
# map comes from CLUSTER SLOTS, every scope's keys go to the node of its
# hash tag, and a master that is down makes only its slots MISS.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

no_shuffle();

our (@Ports, @Pids);

sub start_cluster {
    my $c = LLMCacheTest::redis_cluster(0);
    @Ports = @{ $c->{ports} };
    @Pids = @{ $c->{pids} };
    $ENV{TEST_NGINX_CLUSTER_SEED} = "127.0.0.1:$Ports[0]";
}

sub keys_on ($) {
    my $port = shift;
    return scalar grep { /^llmc:/ } split /\n/, `redis-cli -p $port --scan --pattern 'llmc:*'`;
}

END { kill 'TERM', @Pids if @Pids }

BEGIN {
    if (system('redis-cli --version >/dev/null 2>&1') != 0) {
        print "1..0 # SKIP redis-cli is missing\n";
        exit 0;
    }
}

start_cluster();

our $HttpConfig = <<'_EOC_';
    llmcache_redis $TEST_NGINX_CLUSTER_SEED cluster;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        llmcache_key $http_x_tenant;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /purge {
        llmcache_purge;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

# twelve tenants: twelve scopes, spread over the three masters' slots
our @Tenants = map { "tenant-$_" } 1 .. 12;
our $Body = "POST /v1/chat/completions\n"
    . '{"model":"gpt-4o","messages":[{"role":"user","content":"cluster?"}]}';

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    if (defined $block->kill_master) {
        my $i = $block->kill_master;
        # the tenants whose entries live on that master
        $main::OnKilled = keys_on($Ports[$i]);
        kill 'KILL', $Pids[$i];
        waitpid $Pids[$i], 0;
    }
});

run_tests();

# the twelve scopes were spread over the masters
ok($main::OnKilled > 0 && $main::OnKilled < 12,
   "the killed master held some scopes, not all ($main::OnKilled of 12)");

# with it down, exactly its scopes went to the provider, both times
is(LLMCacheTest::mock_calls(), 2 * $main::OnKilled,
   "only the killed master's scopes reached the provider");

__DATA__

=== TEST 1: every scope misses, then hits, wherever its slot lives
--- request eval
[(($main::Body) x 12), (($main::Body) x 12)]
--- more_headers eval
[(map { "Content-Type: application/json\nX-Tenant: $_" } @main::Tenants) x 2]
--- response_headers eval
[(("X-LLM-Cache: MISS") x 12), (("X-LLM-Cache: HIT") x 12)]
--- no_error_log
[error]



=== TEST 2: a purge scans every master, one UNLINK per hash slot
All twelve entries are gone, wherever they lived, and come back.
--- request eval
["DELETE /purge?all=1", (($main::Body) x 12), (($main::Body) x 12)]
--- more_headers eval
["", (map { "Content-Type: application/json\nX-Tenant: $_" } @main::Tenants) x 2]
--- response_body_like eval
[qr/^\{"deleted":\d+,"entries":12\}$/, (qr/mock answer/) x 24]
--- response_headers_like eval
["", (("X-LLM-Cache: MISS") x 12), (("X-LLM-Cache: HIT") x 12)]
--- no_error_log
[error]



=== TEST 3: a master down: its slots MISS (twice), the others keep hitting
--- kill_master: 2
--- request eval
[(($main::Body) x 12), (($main::Body) x 12), "GET /__mock/calls"]
--- more_headers eval
[(map { "Content-Type: application/json\nX-Tenant: $_" } @main::Tenants) x 2, ""]
--- response_body_like eval
[(qr/mock answer/) x 24, qr/^([2468]|1[02468]|2[02])$/]
--- response_headers_like eval
[(("X-LLM-Cache: (MISS|HIT)") x 24), ""]
--- grep_error_log eval: qr/llmcache: redis \S+ (connect failed|connection lost)/
--- grep_error_log_out eval
qr/\A(llmcache: redis 127\.0\.0\.1:\d+ (connect failed|connection lost)\n)?\z/
