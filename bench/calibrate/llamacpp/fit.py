"""Fit a llama.cpp-on-H100 speed and memory model to the measured rows; write the results.

Run from the repository root, with the project installed (`pip install -e .`; the `gguf` package
from the test extra, or llama.cpp's gguf-py: PYTHONPATH=.llama/gguf-py):

  python -m bench.calibrate.llamacpp.fit --rows RUN1/rows.jsonl [RUN2/rows.jsonl ...] [--write]
  python -m bench.calibrate.llamacpp.fit --from-results bench/results/llamacpp-h100.json   # refit the stored rows
  python -m bench.calibrate.llamacpp.fit --from-results bench/results/llamacpp-h100.json --check

Reads the raw rows run_bench.py wrote on the GPU machine (one file per device call, in order; or
the rows a previous fit stored, with their run numbers), prints the residuals and, with --write,
writes
  bench/results/llamacpp-h100.json      every raw row + provenance + per-point residuals
  bench/results/llamacpp-h100-fit.toml  fitted parameters with provenance
  bench/results/llamacpp-h100.md        how it was run, tables, residuals
--check compares the llamacpp.* rows of knowledge/calibration.toml (transcribed from the fit, in
the advisor's units: ms, the INT8 peak for the quantized prefill) with this fit, within their
rounding, and exits 1 on a row that is not the fit's.

Model (t in seconds; q = quantization):
  prefill  t_pp(n)   = t0 + u*L*ceil(n/512) + 2*P_ne*n/(PEAK*eff_prefill[q]) + a*L*H*hd*n^2
  decode   t_tok(c)  = W_q/(BW*eff_weights_bw[q]) + o*L + KV(c)/(BW*eff_kv_bw)
  batched  t_step(N) = r_q(N) * (W_q/(BW*eff_weights_bw[q]) + o*L) + N*KV(c)/(BW*eff_kv_bw_batched)
           T_PP(N)   = N * t_pp(npp) * k_prefill_N_prompts[q]      (N prompts prefilled back to back)
  memory   GPU(c)    = W_q + KV_bytes_per_token*c + overhead          (llama-server, f16 KV, -c c)
P_ne = non-embedding parameters = L*(E*H*hd + 2*E*kv*hd + H*hd*E + 3*E*F); W_q = the GGUF's tensor
bytes less token_embd when the output matrix is separate (llama.cpp keeps token_embd in host memory
and gathers rows; with tied embeddings it is the output matrix and is read); KV(c) = 2*L*kv*hd*2
bytes * c at mean context c (depth + n_gen/2); ubatch 512 (the default); PEAK = H100 SXM dense
FP16 tensor with FP32 accumulate; BW = H100 SXM HBM3.
Times are the median of llama-bench's repetitions (the first repetition after its single warm-up
is often slower at 512 tokens); llama-batched-bench gives one timing per point.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
from pathlib import Path

import numpy as np

from bench.calibrate.llamacpp import make_gguf as mg  # tensor plan + byte sizes (needs gguf)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

PEAK = 989.4e12
PEAK_SRC = ("NVIDIA H100 Tensor Core GPU datasheet, H100 SXM5: FP16/BF16 Tensor Core 1,979 TFLOPS "
            "with sparsity, i.e. 989.4 TFLOP/s dense (FP32 accumulate runs at the same rate on H100)")
BW = 3.35e12
BW_SRC = "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM5: GPU memory bandwidth 3.35 TB/s (HBM3)"
UBATCH = 512
RES = REPO / "bench" / "results"
ORDER = ["f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_s"]


# ---------------------------------------------------------------- architecture and bytes
def dims(model_id: str) -> dict:
    m = mg.load_model(model_id)
    E, L, H, KV, D, F, V = (m["hidden_size"], m["layers"], m["attention_heads"], m["kv_heads"],
                            m["head_dim"], m["intermediate_size"], m["vocab_size"])
    p_ne = L * (E * H * D + 2 * E * KV * D + H * D * E + 3 * E * F)
    return {"E": E, "L": L, "H": H, "KV": KV, "hd": D, "F": F, "V": V, "tied": m["tied_embeddings"],
            "P_ne": p_ne, "kv_bytes_per_token": 2 * L * KV * D * 2}


def tensor_bytes(model_id: str, quant: str) -> dict:
    m = mg.load_model(model_id)
    layout = json.loads((HERE / "layouts" / f"{model_id}-{quant}.json").read_text()) if quant != "f16" else None
    out = {}
    for name, ne, role in mg.tensor_plan(m):
        if role in ("norm", "bias"):
            t = mg.T.F32
        elif layout is not None:
            t = mg.T[layout[name]]
        else:
            t = mg.T.F16
        out[name] = (mg.nbytes_of(ne, t), t.name)
    return out


def weight_bytes(model_id: str, quant: str) -> dict:
    tb = tensor_bytes(model_id, quant)
    total = sum(b for b, _ in tb.values())
    d = dims(model_id)
    gpu = total - (0 if d["tied"] else tb["token_embd.weight"][0])
    return {"tensor_bytes": total, "gpu_read_bytes": gpu, "token_embd": tb["token_embd.weight"],
            "output": tb.get("output.weight")}


# ---------------------------------------------------------------- least squares
def nnls_cols(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min |A th - b|^2 with th >= 0; columns scaled first."""
    scale = np.linalg.norm(A, axis=0)
    scale[scale == 0] = 1.0
    As = A / scale
    k = A.shape[1]
    try:
        from scipy.optimize import nnls
        return nnls(As, b)[0] / scale
    except ImportError:
        pass
    best, best_err = np.zeros(k), float(np.sum(b ** 2))
    for r in range(k, 0, -1):
        for sup in itertools.combinations(range(k), r):
            th_s, *_ = np.linalg.lstsq(As[:, sup], b, rcond=None)
            if np.any(th_s < 0):
                continue
            th = np.zeros(k)
            th[list(sup)] = th_s
            err = float(np.sum((As @ th - b) ** 2))
            if err < best_err - 1e-15:
                best, best_err = th, err
    return best / scale


def nnls_rel(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """min sum(((X th - y)/y)^2) with th >= 0: relative errors weigh every point alike."""
    return nnls_cols(X / y[:, None], np.ones_like(y))


def pct(pred, meas):
    return 100.0 * (pred - meas) / meas


def load_rows(paths: list[str]) -> list[dict]:
    """The raw rows of each device call (rows.jsonl), numbered by call (run 1, 2, ...)."""
    rows = []
    for i, p in enumerate(paths):
        for line in Path(p).read_text().splitlines():
            if line.strip():
                rows.append({**json.loads(line), "run": i + 1})
    return prepare(rows)


def stored_rows(path: Path) -> list[dict]:
    """The rows a previous fit stored (bench/results/llamacpp-h100.json), with their run numbers."""
    return prepare([{k: v for k, v in r.items() if not k.startswith("_") and k not in ("first_use", "first_use_duplicate")}
                    for r in json.loads(Path(path).read_text())["rows"]])


def prepare(rows: list[dict]) -> list[dict]:
    """Medians of llama-bench's repetitions, -c of the server rows, first-use flags of batched-bench."""
    for r in rows:
        if r.get("tool") == "llama-bench" and r.get("samples_ns"):
            med_s = float(np.median(r["samples_ns"])) / 1e9
            r["median_s"] = med_s
            r["tok_s_median"] = (r["n_prompt"] or r["n_gen"]) / med_s
        if r.get("test") == "server_mem":
            # rows of run 1 stored /props' per-slot n_ctx over the -c value: take -c from the command
            cmd = r["command"].split()
            r["n_ctx_slot"] = r.get("n_ctx_slot", r.get("n_ctx"))
            r["n_ctx"] = int(cmd[cmd.index("-c") + 1])
    # llama-batched-bench: the first point of a process carries first-use costs (mostly in T_PP).
    # Plan p3 runs N=1 twice (-npl 1,1,2,...): the first copy is kept in the raw rows but left
    # out of fits and tables; in runs without the repeat the N=1 point is flagged.
    for r in rows:
        if r.get("test") != "batched":
            continue
        if r.get("seq") == 0 and any(x is not r and x.get("test") == "batched" and x["run"] == r["run"]
                                     and x["command"] == r["command"] and x["N"] == 1 for x in rows):
            r["first_use_duplicate"] = True
        elif r["N"] == 1 and r.get("seq") in (None, 0):
            r["first_use"] = True
    return rows


def qsort(qs):
    return sorted(qs, key=lambda q: ORDER.index(q) if q in ORDER else 99)


# ---------------------------------------------------------------- the model
class Model:
    def __init__(self):
        self.pre: dict = {}
        self.dec: dict = {}
        self.bat: dict = {}
        self.mem: dict = {}

    def t_pp(self, m, q, n):
        d = dims(m)
        p = self.pre
        return (p["t0_s"] + p["per_layer_ubatch_s"] * d["L"] * math.ceil(n / UBATCH)
                + 2 * d["P_ne"] * n / (PEAK * p["eff_prefill"][q])
                + p["attn_s_per_L_H_hd_n2"] * d["L"] * d["H"] * d["hd"] * n * n)

    def w_part(self, m, q):
        d = dims(m)
        return (weight_bytes(m, q)["gpu_read_bytes"] / (BW * self.dec["eff_weights_bw"][q])
                + self.dec["overhead_s_per_layer_token"] * d["L"])

    def t_tok(self, m, q, c):
        return self.w_part(m, q) + dims(m)["kv_bytes_per_token"] * c / (BW * self.dec["eff_kv_bw"])

    def r(self, q, N):
        tab = self.bat["step_multiplier"][q]
        if str(N) in tab:
            return tab[str(N)]
        ks = sorted(int(k) for k in tab)
        lo = max([k for k in ks if k <= N], default=ks[0])
        hi = min([k for k in ks if k >= N], default=ks[-1])
        if lo == hi:
            return tab[str(lo)]
        f = (math.log(N) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return tab[str(lo)] * (1 - f) + tab[str(hi)] * f

    def t_step(self, m, q, N, c):
        return (self.r(q, N) * self.w_part(m, q)
                + N * dims(m)["kv_bytes_per_token"] * c / (BW * self.bat["eff_kv_bw_batched"]))


def fit_all(rows: list[dict]):
    M = Model()
    pts: list[dict] = []
    use = [r for r in rows if not str(r.get("quant", "")).endswith("-lq") and not r.get("first_use_duplicate")]

    # prefill: one joint fit, per-quant matmul efficiency
    pp = [r for r in use if r.get("test") == "prefill"]
    qs = qsort({r["quant"] for r in pp})
    X, y = [], []
    for r in pp:
        d, n = dims(r["model"]), r["n_prompt"]
        X.append([1.0, d["L"] * math.ceil(n / UBATCH), d["L"] * d["H"] * d["hd"] * n * n]
                 + [2 * d["P_ne"] * n / PEAK if r["quant"] == q else 0.0 for q in qs])
        y.append(r["median_s"])
    th = nnls_rel(np.array(X), np.array(y))
    M.pre = {"t0_s": th[0], "per_layer_ubatch_s": th[1], "attn_s_per_L_H_hd_n2": th[2],
             "eff_attention": 2 / (PEAK * th[2]) if th[2] > 0 else None,
             "eff_prefill": {q: (1 / t if t > 0 else math.inf) for q, t in zip(qs, th[3:])}}
    for r in pp:
        pred = r["n_prompt"] / M.t_pp(r["model"], r["quant"], r["n_prompt"])
        pts.append({"quant": r["quant"], "model": r["model"], "test": "prefill", "n": r["n_prompt"],
                    "depth": 0, "N": 1, "run": r["run"], "measured_tok_s": r["tok_s_median"],
                    "predicted_tok_s": pred, "err_pct": pct(pred, r["tok_s_median"])})

    # decode: one joint fit, per-quant weight-read efficiency, shared KV efficiency and layer overhead
    tg = [r for r in use if r.get("test") == "decode"]
    qd = qsort({r["quant"] for r in tg})
    X, y = [], []
    for r in tg:
        d = dims(r["model"])
        c = r["depth"] + r["n_gen"] / 2
        w = weight_bytes(r["model"], r["quant"])["gpu_read_bytes"]
        X.append([d["kv_bytes_per_token"] * c / BW, d["L"]] + [w / BW if r["quant"] == q else 0.0 for q in qd])
        y.append(r["median_s"] / r["n_gen"])
    th = nnls_rel(np.array(X), np.array(y))
    M.dec = {"eff_kv_bw": 1 / th[0], "overhead_s_per_layer_token": th[1],
             "eff_weights_bw": {q: (1 / t if t > 0 else math.inf) for q, t in zip(qd, th[2:])}}
    for r in tg:
        c = r["depth"] + r["n_gen"] / 2
        pred = 1 / M.t_tok(r["model"], r["quant"], c)
        pts.append({"quant": r["quant"], "model": r["model"], "test": "decode", "n": r["n_gen"],
                    "depth": r["depth"], "N": 1, "run": r["run"], "measured_tok_s": r["tok_s_median"],
                    "predicted_tok_s": pred, "err_pct": pct(pred, r["tok_s_median"])})

    # batched decode steps: per-quant multiplier table r_q(N) on the weight+overhead part,
    # N sequences' KV read with one shared efficiency
    bb = [r for r in use if r.get("test") == "batched" and r["quant"] in qd]
    qb = qsort({r["quant"] for r in bb})
    Ns = sorted({r["N"] for r in bb if r["N"] > 1})
    keys = [(q, N) for q in qb for N in Ns]
    X, rhs, meas = [], [], []
    for r in bb:
        d = dims(r["model"])
        c = r["n_prompt"] + r["n_gen"] / 2
        s = r["T_TG_s"] / r["n_gen"]
        wp = M.w_part(r["model"], r["quant"])
        X.append([r["N"] * d["kv_bytes_per_token"] * c / BW]
                 + [wp if (r["quant"], r["N"]) == k else 0.0 for k in keys])
        rhs.append(s - (wp if r["N"] == 1 else 0.0))
        meas.append(s)
    X, rhs, meas = np.array(X), np.array(rhs), np.array(meas)
    th = nnls_cols(X / meas[:, None], rhs / meas)
    tab: dict = {q: {"1": 1.0} for q in qb}
    for (q, N), t in zip(keys, th[1:]):
        if any(r["quant"] == q and r["N"] == N for r in bb):
            tab[q][str(N)] = round(float(t), 4)
    M.bat = {"eff_kv_bw_batched": 1 / th[0], "step_multiplier": tab}

    # prefill of N prompts back to back (batched-bench T_PP) against N single-prompt prefills
    kq = {}
    for q in qb:
        ks = [r["T_PP_s"] / (r["N"] * M.t_pp(r["model"], q, r["n_prompt"]))
              for r in bb if r["quant"] == q and r["N"] > 1 and q in M.pre["eff_prefill"]]
        kq[q] = float(np.exp(np.mean(np.log(ks)))) if ks else 1.0
    M.bat["k_prefill_N_prompts"] = kq
    for r in bb:
        c = r["n_prompt"] + r["n_gen"] / 2
        st = M.t_step(r["model"], r["quant"], r["N"], c)
        tpp = r["N"] * M.t_pp(r["model"], r["quant"], r["n_prompt"]) * kq[r["quant"]]
        S = r["N"] * (r["n_prompt"] + r["n_gen"]) / (tpp + st * r["n_gen"])
        pts.append({"quant": r["quant"], "model": r["model"], "test": "batched", "n": r["n_prompt"],
                    "depth": r["n_prompt"], "N": r["N"], "run": r["run"], "first_use": bool(r.get("first_use")),
                    "measured_tok_s": r["S_TG"], "predicted_tok_s": r["N"] / st,
                    "err_pct": pct(r["N"] / st, r["S_TG"]),
                    "measured_S": r["S"], "predicted_S": S, "err_S_pct": pct(S, r["S"]),
                    "measured_T_PP": r["T_PP_s"], "predicted_T_PP": tpp,
                    "err_T_PP_pct": pct(tpp, r["T_PP_s"])})

    # llama-server memory: overhead over weights-on-GPU + KV
    sv = [r for r in use if r.get("test") == "server_mem" and r.get("proc_used_mib")]
    ov = []
    for r in sv:
        d = dims(r["model"])
        wb = weight_bytes(r["model"], r["quant"])["gpu_read_bytes"]
        kv = d["kv_bytes_per_token"] * r["n_ctx"]
        r["_pred_no_overhead_mib"] = (wb + kv) / 2**20
        ov.append(r["proc_used_mib"] - r["_pred_no_overhead_mib"])
    M.mem = {"overhead_mib_median": float(np.median(ov)) if ov else None,
             "overhead_mib_min": float(np.min(ov)) if ov else None,
             "overhead_mib_max": float(np.max(ov)) if ov else None}
    for r, o in zip(sv, ov):
        pred = r["_pred_no_overhead_mib"] + M.mem["overhead_mib_median"]
        pts.append({"quant": r["quant"], "model": r["model"], "test": "server_mem", "n": r["n_ctx"],
                    "depth": 0, "N": r["n_parallel"], "run": r["run"], "measured_mib": r["proc_used_mib"],
                    "predicted_mib": pred, "overhead_mib": o, "err_pct": pct(pred, r["proc_used_mib"])})
    return M, pts


# ---------------------------------------------------------------- output
def _tv(v) -> str:
    if v is None:
        return '"none"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "inf" if math.isinf(v) else f"{float(v):.6g}"
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_tv(x)}' for k, x in v.items()) + " }"
    return json.dumps(str(v))


def err_stats(pts, test, key="err_pct", quant=None):
    e = [abs(p[key]) for p in pts if p["test"] == test and key in p and (quant is None or p["quant"] == quant)]
    return (float(np.median(e)), float(np.max(e)), len(e)) if e else (None, None, 0)


def fit_toml(meta: dict, M: Model, pts: list[dict], sizes: dict) -> str:
    L = ["# llama.cpp speed and memory model for the H100 SXM, fitted to measurements by",
         "# bench/calibrate/llamacpp/fit.py from bench/results/llamacpp-h100.json (see llamacpp-h100.md).",
         "# Formulas (t in seconds, q = quantization, ubatch 512):",
         "#   prefill  t_pp(n)   = t0_s + per_layer_ubatch_s*L*ceil(n/512) + 2*P_ne*n/(peak_flops*eff_prefill[q])",
         "#                        + attn_s_per_L_H_hd_n2*L*H*hd*n^2",
         "#   decode   t_tok(c)  = W_q/(bandwidth*eff_weights_bw[q]) + overhead_s_per_layer_token*L + KV(c)/(bandwidth*eff_kv_bw)",
         "#   batched  t_step(N) = step_multiplier[q][N] * (W_q/(bandwidth*eff_weights_bw[q]) + overhead_s_per_layer_token*L)",
         "#                        + N*KV(c)/(bandwidth*eff_kv_bw_batched)     (log-interpolate N between table keys)",
         "#            T_PP(N)   = N * t_pp(npp) * k_prefill_N_prompts[q]",
         "#   memory   GPU MiB   = (W_q + kv_bytes_per_token*n_ctx)/2^20 + overhead_mib  (llama-server -c n_ctx, any -np)",
         "# P_ne = L*(E*H*hd + 2*E*kv*hd + H*hd*E + 3*E*F) (non-embedding matrices); W_q = GGUF tensor bytes less",
         "# token_embd when the output matrix is separate (llama.cpp keeps token_embd in host memory), all of",
         "# them when tied; KV(c) = 2*L*kv*hd*2*c bytes (f16 cache) at mean context c = depth + n_gen/2.",
         "# eff_* are fractions of peak_flops (dense FP16 tensor, FP32 accumulate) and of bandwidth; quantized",
         "# prefill runs llama.cpp's int8 MMQ kernels and F16 runs cuBLAS, but all are quoted against one peak.",
         "", "[meta]"]
    for k, v in meta.items():
        L.append(f"{k} = {_tv(v)}")
    L += ["", "[prefill]"]
    for k, v in M.pre.items():
        L.append(f"{k} = {_tv(v)}")
    md, mx, n = err_stats(pts, "prefill")
    L += [f"residual_median_abs_pct = {_tv(md)}", f"residual_max_abs_pct = {_tv(mx)}", f"points = {n}"]
    L += ["", "[decode]"]
    for k, v in M.dec.items():
        L.append(f"{k} = {_tv(v)}")
    md, mx, n = err_stats(pts, "decode")
    L += [f"residual_median_abs_pct = {_tv(md)}", f"residual_max_abs_pct = {_tv(mx)}", f"points = {n}"]
    L += ["", "[batched]", f"eff_kv_bw_batched = {_tv(M.bat['eff_kv_bw_batched'])}",
          f"k_prefill_N_prompts = {_tv(M.bat['k_prefill_N_prompts'])}"]
    for tag, key in (("step", "err_pct"), ("total_S", "err_S_pct"), ("T_PP", "err_T_PP_pct")):
        md, mx, n = err_stats(pts, "batched", key)
        L += [f"residual_{tag}_median_abs_pct = {_tv(md)}", f"residual_{tag}_max_abs_pct = {_tv(mx)}"]
    L += [f"points = {err_stats(pts, 'batched')[2]}", "", "[batched.step_multiplier]"]
    for q, tab in M.bat["step_multiplier"].items():
        L.append(f"{q} = {_tv(tab)}")
    L += ["", "[memory]"]
    for k, v in M.mem.items():
        L.append(f"{k} = {_tv(v)}")
    md, mx, n = err_stats(pts, "server_mem")
    L += [f"residual_median_abs_pct = {_tv(md)}", f"residual_max_abs_pct = {_tv(mx)}", f"points = {n}"]
    L += ["", "# GGUF tensor bytes and the bytes a decode step reads, per model.quant"]
    for k, v in sorted(sizes.items()):
        L += ["", f'[sizes."{k}"]', f"tensor_bytes = {v['tensor_bytes']}", f"gpu_read_bytes = {v['gpu_read_bytes']}",
              f'token_embd_type = "{v["token_embd"][1]}"',
              f'output_type = "{v["output"][1] if v["output"] else "tied (token_embd)"}"']
    return "\n".join(L) + "\n"


def report_md(meta, env, rows, M: Model, pts, sizes, fit_text) -> str:
    Md = ["# llama.cpp on the H100: measured speed and memory, and a fitted speed model", "",
          f"GPU: {meta['gpu']} (driver {meta['driver']}, {env.get('memory_total')}, max SM clock "
          f"{env.get('clocks_max_sm')}, max memory clock {env.get('clocks_max_mem')}, power limit "
          f"{env.get('power_limit')}), three device calls on three fresh machines of that kind "
          f"(`run` 1-3 below); {meta['date']}.  ",
          f"Engine: llama.cpp {meta['engine_version']}, CUDA 13.0, built for sm_90 only "
          "(bench/calibrate/llamacpp/build.sh); every layer on the GPU (`-ngl 99`), flash attention on (`-fa on`), "
          "f16 KV cache, default `-b 2048 -ub 512`, 16 CPU threads.  ",
          "Weights: random-weight GGUFs of the catalog's architectures (bench/calibrate/llamacpp/make_gguf.py) with "
          "the real tokenizers and exactly the per-tensor types llama-quantize picks; weight values change "
          "neither speed nor memory (checked below: a file made by llama-quantize from F16 runs within "
          "0.5-3 % of the directly written one, 8 % at the noisy 512-token prefill).  ",
          "Raw rows: bench/results/llamacpp-h100.json; fitted model: bench/results/llamacpp-h100-fit.toml.", "",
          "## How it was run", "",
          "- prefill: `llama-bench -m M -ngl 99 -fa on -p 512,2048,8192,32768 -n 0 -r 3 -o jsonl`; tok/s = "
          "prompt tokens / median of the 3 repetitions (after llama-bench's one warm-up run)",
          "- decode: `llama-bench -m M -ngl 99 -fa on -p 0 -n 128 -d 0,2048,8192,32768 -r 3 -o jsonl`: 128 "
          "tokens generated one at a time after `depth` tokens already in the KV cache",
          "- batched: `llama-batched-bench -m M -ngl 99 -fa on -c N_max*(npp+128) -npp 2048 -ntg 128 "
          "-npl 1,2,4,8,16,32 --output-format jsonl`, and the same with `-npp 8192 -npl 1,2,4,8,16`: N "
          "separate prompts prefilled back to back (T_PP), then N sequences decoding together for 128 steps "
          "(T_TG); S_PP = N*npp/T_PP, S_TG = N*128/T_TG, S = N*(npp+128)/(T_PP+T_TG); one timing per "
          "point; the first point of each process carries first-use costs (in runs 1-2 the N=1 T_PP is "
          "10-120 % above N=2's per prompt), so run 3 measures N=1 twice (`-npl 1,1,2,...`) and keeps "
          "the second",
          "- server memory: `llama-server -m M -ngl 99 -fa on -c C -np P`; the process's GPU memory "
          "read with NVML (pynvml) once `/health` answers 200, nothing else on the GPU "
          "(device memory used before start: 480 MiB, not counted)",
          "- driver: bench/calibrate/llamacpp/run_bench.py (plans `p1`, `p2`, `p3` = runs 1, 2, 3); fit: bench/calibrate/llamacpp/fit.py",
          "- repeatability: the 7-8B models repeat within 1-3 % across machines; the 1-1.5B models' "
          "prefill moved by up to 25 % between machines (runs 1 and 3), their decode by under 3 %: small-model "
          "prefill is bound by per-kernel host/launch costs, which differ between hosts", ""]
    gg = {}
    for r in rows:
        if r.get("test") == "gguf":
            gg[(r["model"], r["quant"])] = r
    Md += ["## GGUF sizes", "",
           "Quantized files keep `output.weight` at Q6_K (Q8_0 in Q8_0) and `token_embd` at the file's "
           "base type (Q6_K when tied, since it is then the output matrix); llama.cpp keeps `token_embd` in "
           "host memory and only gathers rows, so the GPU holds and a decode step reads the file less "
           "`token_embd` when the output matrix is separate.", "",
           "| model | quant | file MiB | tensors MiB | on GPU / read per token MiB | token_embd | output |",
           "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for k in sorted(sizes, key=lambda k: (k.split("|")[0], ORDER.index(k.split("|")[1]))):
        m, q = k.split("|")
        v = sizes[k]
        fb = gg.get((m, q), {}).get("file_bytes")
        Md.append(f"| {m} | {q} | {fb / 2**20:.0f} | {v['tensor_bytes'] / 2**20:.0f} | "
                  f"{v['gpu_read_bytes'] / 2**20:.0f} | {v['token_embd'][1]} | "
                  f"{v['output'][1] if v['output'] else 'tied'} |" if fb else
                  f"| {m} | {q} | | {v['tensor_bytes'] / 2**20:.0f} | {v['gpu_read_bytes'] / 2**20:.0f} | "
                  f"{v['token_embd'][1]} | {v['output'][1] if v['output'] else 'tied'} |")
    Md.append("")

    def table(test, key, cols, colname, fmt):
        sel = [r for r in rows if r.get("test") == test]
        mq = sorted({(r["model"], r["quant"], r["run"]) for r in sel},
                    key=lambda t: (t[0], ORDER.index(t[1].replace("-lq", "")), t[1], t[2]))
        T = ["| model | quant | run | " + " | ".join(f"{colname}{c}" for c in cols) + " |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in cols) + " |"]
        for m, q, run in mq:
            cells = []
            for c in cols:
                r = next((r for r in sel if r["model"] == m and r["quant"] == q and r["run"] == run and r[key] == c), None)
                cells.append(fmt.format(r["tok_s_median"]) if r else "")
            T.append(f"| {m} | {q} | {run} | " + " | ".join(cells) + " |")
        return T
    Md += ["## Prefill: tok/s for one prompt (TTFT = n / tok/s)", "",
           "`-lq` = the same model quantized by llama-quantize from an F16 file (the standard route), "
           "against the directly written file in the same run.", ""]
    Md += table("prefill", "n_prompt", [512, 2048, 8192, 32768], "n=", "{:.0f}") + [""]
    Md += ["## Decode: tok/s for one sequence, 128 tokens after `depth` tokens", ""]
    Md += table("decode", "depth", [0, 2048, 8192, 32768], "depth ", "{:.1f}") + [""]
    bb = [r for r in rows if r.get("test") == "batched" and not r.get("first_use_duplicate")]
    Md += ["## Batched: N sequences, each a separate prompt of `npp` tokens then 128 new tokens", "",
           "`*` = the process's first measurement (first-use costs in T_PP; run 3 repeats N=1 and shows "
           "the warm one).", "",
           "| model | quant | npp | run | N | T_PP s | S_PP tok/s | T_TG s | S_TG tok/s | S tok/s | step ms | step / step(N=1) |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(bb, key=lambda r: (r["model"], ORDER.index(r["quant"]), r["n_prompt"], r["run"], r["N"])):
        s1 = next(x for x in bb if x["model"] == r["model"] and x["quant"] == r["quant"]
                  and x["n_prompt"] == r["n_prompt"] and x["N"] == 1 and x["run"] == r["run"])
        Md.append(f"| {r['model']} | {r['quant']} | {r['n_prompt']} | {r['run']} | {r['N']}{'*' if r.get('first_use') else ''} | "
                  f"{r['T_PP_s']:.3f} | {r['S_PP']:.0f} | "
                  f"{r['T_TG_s']:.3f} | {r['S_TG']:.1f} | {r['S']:.0f} | {r['T_TG_s'] / r['n_gen'] * 1e3:.2f} | "
                  f"{r['T_TG_s'] / s1['T_TG_s']:.2f} |")
    Md.append("")
    sv = [r for r in rows if r.get("test") == "server_mem"]
    if sv:
        Md += ["## llama-server GPU memory (NVML, process, after /health OK)", "",
               "`weights` = GGUF tensors on the GPU (less token_embd when untied); `KV` = 2*L*kv*hd*2 bytes * -c; "
               "`rest` = measured - weights - KV (CUDA context, compute buffers, cuBLAS workspace).", "",
               "| model | quant | -c | -np | slot ctx | measured MiB | weights MiB | KV MiB | rest MiB | ready s |",
               "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in sv:
            d = dims(r["model"])
            wb = weight_bytes(r["model"], r["quant"])["gpu_read_bytes"] / 2**20
            kv = d["kv_bytes_per_token"] * r["n_ctx"] / 2**20
            Md.append(f"| {r['model']} | {r['quant']} | {r['n_ctx']} | {r['n_parallel']} | {r.get('n_ctx_slot')} | "
                      f"{r['proc_used_mib']:.0f} | {wb:.0f} | {kv:.0f} | {r['proc_used_mib'] - wb - kv:.0f} | {r['ready_s']} |")
        Md.append("")
    # llama-quantize vs direct
    lq = [r for r in rows if str(r.get("quant", "")).endswith("-lq") and r.get("tool") == "llama-bench"]
    if lq:
        Md += ["## Check: llama-quantize's file vs the directly written one (same machine, run 2)", "",
               "| model | test | n / depth | llama-quantize tok/s | direct tok/s | difference % |",
               "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in lq:
            q = r["quant"][:-3]
            key = "n_prompt" if r["test"] == "prefill" else "depth"
            o = next((x for x in rows if x.get("test") == r["test"] and x.get("quant") == q and x["model"] == r["model"]
                      and x["run"] == r["run"] and x[key] == r[key]), None)
            if o:
                Md.append(f"| {r['model']} {q} | {r['test']} | {r[key]} | {r['tok_s_median']:.1f} | {o['tok_s_median']:.1f} | "
                          f"{pct(o['tok_s_median'], r['tok_s_median']):+.1f} |")
        Md.append("")
    pr = [r for r in rows if r.get("test") == "probe"]
    for r in pr:
        Md += ["## OpenAI-compatible endpoints of the real llama-server (bench/calibrate/llamacpp/serve.sh)", "",
               f"`{r['command']}` (so `-c 8192 -np 4 -ngl 99 -fa on`), run {r['run']}: ", ""]
        for path in ("/health", "/v1/models", "/props", "/slots", "/v1/chat/completions", "/v1/completions"):
            v = r.get(path, {})
            if path == "/v1/models" and v.get("ok"):
                meta_ = (v["body"].get("data") or [{}])[0].get("meta", {})
                desc = f"200; data[0].meta: n_ctx {meta_.get('n_ctx')} (per slot), n_ctx_train {meta_.get('n_ctx_train')}, n_params {meta_.get('n_params')}, ftype {meta_.get('ftype')}"
            elif path in ("/props", "/health") and v.get("ok"):
                desc = "200; " + json.dumps(v["body"])
            elif path == "/slots" and v.get("ok"):
                desc = f"200; {len(v['body'])} slots, n_ctx {[x['n_ctx'] for x in v['body']]}"
            elif path == "/v1/chat/completions" and v.get("ok"):
                desc = f"200 in {v['seconds']} s; usage {v['body']['usage']}; timings prompt {v['body']['timings'].get('prompt_per_second', 0):.0f} tok/s, predicted {v['body']['timings'].get('predicted_per_second', 0):.0f} tok/s"
            else:
                desc = f"{v.get('status', 'error')}: {v.get('body', v.get('error'))}"
            Md.append(f"- `{path}`: {desc}")
        m_ = r.get("mem", {})
        Md += [f"- NVML: the server process holds {m_.get('proc_used_mib')} MiB (device used {m_.get('device_used_mib')} MiB)",
               "", "A ~3,000-token request is refused with HTTP 400 because each of the 4 slots has 8192/4 = 2048 "
               "tokens: a probe must read /props or /slots (n_ctx per slot) and size its prompts inside it.", ""]
    Md += ["## Fitted model", "", f"Peak: {PEAK_SRC}.  ", f"Bandwidth: {BW_SRC}.", "",
           "```toml", fit_text.split("# GGUF tensor bytes")[0].strip(), "```", ""]
    Md += ["## Residuals (predicted vs measured, every point)", "",
           "err % = (predicted - measured) / measured. Batched: tok/s is S_TG (decode), S is the total "
           "(prefill + decode) throughput, T_PP the prefill of all N prompts.", "",
           "| quant | model | test | n | depth | N | run | measured | predicted | err % | S meas | S pred | S err % | T_PP err % |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in sorted(pts, key=lambda p: (ORDER.index(p["quant"]), p["model"], p["test"], p["n"], p["depth"], p["N"], p["run"])):
        if p["test"] == "server_mem":
            Md.append(f"| {p['quant']} | {p['model']} | server MiB | {p['n']} | | {p['N']} | {p['run']} | "
                      f"{p['measured_mib']:.0f} | {p['predicted_mib']:.0f} | {p['err_pct']:+.1f} | | | | |")
            continue
        extra = (f"{p['measured_S']:.0f} | {p['predicted_S']:.0f} | {p['err_S_pct']:+.1f} | {p['err_T_PP_pct']:+.1f}"
                 if "err_S_pct" in p else " | | | ")
        Md.append(f"| {p['quant']} | {p['model']} | {p['test']} | {p['n']} | {p['depth']} | {p['N']}{'*' if p.get('first_use') else ''} | {p['run']} | "
                  f"{p['measured_tok_s']:.1f} | {p['predicted_tok_s']:.1f} | {p['err_pct']:+.1f} | {extra} |")
    Md.append("")
    # summary of residuals
    Md += ["## Residual summary", "", "| test | points | median abs err % | max abs err % |", "| --- | ---: | ---: | ---: |"]
    for test, key, label in (("prefill", "err_pct", "prefill tok/s"), ("decode", "err_pct", "decode tok/s"),
                             ("batched", "err_pct", "batched S_TG"), ("batched", "err_S_pct", "batched total S"),
                             ("batched", "err_T_PP_pct", "batched T_PP"), ("server_mem", "err_pct", "server MiB")):
        md, mx, n = err_stats(pts, test, key)
        if n:
            Md.append(f"| {label} | {n} | {md:.1f} | {mx:.1f} |")
    for label, sel in (("batched total S, N = 1..16", [p for p in pts if p["test"] == "batched" and p["N"] <= 16]),
                       ("batched total S, N = 1..16, warm points only", [p for p in pts if p["test"] == "batched" and p["N"] <= 16 and not p.get("first_use")]),
                       ("batched T_PP, warm points only", [p for p in pts if p["test"] == "batched" and not p.get("first_use")]),
                       ("batched total S, 7-8B models, N = 1..16", [p for p in pts if p["test"] == "batched" and p["N"] <= 16 and p["model"] in ("llama3.1-8b", "qwen2.5-7b")])):
        if sel:
            key = "err_T_PP_pct" if "T_PP" in label else "err_S_pct"
            w = [abs(p[key]) for p in sel]
            Md.append(f"| {label} | {len(w)} | {np.median(w):.1f} | {np.max(w):.1f} |")
    Md.append("")
    return "\n".join(Md) + "\n"


# knowledge/calibration.toml's llamacpp rows, as the fit gives them (in the advisor's units), and the
# relative rounding each was transcribed with
def knowledge_values(M: Model) -> dict[str, float]:
    """The llamacpp.* calibration rows this fit stands behind: efficiencies against the peak the
    advisor's roofline uses for the quantization (advisor/physics.py math_peak: INT8 for a GGUF
    quantization, the H100's MMQ kernels), times in ms."""
    from advisor import physics
    from advisor.knowledge import load_knowledge

    gpu = load_knowledge().gpu("H100 80GB")
    name = {"f16": "fp16"}
    out = {}
    for q, eff in M.pre["eff_prefill"].items():
        out[f"llamacpp.prefill_flops_efficiency.{name.get(q, q)}"] = eff * PEAK / physics.math_peak(gpu, name.get(q, q))
    out["llamacpp.prefill_floor_ms"] = M.pre["t0_s"] * 1e3
    out["llamacpp.prefill_ms_per_layer_per_ubatch"] = M.pre["per_layer_ubatch_s"] * 1e3
    if M.pre.get("eff_attention"):
        out["llamacpp.prefill_attention_efficiency"] = M.pre["eff_attention"]
    for q, eff in M.dec["eff_weights_bw"].items():
        out[f"llamacpp.decode_bw_efficiency.{name.get(q, q)}"] = eff
    out["llamacpp.decode_ms_per_layer"] = M.dec["overhead_s_per_layer_token"] * 1e3
    out["llamacpp.decode_kv_bw_efficiency"] = M.dec["eff_kv_bw"]
    for q, tab in M.bat["step_multiplier"].items():
        for n, v in tab.items():
            if n != "1":
                out[f"llamacpp.batch_step_multiplier.{name.get(q, q)}.n{n}"] = v
    return out


def check_knowledge(M: Model, knowledge: Path, tol: float = 0.006) -> int:
    """1 when a llamacpp.* row of the knowledge file is not the fit's (beyond `tol`, relative: the
    rows keep three or four significant digits), or one the fit gives is missing."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover
        import tomli as tomllib  # type: ignore
    have = {r["key"]: r["value"] for r in tomllib.loads(knowledge.read_text())["rows"]}
    bad = 0
    for key, want in knowledge_values(M).items():
        got = have.get(key)
        if got is None:
            print(f"missing: {key} (the fit gives {want:.4g})")
            bad += 1
        elif abs(got / want - 1) > tol:
            print(f"differs: {key} = {got:g}, the fit gives {want:.4g} ({got / want - 1:+.2%})")
            bad += 1
    from bench.calibrate.rows import shown

    print(f"{shown(knowledge)}: {len(knowledge_values(M)) - bad} llamacpp rows are the fit's (within {tol:.1%}), {bad} not")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--rows", nargs="+", metavar="ROWS_JSONL", help="run_bench.py's rows.jsonl, one per device call, in order")
    src.add_argument("--from-results", type=Path, metavar="JSON", help="the rows a previous fit stored (llamacpp-h100.json)")
    ap.add_argument("--write", action="store_true", help="write bench/results/llamacpp-h100{.json,.md,-fit.toml}")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when knowledge/calibration.toml's llamacpp rows are not this fit's")
    ap.add_argument("--knowledge", type=Path, default=REPO / "knowledge" / "calibration.toml")
    ap.add_argument("--results", type=Path, default=RES, help="where --write puts the results files")
    a = ap.parse_args(argv)
    rows = load_rows(a.rows) if a.rows else stored_rows(a.from_results)
    env = next((r for r in rows if r.get("test") == "env"), {})
    lb = [r for r in rows if r.get("tool") == "llama-bench"]
    build = next((r.get("build_commit") for r in lb if r.get("build_commit")), "0c1e57098")
    dates = sorted(r["date"] for r in rows if r.get("date"))
    meta = {
        "engine": "llama.cpp",
        "engine_version": f"{build} (ggml-org/llama.cpp as vendored in llama-cpp-python 0.3.36; ggml 0.25.3; "
                          "built from the sdist, so no build number: llama-bench reports 0)",
        "gpu": env.get("gpu"), "driver": env.get("driver"),
        "date": dates[0][:10] if dates else dt.date.today().isoformat(),
        "peak_flops": PEAK, "peak_source": PEAK_SRC, "bandwidth": BW, "bandwidth_source": BW_SRC,
        "commands": ("llama-bench -ngl 99 -fa on -p 512,2048,8192,32768 -n 0 -r 3; llama-bench -ngl 99 -fa on -p 0 "
                     "-n 128 -d 0,2048,8192,32768 -r 3; llama-batched-bench -ngl 99 -fa on -npp 2048|8192 -ntg 128 "
                     "-npl 1,2,4,8,16[,32]; llama-server -ngl 99 -fa on -c C -np P (bench/calibrate/llamacpp/run_bench.py)"),
        "weights": "random-weight GGUFs (bench/calibrate/llamacpp/make_gguf.py) with llama-quantize's per-tensor types",
        "models": "qwen2.5-1.5b, llama3.2-1b, llama3.1-8b, qwen2.5-7b (knowledge/models.toml dims)",
    }
    M, pts = fit_all(rows)
    models = sorted({r["model"] for r in rows if r.get("model")})
    quants = qsort({r["quant"] for r in rows if r.get("quant") and not r["quant"].endswith("-lq")})
    sizes = {}
    for m in models:
        for q in quants:
            if any(r.get("model") == m and r.get("quant") == q for r in rows):
                sizes[f"{m}|{q}"] = weight_bytes(m, q)
    fit_text = fit_toml(meta, M, pts, {k.replace("|", "."): v for k, v in sizes.items()})
    out = {"meta": {**meta, "env": env, "runs": "run 1 = device call 1 (plan p1), run 2 = device call 2 (plan p2), "
                    "each on a fresh nvidia-h100-x1 machine"},
           "rows": [r for r in rows if r.get("test") not in ("step_done",)],
           "sizes": {k.replace("|", "."): v for k, v in sizes.items()},
           "fit": {"prefill": M.pre, "decode": M.dec, "batched": M.bat, "memory": M.mem},
           "fit_points": pts}
    md = report_md(meta, env, out["rows"], M, pts, sizes, fit_text)
    if a.write:
        a.results.mkdir(parents=True, exist_ok=True)
        (a.results / "llamacpp-h100.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
        (a.results / "llamacpp-h100-fit.toml").write_text(fit_text)
        (a.results / "llamacpp-h100.md").write_text(md)
        print(f"wrote {a.results}/llamacpp-h100.json, llamacpp-h100-fit.toml and llamacpp-h100.md")
    for test, key in (("prefill", "err_pct"), ("decode", "err_pct"), ("batched", "err_pct"),
                      ("batched", "err_S_pct"), ("batched", "err_T_PP_pct"), ("server_mem", "err_pct")):
        mdn, mx, n = err_stats(pts, test, key)
        if n:
            print(f"{test} {key}: n={n} median |err| {mdn:.1f}% max {mx:.1f}%")
    return check_knowledge(M, a.knowledge) if a.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
