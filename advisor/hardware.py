"""Which GPUs we plan for: the ones NVML sees, or a catalog GPU named in the answers."""

from __future__ import annotations

from advisor.domain import Answers, GpuDevice, Hardware
from advisor.errors import AdvisorError


def resolve_hardware(answers: Answers, knowledge) -> Hardware:
    hw = answers.hardware
    if hw.gpu.strip().lower() == "auto":
        return _detected(answers, knowledge)
    spec = knowledge.gpu(hw.gpu)
    vram = hw.vram_gb or spec.vram_gb
    used = hw.background_vram_gb
    if used >= vram:
        raise AdvisorError(
            f"hardware.background_vram_gb: {used:g} is not allowed; expected less than the GPU's {vram:g} GB"
        )
    devices = [
        GpuDevice(index=i, name=spec.name, total_gb=vram, free_gb=vram - used, used_gb=used,
                  other_processes_gb=used, catalog_name=spec.name)
        for i in range(hw.gpus)
    ]
    return Hardware(source="catalog", devices=devices, spec=spec, os=hw.os,
                    note=f"planning for {hw.gpus} x {spec.name} ({vram:g} GB) from the catalog")


def _detected(answers: Answers, knowledge) -> Hardware:
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
    if not devices:
        raise AdvisorError("hardware.gpu: 'auto' found no GPU here; name one to plan for with --gpu")
    first = devices[0]
    spec = knowledge.match_gpu(first.name)
    if spec is None:
        raise AdvisorError(
            f"hardware.gpu: detected {first.name!r}, which is not in the GPU catalog; add it to your "
            f"knowledge directory (gpus table) or plan for a catalog GPU with --gpu"
        )
    same = [d for d in devices if d.name == first.name][: answers.hardware.gpus if answers.hardware.gpus > 1 else None]
    bg = max(answers.hardware.background_vram_gb, first.other_processes_gb or 0.0)
    return Hardware(source="nvml", devices=same, spec=spec, os=answers.hardware.os,
                    note=f"detected {len(same)} x {first.name}; {bg:.1f} GB used by other processes")
