"""The knowledge base: TOML tables in knowledge/ (and the user's own), validated on load.

knowledge/schema.py declares each table's rows and bounds; knowledge/loader.py reads the files
and answers the look-ups (Knowledge). Nothing here computes advice.
"""

from advisor.knowledge.loader import (
    MAX_FILE_BYTES,
    IdMap,
    Knowledge,
    load_knowledge,
    read_regular_file,
    user_knowledge_dir,
)
from advisor.knowledge.schema import (
    MAX_TOKENS,
    MODEL_LIMITS,
    SCHEMAS,
    VALUE_BOUNDS,
    BackendRow,
    Bound,
    CompatRow,
    ContextRow,
    GateRow,
    GenericRow,
    GpuRow,
    MeasurementRow,
    ModelRow,
    PlaybookRow,
    QuantRow,
    RankingRow,
    Table,
    ValueRow,
    WorkloadRow,
    value_bound,
)

__all__ = [
    "MAX_FILE_BYTES", "MAX_TOKENS", "MODEL_LIMITS", "SCHEMAS", "VALUE_BOUNDS", "BackendRow", "Bound", "CompatRow",
    "ContextRow", "GateRow", "GenericRow", "GpuRow", "IdMap", "Knowledge", "MeasurementRow", "ModelRow",
    "PlaybookRow", "QuantRow", "RankingRow", "Table", "ValueRow", "WorkloadRow", "load_knowledge", "read_regular_file",
    "user_knowledge_dir", "value_bound",
]
