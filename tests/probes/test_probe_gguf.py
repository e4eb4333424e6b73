"""GGUF metadata from a real (tiny) GGUF file written with gguf.GGUFWriter."""

from __future__ import annotations

import numpy as np
import pytest
from gguf_files import write_gguf_file

from advisor.errors import ProbeError
from advisor.probes.gguf_probe import read_gguf
from advisor.probes.runner import run_probe


def write_gguf(path, file_type=15):
    def setup(w):
        w.add_name("tiny-llama")
        w.add_block_count(16)
        w.add_context_length(131072)
        w.add_embedding_length(256)
        w.add_head_count(32)
        w.add_head_count_kv(8)
        w.add_file_type(file_type)
        w.add_token_list([f"t{i}" for i in range(100)])

    return write_gguf_file(path, {"token_embd.weight": (100, 256), "blk.0.attn_q.weight": (256, 256),
                                  "output_norm.weight": np.zeros((256,), dtype=np.float32)}, setup=setup)


def test_reads_architecture_quantization_and_weight_bytes(tmp_path):
    info = read_gguf(write_gguf(tmp_path / "m.gguf"))
    assert (info.architecture, info.layers, info.heads, info.kv_heads, info.head_dim) == ("llama", 16, 32, 8, 8)
    assert info.context_length == 131072 and info.vocab_size == 100
    assert info.quantization == "q4_k_m"  # general.file_type 15 = LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert info.weight_bytes == 100 * 256 * 2 + 256 * 256 * 2 + 256 * 4
    assert info.kv_bytes_per_token() == 2 * 16 * 8 * 8 * 2


def test_probe_of_a_gguf_path_reports_kv_cost_and_context(tmp_path, k):
    r = run_probe(write_gguf(tmp_path / "m.gguf"), knowledge=k)
    assert r.backend == "gguf" and r.dtype == "q4_k_m" and r.max_model_len == 131072
    assert r.kv_bytes_per_token == 2 * 16 * 8 * 8 * 2


def test_not_a_gguf_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x00garbage")
    with pytest.raises(ProbeError) as e:
        read_gguf(str(bad))
    assert "not a readable GGUF file" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ProbeError, match="no such GGUF file"):
        read_gguf(str(tmp_path / "missing.gguf"))


def test_bad_gguf_metadata_is_one_line_exit_4_from_the_probe(tmp_path, capsys):
    from advisor.cli import main

    def setup(w):
        w.add_block_count(16)
        w.add_embedding_length(256)
        w.add_head_count(32)
        w.add_uint32("llama.attention.head_count_kv", 100_000_000)  # what crashed a server-side probe

    path = write_gguf_file(tmp_path / "m.gguf", {"token_embd.weight": (100, 256)}, setup=setup)
    assert main(["probe", "--model", str(path)]) == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "llama.attention.head_count_kv = 100000000 is not allowed" in err


def test_a_gguf_without_file_type_takes_its_tensors_type_in_the_advisors_words(tmp_path):
    path = write_gguf_file(tmp_path / "m.gguf", {"token_embd.weight": (100, 256)})
    assert read_gguf(str(path)).quantization == "fp16"  # ggml calls it f16
