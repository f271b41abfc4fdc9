#!/usr/bin/env python3
"""Self-test of t/mock/provider.py over real HTTP.

Starts the mock (with an owned redis-server when one is installed) on free
ports and checks each endpoint, the caching emulation, the SSE framing, the
fault knobs and the control endpoints.  Run: python3 t/mock/test_provider.py
"""

import base64
import copy
import gzip
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "provider.py")
REDIS = shutil.which("redis-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ntokens(text):
    return (len(text.encode("utf-8")) + 3) // 4


def start_mock(args):
    p = subprocess.Popen([sys.executable, MOCK] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    if line != "ready\n":
        p.kill()
        raise RuntimeError("mock did not start: %r %s"
                           % (line, p.stderr.read()))
    return p


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def resp(port, payload, timeout=1.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        buf = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d = s.recv(4096)
            except socket.timeout:
                break
            if not d:
                break
            buf += d
            if buf.endswith(b"\r\n") and payload.count(b"*") <= \
                    buf.count(b"\r\n"):
                break
        return buf


def parse_sse(text):
    """[(event or None, data)] from an SSE body."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        ev, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            out.append((ev, "\n".join(data)))
    return out


def raw_request(port, path, body, headers=None, timeout=5,
                version="HTTP/1.1"):
    """Send one request on a raw socket; return (head, body bytes, error)."""
    headers = dict(headers or {})
    headers.setdefault("Connection", "close")   # read to EOF below
    data = json.dumps(body).encode()
    req = "POST %s %s\r\nHost: x\r\nContent-Type: application/json\r\n" \
          "Content-Length: %d\r\n" % (path, version, len(data))
    for k, v in headers.items():
        req += "%s: %s\r\n" % (k, v)
    req = req.encode() + b"\r\n" + data
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(req)
    buf = b""
    err = None
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except OSError as e:
        err = e
    s.close()
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode(), rest, err


def dechunk(data):
    out, n = b"", 0
    while data:
        line, _, data = data.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            return out, n, True
        out += data[:size]
        data = data[size + 2:]
        n += 1
    return out, n, False


class MockTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.bad_port = free_port()
        args = ["--port", str(cls.port), "--bad-redis-port",
                str(cls.bad_port)]
        cls.redis_port = None
        if REDIS:
            cls.redis_port = free_port()
            args += ["--redis-port", str(cls.redis_port)]
        cls.proc = start_mock(args)

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(timeout=10)
        cls.proc.stdout.close()
        cls.proc.stderr.close()
        if cls.redis_port:
            assert not port_open(cls.redis_port), "redis left running"

    def setUp(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                               timeout=10)
        self.ctl("POST", "/__reset")

    def tearDown(self):
        self.conn.close()

    def ctl(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body

    def post(self, path, body, headers=None, raw=False):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.conn.request("POST", path, data, h)
        r = self.conn.getresponse()
        data = r.read()
        if raw:
            return r, data
        return r, json.loads(data)

    def chat(self, messages, model="gpt-4o", **kw):
        body = {"model": model, "messages": messages}
        body.update(kw)
        return self.post("/v1/chat/completions", body)

    def anth(self, body, headers=None):
        b = {"model": "claude-sonnet-4-5", "max_tokens": 64}
        b.update(body)
        return self.post("/v1/messages", b, headers)

    # -- basics and control endpoints ------------------------------------

    def test_health_and_unknown(self):
        self.assertEqual(self.ctl("GET", "/__health"), (200, "ok"))
        t0 = time.monotonic()
        self.assertEqual(self.ctl("GET", "/__sleep?ms=250"), (200, "ok"))
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        r, body = self.post("/v1/nope", {})
        self.assertEqual(r.status, 404)
        self.assertIn("Invalid URL", body["error"]["message"])
        self.assertEqual(self.ctl("GET", "/__calls"), (200, "0"))

    def test_chat_basic_and_counter(self):
        msgs = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello there"}]
        r, b = self.chat(msgs)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        self.assertEqual(r.getheader("X-Mock-Call"), "1")
        self.assertEqual(b["object"], "chat.completion")
        self.assertEqual(b["model"], "gpt-4o")
        self.assertIn("1", b["id"])
        self.assertLess(abs(b["created"] - time.time()), 60)
        text = b["choices"][0]["message"]["content"]
        self.assertEqual(text, "mock answer #1 to: hello there")
        self.assertEqual(b["choices"][0]["finish_reason"], "stop")
        u = b["usage"]
        serial = "\n<|system|>\nbe brief\n<|user|>\nhello there"
        self.assertEqual(u["prompt_tokens"], ntokens(serial))
        self.assertEqual(u["completion_tokens"], ntokens(text))
        self.assertEqual(u["total_tokens"],
                         u["prompt_tokens"] + u["completion_tokens"])
        self.assertEqual(u["prompt_tokens_details"]["cached_tokens"], 0)
        # same connection (keep-alive), counter moves on
        r, b = self.chat(msgs)
        self.assertEqual(b["choices"][0]["message"]["content"],
                         "mock answer #2 to: hello there")
        self.post("/v1/messages", {"model": "claude-3-5-haiku",
                                   "max_tokens": 5, "messages": [
                                       {"role": "user", "content": "x"}]})
        self.assertEqual(self.ctl("GET", "/__calls"), (200, "3"))
        self.assertEqual(self.ctl("GET", "/__calls?path=/v1/messages"),
                         (200, "1"))
        self.assertEqual(
            self.ctl("GET", "/__calls?path=/v1/chat/completions"),
            (200, "2"))
        self.ctl("POST", "/__reset")
        self.assertEqual(self.ctl("GET", "/__calls"), (200, "0"))
        r, b = self.chat(msgs)
        self.assertEqual(b["id"], "chatcmpl-mock-1")

    def test_last(self):
        self.assertEqual(self.ctl("GET", "/__last")[0], 404)
        raw = b'{"model":"m",  "messages":[{"role":"user","content":"q"}]}'
        self.post("/v1/chat/completions", raw,
                  {"Authorization": "Bearer sk-test", "X-Extra": "1"})
        st, body = self.ctl("GET", "/__last")
        self.assertEqual(st, 200)
        last = json.loads(body)
        self.assertEqual(last["method"], "POST")
        self.assertEqual(last["path"], "/v1/chat/completions")
        self.assertEqual(last["body"], raw.decode())
        self.assertEqual(last["headers"]["authorization"], "Bearer sk-test")
        self.assertEqual(last["headers"]["x-extra"], "1")
        self.assertEqual(self.ctl("GET", "/__last?part=body"),
                         (200, raw.decode()))
        self.assertEqual(self.ctl("GET", "/__last?part=method"),
                         (200, "POST"))
        self.assertEqual(self.ctl("GET", "/__last?part=path"),
                         (200, "/v1/chat/completions"))
        self.assertEqual(
            self.ctl("GET", "/__last?part=header&name=Authorization"),
            (200, "Bearer sk-test"))
        self.assertEqual(
            self.ctl("GET", "/__last?part=header&name=x-absent")[0], 404)
        self.assertEqual(self.ctl("GET", "/__last?part=bogus")[0], 400)
        # every request since the reset, oldest first
        self.chat([{"role": "user", "content": "second"}])
        st, body = self.ctl("GET", "/__requests")
        hist = json.loads(body)
        self.assertEqual([h["n"] for h in hist], [1, 2])
        self.assertEqual(hist[0]["body"], raw.decode())
        self.assertIn("second", hist[1]["body"])
        self.assertEqual(hist[1]["headers"]["content-type"],
                         "application/json")
        st, body = self.ctl("GET", "/__requests?path=/v1/messages")
        self.assertEqual(json.loads(body), [])
        # non-UTF-8 bodies come back byte for byte
        self.post("/v1/messages", b'{"x":"\xff\xfe"}')
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/__last?part=body")
        self.assertEqual(c.getresponse().read(), b'{"x":"\xff\xfe"}')
        c.close()

    def test_chunked_request_body(self):
        body = json.dumps({"model": "m", "messages": [
            {"role": "user", "content": "sent in pieces"}]}).encode()
        a, b = body[:10], body[10:]
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n"
                  b"\r\n%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n"
                  % (len(a), a, len(b), b))
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        s.close()
        self.assertIn(b"mock answer #1 to: sent in pieces", buf)
        self.assertEqual(self.ctl("GET", "/__last?part=body"),
                         (200, body.decode()))
        # a malformed chunk size is a 400, and the mock keeps serving
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 400"))
        s.close()
        self.assertEqual(self.ctl("GET", "/__health"), (200, "ok"))

    def test_completions_and_responses(self):
        r, b = self.post("/v1/completions",
                         {"model": "gpt-3.5-turbo-instruct",
                          "prompt": "say hi"})
        self.assertEqual(r.status, 200)
        self.assertEqual(b["object"], "text_completion")
        self.assertEqual(b["choices"][0]["text"], "mock answer #1 to: say hi")
        self.assertEqual(b["usage"]["prompt_tokens"], ntokens("say hi"))
        r, b = self.post("/v1/responses", {
            "model": "gpt-4.1", "instructions": "terse",
            "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "what is 2+2"}]}]})
        self.assertEqual(r.status, 200)
        self.assertEqual(b["object"], "response")
        self.assertEqual(b["status"], "completed")
        out = b["output"][0]
        self.assertEqual(out["type"], "message")
        self.assertEqual(out["content"][0]["type"], "output_text")
        self.assertEqual(out["content"][0]["text"],
                         "mock answer #2 to: what is 2+2")
        u = b["usage"]
        self.assertEqual(u["input_tokens_details"]["cached_tokens"], 0)
        self.assertEqual(u["total_tokens"],
                         u["input_tokens"] + u["output_tokens"])
        r, b = self.post("/v1/responses", {"model": "gpt-4.1",
                                           "input": "plain"})
        self.assertEqual(b["output"][0]["content"][0]["text"],
                         "mock answer #3 to: plain")
        r, b = self.post("/v1/responses", {"model": "gpt-4.1"})
        self.assertEqual(r.status, 400)
        self.assertEqual(b["error"]["param"], "input")
        # previous_response_id carries the stored conversation
        r, b = self.post("/v1/responses", {
            "model": "gpt-4.1", "input": "and then?",
            "previous_response_id": "resp_mock_3"})
        self.assertEqual(r.status, 200)
        ctx = "\n<|user|>\nplain\n<|assistant|>\nmock answer #3 to: plain"
        self.assertEqual(b["usage"]["input_tokens"],
                         ntokens(ctx + "\n<|user|>\nand then?"))
        self.assertEqual(b["previous_response_id"], "resp_mock_3")
        r, b = self.post("/v1/responses", {
            "model": "gpt-4.1", "input": "x", "store": False})
        r, b = self.post("/v1/responses", {
            "model": "gpt-4.1", "input": "y",
            "previous_response_id": b["id"]})
        self.assertEqual(r.status, 400)
        self.assertEqual(b["error"]["code"], "previous_response_not_found")

    # -- validation --------------------------------------------------------

    def test_openai_validation(self):
        r, b = self.post("/v1/chat/completions", b"{not json")
        self.assertEqual(r.status, 400)
        self.assertEqual(set(b["error"]), {"message", "type", "param",
                                           "code"})
        self.assertEqual(b["error"]["type"], "invalid_request_error")
        self.assertIn("could not parse the JSON body",
                      b["error"]["message"])
        r, b = self.post("/v1/chat/completions", {"model": "gpt-4o"})
        self.assertEqual(r.status, 400)
        self.assertEqual(b["error"]["param"], "messages")
        self.assertEqual(b["error"]["code"], "missing_required_parameter")
        r, b = self.post("/v1/chat/completions", {"messages": []})
        self.assertEqual(r.status, 400)
        self.assertIn("model", b["error"]["message"])
        r, b = self.chat([])
        self.assertEqual(b["error"]["code"], "empty_array")
        r, b = self.chat([{"role": "wizard", "content": "x"}])
        self.assertEqual(r.status, 400)
        self.assertEqual(b["error"]["param"], "messages[0].role")
        self.assertEqual(b["error"]["code"], "invalid_value")
        r, b = self.chat([{"role": "user"}])
        self.assertEqual(b["error"]["param"], "messages[0].content")
        r, b = self.chat([{"role": "user", "content": [{"type": "bogus"}]}])
        self.assertEqual(b["error"]["param"], "messages[0].content[0].type")
        r, b = self.chat([{"role": "user", "content": "x"}], temperature=3)
        self.assertEqual(b["error"]["code"], "decimal_above_max_value")
        r, b = self.chat([{"role": "user", "content": "x"}],
                         stream_options={"include_usage": True})
        self.assertEqual(b["error"]["param"], "stream_options")
        r, b = self.post("/v1/chat/completions", b"[1,2]")
        self.assertEqual(r.status, 400)
        ok = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        r, b = self.post("/v1/chat/completions", ok, {"X-Mock-Strict": "1"})
        self.assertEqual(r.status, 401)
        self.assertIn("didn't provide an API key", b["error"]["message"])
        r, b = self.post("/v1/chat/completions", ok,
                         {"X-Mock-Strict": "1", "Authorization": "Bearer k"})
        self.assertEqual(r.status, 200)
        # every one of them was a provider call
        self.assertEqual(self.ctl("GET", "/__calls"), (200, "12"))
        self.conn.request("GET", "/v1/chat/completions")
        r = self.conn.getresponse()
        r.read()
        self.assertEqual(r.status, 405)

    def test_anthropic_validation(self):
        r, b = self.post("/v1/messages", b"{oops")
        self.assertEqual(r.status, 400)
        self.assertEqual(b["type"], "error")
        self.assertEqual(b["error"]["type"], "invalid_request_error")
        self.assertIn("parsing the body", b["error"]["message"])
        for field in ("model", "messages", "max_tokens"):
            body = {"model": "claude-sonnet-4-5", "max_tokens": 10,
                    "messages": [{"role": "user", "content": "hi"}]}
            del body[field]
            r, b = self.post("/v1/messages", body)
            self.assertEqual(r.status, 400, field)
            self.assertEqual(b["error"]["message"],
                             "%s: Field required" % field)
        r, b = self.anth({"messages": [{"role": "system", "content": "x"}]})
        self.assertEqual(r.status, 400)
        self.assertIn("messages.0.role", b["error"]["message"])
        r, b = self.anth({"messages": [{"role": "user", "content": [
            {"type": "txt", "text": "x"}]}]})
        self.assertEqual(r.status, 400)
        self.assertIn("messages.0.content.0", b["error"]["message"])
        r, b = self.anth({"messages": [{"role": "user", "content": [
            {"type": "text", "text": ""}]}]})
        self.assertEqual(r.status, 400)
        r, b = self.anth({"messages": []})
        self.assertEqual(r.status, 400)
        r, b = self.anth({"max_tokens": 0, "messages": [
            {"role": "user", "content": "x"}]})
        self.assertEqual(r.status, 400)
        # lenient by default, strict on request
        ok = {"messages": [{"role": "user", "content": "x"}]}
        r, b = self.anth(ok)
        self.assertEqual(r.status, 200)
        r, b = self.anth(ok, {"X-Mock-Strict": "1"})
        self.assertEqual(r.status, 401)
        self.assertEqual(b["error"]["type"], "authentication_error")
        r, b = self.anth(ok, {"X-Mock-Strict": "1", "x-api-key": "k"})
        self.assertEqual(r.status, 400)
        self.assertIn("anthropic-version", b["error"]["message"])
        r, b = self.anth(ok, {"X-Mock-Strict": "1", "x-api-key": "k",
                              "anthropic-version": "2023-06-01"})
        self.assertEqual(r.status, 200)

    def test_anthropic_breakpoint_limit(self):
        cc = {"type": "ephemeral"}
        blocks = [{"type": "text", "text": "part %d" % i,
                   "cache_control": cc} for i in range(3)]
        body = {"system": [{"type": "text", "text": "sys",
                            "cache_control": cc}],
                "messages": [{"role": "user", "content": blocks}]}
        r, b = self.anth(body)
        self.assertEqual(r.status, 200)
        body["cache_control"] = cc          # top-level one makes five
        r, b = self.anth(body)
        self.assertEqual(r.status, 400)
        self.assertEqual(b["error"]["message"],
                         "A maximum of 4 blocks with cache_control may be "
                         "provided. Found 5.")
        del body["cache_control"]
        body["tools"] = [{"name": "t", "input_schema": {"type": "object"},
                          "cache_control": cc}]
        r, b = self.anth(body)
        self.assertEqual(r.status, 400)
        r, b = self.anth({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "x",
             "cache_control": {"type": "ephemeral", "ttl": "2h"}}]}]})
        self.assertEqual(r.status, 400)

    def test_mutated_requests_never_crash(self):
        """Seeded structural mutations of valid bodies: every answer is a
        200 or a provider-shaped 4xx, never the mock's own 500."""
        import random
        rnd = random.Random(1234)
        junk = [None, True, 0, -1, 3.5, "", "x", [], {}, [1], {"a": 1},
                [{"type": "text"}], "\ud800"]
        seeds = {
            "/v1/chat/completions": {
                "model": "m", "stream": False, "n": 1,
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": "auto",
                "messages": [{"role": "system", "content": "s"},
                             {"role": "user", "content": [
                                 {"type": "text", "text": "t"}]},
                             {"role": "assistant", "content": None,
                              "tool_calls": [{"id": "c"}]}]},
            "/v1/completions": {"model": "m", "prompt": ["a", "b"]},
            "/v1/responses": {"model": "m", "instructions": "i",
                              "input": [{"role": "user", "content": [
                                  {"type": "input_text", "text": "t"}]}],
                              "tool_choice": "auto", "tools": []},
            "/v1/embeddings": {"model": "m", "input": ["a"],
                               "dimensions": 8},
            "/v1/messages": {
                "model": "c", "max_tokens": 5,
                "cache_control": {"type": "ephemeral"},
                "tools": [{"name": "t", "input_schema": {}}],
                "tool_choice": {"type": "auto"},
                "system": [{"type": "text", "text": "s",
                            "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "q"},
                    {"type": "tool_result", "tool_use_id": "x",
                     "content": [{"type": "text", "text": "r"}]}]}]},
        }

        def paths(node, prefix=()):
            yield prefix
            if isinstance(node, dict):
                for k, v in node.items():
                    yield from paths(v, prefix + (k,))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    yield from paths(v, prefix + (i,))

        for path, seed in seeds.items():
            all_paths = [p for p in paths(seed) if p]
            for _ in range(150):
                body = json.loads(json.dumps(seed))
                for p in rnd.sample(all_paths, rnd.randint(1, 3)):
                    node = body
                    try:
                        for k in p[:-1]:
                            node = node[k]
                        node[p[-1]] = copy.deepcopy(rnd.choice(junk))
                    except (KeyError, IndexError, TypeError):
                        pass
                data = json.dumps(body).encode()
                r, out = self.post(path, data, raw=True)
                self.assertIn(r.status, (200, 400), (path, body, out))
                if r.getheader("Content-Type").startswith(
                        "text/event-stream"):
                    self.assertEqual(r.status, 200)
                    self.assertTrue(parse_sse(out.decode()))
                    continue
                err = json.loads(out)
                if r.status == 400:
                    if path == "/v1/messages":
                        self.assertEqual(err["type"], "error")
                        self.assertEqual(err["error"]["type"],
                                         "invalid_request_error")
                    else:
                        self.assertEqual(set(err["error"]),
                                         {"message", "type", "param",
                                          "code"})

    # -- provider-side caching ---------------------------------------------

    def test_openai_prefix_cache(self):
        # ~1520 tokens: the shared prefix ends mid-step (offset 497 > 448)
        system = "You are a careful assistant. " * 200 + "x" * 260
        msgs = [{"role": "system", "content": system},
                {"role": "user", "content": "first question"}]
        r, b = self.chat(msgs)
        u = b["usage"]
        self.assertGreaterEqual(u["prompt_tokens"], 1024)
        self.assertEqual(u["prompt_tokens_details"]["cached_tokens"], 0)
        msgs[1]["content"] = "second, different question"
        r, b = self.chat(msgs)
        u = b["usage"]
        cached = u["prompt_tokens_details"]["cached_tokens"]
        self.assertGreaterEqual(cached, 1024)
        self.assertEqual((cached - 1024) % 128, 0)
        self.assertLessEqual(cached, u["prompt_tokens"])
        # longest shared prefix in 128-token steps
        shared = ntokens("\n<|system|>\n" + system + "\n<|user|>\n")
        self.assertEqual(cached, 1024 + (shared - 1024) // 128 * 128)
        self.assertEqual(cached, 1408)
        # other model or other prompt_cache_key: separate cache
        r, b = self.chat(msgs, model="gpt-4o-mini")
        self.assertEqual(b["usage"]["prompt_tokens_details"]
                         ["cached_tokens"], 0)
        r, b = self.chat(msgs, prompt_cache_key="tenant-2")
        self.assertEqual(b["usage"]["prompt_tokens_details"]
                         ["cached_tokens"], 0)
        # a changed first byte breaks the prefix
        msgs[0]["content"] = "Z" + system[1:]
        r, b = self.chat(msgs)
        self.assertEqual(b["usage"]["prompt_tokens_details"]
                         ["cached_tokens"], 0)
        # short prompts never cache
        short = [{"role": "user", "content": "under the minimum " * 200}]
        self.assertLess(ntokens(short[0]["content"]), 1024)
        self.assertGreater(ntokens(short[0]["content"]), 512)
        self.chat(short)
        r, b = self.chat(short)
        self.assertEqual(b["usage"]["prompt_tokens_details"]
                         ["cached_tokens"], 0)
        # reset forgets prefixes
        self.ctl("POST", "/__reset")
        r, b = self.chat(msgs)
        self.assertEqual(b["usage"]["prompt_tokens_details"]
                         ["cached_tokens"], 0)
        # responses API shares the rule
        inp = [{"role": "system", "content": system},
               {"role": "user", "content": "q"}]
        self.post("/v1/responses", {"model": "gpt-4.1", "input": inp})
        r, b = self.post("/v1/responses", {"model": "gpt-4.1", "input": inp})
        self.assertGreaterEqual(
            b["usage"]["input_tokens_details"]["cached_tokens"], 1024)

    def test_anthropic_cache(self):
        doc = "Reference text for caching tests. " * 150    # ~1275 tokens
        cc = {"type": "ephemeral"}
        body = {"system": [{"type": "text", "text": doc,
                            "cache_control": cc}],
                "messages": [{"role": "user", "content": "question one"}]}
        r, b = self.anth(body)
        u = b["usage"]
        total = ntokens("<|system|>" + doc + "\n<|user|>\nquestion one")
        written = ntokens("<|system|>" + doc)
        self.assertEqual(u["cache_creation_input_tokens"], written)
        self.assertEqual(u["cache_creation"]["ephemeral_5m_input_tokens"],
                         written)
        self.assertEqual(u["cache_creation"]["ephemeral_1h_input_tokens"], 0)
        self.assertEqual(u["cache_read_input_tokens"], 0)
        self.assertEqual(u["input_tokens"], total - written)
        body["messages"][0]["content"] = "question two"
        r, b = self.anth(body)
        u = b["usage"]
        self.assertEqual(u["cache_read_input_tokens"], written)
        self.assertEqual(u["cache_creation_input_tokens"], 0)
        # a second breakpoint on the user turn extends the cache
        body["messages"][0]["content"] = [
            {"type": "text", "text": "question two",
             "cache_control": {"type": "ephemeral", "ttl": "5m"}}]
        r, b = self.anth(body)
        u = b["usage"]
        self.assertEqual(u["cache_read_input_tokens"], written)
        self.assertEqual(u["cache_creation"]["ephemeral_5m_input_tokens"],
                         u["cache_creation_input_tokens"])
        self.assertEqual(u["cache_creation_input_tokens"],
                         total - written)
        self.assertEqual(u["input_tokens"], 0)
        # 1h then 5m: each written segment is billed at its own TTL
        self.ctl("POST", "/__reset")
        body["system"][0]["cache_control"] = {"type": "ephemeral",
                                              "ttl": "1h"}
        r, b = self.anth(body)
        u = b["usage"]["cache_creation"]
        self.assertEqual(u["ephemeral_1h_input_tokens"], written)
        self.assertEqual(u["ephemeral_5m_input_tokens"], total - written)
        # 5m then 1h is refused, naming the offending block
        body["system"][0]["cache_control"] = cc
        body["messages"][0]["content"][0]["cache_control"]["ttl"] = "1h"
        r, b = self.anth(body)
        self.assertEqual(r.status, 400)
        self.assertEqual(b["error"]["message"],
                         "messages.0.content.0.cache_control.ttl: a "
                         "ttl='1h' cache_control block must not come after "
                         "a ttl='5m' cache_control block. Note that blocks "
                         "are processed in the following order: `tools`, "
                         "`system`, `messages`.")
        body["messages"][0]["content"][0]["cache_control"]["ttl"] = "5m"
        # the top-level marker may not contradict the last block's own
        r, b = self.anth({"cache_control": cc, "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "q", "cache_control": {
                    "type": "ephemeral", "ttl": "1h"}}]}]})
        self.assertEqual(r.status, 400)
        self.assertIn("Top-level cache_control has ttl='5m'",
                      b["error"]["message"])
        self.ctl("POST", "/__reset")
        # below the minimum: no caching, no error
        r, b = self.anth({"system": [{"type": "text", "text": "tiny",
                                      "cache_control": cc}],
                          "messages": [{"role": "user", "content": "q"}]})
        self.assertEqual(r.status, 200)
        self.assertEqual(b["usage"]["cache_creation_input_tokens"], 0)
        self.assertEqual(b["usage"]["cache_read_input_tokens"], 0)
        # haiku needs 2048: the same ~1300-token prefix does not cache
        hb = dict(body, model="claude-3-5-haiku-20241022")
        r, b = self.anth(hb)
        self.assertEqual(b["usage"]["cache_creation_input_tokens"], 0)
        # a bigger one does
        hb["system"] = [{"type": "text", "text": doc * 2,
                         "cache_control": cc}]
        r, b = self.anth(hb)
        self.assertGreater(b["usage"]["cache_creation_input_tokens"], 2048)
        # tools come first in the prefix; top-level cache_control marks
        # the last block
        tb = {"tools": [{"name": "lookup", "description": doc,
                         "input_schema": {"type": "object"}}],
              "cache_control": cc,
              "messages": [{"role": "user", "content": "use the tool"}]}
        r, b = self.anth(tb)
        self.assertEqual(b["usage"]["input_tokens"], 0)
        w = b["usage"]["cache_creation_input_tokens"]
        self.assertGreater(w, 1024)
        r, b = self.anth(tb)
        self.assertEqual(b["usage"]["cache_read_input_tokens"], w)

    def test_anthropic_lookback(self):
        doc = "Conversation context that is long enough. " * 120
        cc = {"type": "ephemeral"}

        def turn(text, mark):
            b = {"type": "text", "text": text}
            if mark:
                b["cache_control"] = cc
            return {"role": "user", "content": [b]}
        msgs = [turn(doc, True)]
        r, b = self.anth({"messages": msgs})
        first = b["usage"]["cache_creation_input_tokens"]
        self.assertEqual(first, ntokens("\n<|user|>\n" + doc))
        # the next turn moves the breakpoint to the newest message: the
        # old boundary is found by looking back, the rest is written
        msgs = [turn(doc, False),
                {"role": "assistant", "content": "noted"},
                turn("next question", True)]
        r, b = self.anth({"messages": msgs})
        u = b["usage"]
        self.assertEqual(u["cache_read_input_tokens"], first)
        total = u["input_tokens"] + u["cache_read_input_tokens"] + \
            u["cache_creation_input_tokens"]
        self.assertEqual(u["input_tokens"], 0)
        self.assertEqual(u["cache_creation_input_tokens"], total - first)
        # more than 20 blocks after the cached boundary: not found
        self.ctl("POST", "/__reset")
        self.anth({"messages": [turn(doc, True)]})
        many = [{"role": "user", "content": [{"type": "text", "text": doc}] +
                 [{"type": "text", "text": "b%d" % i} for i in range(21)]}]
        many[0]["content"][-1]["cache_control"] = cc
        r, b = self.anth({"messages": many})
        self.assertEqual(b["usage"]["cache_read_input_tokens"], 0)
        many[0]["content"][-1].pop("cache_control")
        many[0]["content"][-2]["cache_control"] = cc
        r, b = self.anth({"messages": many})
        self.assertEqual(b["usage"]["cache_read_input_tokens"], first)

    # -- streaming ---------------------------------------------------------

    def test_chat_stream(self):
        body = {"model": "gpt-4o", "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user",
                              "content": "tell me a long story please"}]}
        head, data, err = raw_request(self.port, "/v1/chat/completions",
                                      body, {"Connection": "close"})
        self.assertIsNone(err)
        self.assertIn("Transfer-Encoding: chunked", head)
        self.assertIn("Content-Type: text/event-stream", head)
        text, nchunks, complete = dechunk(data)
        self.assertTrue(complete)
        self.assertGreater(nchunks, 4)
        events = parse_sse(text.decode())
        self.assertEqual(events[-1], (None, "[DONE]"))
        chunks = [json.loads(d) for _, d in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"],
                         "assistant")
        content = "".join(c["choices"][0]["delta"].get("content") or ""
                          for c in chunks if c["choices"])
        self.assertEqual(content,
                         "mock answer #1 to: tell me a long story please")
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "stop")
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"],
                         ntokens(content))
        self.assertTrue(all(c["usage"] is None for c in chunks[:-1]))
        self.assertTrue(all(c["object"] == "chat.completion.chunk"
                            for c in chunks))
        # without include_usage there is no usage chunk nor usage field
        body.pop("stream_options")
        r, data = self.post("/v1/chat/completions", body, raw=True)
        chunks = [json.loads(d) for _, d in parse_sse(data.decode())[:-1]]
        self.assertTrue(all(c["choices"] for c in chunks))
        self.assertTrue(all("usage" not in c for c in chunks))
        # keep-alive after a chunked stream
        r, b = self.chat([{"role": "user", "content": "after"}])
        self.assertEqual(b["choices"][0]["message"]["content"],
                         "mock answer #3 to: after")

    def test_http10_stream_is_close_delimited(self):
        body = {"model": "gpt-4o", "stream": True,
                "messages": [{"role": "user", "content": "old client"}]}
        head, data, err = raw_request(self.port, "/v1/chat/completions",
                                      body, version="HTTP/1.0")
        self.assertIsNone(err)
        self.assertNotIn("Transfer-Encoding", head)
        self.assertNotIn("Content-Length", head)
        self.assertIn("Connection: close", head)
        ev = parse_sse(data.decode())
        self.assertEqual(ev[-1], (None, "[DONE]"))
        text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "")
                       for _, d in ev[:-1])
        self.assertEqual(text, "mock answer #1 to: old client")
        # non-streamed answers keep Content-Length
        del body["stream"]
        head, data, err = raw_request(self.port, "/v1/chat/completions",
                                      body, version="HTTP/1.0")
        self.assertIn("Content-Length: %d" % len(data), head)

    def test_stream_wire_variations(self):
        body = {"model": "claude-x", "max_tokens": 9, "stream": True,
                "messages": [{"role": "user", "content": "wire forms"}]}
        self.ctl("POST", "/__reset")
        head, plain, err = raw_request(self.port, "/v1/messages", body)
        plain, _, _ = dechunk(plain)
        ref = [(e, json.loads(d)) for e, d in parse_sse(plain.decode())]
        for hdrs in ({"X-Mock-Stream-Chunk-Bytes": "7"},
                     {"X-Mock-Stream-CRLF": "1"},
                     {"X-Mock-Stream-Comments": "1"},
                     {"X-Mock-Stream-Chunk-Bytes": "5",
                      "X-Mock-Stream-CRLF": "1",
                      "X-Mock-Stream-Comments": "1"}):
            self.ctl("POST", "/__reset")
            head, data, err = raw_request(self.port, "/v1/messages", body,
                                          hdrs)
            text, n, complete = dechunk(data)
            self.assertTrue(complete)
            if "X-Mock-Stream-Chunk-Bytes" in hdrs:
                size = int(hdrs["X-Mock-Stream-Chunk-Bytes"])
                self.assertEqual(n, (len(text) + size - 1) // size)
                self.assertTrue(data.startswith(b"%x\r\n" % size))
            if "X-Mock-Stream-CRLF" in hdrs:
                self.assertIn(b"\r\n\r\n", text)
                self.assertNotIn(b"\n\n", text)
            if "X-Mock-Stream-Comments" in hdrs:
                self.assertIn(b": keep-alive", text)
            norm = text.decode().replace("\r\n", "\n")
            got = [(e, json.loads(d)) for e, d in parse_sse(norm)]
            self.assertEqual(got, ref, hdrs)

    def test_completions_stream(self):
        r, data = self.post("/v1/completions", {
            "model": "m", "prompt": "abc def", "stream": True}, raw=True)
        ev = parse_sse(data.decode())
        self.assertEqual(ev[-1][1], "[DONE]")
        text = "".join(json.loads(d)["choices"][0]["text"]
                       for _, d in ev[:-1])
        self.assertEqual(text, "mock answer #1 to: abc def")

    def test_responses_stream(self):
        r, data = self.post("/v1/responses", {
            "model": "gpt-4.1", "input": "stream me", "stream": True},
            raw=True)
        self.assertTrue(r.getheader("Content-Type")
                        .startswith("text/event-stream"))
        ev = parse_sse(data.decode())
        types = [e for e, _ in ev]
        self.assertEqual(types[0], "response.created")
        self.assertEqual(types[-1], "response.completed")
        self.assertIn("response.output_text.delta", types)
        objs = [json.loads(d) for _, d in ev]
        self.assertEqual([o["sequence_number"] for o in objs],
                         list(range(len(objs))))
        self.assertEqual([o["type"] for o in objs], types)
        text = "".join(o["delta"] for o in objs
                       if o["type"] == "response.output_text.delta")
        self.assertEqual(text, "mock answer #1 to: stream me")
        done = objs[-1]["response"]
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["usage"]["output_tokens"], ntokens(text))
        self.assertIsNone(objs[0]["response"]["usage"])

    def test_anthropic_stream(self):
        r, data = self.post("/v1/messages", {
            "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "stream this answer"}]},
            raw=True)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Content-Type")
                        .startswith("text/event-stream"))
        ev = parse_sse(data.decode())
        types = [e for e, _ in ev]
        self.assertEqual(types[:3], ["message_start", "content_block_start",
                                     "ping"])
        self.assertEqual(types[-3:], ["content_block_stop", "message_delta",
                                      "message_stop"])
        objs = [json.loads(d) for _, d in ev]
        self.assertEqual([o["type"] for o in objs], types)
        start = objs[0]["message"]
        self.assertEqual(start["content"], [])
        self.assertIsNone(start["stop_reason"])
        self.assertIn("cache_read_input_tokens", start["usage"])
        text = "".join(o["delta"]["text"] for o in objs
                       if o["type"] == "content_block_delta")
        self.assertEqual(text, "mock answer #1 to: stream this answer")
        md = objs[-2]
        self.assertEqual(md["delta"]["stop_reason"], "end_turn")
        self.assertEqual(md["usage"]["output_tokens"], ntokens(text))
        self.assertEqual(md["usage"]["input_tokens"],
                         start["usage"]["input_tokens"])

    def test_forced_tool_calls(self):
        fn = {"type": "function", "function": {
            "name": "lookup", "parameters": {"type": "object"}}}
        fn2 = {"type": "function", "function": {
            "name": "other", "parameters": {"type": "object"}}}
        msgs = [{"role": "user", "content": "find it"}]
        r, b = self.chat(msgs, tools=[fn, fn2], tool_choice={
            "type": "function", "function": {"name": "other"}})
        ch = b["choices"][0]
        self.assertEqual(ch["finish_reason"], "tool_calls")
        self.assertIsNone(ch["message"]["content"])
        call = ch["message"]["tool_calls"][0]
        self.assertEqual(call["function"]["name"], "other")
        self.assertEqual(json.loads(call["function"]["arguments"]),
                         {"answer": "mock answer #1 to: find it"})
        r, b = self.chat(msgs, tools=[fn], tool_choice="auto")
        self.assertEqual(b["choices"][0]["finish_reason"], "stop")
        r, b = self.chat(msgs, tool_choice="required")
        self.assertEqual(b["error"]["param"], "tool_choice")
        r, b = self.chat(msgs, tools=[fn], tool_choice={
            "type": "function", "function": {"name": "missing"}})
        self.assertEqual(r.status, 400)
        # streamed: arguments arrive in pieces
        r, data = self.post("/v1/chat/completions", {
            "model": "m", "messages": msgs, "tools": [fn],
            "tool_choice": "required", "stream": True}, raw=True)
        chunks = [json.loads(d) for _, d in parse_sse(data.decode())[:-1]]
        first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
        self.assertEqual(first["function"]["name"], "lookup")
        args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]
                       ["arguments"] for c in chunks[1:-1])
        self.assertEqual(json.loads(args),
                         {"answer": "mock answer #5 to: find it"})
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"],
                         "tool_calls")
        # Responses API
        rtool = {"type": "function", "name": "lookup",
                 "parameters": {"type": "object"}}
        r, b = self.post("/v1/responses", {
            "model": "m", "input": "find it", "tools": [rtool],
            "tool_choice": {"type": "function", "name": "lookup"}})
        item = b["output"][0]
        self.assertEqual(item["type"], "function_call")
        self.assertEqual(item["name"], "lookup")
        self.assertEqual(json.loads(item["arguments"])["answer"],
                         "mock answer #6 to: find it")
        r, data = self.post("/v1/responses", {
            "model": "m", "input": "find it", "tools": [rtool],
            "tool_choice": "required", "stream": True}, raw=True)
        objs = [json.loads(d) for _, d in parse_sse(data.decode())]
        args = "".join(o["delta"] for o in objs if o["type"] ==
                       "response.function_call_arguments.delta")
        done = [o for o in objs if o["type"] ==
                "response.function_call_arguments.done"][0]
        self.assertEqual(args, done["arguments"])
        self.assertEqual(objs[-1]["response"]["output"][0]["arguments"],
                         args)
        # Anthropic
        atool = {"name": "lookup", "input_schema": {"type": "object"}}
        r, b = self.anth({"messages": msgs, "tools": [atool],
                          "tool_choice": {"type": "tool",
                                          "name": "lookup"}})
        self.assertEqual(b["stop_reason"], "tool_use")
        blk = b["content"][0]
        self.assertEqual((blk["type"], blk["name"]), ("tool_use", "lookup"))
        self.assertEqual(blk["input"],
                         {"answer": "mock answer #8 to: find it"})
        r, b = self.anth({"messages": msgs, "tool_choice": {"type": "any"}})
        self.assertEqual(r.status, 400)
        r, data = self.post("/v1/messages", {
            "model": "c", "max_tokens": 9, "messages": msgs,
            "tools": [atool], "tool_choice": {"type": "any"},
            "stream": True}, raw=True)
        objs = [json.loads(d) for _, d in parse_sse(data.decode())]
        self.assertEqual(objs[1]["content_block"]["type"], "tool_use")
        js = "".join(o["delta"]["partial_json"] for o in objs
                     if o["type"] == "content_block_delta")
        self.assertEqual(json.loads(js),
                         {"answer": "mock answer #10 to: find it"})
        self.assertEqual(objs[-2]["delta"]["stop_reason"], "tool_use")

    # -- fault knobs -------------------------------------------------------

    def test_status_knob(self):
        msgs = [{"role": "user", "content": "x"}]
        r, b = self.post("/v1/chat/completions",
                         {"model": "m", "messages": msgs},
                         {"X-Mock-Status": "500"})
        self.assertEqual(r.status, 500)
        self.assertEqual(b["error"]["type"], "server_error")
        r, b = self.post("/v1/chat/completions",
                         {"model": "m", "messages": msgs},
                         {"X-Mock-Status": "429"})
        self.assertEqual(r.status, 429)
        self.assertEqual(b["error"]["code"], "rate_limit_exceeded")
        self.assertEqual(r.getheader("retry-after"), "1")
        r, b = self.anth({"messages": msgs}, {"X-Mock-Status": "529"})
        self.assertEqual(r.status, 529)
        self.assertEqual(b["type"], "error")
        self.assertEqual(b["error"]["type"], "overloaded_error")
        r, b = self.anth({"messages": msgs}, {"X-Mock-Status": "429"})
        self.assertEqual(b["error"]["type"], "rate_limit_error")
        # a stream request that fails gets a JSON error, not SSE
        r, b = self.anth({"messages": msgs, "stream": True},
                         {"X-Mock-Status": "500"})
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        self.assertEqual(b["error"]["type"], "api_error")
        r, b = self.chat(msgs, **{})
        self.assertEqual(r.status, 200)

    def test_success_status_and_raw_body(self):
        msgs = [{"role": "user", "content": "x"}]
        r, b = self.post("/v1/chat/completions",
                         {"model": "m", "messages": msgs},
                         {"X-Mock-Status": "203"})
        self.assertEqual(r.status, 203)
        self.assertEqual(b["choices"][0]["message"]["content"],
                         "mock answer #1 to: x")
        r, data = self.post("/v1/messages",
                            {"model": "c", "max_tokens": 5,
                             "messages": msgs},
                            {"X-Mock-Status": "204"}, raw=True)
        self.assertEqual((r.status, data), (204, b""))
        self.assertIsNone(r.getheader("Content-Length"))
        r, data = self.post("/v1/chat/completions",
                            {"model": "m", "messages": msgs},
                            {"X-Mock-Raw-Body": '{"not": "an answer"'},
                            raw=True)
        self.assertEqual((r.status, data), (200, b'{"not": "an answer"'))
        # the connection is still usable after the 204
        r, b = self.chat(msgs)
        self.assertEqual(b["choices"][0]["message"]["content"],
                         "mock answer #4 to: x")

    def test_finish_length(self):
        h = {"X-Mock-Finish": "length"}
        msgs = [{"role": "user", "content": "cut"}]
        r, b = self.post("/v1/chat/completions",
                         {"model": "m", "messages": msgs}, h)
        self.assertEqual(b["choices"][0]["finish_reason"], "length")
        r, data = self.post("/v1/chat/completions",
                            {"model": "m", "messages": msgs,
                             "stream": True}, h, raw=True)
        last = json.loads(parse_sse(data.decode())[-2][1])
        self.assertEqual(last["choices"][0]["finish_reason"], "length")
        r, b = self.post("/v1/completions", {"model": "m", "prompt": "p"}, h)
        self.assertEqual(b["choices"][0]["finish_reason"], "length")
        r, b = self.post("/v1/responses", {"model": "m", "input": "p"}, h)
        self.assertEqual(b["status"], "incomplete")
        self.assertEqual(b["incomplete_details"],
                         {"reason": "max_output_tokens"})
        self.assertEqual(b["output"][0]["status"], "incomplete")
        r, data = self.post("/v1/responses", {"model": "m", "input": "p",
                                              "stream": True}, h, raw=True)
        self.assertEqual(parse_sse(data.decode())[-1][0],
                         "response.incomplete")
        r, b = self.anth({"messages": msgs}, h)
        self.assertEqual(b["stop_reason"], "max_tokens")
        r, data = self.post("/v1/messages", {
            "model": "c", "max_tokens": 5, "messages": msgs,
            "stream": True}, h, raw=True)
        ev = parse_sse(data.decode())
        self.assertEqual(json.loads(ev[-2][1])["delta"]["stop_reason"],
                         "max_tokens")
        self.assertEqual(ev[-1][0], "message_stop")
        # without the knob the same request ends normally
        r, b = self.anth({"messages": msgs})
        self.assertEqual(b["stop_reason"], "end_turn")

    def test_delay_knobs(self):
        msgs = [{"role": "user", "content": "x"}]
        t0 = time.monotonic()
        r, b = self.post("/v1/chat/completions",
                         {"model": "m", "messages": msgs},
                         {"X-Mock-Delay-Ms": "300"})
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        t0 = time.monotonic()
        r, data = self.post("/v1/chat/completions",
                            {"model": "m", "messages": msgs, "stream": True},
                            {"X-Mock-Stream-Delay-Ms": "50"}, raw=True)
        n = len(parse_sse(data.decode()))
        self.assertGreaterEqual(time.monotonic() - t0, 0.05 * (n - 1))

    def test_stream_chunks_arrive_separately(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        body = json.dumps({"model": "m", "stream": True, "messages": [
            {"role": "user", "content": "one two three"}]}).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"X-Mock-Stream-Delay-Ms: 100\r\nContent-Length: %d\r\n"
                  b"\r\n%s" % (len(body), body))
        reads = []
        t0 = time.monotonic()
        buf = b""
        while not buf.endswith(b"0\r\n\r\n"):
            d = s.recv(65536)
            if not d:
                break
            buf += d
            reads.append(time.monotonic() - t0)
        s.close()
        self.assertGreater(len(reads), 3)
        self.assertGreater(reads[-1] - reads[0], 0.3)

    def test_reset_after(self):
        body = {"model": "m", "messages": [{"role": "user",
                                            "content": "reset me"}]}
        head, data, err = raw_request(self.port, "/v1/chat/completions",
                                      body, {"X-Mock-Reset-After": "10"})
        self.assertTrue(head.startswith("HTTP/1.1 200"))
        self.assertEqual(len(data), 10)
        self.assertIsInstance(err, ConnectionResetError)
        body["stream"] = True
        head, data, err = raw_request(self.port, "/v1/chat/completions",
                                      body, {"X-Mock-Reset-After": "20"})
        self.assertIn("Transfer-Encoding: chunked", head)
        self.assertIsInstance(err, ConnectionResetError)
        payload, n, complete = dechunk(data)
        self.assertFalse(complete)
        self.assertEqual(len(payload), 20)
        # the server keeps serving
        r, b = self.chat([{"role": "user", "content": "still there"}])
        self.assertEqual(r.status, 200)

    def test_sent_bytes(self):
        # /__sent?n=N: the body bytes that went out for call N
        body = {"model": "m", "messages": [{"role": "user",
                                            "content": "what was sent"}]}
        r, data = self.post("/v1/chat/completions", body, raw=True)
        n = int(r.getheader("X-Mock-Call"))
        self.assertEqual(self.ctl_bytes("/__sent?n=%d" % n), (200, data))
        body["stream"] = True
        head, data, err = raw_request(self.port, "/v1/chat/completions",
                                      body, {"X-Mock-Stream-Chunk-Bytes": "7"})
        n = int(re.search(r"X-Mock-Call: (\d+)", head).group(1))
        payload, chunks, complete = dechunk(data)
        self.assertTrue(complete)
        self.assertGreater(chunks, 3)
        self.assertEqual(self.ctl_bytes("/__sent?n=%d" % n), (200, payload))
        head, data, err = raw_request(self.port, "/v1/chat/completions",
                                      body, {"X-Mock-Reset-After": "33"})
        n = int(re.search(r"X-Mock-Call: (\d+)", head).group(1))
        status, sent = self.ctl_bytes("/__sent?n=%d" % n)
        self.assertEqual(status, 200)
        self.assertEqual(len(sent), 33)
        self.assertEqual(dechunk(data)[0], sent)
        self.assertEqual(self.ctl_bytes("/__sent?n=%d" % (n + 1))[0], 404)
        self.assertEqual(self.ctl_bytes("/__sent?n=x")[0], 400)
        self.ctl("POST", "/__reset")
        self.assertEqual(self.ctl_bytes("/__sent?n=%d" % n)[0], 404)

    def ctl_bytes(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def test_body_size_and_content_type(self):
        msgs = [{"role": "user", "content": "pad"}]
        r, data = self.post("/v1/chat/completions",
                            {"model": "m", "messages": msgs},
                            {"X-Mock-Body-Size": "100000"}, raw=True)
        self.assertGreaterEqual(len(data), 100000)
        self.assertLess(len(data), 110000)
        b = json.loads(data)
        text = b["choices"][0]["message"]["content"]
        self.assertTrue(text.startswith("mock answer #1 to: pad "))
        self.assertEqual(b["usage"]["completion_tokens"], ntokens(text))
        r, data = self.post("/v1/messages",
                            {"model": "claude-x", "max_tokens": 5,
                             "messages": msgs, "stream": True},
                            {"X-Mock-Body-Size": "20000"}, raw=True)
        self.assertGreaterEqual(len(data), 20000)
        self.assertEqual(parse_sse(data.decode())[-1][0], "message_stop")
        r, data = self.post("/v1/chat/completions",
                            {"model": "m", "messages": msgs},
                            {"X-Mock-Content-Type": "text/html"}, raw=True)
        self.assertEqual(r.getheader("Content-Type"), "text/html")

    def test_gzip(self):
        msgs = [{"role": "user", "content": "zip it"}]
        r, data = self.post("/v1/chat/completions",
                            {"model": "m", "messages": msgs},
                            {"X-Mock-Content-Encoding": "gzip"}, raw=True)
        self.assertEqual(r.getheader("Content-Encoding"), "gzip")
        self.assertEqual(int(r.getheader("Content-Length")), len(data))
        b = json.loads(gzip.decompress(data))
        self.assertEqual(b["choices"][0]["message"]["content"],
                         "mock answer #1 to: zip it")
        r, data = self.post("/v1/messages",
                            {"model": "claude-x", "max_tokens": 5,
                             "messages": msgs, "stream": True},
                            {"X-Mock-Content-Encoding": "gzip"}, raw=True)
        self.assertEqual(r.getheader("Content-Encoding"), "gzip")
        ev = parse_sse(gzip.decompress(data).decode())
        self.assertEqual(ev[-1][0], "message_stop")

    def test_stream_error_and_truncate(self):
        long_q = "a b c d e f g h"
        r, data = self.post("/v1/chat/completions", {
            "model": "m", "stream": True,
            "messages": [{"role": "user", "content": long_q}]},
            {"X-Mock-Stream-Error": "1"}, raw=True)
        ev = parse_sse(data.decode())
        last = json.loads(ev[-1][1])
        self.assertIn("error", last)
        self.assertEqual(last["error"]["type"], "server_error")
        self.assertNotIn((None, "[DONE]"), ev)
        deltas = [e for e in ev[:-1]
                  if json.loads(e[1])["choices"][0]["delta"].get("content")]
        self.assertEqual(len(deltas), 2)
        r, data = self.post("/v1/messages", {
            "model": "claude-x", "max_tokens": 5, "stream": True,
            "messages": [{"role": "user", "content": long_q}]},
            {"X-Mock-Stream-Error": "1"}, raw=True)
        ev = parse_sse(data.decode())
        self.assertEqual(ev[-1][0], "error")
        self.assertEqual(json.loads(ev[-1][1])["error"]["type"],
                         "overloaded_error")
        self.assertNotIn("message_stop", [e for e, _ in ev])
        r, data = self.post("/v1/responses", {
            "model": "m", "stream": True, "input": long_q},
            {"X-Mock-Stream-Error": "1"}, raw=True)
        ev = parse_sse(data.decode())
        self.assertEqual(ev[-1][0], "error")
        self.assertNotIn("response.completed", [e for e, _ in ev])
        # truncation: everything but the terminal event
        for path, body, term in (
                ("/v1/chat/completions",
                 {"model": "m", "messages": [{"role": "user",
                                              "content": "t"}]},
                 (None, "[DONE]")),
                ("/v1/messages",
                 {"model": "c", "max_tokens": 5,
                  "messages": [{"role": "user", "content": "t"}]},
                 "message_stop"),
                ("/v1/responses", {"model": "m", "input": "t"},
                 "response.completed")):
            body["stream"] = True
            # the mock closes after a truncated stream, even on keep-alive
            head, data, err = raw_request(self.port, path, body,
                                          {"X-Mock-Stream-Truncate": "1",
                                           "Connection": "keep-alive"},
                                          timeout=3)
            self.assertIsNone(err)
            text, n, complete = dechunk(data)
            self.assertTrue(complete, path)
            ev = parse_sse(text.decode())
            self.assertGreater(len(ev), 2)
            if isinstance(term, tuple):
                self.assertNotIn(term, ev)
            else:
                self.assertNotIn(term, [e for e, _ in ev])

    # -- embeddings --------------------------------------------------------

    def test_embeddings(self):
        r, b = self.post("/v1/embeddings", {
            "model": "text-embedding-3-small",
            "input": ["pasta recipe please", "pasta recipe", "stock prices"]})
        self.assertEqual(r.status, 200)
        self.assertEqual(b["object"], "list")
        vecs = [d["embedding"] for d in b["data"]]
        self.assertEqual([d["index"] for d in b["data"]], [0, 1, 2])
        self.assertEqual(len(vecs[0]), 1536)
        for v in vecs:
            self.assertAlmostEqual(math.sqrt(sum(x * x for x in v)), 1.0, 6)

        def cos(a, c):
            return sum(x * y for x, y in zip(a, c))
        self.assertGreater(cos(vecs[0], vecs[1]), cos(vecs[0], vecs[2]))
        self.assertGreater(cos(vecs[0], vecs[1]), 0.5)
        r, b2 = self.post("/v1/embeddings", {
            "model": "text-embedding-3-small", "input": "pasta recipe",
            "dimensions": 1536})
        self.assertEqual(b2["data"][0]["embedding"], vecs[1])
        r, b = self.post("/v1/embeddings", {
            "model": "text-embedding-3-large", "input": "x",
            "dimensions": 64, "encoding_format": "base64"})
        raw = base64.b64decode(b["data"][0]["embedding"])
        self.assertEqual(len(raw), 64 * 4)
        r, f = self.post("/v1/embeddings", {
            "model": "text-embedding-3-large", "input": "x",
            "dimensions": 64})
        self.assertEqual(list(struct.unpack("<64f", raw)),
                         [struct.unpack("<f", struct.pack("<f", x))[0]
                          for x in f["data"][0]["embedding"]])
        self.assertEqual(b["usage"]["prompt_tokens"], 1)
        r, b = self.post("/v1/embeddings", {"model": "m", "input": ""})
        self.assertEqual(r.status, 400)
        r, b = self.post("/v1/embeddings", {"model": "m"})
        self.assertEqual(b["error"]["param"], "input")
        r, b = self.post("/v1/embeddings", {
            "model": "text-embedding-3-small", "input": "x",
            "dimensions": 5000})
        self.assertEqual(b["error"]["param"], "dimensions")
        r, b = self.post("/v1/embeddings", {
            "model": "text-embedding-ada-002", "input": "x",
            "dimensions": 8})
        self.assertEqual(r.status, 400)

    # -- concurrency -------------------------------------------------------

    def test_concurrent_calls_are_numbered_once(self):
        import threading
        seen, errors = [], []

        def worker():
            c = http.client.HTTPConnection("127.0.0.1", self.port,
                                           timeout=10)
            try:
                for _ in range(25):
                    c.request("POST", "/v1/chat/completions", json.dumps({
                        "model": "m", "messages": [
                            {"role": "user", "content": "par"}]}))
                    r = c.getresponse()
                    n = int(r.getheader("X-Mock-Call"))
                    seen.append(n)
                    b = json.loads(r.read())
                    if b["choices"][0]["message"]["content"] != \
                            "mock answer #%d to: par" % n:
                        errors.append(b)
            except Exception as e:      # reported below
                errors.append(e)
            finally:
                c.close()

        # a slow request must not hold the others up
        slow = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        slow.request("POST", "/v1/embeddings",
                     json.dumps({"model": "m", "input": "slow"}),
                     {"X-Mock-Delay-Ms": "2500"})
        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        r = slow.getresponse()
        self.assertEqual(r.status, 200)
        seen.append(int(r.getheader("X-Mock-Call")))
        slow.close()
        self.assertEqual(errors, [])
        self.assertLess(elapsed, 2.5)
        self.assertEqual(sorted(seen), list(range(1, 202)))
        self.assertEqual(self.ctl("GET", "/__calls"), (200, "201"))
        # the request history keeps the latest 200
        hist = json.loads(self.ctl("GET", "/__requests")[1])
        self.assertEqual(len(hist), 200)
        self.assertEqual(hist[-1]["n"] - hist[0]["n"], 199)

    # -- redis -------------------------------------------------------------

    def test_bad_redis(self):
        out = resp(self.bad_port,
                   b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
                   b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\nv\r\n")
        self.assertEqual(out, b"-ERR mock failure\r\n" * 3)

    @unittest.skipUnless(REDIS, "redis-server not installed")
    def test_redis_control(self):
        rp = self.redis_port
        self.assertEqual(resp(rp, b"*1\r\n$4\r\nPING\r\n"), b"+PONG\r\n")
        resp(rp, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
        self.assertEqual(self.ctl("POST", "/__redis/flush"), (200, "ok"))
        self.assertEqual(resp(rp, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
                         b"$-1\r\n")
        self.assertEqual(self.ctl("POST", "/__redis/pause"), (200, "ok"))
        self.assertEqual(resp(rp, b"*1\r\n$4\r\nPING\r\n", timeout=0.3), b"")
        self.assertEqual(self.ctl("POST", "/__redis/resume"), (200, "ok"))
        self.assertEqual(resp(rp, b"*1\r\n$4\r\nPING\r\n"), b"+PONG\r\n")
        # start on a paused server resumes it
        self.assertEqual(self.ctl("POST", "/__redis/pause"), (200, "ok"))
        self.assertEqual(self.ctl("POST", "/__redis/start"), (200, "ok"))
        self.assertEqual(resp(rp, b"*1\r\n$4\r\nPING\r\n"), b"+PONG\r\n")
        self.assertEqual(self.ctl("POST", "/__redis/stop"), (200, "ok"))
        self.assertFalse(port_open(rp))
        self.assertEqual(self.ctl("POST", "/__redis/stop"), (200, "ok"))
        st, body = self.ctl("POST", "/__redis/resume")
        self.assertEqual(st, 500)
        self.assertIn("not running", body)
        self.assertEqual(self.ctl("POST", "/__redis/start"), (200, "ok"))
        self.assertEqual(resp(rp, b"*1\r\n$4\r\nPING\r\n"), b"+PONG\r\n")
        self.assertEqual(self.ctl("POST", "/__redis/bogus")[0], 404)

    @unittest.skipUnless(REDIS, "redis-server not installed")
    def test_redis_dump(self):
        rp = self.redis_port
        self.ctl("POST", "/__redis/flush")
        self.assertEqual(self.ctl("GET", "/__redis/dump"), (200, ""))
        for cmd in ([b"SET", b"b:str", b"line1\nline2\t\\\xff"],
                    [b"EXPIRE", b"b:str", b"100"],
                    [b"SADD", b"a:set", b"y", b"x"],
                    [b"HSET", b"c:hash", b"f", b"v"],
                    [b"SET", "d:한".encode(), "값".encode()]):
            payload = b"*%d\r\n" % len(cmd) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a), a) for a in cmd)
            self.assertNotEqual(resp(rp, payload)[:1], b"-")
        st, dump = self.ctl("GET", "/__redis/dump")
        self.assertEqual(st, 200)
        lines = dump.split("\n")
        self.assertEqual(lines[-1], "")
        self.assertEqual(lines[0], "a:set\t-1\tx y")
        key, ttl, val = lines[1].split("\t")
        self.assertEqual((key, val), ("b:str", "line1\\nline2\\t\\\\\\xff"))
        self.assertTrue(95 <= int(ttl) <= 100)
        self.assertEqual(lines[2], "c:hash\t-1\tf=v")
        self.assertEqual(lines[3], "d:한\t-1\t값")
        st, dump = self.ctl("GET", "/__redis/dump?match=c:*")
        self.assertEqual(dump, "c:hash\t-1\tf=v\n")
        resp(rp, b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
             b"*3\r\n$3\r\nSET\r\n$2\r\nk3\r\n$1\r\nv\r\n")
        self.assertEqual(self.ctl("GET", "/__redis/dump?db=3"),
                         (200, "k3\t-1\tv\n"))
        self.assertNotIn("k3", self.ctl("GET", "/__redis/dump")[1])
        self.assertEqual(self.ctl("GET", "/__redis/dump?db=99")[0], 500)
        self.ctl("POST", "/__redis/flush")


class LifecycleTest(unittest.TestCase):
    @unittest.skipUnless(REDIS, "redis-server not installed")
    def test_parent_death_stops_mock_and_redis(self):
        port, rport = free_port(), free_port()
        # an intermediate parent that we SIGKILL
        code = ("import subprocess,sys,time;"
                "p=subprocess.Popen([sys.executable,%r,'--port','%d',"
                "'--redis-port','%d'],stdout=subprocess.PIPE,text=True);"
                "print(p.stdout.readline().strip(),flush=True);"
                "time.sleep(60)" % (MOCK, port, rport))
        parent = subprocess.Popen([sys.executable, "-c", code],
                                  stdout=subprocess.PIPE, text=True)
        self.assertEqual(parent.stdout.readline().strip(), "ready")
        self.assertTrue(port_open(port))
        self.assertTrue(port_open(rport))
        parent.kill()
        parent.wait()
        parent.stdout.close()
        end = time.monotonic() + 5
        while time.monotonic() < end and (port_open(port) or
                                          port_open(rport)):
            time.sleep(0.1)
        self.assertFalse(port_open(port))
        self.assertFalse(port_open(rport))

    @unittest.skipUnless(REDIS, "redis-server not installed")
    def test_sigkill_of_mock_takes_redis_down(self):
        port, rport = free_port(), free_port()
        p = start_mock(["--port", str(port), "--redis-port", str(rport)])
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
        end = time.monotonic() + 5
        while time.monotonic() < end and port_open(rport):
            time.sleep(0.1)
        self.assertFalse(port_open(rport))

    @unittest.skipUnless(REDIS, "redis-server not installed")
    def test_foreign_redis_on_port_fails_startup(self):
        rport = free_port()
        other = subprocess.Popen([REDIS, "--port", str(rport), "--save", "",
                                  "--appendonly", "no"],
                                 stdout=subprocess.DEVNULL)
        try:
            end = time.monotonic() + 5
            while not port_open(rport) and time.monotonic() < end:
                time.sleep(0.05)
            p = subprocess.Popen([sys.executable, MOCK, "--port",
                                  str(free_port()), "--redis-port",
                                  str(rport)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            out, err = p.communicate(timeout=20)
            self.assertNotEqual(p.returncode, 0)
            self.assertNotIn("ready", out)
            self.assertIn("redis-server exited", err)
            self.assertIsNone(other.poll())
        finally:
            other.kill()
            other.wait()

    def test_bad_port_fails_startup(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            busy = s.getsockname()[1]
            p = subprocess.Popen([sys.executable, MOCK, "--port", str(busy)],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            out, err = p.communicate(timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn("ready", out)
        self.assertIn("startup failed", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
