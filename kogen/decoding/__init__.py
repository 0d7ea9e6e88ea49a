"""Decoding past `model.generate`: contrastive search and FUDGE sentiment control."""
