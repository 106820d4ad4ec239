"""The pure core: models, planning rules and errors. Imports no SDK, no kubernetes, no redis."""
