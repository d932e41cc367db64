"""Model parts: shared encoder, universal projection, modality merge and the OneLLM wrapper."""
