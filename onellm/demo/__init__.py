"""`onellm demo`: a local gradio page to caption and chat about a file of any installed modality."""
