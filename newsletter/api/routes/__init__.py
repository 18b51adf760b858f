"""HTTP routes of the web service, one module per concern."""
