"""Binance public USD-M history (data.binance.vision): what to fetch, fetching it, the CLI."""
