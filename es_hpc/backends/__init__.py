"""Generation backends: a model held in memory, batched greedy generation, save_pretrained."""
