"""Benchmarks: retrieval quality against a plain LangChain pipeline, and speed."""
