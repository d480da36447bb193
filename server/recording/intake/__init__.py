"""100ms webhooks once stored: the inbox that handles each event until it succeeds, and where it goes."""
