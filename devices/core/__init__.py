"""What every flopgap package may import: the user-error base, exit codes, file digests. Imports nothing of flopgap."""
