#!/bin/sh
# Regenerates the captured fixtures from the provider mock:
#     python3 t/mock/provider.py --port 18977 &   (then)
#     sh t/data/sse/capture.sh 18977
# Each NAME.sse is a streamed answer, NAME.json the mock's non-streamed
# answer to the same request (the call counter reset before each, so both
# carry the same text and ids).
set -e
P=${1:-18977}
D=$(dirname "$0")
U=http://127.0.0.1:$P

# the streamed form of a request; OpenAI chat and completions also ask for
# the usage chunk
streamed() {    # path body
    case $1 in
    */responses|*/messages) extra='"stream":true,' ;;
    *) extra='"stream":true,"stream_options":{"include_usage":true},' ;;
    esac
    printf '%s' "$2" | sed "s/^{/{$extra/"
}

cap() {     # name path body [header...]
    name=$1 path=$2 body=$3
    shift 3
    curl -sf -XPOST $U/__reset >/dev/null
    curl -sfN "$@" $U$path -d "$(streamed $path "$body")" > "$D/$name.sse"
    curl -sf -XPOST $U/__reset >/dev/null
    curl -sf "$@" $U$path -d "$body" > "$D/$name.json"
}

sse() {     # name path body [header...]: the stream alone
    name=$1 path=$2 body=$3
    shift 3
    curl -sf -XPOST $U/__reset >/dev/null
    curl -sfN "$@" $U$path -d "$(streamed $path "$body")" > "$D/$name.sse"
}

CHAT='{"model":"gpt-4o","messages":[{"role":"user","content":"what is SSE, in a few words?"}]}'
TOOLS='"tools":[{"type":"function","function":{"name":"reply","parameters":{"type":"object","properties":{"answer":{"type":"string"}}}}}]'
CHAT_TOOL='{"model":"gpt-4o","messages":[{"role":"user","content":"call the tool \"now\""}],'$TOOLS',"tool_choice":"required"}'
CHAT_N='{"model":"gpt-4o","n":2,"messages":[{"role":"user","content":"two answers, één"}]}'
COMPL='{"model":"gpt-3.5-turbo-instruct","prompt":"once upon a time"}'
RESP='{"model":"gpt-4o","input":"hello responses"}'
RTOOLS='"tools":[{"type":"function","name":"reply","parameters":{"type":"object","properties":{"answer":{"type":"string"}}}}]'
RESP_TOOL='{"model":"gpt-4o","input":"use the tool",'$RTOOLS',"tool_choice":"required"}'
MSG='{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"hello claude ☃"}]}'
ATOOLS='"tools":[{"name":"reply","input_schema":{"type":"object","properties":{"answer":{"type":"string"}}}}]'
MSG_TOOL='{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"use the tool"}],'$ATOOLS',"tool_choice":{"type":"any"}}'

cap chat /v1/chat/completions "$CHAT"
cap chat-tool /v1/chat/completions "$CHAT_TOOL"
cap chat-n2 /v1/chat/completions "$CHAT_N"
cap chat-length /v1/chat/completions "$CHAT" -H 'X-Mock-Finish: length'
cap completions /v1/completions "$COMPL"
cap responses /v1/responses "$RESP"
cap responses-tool /v1/responses "$RESP_TOOL"
cap messages /v1/messages "$MSG"
cap messages-tool /v1/messages "$MSG_TOOL"
cap messages-length /v1/messages "$MSG" -H 'X-Mock-Finish: length'

# wire variations: CRLF line ends and keep-alive comments
sse chat-crlf /v1/chat/completions "$CHAT" -H 'X-Mock-Stream-CRLF: 1' \
    -H 'X-Mock-Stream-Comments: 1'
sse messages-crlf /v1/messages "$MSG" -H 'X-Mock-Stream-CRLF: 1' \
    -H 'X-Mock-Stream-Comments: 1'

# streams that must not be stored
for k in chat:/v1/chat/completions:CHAT completions:/v1/completions:COMPL \
         responses:/v1/responses:RESP messages:/v1/messages:MSG \
         chat-tool:/v1/chat/completions:CHAT_TOOL \
         messages-tool:/v1/messages:MSG_TOOL
do
    base=${k%%:*} rest=${k#*:}
    path=${rest%%:*} var=${rest#*:}
    eval body=\$$var
    sse $base-error $path "$body" -H 'X-Mock-Stream-Error: 1'
    sse $base-truncated $path "$body" -H 'X-Mock-Stream-Truncate: 1'
done
sse responses-incomplete /v1/responses "$RESP" -H 'X-Mock-Finish: length'
