"""Summarizers behind one small interface: OpenAI, Amazon Bedrock, and an offline default (issue 6)."""
