"""Plain classes shared by the API and the worker: persistence, storage, callbacks, task processing."""
