"""The user's story on a real GPU, through the installed `advisor` command and the TUI.

bench/validate/probe_gpu.py proves the probe's numbers against a sweep; this script proves the
product as a user meets it on a GPU box:

  1. `advisor probe --hardware`                   NVML: the GPU, its memory, driver, PCIe
  2. `advisor probe --model M` (fresh, then again) the probe with progress, then the cache
  3. `advisor recommend --gpu auto ...`           NVML hardware + the cached probe in the plan
  4. the same at a long context, checked against a measured prefill at that context
  5. the TUI at 80x24: hardware screen (detected GPU) and a real probe with its live plot

Every command's output goes to OUT/story.txt; numbers to OUT/story.json.

On the GPU machine, from the repository root with the project installed (offline:
`python3 -m pip install --no-deps --no-build-isolation -e .`, which also puts `advisor` on the PATH):

    python -m bench.validate.gpu_story --out DIR [--model qwen2.5-1.5b] [--long 16384]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import time


def sh(log, cmd: str, env: dict | None = None) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    dt = time.perf_counter() - t0
    log.write(f"\n$ {cmd}\n[exit {p.returncode}, {dt:.2f} s]\n--- stdout\n{p.stdout}--- stderr\n{p.stderr}")
    log.flush()
    return p.returncode, p.stdout, p.stderr, dt


def measured_ttft_ms(model_id: str, n: int, reps: int = 3) -> float:
    """One prefill of n tokens, generate()-style (last-token logits), median of reps after a warm-up:
    the same measurement the probe makes, at the long context the plan predicts for."""
    import statistics

    import torch

    from advisor.knowledge import load_knowledge
    from advisor.probes.transformers_probe import build_model, config_from_spec

    k = load_knowledge()
    model, _ = build_model(config_from_spec(k.model(model_id)), attention="sdpa", dtype="float16", device="cuda")
    ids = torch.randint(100, 1000, (1, n), device="cuda")
    times = []
    with torch.inference_mode():
        for i in range(reps + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(input_ids=ids, logits_to_keep=1, use_cache=True)
            torch.cuda.synchronize()
            if i:
                times.append((time.perf_counter() - t0) * 1e3)
    del model
    torch.cuda.empty_cache()
    return statistics.median(times)


def screen_text(app) -> str:
    """The current screen as plain text, as an 80x24 terminal shows it (tests/tui/helpers.py does the same)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=False,
                      color_system=None, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens,
                                                       simplify=True))
    return "\n".join(line.rstrip() for line in console.export_text(styles=False).split("\n")[:height])


async def wait_for_text(pilot, wants, timeout: float) -> str:
    end = time.monotonic() + timeout
    while True:
        await pilot.pause(0.1)
        text = screen_text(pilot.app)
        if all(w in text for w in wants) or time.monotonic() > end:
            return text


async def tui(log, model_id: str) -> dict:
    from advisor.domain import Answers, ModelAnswers
    from advisor.tui.app import AdvisorApp
    out = {}
    app = AdvisorApp()
    async with app.run_test(size=(80, 24)) as pilot:
        text = await wait_for_text(pilot, ["GB"], timeout=20)
        log.write("\n=== TUI: hardware screen at 80x24\n" + text + "\n")
        out["hardware_screen"] = text
    answers = Answers(workload="summarization", context_tokens=8192, model=ModelAnswers(name=model_id))
    app = AdvisorApp(answers, start="probe")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        t0 = time.perf_counter()
        await pilot.press("ctrl+r")
        await pilot.pause(0.5)
        try:  # the probe runs in a worker; done (or failed) when it completes
            await asyncio.wait_for(app.workers.wait_for_complete(), timeout=300)
        except Exception as e:
            log.write(f"\nTUI probe worker: {e!r}\n")
        await pilot.pause(1.0)
        text = screen_text(app)
        out["probe_screen_s"] = time.perf_counter() - t0
        log.write(f"\n=== TUI: probe screen after a real probe ({out['probe_screen_s']:.1f} s)\n" + text + "\n")
        out["probe_screen"] = text
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--tui-model", default="qwen2.5-0.5b")
    ap.add_argument("--long", type=int, default=16384)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    env = {"ADVISOR_CACHE_DIR": os.path.join(args.out, "cache")}
    os.environ.update(env)
    res: dict = {"model": args.model}
    m = shlex.quote(args.model)
    with open(os.path.join(args.out, "story.txt"), "w") as log:
        res["help_s"] = sh(log, "advisor --help")[3]
        sh(log, "advisor probe --hardware")
        rc, _, _, res["probe_fresh_s"] = sh(log, f"advisor probe --model {m} --fresh")
        res["probe_fresh_rc"] = rc
        rc, out, _, res["probe_cached_s"] = sh(log, f"advisor probe --model {m} --json")
        res["probe"] = json.loads(out) if rc == 0 else None
        base = (f"advisor recommend --gpu auto --model {m} --workload summarization --risk moderate "
                f"--concurrency 1 --output-tokens 128")
        sh(log, base + " --context-tokens 4096 --format text")
        for label, extra in (("best", ""), ("transformers", " --backend transformers --quantization fp16")):
            rc, out, _, _ = sh(log, f"{base} --context-tokens {args.long}{extra} --format json")
            res[f"recommend_{label}"] = json.loads(out) if rc == 0 else None
        rc, out, _, _ = sh(log, f"{base} --context-tokens {args.long} --backend transformers --quantization fp16 "
                                "--no-cache --format json")
        res["recommend_no_probe"] = json.loads(out) if rc == 0 else None
        try:
            res["measured_ttft_long_ms"] = measured_ttft_ms(args.model, args.long)
            log.write(f"\nmeasured TTFT at {args.long:,} tokens (median of 3): {res['measured_ttft_long_ms']:.1f} ms\n")
        except Exception as e:
            log.write(f"\nmeasured TTFT failed: {e!r}\n")
        log.flush()
        try:
            res["tui"] = asyncio.run(tui(log, args.tui_model))
        except Exception as e:  # the CLI results above still stand
            import traceback

            log.write("\nTUI part failed:\n" + traceback.format_exc())
            res["tui_error"] = repr(e)
    with open(os.path.join(args.out, "story.json"), "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
