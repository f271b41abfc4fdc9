# Redis Cluster with replicas: a master dies, its replica takes over, and
# the entries it held are served again from the replica once the slot map
# is refreshed — meanwhile its scopes go to the provider, nothing fails.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';
use POSIX ();

no_shuffle();

our (@Ports, @Pids, %PidOf, @Masters, %Dead);

sub cli { &LLMCacheTest::redis_cli(@_) }

sub keys_on ($) {
    my $port = shift;
    return scalar grep { /^llmc:\{.*\}:e:/ }
        split /\n/, `redis-cli -p $port --scan --pattern 'llmc:*'`;
}

# GETs the node has answered so far
sub gets_on ($) {
    my ($n) = cli(shift, 'INFO', 'commandstats') =~ /^cmdstat_get:calls=(\d+)/m;
    return $n // 0;
}

# kill a master once its replica has every write, and wait for the
# replica to take its slots over
sub fail_over ($) {
    my $port = shift;
    cli($port, 'WAIT', 1, 2000);
    $main::OnKilled = keys_on($port);
    kill 'KILL', $PidOf{$port};
    waitpid $PidOf{$port}, 0 if $$ == $main::Parent;
    $Dead{$port} = 1;
    my @live = grep { !$Dead{$_} } @Ports;
    for (1 .. 400) {
        # every node that is left sees the dead one failed and a whole map
        my $ok = grep {
            cli($_, 'cluster nodes') =~ /127\.0\.0\.1:$port\S* \S*,fail\s/
            && cli($_, 'cluster info') =~ /cluster_state:ok/
        } @live;
        return if $ok == @live;
        select undef, undef, undef, 0.1;
    }
    die "the replica of 127.0.0.1:$port did not take over\n";
}

our $Parent = $$;

END { kill 'TERM', @Pids if @Pids && $$ == $Parent }

BEGIN {
    if (system('redis-cli --version >/dev/null 2>&1') != 0) {
        print "1..0 # SKIP redis-cli is missing\n";
        exit 0;
    }
}

{
    # a master down is marked failed after a second, and its replica may
    # take over however long it was cut off
    my $c = LLMCacheTest::redis_cluster(1, '--cluster-node-timeout', '1000',
                                        '--cluster-replica-validity-factor',
                                        '0');
    @Ports = @{ $c->{ports} };
    @Pids = @{ $c->{pids} };
    @PidOf{@Ports} = @Pids;
    @Masters = @{ $c->{masters} };
}

# every master is a seed: the first one is the one that dies
$ENV{TEST_NGINX_CLUSTER_SEEDS} = join ' ', map { "127.0.0.1:$_" } @Masters;

our $HttpConfig = <<'_EOC_';
    llmcache_redis $TEST_NGINX_CLUSTER_SEEDS cluster;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        llmcache_key $http_x_tenant;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

our @Tenants = map { "tenant-$_" } 1 .. 12;
our $Body = "POST /v1/chat/completions\n"
    . '{"model":"gpt-4o","messages":[{"role":"user","content":"failover?"}]}';
our @Headers = map { "Content-Type: application/json\nX-Tenant: $_" }
    @Tenants;

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    fail_over($Masters[0]) if defined $block->fail_over;
    if (defined $block->fail_over_later) {
        # a second into the block, while nginx holds the slot map, and not
        # before the block's first requests have read this master's
        # entries: under valgrind nginx may take longer than that second
        # to start and answer them
        my $port = $Masters[1];
        cli($port, 'WAIT', 1, 2000);
        $main::OnKilledLater = keys_on($port);
        $Dead{$port} = 1;
        my $gets = gets_on($port);
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $t0 = time;
            select undef, undef, undef, $block->fail_over_later;
            while (gets_on($port) < $gets + $main::OnKilledLater
                   && time - $t0 < 120) {
                select undef, undef, undef, 0.05;
            }
            fail_over($port);
            POSIX::_exit(0);
        }
    }
});

run_tests();

ok($main::OnKilledLater > 0 && $main::OnKilledLater < 12,
   "the first master that died held some of the entries "
   . "($main::OnKilledLater of 12)");
ok($main::OnKilled > 0 && $main::OnKilled < 12,
   "so did the second ($main::OnKilled of 12)");

# after the map was refreshed, nothing more reached the provider
is(LLMCacheTest::mock_calls(), 0,
   "the promoted replica served every entry of the dead master");

__DATA__

=== TEST 1: twelve scopes over three masters: miss, then hit
--- request eval
[(($main::Body) x 12), (($main::Body) x 12)]
--- more_headers eval
[(@main::Headers) x 2]
--- response_headers eval
[(("X-LLM-Cache: MISS") x 12), (("X-LLM-Cache: HIT") x 12)]
--- no_error_log
[error]



=== TEST 2: a master dies while nginx runs: its replica serves its entries
Its scopes MISS (from the provider, nothing fails) until the replica has
taken over and the slot map is refreshed; then every scope is a HIT again.
--- fail_over_later: 1
--- request eval
[(($main::Body) x 12), "GET /__mock/sleep?ms=1500",
 (($main::Body) x 12), "GET /__mock/sleep?ms=9000",
 (($main::Body) x 12), "GET /__mock/sleep?ms=1500", "GET /__mock/reset",
 (($main::Body) x 12), "GET /__mock/calls"]
--- more_headers eval
[@main::Headers, "", @main::Headers, "", @main::Headers, "", "",
 @main::Headers, ""]
--- response_body_like eval
[(qr/mock answer/) x 12, qr//, (qr/mock answer/) x 12, qr//,
 (qr/mock answer/) x 12, qr//, qr//, (qr/mock answer/) x 12, qr/^0$/]
--- response_headers_like eval
[(("X-LLM-Cache: HIT") x 12), "", (("X-LLM-Cache: (MISS|HIT)") x 12), "",
 (("X-LLM-Cache: (MISS|HIT)") x 12), "", "", (("X-LLM-Cache: HIT") x 12),
 ""]
--- timeout: 30



=== TEST 3: the first seed's master dies: its replica serves its entries
The first requests may find the slot map of before (a MISS each, from the
provider); a second later the map is refreshed and every scope is a HIT.
--- fail_over
--- request eval
[(($main::Body) x 12), "GET /__mock/sleep?ms=1500", "GET /__mock/reset",
 (($main::Body) x 12)]
--- more_headers eval
[@main::Headers, "", "", @main::Headers]
--- response_body_like eval
[(qr/mock answer/) x 12, qr//, qr//, (qr/mock answer/) x 12]
--- response_headers_like eval
[(("X-LLM-Cache: (MISS|HIT)") x 12), "", "", (("X-LLM-Cache: HIT") x 12)]
