"""Conversion between the published OneLLM checkpoint layout and ours."""
