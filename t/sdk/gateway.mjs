// The real processes behind the SDK tests: the provider mock (which owns a
// private redis-server) and nginx with the module, on free loopback ports,
// in a temporary directory.  stop() ends both; it also runs when the test
// process exits or is interrupted, so a failing test leaves nothing behind.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync }
    from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)),
                                 '..', '..');
export const modulePath = process.env.LLMCACHE_MODULE ||
    path.join(root, 'build', 'ngx_http_llmcache_module.so');
export const nginxBinary = process.env.TEST_NGINX_BINARY || '/usr/sbin/nginx';
const SETPRIV = '/usr/bin/setpriv';

// Why the suite cannot run here, or null.
export function skipReason() {
    if (!existsSync(modulePath)) {
        return `${modulePath} does not exist: run make module first`;
    }
    if (!existsSync(nginxBinary)) {
        return `${nginxBinary} does not exist`;
    }
    return null;
}

// A port the OS says is free now.
function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.unref();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function canConnect(port) {
    return new Promise((resolve) => {
        const c = net.connect(port, '127.0.0.1');
        c.once('connect', () => { c.destroy(); resolve(true); });
        c.once('error', () => resolve(false));
    });
}

const running = new Set();
const dirs = new Set();

function killAll() {
    for (const child of running) {
        try { child.kill('SIGKILL'); } catch { /* already gone */ }
    }
    running.clear();
    for (const dir of dirs) {
        removeDir(dir);
    }
}

function removeDir(dir) {
    dirs.delete(dir);
    if (!process.env.LLMCACHE_SDK_KEEP) {
        rmSync(dir, { recursive: true, force: true });
    }
}

process.once('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
        killAll();
        process.exit(128 + os.constants.signals[sig]);
    });
}

function track(child) {
    running.add(child);
    child.once('exit', () => running.delete(child));
    return child;
}

function waitExit(child, ms) {
    if (child.exitCode !== null || child.signalCode !== null) {
        return Promise.resolve();
    }
    return Promise.race([
        new Promise((r) => child.once('exit', r)),
        sleep(ms),
    ]);
}

// Resolves once the mock printed "ready"; rejects with its output when it
// exits first (a port taken between freePort() and its bind).
function startMock(port, redisPort, logFile) {
    const child = track(spawn('python3', [
        path.join(root, 't', 'mock', 'provider.py'),
        '--port', String(port), '--redis-port', String(redisPort),
    ], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    const keep = (d) => {
        out += d;
        writeFileSync(logFile, out);
    };
    child.stderr.on('data', keep);
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(
                `the provider mock was not ready in 30 s:\n${out}`));
        }, 30000);
        child.stdout.on('data', (d) => {
            keep(d);
            if (/^ready$/m.test(out)) {
                clearTimeout(timer);
                resolve(child);
            }
        });
        child.once('exit', (code, sig) => {
            clearTimeout(timer);
            reject(new Error(`the provider mock exited (${code ?? sig}) `
                             + `before it was ready:\n${out}`));
        });
    });
}

function nginxConf(dir, port, mockPort, redisPort, fixturePort) {
    const loc = (provider) => `
            llmcache on;
            llmcache_provider ${provider};
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Accept-Encoding "";
            add_header X-LLM-Cache $llmcache_status always;
            add_header X-LLM-Lock-Time $llmcache_lock_time always;`;
    return `load_module ${modulePath};
daemon off;
master_process off;
worker_processes 1;
error_log ${dir}/error.log info;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path ${dir}/body_temp;
    proxy_temp_path ${dir}/proxy_temp;
    fastcgi_temp_path ${dir}/fastcgi_temp;
    uwsgi_temp_path ${dir}/uwsgi_temp;
    scgi_temp_path ${dir}/scgi_temp;
    llmcache_redis 127.0.0.1:${redisPort};

    upstream mock { server 127.0.0.1:${mockPort}; keepalive 8; }

    server {
        listen 127.0.0.1:${port};

        location /v1/ {${loc('openai')}
            proxy_pass http://mock;
        }

        location /anthropic/ {${loc('anthropic')}
            proxy_pass http://mock/;
        }
${fixturePort ? `
        location /fixture/ {${loc('auto')}
            proxy_pass http://127.0.0.1:${fixturePort}/;
        }
` : ''}    }
}
`;
}

async function startNginx(dir, port, mockPort, redisPort, fixturePort) {
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConf(dir, port, mockPort, redisPort, fixturePort));
    const args = ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf];
    // setpriv makes the kernel kill nginx if this process dies without
    // running its exit handlers (SIGKILL), as the mock does for itself
    const child = track(existsSync(SETPRIV)
        ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', nginxBinary, ...args],
                { stdio: ['ignore', 'ignore', 'pipe'] })
        : spawn(nginxBinary, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const until = Date.now() + 10000;
    while (Date.now() < until) {
        if (child.exitCode !== null || child.signalCode !== null) {
            const log = readLog(path.join(dir, 'error.log'));
            const rc = child.exitCode ?? child.signalCode;
            throw new Error(`nginx exited (${rc}):`
                            + `\n${err}${log}`);
        }
        if (await canConnect(port)) {
            return child;
        }
        await sleep(20);
    }
    child.kill('SIGKILL');
    throw new Error(`nginx did not listen on ${port} in 10 s:\n${err}`);
}

function readLog(file) {
    try { return readFileSync(file, 'utf8'); } catch { return ''; }
}

export class Gateway {
    // fixturePort: an upstream of the test's own behind /fixture/
    async start({ fixturePort } = {}) {
        this.dir = mkdtempSync(path.join(os.tmpdir(), 'llmcache-sdk-'));
        dirs.add(this.dir);
        // another process may take a port between the check and the bind
        for (let attempt = 1; ; attempt++) {
            this.mockPort = await freePort();
            this.redisPort = await freePort();
            try {
                this.mock = await startMock(this.mockPort, this.redisPort,
                                            path.join(this.dir, 'mock.log'));
                break;
            } catch (e) {
                if (attempt === 3 || !/in use|busy|already/i.test(e.message)) {
                    throw e;
                }
            }
        }
        for (let attempt = 1; ; attempt++) {
            this.port = await freePort();
            try {
                this.nginx = await startNginx(this.dir, this.port,
                                              this.mockPort, this.redisPort,
                                              fixturePort);
                // with master_process off nothing logs a crash: keep it
                this.nginx.once('exit', (code, sig) => {
                    if (!this.stopping) {
                        this.nginxDied = sig || `exit ${code}`;
                    }
                });
                break;
            } catch (e) {
                if (attempt === 3 || !/in use/i.test(e.message)) {
                    throw e;
                }
            }
        }
        this.url = `http://127.0.0.1:${this.port}`;
        this.mockUrl = `http://127.0.0.1:${this.mockPort}`;
        return this;
    }

    // null while nginx runs, else how it ended before stop()
    nginxDeath() {
        return this.nginxDied ?? null;
    }

    async stop() {
        this.stopping = true;
        for (const child of [this.nginx, this.mock]) {
            if (!child) {
                continue;
            }
            child.kill('SIGTERM');
            await waitExit(child, 3000);
            if (child.exitCode === null && child.signalCode === null) {
                child.kill('SIGKILL');
                await waitExit(child, 3000);
            }
        }
        this.nginx = this.mock = null;
        if (this.dir) {
            removeDir(this.dir);
        }
    }

    errorLog() {
        return readLog(path.join(this.dir, 'error.log'));
    }

    // provider calls the mock counted since it started (errors included)
    async calls(p) {
        const q = p ? `?path=${encodeURIComponent(p)}` : '';
        const r = await fetch(`${this.mockUrl}/__calls${q}`);
        return Number(await r.text());
    }

    async requests(p) {
        const q = encodeURIComponent(p);
        const r = await fetch(`${this.mockUrl}/__requests?path=${q}`);
        return r.json();
    }
}
