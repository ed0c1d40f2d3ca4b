"""colo-compare's channels: net-filter framing, packets, verdicts, captures."""
