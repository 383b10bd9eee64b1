"""Map and parallel: their results, completion policies and coordinator (the official layout)."""
