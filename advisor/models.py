"""Which models we consider: the one the user named (catalog, HF directory, GGUF file), or the catalog."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.domain import Answers, ModelSpec
from advisor.errors import AdvisorError, InputError, ProbeError


def resolve_models(answers: Answers, knowledge) -> list[ModelSpec]:
    name = answers.model.name.strip()
    if not name:
        return list(knowledge.models.values())
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        return [_from_gguf(path)]
    if path.is_dir():
        return [from_hf_directory(path)]
    try:
        return [knowledge.model(name)]
    except InputError as e:
        if ":" in name:
            raise AdvisorError(
                f"model.name: {name!r} is not in the catalog; point at its GGUF file, or add it to your "
                f"knowledge directory (models table) following playbook H.4"
                + (f" (did you mean {e.suggestion!r}?)" if e.suggestion else "")
            ) from None
        raise


def from_hf_directory(path: Path) -> ModelSpec:
    """Architecture facts from a local HF model directory's config.json (no weights read)."""
    cfg_path = path / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdvisorError(f"model.name: {str(path)!r} has no config.json; expected a Hugging Face model directory") from None
    except (OSError, ValueError) as e:
        raise AdvisorError(f"model.name: {str(cfg_path)!r} is not readable JSON ({e.__class__.__name__})") from None
    cfg = cfg.get("text_config", cfg)  # multimodal wrappers keep the LM in text_config
    try:
        hidden = int(cfg.get("hidden_size") or cfg["n_embd"])
        layers = int(cfg.get("num_hidden_layers") or cfg["n_layer"])
        heads = int(cfg.get("num_attention_heads") or cfg["n_head"])
        kv = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or hidden // heads)
        inter = int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden)
        vocab = int(cfg["vocab_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise AdvisorError(f"model.name: {str(cfg_path)!r} lacks architecture field {e}") from None
    tied = bool(cfg.get("tie_word_embeddings", True))
    # Parameters from the architecture: attention (q, o + k, v) and a gated or plain MLP per layer.
    attn = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2
    gated = cfg.get("hidden_act", "silu") in ("silu", "swiglu") and "n_inner" not in cfg
    mlp = hidden * inter * (3 if gated else 2)
    params = layers * (attn + mlp) + vocab * hidden * (1 if tied else 2)
    return ModelSpec(
        id=path.name or str(path), family=str(cfg.get("model_type", "unknown")),
        hf_architecture=(cfg.get("architectures") or ["unknown"])[0], params_b=params / 1e9,
        layers=layers, hidden_size=hidden, attention_heads=heads, kv_heads=kv, head_dim=head_dim,
        intermediate_size=inter, vocab_size=vocab, tied_embeddings=tied,
        max_context=int(cfg.get("max_position_embeddings") or cfg.get("n_positions") or 4096),
        rope_theta=float(cfg.get("rope_theta") or 0.0), mmlu=None,
        source=f"{cfg_path} (config.json)", origin="local",
    )


def _from_gguf(path: Path) -> ModelSpec:
    if not path.is_file():
        raise AdvisorError(f"model.name: GGUF file {str(path)!r} not found")
    try:
        from advisor.probes.gguf_probe import read_gguf, to_model_spec
    except ImportError as e:
        raise AdvisorError(f"model.name: reading GGUF files needs the 'gguf' package ({e}); pip install gguf") from None
    try:
        return to_model_spec(read_gguf(str(path)))
    except ProbeError as e:  # the probe's one line names --model; here it is the answers' field
        raise AdvisorError(f"model.name: {e}") from None
