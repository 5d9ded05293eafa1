"""Command-line interface: ``sar2opt SUBCOMMAND``; one module per subcommand."""
