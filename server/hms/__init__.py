"""100ms: token minting, the REST client, and a faithful local simulator (see docs/100ms.md)."""
