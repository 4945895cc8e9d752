"""Pure core of notebook-http mode: notebook loading, cell parsing, REQUEST building and Swagger output."""
