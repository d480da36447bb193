"""100ms: token minting, the REST client, and a faithful local simulator (shared/reference/hms-contract.md)."""
