"""The eval export kind: labelled sampled items with pi, weight and f (registered on import)."""
