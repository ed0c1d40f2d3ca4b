"""The sans-IO core: messages, dialects, codec, events, the machines, faults."""
