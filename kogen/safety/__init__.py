"""Safety: a Korean toxicity/bias classifier and the filter that uses it in generation."""
