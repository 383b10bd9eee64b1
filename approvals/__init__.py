"""The product: documents, reviews and the summarize-approve-persist workflow (issue 6 onward)."""
