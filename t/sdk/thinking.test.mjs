// Reasoning through the cache, with scripted provider streams (the mock
// gives no thinking): an Anthropic stream with a thinking block, its
// signature, text and a tool_use is replayed to the SDK with every block
// intact, and the JSON HIT has the same blocks; an OpenAI-compatible chat
// stream with reasoning_content deltas (DeepSeek's shape) keeps them.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Gateway, skipReason } from './gateway.mjs';
import { sse, startFixture } from './fixture.mjs';

let sdk = null;
let why = skipReason();
if (!why) {
    try {
        sdk = {
            OpenAI: (await import('openai')).default,
            Anthropic: (await import('@anthropic-ai/sdk')).default,
        };
    } catch (e) {
        why = 'the SDKs are not installed (npm ci --prefix t/sdk): '
              + e.message;
    }
}
if (why) {
    console.log(`t/sdk skipped: ${why}`);
}

const THINKING = ['The user asks about rain. ', 'A haiku has ',
                  '5-7-5 syllables; ', 'I will use the tool.'];
const SIGNATURE = 'EqQBCkgIARABGAIiQGx1c2lnbmF0dXJlLWJ5dGVzLWZvci10ZXN0aW5n';
const TEXT = ['Here is ', 'my answer, ', 'through the tool.'];
// a JSON escape and a raw non-ASCII letter, split inside a key
const TOOL_JSON = ['{"answ', 'er": "soft rain', ' on \\u00e9t\u00e9 ',
                   'roofs"}'];

const REDACTED = 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVy'
                 + 'IwxtE3rAFBa8cr3qpP';

function anthropicEvents(id, { redacted = false } = {}) {
    const ev = [];
    const block = (index, type, data) => ev.push(sse(type,
        { type, index, ...data }));
    ev.push(sse('message_start', { type: 'message_start', message: {
        id, type: 'message', role: 'assistant', model: 'claude-sonnet-4-6',
        content: [], stop_reason: null, stop_sequence: null,
        usage: { input_tokens: 31, cache_creation_input_tokens: 0,
                 cache_read_input_tokens: 0, output_tokens: 1 } } }));
    block(0, 'content_block_start',
          { content_block: { type: 'thinking', thinking: '', signature: '' } });
    ev.push(sse('ping', { type: 'ping' }));
    for (const t of THINKING) {
        block(0, 'content_block_delta',
              { delta: { type: 'thinking_delta', thinking: t } });
    }
    block(0, 'content_block_delta',
          { delta: { type: 'signature_delta', signature: SIGNATURE } });
    block(0, 'content_block_stop', {});
    let i = 1;
    if (redacted) {
        // arrives whole in its start event
        block(i, 'content_block_start', { content_block: {
            type: 'redacted_thinking', data: REDACTED } });
        block(i++, 'content_block_stop', {});
    }
    block(i, 'content_block_start',
          { content_block: { type: 'text', text: '' } });
    for (const t of TEXT) {
        block(i, 'content_block_delta',
              { delta: { type: 'text_delta', text: t } });
    }
    block(i++, 'content_block_stop', {});
    block(i, 'content_block_start', { content_block: {
        type: 'tool_use', id: 'toolu_fx_1', name: 'give_answer', input: {} } });
    for (const j of ['', ...TOOL_JSON]) {
        block(i, 'content_block_delta',
              { delta: { type: 'input_json_delta', partial_json: j } });
    }
    block(i, 'content_block_stop', {});
    ev.push(sse('message_delta', { type: 'message_delta',
        delta: { stop_reason: 'tool_use', stop_sequence: null },
        usage: { output_tokens: 87 } }));
    ev.push(sse('message_stop', { type: 'message_stop' }));
    return ev;
}

const REASONING = ['Rain falls; ', 'count the ', 'syllables.'];
const ANSWER = ['Soft rain ', 'on the roof.'];

function chatEvents(id) {
    const base = { id, object: 'chat.completion.chunk', created: 1700000000,
                   model: 'deepseek-reasoner', system_fingerprint: 'fp_fx' };
    const chunk = (delta, finish = null) => sse(null, { ...base, choices: [
        { index: 0, delta, logprobs: null, finish_reason: finish }] });
    return [
        chunk({ role: 'assistant', content: null, reasoning_content: '' }),
        ...REASONING.map((r) => chunk({ content: null, reasoning_content: r })),
        ...ANSWER.map((a) => chunk({ content: a, reasoning_content: null })),
        chunk({}, 'stop'),
        sse(null, { ...base, choices: [], usage: {
            prompt_tokens: 11, completion_tokens: 22, total_tokens: 33,
            completion_tokens_details: { reasoning_tokens: 9 } } }),
        'data: [DONE]\n\n',
    ];
}

describe('reasoning through the cache', { skip: why || false }, () => {
    const gw = new Gateway();
    let fx;
    let openai;
    let anthropic;

    before(async () => {
        fx = await startFixture();
        await gw.start({ fixturePort: fx.port });
        openai = new sdk.OpenAI({ apiKey: 'sk-test',
                                  baseURL: `${gw.url}/fixture/v1`,
                                  maxRetries: 0, timeout: 20000 });
        anthropic = new sdk.Anthropic({ apiKey: 'sk-ant',
                                        baseURL: `${gw.url}/fixture`,
                                        maxRetries: 0, timeout: 20000 });
    });

    after(async () => {
        await gw.stop();
        await fx?.close();
    });

    async function messagesStream(params) {
        const s = anthropic.messages.stream(params);
        let thinking = '';
        const signatures = [];
        s.on('thinking', (d) => { thinking += d; });
        s.on('signature', (sig) => signatures.push(sig));
        const { response } = await s.withResponse();
        const final = await s.finalMessage();
        return { cache: response.headers.get('x-llm-cache'), thinking,
                 signatures, final };
    }

    for (const redacted of [false, true]) {
        const also = redacted ? 'redacted_thinking, ' : '';
        test(`anthropic: thinking, signature, ${also}text and tool_use `
             + 'survive the replay', async () => {
            fx.events = anthropicEvents('msg_fx_think', { redacted });
            const params = {
                model: 'claude-sonnet-4-6', max_tokens: 2048,
                thinking: { type: 'enabled', budget_tokens: 1024 },
                messages: [{ role: 'user',
                             content: `a haiku about rain ${redacted}` }],
                tools: [{ name: 'give_answer',
                          input_schema: { type: 'object' } }],
            };
            const before = fx.calls;
            const miss = await messagesStream(params);
            const hit = await messagesStream(params);
            const { data: json, response } = await anthropic.messages
                .create(params).withResponse();
            assert.equal(fx.calls - before, 1, 'one upstream call');
            assert.deepEqual([miss.cache, hit.cache,
                              response.headers.get('x-llm-cache')],
                             ['MISS', 'HIT', 'HIT']);

            const want = [
                { type: 'thinking', thinking: THINKING.join(''),
                  signature: SIGNATURE },
                ...(redacted
                    ? [{ type: 'redacted_thinking', data: REDACTED }] : []),
                { type: 'text', text: TEXT.join('') },
                { type: 'tool_use', id: 'toolu_fx_1', name: 'give_answer',
                  input: JSON.parse(TOOL_JSON.join('')) },
            ];
            const blocks = (m) => m.content.map((b) => {
                const { citations: _, caller: __, ...rest } = b;
                return rest;
            });
            assert.deepEqual(blocks(miss.final), want);
            assert.deepEqual(blocks(hit.final), want);
            assert.deepEqual(blocks(json), want);
            for (const m of [miss, hit]) {
                assert.equal(m.thinking, THINKING.join(''));
                assert.deepEqual(m.signatures, [SIGNATURE]);
            }
            for (const m of [miss.final, hit.final, json]) {
                assert.equal(m.id, 'msg_fx_think');
                assert.equal(m.stop_reason, 'tool_use');
                assert.equal(m.usage.input_tokens, 31);
                assert.equal(m.usage.output_tokens, 87);
            }
        });
    }

    test('chat: reasoning_content deltas survive the replay and the JSON HIT',
         async () => {
        fx.events = chatEvents('chatcmpl-fx-reason');
        const params = {
            model: 'deepseek-reasoner',
            messages: [{ role: 'user', content: 'a line about rain' }],
        };
        const stream = async () => {
            const { data, response } = await openai.chat.completions
                .create({ ...params, stream: true,
                          stream_options: { include_usage: true } })
                .withResponse();
            let reasoning = '';
            let text = '';
            let usage = null;
            for await (const c of data) {
                const d = c.choices[0]?.delta ?? {};
                reasoning += d.reasoning_content ?? '';
                text += d.content ?? '';
                usage = c.usage ?? usage;
            }
            return { cache: response.headers.get('x-llm-cache'), reasoning,
                     text, usage };
        };
        const before = fx.calls;
        const miss = await stream();
        const hit = await stream();
        const { data: json, response } = await openai.chat.completions
            .create(params).withResponse();
        assert.equal(fx.calls - before, 1, 'one upstream call');
        assert.deepEqual([miss.cache, hit.cache,
                          response.headers.get('x-llm-cache')],
                         ['MISS', 'HIT', 'HIT']);
        for (const s of [miss, hit]) {
            assert.equal(s.text, ANSWER.join(''));
            assert.equal(s.usage.total_tokens, 33);
        }
        assert.equal(json.choices[0].message.content, ANSWER.join(''));
        assert.equal(miss.reasoning, REASONING.join(''));
        assert.deepEqual({ streamHit: hit.reasoning,
                           jsonHit: json.choices[0].message.reasoning_content },
                         { streamHit: REASONING.join(''),
                           jsonHit: REASONING.join('') });
    });

    test('nginx did not crash and logged no errors', () => {
        assert.equal(gw.nginxDeath(), null, 'nginx died during the tests');
        const bad = gw.errorLog().split('\n')
            .filter((l) => /\[(error|crit|alert|emerg)\]/.test(l));
        assert.deepEqual(bad, []);
    });
});
