"""Database backends tuned for a journal's many small write transactions."""
