# Soak: scripts/soak runs nginx (a master, two workers), Redis and the
# provider mock under a mixed load (exact hits, semantic paraphrases,
# streams, misses, purges, a Redis restart halfway) and checks every
# answer, that no worker crashed, that RSS and file descriptors did not
# grow, and one provider call per MISS.  LLMCACHE_SOAK_SECONDS sets the
# length (default 40); the figures are printed.  Within `make test` other
# suites run beside it, so the load is moderate: 4 clients, 0.1 s between
# rounds (SOAK_CONCURRENCY, SOAK_PAUSE change that).

use strict;
use warnings;

use FindBin;
use Test::More;

my $root = $ENV{LLMCACHE_ROOT} // "$FindBin::Bin/..";
my $secs = $ENV{LLMCACHE_SOAK_SECONDS} || 40;

plan skip_all => 'the soak runs its own nginx, not under valgrind'
    if $ENV{TEST_NGINX_USE_VALGRIND};
plan skip_all => "$root/build/ngx_http_llmcache_module.so is not built"
    unless -f "$root/build/ngx_http_llmcache_module.so";
plan tests => 2;

$ENV{SOAK_CONCURRENCY} //= 4;
$ENV{SOAK_PAUSE} //= 0.1;
my $out = `"$root/scripts/soak" $secs 2>&1`;
my $rc = $? >> 8;
diag($_) for grep { /^soak: (start|end|\d+ requests|X-LLM|by kind)/ }
             split /\n/, $out;
is($rc, 0, "scripts/soak $secs exits 0") or diag($out);
like($out, qr/^soak: ok$/m, 'soak: every check passed');
