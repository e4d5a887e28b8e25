"""HH-RLHF harmless-base test split as interactions (shared by the sampler's benchmarks).

Each line has the same conversation ending in a chosen and a rejected final assistant turn: split
on the last ``\\n\\nAssistant:`` into the prompt turns and the response. chosen = good (1).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

DATA = Path("/work/shared/data/hh-rlhf-harmless/harmless-base-test.jsonl.gz")
_TURN = re.compile(r"\n\n(Human|Assistant): ")


def messages_of(prompt: str) -> list[dict[str, str]]:
    parts = _TURN.split(prompt)
    messages = []
    for role, content in zip(parts[1::2], parts[2::2], strict=False):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content})
    return messages


def load() -> list[dict]:
    """[{pair, messages, response, good}] in file order: 2 rows (chosen, rejected) per pair."""
    rows = []
    with gzip.open(DATA, "rt") as fh:
        for pair, line in enumerate(fh):
            record = json.loads(line)
            for key, good in (("chosen", 1), ("rejected", 0)):
                prompt, _, response = record[key].rpartition("\n\nAssistant:")
                rows.append(
                    {
                        "pair": pair,
                        "messages": messages_of(prompt),
                        "response": response.strip(),
                        "good": good,
                    }
                )
    return rows
