"""The bs4nn sub-commands: one module per command, each with add_arguments(parser) and run(args)."""
