// The official SDKs against nginx + the module + the provider mocks: every
// replayed stream must pass the SDK's own SSE parser and stream accumulator
// and give the same text, tool calls, finish reason and usage as the
// upstream stream it was made from, and as the JSON answer of the same
// entry.  Each flow: a streaming MISS (the provider's stream), streaming
// HITs (a replay), a non-streaming HIT (the stored JSON), and exactly one
// provider call.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Gateway, skipReason } from './gateway.mjs';

let sdk = null;
let why = skipReason();
if (!why) {
    try {
        const chat = await import('openai/lib/ChatCompletionStream');
        const responses = await import('openai/lib/responses/ResponseStream');
        sdk = {
            OpenAI: (await import('openai')).default,
            ChatCompletionStream: chat.ChatCompletionStream,
            ResponseStream: responses.ResponseStream,
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

const TOOL_PARAMS = {
    type: 'object',
    properties: { answer: { type: 'string' } },
    required: ['answer'],
};

describe('SDK clients through the cache', { skip: why || false }, () => {
    const gw = new Gateway();
    let openai;
    let anthropic;
    // X-LLM-Cache of the last response, for the SDK helpers that hide it
    let lastCache;

    const recordingFetch = async (url, init) => {
        const r = await fetch(url, init);
        lastCache = r.headers.get('x-llm-cache');
        return r;
    };

    before(async () => {
        await gw.start();
        openai = new sdk.OpenAI({
            apiKey: 'sk-test', baseURL: `${gw.url}/v1`, maxRetries: 0,
            timeout: 20000, fetch: recordingFetch,
        });
        anthropic = new sdk.Anthropic({
            apiKey: 'sk-ant', baseURL: `${gw.url}/anthropic`, maxRetries: 0,
            timeout: 20000, fetch: recordingFetch,
        });
    });

    after(async () => {
        await gw.stop();
    });

    // One provider call for the whole block, whatever it sends.
    async function oneCall(fn) {
        const before = await gw.calls();
        const out = await fn();
        assert.equal(await gw.calls() - before, 1,
                     'exactly one request reached the provider');
        return out;
    }

    // --- OpenAI Chat Completions ----------------------------------------

    async function chatStream(params, opts) {
        const { data, response } = await openai.chat.completions
            .create({ ...params, stream: true }, opts).withResponse();
        // the SDK's SSE parser (data) feeds its chat stream accumulator
        const acc = sdk.ChatCompletionStream.fromReadableStream(
            data.toReadableStream());
        const chunks = [];
        let deltas = '';
        acc.on('chunk', (c) => chunks.push(c));
        acc.on('content.delta', ({ delta }) => { deltas += delta; });
        const final = await acc.finalChatCompletion();
        return { cache: response.headers.get('x-llm-cache'), chunks, deltas,
                 final };
    }

    async function chatJson(params) {
        const { data, response } = await openai.chat.completions
            .create(params).withResponse();
        return { cache: response.headers.get('x-llm-cache'), final: data };
    }

    function chatSummary(c) {
        assert.equal(c.choices.length, 1);
        const ch = c.choices[0];
        return {
            id: c.id,
            model: c.model,
            role: ch.message.role,
            text: ch.message.content ?? null,
            tools: (ch.message.tool_calls ?? []).map((t) => ({
                id: t.id, type: t.type, name: t.function.name,
                args: JSON.parse(t.function.arguments),
            })),
            finish: ch.finish_reason,
        };
    }

    function usageChunks(chunks) {
        return chunks.filter((c) => c.usage);
    }

    test('chat: text stream MISS, replays with and without the usage '
         + 'chunk, JSON HIT', async () => {
        const params = {
            model: 'gpt-4o',
            messages: [{ role: 'user',
                         content: 'tell me a story about a lighthouse' }],
        };
        const withUsage = { ...params,
                            stream_options: { include_usage: true } };
        const [miss, hitPlain, hitUsage, hitHelper, hitJson] =
            await oneCall(async () => [
                await chatStream(withUsage),
                await chatStream(params),
                await chatStream(withUsage),
                await (async () => {
                    // the SDK's own helper, as applications use it
                    const s = openai.chat.completions.stream(params);
                    const final = await s.finalChatCompletion();
                    return { cache: lastCache, final };
                })(),
                await chatJson(params),
            ]);

        assert.deepEqual([miss.cache, hitPlain.cache, hitUsage.cache,
                          hitHelper.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT', 'HIT', 'HIT']);

        const want = chatSummary(hitJson.final);
        assert.match(want.text, new RegExp(
            '^mock answer #\\d+ to: tell me a story about a lighthouse$'));
        assert.equal(want.finish, 'stop');
        assert.deepEqual(want.tools, []);
        for (const got of [miss, hitPlain, hitUsage, hitHelper]) {
            assert.deepEqual(chatSummary(got.final), want);
        }
        // the text arrived in pieces, and they add up
        for (const s of [miss, hitPlain, hitUsage]) {
            const pieces = s.chunks.filter((c) => c.choices[0]?.delta?.content);
            assert.ok(pieces.length >= 2,
                      `content in several chunks (${pieces.length})`);
            assert.equal(s.deltas, want.text);
            assert.equal(s.chunks[0].choices[0].delta.role, 'assistant');
        }

        // usage: only when asked, then in a last chunk without choices
        const usage = hitJson.final.usage;
        assert.ok(usage.completion_tokens > 0);
        assert.equal(usage.total_tokens,
                     usage.prompt_tokens + usage.completion_tokens);
        assert.deepEqual(usageChunks(hitPlain.chunks), []);
        assert.equal(hitPlain.final.usage, undefined);
        assert.equal(hitHelper.final.usage, undefined);
        for (const s of [miss, hitUsage]) {
            const u = usageChunks(s.chunks);
            assert.equal(u.length, 1, `one usage chunk on the ${s.cache}`);
            assert.deepEqual(u[0].choices, []);
            assert.equal(u[0], s.chunks.at(-1), 'the usage chunk is last');
            assert.deepEqual(s.final.usage, usage);
        }
    });

    // The module stores what the stream carried: a stream the client did
    // not ask usage for has none, so the entry has none either.
    test('chat: an entry made from a stream without usage still answers usage',
         { todo: 'the upstream request is not asked for include_usage' },
         async () => {
        const params = {
            model: 'gpt-4o',
            messages: [{ role: 'user', content: 'count the waves' }],
        };
        const [miss, hitUsage, hitJson] = await oneCall(async () => [
            await chatStream(params),
            await chatStream({ ...params,
                               stream_options: { include_usage: true } }),
            await chatJson(params),
        ]);
        assert.deepEqual([miss.cache, hitUsage.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT']);
        assert.equal(chatSummary(hitUsage.final).text,
                     chatSummary(hitJson.final).text);
        assert.ok(hitJson.final.usage, 'the JSON HIT has usage');
        assert.equal(usageChunks(hitUsage.chunks).length, 1,
                     'the replay asked for usage has a usage chunk');
    });

    test('chat: forced tool call survives the stream, its replay and JSON',
         async () => {
        const params = {
            model: 'gpt-4o',
            messages: [{ role: 'user', content: 'what is the answer?' }],
            tools: [{ type: 'function', function: {
                name: 'give_answer', description: 'Answer the question',
                parameters: TOOL_PARAMS } }],
            tool_choice: 'required',
            stream_options: { include_usage: true },
        };
        const { stream_options: _, ...jsonParams } = params;
        const [miss, hit, hitJson] = await oneCall(async () => [
            await chatStream(params),
            await chatStream(params),
            await chatJson(jsonParams),
        ]);
        assert.deepEqual([miss.cache, hit.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT']);

        const want = chatSummary(hitJson.final);
        assert.equal(want.finish, 'tool_calls');
        assert.equal(want.text, null);
        assert.equal(want.tools.length, 1);
        assert.equal(want.tools[0].name, 'give_answer');
        assert.equal(want.tools[0].type, 'function');
        assert.match(want.tools[0].args.answer,
                     /^mock answer #\d+ to: what is the answer\?$/);
        for (const got of [miss, hit]) {
            assert.deepEqual(chatSummary(got.final), want);
            // the upstream stream and the replay both give usage when asked
            assert.deepEqual(got.final.usage, hitJson.final.usage);
            const argPieces = got.chunks.filter((c) =>
                c.choices[0]?.delta?.tool_calls?.[0]?.function?.arguments);
            assert.ok(argPieces.length >= 1);
        }
    });

    test('chat: n=2 choices survive the replay and the JSON HIT', async () => {
        const params = { model: 'gpt-4o', n: 2,
                         messages: [{ role: 'user', content: 'two ways' }] };
        const [miss, hit, hitJson] = await oneCall(async () => [
            await chatStream(params),
            await chatStream(params),
            await chatJson(params),
        ]);
        assert.deepEqual([miss.cache, hit.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT']);
        const choices = (c) => c.choices.map((ch) => [
            ch.index, ch.message.content, ch.finish_reason]);
        const want = choices(hitJson.final);
        assert.equal(want.length, 2);
        assert.match(want[1][1], /^mock answer #\d+ to: two ways$/);
        assert.deepEqual(choices(miss.final), want);
        assert.deepEqual(choices(hit.final), want);
    });

    test('chat: an answer cut at the output limit replays finish_reason '
         + 'length', async () => {
        const params = { model: 'gpt-4o',
                         messages: [{ role: 'user', content: 'go on' }] };
        const [miss, hit, hitJson] = await oneCall(async () => [
            await chatStream(params,
                             { headers: { 'X-Mock-Finish': 'length' } }),
            await chatStream(params),
            await chatJson(params),
        ]);
        assert.deepEqual([miss.cache, hit.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT']);
        const want = chatSummary(hitJson.final);
        assert.equal(want.finish, 'length');
        assert.deepEqual(chatSummary(miss.final), want);
        assert.deepEqual(chatSummary(hit.final), want);
    });

    // --- OpenAI Responses -----------------------------------------------

    async function responsesStream(params, opts) {
        const { data, response } = await openai.responses
            .create({ ...params, stream: true }, opts).withResponse();
        const acc = sdk.ResponseStream.fromReadableStream(
            data.toReadableStream());
        const events = [];
        acc.on('event', (e) => events.push(e));
        const final = await acc.finalResponse();
        return { cache: response.headers.get('x-llm-cache'), events, final };
    }

    function responseSummary(r) {
        return {
            id: r.id,
            model: r.model,
            status: r.status,
            text: r.output_text,
            calls: r.output.filter((o) => o.type === 'function_call').map(
                (o) => ({ call_id: o.call_id, name: o.name,
                          args: JSON.parse(o.arguments) })),
            usage: r.usage,
        };
    }

    function checkResponseEvents(events, summary) {
        assert.equal(events[0].type, 'response.created');
        assert.equal(events.at(-1).type, 'response.completed');
        const seq = events.map((e) => e.sequence_number);
        for (let i = 1; i < seq.length; i++) {
            assert.ok(seq[i] > seq[i - 1], `sequence_number grows: ${seq}`);
        }
        const text = events
            .filter((e) => e.type === 'response.output_text.delta')
            .map((e) => e.delta);
        const args = events
            .filter((e) => e.type === 'response.function_call_arguments.delta')
            .map((e) => e.delta);
        if (summary.calls.length) {
            assert.ok(args.length >= 1);
            assert.deepEqual(JSON.parse(args.join('')), summary.calls[0].args);
        } else {
            assert.ok(text.length >= 2,
                      `text in several deltas (${text.length})`);
            assert.equal(text.join(''), summary.text);
        }
    }

    test('responses: text stream MISS, stream HITs and JSON HIT agree',
         async () => {
        const params = { model: 'gpt-4o',
                         input: 'describe the sea at night', store: false };
        const [miss, hit, hitHelper, hitJson] = await oneCall(async () => [
            await responsesStream(params),
            await responsesStream(params),
            await (async () => {
                const s = openai.responses.stream(params);
                const final = await s.finalResponse();
                return { cache: lastCache, final };
            })(),
            await (async () => {
                const { data, response } = await openai.responses
                    .create(params).withResponse();
                return { cache: response.headers.get('x-llm-cache'),
                         final: data };
            })(),
        ]);
        assert.deepEqual(
            [miss.cache, hit.cache, hitHelper.cache, hitJson.cache],
            ['MISS', 'HIT', 'HIT', 'HIT']);

        const want = responseSummary(hitJson.final);
        assert.equal(want.status, 'completed');
        assert.match(want.text,
                     /^mock answer #\d+ to: describe the sea at night$/);
        assert.deepEqual(want.calls, []);
        assert.ok(want.usage.output_tokens > 0);
        for (const got of [miss, hit, hitHelper]) {
            assert.deepEqual(responseSummary(got.final), want);
        }
        checkResponseEvents(miss.events, want);
        checkResponseEvents(hit.events, want);
    });

    test('responses: forced function call survives the stream and its replay',
         async () => {
        const params = {
            model: 'gpt-4o', input: 'which tool now?', store: false,
            tools: [{ type: 'function', name: 'give_answer', strict: false,
                      parameters: TOOL_PARAMS }],
            tool_choice: 'required',
        };
        const [miss, hit, hitJson] = await oneCall(async () => [
            await responsesStream(params),
            await responsesStream(params),
            await (async () => {
                const { data, response } = await openai.responses
                    .create(params).withResponse();
                return { cache: response.headers.get('x-llm-cache'),
                         final: data };
            })(),
        ]);
        assert.deepEqual([miss.cache, hit.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT']);
        const want = responseSummary(hitJson.final);
        assert.equal(want.status, 'completed');
        assert.equal(want.calls.length, 1);
        assert.equal(want.calls[0].name, 'give_answer');
        assert.match(want.calls[0].args.answer,
                     /^mock answer #\d+ to: which tool now\?$/);
        for (const got of [miss, hit]) {
            assert.deepEqual(responseSummary(got.final), want);
        }
        checkResponseEvents(miss.events, want);
        checkResponseEvents(hit.events, want);
    });

    // The JSON form of the same answer (status "incomplete") is stored.
    test('responses: an answer cut at max_output_tokens is stored from its '
         + 'stream too', { todo: 'a stream ending in response.incomplete '
                                  + 'is not stored' }, async () => {
        const params = { model: 'gpt-4o', input: 'go on and on',
                         store: false };
        const [miss, hit] = await oneCall(async () => [
            await responsesStream(params,
                                  { headers: { 'X-Mock-Finish': 'length' } }),
            await responsesStream(params),
        ]);
        // the SDK takes the upstream stream as it is
        assert.equal(miss.final.status, 'incomplete');
        assert.equal(miss.events.at(-1).type, 'response.incomplete');
        assert.deepEqual([miss.cache, hit.cache], ['MISS', 'HIT']);
        assert.deepEqual(responseSummary(hit.final),
                         responseSummary(miss.final));
        assert.equal(hit.events.at(-1).type, 'response.incomplete');
    });

    // --- Anthropic Messages ---------------------------------------------

    async function messagesStream(params, opts) {
        const s = anthropic.messages.stream(params, opts);
        const events = [];
        let text = '';
        let json = '';
        s.on('streamEvent', (e) => events.push(e));
        s.on('text', (d) => { text += d; });
        s.on('inputJson', (d) => { json += d; });
        const { response } = await s.withResponse();
        const final = await s.finalMessage();
        return { cache: response.headers.get('x-llm-cache'), events, text,
                 json, final };
    }

    async function messagesJson(params) {
        const { data, response } = await anthropic.messages.create(params)
            .withResponse();
        return { cache: response.headers.get('x-llm-cache'), final: data };
    }

    function messageSummary(m) {
        return {
            id: m.id,
            model: m.model,
            role: m.role,
            text: m.content.filter((b) => b.type === 'text')
                .map((b) => b.text).join(''),
            tools: m.content.filter((b) => b.type === 'tool_use').map(
                (b) => ({ id: b.id, name: b.name, input: b.input })),
            blocks: m.content.map((b) => b.type),
            stop: m.stop_reason,
            stop_sequence: m.stop_sequence,
            usage: { input_tokens: m.usage.input_tokens,
                     output_tokens: m.usage.output_tokens,
                     cache_read_input_tokens: m.usage.cache_read_input_tokens,
                     cache_creation_input_tokens:
                         m.usage.cache_creation_input_tokens },
        };
    }

    function checkMessageEvents(s) {
        const types = s.events.map((e) => e.type);
        assert.equal(types[0], 'message_start');
        assert.equal(types.at(-1), 'message_stop');
        assert.equal(types.filter((t) => t === 'message_delta').length, 1);
        assert.equal(types.filter((t) => t === 'content_block_start').length,
                     types.filter((t) => t === 'content_block_stop').length);
    }

    test('anthropic: text stream MISS, stream HIT and JSON HIT agree',
         async () => {
        const params = {
            model: 'claude-sonnet-4-6', max_tokens: 256,
            messages: [{ role: 'user', content: 'write a haiku about rain' }],
        };
        const [miss, hit, hitJson] = await oneCall(async () => [
            await messagesStream(params),
            await messagesStream(params),
            await messagesJson(params),
        ]);
        assert.deepEqual([miss.cache, hit.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT']);
        const want = messageSummary(hitJson.final);
        assert.match(want.text,
                     /^mock answer #\d+ to: write a haiku about rain$/);
        assert.equal(want.stop, 'end_turn');
        assert.deepEqual(want.blocks, ['text']);
        assert.ok(want.usage.output_tokens > 0);
        for (const got of [miss, hit]) {
            assert.deepEqual(messageSummary(got.final), want);
            assert.equal(got.text, want.text);
            checkMessageEvents(got);
            const deltas = got.events.filter(
                (e) => e.type === 'content_block_delta'
                       && e.delta.type === 'text_delta');
            assert.ok(deltas.length >= 2,
                      `text in several deltas (${deltas.length})`);
        }
    });

    test('anthropic: an answer cut at max_tokens replays its stop reason',
         async () => {
        const params = {
            model: 'claude-sonnet-4-6', max_tokens: 16,
            messages: [{ role: 'user', content: 'go on and on' }],
        };
        const [miss, hit, hitJson] = await oneCall(async () => [
            await messagesStream(params,
                                 { headers: { 'X-Mock-Finish': 'length' } }),
            await messagesStream(params),
            await messagesJson(params),
        ]);
        assert.deepEqual([miss.cache, hit.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT']);
        const want = messageSummary(hitJson.final);
        assert.equal(want.stop, 'max_tokens');
        assert.deepEqual(messageSummary(miss.final), want);
        assert.deepEqual(messageSummary(hit.final), want);
        checkMessageEvents(hit);
    });

    test('anthropic: forced tool_use survives the stream and its replay',
         async () => {
        const params = {
            model: 'claude-sonnet-4-6', max_tokens: 256,
            messages: [{ role: 'user', content: 'use the tool please' }],
            tools: [{ name: 'give_answer', description: 'Answer',
                      input_schema: TOOL_PARAMS }],
            tool_choice: { type: 'tool', name: 'give_answer' },
        };
        const [miss, hit, hitJson] = await oneCall(async () => [
            await messagesStream(params),
            await messagesStream(params),
            await messagesJson(params),
        ]);
        assert.deepEqual([miss.cache, hit.cache, hitJson.cache],
                         ['MISS', 'HIT', 'HIT']);
        const want = messageSummary(hitJson.final);
        assert.equal(want.stop, 'tool_use');
        assert.equal(want.tools.length, 1);
        assert.equal(want.tools[0].name, 'give_answer');
        assert.match(want.tools[0].input.answer,
                     /^mock answer #\d+ to: use the tool please$/);
        for (const got of [miss, hit]) {
            assert.deepEqual(messageSummary(got.final), want);
            checkMessageEvents(got);
            // input_json_delta pieces parse to the same input
            assert.deepEqual(JSON.parse(got.json), want.tools[0].input);
        }
    });


    // --- Upstream streams that are awkward or do not finish -------------

    const apis = [
        {
            name: 'chat',
            params: (q) => ({ model: 'gpt-4o',
                              messages: [{ role: 'user', content: q }] }),
            stream: chatStream,
            summary: (r) => chatSummary(r.final),
        },
        {
            name: 'responses',
            params: (q) => ({ model: 'gpt-4o', input: q, store: false }),
            stream: responsesStream,
            summary: (r) => responseSummary(r.final),
        },
        {
            name: 'anthropic',
            params: (q) => ({ model: 'claude-sonnet-4-6', max_tokens: 256,
                              messages: [{ role: 'user', content: q }] }),
            stream: messagesStream,
            summary: (r) => messageSummary(r.final),
        },
    ];

    for (const api of apis) {
        test(`${api.name}: an upstream stream with CRLF lines, comments and `
             + '5-byte chunks replays the same', async () => {
            const params = api.params(`awkward bytes for ${api.name}`);
            const headers = { 'X-Mock-Stream-CRLF': '1',
                              'X-Mock-Stream-Comments': '1',
                              'X-Mock-Stream-Chunk-Bytes': '5' };
            const [miss, hit] = await oneCall(async () => [
                await api.stream(params, { headers }),
                await api.stream(params),
            ]);
            assert.deepEqual([miss.cache, hit.cache], ['MISS', 'HIT']);
            assert.match(api.summary(miss).text, new RegExp(
                `^mock answer #\\d+ to: awkward bytes for ${api.name}$`));
            assert.deepEqual(api.summary(hit), api.summary(miss));
        });
    }

    // Single flight: the others wait for the first one's stream and get
    // it replayed from the entry.
    test('10 identical streams at once: one provider call per API, every '
         + 'SDK gets the same answer', async () => {
        const slow = { headers: { 'X-Mock-Stream-Delay-Ms': '30' } };
        const chat = { model: 'gpt-4o',
                       messages: [{ role: 'user', content: 'all at once' }] };
        const msgs = { model: 'claude-sonnet-4-6', max_tokens: 64,
                       messages: [{ role: 'user', content: 'all at once' }] };
        const many = (fn) => oneCall(() => Promise.all(
            Array.from({ length: 10 }, fn)));
        const waited = (r) => Number(r.headers.get('x-llm-lock-time'));

        const chats = await many(async () => {
            const { data, response } = await openai.chat.completions
                .create({ ...chat, stream: true }, slow).withResponse();
            const cache = response.headers.get('x-llm-cache');
            try {
                const final = await sdk.ChatCompletionStream
                    .fromReadableStream(data.toReadableStream())
                    .finalChatCompletion();
                return { cache, waited: waited(response),
                         summary: chatSummary(final) };
            } catch (e) {
                throw new Error(`the ${cache} stream failed: ${e.message} `
                                + `(${e.cause?.message ?? e.cause}); `
                                + `nginx died: ${gw.nginxDeath()}`);
            }
        });
        const anth = await many(async () => {
            const s = anthropic.messages.stream(msgs, slow);
            const { response } = await s.withResponse();
            const cache = response.headers.get('x-llm-cache');
            try {
                return { cache, waited: waited(response),
                         summary: messageSummary(await s.finalMessage()) };
            } catch (e) {
                throw new Error(`the ${cache} stream failed: ${e.message} `
                                + `(${e.cause?.message ?? e.cause}); `
                                + `nginx died: ${gw.nginxDeath()}`);
            }
        });
        for (const all of [chats, anth]) {
            const caches = all.map((r) => r.cache).sort();
            assert.deepEqual(caches, ['HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT',
                                      'HIT', 'HIT', 'HIT', 'MISS']);
            assert.match(all[0].summary.text,
                         /^mock answer #\d+ to: all at once$/);
            for (const r of all) {
                assert.deepEqual(r.summary, all[0].summary);
            }
            // they came together: some waited for the first stream
            assert.ok(all.some((r) => r.cache === 'HIT' && r.waited > 0),
                      `lock times: ${all.map((r) => r.waited)}`);
        }
    });

    test('nginx did not crash and logged no errors', () => {
        assert.equal(gw.nginxDeath(), null, 'nginx died during the tests');
        const bad = gw.errorLog().split('\n')
            .filter((l) => /\[(error|crit|alert|emerg)\]/.test(l));
        assert.deepEqual(bad, []);
    });
});

// A gateway of their own: these make nginx log upstream errors on purpose.
describe('SDK clients: unfinished streams are not stored',
         { skip: why || false }, () => {
    const gw = new Gateway();
    let openai;
    let anthropic;

    before(async () => {
        await gw.start();
        openai = new sdk.OpenAI({ apiKey: 'sk-test', baseURL: `${gw.url}/v1`,
                                  maxRetries: 0, timeout: 20000 });
        anthropic = new sdk.Anthropic({ apiKey: 'sk-ant',
                                        baseURL: `${gw.url}/anthropic`,
                                        maxRetries: 0, timeout: 20000 });
    });

    after(async () => {
        await gw.stop();
    });

    async function drain(api, params, opts) {
        let cache = null;
        let text = '';
        if (api === 'chat') {
            const { data, response } = await openai.chat.completions
                .create({ ...params, stream: true }, opts).withResponse();
            cache = response.headers.get('x-llm-cache');
            for await (const c of data) {
                text += c.choices[0]?.delta?.content ?? '';
            }
        } else if (api === 'responses') {
            const { data, response } = await openai.responses
                .create({ ...params, stream: true }, opts).withResponse();
            cache = response.headers.get('x-llm-cache');
            const acc = sdk.ResponseStream.fromReadableStream(
                data.toReadableStream());
            text = (await acc.finalResponse()).output_text;
        } else {
            const s = anthropic.messages.stream(params, opts);
            const { response } = await s.withResponse();
            cache = response.headers.get('x-llm-cache');
            text = (await s.finalMessage()).content
                .map((b) => b.text ?? '').join('');
        }
        return { cache, text };
    }

    const params = {
        chat: (q) => ({ model: 'gpt-4o',
                        messages: [{ role: 'user', content: q }] }),
        responses: (q) => ({ model: 'gpt-4o', input: q, store: false }),
        anthropic: (q) => ({ model: 'claude-sonnet-4-6', max_tokens: 256,
                             messages: [{ role: 'user', content: q }] }),
    };
    const faults = [
        // a provider error event after the 200: the SDK raises it
        ['error event', { 'X-Mock-Stream-Error': '1' }, true],
        // no [DONE] / response.completed / message_stop
        ['missing end', { 'X-Mock-Stream-Truncate': '1' }, null],
        // the upstream connection reset mid-stream: the client sees it cut
        ['reset', { 'X-Mock-Reset-After': '400' }, true],
    ];

    for (const api of Object.keys(params)) {
        for (const [what, headers, raises] of faults) {
            test(`${api}: a stream with ${what} is not stored`, async () => {
                const p = params[api](`${what} in ${api}`);
                const before = await gw.calls();
                // the Responses stream rejects with the error event itself
                let threw = false;
                try {
                    await drain(api, p, { headers });
                } catch {
                    threw = true;
                }
                if (raises) {
                    assert.ok(threw, `the SDK reports the ${what}`);
                }
                const again = await drain(api, p);
                const third = await drain(api, p);
                assert.deepEqual([again.cache, third.cache], ['MISS', 'HIT']);
                assert.equal(await gw.calls() - before, 2);
                assert.match(again.text, /^mock answer #\d+ to: /);
                assert.equal(third.text, again.text);
            });
        }
    }

    test('nginx did not crash', () => {
        assert.equal(gw.nginxDeath(), null, 'nginx died during the tests');
    });
});
