"""Which GPUs we plan for: the ones NVML sees, or a catalog GPU named in the answers.

The one resolver the CLI, `advisor export` and the TUI use, so the same answers mean the same
GPUs everywhere. `hardware.gpus = N` means N GPUs (for "auto": N of the detected GPUs of the
first one's model, and no more than there are); left out, it means every such GPU detected, or one
catalog GPU. `hardware.vram_gb`, when given, is the VRAM per GPU in either case.
"""

from __future__ import annotations

from advisor.domain import Answers, GpuDevice, Hardware
from advisor.errors import AdvisorError


def resolve_hardware(answers: Answers, knowledge, detected: list[GpuDevice] | None = None) -> Hardware:
    """detected: the GPUs NVML already reported (the TUI detects once, off the event loop);
    None: ask NVML now, when the answers say "auto"."""
    hw = answers.hardware
    if hw.gpu.strip().lower() == "auto":
        return _detected(answers, knowledge, detected)
    spec = knowledge.gpu(hw.gpu)
    vram = hw.vram_gb or spec.vram_gb
    used = hw.background_vram_gb
    _check_background(used, vram)
    count = hw.gpus or 1
    devices = [
        GpuDevice(index=i, name=spec.name, total_gb=vram, free_gb=vram - used, used_gb=used,
                  other_processes_gb=used, catalog_name=spec.name)
        for i in range(count)
    ]
    return Hardware(source="catalog", devices=devices, spec=spec, os=hw.os,
                    note=f"planning for {count} x {spec.name} ({vram:g} GB) from the catalog")


def _check_background(used: float, vram: float) -> None:
    if used >= vram:
        raise AdvisorError(
            f"hardware.background_vram_gb: {used:g} is not allowed; expected less than the GPU's {vram:g} GB"
        )


def detect(knowledge) -> list[GpuDevice]:
    """The GPUs NVML sees; one AdvisorError line when there is none or no NVML."""
    from advisor.errors import ProbeError

    try:
        from advisor.probes.hardware import detect_gpus

        devices = detect_gpus(knowledge)
    except ProbeError as e:
        raise AdvisorError(
            f"hardware.gpu: 'auto' found no GPU here ({e}); name one to plan for, e.g. --gpu \"RTX 4090\""
        ) from None
    except ImportError as e:  # pragma: no cover - broken install
        raise AdvisorError(f"hardware.gpu: 'auto' needs the NVML probe ({e}); name a GPU with --gpu") from None
    return list(devices)


def _detected(answers: Answers, knowledge, detected: list[GpuDevice] | None) -> Hardware:
    devices = detect(knowledge) if detected is None else list(detected)
    if not devices:
        raise AdvisorError("hardware.gpu: 'auto' found no GPU here; name one to plan for with --gpu")
    first = devices[0]
    spec = knowledge.match_gpu(first.name)
    if spec is None:
        raise AdvisorError(
            f"hardware.gpu: detected {first.name!r}, which is not in the GPU catalog; add it to your "
            f"knowledge directory (gpus table) or plan for a catalog GPU with --gpu"
        )
    same = [d for d in devices if d.name == first.name]
    want = answers.hardware.gpus
    if want is not None and want > len(same):
        raise AdvisorError(f"hardware.gpus: {want} is not allowed; this machine has {len(same)} x {first.name} "
                           f"(leave gpus out to plan for all of them)")
    same = same[:want] if want is not None else same
    vram = answers.hardware.vram_gb
    if vram is not None:  # the user's figure per GPU (a MIG slice, a cap) over NVML's
        same = [d.model_copy(update={"total_gb": vram,
                                     "free_gb": None if d.free_gb is None else min(d.free_gb, vram)})
                for d in same]
    bg = max(answers.hardware.background_vram_gb, first.other_processes_gb or 0.0)
    _check_background(answers.hardware.background_vram_gb, same[0].total_gb)
    return Hardware(source="nvml", devices=same, spec=spec, os=answers.hardware.os,
                    note=f"detected {len(same)} x {first.name}; {bg:.1f} GB used by other processes")
