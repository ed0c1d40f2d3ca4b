"""QEMU's migration stream: RAM page records, the encoder and the decoders."""
