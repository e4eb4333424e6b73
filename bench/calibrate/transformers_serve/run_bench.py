#!/usr/bin/env python3
"""Measure a real `transformers serve --continuous-batching` on the GPU machine.

For each model (random weights of a catalog architecture, built on the machine by make_model.py,
served under its Hugging Face repo id from a folder of that name): start the server (serve.sh),
send one request (the paged cache is sized at the first request), then
  mem       the server process's GPU memory (NVML), the cache the log reports, the device's free memory
  ttft      single streamed requests of ~512 / 2K / 8K prompt tokens, 1 + 3 repetitions, unique prompts
  decode    one stream of 256 tokens, 2 repetitions
  load      N = 1, 4, 16, 64 users in a closed loop (load.py): aggregate and per-user tok/s, TTFT
  probe     `python3 -m advisor probe --backend openai --url ...` (the advisor's own probe)
  mem-peak  the server's memory once the load has run
and again with another --cb-max-memory-percent (memory, and a short load to show it still serves).
Every row is appended to $OUT/rows.jsonl as soon as it is measured; the servers' logs to
$OUT/servers.log.  Steps are skipped once --deadline seconds have passed.

On the GPU machine, from the carried copy of the repository (README.md in this folder):

    python3 -m pip install --no-deps --no-build-isolation -e .      # once: advisor, advisor.knowledge, ...
    python3 -m bench.calibrate.transformers_serve.run_bench --tok /tmp/tok --models qwen2.5-1.5b,llama3.1-8b --deadline 540
    (on a CPU: --device cpu --cb-args "--cb-num-blocks 64" --models tiny)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
OUT = Path(os.environ.get("OUT", "/tmp/out"))
T0 = time.time()
FAMILY_TOK = {"qwen2": "tok-qwen2", "llama": "tok-llama"}


def log(msg: str) -> None:
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    print(line, flush=True)
    with open(OUT / "log.txt", "a") as f:
        f.write(line + "\n")


def emit(row: dict) -> None:
    row = {"t": round(time.time() - T0, 2), **row}
    with open(OUT / "rows.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    log("ROW " + json.dumps(row)[:600])


def nvml() -> dict:
    try:
        import pynvml as nv

        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        procs = {p.pid: p.usedGpuMemory for p in nv.nvmlDeviceGetComputeRunningProcesses(h)}
        out = {"gpu": nv.nvmlDeviceGetName(h), "total_mib": mem.total / 2**20, "used_mib": mem.used / 2**20,
               "free_mib": mem.free / 2**20, "procs_mib": {str(k): (v or 0) / 2**20 for k, v in procs.items()}}
        nv.nvmlShutdown()
        return out
    except Exception as e:  # noqa: BLE001
        return {"nvml_error": repr(e)}


def server_mem(port: int) -> dict:
    from advisor.probes.hardware import server_gpu_memory

    return {"server": server_gpu_memory(port), "device": nvml()}


class Server:
    def __init__(self, a, model_dir: Path, served: str, port: int, extra: list[str]):
        self.a, self.port, self.served = a, port, served
        self.log = Path(f"/tmp/ts-server-{port}.log")
        self.args = ["--continuous-batching", "--dtype", a.dtype, "--attn-implementation", a.attn, *extra,
                     *shlex.split(a.cb_args)]
        if a.device != "auto":
            self.args += ["--device", a.device]
        self.cwd = model_dir
        self.command = "transformers serve " + shlex.join([served, *self.args])

    def start(self) -> bool:
        cmd = [str(HERE / "serve.sh"), self.served, str(self.port), str(self.log), *self.args]
        log("$ " + shlex.join(cmd) + f"   (cwd {self.cwd})")
        t = time.time()
        p = subprocess.run(cmd, cwd=self.cwd, capture_output=True, text=True, timeout=320)
        log((p.stdout + p.stderr).strip()[-1500:])
        self.ready_s = round(time.time() - t, 2)
        return p.returncode == 0

    def stop(self) -> None:
        try:
            pid = int(Path(f"{self.log}.pid").read_text())
            os.killpg(pid, signal.SIGTERM)
            for _ in range(60):
                time.sleep(0.5)
                os.killpg(pid, 0)
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, FileNotFoundError, ValueError):
            pass
        time.sleep(1.0)
        try:
            text = self.log.read_text(errors="replace")
            keep = [ln for ln in text.splitlines() if "ContinuousBatchingLogger" in ln or "Traceback" in ln
                    or "Error" in ln or "flash" in ln.lower() or "attn" in ln.lower()]
            with open(OUT / "servers.log", "a") as f:
                f.write(f"\n=== {self.command}\n" + "\n".join(keep[:200]) + "\n--- tail\n"
                        + "\n".join(text.splitlines()[-30:]) + "\n")
        except OSError:
            pass

    def cb_log(self) -> dict:
        """What the continuous-batching logger said about the cache it built."""
        import re

        out: dict = {}
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return out
        for pat, key in ((r"Memory available for cache allocation: (\d+) MB", "available_mb"),
                         (r"max_batch_tokens = (\d+)", "max_batch_tokens"),
                         (r"num_sectors = (\d+)", "num_sectors"),
                         (r"mb_per_sector = (\d+)", "mb_per_sector"),
                         (r"Using cuda graphs for \(varlen, decode\) paths: (\([^)]*\))", "cuda_graphs"),
                         (r"use_async_batching = (\w+)", "async_batching"),
                         (r"Switching from (\S+) to (\S+)\.", "attn_switch")):
            m = re.findall(pat, text)
            if m:
                out[key] = m[-1] if not isinstance(m[-1], tuple) else " -> ".join(m[-1])
        out["consider_flash"] = "Consider using a flash" in text
        return out


class Sampler:
    """While a load runs: the GPU's utilisation (NVML) and the server process's CPU use, per thread
    (/proc): is a step waiting on the GPU or on Python?"""

    def __init__(self, pid_file: Path):
        import threading

        try:
            self.pid = int(pid_file.read_text())
            # serve.sh's setsid python is the server itself (no exec in between)
        except (OSError, ValueError):
            self.pid = None
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _threads(self) -> dict[str, int]:
        out = {}
        for t in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                f = (t / "stat").read_text().rsplit(")", 1)[1].split()
                out[t.name] = int(f[11]) + int(f[12])  # utime + stime, clock ticks
            except (OSError, IndexError, ValueError):
                pass
        return out

    def _run(self) -> None:
        try:
            import pynvml as nv

            nv.nvmlInit()
            h = nv.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001
            nv = h = None
        hz = os.sysconf("SC_CLK_TCK")
        last, t_last = (self._threads() if self.pid else {}), time.time()
        while not self._stop.wait(0.25):
            now, t = (self._threads() if self.pid else {}), time.time()
            dt = max(t - t_last, 1e-3)
            per = sorted(((now[k] - last.get(k, now[k])) / hz / dt for k in now), reverse=True)
            row = {"cpu_total": round(sum(per), 3), "cpu_top_thread": round(per[0], 3) if per else None}
            if nv is not None:
                try:
                    u = nv.nvmlDeviceGetUtilizationRates(h)
                    row.update(gpu_util=u.gpu, sm_clock=nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))
                except Exception:  # noqa: BLE001
                    pass
            self.samples.append(row)
            last, t_last = now, t

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=2)

    def summary(self) -> dict:
        import statistics as st

        def med(k):
            v = [x[k] for x in self.samples if x.get(k) is not None]
            return round(st.median(v), 3) if v else None

        return {"samples": len(self.samples), "gpu_util_median": med("gpu_util"), "sm_clock_median": med("sm_clock"),
                "server_cpu_median": med("cpu_total"), "server_top_thread_cpu_median": med("cpu_top_thread")}


def one(url: str, served: str, words: int, max_tokens: int, seed: int) -> dict:
    from bench.calibrate.transformers_serve.load import closed_loop

    return asyncio.run(closed_loop(url, served, 1, words, max_tokens, 1, seed))


def step_model(a, model_id: str, pct_extra: float | None) -> None:
    from advisor.knowledge import load_knowledge

    spec = load_knowledge().model(model_id, field="--model") if model_id != "tiny" else None
    root = Path(a.models_dir) / model_id
    served = spec.hf_repo if spec else "tiny/tiny-qwen2"
    folder = root / served
    if not (folder / "config.json").exists():
        t = time.time()
        if spec:  # in a child process: this one keeps no CUDA context (the server sees the whole GPU free)
            p = subprocess.run([sys.executable, "-m", "bench.calibrate.transformers_serve.make_model", "model", "--model", model_id,
                                "--tokenizer", str(Path(a.tok) / FAMILY_TOK[spec.family]), "--out", str(folder),
                                "--dtype", a.dtype, "--device", "cuda" if a.device == "auto" else a.device],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                raise RuntimeError(f"make_model failed: {p.stderr[-1500:]}")
            info = json.loads(p.stdout.strip().splitlines()[-1])
        else:
            info = build_tiny(Path(a.tok) / "tok-qwen2", folder)
        emit({"test": "build", "model": model_id, **info, "seconds": round(time.time() - t, 1)})
    port = a.port
    url = f"http://127.0.0.1:{port}"
    before = nvml()
    srv = Server(a, root, served, port, [])
    if not srv.start():
        emit({"test": "serve", "model": model_id, "ok": False, "command": srv.command})
        srv.stop()
        return
    try:
        base = {"model": model_id, "served": served, "command": srv.command}
        emit({"test": "mem", **base, "when": "loaded, no request yet", "ready_s": srv.ready_s,
              "before_device": before, **server_mem(port)})
        w = one(url, served, 32, 8, 1)  # the paged cache is built at the first request
        emit({"test": "mem", **base, "when": "after first request", "ready_s": srv.ready_s, "first_request": w,
              "before_device": before, **server_mem(port), "cb": srv.cb_log()})
        from bench.calibrate.transformers_serve.load import closed_loop

        asyncio.run(closed_loop(url, served, 4, 200, 32, 1, 5))  # warm-up: a small batch, not measured
        if a.ttft_words and time.time() - T0 < a.deadline:
            pts = []
            for words in a.ttft_words:
                runs = [one(url, served, words, 4, 100 + 10 * words + r) for r in range(1 + a.ttft_reps)]
                pts.append({"words": words, "prompt_tokens": runs[-1]["prompt_tokens_median"],
                             "ttft_ms": [r["ttft_ms_median"] for r in runs]})
            emit({"test": "ttft", **base, "points": pts})
        if a.decode and time.time() - T0 < a.deadline:
            runs = [one(url, served, 400, 256, 7 + r) for r in range(2)]
            emit({"test": "decode", **base, "runs": runs})
        from bench.calibrate.transformers_serve.load import closed_loop

        for n in a.n:
            if time.time() - T0 > a.deadline:
                log(f"SKIP load N={n} (deadline)")
                continue
            rounds = max(a.rounds, 2) if n == 1 else (a.rounds if n <= 16 else 1)  # 64 users: one request each
            with Sampler(Path(f"{srv.log}.pid")) as smp:
                r = asyncio.run(closed_loop(url, served, n, a.load_words, a.load_tokens, rounds, 1000 + n))
            emit({"test": "load", **base, **r, "during": smp.summary()})
        if a.probe and time.time() - T0 < a.deadline:
            cmd = [sys.executable, "-m", "advisor", "probe", "--backend", "openai", "--url", url, "--json",
                   "--fresh", "--contexts", a.probe_contexts]
            log("$ " + shlex.join(cmd))
            p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "ADVISOR_CACHE_DIR": "/tmp/advisor-cache"})
            try:
                result = json.loads(p.stdout)
            except json.JSONDecodeError:
                result = None
            emit({"test": "probe", **base, "probe_command": shlex.join(cmd[1:]), "rc": p.returncode,
                  "result": result, "stderr": p.stderr[-2000:], "stdout_tail": p.stdout[-500:] if result is None else ""})
            if result is not None:
                (OUT / f"probe-{model_id}.json").write_text(json.dumps(result, indent=1))
        emit({"test": "mem", **base, "when": "after the load", **server_mem(port), "cb": srv.cb_log()})
    finally:
        srv.stop()
    if pct_extra and time.time() - T0 < a.deadline:
        srv = Server(a, root, served, port, ["--cb-max-memory-percent", str(pct_extra)])
        if srv.start():
            try:
                base = {"model": model_id, "served": served, "command": srv.command, "cb_max_memory_percent": pct_extra}
                w = one(url, served, 32, 8, 2)
                emit({"test": "mem", **base, "when": "after first request", "first_request": w, **server_mem(port),
                      "cb": srv.cb_log()})
                from bench.calibrate.transformers_serve.load import closed_loop

                r = asyncio.run(closed_loop(url, served, 16, a.load_words, a.load_tokens, 1, 77))
                emit({"test": "load", **base, **r})
            finally:
                srv.stop()


def step_sequential(a, model_id: str) -> None:
    """The same model without --continuous-batching: requests take turns through generate()."""
    from advisor.knowledge import load_knowledge
    from bench.calibrate.transformers_serve.load import closed_loop

    spec = load_knowledge().model(model_id, field="--model") if model_id != "tiny" else None
    root = Path(a.models_dir) / model_id
    served = spec.hf_repo if spec else "tiny/tiny-qwen2"
    port = a.port + 1
    url = f"http://127.0.0.1:{port}"
    srv = Server(a, root, served, port, [])
    srv.args = [x for x in srv.args if x != "--continuous-batching"]
    srv.args = [x for x in srv.args if not x.startswith("--cb-")] if not a.cb_args else srv.args
    srv.command = "transformers serve " + shlex.join([served, *srv.args])
    if not srv.start():
        emit({"test": "serve", "model": model_id, "ok": False, "command": srv.command})
        srv.stop()
        return
    try:
        base = {"model": model_id, "served": served, "command": srv.command, "engine": "sequential"}
        one(url, served, 32, 8, 3)
        emit({"test": "mem", **base, "when": "after first request", **server_mem(port)})
        pts = []
        for words in a.ttft_words[:2]:
            runs = [one(url, served, words, 4, 300 + 10 * words + r) for r in range(3)]
            pts.append({"words": words, "prompt_tokens": runs[-1]["prompt_tokens_median"],
                        "ttft_ms": [r["ttft_ms_median"] for r in runs]})
        emit({"test": "ttft", **base, "points": pts})
        for n in (1, 4):
            if time.time() - T0 > a.deadline + 30:
                continue
            r = asyncio.run(closed_loop(url, served, n, a.load_words, a.load_tokens, 1, 2000 + n))
            emit({"test": "load", **base, **r})
    finally:
        srv.stop()


def build_tiny(tok_dir: Path, out: Path) -> dict:
    """A two-layer Qwen2 with the real tokenizer: checks the pipeline on a CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    with torch.no_grad():
        m.get_output_embeddings().weight[sorted(set(tok.all_special_ids))] = 0
    m.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    m.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return {"model": "tiny", "dir": str(out)}


def env_info() -> None:
    import importlib.metadata as md

    vers = {}
    for p in ("torch", "transformers", "fastapi", "uvicorn", "openai", "accelerate", "httpx", "pydantic",
              "tokenizers", "huggingface_hub", "flash_attn", "kernels"):
        try:
            vers[p] = md.version(p)
        except md.PackageNotFoundError:
            vers[p] = None
    import transformers

    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,memory.used",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip() \
        if subprocess.run(["which", "nvidia-smi"], capture_output=True).returncode == 0 else ""
    emit({"test": "env", "versions": vers, "transformers_file": transformers.__file__, "nvidia_smi": smi,
          "python": sys.version.split()[0], "kernel": os.uname().release,
          "date": time.strftime("%Y-%m-%d", time.gmtime()), "nvml": nvml()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tok", required=True, help="folder with tok-qwen2/ and tok-llama/ (make_model.py tokenizer)")
    ap.add_argument("--models", default="qwen2.5-1.5b,llama3.1-8b", help="catalog ids, or 'tiny' (a CPU check)")
    ap.add_argument("--models-dir", default="/tmp/tsm", help="where the random-weight folders are written")
    ap.add_argument("--port", type=int, default=18000)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cb-args", default="", help="extra --cb-* flags (a CPU run: --cb-num-blocks 64)")
    ap.add_argument("--pct", type=float, default=0.5, help="the other --cb-max-memory-percent to measure (0: skip)")
    ap.add_argument("--ttft-words", default="500,2000,8000")
    ap.add_argument("--ttft-reps", type=int, default=3, help="repetitions after the first, per prompt size")
    ap.add_argument("--n", default="1,4,16,64")
    ap.add_argument("--load-words", type=int, default=500)
    ap.add_argument("--load-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--probe-contexts", default="512,2048,8192")
    ap.add_argument("--no-probe", dest="probe", action="store_false")
    ap.add_argument("--no-decode", dest="decode", action="store_false")
    ap.add_argument("--sequential", default="qwen2.5-1.5b", help="a model to measure without continuous batching too")
    ap.add_argument("--deadline", type=float, default=540)
    a = ap.parse_args()
    a.n = [int(x) for x in a.n.split(",")]
    a.ttft_words = [int(x) for x in a.ttft_words.split(",") if x]
    OUT.mkdir(parents=True, exist_ok=True)
    env_info()
    for m in a.models.split(","):
        if time.time() - T0 > a.deadline:
            log(f"SKIP model {m} (deadline)")
            continue
        for step in (lambda: step_model(a, m, a.pct),
                     lambda: step_sequential(a, m) if m == a.sequential and time.time() - T0 < a.deadline else None):
            try:
                step()
            except Exception as e:  # noqa: BLE001  a failed step must not cost the others
                import traceback

                emit({"test": "error", "model": m, "error": repr(e), "trace": traceback.format_exc()[-3000:]})
    log("done")


if __name__ == "__main__":
    main()
