"""Which models we consider: the one the user named (catalog, HF directory, GGUF file), or the catalog."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import ValidationError

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


CONFIG_MAX_BYTES = 16 * 2**20  # a config.json is a few KB; this is no config


def _short(v: object, limit: int = 40) -> str:
    r = repr(v).replace("\n", "\\n")
    return r if len(r) <= limit else r[: limit - 3] + "..."


# ------------------------------------------------------------------ what transformers assumes
# Keys a config.json may leave out take the model class's defaults (transformers
# models/<type>/configuration_<type>.py, checked against transformers 5.24). Unknown families get
# the safe side: an untied LM head (counted, not assumed shared) and no sliding window.
TIED_BY_DEFAULT = {
    "llama": False, "mistral": False, "mixtral": False, "qwen2": False, "qwen2_moe": False, "qwen3": False,
    "qwen3_moe": False, "deepseek_v2": False, "deepseek_v3": False, "phi": False, "phi3": False,
    "olmo": False, "olmo2": False, "granite": False, "gemma": True, "gemma2": True, "gemma3": True,
    "gemma3_text": True, "gpt2": True, "falcon": True, "starcoder2": True, "cohere": True, "cohere2": True,
}
# MLPs with two matrices (up, down) instead of a gated three (gate, up, down)
PLAIN_MLP = {"gpt2", "gpt_neox", "gptj", "phi", "falcon", "bloom", "opt", "starcoder2", "gpt_bigcode", "mpt",
             "codegen", "biogpt"}
GATED_MLP = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "deepseek_v2",
             "deepseek_v3", "gemma", "gemma2", "gemma3", "gemma3_text", "phi3", "olmo", "olmo2", "granite",
             "cohere", "cohere2", "internlm2", "stablelm"}
# Keys a multimodal wrapper's sparse text_config leaves to the class defaults (Gemma 3's does).
FAMILY_DEFAULTS: dict[str, dict[str, object]] = {
    "gemma3_text": {"vocab_size": 262208, "head_dim": 256, "num_attention_heads": 8, "num_key_value_heads": 4,
                    "max_position_embeddings": 131072, "sliding_window": 4096, "rope_theta": 1000000.0},
    "gemma2": {"vocab_size": 256000, "head_dim": 256, "max_position_embeddings": 8192, "sliding_window": 4096},
    "mistral": {"sliding_window": 4096},
}
FAMILY_DEFAULTS["gemma3"] = FAMILY_DEFAULTS["gemma3_text"]
DEFAULTS_SOURCE = "transformers configuration defaults for"

# Mixture-of-experts families the advisor can count (expert keys differ per family).
MOE_FAMILIES = {"mixtral": "mixtral", "qwen2_moe": "qwen_moe", "qwen3_moe": "qwen_moe",
                "deepseek_v2": "deepseek", "deepseek_v3": "deepseek"}
MOE_ARCHITECTURES = {"MixtralForCausalLM": "mixtral", "Qwen2MoeForCausalLM": "qwen_moe",
                     "Qwen3MoeForCausalLM": "qwen_moe", "DeepseekV2ForCausalLM": "deepseek",
                     "DeepseekV3ForCausalLM": "deepseek"}
MOE_KEYS = ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts", "n_experts",
            "num_experts_per_tok", "num_experts_per_token", "moe_topk", "moe_intermediate_size",
            "n_shared_experts", "shared_expert_intermediate_size", "expert_interval")
MLA_KEYS = ("kv_lora_rank", "q_lora_rank")
# Layers that are not attention (state-space, linear attention, recurrent), or attention whose shape
# changes from layer to layer: no KV formula of ours holds.
NOT_ATTENTION = "has layers other than attention (state-space, linear or recurrent)"
PER_LAYER_SHAPES = "has attention layers of different shapes (per-layer heads, head sizes, chunks or shared KV)"
UNMODELLED_KEYS = {
    "layers_block_type": NOT_ATTENTION, "hybrid_override_pattern": NOT_ATTENTION, "attn_layer_period": NOT_ATTENTION,
    "attn_layer_offset": NOT_ATTENTION, "mamba_d_state": NOT_ATTENTION, "mamba_expand": NOT_ATTENTION,
    "ssm_cfg": NOT_ATTENTION, "ssm_state_size": NOT_ATTENTION, "linear_attn_config": NOT_ATTENTION,
    "full_attention_interval": NOT_ATTENTION, "attn_type_list": NOT_ATTENTION, "block_types": NOT_ATTENTION,
    "linear_num_value_heads": NOT_ATTENTION,
    "global_head_dim": PER_LAYER_SHAPES, "num_global_key_value_heads": PER_LAYER_SHAPES,
    "num_kv_shared_layers": PER_LAYER_SHAPES, "attention_chunk_size": PER_LAYER_SHAPES,
    "hidden_size_per_layer_input": PER_LAYER_SHAPES,
}
LAYER_TYPES = ("full_attention", "sliding_attention")
SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
                      "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
                      "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75}
FILE_DTYPE_QUANT = {"BF16": "bf16", "F16": "fp16", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}
QUANT_METHODS = {"fp8": "fp8", "awq": "awq", "gptq": "gptq"}
HEADER_MAX_BYTES = 100 * 2**20  # the safetensors format's own limit on a header


def _truthy(v: object) -> bool:
    return v not in (None, 0, False, "", [], {})


class _Config:
    """Typed reads from a config.json object; each bad value is one line naming the file and the key.

    `defaults` are the model class's own defaults for keys the file leaves out (never for a key
    written as null); the ones used are listed in `defaulted`, for the model's source line."""

    def __init__(self, cfg: dict, where: str, defaults: dict | None = None):
        self.cfg, self.where = cfg, where
        self.defaults = defaults or {}
        self.defaulted: list[str] = []

    def fail(self, what: str) -> AdvisorError:
        return AdvisorError(f"model.name: {self.where}: {what}")

    def pick(self, *keys: str) -> tuple[str, object] | None:
        """The first of `keys` present with a value (null counts as absent, as transformers reads it),
        else the first with a class default the file left out."""
        for key in keys:
            if self.cfg.get(key) is not None:
                return key, self.cfg[key]
        for key in keys:
            if key not in self.cfg and key in self.defaults:
                self.defaulted.append(key)
                return key, self.defaults[key]
        return None

    def whole(self, field: str, *keys: str, default: int | None = None, why: str = "") -> int:
        """A count (layers, heads, sizes): a whole number within the catalog's bounds for `field`."""
        from advisor.knowledge import MODEL_LIMITS

        got = self.pick(*keys)
        if got is None:
            if default is None:
                also = f" (or {', '.join(keys[1:])})" if len(keys) > 1 else ""
                raise self.fail(f"lacks {keys[0]}{also}; " + (why or "expected a Hugging Face config.json with "
                                                                    "the model's architecture"))
            return default
        key, v = got
        lo, hi = MODEL_LIMITS.get(field, (0, 2**31))
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or not float(v).is_integer() or not lo <= v <= hi):
            raise self.fail(f"{key} = {_short(v)} is not allowed; expected a whole number from {lo:,} to {hi:,}")
        return int(v)

    def number(self, field: str, key: str, default: float) -> float:
        from advisor.knowledge import MODEL_LIMITS

        got = self.pick(key)
        if got is None:
            return default
        v = got[1]
        lo, hi = MODEL_LIMITS[field]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise self.fail(f"{key} = {_short(v)} is not allowed; expected a number from {lo:g} to {hi:g}")
        return float(v)

    def _typed(self, key: str, default, kind: type, expected: str):
        """config[key] when it is a `kind`, `default` when absent; else one line saying what was `expected`."""
        v = self.cfg.get(key)
        if v is None:
            return default
        if not isinstance(v, kind):
            raise self.fail(f"{key} = {_short(v)} is not allowed; expected {expected}")
        return v

    def flag(self, key: str, default: bool) -> bool:
        return self._typed(key, default, bool, "true or false")

    def text(self, key: str, default: str) -> str:
        return self._typed(key, default, str, "a string")

    def whole_list(self, key: str, lo: int, hi: int) -> list[int]:
        v = self.cfg.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi
                                               for x in v):
            raise self.fail(f"{key} = {_short(v)} is not allowed; expected a list of layer numbers from {lo} to {hi}")
        return v


def _read_config(cfg_path: Path) -> dict:
    from advisor.knowledge import read_regular_file

    where = str(cfg_path)
    try:
        data = read_regular_file(cfg_path, CONFIG_MAX_BYTES)
    except FileNotFoundError:
        raise AdvisorError(f"model.name: {str(cfg_path.parent)!r} has no config.json; "
                           "expected a Hugging Face model directory") from None
    except OSError as e:
        raise AdvisorError(f"model.name: {where}: cannot read ({e.strerror or e.__class__.__name__})") from None
    except ValueError as e:
        raise AdvisorError(f"model.name: {where}: {e}; expected a Hugging Face config.json") from None
    try:
        cfg = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise AdvisorError(f"model.name: {where}: not readable JSON ({e.__class__.__name__})") from None
    if not isinstance(cfg, dict):
        raise AdvisorError(f"model.name: {where}: expected a JSON object, found {type(cfg).__name__}")
    return cfg


def _refuse_unmodelled(c: _Config, family: str, kind: str | None) -> None:
    """An architecture the advisor cannot count is one line naming what it found, never a dense guess."""
    for key, what in UNMODELLED_KEYS.items():
        if _truthy(c.cfg.get(key)):
            raise c.fail(f"{key} = {_short(c.cfg[key])}: model_type {family!r} {what}, which the advisor cannot "
                         "model; it models transformer layers with full or sliding-window attention, MLA and "
                         "mixture-of-experts MLPs")
    if kind is None:
        moe = [f"{k} = {_short(c.cfg[k])}" for k in MOE_KEYS if _truthy(c.cfg.get(k))]
        if moe:
            raise c.fail(f"model_type {family!r} has mixture-of-experts keys ({', '.join(moe)}) the advisor cannot "
                         f"model; it models the experts of {', '.join(sorted(MOE_FAMILIES))}")
    if kind != "deepseek":
        mla = [f"{k} = {_short(c.cfg[k])}" for k in MLA_KEYS if _truthy(c.cfg.get(k))]
        if mla:
            raise c.fail(f"model_type {family!r} has latent-attention keys ({', '.join(mla)}) the advisor cannot "
                         "model; it models MLA for deepseek_v2 and deepseek_v3")


def _moe_fields(c: _Config, kind: str, family: str, layers: int) -> dict:
    """Experts, active experts, expert and shared widths, and the dense layers, per family."""
    why = f"a {family} model is a mixture of experts and needs it"
    if kind == "mixtral":
        experts = c.whole("experts", "num_local_experts", "num_experts", why=why)
        return {"experts": experts, "experts_active": c.whole("experts_active", "num_experts_per_tok", why=why)}
    if kind == "qwen_moe":
        experts = c.whole("experts", "num_experts", why=why)
        step = c.whole("dense_layers", "decoder_sparse_step", default=1)
        if step < 1:
            raise c.fail(f"decoder_sparse_step = {step} is not allowed; expected a whole number from 1")
        dense_only = set(c.whole_list("mlp_only_layers", 0, layers - 1))
        moe = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
        return {"experts": experts, "experts_active": c.whole("experts_active", "num_experts_per_tok", why=why),
                "moe_intermediate_size": c.whole("moe_intermediate_size", "moe_intermediate_size", why=why),
                "shared_intermediate_size": c.whole("shared_intermediate_size", "shared_expert_intermediate_size",
                                                    default=0),
                "dense_layers": layers - moe}
    # deepseek: routed + shared experts, the first k layers dense, then every moe_layer_freq-th layer MoE
    experts = c.whole("experts", "n_routed_experts", why=why)
    width = c.whole("moe_intermediate_size", "moe_intermediate_size", why=why)
    shared = c.whole("experts", "n_shared_experts", default=0)
    first = c.whole("dense_layers", "first_k_dense_replace", default=0)
    freq = c.whole("dense_layers", "moe_layer_freq", default=1)
    if freq < 1:
        raise c.fail(f"moe_layer_freq = {freq} is not allowed; expected a whole number from 1")
    moe = sum(1 for i in range(layers) if i >= first and i % freq == 0)
    return {"experts": experts, "experts_active": c.whole("experts_active", "num_experts_per_tok", why=why),
            "moe_intermediate_size": width, "shared_intermediate_size": shared * width, "dense_layers": layers - moe}


def _mla_fields(c: _Config, family: str) -> dict:
    why = f"a {family} model uses multi-head latent attention (MLA) and needs it"
    if "q_lora_rank" not in c.cfg:  # null is a real value: a full-rank q_proj (DeepSeek-V2-Lite)
        raise c.fail(f"lacks q_lora_rank; {why} (null for a full-rank query projection)")
    out = {"kv_lora_rank": c.whole("kv_lora_rank", "kv_lora_rank", why=why),
           "q_lora_rank": c.whole("q_lora_rank", "q_lora_rank", default=0),
           "qk_rope_head_dim": c.whole("qk_rope_head_dim", "qk_rope_head_dim", why=why),
           "qk_nope_head_dim": c.whole("qk_nope_head_dim", "qk_nope_head_dim", why=why),
           "v_head_dim": c.whole("v_head_dim", "v_head_dim", why=why)}
    for key in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
        if out[key] < 1:
            raise c.fail(f"{key} = {out[key]} is not allowed; expected a whole number from 1")
    return out


def _sliding_fields(c: _Config, family: str, layers: int) -> tuple[dict, str]:
    """(sliding_window, sliding_layers) and how they were read. Families whose pattern is not known
    here are counted with every layer attending to the whole context: an upper bound, never less."""
    layer_types = c.cfg.get("layer_types")
    if layer_types is not None:
        if not isinstance(layer_types, list) or not all(isinstance(t, str) for t in layer_types):
            raise c.fail(f"layer_types = {_short(layer_types)} is not allowed; expected a list of strings")
        if len(layer_types) != layers:
            raise c.fail(f"layer_types lists {len(layer_types)} layers; expected num_hidden_layers ({layers})")
        other = sorted(set(layer_types) - set(LAYER_TYPES))
        if other:
            raise c.fail(f"layer_types has {other[0]!r} layers, which the advisor cannot model; it models "
                         f"{' and '.join(LAYER_TYPES)}")
        count, how = layer_types.count("sliding_attention"), "layer_types"
    elif family == "gemma2":
        count, how = (layers + 1) // 2, "every other layer (Gemma 2)"
    elif family in ("gemma3", "gemma3_text"):
        pattern = c.whole("layers", "sliding_window_pattern", "_sliding_window_pattern", default=6)
        count, how = layers - layers // pattern, f"{pattern - 1} in {pattern} layers (Gemma 3)"
    elif family in ("mistral", "mixtral"):
        count, how = layers, "every layer"
    elif family in ("qwen2", "qwen3") and c.flag("use_sliding_window", False):
        first = c.whole("dense_layers", "max_window_layers", default=28 if family == "qwen2" else layers)
        count, how = max(layers - first, 0), f"layers from max_window_layers ({first})"
    else:
        return {}, ""
    if not count:
        return {}, ""
    got = c.pick("sliding_window")
    if got is None:  # null: the model has no window after all
        return {}, ""
    window = c.whole("sliding_window", "sliding_window")
    if window < 1:
        return {}, ""
    return {"sliding_window": window, "sliding_layers": count}, f"sliding window {window:,} on {count} layers ({how})"


def _safetensors_weights(path: Path, layers: int, c: _Config) -> dict | None:
    """Exact weight bytes from the *.safetensors headers (8-byte length + JSON; no tensor data is
    read), as hf-mem does. Layers past num_hidden_layers (DeepSeek's multi-token-prediction module,
    loaded only for speculative decoding) are left out. None when the folder has no such files."""
    files = _weight_files(path)
    if not files:
        return None
    by_dtype: dict[str, float] = {}
    total = elements = skipped = 0.0
    for f in files:
        header = _safetensors_header(f)
        for name, t in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(t, dict) or not isinstance(t.get("dtype"), str) or not isinstance(t.get("shape"), list):
                raise AdvisorError(f"model.name: {f}: tensor {_short(name)} has no dtype and shape; "
                                   "not a safetensors header")
            offsets = t.get("data_offsets")
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(x, int) for x in offsets)
                    and 0 <= offsets[0] <= offsets[1]):
                raise AdvisorError(f"model.name: {f}: tensor {_short(name)} has data_offsets = {_short(offsets)}; "
                                   "not a safetensors header")
            nbytes = offsets[1] - offsets[0]
            parts = name.split(".")
            if "layers" in parts:
                i = parts.index("layers")
                if i + 1 < len(parts) and parts[i + 1].isdigit() and int(parts[i + 1]) >= layers \
                        and parts[0] in ("model", "transformer"):
                    skipped += nbytes
                    continue
            total += nbytes
            n = 1
            for d in t["shape"]:
                n *= d if isinstance(d, int) and d >= 0 else 0
            elements += n
            if len(t["shape"]) >= 2:
                by_dtype[t["dtype"]] = by_dtype.get(t["dtype"], 0.0) + nbytes
    if total <= 0:
        return None
    main = max(by_dtype, key=by_dtype.__getitem__) if by_dtype else ""
    return {"bytes": total, "elements": elements, "dtype": main, "files": len(files), "skipped": skipped}


def _weight_files(path: Path) -> list[Path]:
    """The checkpoint's *.safetensors files: those model.safetensors.index.json maps, else every one in
    the folder but a second copy (Mistral ships consolidated.safetensors beside model-*.safetensors)
    and adapters."""
    from advisor.knowledge import read_regular_file

    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            data = json.loads(read_regular_file(index, CONFIG_MAX_BYTES * 4).decode("utf-8"))
            names = set(data["weight_map"].values())
            if not all(isinstance(n, str) and "/" not in n and n.endswith(".safetensors") for n in names):
                raise ValueError("weight_map")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise AdvisorError(f"model.name: {index}: not a safetensors index ({e.__class__.__name__}); "
                               "expected a weight_map of tensor names to *.safetensors files") from None
        return sorted(path / n for n in names if (path / n).is_file())
    try:
        files = sorted(p for p in path.iterdir() if p.name.endswith(".safetensors") and p.is_file()
                       and not p.name.startswith("adapter_"))
    except OSError:
        return []
    sharded = [p for p in files if not p.name.startswith("consolidated")]
    return sharded or files


def _safetensors_header(f: Path) -> dict:
    try:
        with open(f, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("shorter than its 8-byte header length")
            n = int.from_bytes(head, "little")
            if not 2 <= n <= HEADER_MAX_BYTES:
                raise ValueError(f"header length {n:,} bytes")
            data = fh.read(n)
            if len(data) < n:
                raise ValueError("shorter than its header")
        header = json.loads(data.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        return header
    except OSError as e:
        raise AdvisorError(f"model.name: {f}: cannot read ({e.strerror or e.__class__.__name__})") from None
    except (ValueError, RecursionError) as e:
        raise AdvisorError(f"model.name: {f}: not a safetensors file ({str(e)[:80] or e.__class__.__name__})") from None


def _file_quantization(raw: dict, dtype: str) -> str:
    """The advisor's word for the precision the checkpoint is stored at: its quantization_config,
    else the dtype most of its matrices are stored in ('' when neither says one the tables know)."""
    qc = raw.get("quantization_config")
    if isinstance(qc, dict):
        method = qc.get("quant_method")
        if method in QUANT_METHODS:
            return QUANT_METHODS[method]
        if method == "bitsandbytes":
            return "nf4" if qc.get("load_in_4bit") else "int8" if qc.get("load_in_8bit") else ""
        return ""
    return FILE_DTYPE_QUANT.get(dtype, "")


def from_hf_directory(path: Path) -> ModelSpec:
    """Architecture facts from a local HF model directory's config.json (no weights read; the
    *.safetensors headers, when the files are there, give the exact weight bytes).

    Mixture-of-experts MLPs (Mixtral, Qwen MoE, DeepSeek), DeepSeek's latent attention (MLA) and
    sliding-window layers (Gemma 2/3, Mistral v0.1) are counted as such; keys the file leaves out
    take the model class's transformers defaults, and those used are named in the source. An
    architecture it cannot count (unknown experts, state-space or linear-attention layers, missing
    expert or MLA keys) is one line naming what is missing (exit 2), never a dense guess.

    Every figure is checked against the catalog's bounds (advisor.knowledge.MODEL_LIMITS): a
    negative layer count, a string where a number belongs or 1e8 KV heads is one line naming
    the file and the key (exit 2), never a traceback.
    """
    cfg_path = path / "config.json"
    raw = _read_config(cfg_path)
    where = str(cfg_path)
    text_config = raw.get("text_config")
    if text_config is not None and not isinstance(text_config, dict):
        raise AdvisorError(f"model.name: {where}: text_config = {_short(text_config)} is not allowed; "
                           "expected an object (or no text_config)")
    if text_config is not None:  # multimodal wrappers keep the LM in text_config
        where += " (text_config)"
    cfg = text_config if text_config is not None else raw
    family = _Config(cfg, where).text("model_type", "") or _Config(raw, str(cfg_path)).text("model_type", "unknown")
    c = _Config(cfg, where, FAMILY_DEFAULTS.get(family))
    # a multimodal wrapper names its class at the top level; its text_config may not
    a = c if c.cfg.get("architectures") is not None else _Config(raw, str(cfg_path))
    arch = a.cfg.get("architectures")
    if arch is not None and not (isinstance(arch, list) and all(isinstance(x, str) for x in arch)):
        raise a.fail(f"architectures = {_short(arch)} is not allowed; expected a list of class names")
    kind = MOE_FAMILIES.get(family) or MOE_ARCHITECTURES.get((arch or [""])[0] if arch else "")
    _refuse_unmodelled(c, family, kind)

    hidden = c.whole("hidden_size", "hidden_size", "n_embd", "d_model")
    layers = c.whole("layers", "num_hidden_layers", "n_layer", "num_layers")
    heads = c.whole("attention_heads", "num_attention_heads", "n_head")
    kv = c.whole("kv_heads", "num_key_value_heads", default=heads)
    if kv > heads:
        raise c.fail(f"num_key_value_heads = {kv} is not allowed; expected at most num_attention_heads ({heads})")
    extra: dict = {}
    if kind == "deepseek":
        extra.update(_mla_fields(c, family))
        head_dim = extra["qk_nope_head_dim"] + extra["qk_rope_head_dim"]
    else:
        if c.pick("head_dim") is None and hidden < heads:
            raise c.fail(f"hidden_size = {hidden} is smaller than num_attention_heads = {heads}; "
                         "expected a head_dim key or hidden_size >= heads")
        head_dim = c.whole("head_dim", "head_dim", default=hidden // heads)
    inter = c.whole("intermediate_size", "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    vocab = c.whole("vocab_size", "vocab_size")
    max_context = c.whole("max_context", "max_position_embeddings", "n_positions", default=4096)
    rope_theta = c.number("rope_theta", "rope_theta", 0.0)
    tie_default = TIED_BY_DEFAULT.get(family, False)
    tied = c.flag("tie_word_embeddings", _Config(raw, str(cfg_path)).flag("tie_word_embeddings", tie_default))
    if family in PLAIN_MLP:
        gated = False
    elif family in GATED_MLP:
        gated = True
    else:  # an unknown family: SwiGLU-style activations mean a gated MLP
        gated = c.cfg.get("hidden_act", "silu") in ("silu", "swiglu") and "n_inner" not in c.cfg
    if kind is not None:
        extra.update(_moe_fields(c, kind, family, layers))
    sliding, sliding_how = _sliding_fields(c, family, layers)
    extra.update(sliding)
    dtype = next((v for v in (cfg.get("torch_dtype"), cfg.get("dtype"), raw.get("torch_dtype"), raw.get("dtype"))
                  if v in ("bfloat16", "float16", "float32")), "")

    from advisor.knowledge import MODEL_LIMITS, ModelRow

    fields = dict(id=path.name or str(path), family=family, hf_architecture=(arch or ["unknown"])[0],
                  layers=layers, hidden_size=hidden, attention_heads=heads, kv_heads=kv, head_dim=head_dim,
                  intermediate_size=inter, vocab_size=vocab, tied_embeddings=tied, max_context=max_context,
                  rope_theta=rope_theta, mmlu=None, origin="local", gated_mlp=gated, dtype=dtype, **extra)
    params = ModelSpec.model_construct(params_b=1.0, **fields).architecture_params()
    lo, hi = MODEL_LIMITS["params_b"]
    if not lo <= params / 1e9 <= hi:
        raise c.fail(f"its sizes imply {params / 1e9:.4g} B parameters; expected {lo:g} to {hi:,} B")
    source = f"{cfg_path} (config.json"
    if c.defaulted:
        source += f"; {DEFAULTS_SOURCE} {family}: {', '.join(sorted(set(c.defaulted)))}"
    if "tie_word_embeddings" not in cfg and "tie_word_embeddings" not in raw:
        source += (f"; tie_word_embeddings {'true' if tied else 'false'} by the {family} default"
                   if family in TIED_BY_DEFAULT else "; tie_word_embeddings absent: LM head counted as untied")
    if sliding_how:
        source += f"; {sliding_how}"
    source += ")"
    file_quant = _file_quantization(raw, "")
    weights = _safetensors_weights(path, layers, c)
    if weights is not None:
        file_quant = _file_quantization(raw, weights["dtype"])
        fields["weight_bytes"] = weights["bytes"]
        source += (f"; weights {weights['bytes'] / 2**30:,.2f} GiB from {weights['files']} safetensors header(s)"
                   f" ({weights['dtype'] or 'no matrices'}"
                   + (f", {weights['elements'] / 1e9:,.2f} B stored elements" if weights["dtype"] in FILE_DTYPE_QUANT
                      else "")
                   + (f"; {weights['skipped'] / 2**30:,.2f} GiB past layer {layers - 1} left out (MTP)"
                      if weights["skipped"] else "") + ")")
    fields["file_quantization"] = file_quant
    try:
        row = ModelRow(params_b=params / 1e9, source=source, **fields)
    except ValidationError as e:  # the checks above should leave nothing, but never a traceback
        err = e.errors()[0]
        loc = ".".join(map(str, err["loc"])) or "config"
        raise c.fail(f"{loc}: {err['msg'].removeprefix('Value error, ')}") from None
    return ModelSpec(**row.model_dump())


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
        msg = str(e)
        raise AdvisorError(f"model.name: {msg.removeprefix('--model ')}") from None

