"""Data: the manifest format, datasets over it, recipes, converters and the synthetic world."""
