"""NVML detection: one clear line without a driver; every field read with one."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pynvml
import pytest

from advisor.errors import ProbeError
from advisor.probes.hardware import detect_gpus


def test_no_driver_is_one_line_naming_the_way_out(monkeypatch, k):
    def no_lib():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_lib)
    with pytest.raises(ProbeError) as e:
        detect_gpus(k)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("no NVIDIA GPU found") and "--gpu" in msg
    assert e.value.exit_code == 4


def test_reads_every_field_and_matches_the_catalog(monkeypatch, k):
    mib = 2 ** 20
    fake = {
        "nvmlInit": lambda: None, "nvmlShutdown": lambda: None, "nvmlDeviceGetCount": lambda: 1,
        "nvmlSystemGetDriverVersion": lambda: "580.159.04", "nvmlSystemGetCudaDriverVersion_v2": lambda: 13000,
        "nvmlDeviceGetHandleByIndex": lambda i: "h0", "nvmlDeviceGetName": lambda h: b"NVIDIA H100 80GB HBM3",
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(total=81559 * mib, free=70000 * mib, used=11559 * mib),
        "nvmlDeviceGetCudaComputeCapability": lambda h: (9, 0),
        "nvmlDeviceGetCurrPcieLinkGeneration": lambda h: 5, "nvmlDeviceGetCurrPcieLinkWidth": lambda h: 16,
        "nvmlDeviceGetComputeRunningProcesses": lambda h: [SimpleNamespace(pid=1, usedGpuMemory=10 * 1024 * mib)],
        "nvmlDeviceGetGraphicsRunningProcesses": lambda h: [],
    }
    for name, fn in fake.items():
        monkeypatch.setattr(pynvml, name, fn)
    (g,) = detect_gpus(k)
    assert g.name == "NVIDIA H100 80GB HBM3" and g.catalog_name == "H100 80GB"
    assert g.total_gb == pytest.approx(79.647, abs=0.01) and g.free_gb == pytest.approx(68.36, abs=0.01)
    assert g.other_processes_gb == pytest.approx(10.0)
    assert (g.driver, g.cuda, g.compute_capability, g.pcie) == ("580.159.04", "13.0", "9.0", "gen5 x16")


def test_importing_hardware_detection_does_not_import_torch():
    code = "import sys, advisor.probes.hardware, advisor.probes.runner, advisor.probes.cli, advisor.probes.cache; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
