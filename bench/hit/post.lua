-- wrk script: POST one chat completion body (the same for every request)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = os.getenv("BENCH_BODY") or
    '{"model":"gpt-4o","messages":[{"role":"user","content":"파스타 레시피 좀 알려주세요"}]}'
