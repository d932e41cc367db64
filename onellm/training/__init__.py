"""Training with Lightning: the only package in onellm that imports lightning."""
