"""Evaluation: text metrics stated with their tokenization, perplexity, and the sentiment judge."""
