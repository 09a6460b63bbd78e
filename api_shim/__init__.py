"""segments API shim: the HTTP face of the service."""
