"""The one-shot command line: one small module per verb."""
