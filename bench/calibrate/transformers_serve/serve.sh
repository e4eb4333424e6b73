#!/usr/bin/env bash
# Start `transformers serve` in its own session (setsid), wait for /health, print its pid.
#   bench/calibrate/transformers_serve/serve.sh MODEL PORT LOG [extra transformers serve args...]
# MODEL is what the server is pinned to (a repo id or a folder; a folder named like the repo, run
# from its parent, is served under the repo id). The continuous-batching logger (cache size, max
# batch tokens) is turned on at INFO: the same `transformers serve` entry point, with logging set up.
# Stop it with: kill -- -"$(cat "$LOG.pid")"
set -euo pipefail
MODEL=${1:?usage: serve.sh MODEL PORT LOG [args...]}
PORT=${2:?port}
LOG=${3:?log file}
shift 3
PY=${PYTHON:-python3}
HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1 setsid "$PY" -c '
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger("ContinuousBatchingLogger").setLevel(logging.INFO)
from transformers.cli.transformers import main
sys.argv[0] = "transformers"
sys.exit(main())' serve "$MODEL" --host 127.0.0.1 --port "$PORT" "$@" > "$LOG" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$LOG.pid"
for _ in $(seq 1 600); do
    if "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; then
        echo "transformers serve pid $PID ready on http://127.0.0.1:$PORT (log $LOG)"
        exit 0
    fi
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "transformers serve exited; log:" >&2; tail -40 "$LOG" >&2; exit 1
    fi
    sleep 0.5
done
echo "transformers serve not healthy after 300 s; log:" >&2; tail -40 "$LOG" >&2
exit 1
