-- wrk script for bench/faults: POSTs chat completions over a small set of
-- prompts (so most are hits once stored) and counts, per thread, the
-- responses by X-LLM-Cache and the non-2xx ones; done() prints one line:
--   RESULT requests non2xx HIT MISS SEMANTIC BYPASS other
counts = {}         -- global: done() reads it from each thread
local threads = {}
local n = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-faults"

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    counts = { total = 0, non2xx = 0, HIT = 0, MISS = 0, SEMANTIC = 0,
               BYPASS = 0, other = 0 }
end

-- n in letters: "bc", "bd", ... (digits would trip the numbers guard)
local function letters(i)
    local s = ""
    repeat
        s = string.char(97 + i % 26) .. s
        i = math.floor(i / 26)
    until i == 0
    return s
end

local unique = os.getenv("FAULTS_UNIQUE")

function request()
    n = n + 1
    local q
    if unique then
        -- a new question each time: every one goes past the exact lookup
        q = "tell me about the topic " .. letters(n + 26 * 26 * math.random(1, 1000))
    else
        q = "fault bench question " .. (n % 20)
    end
    local body = '{"model":"gpt-4o","messages":[{"role":"user","content":"'
        .. q .. '"}]}'
    return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
    counts.total = counts.total + 1
    if status < 200 or status > 299 then
        counts.non2xx = counts.non2xx + 1
    end
    local s = headers["X-LLM-Cache"]
    if s == nil or counts[s] == nil or s == "total" or s == "non2xx" then
        counts.other = counts.other + 1
    else
        counts[s] = counts[s] + 1
    end
end

function done(summary, latency, requests)
    local t = { total = 0, non2xx = 0, HIT = 0, MISS = 0, SEMANTIC = 0,
                BYPASS = 0, other = 0 }
    for _, thread in ipairs(threads) do
        local c = thread:get("counts")
        for k, v in pairs(c) do
            t[k] = t[k] + v
        end
    end
    -- connection errors and timeouts are failures too
    local errs = summary.errors.connect + summary.errors.read
        + summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT %d %d %d %d %d %d %d\n", t.total,
        t.non2xx + errs, t.HIT, t.MISS, t.SEMANTIC, t.BYPASS, t.other))
end
