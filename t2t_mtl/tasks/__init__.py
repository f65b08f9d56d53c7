"""Task files: schema, registry, data sources and mixture sampling."""
