"""The `colo` command line: one module per group of subcommands."""
