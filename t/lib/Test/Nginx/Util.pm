package Test::Nginx::Util;

# Configuration, server root, nginx process control and log access for the
# project's Test::Nginx::Socket-compatible runner.  It is only used when the
# real Test::Nginx (openresty/test-nginx) is not installed; the suites must
# keep running unchanged under the real one, so names, defaults and the
# generated nginx.conf follow it.

use strict;
use warnings;

our $VERSION = '0.29_llmcache';

use base 'Exporter';

use Carp qw(croak);
use Cwd ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Socket::INET ();
use POSIX qw(:sys_wait_h SIGQUIT SIGKILL);
use Time::HiRes qw(sleep time);
use Test::More ();

our $Verbose        = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary    = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LoadModules    = $ENV{TEST_NGINX_LOAD_MODULES};
our $NoShuffle      = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $UseValgrind    = $ENV{TEST_NGINX_USE_VALGRIND};
our $Timeout        = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $LogLevel       = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled  = 'on';
our $Workers        = 1;
our $WorkerConnections = 64;
our $ServerAddr     = '127.0.0.1';
our $ServerName     = 'localhost';
our $ServerPort     = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                      || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT}
                           || $ENV{TEST_NGINX_PORT} || $ServerPort;
our $TestNginxSleep = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $WorkerUser     = $ENV{TEST_NGINX_WORKER_USER};
our $NoRootLocation = 0;
our $RepeatEach     = 1;
our $NoLongString;
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $ConfigPreamble = '';
our $NginxVersion;
our $NginxRawVersion;
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;
our $ChildPid;          # nginx run in the foreground (valgrind mode)
our $InSubprocess;

if ($UseValgrind) {
    # valgrind must see nginx exit, so it stays in the foreground
    $DaemonEnabled = 'off';
}

if (defined $WorkerUser && $WorkerUser !~ /^\w+(?:\s+\w+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

our $ServRoot = $ENV{TEST_NGINX_SERVROOT}
                || File::Spec->rel2abs('t/servroot');
$ServRoot = File::Spec->rel2abs($ServRoot);
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');
our $ValgrindLog = File::Spec->catfile($LogDir, 'valgrind.log');

my $OwnerPid = $$;

our @EXPORT = qw(
    env_to_nginx is_str no_long_string no_shuffle no_root_location
    repeat_each workers worker_connections log_level master_on master_off
    master_process_enabled timeout server_port server_port_for_client
    server_addr server_name server_root html_dir config_preamble
    check_accum_error_log add_block_preprocessor add_cleanup_handler
    bail_out parse_time parse_headers trim fmt_str verbose sleep_time
    expand_env_in_text setup_server_root write_user_files write_config_file
    start_nginx stop_nginx nginx_is_running read_error_log access_log_data
    get_nginx_version get_canon_version cleanup
    $ServerAddr $ServerName $ServerPort $ServerPortForClient $ServRoot
    $NginxVersion $RepeatEach $NoLongString $ErrLogFile $AccLogFile
    $PidFile $ConfFile $HtmlDir $LogDir
);

sub verbose { $Verbose }
sub sleep_time { $TestNginxSleep }

sub env_to_nginx (@) {
    croak "env_to_nginx: no arguments specified" unless @_;
    for my $v (@_) {
        if ($v !~ /^[A-Za-z_]/ || $v =~ /\n/) {
            croak "env_to_nginx: bad argument value: $v\n";
        }
        push @EnvToNginx, $v;
    }
}

sub no_long_string () { $NoLongString = 1 }
sub no_shuffle () { $NoShuffle = 1 }
sub no_root_location () { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub config_preamble ($) { $ConfigPreamble = shift }
sub master_on () { $MasterProcessEnabled = 'on' }
sub master_off () { $MasterProcessEnabled = 'off' }

sub master_process_enabled (@) {
    return $MasterProcessEnabled unless @_;
    $MasterProcessEnabled = shift() ? 'on' : 'off';
}

sub repeat_each (@) { $RepeatEach = shift if @_; $RepeatEach }
sub workers (@) { return $Workers unless @_; $Workers = shift }
sub log_level (@) { return $LogLevel unless @_; $LogLevel = shift }
sub timeout (@) { return $Timeout unless @_; $Timeout = shift }
sub server_addr (@) { return $ServerAddr unless @_; $ServerAddr = shift }
sub server_name (@) { return $ServerName unless @_; $ServerName = shift }
sub server_root () { $ServRoot }
sub html_dir () { $HtmlDir }

sub worker_connections (@) {
    return $WorkerConnections unless @_;
    $WorkerConnections = shift;
}

sub server_port (@) {
    return $ServerPort unless @_;
    $ServerPort = shift;
}

sub server_port_for_client (@) {
    return $ServerPortForClient unless @_;
    $ServerPortForClient = shift;
}

sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($) { unshift @CleanupHandlers, shift }

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# Test::LongString is optional: Debian packages it, but nothing else here
# needs it, so plain is() is the fallback.
my $HaveLongString = eval { require Test::LongString; 1 };

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    if ($NoLongString || !$HaveLongString) {
        return Test::More::is($got, $expected, $desc);
    }
    return Test::LongString::is_string($got, $expected, $desc);
}

sub parse_time ($) {
    my $tm = shift;
    return $tm unless defined $tm;
    if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
        $tm = $tm / 1000;
    } else {
        $tm =~ s/([^_a-zA-Z])s$/$1/;
    }
    return $tm;
}

sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\s+/ /gs;
    return $s;
}

sub fmt_str ($) {
    my $s = shift;
    $s = "$s";
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# "Name: value" lines; "!Name" means the header must be absent.  A list of
# [name, value-or-undef] pairs in the order given (a repeated name keeps
# its last value, as the real runner's hash does).
sub parse_headers ($) {
    my $s = shift;
    my (@order, %h);
    for my $line (split /\n/, $s // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        my ($key, $val);
        if ($line =~ s/^!\s*//) {
            $key = $line;
        } else {
            ($key, $val) = split /\s*:\s*/, $line, 2;
        }
        push @order, $key unless exists $h{$key};
        $h{$key} = $val;
    }
    return [map { [$_, $h{$_}] } @order];
}

sub free_port ($) {
    my $used = shift;
    for (1 .. 1000) {
        my $port = 1985 + int rand 63550;
        next if $used->{$port};
        my $s = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                      LocalPort => $port, Proto => 'tcp',
                                      ReuseAddr => 1);
        next unless $s;
        close $s;
        $used->{$port} = 1;
        return $port;
    }
    return undef;
}

# $TEST_NGINX_FOO is replaced by the environment variable's value;
# $TEST_NGINX_RAND_PORT_N by a free port, the same one within a block.
sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return undef unless defined $text;
    my %used = ($ServerPort => 1, map { $_ => 1 } values %$rand_ports);
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        my $val;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            $rand_ports->{$var} //= free_port(\%used);
            $val = $rand_ports->{$var};
            bail_out("$name - no free port for $var") unless defined $val;
        } else {
            bail_out("$name - No environment $var defined.\n")
                unless defined $ENV{$var};
            $val = $ENV{$var};
        }
        $val;
    }eg;
    return $text;
}

sub setup_server_root () {
    if (-d $ServRoot) {
        # only what this runner creates, so a mistaken TEST_NGINX_SERVROOT
        # cannot wipe user data
        remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_temp"),
                    glob("$ServRoot/*_cache"));
    }
    for my $d ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        next if -d $d;
        make_path($d) or bail_out("Failed to do mkdir $d: $!\n");
    }
    my $index = "$HtmlDir/index.html";
    open my $out, '>', $index or bail_out("Can't open $index: $!\n");
    print $out '<html><head><title>It works!</title></head>'
               . '<body>It works!</body></html>';
    close $out;
}

sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, '', $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - user_files: only a string or an ARRAY");
    }

    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - cannot mkdir $1");
        }
        $body = expand_env_in_text($body // '', $name, $rand_ports);
        open my $out, '>', $path or bail_out("$name - cannot write $path");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            system("TZ=GMT touch -t '$date' '$path'") == 0
                or bail_out("$name - cannot set the time of $path");
        }
    }
}

sub write_config_file ($$$) {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;

    my $http_config = expand_env_in_text($block->http_config // '', $name,
                                         $rand_ports);
    my $main_config = $block->main_config // '';
    my $post_main_config = expand_env_in_text($block->post_main_config
                                              // '', $name, $rand_ports);
    my $server_name = $block->server_name // $ServerName;
    my $log_level = $block->log_level || $LogLevel;
    # valgrind follows one process: the one that serves the requests
    my $master = $UseValgrind ? 'off' : $MasterProcessEnabled;

    # like the real runner: the load_module lines follow --- main_config
    if ($LoadModules) {
        my @m = map { "load_module $_;" } grep { $_ } split /\s+/,
                $LoadModules;
        $main_config .= "\n" . join("\n", @m) . "\n" if @m;
    }
    $main_config = expand_env_in_text($main_config, $name, $rand_ports);

    my $env = '';
    for my $v (qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS UBSAN_OPTIONS),
               @EnvToNginx)
    {
        $env .= $v =~ /\s/ ? "env '$v';\n" : "env $v;\n";
    }

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $user = '';
    if (defined $WorkerUser) {
        $user = "user $WorkerUser;\n";
    } elsif ($> == 0) {
        # workers of a root master would otherwise run as nobody and lose
        # access to the root-owned server root
        $user = "user root;\n";
    }

    open my $out, '>', $ConfFile
        or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out <<"_EOC_";
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $master;
error_log $ErrLogFile $log_level;
pid       $PidFile;
$env
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$http_config

    server {
        listen          $ServerPort;
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main_config

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
$user
_EOC_
    close $out;
}

sub get_canon_version (@) {
    sprintf "%d.%03d%03d", $_[0], $_[1], $_[2];
}

sub get_nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    if (!defined $out || $? != 0) {
        bail_out("Failed to get the version of the nginx binary "
                 . "$NginxBinary: " . ($out // ''));
    }
    if ($out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s) {
        $NginxRawVersion = "$1.$2.$3";
        return get_canon_version($1, $2, $3);
    }
    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

sub read_pid_file () {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in>;
    close $in;
    return undef unless defined $pid && $pid =~ /^\s*(\d+)\s*$/;
    return $1;
}

# kill(0) succeeds on zombies; a daemonized nginx is reaped by whoever
# adopted it, which in a container may be nobody.
sub process_alive ($) {
    my $pid = shift;
    return 0 unless $pid && kill 0, $pid;
    if (open my $st, '<', "/proc/$pid/stat") {
        my $line = <$st> // '';
        return 0 if $line =~ /^\d+ \(.*\) [ZX]/s;
    }
    return 1;
}

# waitpid() reaps nginx when it is our child: in valgrind mode, and when
# the daemon was reparented to us as the subreaper.
sub wait_gone ($$) {
    my ($pid, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) {
        waitpid($pid, WNOHANG);
        return 1 unless process_alive($pid);
        sleep 0.02;
    }
    waitpid($pid, WNOHANG);
    return !process_alive($pid);
}

# Become the child subreaper (Linux prctl PR_SET_CHILD_SUBREAPER), so the
# daemonized nginx is reparented to this process and reaped here rather
# than left a zombie under an init that does not reap (containers).
{
    require Config;
    my %prctl = (x86_64 => 157, aarch64 => 167);
    my ($arch) = $Config::Config{archname} =~ /^(x86_64|aarch64)-linux/;
    syscall($prctl{$arch}, 36, 1, 0, 0, 0) if $arch;
}

sub nginx_is_running () {
    my $pid = $ChildPid // read_pid_file();
    return $pid && process_alive($pid);
}

# Graceful stop (QUIT) so the log holds everything nginx writes while it
# exits; KILL the whole process group after the grace period.
sub stop_nginx ($) {
    my $name = shift;
    my $pid = $ChildPid // read_pid_file();
    if ($pid && process_alive($pid)) {
        warn "$name - sending QUIT to nginx $pid\n" if $Verbose;
        my $grace = $UseValgrind ? 60 : ($Timeout > 5 ? $Timeout : 5);
        my $gone;
        # repeated: under valgrind a QUIT sometimes goes unnoticed
        for (my $t = 0; $t < $grace && !$gone; $t += 0.5) {
            kill SIGQUIT, $pid;
            $gone = wait_gone($pid, 0.5);
        }
        if (!$gone) {
            warn "$name - nginx $pid did not exit ${grace}s after QUIT; "
                 . "killing it\n";
            kill SIGKILL, -$pid;
            kill SIGKILL, $pid;
            wait_gone($pid, 2);
        }
    }
    if (defined $ChildPid) {
        waitpid($ChildPid, 0);
        undef $ChildPid;
    }
    unlink $PidFile if -f $PidFile;
}

sub valgrind_args () {
    my @args;
    if ($UseValgrind =~ /^\d+$/) {
        # --keep-debuginfo: nginx unloads the module at exit, and its
        # frames would read ??? in the leak reports
        @args = qw(--tool=memcheck --leak-check=full
                   --show-possibly-lost=no --num-callers=100
                   --keep-debuginfo=yes -q);
        # ./valgrind.suppress as the real runner; t/valgrind.suppress
        # holds what stock nginx itself leaks at exit
        push @args, map { "--suppressions=$_" }
                    grep { -f } 'valgrind.suppress', 't/valgrind.suppress';
    } else {
        @args = ('-q', split ' ', $UseValgrind);
    }
    return (@args, "--log-file=$ValgrindLog");
}

# Returns (1, undef) when nginx runs, (0, $why) when it could not start.
# With $expect_death the exit status is returned instead: (status).
sub start_nginx ($;$) {
    my ($name, $expect_death) = @_;
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);

    # nginx >= 1.19.5: startup errors (bad config, port in use) go to the
    # block's error.log instead of the compiled-in path, so must_die and
    # start failures can be checked and shown
    push @cmd, '-e', $ErrLogFile
        if defined $NginxVersion && $NginxVersion >= 1.019005;

    if ($UseValgrind && !$expect_death) {
        my $pid = fork;
        bail_out("$name - fork() failed: $!") unless defined $pid;
        if ($pid == 0) {
            $InSubprocess = 1;
            setpgrp(0, 0);
            open STDOUT, '>', '/dev/null';
            exec 'valgrind', valgrind_args(), split(' ', $NginxBinary),
                 @cmd[1 .. $#cmd]
                or POSIX::_exit(127);
        }
        $ChildPid = $pid;
        warn "$name\n";     # valgrind output is easier to place with this
        sleep $TestNginxSleep;
        # nginx under valgrind takes seconds to listen: a block's --- init
        # may talk to it before its first request
        for (1 .. 600) {
            my $c = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                          PeerPort => $ServerPort,
                                          Proto => 'tcp');
            if ($c) {
                close $c;
                last;
            }
            last if waitpid($pid, POSIX::WNOHANG()) == $pid;
            sleep 0.1;
        }
        return (1, undef);
    }

    # TEST_NGINX_BINARY may carry options, so it goes to the shell as is
    my $sh = join ' ', $NginxBinary, map { "'" . s/'/'\\''/gr . "'" }
                                          @cmd[1 .. $#cmd];
    my $waited = 0;
    while (1) {
        warn "$name - starting $sh\n" if $Verbose;
        my $rc = system("$sh > /dev/null");
        return ($rc) if $expect_death;
        last if $rc == 0;

        # the previous instance may still hold the port for a moment
        my $log = -f $ErrLogFile ? do {
            local (@ARGV, $/) = ($ErrLogFile); <>
        } : '';
        if ($log =~ /Address already in use/ && $waited < 5) {
            sleep 0.2;
            $waited += 0.2;
            next;
        }
        my $why = $rc == -1 ? "cannot run $cmd[0]: $!"
                : "exit status " . ($rc >> 8);
        return (0, $why);
    }

    # the daemon writes its pid file right after it forked
    for (1 .. 200) {
        return (1, undef) if read_pid_file();
        sleep 0.01;
    }
    return (0, "no pid file $PidFile after start");
}

# The valgrind findings of the nginx that just exited: '' when clean.
sub valgrind_report () {
    return '' unless $UseValgrind && -s $ValgrindLog;
    open my $in, '<', $ValgrindLog or return '';
    my $text = do { local $/; <$in> };
    close $in;
    return $text;
}

# Lines of error.log from byte offset $from; returns (\@lines, $end).
sub read_error_log ($) {
    my $from = shift // 0;
    open my $in, '<', $ErrLogFile or return ([], $from);
    seek $in, $from, 0 if $from > 0;
    my @lines = <$in>;
    my $end = tell $in;
    close $in;
    return (\@lines, $end);
}

sub access_log_data () {
    open my $in, '<', $AccLogFile or return [];
    my @lines = <$in>;
    close $in;
    return \@lines;
}

sub cleanup () {
    return if $InSubprocess || $$ != $OwnerPid;
    $_->() for @CleanupHandlers;
    @CleanupHandlers = ();
    stop_nginx('cleanup') if !$ENV{TEST_NGINX_NO_CLEAN} || $UseValgrind;
}

END {
    local $?;
    cleanup() unless $InSubprocess;
}

1;
