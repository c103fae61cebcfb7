"""The command line: commands (exit codes in one place), the demo and the benchmark.

The top of the stack: may import everything; nothing imports it."""
