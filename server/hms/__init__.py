"""100ms: token minting, the REST client, and a faithful local simulator (see hms-contract.md)."""
