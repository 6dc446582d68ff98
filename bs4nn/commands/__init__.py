"""The ``bs4nn`` sub-commands: argument parsing on top of the library."""
