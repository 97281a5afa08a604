"""HTTP: the OpenAI-compatible API, document and feedback endpoints, and the chat page."""
