"""Web service: ``app.create_app`` builds the tracking app (clicks, opens, unsubscribe,
preferences, view in browser); ``newsletter serve`` runs it with uvicorn."""
