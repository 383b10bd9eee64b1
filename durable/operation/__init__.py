"""One module per operation kind."""
