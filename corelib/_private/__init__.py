"""minray's runtime internals. Nothing here is public API; libraries must not import it."""
