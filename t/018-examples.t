# The shipped examples load: every examples/*.conf passes `nginx -t` with
# the module built here, and the systemd units in examples/systemd/ pass
# `systemd-analyze verify`.
#
# A copy of each file is tested, with what only exists on an installed
# machine pointed at this tree: the module's path, the dictionaries
# (/etc/nginx/llmcache/), the log directory (/var/log/nginx/), the
# worker's binary.  nginx resolves upstream host names when it starts;
# where a provider's name does not resolve (no DNS), the check runs again
# in a private mount namespace whose /etc/hosts maps it to 127.0.0.1.
#
# TEST_NGINX_BINARY: the nginx to use (default /usr/sbin/nginx);
# TEST_NGINX_LOAD_MODULES: the module (default build/...so).

use strict;
use warnings;

use File::Basename qw(basename);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use FindBin;
use Test::More;

my $root = $ENV{LLMCACHE_ROOT} // "$FindBin::Bin/..";
my $nginx = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
my ($module) = grep { /ngx_http_llmcache_module\.so$/ }
               split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} // '');
$module //= "$root/build/ngx_http_llmcache_module.so";
my $worker = "$root/build/llmcache-worker";

plan skip_all => "$nginx is not there" unless -x $nginx;
plan skip_all => "$module is not built (make module)" unless -f $module;

my $tmp = tempdir('llmcache-examples-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub slurp {
    my $f = shift;
    open my $in, '<', $f or die "$f: $!";
    local $/;
    return scalar <$in>;
}

sub spew {
    my ($f, $s) = @_;
    open my $out, '>', $f or die "$f: $!";
    print $out $s;
    close $out or die "$f: $!";
}

# the command's exit status and its output (stdout and stderr)
sub run {
    my @cmd = @_;
    my $pid = open my $out, '-|';
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec @cmd or exit 127;
    }
    local $/;
    my $text = <$out> // '';
    close $out;
    return ($? >> 8, $text);
}

# `nginx -t` in a private mount namespace where /etc/hosts also maps
# @hosts to 127.0.0.1; (undef, why) when that cannot be done here
sub nginx_t_with_hosts {
    my ($hosts, @cmd) = @_;
    return (undef, 'not root') if $> != 0;
    my ($unshare) = grep { -x } map { "$_/unshare" } split /:/, $ENV{PATH};
    return (undef, 'no unshare') unless $unshare;
    my $file = "$tmp/hosts";
    spew($file, (-r '/etc/hosts' ? slurp('/etc/hosts') : '')
                . "127.0.0.1 @$hosts\n");
    my ($rc, $out) = run($unshare, '--mount', '--propagation', 'private',
                         'sh', '-c', 'mount --bind "$0" /etc/hosts && '
                         . 'exec "$@"', $file, @cmd);
    return (undef, "unshare --mount failed: $out")
        if $rc != 0 && $out !~ /nginx/;
    return ($rc, $out);
}

# --- nginx -t for every examples/*.conf ------------------------------------

my @confs = sort glob "$root/examples/*.conf";
ok(scalar(grep { /nginx-(openai|anthropic|worker)\.conf$/ } @confs) == 3,
   'the OpenAI, Anthropic and worker examples are there');

for my $conf (@confs) {
    my $name = basename($conf);
    (my $dir = "$tmp/$name") =~ s/\.conf$//;
    make_path("$dir/conf", "$dir/logs");
    my $text = slurp($conf);

    like($text, qr/^load_module\s+\S*ngx_http_llmcache_module\.so;/m,
         "$name: loads the module");
    $text =~ s{^(load_module\s+)\S*ngx_http_llmcache_module\.so;}
              {$1$module;}m;
    $text =~ s{/etc/nginx/llmcache/}{$root/examples/dict/}g;
    $text =~ s{/var/log/nginx/}{$dir/logs/}g;
    spew("$dir/conf/$name", $text);

    my @cmd = ($nginx, '-t', '-q', '-p', "$dir/", '-e',
               "$dir/logs/error.log", '-c', "$dir/conf/$name");
    my ($rc, $out) = run(@cmd);

    # names nginx could not resolve: once more with them in /etc/hosts
    my @hosts;
    while ($rc != 0
           && $out =~ /host not found in upstream "([^":\/]+)[^"]*"/
           && !grep { $_ eq $1 } @hosts && @hosts < 8)
    {
        push @hosts, $1;
        my ($rc2, $out2) = nginx_t_with_hosts(\@hosts, @cmd);
        if (!defined $rc2) {
            undef $rc;
            $out = "nginx -t resolves upstream names when it starts, "
                   . "$hosts[-1] does not resolve here, and it cannot be "
                   . "mapped ($out2)";
            last;
        }
        ($rc, $out) = ($rc2, $out2);
    }

    SKIP: {
        skip "$name: $out", 2 unless defined $rc;
        skip "$name: the module has no \$llmcache_schema yet", 2
            if $out =~ /unknown "llmcache_schema" variable/;
        is($rc, 0, "$name: nginx -t succeeds"
                   . (@hosts ? " (with @hosts mapped in /etc/hosts)" : ''))
            or diag $out;
        is($out, '', "$name: no warnings") or diag $out;
    }
}

# the check fails where it should: an unknown directive, a missing module
{
    my $dir = "$tmp/broken";
    make_path("$dir/conf", "$dir/logs");
    spew("$dir/conf/a.conf", "load_module $module;\nevents {}\n"
         . "http { server { location / { llmcache_nonsense on; } } }\n");
    my ($rc, $out) = run($nginx, '-t', '-q', '-p', "$dir/", '-e',
                         "$dir/logs/error.log", '-c', "$dir/conf/a.conf");
    isnt($rc, 0, 'nginx -t fails on an unknown llmcache directive');
    like($out, qr/unknown directive "llmcache_nonsense"/, '... and says so');
}

# --- the systemd units -------------------------------------------------------

my $sd = "$root/examples/systemd";
my @units = sort glob "$sd/*.service";
ok(scalar(grep { /\/llmcache-worker\.service$/ } @units),
   'examples/systemd/llmcache-worker.service is there');

my $unit = slurp("$sd/llmcache-worker.service");
my ($exec) = $unit =~ /^ExecStart=((?:[^\n]*\\\n)*[^\n]*)$/m;
$exec //= '';
$exec =~ s/\\\n/ /g;
like($exec, qr{--listen unix:/run/llmcache/worker\.sock\b},
     'the worker listens on /run/llmcache/worker.sock');
like($exec, qr{--model \S}, 'ExecStart names the model');
like($exec, qr{--kv-dir /var/lib/llmcache/\S}, 'the K/V is kept in its state directory');
like($unit, qr/^RuntimeDirectory=llmcache$/m, 'RuntimeDirectory=llmcache');
like($unit, qr/^StateDirectory=llmcache$/m, 'StateDirectory=llmcache');
like($unit, qr/^User=(?!root$)\w+$/m, 'a dedicated user');
like($unit, qr/^Restart=on-failure$/m, 'Restart=on-failure');
like($unit, qr/^$_$/m, $_) for qw(NoNewPrivileges=yes ProtectSystem=strict
                                   ProtectHome=yes PrivateTmp=yes
                                   RestrictAddressFamilies=AF_UNIX);

my $dropin = slurp("$sd/nginx.service.d/llmcache.conf");
like($dropin, qr/^After=.*\bredis-server\.service\b.*\bllmcache-worker\.service\b/m,
     'nginx starts after Redis and the worker');
like($dropin, qr/^Wants=.*\bredis-server\.service\b/m,
     'nginx wants Redis, without requiring it');

SKIP: {
    skip "$worker is not built", 1 unless -x $worker;
    my (undef, $help) = run($worker, '--help');
    my %known = map { $_ => 1 } $help =~ /(--[a-z][a-z-]*)/g;
    for my $u (@units) {
        my $t = slurp($u);
        my ($e) = $t =~ /^ExecStart=((?:[^\n]*\\\n)*[^\n]*)$/m;
        my @opts = ($e // '') =~ /\s(--[a-z][a-z-]*)/g;
        my @unknown = grep { !$known{$_} } @opts;
        local $TODO = 'llmcache-worker has no ' . join(', ', @unknown)
                      . ' option yet'
            if grep { $_ eq '--kv-dir' } @unknown;
        is("@unknown", '', basename($u) . ': llmcache-worker knows every '
           . 'option of its ExecStart');
    }
}

SKIP: {
    my ($analyze) = grep { -x } map { "$_/systemd-analyze" }
                    split /:/, $ENV{PATH};
    skip 'systemd-analyze is not installed', 1 unless $analyze;
    skip "$worker is not built (the units' ExecStart must exist)", 1
        unless -x $worker;

    my $dir = "$tmp/systemd";
    make_path("$dir/nginx.service.d");
    for my $u (@units) {
        (my $t = slurp($u)) =~ s{/usr/local/bin/llmcache-worker}{$worker}g;
        spew("$dir/" . basename($u), $t);
    }
    spew("$dir/nginx.service.d/llmcache.conf", $dropin);

    for my $u (@units) {
        my ($rc, $out) = run($analyze, 'verify', "$dir/" . basename($u));
        is($rc, 0, basename($u) . ': systemd-analyze verify') or diag $out;
        is($out, '', basename($u) . ': no complaints') or diag $out;
    }

    # the drop-in, read together with the system's nginx.service
    SKIP: {
        my ($nginx_unit) = grep { -r } map { "$_/nginx.service" }
                           qw(/lib/systemd/system /usr/lib/systemd/system);
        skip 'no nginx.service on this machine', 2 unless $nginx_unit;
        spew("$dir/nginx.service", slurp($nginx_unit));
        my ($rc, $out) = run($analyze, 'verify', "$dir/nginx.service");
        is($rc, 0, 'nginx.service with the drop-in: systemd-analyze verify')
            or diag $out;
        is($out, '', 'nginx.service with the drop-in: no complaints')
            or diag $out;
    }

    # a unit with a mistake is reported: the check above can fail
    spew("$dir/broken.service", "[Service]\nExecStart=$worker\n"
         . "RestartForever=yes\n");
    my (undef, $out) = run($analyze, 'verify', "$dir/broken.service");
    like($out, qr/Unknown key 'RestartForever'/,
         'systemd-analyze verify reports an unknown key');

    # the user and group
    my ($sysusers) = grep { -x } map { "$_/systemd-sysusers" }
                     split /:/, $ENV{PATH};
    SKIP: {
        skip 'systemd-sysusers is not installed', 1 unless $sysusers;
        make_path("$tmp/sysroot/etc");
        my ($rc, $o) = run($sysusers, '--dry-run', "--root=$tmp/sysroot",
                           "$sd/llmcache.sysusers.conf");
        like($o, qr/Creating user 'llmcache'/,
             'llmcache.sysusers.conf creates the llmcache user')
            or diag $o;
    }
}

done_testing();
