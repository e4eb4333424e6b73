"""Does the skip rule keep eager llama3.2-1b at 16K (69 GB predicted, OOM on an 80 GB H100) from running?"""
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from advisor.knowledge import load_knowledge
from advisor.probes.transformers_probe import probe_transformers
k = load_knowledge(None)
t = time.perf_counter()
r = probe_transformers("llama3.2-1b", knowledge=k, attention="eager", contexts=[2048, 8192, 16384], repetitions=1)
print(json.dumps({"curve": [p.model_dump() for p in r.curve], "warnings": r.warnings, "s": time.perf_counter() - t}, indent=1))
