"""`onellm serve`: the OpenAI chat-completions API over a OneLLM model, every registered
modality through content parts, concurrent requests batched into one `generate`.

The data path, one file per stage: app.py (HTTP, limits, auth) -> request.py (the body's
fields) -> parts.py (content parts -> files in memory) -> conversation.py (messages ->
prompt and loaded inputs) -> batcher.py (queue, batches, generate) -> answer_text.py (stop
strings, streamed deltas); errors.py is the OpenAI error body, metrics.py counts, cli.py
starts it."""
