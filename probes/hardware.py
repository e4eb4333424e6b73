"""Every NVIDIA GPU on this machine, read with NVML (nvidia-ml-py). Never imports torch."""

from __future__ import annotations

from advisor.domain import GpuDevice
from advisor.errors import ProbeError

GB = 1024.0 ** 3
NO_GPU_HINT = "plan for a catalog GPU with --gpu NAME"


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _nvml():
    try:
        import pynvml
    except ImportError:
        raise ProbeError(f"no NVIDIA GPU found (nvidia-ml-py is not installed); {NO_GPU_HINT}") from None
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        reason = _text(e).strip() or e.__class__.__name__
        raise ProbeError(f"no NVIDIA GPU found (NVML: {reason}); {NO_GPU_HINT}") from None
    return pynvml


def detect_gpus(knowledge=None) -> list[GpuDevice]:
    """Name, memory (total / free / used / other processes), driver, CUDA, compute capability, PCIe link."""
    nv = _nvml()
    try:
        try:
            count = nv.nvmlDeviceGetCount()
        except Exception as e:
            raise ProbeError(f"no NVIDIA GPU found (NVML: {_text(e).strip()}); {NO_GPU_HINT}") from None
        if count == 0:
            raise ProbeError(f"no NVIDIA GPU found (NVML sees 0 devices); {NO_GPU_HINT}")
        driver = _safe(lambda: _text(nv.nvmlSystemGetDriverVersion()), "")
        cuda = _safe(lambda: _cuda_version(nv.nvmlSystemGetCudaDriverVersion_v2()), "")
        out = []
        for i in range(count):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            name = _text(nv.nvmlDeviceGetName(h))
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            others = _other_processes_gb(nv, h)
            cc = _safe(lambda: "%d.%d" % tuple(nv.nvmlDeviceGetCudaComputeCapability(h)), "")
            pcie = _safe(lambda: f"gen{nv.nvmlDeviceGetCurrPcieLinkGeneration(h)} "
                                 f"x{nv.nvmlDeviceGetCurrPcieLinkWidth(h)}", "")
            spec = knowledge.match_gpu(name) if knowledge is not None else None
            out.append(GpuDevice(index=i, name=name, total_gb=round(mem.total / GB, 3),
                                 free_gb=round(mem.free / GB, 3), used_gb=round(mem.used / GB, 3),
                                 other_processes_gb=others, driver=driver, cuda=cuda,
                                 compute_capability=cc, pcie=pcie,
                                 catalog_name=spec.name if spec is not None else None))
        return out
    finally:
        _safe(nv.nvmlShutdown, None)


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def _other_processes_gb(nv, h) -> float | None:
    """Memory held by processes other than this one (None where NVML can't see them, e.g. containers)."""
    import os

    procs = []
    for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        got = _safe(lambda fn=fn: getattr(nv, fn)(h), None)
        if got is None:
            return None
        procs += list(got)
    me = os.getpid()
    total = 0
    for p in procs:
        used = getattr(p, "usedGpuMemory", None)
        if p.pid != me and isinstance(used, int) and used >= 0:
            total += used
    return round(total / GB, 3)


def _safe(fn, default):
    try:
        return fn()
    except Exception:
        return default
