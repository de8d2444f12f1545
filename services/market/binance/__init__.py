"""Binance USD-M futures: the REST client, its wire format and the market source on top."""
