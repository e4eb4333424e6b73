#!/usr/bin/env bash
# Start llama-server on a GGUF in its own session (setsid), wait for /health, print its pid.
#   bench/calibrate/llamacpp/serve.sh MODEL.gguf [PORT] [extra llama-server args...]
# Defaults: -c 8192 -np 4 -ngl 99 -fa on, 127.0.0.1:8080; log in /tmp/llama-server.log.
# Needs LLAMA_BIN / LD_LIBRARY_PATH from bench/calibrate/llamacpp/device_env.sh.
# Stop it with: kill "$(cat /tmp/llama-server.pid)"
set -euo pipefail
MODEL=${1:?usage: serve.sh MODEL.gguf [PORT] [args...]}
PORT=${2:-8080}
shift $(( $# >= 2 ? 2 : 1 ))
BIN=${LLAMA_BIN:-/tmp/llama/bin}
setsid "$BIN/llama-server" -m "$MODEL" -c 8192 -np 4 -ngl 99 -fa on \
    --host 127.0.0.1 --port "$PORT" "$@" > /tmp/llama-server.log 2>&1 < /dev/null &
PID=$!
echo "$PID" > /tmp/llama-server.pid
for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$PORT/health" > /dev/null 2>&1 \
       || python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; then
        echo "llama-server pid $PID ready on http://127.0.0.1:$PORT (log /tmp/llama-server.log)"
        exit 0
    fi
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "llama-server exited; log:" >&2; tail -40 /tmp/llama-server.log >&2; exit 1
    fi
    sleep 0.5
done
echo "llama-server not healthy after 120 s; log:" >&2; tail -40 /tmp/llama-server.log >&2
exit 1
