"""The add-on's user interface."""
