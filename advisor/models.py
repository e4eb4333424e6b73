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


class _Config:
    """Typed reads from a config.json object; each bad value is one line naming the file and the key."""

    def __init__(self, cfg: dict, where: str):
        self.cfg, self.where = cfg, where

    def fail(self, what: str) -> AdvisorError:
        return AdvisorError(f"model.name: {self.where}: {what}")

    def pick(self, *keys: str) -> tuple[str, object] | None:
        """The first of `keys` present with a value (null counts as absent, as transformers reads it)."""
        for key in keys:
            if self.cfg.get(key) is not None:
                return key, self.cfg[key]
        return None

    def whole(self, field: str, *keys: str, default: int | None = None) -> int:
        """A count (layers, heads, sizes): a whole number within the catalog's bounds for `field`."""
        from advisor.knowledge import MODEL_LIMITS

        got = self.pick(*keys)
        if got is None:
            if default is None:
                also = f" (or {', '.join(keys[1:])})" if len(keys) > 1 else ""
                raise self.fail(f"lacks {keys[0]}{also}; expected a Hugging Face config.json with the "
                                "model's architecture")
            return default
        key, v = got
        lo, hi = MODEL_LIMITS[field]
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and float(v).is_integer()
        if not ok or not lo <= v <= hi:
            raise self.fail(f"{key} = {_short(v)} is not allowed; expected a whole number from {lo:,} to {hi:,}")
        return int(v)

    def number(self, field: str, key: str, default: float) -> float:
        from advisor.knowledge import MODEL_LIMITS

        v = self.cfg.get(key)
        if v is None:
            return default
        lo, hi = MODEL_LIMITS[field]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise self.fail(f"{key} = {_short(v)} is not allowed; expected a number from {lo:g} to {hi:g}")
        return float(v)

    def flag(self, key: str, default: bool) -> bool:
        v = self.cfg.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.fail(f"{key} = {_short(v)} is not allowed; expected true or false")
        return v

    def text(self, key: str, default: str) -> str:
        v = self.cfg.get(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self.fail(f"{key} = {_short(v)} is not allowed; expected a string")
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


def from_hf_directory(path: Path) -> ModelSpec:
    """Architecture facts from a local HF model directory's config.json (no weights read).

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
    c = _Config(text_config if text_config is not None else raw, where)
    hidden = c.whole("hidden_size", "hidden_size", "n_embd", "d_model")
    layers = c.whole("layers", "num_hidden_layers", "n_layer", "num_layers")
    heads = c.whole("attention_heads", "num_attention_heads", "n_head")
    kv = c.whole("kv_heads", "num_key_value_heads", default=heads)
    if kv > heads:
        raise c.fail(f"num_key_value_heads = {kv} is not allowed; expected at most num_attention_heads ({heads})")
    if c.pick("head_dim") is None and hidden < heads:
        raise c.fail(f"hidden_size = {hidden} is smaller than num_attention_heads = {heads}; "
                     "expected a head_dim key or hidden_size >= heads")
    head_dim = c.whole("head_dim", "head_dim", default=hidden // heads)
    inter = c.whole("intermediate_size", "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    vocab = c.whole("vocab_size", "vocab_size")
    max_context = c.whole("max_context", "max_position_embeddings", "n_positions", default=4096)
    rope_theta = c.number("rope_theta", "rope_theta", 0.0)
    tied = c.flag("tie_word_embeddings", True)
    family = c.text("model_type", "unknown")
    # a multimodal wrapper names its class at the top level; its text_config may not
    a = c if c.cfg.get("architectures") is not None else _Config(raw, str(cfg_path))
    arch = a.cfg.get("architectures")
    if arch is not None and not (isinstance(arch, list) and all(isinstance(x, str) for x in arch)):
        raise a.fail(f"architectures = {_short(arch)} is not allowed; expected a list of class names")
    # Parameters from the architecture: attention (q, o + k, v) and a gated or plain MLP per layer.
    attn = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2
    gated = c.cfg.get("hidden_act", "silu") in ("silu", "swiglu") and "n_inner" not in c.cfg
    mlp = hidden * inter * (3 if gated else 2)
    params = layers * (attn + mlp) + vocab * hidden * (1 if tied else 2)
    from advisor.knowledge import MODEL_LIMITS, ModelRow

    lo, hi = MODEL_LIMITS["params_b"]
    if not lo <= params / 1e9 <= hi:
        raise c.fail(f"its sizes imply {params / 1e9:.4g} B parameters; expected {lo:g} to {hi:,} B")
    try:
        row = ModelRow(
            id=path.name or str(path), family=family,
            hf_architecture=(arch or ["unknown"])[0], params_b=params / 1e9,
            layers=layers, hidden_size=hidden, attention_heads=heads, kv_heads=kv, head_dim=head_dim,
            intermediate_size=inter, vocab_size=vocab, tied_embeddings=tied,
            max_context=max_context, rope_theta=rope_theta, mmlu=None,
            source=f"{cfg_path} (config.json)", origin="local",
        )
    except ValidationError as e:  # the checks above should leave nothing, but never a traceback
        err = e.errors()[0]
        raise c.fail(f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}") from None
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

