package Test::Nginx::Socket;

# A small Test::Nginx::Socket-compatible runner for the project's t/*.t
# suites, used only when the real one (openresty/test-nginx) is not
# installed (scripts/run-tests puts t/lib on PERL5LIB then).  It reads the
# same data format, generates the same nginx.conf and names its tests the
# same way, so a suite that passes here runs unchanged under the real one.
# docs/testing.md lists what is supported and where it differs.

use strict;
use warnings;

use Test::Base -base;

our $VERSION = '0.29_llmcache';

use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle min);
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep time);

use Test::Nginx::Util;

our @EXPORT = qw(
    run_tests run_test env_to_nginx is_str repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location server_name
    server_addr server_root html_dir server_port server_port_for_client
    timeout check_accum_error_log add_block_preprocessor bail_out
    add_cleanup_handler add_response_body_check
    $ServerPort $ServerAddr $ServerPortForClient $ServRoot $NginxVersion
);

our @ResponseBodyChecks;
our $PrevConfig;
our $ErrLogPos = 0;
our $LastBlock;
my $WarnedReqEnv;

sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

sub run_tests () {
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    # like the real runner, blocks run in random order unless told not to
    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $Test::Nginx::Util::NoShuffle;

    for my $i (0 .. $#blocks) {
        my $block = $blocks[$i];
        $_->($block) for @Test::Nginx::Util::BlockPreprocessors;
        $block->set_value('name', "$0 " . $block->name);
        local $LastBlock = $i == $#blocks;
        run_test($block);
    }
    cleanup();
}

sub skip_spec ($) {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $spec = $block->skip_eval)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- skip_eval spec: $spec");
        my ($n, $code) = ($1, $2);
        my $skip = eval $code;
        bail_out("$name - skip_eval - failed to eval \"$code\": $@") if $@;
        return ($n, 'skip_eval') if $skip;
    }

    my $ver_cmp = sub {
        my ($op, @v) = @_;
        my $ver = get_canon_version(@v);
        return eval "\$NginxVersion $op $ver";
    };

    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                  (?:\s*:\s*(.*))?\s*$/x
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        my ($n, $op, @v) = ($1, $2, $3, $4, $5);
        my $why = $6 || "nginx version $op $3.$4.$5";
        return ($n, $why) if $ver_cmp->($op, @v);
    } elsif (defined($spec = $block->skip_nginx2)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                  \s*(or|and)\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                  (?:\s*:\s*(.*))?\s*$/x
            or bail_out("$name - Invalid --- skip_nginx2 spec: $spec");
        my ($n, @c) = ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);
        my $x = $ver_cmp->(@c[0 .. 3]);
        my $y = $ver_cmp->(@c[5 .. 8]);
        my $hit = $c[4] eq 'or' ? ($x || $y) : ($x && $y);
        return ($n, $c[9] || 'various reasons') if $hit;
    }

    return;
}

sub run_test ($) {
    my $block = shift;
    return if defined $block->SKIP;

    my $name = $block->name;
    my $rand_ports = {};

    # a block without --- config reuses the previous block's
    my $config = $block->config // $PrevConfig // '';
    $PrevConfig = $config;
    $config = expand_env_in_text($config, $name, $rand_ports);

    if (my ($n, $why) = skip_spec($block)) {
        for (1 .. $RepeatEach) {
            SKIP: { skip("$name - $why", $n) }
        }
        return;
    }

    if (defined(my $todo = $block->todo)) {
        $todo =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- todo spec: $todo");
        my ($n, $why) = ($1, $2);
        for (1 .. $RepeatEach) {
            TODO: { todo_skip("$name - $why", $n) }
        }
        return;
    }

    # a leftover instance (an earlier run killed hard) holds the port
    stop_nginx($name) if nginx_is_running();

    setup_server_root();
    write_user_files($block, $rand_ports);
    write_config_file($block, $config, $rand_ports);

    if (defined $block->must_die) {
        run_must_die($block);
        return;
    }

    my ($ok, $why) = start_nginx($name);
    if (!$ok) {
        fail("$name - failed to start nginx: $why");
        diag(error_log_tail(20));
        return;
    }

    if ($block->init) {
        eval $block->init;
        bail_out("$name - init failed: $@") if $@;
    }

    $ErrLogPos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        run_test_helper($block, $i, $i == $RepeatEach - 1);
    }

    stop_nginx($name) unless keep_nginx();
}

sub keep_nginx () {
    return $LastBlock && $ENV{TEST_NGINX_NO_CLEAN}
           && !$Test::Nginx::Util::UseValgrind;
}

sub error_log_tail ($) {
    my $n = shift;
    my ($lines) = read_error_log(0);
    my @tail = @$lines > $n ? @$lines[-$n .. -1] : @$lines;
    return join '', "error.log:\n", @tail;
}

sub run_must_die ($) {
    my $block = shift;
    my $name = $block->name;
    my $must_die = $block->must_die;

    for my $i (0 .. $RepeatEach - 1) {
        $ErrLogPos = 0;
        my ($status) = start_nginx($name, 1);
        if ($status == -1) {
            fail("$name - failed to execute the nginx command line");
        } elsif ($status & 127) {
            fail("$name - nginx died of signal " . ($status & 127));
        } elsif (looks_like_number($must_die)) {
            is($must_die, $status >> 8,
               "$name - die with the expected exit code");
        } else {
            isnt($status, 0, "$name - die as expected");
        }
        check_error_log($block, $i, 1);
        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; "
                 . "killing it\n";
            sleep 0.1;
            stop_nginx($name);
        }
    }
}

# --- requests -------------------------------------------------------------

sub parse_more_headers ($) {
    my $in = shift // '';
    my ($out, $chunked) = ('', 0);
    for my $h (split /\n+/, $in) {
        next if $h =~ /^\s*#/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v //= '';
        $chunked = 1 if lc($k) eq 'transfer-encoding' && $v eq 'chunked';
        $out .= "$k: $v\r\n";
    }
    return ($out, $chunked);
}

# One request given as the block writes it ("METHOD URI [VERSION]" and
# body lines), split in packets; returns the packets of the request as
# sent: request line, Host, Connection, the more_headers, a computed
# Content-Length, then the body.
sub build_request ($$$$$) {
    my ($name, $hdrs, $chunked, $conn, $packets) = @_;
    my $all = join '', @$packets;

    my $nl = index $all, "\n";
    my $first = $nl >= 0 ? substr($all, 0, $nl + 1) : $all;
    my $content = $nl >= 0 ? substr($all, $nl + 1) : '';
    $first =~ /^\s*(\S+)[ \t]*(\S+)?[ \t]*(\S+)?\s*$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$first\".");
    my ($meth, $url, $ver) = ($1, $2 // '/', $3 // 'HTTP/1.1');

    my $body = $content;
    my $lead = 0;
    my $extra = '';
    if (!$chunked && $content ne ''
        && $hdrs !~ /(?:^|\n)Content-Length:/)
    {
        $body =~ s/^(\s*)//s;
        $lead = length $1;
        $body =~ s/\s+$//s;
        $extra = 'Content-Length: ' . length($body) . "\r\n";
    }

    $hdrs =~ s/(?<!\r)\n/\r\n/gs;
    my $line = "$meth $url $ver";
    my $head = "$line\r\n";
    $head .= "Host: $ServerName\r\n" if $hdrs !~ /(?:^|\n)Host:/msi;
    $head .= "Connection: $conn\r\n" if $hdrs !~ /(?:^|\n)Connection/msi;
    $head .= "$hdrs$extra\r\n";
    my $full = $head . $body;

    # map the block's packet boundaries onto the rewritten request:
    # inside the request line they keep their offset, inside the body
    # they follow the body bytes
    my (@cuts, $at);
    $at = 0;
    for my $p (@$packets[0 .. $#$packets - 1]) {
        $at += length $p;
        my $cut;
        if ($nl < 0 || $at <= $nl) {
            $cut = min($at, length $line);
        } else {
            my $off = $at - ($nl + 1) - $lead;
            $off = 0 if $off < 0;
            $off = length $body if $off > length $body;
            $cut = length($head) + $off;
        }
        push @cuts, $cut;
    }
    my ($prev, @out) = (0);
    for my $cut (@cuts, length $full) {
        $cut = $prev if $cut < $prev;
        push @out, substr($full, $prev, $cut - $prev);
        $prev = $cut;
    }
    return \@out;
}

sub req_headers_for ($$$) {
    my ($name, $more, $i) = @_;
    if (ref $more eq 'ARRAY') {
        my $h = $more->[$i];
        bail_out("$name - --- more_headers lacks data for request $i")
            unless defined $h;
        return parse_more_headers($h);
    }
    return parse_more_headers($more);
}

# Returns (\@requests, $pipelined_count); a request is a list of packets
# {value => bytes, delay_before => secs}, each request its own connection.
sub get_requests ($) {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        my @p = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return ([[map { ref $_ ? $_ : {value => $_} } @p]], 0);
    }

    my $more = $block->more_headers // '';

    if (defined(my $reqs = $block->pipelined_requests)) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $reqs eq 'ARRAY';
        my $data = '';
        for my $i (0 .. $#$reqs) {
            my ($h, $chunked) = req_headers_for($name, $more, $i);
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $data .= join '', @{build_request($name, $h, $chunked, $conn,
                                              [$reqs->[$i]])};
        }
        return ([[{value => $data}]], scalar @$reqs);
    }

    my $request = $block->request;
    bail_out("$name - no --- request section") unless defined $request;

    if (!ref $request) {
        1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
        if ($request =~ /\$TEST_NGINX_/ && !$WarnedReqEnv++) {
            diag("$name - \$TEST_NGINX_* is not expanded in --- request "
                 . "(nor by the real Test::Nginx); use --- request eval");
        }
        my ($h, $chunked) = req_headers_for($name, $more, 0);
        my $p = build_request($name, $h, $chunked, 'close', [$request]);
        return ([[map { {value => $_} } @$p]], 0);
    }

    bail_out("$name - invalid --- request: MUST be a string or an array "
             . "of requests") unless ref $request eq 'ARRAY';

    my @out;
    for my $i (0 .. $#$request) {
        my $one = $request->[$i];
        my ($h, $chunked) = req_headers_for($name, $more, $i);
        if (!ref $one) {
            my $p = build_request($name, $h, $chunked, 'close', [$one]);
            push @out, [map { {value => $_} } @$p];
        } elsif (ref $one eq 'ARRAY') {
            my @vals = map { ref $_ eq 'HASH' ? $_->{value} : $_ } @$one;
            my $p = build_request($name, $h, $chunked, 'close', \@vals);
            push @out, [map {
                ref $one->[$_] eq 'HASH'
                    ? {%{$one->[$_]}, value => $p->[$_]}
                    : {value => $p->[$_]}
            } 0 .. $#$p];
        } else {
            bail_out("$name - Invalid syntax. $one should be a string or "
                     . "an array of packets.");
        }
    }
    return (\@out, 0);
}

# Sends one request on its own connection and reads until the server
# closes it; $timeout bounds the wait between two I/O events.
sub send_request ($$$) {
    my ($block, $packets, $timeout) = @_;
    my $name = $block->name;
    my $data = join '', map { $_->{value} // '' } @$packets;
    my $head_req = $data =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $sock;
    my $tries = $Test::Nginx::Util::UseValgrind ? 300 : 50;
    for my $try (1 .. $tries) {
        $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                      PeerPort => $ServerPortForClient,
                                      Proto => 'tcp', Timeout => $timeout);
        last if $sock;
        my $err = $!;
        if (!nginx_is_running()) {
            fail("$name - Can't connect to $ServerAddr:"
                 . "$ServerPortForClient: $err (nginx is gone)");
            diag(error_log_tail(20));
            return (undef, $head_req);
        }
        sleep min(0.01 * $try, 0.2);
    }
    if (!$sock) {
        fail("$name - Can't connect to $ServerAddr:$ServerPortForClient: "
             . "$! (aborted)");
        return (undef, $head_req);
    }

    local $SIG{PIPE} = 'IGNORE';
    $sock->blocking(0);
    my $sel = IO::Select->new($sock);
    my @bits = @$packets;
    my $buf = (shift @bits)->{value} // '';
    my $off = 0;
    my $resp = '';
    my ($writing, $reading) = (1, 1);
    my $middle_delay = $block->raw_request_middle_delay;

    while ($reading) {
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef,
                                         undef, $timeout);
        if (!$r && !$w) {
            if (!defined $block->abort) {
                fail("ERROR: client socket timed out - $name");
            }
            last;
        }

        while ($writing && $w && @$w) {
            if ($off >= length $buf) {
                my $next = shift @bits;
                if (!$next) {
                    $writing = 0;
                    if (defined(my $how = $block->shutdown)) {
                        shutdown $sock, ($how =~ /^\s*$/ ? 1 : $how);
                    }
                    last;
                }
                my $delay = $next->{delay_before} // $middle_delay;
                sleep $delay if $delay;
                ($buf, $off) = ($next->{value} // '', 0);
                next;
            }
            my $n = syswrite $sock, $buf, length($buf) - $off, $off;
            if (!defined $n) {
                last if $!{EAGAIN} || $!{EWOULDBLOCK};
                # the server may have answered and closed early
                warn "$name - write failed: $!\n"
                    if $Test::Nginx::Util::Verbose;
                $writing = 0;
                last;
            }
            $off += $n;
        }

        next unless $r && @$r;
        while (1) {
            my $n = sysread $sock, my $chunk, 65536;
            if (!defined $n) {
                last if $!{EAGAIN} || $!{EWOULDBLOCK};
                warn "WARNING: $name - HTTP response read failure: $!\n"
                    unless $!{ECONNRESET};
                $reading = 0;
                last;
            }
            if ($n == 0) {
                $reading = 0;
                last;
            }
            $resp .= $chunk;
        }
    }
    close $sock;
    warn "$name - response: [$resp]\n" if $Test::Nginx::Util::Verbose;
    return ($resp, $head_req);
}

# --- responses ------------------------------------------------------------

sub res_header ($$) {
    my ($res, $key) = @_;
    return undef unless $res;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $key } @{$res->{headers}};
    return @v ? join(', ', @v) : undef;
}

# Returns ($res, $raw_headers, $left): $res = {code, headers, content},
# $left = the bytes after this response (pipelined requests).
sub parse_response ($$$) {
    my ($name, $raw, $head_req) = @_;

    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my ($head, $body) = $raw =~ /\A(.*?)\r?\n\r?\n(.*)\z/s
                        ? ($1, $2) : ($raw, '');
    my @lines = split /\r?\n/, $head;
    my $status = shift(@lines) // '';
    my $res = {code => undef, headers => [], content => $body};
    $res->{code} = $1 if $status =~ m{^HTTP/\d+(?:\.\d+)?\s+(\d+)};
    for (@lines) {
        push @{$res->{headers}}, [$1, $2] if /^([^:\s]+)\s*:\s*(.*?)\s*$/;
    }

    my $code = $res->{code};
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $enc = res_header($res, 'Transfer-Encoding');
    my $len = res_header($res, 'Content-Length');
    my $left;

    if ($head_req) {
        ($res->{content}, $left) = ('', $body);

    } elsif (defined $enc && $enc eq 'chunked') {
        my $decoded = '';
        pos($body) = 0;
        while (1) {
            if ($body =~ /\G0[ \t]*(?:;[^\r\n]*)?\r\n\r\n/gc) {
                $left = substr $body, pos $body;
                last;
            }
            if ($body =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*(?:;[^\r\n]*)?\r\n/gc) {
                my $size = hex $1;
                my $at = pos $body;
                if (length($body) - $at < $size) {
                    fail("$name - invalid chunked data received (not "
                         . "enough octets for the data section)");
                    return (undef, $raw_headers);
                }
                $decoded .= substr $body, $at, $size;
                pos($body) = $at + $size;
                if ($body !~ /\G\r\n/gc) {
                    fail("$name - invalid chunked data received "
                         . "(expected CRLF).");
                    return (undef, $raw_headers);
                }
            } elsif ($body =~ /\G(.+)/gcs) {
                fail("$name - invalid chunked body received: "
                     . fmt_str(substr $1, 0, 80));
                return (undef, $raw_headers);
            } else {
                fail("$name - no last chunk found - " . fmt_str($body));
                return (undef, $raw_headers);
            }
        }
        $res->{content} = $decoded;

    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $body > $len) {
            $left = substr $body, $len;
            $res->{content} = substr $body, 0, $len;
        } elsif (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len "
                 . "expected, but got " . length($body) . "\n";
        }
    }

    $left = undef if defined $left && $left eq '';
    return ($res, $raw_headers, $left);
}

sub get_indexed_value ($$$$) {
    my ($name, $value, $idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$idx] if ref $value eq 'ARRAY';
        # Test::Base's eval filter returns the error of code that died
        my $got = defined $value && !ref $value
                  ? ' (got "' . fmt_str(substr $value, 0, 300) . '")' : '';
        bail_out("$name - You asked for many requests, the expected "
                 . "results should be arrays as well.$got");
    }
    return $value->[0] if ref $value eq 'ARRAY';
    return $value;
}

sub check_error_code ($$$$) {
    my ($block, $res, $idx, $need_array) = @_;
    my $name = $block->name;
    my $got = ($res && $res->{code}) || '';
    if (defined $block->error_code_like) {
        my $pat = get_indexed_value($name, $block->error_code_like, $idx,
                                    $need_array);
        like($got, qr/$pat/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        is($got, get_indexed_value($name, $block->error_code, $idx,
                                   $need_array), "$name - status code ok");
    } else {
        is($got, 200, "$name - status code ok");
    }
}

sub check_raw_response_headers ($$$$) {
    my ($block, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        my $pat = get_indexed_value($name, $block->raw_response_headers_like,
                                    $idx, $need_array);
        like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = get_indexed_value($name,
                                    $block->raw_response_headers_unlike,
                                    $idx, $need_array);
        unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
    }
}

sub check_response_headers ($$$$$) {
    my ($block, $res, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $list = parse_headers(get_indexed_value($name,
                                 $block->response_headers, $idx,
                                 $need_array));
        for my $kv (@$list) {
            my ($key, $val) = @$kv;
            if (!defined $val) {
                # stricter than the real runner: any letter case
                unlike($raw_headers, qr/^\s*\Q$key\E\s*:/msi,
                       "$name - header $key not present in the raw "
                       . "headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            is(res_header($res, $key) // '', $val, "$name - header $key ok");
        }
    } elsif (defined $block->response_headers_like) {
        my $list = parse_headers(get_indexed_value($name,
                                 $block->response_headers_like, $idx,
                                 $need_array));
        for my $kv (@$list) {
            my ($key, $val) = @$kv;
            like(res_header($res, $key) // '', qr/^$val$/,
                 "$name - header $key like ok");
        }
    }
}

my %BodyFilters = (
    md5_hex  => sub { require Digest::MD5; Digest::MD5::md5_hex($_[0]) },
    sha1_hex => sub { require Digest::SHA; Digest::SHA::sha1_hex($_[0]) },
    uc       => sub { uc $_[0] },
    lc       => sub { lc $_[0] },
    ucfirst  => sub { ucfirst $_[0] },
    lcfirst  => sub { lcfirst $_[0] },
    length   => sub { length $_[0] },
);

sub transform_response_body ($$$) {
    my ($block, $res, $idx) = @_;
    my $filters = $block->response_body_filters;
    return unless defined $filters && $res && defined $res->{content};
    my $name = $block->name;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }
    if (ref $filters->[0] eq 'ARRAY') {
        $filters = $filters->[$idx]
            or bail_out("$name - no response_body_filters for request "
                        . $idx);
    }
    my $content = $res->{content};
    for my $f (@$filters) {
        my $code = ref $f eq 'CODE' ? $f : $BodyFilters{$f}
            or bail_out("$name - unknown filter, \"$f\", specified in the "
                        . "--- response_body_filters section");
        $content = $code->($content);
    }
    $res->{content} = $content;
}

sub check_response_body ($$$$$) {
    my ($block, $res, $idx, $rep, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->{content} : undef;

    if (defined $block->response_body) {
        my $expected = get_indexed_value($name, $block->response_body, $idx,
                                         $need_array);
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like "
                 . "(repeated req $rep, req $idx)");
        } else {
            is_str($content, $expected, "$name - response_body - response "
                   . "is expected (repeated req $rep, req $idx)");
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $pat = get_indexed_value($name,
                                    $type eq 'like'
                                        ? $block->response_body_like
                                        : $block->response_body_unlike,
                                    $idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        my $summary = trim($content) // '';
        $summary = substr($summary, 0, 200) . '...' if length $summary > 200;
        my $desc = "$name - response_body_$type - response is expected "
                   . "($summary)";
        if ($type eq 'like') {
            like($content, qr/$pat/s, $desc);
        } else {
            unlike($content, qr/$pat/s, $desc);
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $content, $idx, $rep, 0);
    }
}

# --- logs -----------------------------------------------------------------

sub pattern_list ($) {
    my $p = shift;
    if (!ref $p) {
        chomp $p;
        return [split /\n+/, $p];
    }
    return [$p] if ref $p eq 'Regexp';
    return [@$p];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub value_contains ($$) {
    my ($val, $s) = @_;
    return 0 unless defined $val;
    return grep { defined $_ && index("$_", $s) >= 0 }
                (ref $val eq 'ARRAY' ? @$val : ($val));
}

# Patterns that must (error_log) or must not (no_error_log) occur.  Like
# the real runner, error_log looks at the log written since the previous
# check; no_error_log looks at the whole log of the block, which is
# stricter.  The last check of a block runs after nginx has exited.
sub check_log_patterns ($$$$$) {
    my ($block, $what, $seg, $whole, $rep) = @_;
    my $name = $block->name;
    my $file = $what =~ /access/ ? 'access.log' : 'error.log';

    if (defined(my $pats = $block->$what)) {
        for my $pat (@{pattern_list($pats)}) {
            next unless defined $pat;
            my $p = fmt_str($pat);
            if (grep { line_matches($_, $pat) } @$seg) {
                pass("$name - pattern \"$p\" matches a line in $file "
                     . "(req $rep)");
            } else {
                fail("$name - pattern \"$p\" should match a line in $file "
                     . "(req $rep)");
            }
        }
    }

    my $no = "no_$what";
    if (defined(my $pats = $block->$no)) {
        for my $pat (@{pattern_list($pats)}) {
            next unless defined $pat;
            my $p = fmt_str($pat);
            my @hits = grep { line_matches($_, $pat) } @$whole;
            if (@hits) {
                fail("$name - pattern \"$p\" should not match any line in "
                     . "$file but matches line \"" . fmt_str($hits[0])
                     . "\" (req $rep)"
                     . (@hits > 1 ? " and " . (@hits - 1) . " more" : ''));
            } else {
                pass("$name - pattern \"$p\" does not match a line in "
                     . "$file (req $rep)");
            }
        }
    }
}

sub check_error_log ($$$) {
    my ($block, $rep, $final) = @_;
    my $name = $block->name;

    # log-phase lines land a little after the response
    sleep $Test::Nginx::Util::TestNginxSleep * 3 unless $final;

    my ($seg, $end) = read_error_log(
        $Test::Nginx::Util::CheckAccumErrLog ? 0 : $ErrLogPos);
    $ErrLogPos = $end;
    my ($whole) = defined $block->no_error_log ? read_error_log(0) : ([]);

    if (defined(my $grep = $block->grep_error_log)) {
        $grep = $grep->[$rep] if ref $grep eq 'ARRAY';
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but "
                 . "--- grep_error_log is defined") unless defined $expected;
        $expected = $expected->[$rep] if ref $expected eq 'ARRAY';
        my $out = '';
        for my $line (@$seg) {
            if (ref $grep ? $line =~ $grep : $line =~ /\Q$grep\E/) {
                $out .= "$&\n" if $& !~ /\n/;
            }
        }
        if (ref $expected eq 'Regexp') {
            like($out, $expected, "$name - grep_error_log_out (req $rep)");
        } else {
            is_str($out, $expected, "$name - grep_error_log_out (req $rep)");
        }
    }

    check_log_patterns($block, 'error_log', $seg, $whole, $rep);

    for my $level (qw(alert crit emerg)) {
        next if value_contains($block->error_log, "[$level")
             || value_contains($block->no_error_log, "[$level");
        for my $line (grep { /\[$level\]/ } @$seg) {
            warn "WARNING: $name - " . fmt_str($line) . "\n";
        }
    }

    for my $line (grep { /\bAssertion .*?failed\b/ } @$seg) {
        fail("$name - " . fmt_str($line));
    }
}

sub check_access_log ($$) {
    my ($block, $rep) = @_;
    return unless defined $block->access_log
               || defined $block->no_access_log;
    my $lines = access_log_data();
    check_log_patterns($block, 'access_log', $lines, $lines, $rep);
}

sub check_valgrind ($) {
    my $block = shift;
    my $report = Test::Nginx::Util::valgrind_report();
    return if $report eq '';
    my $name = $block->name;
    if ($report =~ /definitely\ lost|Invalid\ (?:read|write|free)
                    |uninitialised|Mismatched\ free|overlap
                    |Syscall\ param/x)
    {
        fail("$name - valgrind found memory errors or leaks");
    }
    diag("$name - valgrind:\n$report");
}

# --- one repetition of a block ----------------------------------------------

sub run_test_helper ($$$) {
    my ($block, $rep, $final) = @_;
    my $name = $block->name;

    my ($reqs, $npipe) = get_requests($block);
    my $timeout = parse_time($block->timeout) // timeout();
    my $need_array = $npipe ? 1 : @$reqs > 1;
    my $ignore = defined $block->ignore_response;
    my $idx = 0;

    for my $ri (0 .. $#$reqs) {
        my ($raw, $head_req) = send_request($block, $reqs->[$ri], $timeout);
        my $n = $npipe || 1;

        for my $k (1 .. $n) {
            my ($res, $raw_headers, $left);
            if (!$ignore) {
                ($res, $raw_headers, $left) =
                    parse_response($name, $raw // '', $head_req);
                $raw_headers //= '';
                check_error_code($block, $res, $idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $idx,
                                           $need_array);
                check_response_headers($block, $res, $raw_headers, $idx,
                                       $need_array);
                transform_response_body($block, $res, $idx);
                check_response_body($block, $res, $idx, $rep, $need_array);
            }

            if ($npipe) {
                $raw = $left;
            } elsif (defined $left) {
                (my $l = $left) =~ s/([\0-\037\200-\377])/
                                     sprintf('\x{%02x}', ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last "
                     . "chunk in response: \"$l\"\n";
            }

            if ($ri < $#$reqs || $k < $n) {
                sleep $block->wait if $block->wait;
                check_error_log($block, $rep, 0);
                check_access_log($block, $rep) unless $ignore;
            }
            $idx++;
        }
    }

    sleep $block->wait if $block->wait;

    my $stopped = 0;
    my $pre_stop = -s $ErrLogFile || 0;
    if ($final && !keep_nginx()) {
        stop_nginx($name);
        check_valgrind($block);
        $stopped = 1;
    }
    check_error_log($block, $rep, $stopped);
    check_access_log($block, $rep) unless $ignore;
    check_shutdown_error_log($block, $pre_stop) if $stopped;
}

# What nginx logged while it exited; once per block, like the real runner.
sub check_shutdown_error_log ($$) {
    my ($block, $from) = @_;
    return unless defined $block->shutdown_error_log;
    my ($lines) = read_error_log($from);
    my $shim = Test::Base::Block->new;
    $shim->set_value(name => $block->name);
    $shim->set_value(error_log => $block->shutdown_error_log);
    $shim->set_value(no_error_log => $block->no_shutdown_error_log)
        if defined $block->no_shutdown_error_log;
    check_log_patterns($shim, 'error_log', $lines, $lines, 'shutdown');
}

1;
