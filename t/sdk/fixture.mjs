// An upstream of the test's own, for answers the provider mock does not
// give (thinking blocks, reasoning_content): it sends the SSE events the
// test scripted, as a provider would, and counts the requests it got.

import http from 'node:http';

export function sse(event, data) {
    const json = JSON.stringify(data);
    return event ? `event: ${event}\ndata: ${json}\n\n` : `data: ${json}\n\n`;
}

export async function startFixture() {
    const fx = { calls: 0, events: null, requests: [] };
    const server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => { body += d; });
        req.on('end', () => {
            fx.calls++;
            fx.requests.push({ path: req.url, body });
            let stream = false;
            try { stream = JSON.parse(body).stream === true; } catch { /* */ }
            if (!stream || !fx.events) {
                // only streams are scripted: anything else must be a HIT
                res.writeHead(500, { 'content-type': 'application/json' });
                res.end('{"error":{"message":"fixture: not scripted"}}');
                return;
            }
            res.writeHead(200, { 'content-type': 'text/event-stream',
                                 'cache-control': 'no-cache' });
            for (const e of fx.events) {
                res.write(e);
            }
            res.end();
        });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    fx.port = server.address().port;
    fx.close = () => new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
    });
    return fx;
}
