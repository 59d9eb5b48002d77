"""Output writers: each consumes the build's segments and writes one family of formats."""
