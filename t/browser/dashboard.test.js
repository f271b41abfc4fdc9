#!/usr/bin/env node
// The llmcache_metrics dashboard in a real browser: starts the provider
// mock (with its Redis) and nginx with the module, opens the page in
// Debian's chromium (playwright-core), serves requests and checks that the
// numbers on the page follow, then saves build/dashboard.png.  TAP output.
//
//   node t/browser/dashboard.test.js      (from anywhere; after make module)
//
// LLMCACHE_MODULE, NGINX and CHROMIUM override the paths.
'use strict';

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const readline = require('readline');

const root = path.resolve(__dirname, '..', '..');
const modulePath = process.env.LLMCACHE_MODULE
    || path.join(root, 'build', 'ngx_http_llmcache_module.so');
const nginxBin = process.env.NGINX || '/usr/sbin/nginx';
const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';
const shot = path.join(root, 'build', 'dashboard.png');

let n = 0, failed = 0;
function ok(cond, name, extra) {
    n++;
    if (!cond) failed++;
    console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${name}`);
    if (!cond && extra !== undefined) console.log(`# ${extra}`);
}

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.listen(0, '127.0.0.1', () => {
            const p = s.address().port;
            s.close(() => resolve(p));
        });
        s.on('error', reject);
    });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let mock = null, work = null, browser = null, userDir = null;

function nginxStop() {
    const pidFile = work && path.join(work, 'logs', 'nginx.pid');
    if (pidFile && fs.existsSync(pidFile)) {
        try {
            process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGQUIT');
        } catch (e) { /* gone already */ }
    }
}

async function cleanup() {
    if (browser) await browser.close().catch(() => {});
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    nginxStop();
    if (mock) mock.kill('SIGTERM');
    await sleep(300);
    if (work) fs.rmSync(work, { recursive: true, force: true });
}

async function startMock(port, redisPort) {
    mock = spawn('python3', [path.join(root, 't/mock/provider.py'),
                             '--port', String(port),
                             '--redis-port', String(redisPort)],
                 { stdio: ['ignore', 'pipe', 'inherit'] });
    const rl = readline.createInterface({ input: mock.stdout });
    const line = await Promise.race([
        new Promise((r) => rl.once('line', r)),
        sleep(20000).then(() => 'timeout'),
    ]);
    if (line !== 'ready') throw new Error(`mock did not start: ${line}`);
}

function startNginx(port, mockPort, redisPort) {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'llmcache-dash-'));
    fs.mkdirSync(path.join(work, 'logs'));
    fs.mkdirSync(path.join(work, 'conf'));
    const conf = `
load_module ${modulePath};
worker_processes 2;
error_log ${work}/logs/error.log warn;
pid ${work}/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path ${work}/body;
    proxy_temp_path ${work}/proxy;
    llmcache_redis 127.0.0.1:${redisPort};
    llmcache_zone llmcache 1m;
    llmcache_dictionary ${root}/examples/dict/ko.dict;
    llmcache_dictionary ${root}/examples/dict/en.dict;
    server {
        listen 127.0.0.1:${port};
        location /v1/ {
            llmcache on;
            llmcache_semantic on;
            proxy_pass http://127.0.0.1:${mockPort};
        }
        location = /metrics {
            llmcache_metrics;
        }
    }
}
`;
    fs.writeFileSync(path.join(work, 'conf', 'nginx.conf'), conf);
    execFileSync(nginxBin, ['-p', work, '-c', path.join(work, 'conf', 'nginx.conf')],
                 { stdio: 'inherit' });
}

async function chat(base, text, model) {
    const res = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json',
                   'Authorization': 'Bearer sk-dashboard' },
        body: JSON.stringify({ model: model || 'gpt-4o',
                               messages: [{ role: 'user', content: text }] }),
    });
    await res.text();
    return res.status;
}

async function main() {
    const started = Date.now();
    let chromium;
    try {
        ({ chromium } = require('playwright-core'));
    } catch (e) {
        console.log('1..0 # SKIP playwright-core missing: (cd t/browser && npm ci)');
        return 0;
    }
    if (!fs.existsSync(chromiumBin)) {
        console.log(`1..0 # SKIP no chromium at ${chromiumBin}`);
        return 0;
    }
    if (!fs.existsSync(modulePath)) {
        console.log(`Bail out! no module at ${modulePath}: make module`);
        return 1;
    }

    const [port, mockPort, redisPort] = [await freePort(), await freePort(),
                                         await freePort()];
    await startMock(mockPort, redisPort);
    startNginx(port, mockPort, redisPort);
    await sleep(300);
    const base = `http://127.0.0.1:${port}`;

    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'llmcache-chromium-'));
    // a fresh profile: playwright passes it as --user-data-dir
    browser = await chromium.launchPersistentContext(userDir, {
        executablePath: chromiumBin,
        headless: true,
        viewport: { width: 1360, height: 720 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
               '--no-first-run', '--disable-background-networking',
               '--disable-component-update', '--disable-sync'],
    });
    const page = browser.pages()[0] || await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    // what a browser asks for: Accept includes text/html
    const res = await page.goto(`${base}/metrics`);
    ok(res.status() === 200, 'the page loads');
    ok(/text\/html/.test(res.headers()['content-type']), 'as text/html');
    const external = await page.evaluate(() =>
        Array.from(document.querySelectorAll('[src],link[href]'))
            .filter((e) => !/^data:/.test(e.getAttribute('src')
                                          || e.getAttribute('href'))).length);
    ok(external === 0, 'no external assets');

    await page.waitForFunction(
        () => document.getElementById('state').textContent === 'live',
        null, { timeout: 5000 });
    const text = (id) => page.$eval('#' + id, (e) => e.textContent);
    ok(await text('total-requests') === '0', 'no requests yet',
       await text('total-requests'));
    ok(await text('hit-ratio') === '-', 'no hit ratio yet');

    // 3 rounds: a MISS then HITs, a SEMANTIC pair, another model
    let sent = 0;
    for (let round = 0; round < 3; round++) {
        await chat(base, 'What is the capital of France?'); sent++;
        await chat(base, 'What is the capital of France?'); sent++;
        await chat(base, '맛있는 파스타 레시피 알려줘'); sent++;
        await chat(base, '파스타 레시피 좀 알려주세요'); sent++;
        await chat(base, `Name prime number ${round}.`, 'gpt-4o-mini'); sent++;
        await sleep(400);
    }

    // the page polls every second: the numbers must catch up
    await page.waitForFunction(
        (want) => document.getElementById('total-requests').textContent === String(want),
        sent, { timeout: 5000 }).catch(() => {});
    ok(await text('total-requests') === String(sent), `requests on the page: ${sent}`,
       await text('total-requests'));
    const exact = Number(await text('exact-hits'));
    const semantic = Number(await text('semantic-hits'));
    ok(exact >= 4, `exact hits counted (${exact})`);
    ok(semantic >= 1, `semantic hits counted (${semantic})`);
    ok(/^\d+(\.\d)?%$/.test(await text('hit-ratio')), 'a hit ratio',
       await text('hit-ratio'));
    ok(await text('hit-bytes') !== '0 B', 'bytes served from cache move');
    // the accounting: the hits' tokens and price were saved
    ok(/^[1-9][\d,]*$/.test(await text('tokens-saved')), 'tokens saved move',
       await text('tokens-saved'));
    ok(/^\$0\.\d*[1-9]/.test(await text('usd-saved')), 'dollars saved move',
       await text('usd-saved'));
    ok(await text('redis-state') === 'healthy', 'Redis healthy',
       await text('redis-state'));
    ok(/ms$/.test(await text('lookup-p50')), 'lookup p50 from the histogram',
       await text('lookup-p50'));
    const models = await page.$$eval('#models tr td:first-child',
                                     (tds) => tds.map((t) => t.textContent));
    ok(models[0] === 'gpt-4o' && models.includes('gpt-4o-mini'),
       'top models, busiest first', JSON.stringify(models));

    // the requests-per-second chart has drawn something
    const painted = await page.$eval('#chart-rps', (cv) => {
        const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
        let colored = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i + 3] && (d[i + 1] > d[i] + 40)) colored++;   // green-ish
        }
        return colored;
    });
    ok(painted > 50, `the rps chart plots the hits (${painted} px)`);

    // let a few more polls come in so the charts have some history
    for (let i = 0; i < 6; i++) {
        await chat(base, 'What is the capital of France?'); sent++;
        await sleep(250);
    }
    await page.waitForFunction(
        (want) => document.getElementById('total-requests').textContent === String(want),
        sent, { timeout: 5000 }).catch(() => {});
    ok(await text('total-requests') === String(sent), 'the numbers keep moving');

    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    ok(fs.statSync(shot).size > 10000, `screenshot saved to ${path.relative(root, shot)}`);
    ok(errors.length === 0, 'no script errors on the page', errors.join(' | '));

    console.log(`1..${n}`);
    console.log(`# ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return failed ? 1 : 0;
}

main().then(async (rc) => {
    await cleanup();
    process.exit(rc);
}, async (e) => {
    console.log(`Bail out! ${e && e.stack || e}`);
    await cleanup();
    process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, async () => { await cleanup(); process.exit(130); });
}
