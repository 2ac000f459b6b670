"""The `flopgap` command line: every command lives here and nothing else imports this package."""
