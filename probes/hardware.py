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
            try:
                h = nv.nvmlDeviceGetHandleByIndex(i)
                name = _text(nv.nvmlDeviceGetName(h))
                mem = nv.nvmlDeviceGetMemoryInfo(h)
            except Exception as e:  # a GPU fallen off the bus, a driver/library mismatch
                raise ProbeError(f"NVML could not read GPU {i} ({_text(e).strip() or e.__class__.__name__}); "
                                 f"{NO_GPU_HINT}") from None
            others = _other_processes_gb(nv, h)
            cc = _safe(lambda h=h: _compute_capability(nv, h), "")
            pcie = _safe(lambda h=h: f"gen{nv.nvmlDeviceGetCurrPcieLinkGeneration(h)} "
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


def _compute_capability(nv, h) -> str:
    major, minor = nv.nvmlDeviceGetCudaComputeCapability(h)
    return f"{int(major)}.{int(minor)}"


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


# ------------------------------------------------------------------ a local server's own GPU memory
def listening_pids(port: int, proc: str = "/proc") -> set[int]:
    """Processes with a TCP socket listening on `port` (Linux /proc/net/tcp{,6} + /proc/<pid>/fd)."""
    import os

    inodes = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc, "net", name), encoding="ascii", errors="replace") as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) < 10 or cols[3] != "0A":  # 0A: LISTEN
                        continue
                    try:
                        if int(cols[1].rsplit(":", 1)[1], 16) == port:
                            inodes.add(cols[9])
                    except (IndexError, ValueError):
                        continue
        except OSError:
            continue
    inodes.discard("0")
    if not inodes:
        return set()
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = set()
    try:
        entries = os.listdir(proc)
    except OSError:
        return set()
    for entry in entries:
        if not entry.isdigit():
            continue
        fd_dir = os.path.join(proc, entry, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # another user's process, or gone
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) in wanted:
                    pids.add(int(entry))
                    break
            except OSError:
                continue
    return pids


def _descendants(pids: set[int], proc: str = "/proc") -> set[int]:
    """pids and every process below them (vLLM's engine core is a child of its API server)."""
    import os

    parent: dict[int, int] = {}
    try:
        entries = os.listdir(proc)
    except OSError:
        return set(pids)
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat"), encoding="ascii", errors="replace") as f:
                stat = f.read(4096)
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    out = set(pids)
    grew = True
    while grew:
        grew = False
        for child, ppid in parent.items():
            if ppid in out and child not in out:
                out.add(child)
                grew = True
    return out


def server_gpu_memory(port: int) -> dict:
    """GPU memory held by the server listening on `port` here, from NVML's per-process figures.

    The server's processes are the one listening on the port and its children. When NVML can't see
    them (a container: NVML reports the host's pids) and exactly one process uses the GPU, that one
    is taken, and the method says so. Returns {"mib", "pids", "method", "per_gpu_mib"} or
    {"mib": None, "why"}: never raises.
    """
    try:
        nv = _nvml()
    except ProbeError as e:
        return {"mib": None, "why": str(e).split(";")[0]}
    try:
        server = _descendants(listening_pids(port)) if port else set()
        procs: list[tuple[int, int, int]] = []  # (gpu index, pid, bytes)
        try:
            count = nv.nvmlDeviceGetCount()
        except Exception as e:
            return {"mib": None, "why": f"NVML: {_text(e).strip() or e.__class__.__name__}"}
        for i in range(count):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            got = _safe(lambda h=h: list(nv.nvmlDeviceGetComputeRunningProcesses(h)), None)
            if got is None:
                return {"mib": None, "why": "NVML does not list the processes using the GPU here"}
            for p in got:
                used = getattr(p, "usedGpuMemory", None)
                if isinstance(used, int) and 0 <= used < 2**50:
                    procs.append((i, int(p.pid), used))
        mine = [p for p in procs if p[1] in server]
        if mine:
            method = f"NVML per-process memory of the process listening on port {port}" + \
                     (" and its children" if len({p[1] for p in mine}) > 1 or len(server) > 1 else "")
        elif len({p[1] for p in procs}) == 1:
            mine = procs
            method = (f"NVML: the only process using a GPU (pid {procs[0][1]}); the process listening on "
                      f"port {port} is not visible to NVML (a container?)")
        else:
            n = len({p[1] for p in procs})
            why = (f"no process listens on port {port} here" if not server else
                   f"NVML lists {n} GPU process{'es' if n != 1 else ''}, none of them the server's (pid "
                   f"{', '.join(str(p) for p in sorted(server)[:4])})")
            return {"mib": None, "why": why}
        per_gpu: dict[str, float] = {}
        for gpu, _, used in mine:
            per_gpu[str(gpu)] = round(per_gpu.get(str(gpu), 0.0) + used / 2**20, 1)
        return {"mib": round(sum(p[2] for p in mine) / 2**20, 1), "pids": sorted({p[1] for p in mine}),
                "method": method, "per_gpu_mib": per_gpu}
    except Exception as e:  # NVML quirks must not cost the measurements already made
        return {"mib": None, "why": f"NVML failed: {e.__class__.__name__}: {_text(e)[:80]}"}
    finally:
        _safe(nv.nvmlShutdown, None)
