"""The add-on's operators, one module per concern."""
