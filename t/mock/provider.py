#!/usr/bin/env python3
"""Mock LLM providers (OpenAI and Anthropic) for the test suites.

One process serves the OpenAI endpoints (/v1/chat/completions,
/v1/completions, /v1/responses, /v1/embeddings) and Anthropic's
/v1/messages over real HTTP/1.1, plus control endpoints under /__ and,
optionally, a Redis server it owns and a broken RESP server.  Answers are
deterministic functions of the request and of a global call counter, so a
test can tell a replayed (cached) answer from a fresh provider call.

Run `python3 t/mock/provider.py --help`; t/mock/README.md lists the
endpoints and the X-Mock-* fault knobs.  Standard library only.
"""

import argparse
import base64
import ctypes
import hashlib
import json
import math
import os
import queue
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERBOSE = False
HISTORY_MAX = 200
SENT_MAX = 1000
RESPONSES_MAX = 10000   # stored Responses conversations (oldest dropped)

# ---------------------------------------------------------------------------
# token estimate and provider constants
# ---------------------------------------------------------------------------


def ntokens(text):
    """Token estimate used everywhere: ceil(utf-8 bytes / 4)."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    return (len(text) + 3) // 4


OPENAI_CACHE_MIN = 1024
OPENAI_CACHE_STEP = 128

# Minimum cacheable prefix per Anthropic model family; the first substring
# that occurs in the model name wins.
ANTHROPIC_CACHE_MIN = [
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-6", 2048),
    ("haiku", 2048),
]
ANTHROPIC_CACHE_MIN_DEFAULT = 1024
ANTHROPIC_TTL_SECONDS = {"5m": 300, "1h": 3600}
ANTHROPIC_MAX_BREAKPOINTS = 4
ANTHROPIC_LOOKBACK = 20     # earlier block boundaries a breakpoint checks

EMBEDDING_DIMS = {
    "text-embedding-3-large": 3072,
    "text-embedding-3-small": 1536,
    "text-embedding-ada-002": 1536,
}
EMBEDDING_DIMS_DEFAULT = 1536

OPENAI_ROLES = ("system", "assistant", "user", "function", "tool",
                "developer")
OPENAI_PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")
ANTHROPIC_BLOCK_TYPES = ("text", "image", "document", "tool_use",
                         "tool_result", "thinking", "redacted_thinking",
                         "search_result", "server_tool_use",
                         "web_search_tool_result", "container_upload")

REASONS = {429: "Too Many Requests", 529: "Overloaded"}


def anthropic_cache_min(model):
    for sub, n in ANTHROPIC_CACHE_MIN:
        if sub in model:
            return n
    return ANTHROPIC_CACHE_MIN_DEFAULT


def jdump(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------
# shared state
# ---------------------------------------------------------------------------


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.calls = 0
            self.calls_by_path = {}
            self.last = None
            self.last_raw = b""
            self.history = []   # the last HISTORY_MAX provider requests
            # OpenAI: (model, prompt_cache_key) -> set of prefix digests
            self.openai_prefixes = {}
            # Anthropic: (model, digest) -> (expiry, lifetime in seconds)
            self.anthropic_prefixes = {}
            # Responses API: id -> serialized conversation (store: true)
            self.responses = {}
            # call number -> the response body bytes sent for it
            self.sent = {}

    def add_sent(self, n, data):
        """Remember what went out as call n's body (the last SENT_MAX
        calls), so a suite can compare what a client got with it."""
        if n is None or not data:
            return
        with self.lock:
            if n not in self.sent:
                self.sent[n] = bytearray()
                for old in sorted(self.sent)[:-SENT_MAX]:
                    del self.sent[old]
            if n in self.sent:
                self.sent[n] += data

    def get_sent(self, n):
        with self.lock:
            b = self.sent.get(n)
            return None if b is None else bytes(b)

    def begin_call(self, record, raw):
        with self.lock:
            self.calls += 1
            path = record["path"].split("?", 1)[0]
            self.calls_by_path[path] = self.calls_by_path.get(path, 0) + 1
            self.last = record
            self.last_raw = raw
            self.history.append(dict(record, n=self.calls))
            del self.history[:-HISTORY_MAX]
            return self.calls

    def count(self, path=None):
        with self.lock:
            if path is None:
                return self.calls
            return self.calls_by_path.get(path, 0)

    def openai_cached(self, bucket, digests):
        """digests: [(tokens, digest)] for every cacheable prefix length of
        this prompt, ascending.  Returns the longest one seen before and
        remembers them all."""
        with self.lock:
            seen = self.openai_prefixes.setdefault(bucket, set())
            cached = 0
            for toks, d in digests:
                if d in seen:
                    cached = toks
            seen.update(d for _, d in digests)
            return cached

    def anthropic_lookup(self, model, bounds, breakpoints):
        """bounds: [(tokens, digest, ttl)] for every block boundary of the
        prompt; breakpoints: indexes into bounds of the breakpoints that
        reach the model's minimum.  Like the provider, each breakpoint
        looks for a live entry at its own boundary and up to
        ANTHROPIC_LOOKBACK boundaries before it; the longest one found is
        read.  Returns (read_tokens, [(tokens, ttl)] ends of the written
        segments beyond it)."""
        now = time.monotonic()
        with self.lock:
            store = self.anthropic_prefixes
            read, hit = 0, None
            for bi in breakpoints:
                for j in range(max(0, bi - ANTHROPIC_LOOKBACK), bi + 1):
                    key = (model, bounds[j][1])
                    ent = store.get(key)
                    if ent is not None and ent[0] > now and \
                            bounds[j][0] > read:
                        read, hit = bounds[j][0], key
            if hit is not None:
                life = store[hit][1]
                store[hit] = (now + life, life)
            written = []
            for bi in breakpoints:
                toks, d, ttl = bounds[bi]
                life = ANTHROPIC_TTL_SECONDS[ttl]
                key = (model, d)
                old = store.get(key)
                if old is None or old[0] < now + life:
                    store[key] = (now + life, life)
                if toks > read:
                    written.append((toks, ttl))
            return read, written


STATE = State()


class ApiError(Exception):
    def __init__(self, status, message, etype=None, param=None, code=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.etype = etype
        self.param = param
        self.code = code


# ---------------------------------------------------------------------------
# error bodies in each provider's shape
# ---------------------------------------------------------------------------

OPENAI_STATUS_ERRORS = {
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided: sk-mock. You can find your API key "
          "at https://platform.openai.com/account/api-keys.",
          "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model",
          "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.",
          "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests. Please try again in 1s.",
          "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. "
          "Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.",
          "server_error", None),
}

ANTHROPIC_STATUS_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error",
          "Your API key does not have permission to use the specified "
          "resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number "
          "of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your "
          "per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def openai_error_body(status, message=None, etype=None, param=None,
                      code=None):
    dm, dt, dc = OPENAI_STATUS_ERRORS.get(
        status, ("Mock error %d." % status,
                 "server_error" if status >= 500 else
                 "invalid_request_error", None))
    return {"error": {"message": message or dm, "type": etype or dt,
                      "param": param, "code": code if message else dc}}


def anthropic_error_body(status, message=None, etype=None, n=0):
    dt, dm = ANTHROPIC_STATUS_ERRORS.get(
        status, ("api_error" if status >= 500 else "invalid_request_error",
                 "Mock error %d." % status))
    return {"type": "error",
            "error": {"type": etype or dt, "message": message or dm},
            "request_id": "req_mock_%d" % n}


# ---------------------------------------------------------------------------
# prompt serialization (the byte string whose prefixes get cached)
# ---------------------------------------------------------------------------


def openai_content_text(content):
    """Text of a chat message content (string or parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if part.get("type") in ("text", "input_text", "output_text"):
                    out.append(str(part.get("text", "")))
                elif isinstance(part.get("text"), str):
                    out.append(part["text"])
        return "".join(out)
    return ""


def openai_content_serial(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in (
                    "text", "input_text", "output_text"):
                out.append(str(part.get("text", "")))
            else:
                out.append(jdump(part))
        return "".join(out)
    if content is None:
        return ""
    return jdump(content)


def openai_message_serial(msg):
    s = "\n<|%s|>" % msg.get("role", "")
    if msg.get("name"):
        s += "<|name:%s|>" % msg["name"]
    s += "\n" + openai_content_serial(msg.get("content"))
    for key in ("tool_calls", "function_call", "tool_call_id"):
        if key in msg:
            s += "\n" + jdump(msg[key])
    return s


def openai_prefix_digests(serial):
    """[(tokens, sha256)] of every prefix of `serial` (bytes) whose token
    count is >= 1024 and a multiple of 128 past 1024."""
    total = ntokens(serial)
    out = []
    if total < OPENAI_CACHE_MIN:
        return out
    h = hashlib.sha256()
    pos = 0
    toks = OPENAI_CACHE_MIN
    while toks <= total:
        end = min(toks * 4, len(serial))
        h.update(serial[pos:end])
        pos = end
        out.append((toks, h.copy().hexdigest()))
        toks += OPENAI_CACHE_STEP
    return out


def openai_cached_tokens(model, req, serial):
    key = req.get("prompt_cache_key")
    bucket = (model, key if isinstance(key, str) else "")
    return STATE.openai_cached(bucket, openai_prefix_digests(serial))


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def has_lone_surrogate(obj):
    """json.loads accepts "\\ud800"; the providers do not."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def parse_openai_json(body):
    try:
        req = json.loads(body.decode("utf-8"))
        if has_lone_surrogate(req):
            raise ValueError("lone surrogate")
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400,
                       "We could not parse the JSON body of your request. "
                       "(HINT: This likely means you aren't using your HTTP "
                       "library correctly. The OpenAI API expects a JSON "
                       "payload, but what was sent was not valid JSON. If "
                       "you have trouble figuring out how to fix this, "
                       "please visit https://community.openai.com)",
                       "invalid_request_error")
    if not isinstance(req, dict):
        raise ApiError(400, "Invalid type for request body: expected an "
                       "object, but got %s instead." % type(req).__name__,
                       "invalid_request_error", None, "invalid_type")
    return req


def openai_require(req, name):
    if name not in req or req[name] is None:
        if name == "model":
            raise ApiError(400, "you must provide a model parameter",
                           "invalid_request_error")
        raise ApiError(400, "Missing required parameter: '%s'." % name,
                       "invalid_request_error", name,
                       "missing_required_parameter")


def openai_check_model(req):
    openai_require(req, "model")
    if not isinstance(req["model"], str) or not req["model"]:
        raise ApiError(400, "Invalid type for 'model': expected a string, "
                       "but got %s instead." % jdump(req["model"]),
                       "invalid_request_error", "model", "invalid_type")
    return req["model"]


# JSON types of optional top-level parameters (null is always accepted)
T_STR, T_BOOL, T_INT, T_NUM, T_OBJ, T_ARR = (
    "a string", "a boolean", "an integer", "a decimal", "an object",
    "an array")
OPENAI_PARAM_TYPES = {
    "stream": T_BOOL, "stream_options": T_OBJ, "n": T_INT,
    "max_tokens": T_INT, "max_completion_tokens": T_INT,
    "max_output_tokens": T_INT, "tools": T_ARR, "response_format": T_OBJ,
    "prompt_cache_key": T_STR, "prompt_cache_retention": T_STR,
    "instructions": T_STR, "previous_response_id": T_STR, "store": T_BOOL,
    "seed": T_INT, "user": T_STR, "metadata": T_OBJ, "top_p": T_NUM,
    "presence_penalty": T_NUM, "frequency_penalty": T_NUM,
    "parallel_tool_calls": T_BOOL, "logprobs": T_BOOL,
    "top_logprobs": T_INT, "dimensions": T_INT, "encoding_format": T_STR,
    "text": T_OBJ, "reasoning": T_OBJ, "temperature": T_NUM,
}
ANTHROPIC_PARAM_TYPES = {
    "stream": T_BOOL, "tools": T_ARR, "tool_choice": T_OBJ,
    "temperature": T_NUM, "top_p": T_NUM, "top_k": T_INT,
    "stop_sequences": T_ARR, "metadata": T_OBJ, "cache_control": T_OBJ,
    "thinking": T_OBJ, "service_tier": T_STR,
}


def json_type_ok(v, want):
    if want == T_STR:
        return isinstance(v, str)
    if want == T_BOOL:
        return isinstance(v, bool)
    if want == T_INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if want == T_NUM:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if want == T_OBJ:
        return isinstance(v, dict)
    return isinstance(v, list)


def json_type_name(v):
    if v is None:
        return "null"
    for t in (T_BOOL, T_INT, T_NUM, T_STR, T_OBJ, T_ARR):
        if json_type_ok(v, t):
            return t
    return "an unknown value"


def openai_check_types(req):
    for name, want in OPENAI_PARAM_TYPES.items():
        v = req.get(name)
        if v is not None and not json_type_ok(v, want):
            raise ApiError(400, "Invalid type for '%s': expected %s, but "
                           "got %s instead." % (name, want,
                                                json_type_name(v)),
                           "invalid_request_error", name, "invalid_type")


def anthropic_check_types(req):
    for name, want in ANTHROPIC_PARAM_TYPES.items():
        v = req.get(name)
        if v is not None and not json_type_ok(v, want):
            what = {T_STR: "a valid string", T_BOOL: "a valid boolean",
                    T_INT: "a valid integer", T_NUM: "a valid number",
                    T_OBJ: "a valid dictionary", T_ARR: "a valid list"}
            raise ApiError(400, "%s: Input should be %s" % (name,
                                                            what[want]))


def openai_check_tools(tools, responses_api):
    """Each tool an object with a type; function tools need a name."""
    for i, t in enumerate(tools or []):
        p = "tools[%d]" % i
        if not isinstance(t, dict):
            raise ApiError(400, "Invalid type for '%s': expected an object, "
                           "but got %s instead." % (p, json_type_name(t)),
                           "invalid_request_error", p, "invalid_type")
        if not isinstance(t.get("type"), str):
            raise ApiError(400, "Missing required parameter: '%s.type'." % p,
                           "invalid_request_error", p + ".type",
                           "missing_required_parameter")
        if t["type"] != "function":
            continue
        f = t if responses_api else t.get("function")
        fp = p if responses_api else p + ".function"
        if not isinstance(f, dict):
            raise ApiError(400, "Missing required parameter: '%s'." % fp,
                           "invalid_request_error", fp,
                           "missing_required_parameter")
        if not isinstance(f.get("name"), str):
            raise ApiError(400, "Missing required parameter: '%s.name'."
                           % fp, "invalid_request_error", fp + ".name",
                           "missing_required_parameter")


def openai_check_common(req, responses_api=False):
    openai_check_types(req)
    openai_check_tools(req.get("tools"), responses_api)
    t = req.get("temperature")
    if t is not None:
        if not isinstance(t, (int, float)) or isinstance(t, bool):
            raise ApiError(400, "Invalid type for 'temperature': expected a "
                           "decimal, but got %s instead." % jdump(t),
                           "invalid_request_error", "temperature",
                           "invalid_type")
        if t > 2:
            raise ApiError(400, "Invalid 'temperature': decimal above "
                           "maximum value. Expected a value <= 2, but got "
                           "%s instead." % jdump(t), "invalid_request_error",
                           "temperature", "decimal_above_max_value")
        if t < 0:
            raise ApiError(400, "Invalid 'temperature': decimal below "
                           "minimum value. Expected a value >= 0, but got "
                           "%s instead." % jdump(t), "invalid_request_error",
                           "temperature", "decimal_below_min_value")
    stream = req.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ApiError(400, "Invalid type for 'stream': expected a boolean, "
                       "but got %s instead." % jdump(stream),
                       "invalid_request_error", "stream", "invalid_type")
    if req.get("stream_options") is not None and not stream:
        raise ApiError(400, "The 'stream_options' parameter is only allowed "
                       "when 'stream' is enabled.", "invalid_request_error",
                       "stream_options", None)
    ret = req.get("prompt_cache_retention")
    if ret is not None and ret not in ("in_memory", "24h"):
        raise ApiError(400, "Invalid value: %s. Supported values are: "
                       "'in_memory' and '24h'." % jdump(ret),
                       "invalid_request_error", "prompt_cache_retention",
                       "invalid_value")
    return bool(stream)


def parse_anthropic_json(body):
    try:
        req = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "There was an error parsing the body: invalid "
                       "UTF-8")
    except ValueError as e:
        raise ApiError(400, "There was an error parsing the body: %s" % e)
    if has_lone_surrogate(req):
        raise ApiError(400, "There was an error parsing the body: "
                       "unpaired surrogate in a string")
    if not isinstance(req, dict):
        raise ApiError(400, "Input should be a valid dictionary")
    return req


# ---------------------------------------------------------------------------
# replies: a prompt's usage plus renderers for JSON and SSE forms
# ---------------------------------------------------------------------------


def answer_for(n, text):
    return "mock answer #%d to: %s" % (n, text)


def tool_arguments(answer):
    """Arguments of a forced tool call: the answer text, as JSON."""
    return jdump({"answer": answer})


def openai_tool_names(tools):
    names = []
    for t in tools or []:
        if isinstance(t, dict):
            f = t.get("function") if isinstance(t.get("function"), dict) \
                else t
            if isinstance(f.get("name"), str):
                names.append(f["name"])
    return names


def openai_forced_tool(req, responses_api=False):
    """Name of the tool the request forces (tool_choice "required" or a
    named function), else None; validated like the provider."""
    choice = req.get("tool_choice")
    tools = req.get("tools")
    if choice is None or choice in ("auto", "none"):
        return None
    if not tools:
        raise ApiError(400, "Invalid value for 'tool_choice': 'tool_choice' "
                       "is only allowed when 'tools' are specified.",
                       "invalid_request_error", "tool_choice", None)
    names = openai_tool_names(tools)
    if choice == "required":
        return names[0] if names else "tool"
    if isinstance(choice, dict):
        f = choice if responses_api else choice.get("function") or {}
        name = f.get("name") if isinstance(f, dict) else None
        if name in names:
            return name
        raise ApiError(400, "Invalid value for 'tool_choice': function %s "
                       "not found in 'tools'." % jdump(name),
                       "invalid_request_error", "tool_choice",
                       "invalid_value")
    raise ApiError(400, "Invalid value: %s. Supported values are: 'none', "
                   "'auto', and 'required'." % jdump(choice),
                   "invalid_request_error", "tool_choice", "invalid_value")


def split_deltas(text, maxn=64):
    """Split text into word-ish deltas (each keeps its trailing space)."""
    words = []
    cur = ""
    for ch in text:
        cur += ch
        if ch == " ":
            words.append(cur)
            cur = ""
    if cur:
        words.append(cur)
    if not words:
        return [""]
    if len(words) > maxn:
        per = (len(words) + maxn - 1) // maxn
        words = ["".join(words[i:i + per])
                 for i in range(0, len(words), per)]
    return words


def sse(data, event=None):
    s = ""
    if event is not None:
        s += "event: %s\n" % event
    s += "data: %s\n\n" % data
    return s.encode("utf-8")


class Reply:
    """What a provider endpoint produced: `json_body(answer)` and
    `events(answer)` render the answer; events are (kind, bytes) with kind
    one of head, delta, tail, end (end = the terminal event)."""

    def __init__(self, stream):
        self.stream = stream
        self.answer = ""
        self.cut = False

    def mark_length(self):
        """The answer stops at the output token limit (X-Mock-Finish)."""
        self.cut = True

    def json_body(self, answer):
        raise NotImplementedError

    def events(self, answer):
        raise NotImplementedError

    def error_event(self, seq):
        raise NotImplementedError


# --- OpenAI chat completions ----------------------------------------------


def openai_validate_messages(msgs):
    if not isinstance(msgs, list):
        raise ApiError(400, "Invalid type for 'messages': expected an array "
                       "of objects, but got %s instead." % jdump(msgs)[:64],
                       "invalid_request_error", "messages", "invalid_type")
    if not msgs:
        raise ApiError(400, "Invalid 'messages': empty array. Expected an "
                       "array with minimum length 1, but got an empty array "
                       "instead.", "invalid_request_error", "messages",
                       "empty_array")
    for i, m in enumerate(msgs):
        p = "messages[%d]" % i
        if not isinstance(m, dict):
            raise ApiError(400, "Invalid type for '%s': expected an object, "
                           "but got %s instead." % (p, jdump(m)[:64]),
                           "invalid_request_error", p, "invalid_type")
        if "role" not in m:
            raise ApiError(400, "Missing required parameter: '%s.role'." % p,
                           "invalid_request_error", p + ".role",
                           "missing_required_parameter")
        if m["role"] not in OPENAI_ROLES:
            raise ApiError(400, "Invalid value: %s. Supported values are: "
                           "'system', 'assistant', 'user', 'function', "
                           "'tool', and 'developer'." % jdump(m["role"]),
                           "invalid_request_error", p + ".role",
                           "invalid_value")
        c = m.get("content")
        if c is None:
            if m["role"] == "assistant" and ("tool_calls" in m or
                                             "function_call" in m):
                continue
            raise ApiError(400, "Missing required parameter: "
                           "'%s.content'." % p, "invalid_request_error",
                           p + ".content", "missing_required_parameter")
        if isinstance(c, str):
            continue
        if not isinstance(c, list):
            raise ApiError(400, "Invalid type for '%s.content': expected "
                           "one of a string or array of objects, but got %s "
                           "instead." % (p, jdump(c)[:64]),
                           "invalid_request_error", p + ".content",
                           "invalid_type")
        for j, part in enumerate(c):
            q = "%s.content[%d]" % (p, j)
            if not isinstance(part, dict) or "type" not in part:
                raise ApiError(400, "Missing required parameter: "
                               "'%s.type'." % q, "invalid_request_error",
                               q + ".type", "missing_required_parameter")
            if part["type"] not in OPENAI_PART_TYPES:
                raise ApiError(400, "Invalid value: %s. Supported values "
                               "are: 'text', 'image_url', 'input_audio', "
                               "'refusal', and 'file'."
                               % jdump(part["type"]),
                               "invalid_request_error", q + ".type",
                               "invalid_value")
            if part["type"] == "text" and not isinstance(part.get("text"),
                                                         str):
                raise ApiError(400, "Missing required parameter: "
                               "'%s.text'." % q, "invalid_request_error",
                               q + ".text", "missing_required_parameter")


def openai_usage_chat(prompt, cached, completion):
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached,
                                      "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0}}


class ChatReply(Reply):
    def __init__(self, n, req):
        stream = openai_check_common(req)
        super().__init__(stream)
        self.model = openai_check_model(req)
        openai_require(req, "messages")
        openai_validate_messages(req["messages"])
        nc = req.get("n", 1)
        if nc is None:
            nc = 1
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1 \
                or nc > 128:
            raise ApiError(400, "Invalid 'n': expected a value between 1 "
                           "and 128, but got %s instead." % jdump(nc),
                           "invalid_request_error", "n", "invalid_value")
        self.nchoices = nc
        so = req.get("stream_options") or {}
        self.include_usage = bool(isinstance(so, dict) and
                                  so.get("include_usage"))
        serial = ""
        if req.get("tools"):
            serial += "<|tools|>" + jdump(req["tools"])
        if req.get("response_format"):
            serial += "<|response_format|>" + jdump(req["response_format"])
        last_user = ""
        for m in req["messages"]:
            serial += openai_message_serial(m)
            if m.get("role") == "user":
                last_user = openai_content_text(m.get("content"))
        serial = serial.encode("utf-8", "surrogatepass")
        self.prompt_tokens = ntokens(serial)
        self.cached = openai_cached_tokens(self.model, req, serial)
        self.tool = openai_forced_tool(req)
        self.id = "chatcmpl-mock-%d" % n
        self.call_id = "call_mock_%d" % n
        self.created = int(time.time())
        self.answer = answer_for(n, last_user)
        self.finish = "tool_calls" if self.tool else "stop"

    def mark_length(self):
        super().mark_length()
        self.finish = "length"

    def output(self, answer):
        return tool_arguments(answer) if self.tool else answer

    def usage(self, answer):
        return openai_usage_chat(self.prompt_tokens, self.cached,
                                 ntokens(self.output(answer)) *
                                 self.nchoices)

    def message(self, answer):
        if not self.tool:
            return {"role": "assistant", "content": answer,
                    "refusal": None, "annotations": []}
        return {"role": "assistant", "content": None,
                "tool_calls": [{"id": self.call_id, "type": "function",
                                "function": {
                                    "name": self.tool,
                                    "arguments": tool_arguments(answer)}}],
                "refusal": None, "annotations": []}

    def json_body(self, answer):
        return {
            "id": self.id, "object": "chat.completion",
            "created": self.created, "model": self.model,
            "choices": [{"index": i, "message": self.message(answer),
                         "logprobs": None, "finish_reason": self.finish}
                        for i in range(self.nchoices)],
            "usage": self.usage(answer),
            "service_tier": "default",
            "system_fingerprint": "fp_mock"}

    def chunk(self, choices, usage=False):
        obj = {"id": self.id, "object": "chat.completion.chunk",
               "created": self.created, "model": self.model,
               "service_tier": "default", "system_fingerprint": "fp_mock",
               "choices": choices}
        if self.include_usage:
            obj["usage"] = usage if usage is not False else None
        return sse(jdump(obj))

    def events(self, answer):
        ev = []
        if self.tool:
            first = {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": self.call_id, "type": "function",
                 "function": {"name": self.tool, "arguments": ""}}],
                "refusal": None}
        else:
            first = {"role": "assistant", "content": "", "refusal": None}
        ev.append(("head", self.chunk([
            {"index": i, "delta": first, "logprobs": None,
             "finish_reason": None} for i in range(self.nchoices)])))
        for piece in split_deltas(self.output(answer)):
            if self.tool:
                delta = {"tool_calls": [{"index": 0, "function": {
                    "arguments": piece}}]}
            else:
                delta = {"content": piece}
            ev.append(("delta", self.chunk([
                {"index": i, "delta": delta, "logprobs": None,
                 "finish_reason": None} for i in range(self.nchoices)])))
        ev.append(("tail", self.chunk([
            {"index": i, "delta": {}, "logprobs": None,
             "finish_reason": self.finish} for i in range(self.nchoices)])))
        if self.include_usage:
            ev.append(("tail", self.chunk([], self.usage(answer))))
        ev.append(("end", b"data: [DONE]\n\n"))
        return ev

    def error_event(self, seq):
        return sse(jdump(openai_error_body(500)))


# --- OpenAI legacy completions --------------------------------------------


class CompletionReply(Reply):
    def __init__(self, n, req):
        stream = openai_check_common(req)
        super().__init__(stream)
        self.model = openai_check_model(req)
        openai_require(req, "prompt")
        p = req["prompt"]
        if isinstance(p, str):
            text = p
        elif isinstance(p, list) and all(isinstance(x, str) for x in p):
            text = "".join(p)
        elif isinstance(p, list) and all(isinstance(x, int) for x in p):
            text = " ".join(str(x) for x in p)
        else:
            raise ApiError(400, "Invalid type for 'prompt': expected a "
                           "string, array of strings or array of tokens.",
                           "invalid_request_error", "prompt", "invalid_type")
        so = req.get("stream_options") or {}
        self.include_usage = bool(isinstance(so, dict) and
                                  so.get("include_usage"))
        serial = text.encode("utf-8", "surrogatepass")
        self.prompt_tokens = ntokens(serial)
        self.cached = openai_cached_tokens(self.model, req, serial)
        self.id = "cmpl-mock-%d" % n
        self.created = int(time.time())
        self.answer = answer_for(n, text)

    def usage(self, answer):
        c = ntokens(answer)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": c,
                "total_tokens": self.prompt_tokens + c,
                "prompt_tokens_details": {"cached_tokens": self.cached}}

    def json_body(self, answer):
        return {"id": self.id, "object": "text_completion",
                "created": self.created, "model": self.model,
                "choices": [{"text": answer, "index": 0, "logprobs": None,
                             "finish_reason":
                                 "length" if self.cut else "stop"}],
                "usage": self.usage(answer),
                "system_fingerprint": "fp_mock"}

    def chunk(self, choices, usage=False):
        obj = {"id": self.id, "object": "text_completion",
               "created": self.created, "model": self.model,
               "choices": choices, "system_fingerprint": "fp_mock"}
        if self.include_usage:
            obj["usage"] = usage if usage is not False else None
        return sse(jdump(obj))

    def events(self, answer):
        ev = []
        for piece in split_deltas(answer):
            ev.append(("delta", self.chunk([
                {"text": piece, "index": 0, "logprobs": None,
                 "finish_reason": None}])))
        ev.append(("tail", self.chunk([
            {"text": "", "index": 0, "logprobs": None,
             "finish_reason": "length" if self.cut else "stop"}])))
        if self.include_usage:
            ev.append(("tail", self.chunk([], self.usage(answer))))
        ev.append(("end", b"data: [DONE]\n\n"))
        return ev

    def error_event(self, seq):
        return sse(jdump(openai_error_body(500)))


# --- OpenAI Responses ------------------------------------------------------


class ResponsesReply(Reply):
    def __init__(self, n, req):
        stream = openai_check_common(req, responses_api=True)
        super().__init__(stream)
        self.model = openai_check_model(req)
        if req.get("input") is None and not req.get("prompt") and \
                not req.get("previous_response_id"):
            openai_require(req, "input")
        self.req = req
        inp = req.get("input")
        serial = ""
        if req.get("tools"):
            serial += "<|tools|>" + jdump(req["tools"])
        if isinstance(req.get("text"), dict) and "format" in req["text"]:
            serial += "<|format|>" + jdump(req["text"]["format"])
        if isinstance(req.get("instructions"), str):
            serial += "\n<|instructions|>\n" + req["instructions"]
        last_user = ""
        if isinstance(inp, str):
            serial += "\n<|user|>\n" + inp
            last_user = inp
        elif isinstance(inp, list):
            for i, item in enumerate(inp):
                if not isinstance(item, dict):
                    raise ApiError(400, "Invalid type for 'input[%d]': "
                                   "expected an object." % i,
                                   "invalid_request_error", "input[%d]" % i,
                                   "invalid_type")
                itype = item.get("type", "message")
                if itype == "message":
                    role = item.get("role")
                    if role not in ("user", "assistant", "system",
                                    "developer"):
                        raise ApiError(400, "Invalid value: %s. Supported "
                                       "values are: 'assistant', 'system', "
                                       "'developer', and 'user'."
                                       % jdump(role), "invalid_request_error",
                                       "input[%d].role" % i, "invalid_value")
                    if "content" not in item:
                        raise ApiError(400, "Missing required parameter: "
                                       "'input[%d].content'." % i,
                                       "invalid_request_error",
                                       "input[%d].content" % i,
                                       "missing_required_parameter")
                    serial += openai_message_serial(item)
                    if role == "user":
                        last_user = openai_content_text(item.get("content"))
                else:
                    serial += "\n" + jdump(item)
        elif inp is not None:
            raise ApiError(400, "Invalid type for 'input': expected one of "
                           "a string or array of input items.",
                           "invalid_request_error", "input", "invalid_type")
        serial = serial.encode("utf-8", "surrogatepass")
        prev = req.get("previous_response_id")
        if prev is not None:
            with STATE.lock:
                context = STATE.responses.get(prev)
            if context is None:
                raise ApiError(400, "Previous response with id %s not found."
                               % jdump(prev), "invalid_request_error",
                               "previous_response_id",
                               "previous_response_not_found")
            serial = context + serial
        self.prompt_tokens = ntokens(serial)
        self.cached = openai_cached_tokens(self.model, req, serial)
        self.tool = openai_forced_tool(req, responses_api=True)
        self.id = "resp_mock_%d" % n
        self.msg_id = ("fc_mock_%d" if self.tool else "msg_mock_%d") % n
        self.call_id = "call_mock_%d" % n
        self.created = int(time.time())
        self.answer = answer_for(n, last_user)
        if req.get("store", True) is not False:
            # the conversation so far, for a later previous_response_id
            turn = "\n<|assistant|>\n" + (tool_arguments(self.answer)
                                          if self.tool else self.answer)
            with STATE.lock:
                STATE.responses[self.id] = serial + turn.encode("utf-8")
                while len(STATE.responses) > RESPONSES_MAX:
                    del STATE.responses[next(iter(STATE.responses))]

    def usage(self, answer):
        c = ntokens(tool_arguments(answer) if self.tool else answer)
        return {"input_tokens": self.prompt_tokens,
                "input_tokens_details": {"cached_tokens": self.cached},
                "output_tokens": c,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.prompt_tokens + c}

    def final_event(self):
        return "response.incomplete" if self.cut else "response.completed"

    def item(self, answer, done):
        status = "in_progress"
        if done:
            status = "incomplete" if self.cut else "completed"
        if self.tool:
            return {"id": self.msg_id, "type": "function_call",
                    "status": status,
                    "arguments": tool_arguments(answer) if done else "",
                    "call_id": self.call_id, "name": self.tool}
        return {"id": self.msg_id, "type": "message", "status": status,
                "role": "assistant",
                "content": [{"type": "output_text", "text": answer,
                             "annotations": [], "logprobs": []}]
                if done else []}

    def response(self, answer, done):
        r = self.req
        status = "in_progress"
        if done:
            status = "incomplete" if self.cut else "completed"
        return {
            "id": self.id, "object": "response", "created_at": self.created,
            "status": status, "background": False, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if done and self.cut else None,
            "instructions": r.get("instructions"),
            "max_output_tokens": r.get("max_output_tokens"),
            "model": self.model,
            "output": [self.item(answer, True)] if done else [],
            "parallel_tool_calls": r.get("parallel_tool_calls", True),
            "previous_response_id": r.get("previous_response_id"),
            "prompt_cache_key": r.get("prompt_cache_key"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default", "store": r.get("store", True),
            "temperature": r.get("temperature", 1.0),
            "text": r.get("text", {"format": {"type": "text"}}),
            "tool_choice": r.get("tool_choice", "auto"),
            "tools": r.get("tools", []),
            "top_p": r.get("top_p", 1.0), "truncation": "disabled",
            "usage": self.usage(answer) if done else None,
            "user": r.get("user"), "metadata": r.get("metadata", {})}

    def json_body(self, answer):
        return self.response(answer, True)

    def ev(self, seq, etype, **fields):
        obj = {"type": etype, "sequence_number": seq}
        obj.update(fields)
        return sse(jdump(obj), etype)

    def events(self, answer):
        out = []
        seq = [0]

        def add(kind, etype, **fields):
            out.append((kind, self.ev(seq[0], etype, **fields)))
            seq[0] += 1

        loc = {"item_id": self.msg_id, "output_index": 0,
               "content_index": 0}
        add("head", "response.created",
            response=self.response(answer, False))
        add("head", "response.in_progress",
            response=self.response(answer, False))
        add("head", "response.output_item.added", output_index=0,
            item=self.item(answer, False))
        if self.tool:
            args = tool_arguments(answer)
            for piece in split_deltas(args):
                add("delta", "response.function_call_arguments.delta",
                    item_id=self.msg_id, output_index=0, delta=piece)
            add("tail", "response.function_call_arguments.done",
                item_id=self.msg_id, output_index=0, arguments=args)
            add("tail", "response.output_item.done", output_index=0,
                item=self.item(answer, True))
            add("end", self.final_event(),
                response=self.response(answer, True))
            return out
        add("head", "response.content_part.added", part={
            "type": "output_text", "text": "", "annotations": [],
            "logprobs": []}, **loc)
        for piece in split_deltas(answer):
            add("delta", "response.output_text.delta", delta=piece,
                logprobs=[], **loc)
        add("tail", "response.output_text.done", text=answer, logprobs=[],
            **loc)
        add("tail", "response.content_part.done", part={
            "type": "output_text", "text": answer, "annotations": [],
            "logprobs": []}, **loc)
        add("tail", "response.output_item.done", output_index=0,
            item=self.item(answer, True))
        add("end", self.final_event(),
            response=self.response(answer, True))
        return out

    def error_event(self, seq):
        return self.ev(seq, "error", code="server_error",
                       message="The server had an error while processing "
                       "your request. Sorry about that!", param=None)


# --- OpenAI embeddings -----------------------------------------------------


def embed_text(text, dims):
    """Hashed bag of words and character trigrams, L2-normalized: equal
    texts give equal vectors and similar texts give close ones."""
    vec = [0.0] * dims
    low = text.lower()
    feats = ["w:" + w for w in low.split()]
    padded = " %s " % " ".join(low.split())
    feats += ["c:" + padded[i:i + 3] for i in range(max(0, len(padded) - 2))]
    if not feats:
        feats = ["empty"]
    for f in feats:
        h = hashlib.md5(f.encode("utf-8", "surrogatepass")).digest()
        idx = int.from_bytes(h[:4], "little") % dims
        sign = 1.0 if h[4] & 1 else -1.0
        vec[idx] += sign * (1.0 + (h[5] / 255.0))
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def embeddings_reply(n, req):
    openai_check_types(req)
    model = openai_check_model(req)
    openai_require(req, "input")
    inp = req["input"]
    if isinstance(inp, str):
        inputs = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, str)
                                               for x in inp):
        inputs = inp
    elif isinstance(inp, list) and inp and all(
            isinstance(x, int) and not isinstance(x, bool) for x in inp):
        inputs = [" ".join(str(x) for x in inp)]
    elif isinstance(inp, list) and inp and all(
            isinstance(x, list) and x and all(isinstance(y, int) for y in x)
            for x in inp):
        inputs = [" ".join(str(y) for y in x) for x in inp]
    else:
        raise ApiError(400, "'$.input' is invalid. Please check the API "
                       "reference: https://platform.openai.com/docs/"
                       "api-reference.", "invalid_request_error", None, None)
    if any(s == "" for s in inputs):
        raise ApiError(400, "'$.input' is invalid. Please check the API "
                       "reference: https://platform.openai.com/docs/"
                       "api-reference.", "invalid_request_error", None, None)
    dims = EMBEDDING_DIMS.get(model, EMBEDDING_DIMS_DEFAULT)
    if req.get("dimensions") is not None:
        if model == "text-embedding-ada-002":
            raise ApiError(400, "This model does not support specifying "
                           "dimensions.", "invalid_request_error", None, None)
        d = req["dimensions"]
        if not isinstance(d, int) or isinstance(d, bool) or d < 1 \
                or d > dims:
            raise ApiError(400, "Invalid value for 'dimensions' = %s. Must "
                           "be between 1 and %d." % (jdump(d), dims),
                           "invalid_request_error", "dimensions",
                           "invalid_value")
        dims = d
    fmt = req.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise ApiError(400, "Invalid value: %s. Supported values are: "
                       "'float' and 'base64'." % jdump(fmt),
                       "invalid_request_error", "encoding_format",
                       "invalid_value")
    data = []
    toks = 0
    for i, s in enumerate(inputs):
        vec = embed_text(s, dims)
        toks += ntokens(s)
        if fmt == "base64":
            emb = base64.b64encode(struct.pack("<%df" % dims, *vec)).decode()
        else:
            emb = vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": toks, "total_tokens": toks}}


# --- Anthropic messages ----------------------------------------------------


def anthropic_block_serial(block):
    if isinstance(block, dict) and block.get("type") == "text":
        return str(block.get("text", ""))
    b = dict(block)
    b.pop("cache_control", None)
    return jdump(b)


def anthropic_check_cache_control(cc, where):
    if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
        raise ApiError(400, "%s.cache_control.type: Input should be "
                       "'ephemeral'" % where)
    ttl = cc.get("ttl", "5m")
    if ttl not in ANTHROPIC_TTL_SECONDS:
        raise ApiError(400, "%s.cache_control.ttl: Input should be '5m' or "
                       "'1h'" % where)
    return ttl


def anthropic_check_block(b, where):
    if not isinstance(b, dict):
        raise ApiError(400, "%s: Input should be a valid dictionary" % where)
    t = b.get("type")
    if t not in ANTHROPIC_BLOCK_TYPES:
        raise ApiError(400, "%s: Input tag %s found using 'type' does not "
                       "match any of the expected tags: %s"
                       % (where, jdump(t), ", ".join(
                           "'%s'" % x for x in ANTHROPIC_BLOCK_TYPES)))
    if t == "text":
        if not isinstance(b.get("text"), str):
            raise ApiError(400, "%s.text: Field required" % where)
        if b["text"] == "":
            raise ApiError(400, "messages: text content blocks must be "
                           "non-empty")
    if t == "tool_use":
        for f in ("id", "name", "input"):
            if f not in b:
                raise ApiError(400, "%s.%s: Field required" % (where, f))
    if t == "tool_result" and "tool_use_id" not in b:
        raise ApiError(400, "%s.tool_use_id: Field required" % where)


def anthropic_forced_tool(req):
    """Name of the tool forced by tool_choice any/tool, else None."""
    choice = req.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in (
            "auto", "any", "tool", "none"):
        raise ApiError(400, "tool_choice: Input tag %s found using 'type' "
                       "does not match any of the expected tags: 'auto', "
                       "'any', 'tool', 'none'"
                       % jdump(choice.get("type") if isinstance(choice, dict)
                               else choice))
    names = [t.get("name") for t in req.get("tools") or []
             if isinstance(t, dict)]
    if choice["type"] in ("auto", "none"):
        return None
    if not names:
        raise ApiError(400, "tool_choice: tool_choice may only be specified "
                       "while providing tools.")
    if choice["type"] == "any":
        return names[0]
    if "name" not in choice:
        raise ApiError(400, "tool_choice.tool.name: Field required")
    if choice["name"] not in names:
        raise ApiError(400, "Tool %s not found in tools."
                       % jdump(choice["name"]))
    return choice["name"]


class MessagesReply(Reply):
    def __init__(self, n, req, headers, strict):
        if strict:
            if not headers.get("x-api-key") and \
                    not headers.get("authorization"):
                raise ApiError(401, "x-api-key header is required",
                               "authentication_error")
            if not headers.get("anthropic-version"):
                raise ApiError(400, "anthropic-version: header is required")
        for f in ("model", "messages", "max_tokens"):
            if f not in req:
                raise ApiError(400, "%s: Field required" % f)
        anthropic_check_types(req)
        model = req["model"]
        if not isinstance(model, str) or not model:
            raise ApiError(400, "model: Input should be a valid string")
        mt = req["max_tokens"]
        if not isinstance(mt, int) or isinstance(mt, bool):
            raise ApiError(400, "max_tokens: Input should be a valid integer")
        if mt < 1:
            raise ApiError(400, "max_tokens: Input should be greater than or "
                           "equal to 1")
        t = req.get("temperature")
        if t is not None and (not isinstance(t, (int, float)) or
                              isinstance(t, bool) or t < 0 or t > 1):
            raise ApiError(400, "temperature: Input should be less than or "
                           "equal to 1" if isinstance(t, (int, float)) and
                           t > 1 else "temperature: Input should be a valid "
                           "number between 0 and 1")
        stream = req.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiError(400, "stream: Input should be a valid boolean")
        super().__init__(stream)
        self.model = model
        msgs = req["messages"]
        if not isinstance(msgs, list):
            raise ApiError(400, "messages: Input should be a valid list")
        if not msgs:
            raise ApiError(400, "messages: at least one message is required")

        # blocks in prefix order: (serial bytes, cache ttl or None)
        blocks = []
        marks = []      # (where, ttl) of every cache_control, in order
        tools = req.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise ApiError(400, "tools: Input should be a valid list")
            for i, tool in enumerate(tools):
                if not isinstance(tool, dict) or "name" not in tool:
                    raise ApiError(400, "tools.%d.name: Field required" % i)
                ttl = None
                if "cache_control" in tool:
                    ttl = anthropic_check_cache_control(
                        tool["cache_control"], "tools.%d" % i)
                    marks.append(("tools.%d" % i, ttl))
                blocks.append(("<|tool|>" + anthropic_block_serial(tool),
                               ttl))
        system = req.get("system")
        if isinstance(system, str):
            if system:
                blocks.append(("<|system|>" + system, None))
        elif isinstance(system, list):
            for i, b in enumerate(system):
                w = "system.%d" % i
                if not isinstance(b, dict) or b.get("type") != "text":
                    raise ApiError(400, "%s.type: Input should be 'text'" % w)
                anthropic_check_block(b, w)
                ttl = None
                if "cache_control" in b:
                    ttl = anthropic_check_cache_control(b["cache_control"], w)
                    marks.append((w, ttl))
                blocks.append((("<|system|>" if i == 0 else "") +
                               anthropic_block_serial(b), ttl))
        elif system is not None:
            raise ApiError(400, "system: Input should be a valid string or "
                           "list of text blocks")
        last_user = ""
        for i, m in enumerate(msgs):
            w = "messages.%d" % i
            if not isinstance(m, dict):
                raise ApiError(400, "%s: Input should be a valid dictionary"
                               % w)
            for f in ("role", "content"):
                if f not in m:
                    raise ApiError(400, "%s.%s: Field required" % (w, f))
            role = m["role"]
            if role not in ("user", "assistant"):
                raise ApiError(400, "%s.role: Input should be 'user' or "
                               "'assistant'" % w)
            c = m["content"]
            head = "\n<|%s|>\n" % role
            if isinstance(c, str):
                if c == "" and not (role == "assistant" and
                                    i == len(msgs) - 1):
                    raise ApiError(400, "%s: all messages must have "
                                   "non-empty content except for the "
                                   "optional final assistant message" % w)
                blocks.append((head + c, None))
                if role == "user":
                    last_user = c
                continue
            if not isinstance(c, list):
                raise ApiError(400, "%s.content: Input should be a valid "
                               "list" % w)
            if not c and not (role == "assistant" and i == len(msgs) - 1):
                raise ApiError(400, "%s: all messages must have non-empty "
                               "content except for the optional final "
                               "assistant message" % w)
            texts = []
            for j, b in enumerate(c):
                bw = "%s.content.%d" % (w, j)
                anthropic_check_block(b, bw)
                ttl = None
                if b["type"] == "tool_result" and \
                        isinstance(b.get("content"), list):
                    # nested blocks: their breakpoints end with this block
                    for k, sub in enumerate(b["content"]):
                        sw = "%s.content.%d" % (bw, k)
                        anthropic_check_block(sub, sw)
                        if "cache_control" in sub:
                            ttl = anthropic_check_cache_control(
                                sub["cache_control"], sw)
                            marks.append((sw, ttl))
                if "cache_control" in b:
                    ttl = anthropic_check_cache_control(b["cache_control"],
                                                        bw)
                    marks.append((bw, ttl))
                if b["type"] == "text":
                    texts.append(b["text"])
                blocks.append(((head if j == 0 else "") +
                               anthropic_block_serial(b), ttl))
            if role == "user":
                last_user = "".join(texts)
        top = req.get("cache_control")
        if top is not None:
            ttl = anthropic_check_cache_control(top, "cache_control")
            marks.append(("cache_control", ttl))
            # automatic caching: the breakpoint goes on the last block
            if blocks:
                s, old = blocks[-1]
                if old is not None and old != ttl:
                    raise ApiError(400, "Top-level cache_control has "
                                   "ttl='%s' but the target block already "
                                   "has cache_control with ttl='%s'"
                                   % (ttl, old))
                blocks[-1] = (s, ttl)
        if len(marks) > ANTHROPIC_MAX_BREAKPOINTS:
            raise ApiError(400, "A maximum of %d blocks with cache_control "
                           "may be provided. Found %d."
                           % (ANTHROPIC_MAX_BREAKPOINTS, len(marks)))
        seen_5m = False
        for where, ttl in marks:
            if ttl == "1h" and seen_5m:
                raise ApiError(400, "%s.ttl: a ttl='1h' cache_control block "
                               "must not come after a ttl='5m' cache_control "
                               "block. Note that blocks are processed in the "
                               "following order: `tools`, `system`, "
                               "`messages`." % (where if where ==
                                                "cache_control" else
                                                where + ".cache_control"))
            seen_5m = seen_5m or ttl == "5m"

        # walk the prefix; breakpoints at or above the minimum can cache
        minimum = anthropic_cache_min(model)
        h = hashlib.sha256()
        total = 0
        bounds, bps = [], []
        for s, ttl in blocks:
            data = s.encode("utf-8", "surrogatepass")
            h.update(data)
            total += len(data)
            toks = (total + 3) // 4
            if ttl is not None and toks >= minimum:
                bps.append(len(bounds))
            bounds.append((toks, h.copy().hexdigest(), ttl))
        self.total_tokens = (total + 3) // 4
        read, written = STATE.anthropic_lookup(model, bounds, bps)
        c5 = c1 = 0
        prev = read
        for toks, ttl in written:
            if ttl == "1h":
                c1 += toks - prev
            else:
                c5 += toks - prev
            prev = toks
        self.cache_read = read
        self.cache_5m = c5
        self.cache_1h = c1
        self.input_tokens = self.total_tokens - read - c5 - c1
        self.tool = anthropic_forced_tool(req)
        self.id = "msg_mock_%d" % n
        self.tool_id = "toolu_mock_%d" % n
        self.answer = answer_for(n, last_user)
        self.stop = "tool_use" if self.tool else "end_turn"

    def usage(self, output_tokens):
        return {"input_tokens": self.input_tokens,
                "cache_creation_input_tokens": self.cache_5m + self.cache_1h,
                "cache_read_input_tokens": self.cache_read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": self.cache_5m,
                    "ephemeral_1h_input_tokens": self.cache_1h},
                "output_tokens": output_tokens,
                "service_tier": "standard"}

    def message(self, content, stop, usage):
        return {"id": self.id, "type": "message", "role": "assistant",
                "model": self.model, "content": content,
                "stop_reason": stop, "stop_sequence": None, "usage": usage}

    def mark_length(self):
        super().mark_length()
        self.stop = "max_tokens"

    def output(self, answer):
        return tool_arguments(answer) if self.tool else answer

    def json_body(self, answer):
        if self.tool:
            content = [{"type": "tool_use", "id": self.tool_id,
                        "name": self.tool, "input": {"answer": answer}}]
        else:
            content = [{"type": "text", "text": answer}]
        return self.message(content, self.stop,
                            self.usage(ntokens(self.output(answer))))

    def events(self, answer):
        if self.tool:
            block = {"type": "tool_use", "id": self.tool_id,
                     "name": self.tool, "input": {}}
        else:
            block = {"type": "text", "text": ""}
        ev = [("head", sse(jdump({"type": "message_start",
                                  "message": self.message(
                                      [], None, self.usage(1))}),
                           "message_start")),
              ("head", sse(jdump({"type": "content_block_start", "index": 0,
                                  "content_block": block}),
                           "content_block_start")),
              ("head", sse(jdump({"type": "ping"}), "ping"))]
        for piece in split_deltas(self.output(answer)):
            if self.tool:
                delta = {"type": "input_json_delta", "partial_json": piece}
            else:
                delta = {"type": "text_delta", "text": piece}
            ev.append(("delta", sse(jdump({
                "type": "content_block_delta", "index": 0,
                "delta": delta}), "content_block_delta")))
        ev.append(("tail", sse(jdump({"type": "content_block_stop",
                                      "index": 0}), "content_block_stop")))
        u = self.usage(ntokens(self.output(answer)))
        ev.append(("tail", sse(jdump({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop, "stop_sequence": None},
            "usage": {"input_tokens": u["input_tokens"],
                      "cache_creation_input_tokens":
                          u["cache_creation_input_tokens"],
                      "cache_read_input_tokens": u["cache_read_input_tokens"],
                      "output_tokens": u["output_tokens"]}}),
            "message_delta")))
        ev.append(("end", sse(jdump({"type": "message_stop"}),
                              "message_stop")))
        return ev

    def error_event(self, seq):
        return sse(jdump({"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}}), "error")


# ---------------------------------------------------------------------------
# Redis ownership
# ---------------------------------------------------------------------------


class RespError(Exception):
    pass


def fanout(body):
    """POST /__fanout {"url", "n", "body", "headers"}: n concurrent POSTs to
    url (the gateway under test), released together; the answer counts
    statuses and distinct bodies, so a suite can check single flight."""
    import http.client
    spec = json.loads(body or b"{}")
    url = urlsplit(spec["url"])
    n = max(1, min(int(spec.get("n", 10)), 500))
    payload = spec.get("body", "").encode("utf-8")
    headers = dict(spec.get("headers") or {})
    headers.setdefault("Content-Type", "application/json")
    start = threading.Barrier(n)
    results = [None] * n

    def one(i):
        try:
            c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            start.wait()
            c.request("POST", url.path or "/", payload, headers)
            r = c.getresponse()
            results[i] = (r.status, r.read().decode("utf-8", "replace"),
                          r.getheader("X-LLM-Cache") or "")
            c.close()
        except Exception as e:  # reported, not raised
            results[i] = (0, "error: %s" % e, "")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses, caches = {}, {}
    for st, _, xc in results:
        statuses[str(st)] = statuses.get(str(st), 0) + 1
        caches[xc] = caches.get(xc, 0) + 1
    return {"n": n, "statuses": statuses, "cache": caches,
            "distinct_bodies": len(set(b for _, b, _ in results))}


class RespClient:
    """Minimal blocking RESP2 client for the owned Redis."""

    def __init__(self, port, timeout=2.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise OSError("connection closed by redis")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            raise RespError(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RespError("bad reply line %r" % line[:40])

    def call(self, *args):
        cmd = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            cmd += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(cmd)
        return self.read()


def resp_command(port, *args, timeout=1.0):
    """One command on a fresh connection; the reply, or None on any
    failure (refused, timeout, error reply)."""
    try:
        with RespClient(port, timeout) as c:
            return c.call(*args)
    except (OSError, RespError, ValueError):
        return None


def dump_escape(b):
    """One-line text for a Redis value: valid UTF-8 kept; backslash,
    control characters and invalid bytes escaped (\\\\, \\n, \\xNN)."""
    s = b.decode("utf-8", "surrogateescape") if isinstance(b, bytes) \
        else str(b)
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif 0xdc80 <= o <= 0xdcff:
            out.append("\\x%02x" % (o - 0xdc00))
        elif o < 0x20 or o == 0x7f:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


def redis_dump(port, match="*", db=0):
    """Every key as `key<TAB>ttl<TAB>value`, sorted by key; ttl in seconds
    (-1: none).  Sets, hashes, lists and sorted sets list their members
    sorted (hash as field=value, zset as member:score), space-separated."""
    with RespClient(port, 5.0) as c:
        if db:
            c.call("SELECT", str(db))
        keys, cursor = set(), b"0"
        while True:
            cursor, batch = c.call("SCAN", cursor, "MATCH", match,
                                   "COUNT", "1000")
            keys.update(batch)
            if cursor == b"0":
                break
        lines = []
        for k in sorted(keys):
            t = c.call("TYPE", k)
            ttl = c.call("TTL", k)
            if ttl == -2:
                continue
            if t == b"string":
                v = dump_escape(c.call("GET", k) or b"")
            elif t == b"set":
                v = " ".join(sorted(dump_escape(m)
                                    for m in c.call("SMEMBERS", k)))
            elif t == b"hash":
                a = c.call("HGETALL", k)
                v = " ".join(sorted("%s=%s" % (dump_escape(a[i]),
                                               dump_escape(a[i + 1]))
                                    for i in range(0, len(a), 2)))
            elif t == b"list":
                v = " ".join(dump_escape(m)
                             for m in c.call("LRANGE", k, "0", "-1"))
            elif t == b"zset":
                a = c.call("ZRANGE", k, "0", "-1", "WITHSCORES")
                v = " ".join("%s:%s" % (dump_escape(a[i]),
                                        dump_escape(a[i + 1]))
                             for i in range(0, len(a), 2))
            else:
                v = "<%s>" % dump_escape(t)
            lines.append("%s\t%d\t%s\n" % (dump_escape(k), ttl, v))
        return "".join(lines)


def set_pdeathsig():
    """In the child: die with the process that started it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RedisOwner:
    """Owns one redis-server.  All process operations run on one long-lived
    thread, so PR_SET_PDEATHSIG (bound to the forking thread) stays armed
    until the mock itself exits."""

    def __init__(self, port, binary):
        self.port = port
        self.binary = binary
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="llmcache-mock-redis-")
        self.jobs = queue.Queue()
        t = threading.Thread(target=self.loop, daemon=True)
        t.start()

    def loop(self):
        while True:
            fn, box, done = self.jobs.get()
            try:
                box.append(fn())
            except Exception as e:  # reported to the caller
                box.append(e)
            done.set()

    def call(self, fn):
        box, done = [], threading.Event()
        self.jobs.put((fn, box, done))
        done.wait()
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def wait_pong(self, timeout=10.0):
        """Wait until our own redis-server answers (another server already
        on the port would answer PING too: compare process_id)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s (port %d "
                                   "busy?)" % (self.proc.returncode,
                                               self.port))
            if resp_command(self.port, "PING", timeout=0.5) == b"PONG":
                info = resp_command(self.port, "INFO", "server") or b""
                if b"process_id:%d\r\n" % self.proc.pid in info:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server on port %d did not answer PING"
                           % self.port)

    def _start(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)   # in case it was paused
            self.wait_pong()
            return "ok"
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--dir", self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd=self.dir,
            preexec_fn=set_pdeathsig)
        self.wait_pong()
        return "ok"

    def _stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        # the port must be free (no listener) before we say ok
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.02)
        return "ok"

    def _signal(self, sig, state):
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("redis-server is not running")
        os.kill(self.proc.pid, sig)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                with open("/proc/%d/stat" % self.proc.pid) as f:
                    st = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if st in state:
                break
            time.sleep(0.005)
        if sig == signal.SIGCONT:
            self.wait_pong()
        return "ok"

    def _flush(self):
        r = resp_command(self.port, "FLUSHALL", timeout=2)
        if r != b"OK":
            raise RuntimeError("FLUSHALL failed: %r" % (r,))
        return "ok"

    def start(self):
        return self.call(self._start)

    def stop(self):
        return self.call(self._stop)

    def pause(self):
        return self.call(lambda: self._signal(signal.SIGSTOP, "Tt"))

    def resume(self):
        return self.call(lambda: self._signal(signal.SIGCONT, "RSD"))

    def flush(self):
        return self.call(self._flush)

    def kill_now(self):
        """From a signal handler or exit path: no queue, just kill."""
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


class BadRedisHandler(socketserver.BaseRequestHandler):
    """Answers every RESP command (array or inline) with an error."""

    def handle(self):
        buf = b""
        sock = self.request
        while True:
            try:
                d = sock.recv(65536)
            except OSError:
                return
            if not d:
                return
            buf += d
            out = b""
            while True:
                n, buf = resp_take_command(buf)
                if n is None:
                    break
                out += b"-ERR mock failure\r\n"
            if out:
                try:
                    sock.sendall(out)
                except OSError:
                    return


def resp_take_command(buf):
    """Parse one complete command from buf.  Returns (True, rest) or
    (None, buf) when more bytes are needed."""
    if not buf:
        return None, buf
    if buf[:1] != b"*":
        i = buf.find(b"\n")
        if i < 0:
            return None, buf
        return True, buf[i + 1:]
    i = buf.find(b"\r\n")
    if i < 0:
        return None, buf
    try:
        count = int(buf[1:i])
    except ValueError:
        return True, buf[i + 2:]
    pos = i + 2
    for _ in range(max(count, 0)):
        j = buf.find(b"\r\n", pos)
        if j < 0:
            return None, buf
        if buf[pos:pos + 1] != b"$":
            # not a bulk string: treat the line as the element
            pos = j + 2
            continue
        try:
            ln = int(buf[pos + 1:j])
        except ValueError:
            return True, buf[j + 2:]
        pos = j + 2
        if ln >= 0:
            if len(buf) < pos + ln + 2:
                return None, buf
            pos += ln + 2
    return True, buf[pos:]


class BadRedisServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

PROVIDER_PATHS = {
    "/v1/chat/completions": "openai",
    "/v1/completions": "openai",
    "/v1/responses": "openai",
    "/v1/embeddings": "openai",
    "/v1/messages": "anthropic",
}


class Knobs:
    def __init__(self, headers):
        def num(name):
            v = headers.get(name)
            if v is None or v.strip() == "":
                return None
            try:
                return int(v.strip())
            except ValueError:
                return None
        self.status = num("x-mock-status")
        self.delay_ms = num("x-mock-delay-ms")
        self.reset_after = num("x-mock-reset-after")
        self.body_size = num("x-mock-body-size")
        self.content_type = headers.get("x-mock-content-type")
        self.gzip = (headers.get("x-mock-content-encoding") or "") \
            .strip().lower() == "gzip"
        self.stream_error = (headers.get("x-mock-stream-error") or "") \
            .strip() not in ("", "0")
        self.stream_truncate = (headers.get("x-mock-stream-truncate") or "") \
            .strip() not in ("", "0")
        self.stream_delay_ms = num("x-mock-stream-delay-ms") or 0
        self.stream_chunk_bytes = num("x-mock-stream-chunk-bytes") or 0
        self.stream_crlf = (headers.get("x-mock-stream-crlf") or "") \
            .strip() not in ("", "0")
        self.stream_comments = (headers.get("x-mock-stream-comments") or
                                "").strip() not in ("", "0")
        self.strict = (headers.get("x-mock-strict") or "").strip() \
            not in ("", "0")
        self.raw_body = headers.get("x-mock-raw-body")
        self.finish = (headers.get("x-mock-finish") or "").strip().lower()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llmcache-mock/1.0"
    sys_version = ""

    def log_message(self, fmt, *args):
        if VERBOSE:
            sys.stderr.write("mock: %s\n" % (fmt % args))

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    # -- plumbing --

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = b""
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                body += self.rfile.read(size)
                self.rfile.readline(65537)
            return body
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def header_map(self):
        out = {}
        for k, v in self.headers.items():
            k = k.lower()
            out[k] = out[k] + ", " + v if k in out else v
        return out

    def chunked(self):
        return self.request_version != "HTTP/1.0"

    def start(self, status, ctype, length=None, extra=None, gz=False):
        """Status line and headers.  length None: a stream, chunked for
        HTTP/1.1 clients, delimited by close for HTTP/1.0 ones."""
        self.send_response(status, REASONS.get(status))
        self.send_header("Content-Type", ctype)
        if gz:
            self.send_header("Content-Encoding", "gzip")
        if length is not None:
            self.send_header("Content-Length", str(length))
        elif self.chunked():
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def send_simple(self, status, body, ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.start(status, ctype, len(body))
        self.wfile.write(body)
        self.wfile.flush()

    def reset_connection(self):
        """Abort with RST: SO_LINGER 0 and close every reference."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass

    # -- routing --

    def dispatch(self):
        url = urlsplit(self.path)
        path = url.path
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send_simple(400, "bad request body\n")
            return
        if path.startswith("/__"):
            self.control(path, parse_qs(url.query), body)
            return
        kind = PROVIDER_PATHS.get(path)
        if kind is None:
            self.send_simple(404, jdump(openai_error_body(
                404, "Invalid URL (%s %s)" % (self.command, path),
                "invalid_request_error")), "application/json")
            return
        self.provider(path, kind, body)

    def control(self, path, query, body):
        owner = self.server.redis_owner
        try:
            if path == "/__health":
                return self.send_simple(200, "ok")
            if path == "/__fanout":
                return self.send_simple(200, jdump(fanout(body)),
                                        "application/json")
            if path == "/__sleep":
                # lets a suite wait (e.g. for a TTL) through plain requests
                ms = int(query.get("ms", ["0"])[0])
                time.sleep(min(max(ms, 0), 60000) / 1000.0)
                return self.send_simple(200, "ok")
            if path == "/__reset":
                STATE.reset()
                return self.send_simple(200, "ok")
            if path == "/__sent":
                # the body bytes sent for provider call n, de-chunked: up
                # to the reset for X-Mock-Reset-After, the SSE text as it
                # went out for streams
                try:
                    n = int(query.get("n", [""])[0])
                except ValueError:
                    return self.send_simple(400, "n must be a number\n")
                b = STATE.get_sent(n)
                if b is None:
                    return self.send_simple(404, "")
                return self.send_simple(200, b, "application/octet-stream")
            if path == "/__calls":
                p = query.get("path", [None])[0]
                return self.send_simple(200, "%d" % STATE.count(p))
            if path == "/__last":
                return self.control_last(query)
            if path == "/__requests":
                with STATE.lock:
                    hist = list(STATE.history)
                p = query.get("path", [None])[0]
                if p is not None:
                    hist = [h for h in hist
                            if h["path"].split("?", 1)[0] == p]
                return self.send_simple(200, jdump(hist), "application/json")
            if path.startswith("/__redis/"):
                if owner is None:
                    return self.send_simple(409, "no redis owned "
                                            "(start with --redis-port)\n")
                action = path[len("/__redis/"):]
                if action == "dump":
                    match = query.get("match", ["*"])[0]
                    db = int(query.get("db", ["0"])[0])
                    return self.send_simple(200, redis_dump(owner.port,
                                                            match, db))
                fn = {"stop": owner.stop, "start": owner.start,
                      "pause": owner.pause, "resume": owner.resume,
                      "flush": owner.flush}.get(action)
                if fn is None:
                    return self.send_simple(404, "unknown redis action\n")
                return self.send_simple(200, fn())
        except Exception as e:
            return self.send_simple(500, "error: %s\n" % e)
        return self.send_simple(404, "unknown control endpoint\n")

    def control_last(self, query):
        """The last provider request: JSON {method, path, headers, body},
        or one part of it as plain text with ?part=body|method|path and
        ?part=header&name=NAME."""
        with STATE.lock:
            last, raw = STATE.last, STATE.last_raw
        part = query.get("part", [None])[0]
        if last is None:
            return self.send_simple(404, "" if part else "{}",
                                    "text/plain" if part else
                                    "application/json")
        if part is None:
            return self.send_simple(200, jdump(last), "application/json")
        if part == "body":
            return self.send_simple(200, raw, "application/octet-stream")
        if part in ("method", "path"):
            return self.send_simple(200, last[part])
        if part == "headers":
            return self.send_simple(200, jdump(last["headers"]),
                                    "application/json")
        if part == "header":
            name = (query.get("name", [""])[0]).lower()
            if name in last["headers"]:
                return self.send_simple(200, last["headers"][name])
            return self.send_simple(404, "")
        return self.send_simple(400, "unknown part\n")

    def provider(self, path, kind, body):
        headers = self.header_map()
        self.call_n = n = STATE.begin_call({
            "method": self.command, "path": self.path, "headers": headers,
            "body": body.decode("utf-8", "replace")}, body)
        knobs = Knobs(headers)
        if knobs.delay_ms:
            time.sleep(knobs.delay_ms / 1000.0)
        rid = "req_mock_%d" % n
        extra = {"X-Mock-Call": str(n)}
        if kind == "openai":
            extra["x-request-id"] = rid
            extra["openai-processing-ms"] = "1"
        else:
            extra["request-id"] = rid

        def fail(status, err=None):
            if kind == "openai":
                obj = openai_error_body(status, err.message if err else None,
                                        err.etype if err else None,
                                        err.param if err else None,
                                        err.code if err else None)
            else:
                obj = anthropic_error_body(status,
                                           err.message if err else None,
                                           err.etype if err else None, n)
            if status == 429:
                extra["retry-after"] = "1"
            self.send_payload(status, jdump(obj).encode("utf-8"),
                              "application/json", extra, knobs)

        if self.command != "POST":
            return fail(405, ApiError(405, "Method %s not allowed for %s"
                                      % (self.command, path),
                                      "invalid_request_error"))
        if knobs.status is not None and not 200 <= knobs.status < 300:
            return fail(knobs.status)
        status = knobs.status or 200
        if knobs.raw_body is not None:
            # header values arrive latin-1 decoded: restore the bytes
            return self.send_payload(status,
                                     knobs.raw_body.encode("latin-1",
                                                           "replace"),
                                     "application/json", extra, knobs)
        try:
            if kind == "openai":
                if knobs.strict or self.server.strict:
                    auth = headers.get("authorization", "")
                    if not auth.lower().startswith("bearer ") or \
                            not auth[7:].strip():
                        raise ApiError(401, "You didn't provide an API key. "
                                       "You need to provide your API key in "
                                       "an Authorization header using "
                                       "Bearer auth (i.e. Authorization: "
                                       "Bearer YOUR_KEY).",
                                       "invalid_request_error")
                req = parse_openai_json(body)
                if path == "/v1/embeddings":
                    data = jdump(embeddings_reply(n, req)).encode("utf-8")
                    return self.send_payload(200, data, "application/json",
                                             extra, knobs)
                cls = {"/v1/chat/completions": ChatReply,
                       "/v1/completions": CompletionReply,
                       "/v1/responses": ResponsesReply}[path]
                reply = cls(n, req)
            else:
                req = parse_anthropic_json(body)
                reply = MessagesReply(n, req, headers,
                                      knobs.strict or self.server.strict)
            if knobs.finish == "length":
                reply.mark_length()
            answer = reply.answer
            if knobs.body_size:
                if reply.stream:
                    size = sum(len(b) for _, b in reply.events(answer))
                else:
                    size = len(jdump(reply.json_body(answer)).encode())
                if size < knobs.body_size:
                    answer += " " + pad_text(knobs.body_size - size)
            if reply.stream:
                events = reply.events(answer)
            else:
                data = jdump(reply.json_body(answer)).encode("utf-8")
        except ApiError as e:
            return fail(e.status, e)
        except Exception:
            # a mock bug: say so loudly rather than drop the connection
            traceback.print_exc()
            sys.stderr.flush()
            return fail(500, ApiError(500, "mock internal error (see the "
                                      "mock's stderr)", None))
        if not reply.stream:
            return self.send_payload(status, data, "application/json",
                                     extra, knobs)
        self.send_stream(status, reply, events, extra, knobs)

    def send_payload(self, status, data, ctype, extra, knobs):
        ctype = knobs.content_type or ctype
        if status in (204, 304):
            # no body, no Content-Length (RFC 9110)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.flush()
            return
        if knobs.gzip:
            c = zlib.compressobj(6, zlib.DEFLATED, 31)
            data = c.compress(data) + c.flush()
        if knobs.reset_after is not None:
            self.start(status, ctype, len(data), extra, knobs.gzip)
            self.wfile.write(data[:max(knobs.reset_after, 0)])
            STATE.add_sent(self.call_n, data[:max(knobs.reset_after, 0)])
            return self.reset_connection()
        self.start(status, ctype, len(data), extra, knobs.gzip)
        self.wfile.write(data)
        STATE.add_sent(self.call_n, data)
        self.wfile.flush()

    def write_chunk(self, data):
        if not data:
            return
        STATE.add_sent(getattr(self, "call_n", None), data)
        if self.chunked():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.wfile.write(data)

    def send_stream(self, status, reply, events, extra, knobs):
        if knobs.stream_error:
            deltas = [i for i, (k, _) in enumerate(events) if k == "delta"]
            cut = deltas[min(1, len(deltas) - 1)] + 1 if deltas else 1
            events = events[:cut] + [("error", reply.error_event(cut))]
        elif knobs.stream_truncate:
            events = [e for e in events if e[0] != "end"]
        # wire variations a robust SSE reader must accept
        if knobs.stream_comments:
            events = [(k, b": keep-alive\n\n" + b) for k, b in events]
        if knobs.stream_crlf:
            events = [(k, b.replace(b"\n", b"\r\n")) for k, b in events]
        if knobs.stream_chunk_bytes > 0:
            data = b"".join(b for _, b in events)
            n = knobs.stream_chunk_bytes
            events = [("raw", data[i:i + n]) for i in range(0, len(data), n)]
        ctype = knobs.content_type or "text/event-stream; charset=utf-8"
        extra = dict(extra)
        extra["Cache-Control"] = "no-cache"
        gz = zlib.compressobj(6, zlib.DEFLATED, 31) if knobs.gzip else None
        if knobs.reset_after is not None:
            data = b"".join(b for _, b in events)
            if gz:
                data = gz.compress(data) + gz.flush()
            self.start(status, ctype, None, extra, knobs.gzip)
            self.write_chunk(data[:max(knobs.reset_after, 0)])
            return self.reset_connection()
        self.start(status, ctype, None, extra, knobs.gzip)
        self.wfile.flush()
        try:
            for i, (_, data) in enumerate(events):
                if i and knobs.stream_delay_ms:
                    time.sleep(knobs.stream_delay_ms / 1000.0)
                if gz:
                    data = gz.compress(data) + gz.flush(zlib.Z_SYNC_FLUSH)
                self.write_chunk(data)
                self.wfile.flush()
            if gz:
                self.write_chunk(gz.flush())
            if self.chunked():
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if knobs.stream_truncate:
            self.close_connection = True


def pad_text(nbytes):
    words = []
    total = 0
    i = 0
    while total < nbytes:
        w = "pad%d" % i
        words.append(w)
        total += len(w) + 1
        i += 1
    return " ".join(words)


class MockHTTPServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def get_request(self):
        conn, addr = super().get_request()
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return conn, addr

    def handle_error(self, request, client_address):
        if VERBOSE:
            super().handle_error(request, client_address)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description="Mock OpenAI/Anthropic "
                                 "providers for the test suites.")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--redis-port", type=int)
    ap.add_argument("--redis-server", default="redis-server")
    ap.add_argument("--bad-redis-port", type=int)
    ap.add_argument("--strict", action="store_true",
                    help="require credentials (Authorization: Bearer for "
                    "OpenAI paths; x-api-key and anthropic-version for "
                    "/v1/messages); per request: X-Mock-Strict: 1")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose

    owner = None
    cleaned = threading.Lock()

    def cleanup():
        if cleaned.acquire(blocking=False) and owner is not None:
            owner.kill_now()

    def on_signal(signum, frame):
        cleanup()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    ppid = os.getppid()

    def watch_parent():
        while True:
            time.sleep(0.5)
            if os.getppid() != ppid:
                cleanup()
                os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()

    try:
        if ":" in args.host:
            MockHTTPServer.address_family = socket.AF_INET6
        httpd = MockHTTPServer((args.host, args.port), Handler)
        httpd.strict = args.strict
        httpd.redis_owner = None
        if args.bad_redis_port:
            bad = BadRedisServer(("127.0.0.1", args.bad_redis_port),
                                 BadRedisHandler)
            threading.Thread(target=bad.serve_forever, daemon=True).start()
        if args.redis_port:
            owner = RedisOwner(args.redis_port, args.redis_server)
            httpd.redis_owner = owner
            owner.start()
    except Exception as e:
        sys.stderr.write("mock: startup failed: %s\n" % e)
        cleanup()
        return 1

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
