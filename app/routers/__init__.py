"""HTTP and WebSocket transport: routes parse requests, call services and shape responses."""
