"""Loopback servers that speak the real Ollama, OpenAI (vLLM) and llama-server wire formats.

FakeOpenAI(flavour="llamacpp") answers like llama.cpp's llama-server (tools/server/README.md):
/v1/models with `meta` and no max_model_len, /props (default_generation_settings.n_ctx is one
slot's context, total_slots is -np), /slots (one entry per slot with its n_ctx), /health, and HTTP
400 "request (N tokens) exceeds the available context size (M tokens)" for a prompt that does not
fit its slot: `-c 8192 -np 4` is n_ctx=8192, parallel=4, 2,048 tokens a slot.

Both imitate llama.cpp's prompt cache the way the real servers behave: a prompt that shares
a prefix with the previous one only evaluates the new tokens, so a repeated prompt reports a
near-zero prefill. Failure modes are switched per test with `server.mode`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from advisor.errors import ProbeError

GIB = 1024 ** 3


def probe_once(mod, url: str, model: str | None = None, contexts=(512, 2048), seed: int = 1, **client_kw):
    """identify, then probe, with `mod`'s Client (ollama or openai_compat) closed after: a probe run without the cache."""
    with mod.Client(url, **client_kw) as c:
        name, versions = mod.identify(c, model)
        return mod.probe(c, name, contexts=list(contexts), versions=versions, seed=seed)


def failure_line(server, mode: str, probe) -> str:
    """The message `probe(server)` fails with once the fake server switches to `mode`, checked to be one line."""
    server.mode = mode
    with pytest.raises(ProbeError) as e:
        probe(server)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class _Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *a):  # quiet
        pass

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else {}

    def _send(self, code: int, obj, ctype="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class OllamaHandler(_Base):
    def do_GET(self):
        self._route("GET", {})

    def do_POST(self):
        self._route("POST", self._body())

    def _route(self, method, body):
        s = self.server
        s.log.append((method, self.path, body))
        mode = s.mode
        if mode == "not_ollama":
            return self._send(404, b"<html><body>Not Found</body></html>", "text/html")
        if mode == "slow":
            time.sleep(1.0)
        if mode == "truncated" and self.path == "/api/tags":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "500")
            self.end_headers()
            self.wfile.write(b'{"models": [{"name": "qwen')
            self.wfile.flush()
            return  # connection closes short of Content-Length
        if mode == "malformed" and self.path == "/api/tags":
            return self._send(200, b'{"models": [{"name": "qwen2.5:1.5b",', "application/json")
        if self.path == "/api/version":
            return self._send(200, {"version": "0.5.7"})
        if self.path == "/api/tags":
            return self._send(200, {"models": [{"name": n, "model": n, "modified_at": "2025-01-01T00:00:00Z",
                                                "size": s.weights, "digest": "abc123",
                                                "details": {"format": "gguf", "family": "qwen2",
                                                            "families": ["qwen2"], "parameter_size": "1.5B",
                                                            "quantization_level": "Q4_K_M"}} for n in s.models]})
        if self.path == "/api/ps":
            return self._send(200, {"models": [{"name": n, "model": n, "size": s.weights + s.kv_reserved(ctx),
                                                "digest": "abc123", "details": {"format": "gguf"},
                                                "expires_at": "2030-01-01T00:00:00Z",
                                                "size_vram": s.weights + s.kv_reserved(ctx)}
                                               for n, ctx in s.loaded.items()]})
        if self.path == "/api/show":
            if body.get("model") not in s.models:
                return self._send(404, {"error": f"model '{body.get('model')}' not found"})
            return self._send(200, {"modelfile": "FROM qwen", "parameters": "", "template": "{{ .Prompt }}",
                                    "details": {"format": "gguf", "family": "qwen2", "parameter_size": "1.5B",
                                                "quantization_level": "Q4_K_M"},
                                    "model_info": {"general.architecture": "qwen2", "general.parameter_count": 1543714304,
                                                   "qwen2.block_count": 28, "qwen2.attention.head_count": 12,
                                                   "qwen2.attention.head_count_kv": 2, "qwen2.context_length": 32768,
                                                   "qwen2.embedding_length": 1536}})
        if self.path == "/api/generate":
            if mode == "http_error":
                return self._send(500, {"error": "llama runner process has terminated: exit status 2"})
            name = body.get("model")
            if name not in s.models:
                return self._send(404, {"error": f"model '{name}' not found, try pulling it first"})
            ctx = (body.get("options") or {}).get("num_ctx", 2048)
            cold = s.loaded.get(name) != ctx
            s.loaded[name] = ctx
            prompt = body.get("prompt", "")
            if prompt == "":
                s.last_tokens = []
                return self._send(200, {"model": name, "created_at": "2025-01-01T00:00:00Z", "response": "",
                                        "done": True, "done_reason": "load"})
            s.prompts.append(prompt)
            tokens = prompt.split()
            reused = _common_prefix(s.last_tokens, tokens)
            s.last_tokens = tokens
            evaluated = max(len(tokens) - reused, 1)
            first = s.generations_since_load.get(name, 0) == 0 or cold
            s.generations_since_load[name] = s.generations_since_load.get(name, 0) + 1
            prompt_ns = int(evaluated * s.ns_per_prompt_token + (s.cold_ns if first else 0))
            answer = {"model": name, "created_at": "2025-01-01T00:00:00Z", "response": "word " * 32,
                      "done": True, "done_reason": "length", "context": [1, 2, 3],
                      "total_duration": prompt_ns + 32 * s.ns_per_output_token, "load_duration": 1000,
                      "prompt_eval_count": evaluated, "prompt_eval_duration": prompt_ns,
                      "eval_count": 32, "eval_duration": 32 * s.ns_per_output_token}
            if mode == "missing_fields":
                answer.pop("prompt_eval_duration")
            return self._send(200, answer)
        return self._send(404, b"404 page not found", "text/plain")


class OpenAIHandler(_Base):
    def _slot(self, i: int) -> dict:
        s = self.server
        return {"id": i, "id_task": -1, "n_ctx": s.n_ctx // s.parallel, "speculative": False, "is_processing": False,
                "params": {"n_predict": -1, "seed": 4294967295, "temperature": 0.8, "top_k": 40, "top_p": 0.95,
                           "samplers": ["top_k", "top_p", "temperature"], "stream": True},
                "prompt": "", "next_token": {"has_next_token": True, "has_new_line": False, "n_remain": -1,
                                             "n_decoded": 0, "stopping_word": ""}}

    def do_GET(self):
        s = self.server
        s.log.append(("GET", self.path, {}))
        if s.flavour == "llamacpp":
            if self.path == "/v1/models":
                return self._send(200, {"object": "list", "data": [
                    {"id": s.model, "object": "model", "created": 1735142223, "owned_by": "llamacpp",
                     "meta": {"vocab_type": 2, "n_vocab": 151936, "n_ctx_train": 32768, "n_embd": 1536,
                              "n_params": 1543714304, "size": 1117320736}}]})
            if self.path == "/props":
                return self._send(200, {"default_generation_settings": self._slot(0), "total_slots": s.parallel,
                                        "model_path": "/models/" + s.model, "chat_template": "{{ messages }}",
                                        "modalities": {"vision": False}, "build_info": "b6000-abcdef0"})
            if self.path == "/slots":
                return self._send(200, [self._slot(i) for i in range(s.parallel)])
            if self.path == "/health":
                return self._send(200, {"status": "ok"})
            return self._send(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
        if self.path == "/v1/models":
            if s.mode == "malformed_models":
                return self._send(200, b"{\"object\": \"list\", \"data\": [", "application/json")
            return self._send(200, {"object": "list", "data": [
                {"id": s.model, "object": "model", "created": 1700000000, "owned_by": "vllm",
                 "root": s.model, "parent": None, "max_model_len": s.max_model_len, "permission": []}]})
        if self.path == "/version":
            return self._send(200, {"version": "0.6.3"})
        if self.path == "/metrics":
            text = ('# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n'
                    '# TYPE vllm:cache_config_info gauge\n'
                    'vllm:cache_config_info{block_size="16",cache_dtype="auto",gpu_memory_utilization="0.9",'
                    'num_cpu_blocks="9362",num_gpu_blocks="27000"} 1.0\n'
                    '# TYPE vllm:gpu_cache_usage_perc gauge\n'
                    'vllm:gpu_cache_usage_perc{model_name="m"} 0.0\n'
                    'vllm:num_requests_running{model_name="m"} 0.0\n')
            return self._send(200, text.encode(), "text/plain; version=0.0.4")
        return self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        s = self.server
        body = self._body()
        s.log.append(("POST", self.path, body))
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions") or (s.mode == "chat_only" and not chat):
            return self._send(404, {"detail": "Not Found"})
        if s.mode == "http_error":
            return self._send(400, {"object": "error", "message": "This model's maximum context length is 32768 tokens",
                                    "type": "BadRequestError", "code": 400})
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        s.prompts.append(prompt)
        tokens = prompt.split()
        if s.flavour == "llamacpp":
            n_prompt = int(len(tokens) * s.tokens_per_word) + s.extra_tokens + (12 if chat else 0)
            slot_ctx = s.n_ctx // s.parallel
            if n_prompt >= slot_ctx:
                s.rejected.append(n_prompt)
                return self._send(400, {"error": {
                    "code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": n_prompt, "n_ctx": slot_ctx,
                    "message": f"request ({n_prompt} tokens) exceeds the available context size ({slot_ctx} tokens), "
                               "try increasing it"}})
        else:
            n_prompt = len(tokens)
        reused = _common_prefix(s.last_tokens, tokens)
        s.last_tokens = tokens
        evaluated = max(len(tokens) - reused, 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if s.mode == "truncated_stream":
            self.wfile.write(b'data: {"id": "cmpl-1", "object": "text_completion", "choi')
            self.wfile.flush()
            return
        time.sleep(s.base_s + evaluated * s.s_per_prompt_token)  # the prefill
        n_out = body.get("max_tokens", 16)
        for i in range(n_out):
            if i:
                time.sleep(s.s_per_output_token)
            if s.mode == "malformed_stream" and i == 1:
                self.wfile.write(b"data: {not json}\n\n")
                self.wfile.flush()
                return
            if chat:
                chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": s.model,
                         "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}]}
            else:
                chunk = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": s.model,
                         "choices": [{"index": 0, "text": " tok", "logprobs": None, "finish_reason": None}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        if (body.get("stream_options") or {}).get("include_usage") and s.usage:
            usage = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": s.model, "choices": [],
                     "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                               "total_tokens": n_prompt + n_out}}
            self.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeOllama(_Server):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), OllamaHandler)
        self.mode = ""
        self.log: list = []
        self.prompts: list[str] = []
        self.models = ["qwen2.5:1.5b", "llama3.2:1b"]
        self.loaded: dict[str, int] = {}
        self.generations_since_load: dict[str, int] = {}
        self.last_tokens: list[str] = []
        self.weights = int(1.1 * GIB)
        self.kv_per_token = 28672  # f16 KV of qwen2.5-1.5b: 2 x 28 x 2 x 128 x 2 bytes
        self.parallel = 1
        self.ns_per_prompt_token = 150_000  # 0.15 ms per prompt token
        self.ns_per_output_token = 8_000_000
        self.cold_ns = 400_000_000

    def kv_reserved(self, num_ctx: int) -> int:
        return self.kv_per_token * num_ctx * self.parallel


class FakeOpenAI(_Server):
    def __init__(self, flavour: str = "vllm", n_ctx: int = 8192, parallel: int = 4):
        super().__init__(("127.0.0.1", 0), OpenAIHandler)
        self.flavour = flavour  # "vllm" | "llamacpp"
        self.n_ctx, self.parallel = n_ctx, parallel  # llama-server -c and -np
        self.tokens_per_word = 1.0  # llama-server: how its tokenizer counts the probe's words
        self.extra_tokens = 5       # BOS and the nonce's pieces
        self.usage = True           # answer stream_options.include_usage
        self.rejected: list[int] = []
        self.mode = ""
        self.log: list = []
        self.prompts: list[str] = []
        self.last_tokens: list[str] = []
        self.model = "Qwen/Qwen2.5-1.5B-Instruct"
        self.max_model_len = 32768
        self.base_s = 0.004
        self.s_per_prompt_token = 10e-6  # 2,048 tokens -> ~20 ms of prefill
        self.s_per_output_token = 0.002


def serve(server: _Server):
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return server


def stop(server: _Server) -> None:
    server.shutdown()
    server.server_close()
