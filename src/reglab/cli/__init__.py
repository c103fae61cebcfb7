"""The command line: commands (exit codes in one place), the demo and the benchmark."""
