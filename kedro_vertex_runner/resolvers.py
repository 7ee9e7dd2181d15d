"""``${vertex:…}`` config resolvers (placeholder until implemented)."""
