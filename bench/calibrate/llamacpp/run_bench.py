#!/usr/bin/env python3
"""Measure a real llama.cpp on the GPU machine: prefill, decode, batched throughput, server memory.

Runs on the device (see bench/calibrate/llamacpp/README.md for the call). Every raw row is appended to
$OUT/rows.jsonl as soon as it is measured (so a timeout still returns what was done); all
tool output goes to $OUT/log.

  python3 bench/calibrate/llamacpp/run_bench.py --bin /tmp/llama/bin --models /tmp/models \
      --plan p1 --deadline 540

Plans are lists of steps in priority order; a step is skipped when the deadline (seconds
since start) has passed.  Steps:
  gen    MODEL QUANT        write the GGUF (make_gguf.py; direct quantized layout)
  pp     MODEL QUANT        llama-bench -p 512,2048,8192,32768 -n 0 -r 3
  tg     MODEL QUANT        llama-bench -p 0 -n 128 -d 0,2048,8192,32768 -r 3
  bb2k   MODEL QUANT        llama-batched-bench -npp 2048 -ntg 128 -npl 1,2,4,8,16,32
  bb8k   MODEL QUANT        llama-batched-bench -npp 8192 -ntg 128 -npl 1,2,4,8,16
  srv    MODEL QUANT C NP   llama-server -c C -np NP: NVML memory after /health OK
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
OUT = Path(os.environ.get("OUT", "/tmp/out"))
T0 = time.time()

PRIMARY = [("qwen2.5-1.5b", "q8_0"), ("qwen2.5-1.5b", "q4_k_m"),
           ("llama3.1-8b", "q8_0"), ("llama3.1-8b", "q4_k_m")]
SECONDARY = [("llama3.2-1b", "q8_0"), ("llama3.2-1b", "q4_k_m"),
             ("qwen2.5-7b", "q8_0"), ("qwen2.5-7b", "q4_k_m")]


def plan_steps(name: str) -> list[tuple]:
    s: list[tuple] = []
    if name in ("p1", "all"):
        s += [("gen", m, q) for m, q in PRIMARY + SECONDARY]
        for m, q in PRIMARY:
            s += [("pp", m, q), ("tg", m, q), ("bb2k", m, q), ("bb8k", m, q)]
        s += [("srv", "llama3.1-8b", "q4_k_m", 8192, 1), ("srv", "llama3.1-8b", "q4_k_m", 32768, 1),
              ("srv", "llama3.1-8b", "q4_k_m", 32768, 4), ("srv", "llama3.1-8b", "q8_0", 8192, 1),
              ("srv", "llama3.1-8b", "q8_0", 32768, 1), ("srv", "llama3.1-8b", "q8_0", 32768, 4),
              ("srv", "qwen2.5-1.5b", "q4_k_m", 8192, 1), ("srv", "qwen2.5-1.5b", "q4_k_m", 32768, 4)]
        for m, q in SECONDARY:
            s += [("pp", m, q), ("tg", m, q), ("bb2k", m, q), ("bb8k", m, q)]
    if name == "p2":
        s += [("gen", m, q) for m, q in [("qwen2.5-7b", "q4_k_m"), ("qwen2.5-1.5b", "q4_k_m"),
                                         ("llama3.1-8b", "f16"), ("llama3.1-8b", "q6_k"),
                                         ("llama3.1-8b", "q5_k_m"), ("llama3.1-8b", "q3_k_s"),
                                         ("qwen2.5-1.5b", "f16")]]
        s += [("tg", "qwen2.5-7b", "q4_k_m"), ("bb2k", "qwen2.5-7b", "q4_k_m"), ("bb8k", "qwen2.5-7b", "q4_k_m"),
              ("lq", "qwen2.5-1.5b", "q4_k_m"),
              ("pp", "qwen2.5-1.5b", "q4_k_m-lq"), ("tg", "qwen2.5-1.5b", "q4_k_m-lq"),
              ("pp", "qwen2.5-1.5b", "q4_k_m"), ("tg", "qwen2.5-1.5b", "q4_k_m")]
        for q in ("f16", "q6_k", "q5_k_m"):
            s += [("pp", "llama3.1-8b", q), ("tg", "llama3.1-8b", q), ("bb2k", "llama3.1-8b", q)]
        s += [("bb8k", "llama3.1-8b", "f16"), ("pp", "llama3.1-8b", "q3_k_s"), ("tg", "llama3.1-8b", "q3_k_s"),
              ("pp", "qwen2.5-1.5b", "f16"), ("tg", "qwen2.5-1.5b", "f16"), ("bb2k", "qwen2.5-1.5b", "f16"),
              ("bb2k", "llama3.1-8b", "q3_k_s"), ("bb8k", "llama3.1-8b", "q6_k"), ("bb8k", "llama3.1-8b", "q5_k_m")]
    if name == "p3":
        s += [("gen", m, q) for m, q in [("qwen2.5-1.5b", "q8_0"), ("qwen2.5-1.5b", "q4_k_m"),
                                         ("llama3.1-8b", "q8_0"), ("llama3.1-8b", "q4_k_m"),
                                         ("llama3.1-8b", "q6_k"), ("llama3.1-8b", "q5_k_m")]]
        s += [("probe", "qwen2.5-1.5b", "q4_k_m"), ("pp", "qwen2.5-1.5b", "q8_0"),
              ("bb2kw", "qwen2.5-1.5b", "q8_0"), ("bb8kw", "qwen2.5-1.5b", "q8_0"),
              ("bb2kw", "llama3.1-8b", "q4_k_m"), ("bb8kw", "llama3.1-8b", "q4_k_m"),
              ("bb8kw", "llama3.1-8b", "q6_k"), ("bb8kw", "llama3.1-8b", "q5_k_m"),
              ("bb2kw", "qwen2.5-1.5b", "q4_k_m"), ("bb8kw", "llama3.1-8b", "q8_0")]
    if name == "smoke":
        s += [("gen", "qwen2.5-1.5b", "q4_k_m"), ("pp", "qwen2.5-1.5b", "q4_k_m")]
    return s


def log(msg: str) -> None:
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    print(line, flush=True)
    with open(OUT / "log", "a") as f:
        f.write(line + "\n")


def emit(row: dict) -> None:
    row.setdefault("date", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    with open(OUT / "rows.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


HARD_LIMIT = float(os.environ.get("BENCH_HARD_LIMIT", "585"))  # s after start: kill whatever runs


def run(cmd: list[str], timeout: float, env=None) -> tuple[int, str, str]:
    timeout = max(5.0, min(timeout, HARD_LIMIT - (time.time() - T0)))
    log("$ " + shlex.join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        rc, so, se = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, so, se = 124, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), \
            (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    with open(OUT / "log", "a") as f:
        f.write(so[-20000:] + "\n--- stderr ---\n" + se[-6000:] + f"\n--- rc={rc} ---\n")
    return rc, so, se


def buffers(text: str) -> dict:
    """CUDA buffer sizes llama.cpp prints at load (model, KV, compute), MiB."""
    out: dict[str, float] = {}
    for kind, pat in (("model_mib", r"CUDA0 model buffer size\s*=\s*([\d.]+) MiB"),
                      ("kv_mib", r"CUDA0 KV buffer size\s*=\s*([\d.]+) MiB"),
                      ("compute_mib", r"CUDA0 compute buffer size\s*=\s*([\d.]+) MiB"),
                      ("host_compute_mib", r"CUDA_Host compute buffer size\s*=\s*([\d.]+) MiB"),
                      ("cpu_model_mib", r"CPU_Mapped model buffer size\s*=\s*([\d.]+) MiB")):
        v = re.findall(pat, text)
        if v:
            out[kind] = float(v[-1])
    return out


class Ctx:
    def __init__(self, a):
        self.a = a
        self.bin = Path(a.bin)
        self.models = Path(a.models)
        self.env = dict(os.environ)
        self.meta = {}

    def gguf(self, m, q):
        return self.models / f"{m}-{q}.gguf"

    def base(self, m, q):
        return {"model": m, "quant": q, "gguf_bytes": self.gguf(m, q).stat().st_size, **self.meta}


def step_gen(c: Ctx, m, q):
    out = c.gguf(m, q)
    if out.exists():
        return
    cmd = [sys.executable, str(HERE / "make_gguf.py"), "--model", m, "--type", q, "--out", str(out)]
    if q != "f16":
        cmd += ["--layout", str(HERE / "layouts" / f"{m}-{q}.json")]
    env = dict(c.env, PYTHONPATH=str(REPO / ".llama" / "gguf-py"))
    rc, so, se = run(cmd, 300, env)
    if rc == 0:
        emit({"test": "gguf", "model": m, "quant": q, **json.loads(so.strip().splitlines()[-1]), **c.meta})
    else:
        log(f"gen failed {m} {q}: {se[-500:]}")


def step_lq(c: Ctx, m, q):
    """Standard route for comparison: F16 GGUF -> llama-quantize -> <m>-<q>-lq.gguf."""
    f16 = c.gguf(m, "f16")
    if not f16.exists():
        step_gen(c, m, "f16")
    out = c.gguf(m, f"{q}-lq")
    t = time.time()
    rc, so, se = run([str(c.bin / "llama-quantize"), str(f16), str(out), q.upper()], 300, c.env)
    emit({"test": "llama-quantize", "model": m, "quant": q, "rc": rc, "seconds": round(time.time() - t, 1),
          "file_bytes": out.stat().st_size if out.exists() else None, **c.meta})


def llama_bench(c: Ctx, m, q, test, args):
    cmd = [str(c.bin / "llama-bench"), "-m", str(c.gguf(m, q)), "-ngl", "99", "-fa", "on",
           "-o", "jsonl"] + args
    rc, so, se = run(cmd, 400, c.env)
    buf = buffers(se)
    for line in so.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        emit({**c.base(m, q), "test": test, "tool": "llama-bench", "command": shlex.join(cmd),
              "n_prompt": r.get("n_prompt"), "n_gen": r.get("n_gen"), "depth": r.get("n_depth", 0),
              "N": 1, "tok_s": r.get("avg_ts"), "tok_s_stddev": r.get("stddev_ts"),
              "ms": (r.get("avg_ns") or 0) / 1e6, "samples_ns": r.get("samples_ns"),
              "n_batch": r.get("n_batch"), "n_ubatch": r.get("n_ubatch"),
              "build_commit": r.get("build_commit"), "build_number": r.get("build_number"),
              "gpu_info": r.get("gpu_info"), "model_size": r.get("model_size"),
              "model_n_params": r.get("model_n_params"), "type_k": r.get("type_k"),
              "flash_attn": r.get("flash_attn"), "buffers": buf})
    if rc != 0:
        log(f"llama-bench rc={rc} {m} {q} {test}")


def batched(c: Ctx, m, q, test, npp, npl):
    n_ctx = max(npl) * (npp + 128)
    cmd = [str(c.bin / "llama-batched-bench"), "-m", str(c.gguf(m, q)), "-ngl", "99", "-fa", "on",
           "-c", str(n_ctx), "-npp", str(npp), "-ntg", "128", "-npl", ",".join(map(str, npl)),
           "--output-format", "jsonl"]
    rc, so, se = run(cmd, 400, c.env)
    buf = buffers(se + so)
    seq = 0
    for line in (so + "\n" + se).splitlines():
        line = line.strip()
        if not (line.startswith("{") and '"speed_tg"' in line):
            continue
        r = json.loads(line)
        # seq 0 is the first measurement of the process: it carries first-use costs
        emit({**c.base(m, q), "test": test, "tool": "llama-batched-bench", "command": shlex.join(cmd), "seq": seq,
              "n_prompt": r["pp"], "n_gen": r["tg"], "depth": 0, "N": r["pl"], "n_kv": r["n_kv"],
              "T_PP_s": r["t_pp"], "S_PP": r["speed_pp"], "T_TG_s": r["t_tg"], "S_TG": r["speed_tg"],
              "T_s": r["t"], "S": r["speed"], "tok_s": r["speed"], "ms": r["t"] * 1e3,
              "n_batch": r["n_batch"], "n_ubatch": r["n_ubatch"], "n_kv_max": r["n_kv_max"],
              "buffers": buf})
        seq += 1
    if rc != 0:
        log(f"batched-bench rc={rc} {m} {q} {test}")


def nvml_read(pid: int) -> dict:
    try:
        import pynvml as nv
        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        procs = {p.pid: p.usedGpuMemory for p in nv.nvmlDeviceGetComputeRunningProcesses(h)}
        nv.nvmlShutdown()
        return {"device_used_mib": mem.used / 2**20, "proc_used_mib":
                (procs[pid] / 2**20 if procs.get(pid) is not None else None),
                "procs": {str(k): (v / 2**20 if v is not None else None) for k, v in procs.items()}}
    except Exception as e:  # noqa: BLE001
        return {"nvml_error": repr(e)}


def step_srv(c: Ctx, m, q, n_ctx, n_par):
    base = nvml_read(-1)
    port = 18080
    cmd = [str(c.bin / "llama-server"), "-m", str(c.gguf(m, q)), "-ngl", "99", "-fa", "on",
           "-c", str(n_ctx), "-np", str(n_par), "--host", "127.0.0.1", "--port", str(port)]
    log("$ " + shlex.join(cmd))
    lf = open(OUT / "server.log", "a")
    lf.write(f"\n=== {shlex.join(cmd)}\n")
    lf.flush()
    p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=c.env, start_new_session=True)
    t_start = time.time()
    ok = False
    while time.time() - t_start < 90 and p.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    ok = True
                    break
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.25)
    t_ready = time.time() - t_start
    time.sleep(0.5)
    mem = nvml_read(p.pid)
    props = {}
    if ok:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/props", timeout=5) as r:
                pj = json.loads(r.read())
                props = {"n_ctx_slot": pj.get("default_generation_settings", {}).get("n_ctx"),
                         "total_slots": pj.get("total_slots"), "build_info": pj.get("build_info")}
        except Exception as e:  # noqa: BLE001
            props = {"props_error": repr(e)}
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=20)
    except Exception:  # noqa: BLE001
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    lf.close()
    text = (OUT / "server.log").read_text().rsplit("=== ", 1)[-1]
    emit({**c.base(m, q), "test": "server_mem", "tool": "llama-server", "command": shlex.join(cmd),
          "n_ctx": n_ctx, "n_parallel": n_par, "health_ok": ok, "ready_s": round(t_ready, 2),
          "baseline_device_used_mib": base.get("device_used_mib"), **mem, **props,
          "buffers": buffers(text)})


def step_probe(c: Ctx, m, q):
    """bench/calibrate/llamacpp/serve.sh (-c 8192 -np 4), then the OpenAI-compatible endpoints a probe reads."""
    env = dict(c.env, LLAMA_BIN=str(c.bin))
    rc, so, se = run([str(HERE / "serve.sh"), str(c.gguf(m, q)), "18081"], 150, env)
    res = {"serve_rc": rc, "serve_out": (so + se)[-2000:]}
    base = "http://127.0.0.1:18081"
    def get(path, body=None):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        t = time.time()
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read()), time.time() - t
    for path, body in (("/health", None), ("/v1/models", None), ("/props", None), ("/slots", None),
                       ("/v1/chat/completions", {"model": m, "max_tokens": 32, "temperature": 0,
                                                 "messages": [{"role": "user", "content": "Say hello."}]}),
                       ("/v1/completions", {"model": m, "max_tokens": 16, "prompt": "word " * 3000})):
        try:
            j, dt_ = get(path, body)
            if path == "/props":
                j = {"n_ctx_slot": (j.get("default_generation_settings") or {}).get("n_ctx"),
                     "total_slots": j.get("total_slots"), "build_info": j.get("build_info"),
                     "model_path": j.get("model_path"), "has_chat_template": bool(j.get("chat_template"))}
            if path == "/slots":
                j = [{k: s.get(k) for k in ("id", "n_ctx", "is_processing")} for s in j]
            if path in ("/v1/chat/completions", "/v1/completions"):
                j = {"usage": j.get("usage"), "timings": j.get("timings"),
                     "text": str(j.get("choices", [{}])[0])[:300]}
            res[path] = {"ok": True, "seconds": round(dt_, 3), "body": j}
        except urllib.error.HTTPError as e:
            res[path] = {"ok": False, "status": e.code, "body": e.read().decode()[:500]}
        except Exception as e:  # noqa: BLE001
            res[path] = {"ok": False, "error": repr(e)}
    res["mem"] = nvml_read(int(Path("/tmp/llama-server.pid").read_text()) if Path("/tmp/llama-server.pid").exists() else -1)
    try:
        pid = int(Path("/tmp/llama-server.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        time.sleep(2)
    except Exception:  # noqa: BLE001
        pass
    emit({**c.base(m, q), "test": "probe", "tool": "llama-server", "command": f"bench/calibrate/llamacpp/serve.sh {c.gguf(m, q)} 18081", **res})


def env_info(c: Ctx):
    q = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit,pstate"
    try:
        s = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                           capture_output=True, text=True).stdout.strip()
        name, drv, memt, sm, mm, pl, ps = [x.strip() for x in s.split(",")]
    except Exception:  # noqa: BLE001
        name = drv = memt = sm = mm = pl = ps = None
    c.meta = {"gpu": name, "driver": drv}
    emit({"test": "env", "gpu": name, "driver": drv, "memory_total": memt, "clocks_max_sm": sm,
          "clocks_max_mem": mm, "power_limit": pl, "pstate": ps,
          "cpu": subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                                text=True).stdout.strip(),
          "kernel": os.uname().release})
    log(f"GPU {name} driver {drv} mem {memt} maxSM {sm} maxMem {mm} power {pl}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", default="/tmp/models")
    ap.add_argument("--plan", default="p1")
    ap.add_argument("--steps", default="", help="extra steps: 'pp:m:q;srv:m:q:8192:1;...'")
    ap.add_argument("--skip", default="", help="steps already done (same syntax)")
    ap.add_argument("--deadline", type=float, default=540)
    ap.add_argument("--gen-workers", type=int, default=8)
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    Path(a.models).mkdir(parents=True, exist_ok=True)
    c = Ctx(a)
    env_info(c)

    def parse(spec):
        out = []
        for s in filter(None, spec.split(";")):
            f = s.split(":")
            out.append(tuple([f[0], f[1], f[2]] + [int(x) for x in f[3:]]))
        return out

    steps = plan_steps(a.plan) + parse(a.steps)
    skip = set(parse(a.skip))
    steps = [s for s in steps if s not in skip]

    gens = [s for s in steps if s[0] == "gen"]
    if gens:
        with ThreadPoolExecutor(a.gen_workers) as ex:
            list(ex.map(lambda s: step_gen(c, s[1], s[2]), gens))
        log("gen done")
    for s in steps:
        if s[0] == "gen":
            continue
        if time.time() - T0 > a.deadline:
            log(f"SKIP (deadline) {s}")
            emit({"test": "skipped", "step": list(s)})
            continue
        if s[0] == "lq":
            step_lq(c, s[1], s[2])
            continue
        if not c.gguf(s[1], s[2]).exists():
            log(f"SKIP (no gguf) {s}")
            continue
        t = time.time()
        kind, m, q = s[0], s[1], s[2]
        if kind == "pp":
            llama_bench(c, m, q, "prefill", ["-p", "512,2048,8192,32768", "-n", "0", "-r", "3"])
        elif kind == "tg":
            llama_bench(c, m, q, "decode", ["-p", "0", "-n", "128", "-d", "0,2048,8192,32768", "-r", "3"])
        elif kind == "bb2k":
            batched(c, m, q, "batched", 2048, [1, 2, 4, 8, 16, 32])
        elif kind == "bb8k":
            batched(c, m, q, "batched", 8192, [1, 2, 4, 8, 16])
        elif kind == "bb2kw":  # N=1 twice: the first absorbs first-use costs
            batched(c, m, q, "batched", 2048, [1, 1, 2, 4, 8, 16, 32])
        elif kind == "bb8kw":
            batched(c, m, q, "batched", 8192, [1, 1, 2, 4, 8, 16])
        elif kind == "probe":
            step_probe(c, m, q)
        elif kind == "pp5":
            llama_bench(c, m, q, "prefill", ["-p", "512,2048,8192,32768", "-n", "0", "-r", "5"])
        elif kind == "srv":
            step_srv(c, m, q, s[3], s[4])
        emit({"test": "step_done", "step": list(s), "seconds": round(time.time() - t, 1)})
        log(f"done {s} in {time.time() - t:.1f}s")
    log("ALL DONE")


if __name__ == "__main__":
    main()
