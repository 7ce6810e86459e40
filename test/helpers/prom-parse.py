"""Parses Prometheus text exposition from stdin with the official Python client's parser
(Debian: python3-prometheus-client) and prints the families as JSON. Exits non-zero on
anything the parser rejects."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    out.append({
        "name": family.name,
        "type": family.type,
        "samples": [
            {"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)}
            for s in family.samples
        ],
    })
print(json.dumps(out))
