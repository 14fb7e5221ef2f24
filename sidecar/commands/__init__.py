"""The CLI's subcommands: each module offers `add_parser(subcommands)` and sets `run` on its parser."""
