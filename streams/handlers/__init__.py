"""Stage handlers: plain async functions `(event, context) -> events to publish`."""
