"""I/O around the core: the TCP engine, the proxy, colo node, QMP, memtune."""
